//! The matcher against a plain oracle: a linear scan of the rules as written, keeping the most
//! specific host and then the longest path, on random tables and requests.

use proptest::prelude::*;

use super::*;

fn rule(host: Option<&str>, path: &str) -> Rule {
    Rule {
        host: host.map_or(HostPattern::Any, |h| HostPattern::parse(h).unwrap()),
        path: PathPrefix::parse(path).unwrap(),
    }
}

/// The contract as written: every rule whose host and path match, the best by (host rank, path
/// length). No index structure, no early exit.
fn oracle(rules: &[Rule], host: Option<&[u8]>, path: &str) -> Option<usize> {
    let host = host.and_then(|h| {
        let text = std::str::from_utf8(h).ok()?.to_ascii_lowercase();
        let name = if text.starts_with('[') {
            text[..=text.find(']')?].to_owned()
        } else {
            text.rsplit_once(':')
                .map_or(text.clone(), |(n, _)| n.to_owned())
        };
        Some(name.strip_suffix('.').unwrap_or(&name).to_owned())
    });
    rules
        .iter()
        .enumerate()
        .filter(|(_, r)| r.host.matches(host.as_deref()) && r.path.matches(path))
        .max_by_key(|(_, r)| (r.host.rank(), r.path.as_str().len()))
        .map(|(i, _)| i)
}

#[test]
fn paths_match_on_whole_segments() {
    let api = PathPrefix::parse("/api").unwrap();
    assert!(api.matches("/api"));
    assert!(api.matches("/api/"));
    assert!(api.matches("/api/x"));
    assert!(!api.matches("/apix"));
    assert!(!api.matches("/ap"));
    let slash = PathPrefix::parse("/api/").unwrap();
    assert!(slash.matches("/api/x"));
    assert!(!slash.matches("/api"));
    assert!(PathPrefix::parse("/").unwrap().matches("/anything"));
}

#[test]
fn strip_prefix_leaves_an_absolute_path() {
    let api = PathPrefix::parse("/api").unwrap();
    assert_eq!(api.strip("/api"), "/");
    assert_eq!(api.strip("/api/"), "/");
    assert_eq!(api.strip("/api/count"), "/count");
    let slash = PathPrefix::parse("/api/").unwrap();
    assert_eq!(slash.strip("/api/count"), "/count");
    assert_eq!(PathPrefix::parse("/").unwrap().strip("/x"), "/x");
}

#[test]
fn bad_hosts_and_paths_are_refused() {
    for bad in [
        "", "*", "*.", "http://x", "x:80", "a/b", "a..b", "-a.com", "a b", "*.*.x", "ü.com",
    ] {
        assert!(HostPattern::parse(bad).is_err(), "{bad:?} accepted");
    }
    for good in [
        "example.com",
        "*.example.com",
        "localhost",
        "127.0.0.1",
        "[::1]",
        "A.Example.COM.",
    ] {
        assert!(HostPattern::parse(good).is_ok(), "{good:?} refused");
    }
    for bad in ["", "api", "/a?b", "/a#b", "/a b", "/a/../b", "/./x"] {
        assert!(PathPrefix::parse(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn the_most_specific_host_wins_then_the_longest_path() {
    let rules = [
        rule(None, "/"),
        rule(Some("*.example.com"), "/"),
        rule(Some("api.example.com"), "/v1"),
        rule(Some("*.b.example.com"), "/"),
        rule(None, "/api"),
    ];
    let m = Matcher::new(&rules).unwrap();
    assert_eq!(m.find(Some(b"api.example.com"), "/v1/x"), Some(2));
    assert_eq!(m.find(Some(b"API.Example.com.:8080"), "/v1"), Some(2));
    // The exact host has no path for /v2: the wildcard takes it.
    assert_eq!(m.find(Some(b"api.example.com"), "/v2"), Some(1));
    assert_eq!(m.find(Some(b"a.b.example.com"), "/"), Some(3));
    assert_eq!(m.find(Some(b"example.com"), "/api/x"), Some(4));
    assert_eq!(m.find(None, "/x"), Some(0));
    let only_api = Matcher::new(&[rule(Some("example.com"), "/api")]).unwrap();
    assert_eq!(only_api.find(Some(b"example.com"), "/"), None);
    assert_eq!(only_api.find(Some(b"other.com"), "/api"), None);
}

#[test]
fn a_duplicate_rule_is_refused_with_both_indexes() {
    let rules = [
        rule(Some("x.com"), "/a"),
        rule(None, "/"),
        rule(Some("X.com"), "/a"),
    ];
    assert_eq!(
        Matcher::new(&rules).unwrap_err(),
        Duplicate {
            first: 0,
            second: 2
        }
    );
}

fn host_strategy() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        "(a|b|c)(\\.(x|y))?\\.(com|org)".prop_map(Some),
        "\\*\\.((a|b)\\.)?(x|y)\\.(com|org)".prop_map(Some),
    ]
}

fn path_strategy() -> impl Strategy<Value = String> {
    "(/(a|b|ab|c)){0,3}/?".prop_map(|p| if p.is_empty() { "/".into() } else { p })
}

fn request_host() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        "(A|a|b|c|d)(\\.(x|y|a))?(\\.(x|y))?\\.(com|org|net)\\.?(:[0-9]{1,4})?".prop_map(Some),
        "[a-z.:\\[\\]]{0,12}".prop_map(Some),
    ]
}

proptest! {
    #[test]
    fn the_matcher_agrees_with_the_linear_scan(
        table in proptest::collection::vec((host_strategy(), path_strategy()), 0..24),
        requests in proptest::collection::vec((request_host(), "(/(a|b|ab|c|abc)){0,4}/?"), 1..32),
    ) {
        let mut rules: Vec<Rule> = Vec::new();
        for (host, path) in &table {
            let r = rule(host.as_deref(), path);
            if !rules.contains(&r) {
                rules.push(r);
            }
        }
        let matcher = Matcher::new(&rules).unwrap();
        for (host, path) in &requests {
            let path = if path.is_empty() { "/" } else { path.as_str() };
            let host = host.as_deref().map(str::as_bytes);
            prop_assert_eq!(matcher.find(host, path), oracle(&rules, host, path), "{:?} {}", host, path);
        }
    }
}
