//! Which route a request takes: its host, then its path (pure; proptest against a plain oracle).
//!
//! A rule is a [`HostPattern`] (an exact host, a `*.example.com` wildcard, or any host) and a
//! [`PathPrefix`] matched on whole segments (`/api` matches `/api`, `/api/` and `/api/x`, never
//! `/apix`). Among the rules that match both, the most specific host wins (exact, then the
//! wildcard with the longest suffix, then no host), then the longest path: a request for
//! `api.example.com/x` that no exact rule's path takes falls through to the wildcards and then
//! to the host-less rules, like a default server behind NGINX's named ones. Two rules with the
//! same host and path are refused when the table is built, so the winner is always unique.
//!
//! The host is compared without its port and trailing dot, in ASCII lower case (DNS names are
//! case-insensitive); `*.example.com` matches `a.example.com` and `a.b.example.com` but not
//! `example.com` itself, as in NGINX. Paths are compared as sent (no percent-decoding): a backend
//! sees exactly the path that was routed.
//!
//! The lookup costs one hash probe per candidate host (exact, then one per dot for the
//! wildcards) and a scan of that host's few paths, longest first; a table without host rules
//! never looks at the Host header at all (the flag-only balancer's one route).

use std::collections::HashMap;

/// The longest host name compared (RFC 1035: 253 characters, plus room for a port).
const MAX_HOST: usize = 260;

/// The host part of a route.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// No `host` key: every host.
    Any,
    /// `example.com`, stored lower case.
    Exact(Box<str>),
    /// `*.example.com`, stored as its suffix with the dot (`.example.com`), lower case.
    Wildcard(Box<str>),
}

impl HostPattern {
    /// `example.com` or `*.example.com`: DNS labels of letters, digits, `-` and `_`, at most 63
    /// characters each, 253 in all; an IP address is an exact host. No port, no scheme, no path.
    pub fn parse(raw: &str) -> Result<HostPattern, String> {
        let (wildcard, name) = match raw.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, raw),
        };
        let name = name.strip_suffix('.').unwrap_or(name);
        if name.is_empty() || name.len() > 253 {
            return Err(format!("`{raw}` is not a host name"));
        }
        let ipv6 = !wildcard && name.starts_with('[') && name.ends_with(']');
        let valid = if ipv6 {
            name[1..name.len() - 1]
                .parse::<std::net::Ipv6Addr>()
                .is_ok()
        } else {
            name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
        };
        if !valid {
            let why = if raw.contains(':') || raw.contains('/') {
                "a host has no scheme, port or path"
            } else {
                "a host is DNS labels (letters, digits, `-`), or `*.` and such labels"
            };
            return Err(format!("`{raw}` is not a host name: {why}"));
        }
        let lower = name.to_ascii_lowercase();
        Ok(if wildcard {
            HostPattern::Wildcard(format!(".{lower}").into_boxed_str())
        } else {
            HostPattern::Exact(lower.into_boxed_str())
        })
    }

    /// Whether `host` (normalised: lower case, no port, no trailing dot) matches.
    pub fn matches(&self, host: Option<&str>) -> bool {
        match (self, host) {
            (HostPattern::Any, _) => true,
            (HostPattern::Exact(name), Some(host)) => **name == *host,
            (HostPattern::Wildcard(suffix), Some(host)) => {
                host.len() > suffix.len() && host.ends_with(&**suffix)
            }
            (_, None) => false,
        }
    }

    /// How specific the pattern is: exact beats any wildcard, a longer wildcard suffix beats a
    /// shorter one, and any wildcard beats no host.
    pub fn rank(&self) -> (u8, usize) {
        match self {
            HostPattern::Any => (0, 0),
            HostPattern::Wildcard(suffix) => (1, suffix.len()),
            HostPattern::Exact(_) => (2, 0),
        }
    }
}

impl std::fmt::Display for HostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostPattern::Any => f.write_str("*"),
            HostPattern::Exact(name) => f.write_str(name),
            HostPattern::Wildcard(suffix) => write!(f, "*{suffix}"),
        }
    }
}

/// The path part of a route: a prefix matched on whole segments.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PathPrefix(Box<str>);

impl PathPrefix {
    /// An absolute path (`/`, `/api`, `/api/`) of the characters a request target may hold, with
    /// no query, no fragment and no `.`/`..` segment (which no normalised request would match).
    pub fn parse(raw: &str) -> Result<PathPrefix, String> {
        if !raw.starts_with('/') {
            return Err(format!("`{raw}` must start with `/`"));
        }
        if raw.len() > 1024 {
            return Err("a path is at most 1024 characters".into());
        }
        if raw.contains(['?', '#']) {
            return Err(format!("`{raw}` must be a path without `?` or `#`"));
        }
        let target_char = |b: u8| {
            b.is_ascii_graphic()
                && !matches!(
                    b,
                    b'"' | b'<' | b'>' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}'
                )
        };
        if !raw.bytes().all(target_char) {
            return Err(format!("`{raw}` holds a character a request path cannot"));
        }
        if raw.split('/').any(|s| s == "." || s == "..") {
            return Err(format!("`{raw}` holds a `.` or `..` segment"));
        }
        Ok(PathPrefix(raw.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `path` starts with this prefix on a segment boundary.
    pub fn matches(&self, path: &str) -> bool {
        let prefix = &*self.0;
        match path.strip_prefix(prefix) {
            Some(rest) => rest.is_empty() || prefix.ends_with('/') || rest.starts_with('/'),
            None => false,
        }
    }

    /// `path` with this prefix taken off (`strip_prefix`): what is left, always starting with
    /// `/` (`/api` → `/`, `/api/x` → `/x`, `/api/` → `/`). `path` must match.
    pub fn strip<'a>(&self, path: &'a str) -> &'a str {
        let prefix = self.0.strip_suffix('/').unwrap_or(&self.0);
        match path.get(prefix.len()..) {
            Some(rest) if rest.starts_with('/') => rest,
            _ => "/",
        }
    }
}

impl std::fmt::Display for PathPrefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One route's host and path, as the file wrote them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rule {
    pub host: HostPattern,
    pub path: PathPrefix,
}

/// Two rules of a table with the same host and path: the indexes of both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duplicate {
    pub first: usize,
    pub second: usize,
}

/// The rules, indexed for the lookup; see the module doc.
#[derive(Debug, Default)]
pub struct Matcher {
    exact: HashMap<Box<str>, Paths>,
    /// Keyed by the suffix with its dot: `.example.com`.
    wildcard: HashMap<Box<str>, Paths>,
    any: Paths,
    /// The longest wildcard suffix, to skip the probes that cannot hit.
    longest_suffix: usize,
}

/// One host's paths, longest first, each with its rule's index.
#[derive(Debug, Default)]
struct Paths(Vec<(PathPrefix, usize)>);

impl Paths {
    fn add(&mut self, path: PathPrefix, index: usize) -> Result<(), Duplicate> {
        if let Some(&(_, first)) = self.0.iter().find(|(p, _)| *p == path) {
            return Err(Duplicate {
                first,
                second: index,
            });
        }
        self.0.push((path, index));
        // Longest first; equal lengths cannot both match one path unless equal (refused above).
        self.0
            .sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.0.len()));
        Ok(())
    }

    fn find(&self, path: &str) -> Option<usize> {
        self.0
            .iter()
            .find(|(prefix, _)| prefix.matches(path))
            .map(|&(_, index)| index)
    }
}

impl Matcher {
    /// The table of `rules`; rule `i` is found as `i`.
    pub fn new(rules: &[Rule]) -> Result<Matcher, Duplicate> {
        let mut matcher = Matcher::default();
        for (index, rule) in rules.iter().enumerate() {
            let paths = match &rule.host {
                HostPattern::Any => &mut matcher.any,
                HostPattern::Exact(name) => matcher.exact.entry(name.clone()).or_default(),
                HostPattern::Wildcard(suffix) => {
                    matcher.longest_suffix = matcher.longest_suffix.max(suffix.len());
                    matcher.wildcard.entry(suffix.clone()).or_default()
                }
            };
            paths.add(rule.path.clone(), index)?;
        }
        Ok(matcher)
    }

    /// Whether any rule names a host: without one the Host header is never read.
    pub fn needs_host(&self) -> bool {
        !self.exact.is_empty() || !self.wildcard.is_empty()
    }

    /// The index of the rule a request for `host` (the Host header or `:authority` as sent:
    /// any case, maybe a port) and `path` takes, if any.
    pub fn find(&self, host: Option<&[u8]>, path: &str) -> Option<usize> {
        if self.needs_host() {
            let mut buffer = [0u8; MAX_HOST];
            if let Some(host) = host.and_then(|h| normalise(h, &mut buffer)) {
                if let Some(found) = self.find_host(host, path) {
                    return Some(found);
                }
            }
        }
        self.any.find(path)
    }

    /// The exact host's paths, then each wildcard that is a suffix of `host`, longest first.
    fn find_host(&self, host: &str, path: &str) -> Option<usize> {
        if let Some(found) = self.exact.get(host).and_then(|p| p.find(path)) {
            return Some(found);
        }
        if self.wildcard.is_empty() {
            return None;
        }
        // Each `.` after the first label starts a candidate suffix, longest first.
        let dots = host.char_indices().filter(|&(i, c)| c == '.' && i > 0);
        for (at, _) in dots {
            let suffix = &host[at..];
            if suffix.len() > self.longest_suffix {
                continue;
            }
            if let Some(found) = self.wildcard.get(suffix).and_then(|p| p.find(path)) {
                return Some(found);
            }
        }
        None
    }
}

/// `host` without port or trailing dot, lower case, in `buffer`; `None` if it is too long or not
/// text (such a host matches no named rule).
fn normalise<'a>(host: &[u8], buffer: &'a mut [u8; MAX_HOST]) -> Option<&'a str> {
    let name = if host.first() == Some(&b'[') {
        // `[::1]:8080`: the port follows the bracket.
        let end = host.iter().position(|&b| b == b']')?;
        &host[..=end]
    } else {
        match host.iter().rposition(|&b| b == b':') {
            Some(colon) => &host[..colon],
            None => host,
        }
    };
    let name = name.strip_suffix(b".").unwrap_or(name);
    let out = buffer.get_mut(..name.len())?;
    for (o, &b) in out.iter_mut().zip(name) {
        *o = b.to_ascii_lowercase();
    }
    std::str::from_utf8(out).ok()
}

#[cfg(test)]
mod tests;
