//! The negotiation against a plain oracle on random `Accept-Encoding` lists (proptest), the
//! weights' syntax, and the should-compress rules.

use http::header::{self, HeaderMap, HeaderValue};
use http::StatusCode;
use proptest::prelude::*;

use super::*;

const ALL: &[Codec] = &Codec::ALL;

#[test]
fn server_order_among_what_the_client_allows() {
    assert_eq!(
        negotiate(b"gzip, deflate, br, zstd", ALL),
        Some(Codec::Zstd)
    );
    assert_eq!(negotiate(b"gzip, br", ALL), Some(Codec::Br));
    assert_eq!(negotiate(b"gzip", ALL), Some(Codec::Gzip));
    assert_eq!(negotiate(b"deflate", ALL), None);
    assert_eq!(negotiate(b"", ALL), None);
    assert_eq!(negotiate(b"GZIP", ALL), Some(Codec::Gzip));
    assert_eq!(negotiate(b"x-gzip", ALL), Some(Codec::Gzip));
    let gzip_first = [Codec::Gzip, Codec::Zstd];
    assert_eq!(negotiate(b"zstd, gzip, br", &gzip_first), Some(Codec::Gzip));
}

#[test]
fn q_values_are_honoured() {
    assert_eq!(negotiate(b"zstd;q=0.5, gzip", ALL), Some(Codec::Gzip));
    assert_eq!(negotiate(b"zstd;q=0, br;q=0", ALL), None);
    assert_eq!(negotiate(b"zstd;q=0, gzip;q=0.1", ALL), Some(Codec::Gzip));
    assert_eq!(negotiate(b"zstd; q=1.000, br ;q=1", ALL), Some(Codec::Zstd));
    // A malformed weight drops its entry only.
    assert_eq!(negotiate(b"zstd;q=2, gzip", ALL), Some(Codec::Gzip));
    assert_eq!(negotiate(b"zstd;q=0.0001, br", ALL), Some(Codec::Br));
}

#[test]
fn identity_and_star() {
    assert_eq!(negotiate(b"*", ALL), Some(Codec::Zstd));
    assert_eq!(negotiate(b"*;q=0", ALL), None);
    assert_eq!(negotiate(b"gzip, *;q=0", ALL), Some(Codec::Gzip));
    assert_eq!(negotiate(b"zstd;q=0, *", ALL), Some(Codec::Br));
    assert_eq!(negotiate(b"identity;q=0", ALL), None);
    assert_eq!(negotiate(b"gzip, identity;q=0", ALL), Some(Codec::Gzip));
    assert_eq!(negotiate(b"identity", ALL), None);
    assert_eq!(negotiate(b"gzip;q=0.5, identity", ALL), None);
    assert_eq!(negotiate(b"gzip, identity;q=0.5", ALL), Some(Codec::Gzip));
}

#[test]
fn a_huge_header_is_one_linear_pass() {
    let mut huge = "x-unknown;q=0.5, ".repeat(20_000);
    huge.push_str("br;q=0.9");
    assert_eq!(negotiate(huge.as_bytes(), ALL), Some(Codec::Br));
    let junk = vec![b';'; 200_000];
    assert_eq!(negotiate(&junk, ALL), None);
}

#[test]
fn weights_syntax() {
    assert_eq!(parse_q(b"0"), Some(0));
    assert_eq!(parse_q(b"0.5"), Some(500));
    assert_eq!(parse_q(b"0.125"), Some(125));
    assert_eq!(parse_q(b"1"), Some(1000));
    assert_eq!(parse_q(b"1.000"), Some(1000));
    for bad in [&b"1.001"[..], b"2", b"0.1234", b"", b".5", b"0.a", b"-0"] {
        assert_eq!(parse_q(bad), None, "{:?}", String::from_utf8_lossy(bad));
    }
}

fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in pairs {
        h.append(name.clone(), HeaderValue::from_str(value).unwrap());
    }
    h
}

#[test]
fn what_is_compressed() {
    let c = Compress::new(ALL.to_vec());
    let html = (header::CONTENT_TYPE, "text/html; charset=utf-8");
    let ok = StatusCode::OK;
    assert!(c.applies(ok, &headers(std::slice::from_ref(&html))));
    assert!(c.applies(
        ok,
        &headers(&[html.clone(), (header::CONTENT_LENGTH, "1024")])
    ));
    assert!(!c.applies(
        ok,
        &headers(&[html.clone(), (header::CONTENT_LENGTH, "1023")])
    ));
    assert!(!c.applies(ok, &headers(&[(header::CONTENT_TYPE, "image/png")])));
    assert!(!c.applies(ok, &headers(&[])));
    for status in [204, 304, 206, 101] {
        let status = StatusCode::from_u16(status).unwrap();
        assert!(
            !c.applies(status, &headers(std::slice::from_ref(&html))),
            "{status}"
        );
    }
    let gz = (header::CONTENT_ENCODING, "gzip");
    assert!(!c.applies(ok, &headers(&[html.clone(), gz])));
    let id = (header::CONTENT_ENCODING, "identity");
    assert!(c.applies(ok, &headers(&[html.clone(), id])));
    let nt = (header::CACHE_CONTROL, "public, No-Transform");
    assert!(!c.applies(ok, &headers(&[html.clone(), nt])));
    let range = (header::CONTENT_RANGE, "bytes 0-9/100");
    assert!(!c.applies(ok, &headers(&[html, range])));
    assert!(c.choose(true, Some(b"gzip")).is_none());
    assert!(c.choose(false, None).is_none());
}

#[test]
fn compressible_types() {
    for yes in [
        "text/html",
        "text/event-stream",
        "application/json",
        "application/problem+json",
        "application/javascript; charset=utf-8",
        "text/css",
        "image/svg+xml",
        "application/atom+xml",
        "Application/JSON",
    ] {
        assert!(compressible(yes.as_bytes()), "{yes}");
    }
    for no in [
        "image/png",
        "application/octet-stream",
        "video/mp4",
        "font/woff2",
        "json",
        "",
    ] {
        assert!(!compressible(no.as_bytes()), "{no}");
    }
}

/// One entry of a generated `Accept-Encoding`: a name and an optional weight in thousandths.
fn entry() -> impl Strategy<Value = (&'static str, Option<u16>)> {
    let name = prop::sample::select(vec![
        "zstd", "br", "gzip", "identity", "*", "deflate", "GZip",
    ]);
    let q = prop::option::of(prop::sample::select(vec![0u16, 1, 100, 500, 999, 1000]));
    (name, q)
}

fn render((name, q): &(&str, Option<u16>)) -> String {
    match q {
        None => name.to_string(),
        Some(1000) => format!("{name};q=1"),
        Some(q) => format!("{name} ; q=0.{q:03}"),
    }
}

/// The plain oracle: each codec's weight (the highest given it, else `*`'s, else 0), the best
/// weight wins, the server's order breaks ties; identity named with a higher weight wins.
fn oracle(entries: &[(&str, Option<u16>)], offered: &[Codec]) -> Option<Codec> {
    let weight_of = |name: &str| {
        entries
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, q)| q.unwrap_or(1000))
            .max()
    };
    let star = weight_of("*");
    let mut ranked: Vec<(u16, usize, Codec)> = offered
        .iter()
        .enumerate()
        .map(|(i, &c)| (weight_of(c.token()).or(star).unwrap_or(0), i, c))
        .filter(|(q, _, _)| *q > 0)
        .collect();
    ranked.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let &(q, _, codec) = ranked.first()?;
    match weight_of("identity") {
        Some(identity) if identity > q => None,
        _ => Some(codec),
    }
}

proptest! {
    #[test]
    fn negotiate_matches_the_oracle(
        entries in prop::collection::vec(entry(), 0..8),
        offered in Just(ALL.to_vec()).prop_shuffle(),
        keep in 1usize..=3,
    ) {
        let offered = &offered[..keep];
        let header = entries.iter().map(render).collect::<Vec<_>>().join(", ");
        prop_assert_eq!(negotiate(header.as_bytes(), offered), oracle(&entries, offered), "{}", header);
    }

    #[test]
    fn negotiate_never_panics(raw in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = negotiate(&raw, ALL);
        let _ = compressible(&raw);
    }
}
