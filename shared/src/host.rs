//! The `Host` header rule (RFC 9110 §7.2, RFC 9112 §3.2), one for both binaries.
//!
//! A Host is `uri-host [ ":" port ]` with a non-empty host, no userinfo and a numeric port. The
//! app once also accepted an empty Host and `a:junk`; the balancer never did, and the stricter rule
//! is the one kept.

use http::header::HOST;
use http::{HeaderMap, HeaderValue, Version};

/// True if `value` is a valid `Host` value: a bracketed IP literal or a non-empty registered name
/// (or IPv4 address), then nothing or `:` and a port of at most 65535 (an empty port is allowed,
/// as RFC 3986 allows it). No userinfo, no percent-encoding outside the brackets, ASCII only.
///
/// Byte by byte, without allocating: it runs on every request. It accepts what `http`'s
/// `Authority` parser accepts (the test below checks it against that parser as an oracle), except
/// brackets inside a registered name (`a[b]`), which RFC 3986 does not allow and this rejects.
pub fn is_valid_host(value: &[u8]) -> bool {
    let host_end = if value.first() == Some(&b'[') {
        match value.iter().position(|&b| b == b']') {
            Some(close) => close + 1,
            None => return false,
        }
    } else {
        value.iter().position(|&b| b == b':').unwrap_or(value.len())
    };
    let (host, rest) = value.split_at(host_end);
    let host_ok = match host {
        [b'[', literal @ .., b']'] => {
            literal
                .iter()
                .all(|&b| is_name_char(b) || b == b':' || b == b'%')
                && literal.iter().filter(|&&b| b == b':').count() <= MAX_LITERAL_COLONS
        }
        _ => !host.is_empty() && host.iter().all(|&b| is_name_char(b)),
    };
    host_ok && is_port_part(rest)
}

/// Colons an IP literal may hold (`[FEDC:BA98:7654:3210:FEDC:BA98:7654:3210]` has 7).
const MAX_LITERAL_COLONS: usize = 8;

/// RFC 3986 `unreserved` and `sub-delims`: what a registered name may hold.
fn is_name_char(b: u8) -> bool {
    matches!(b, b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~')
        || matches!(
            b,
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
        )
}

/// Nothing, or `:` and an empty port or one of up to five digits that fits a `u16`.
fn is_port_part(rest: &[u8]) -> bool {
    match rest {
        [] => true,
        [b':', port @ ..] => {
            port.len() <= 5
                && port.iter().all(u8::is_ascii_digit)
                && port.iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'))
                    <= u32::from(u16::MAX)
        }
        _ => false,
    }
}

/// Why a request's Host headers are unacceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostProblem {
    /// HTTP/1.1 without a Host header.
    Missing,
    /// More than one Host header.
    Repeated,
    /// A Host that is not `host[:port]`.
    Invalid,
}

/// Checks a request's Host headers: at most one, valid, and present on HTTP/1.1 (HTTP/2 names
/// the host in `:authority`, which hyper puts in the URI).
pub fn check_host_headers(headers: &HeaderMap, version: Version) -> Result<(), HostProblem> {
    let hosts = headers.get_all(HOST);
    check_hosts(hosts.iter().count(), hosts.iter().next(), version)
}

/// [`check_host_headers`] on what a caller already found: how many Host values, and the first.
pub fn check_hosts(
    count: usize,
    first: Option<&HeaderValue>,
    version: Version,
) -> Result<(), HostProblem> {
    if count > 1 {
        return Err(HostProblem::Repeated);
    }
    match first {
        Some(host) if is_valid_host(host.as_bytes()) => Ok(()),
        Some(_) => Err(HostProblem::Invalid),
        None if version == Version::HTTP_11 => Err(HostProblem::Missing),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn host_values() {
        for good in [
            &b"example.com"[..],
            b"example.com:8080",
            b"127.0.0.1:5000",
            b"[::1]:80",
            b"localhost:",
        ] {
            assert!(is_valid_host(good), "{:?}", String::from_utf8_lossy(good));
        }
        for bad in [
            &b""[..],
            b"a:junk",
            b"user@host",
            b"host:99999",
            b"host:123456",
            b"ho st",
            b":80",
        ] {
            assert!(!is_valid_host(bad), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn header_rules() {
        let mut h = HeaderMap::new();
        assert_eq!(
            check_host_headers(&h, Version::HTTP_11),
            Err(HostProblem::Missing)
        );
        assert_eq!(check_host_headers(&h, Version::HTTP_10), Ok(()));
        assert_eq!(check_host_headers(&h, Version::HTTP_2), Ok(()));
        h.append(HOST, HeaderValue::from_static("a.example"));
        assert_eq!(check_host_headers(&h, Version::HTTP_11), Ok(()));
        h.append(HOST, HeaderValue::from_static("b.example"));
        assert_eq!(
            check_host_headers(&h, Version::HTTP_11),
            Err(HostProblem::Repeated)
        );
        let mut h = HeaderMap::new();
        h.insert(HOST, HeaderValue::from_static(""));
        assert_eq!(
            check_host_headers(&h, Version::HTTP_11),
            Err(HostProblem::Invalid)
        );
    }

    /// The rule as it was, on `http`'s `Authority` parser (which allocates): the oracle.
    fn oracle(value: &[u8]) -> bool {
        if value.contains(&b'@') {
            return false;
        }
        let Ok(authority) = http::uri::Authority::try_from(value) else {
            return false;
        };
        let host = authority.host();
        if host.is_empty() {
            return false;
        }
        match &value[host.len()..] {
            [] => true,
            [b':', port @ ..] => {
                port.is_empty()
                    || (port.len() <= 5
                        && port.iter().all(u8::is_ascii_digit)
                        && std::str::from_utf8(port).is_ok_and(|p| p.parse::<u16>().is_ok()))
            }
            _ => false,
        }
    }

    #[test]
    fn brackets_only_around_an_ip_literal() {
        assert!(oracle(b"a[b]"), "the old parser took it");
        assert!(!is_valid_host(b"a[b]"));
        assert!(is_valid_host(b"[fe80::1%25eth0]:8080"));
        for literal in [&b"[1:2:3:4:5:6:7:8:9]"[..], b"[1:2:3:4:5:6:7:8:9:0]"] {
            assert_eq!(
                is_valid_host(literal),
                oracle(literal),
                "eight, then nine colons"
            );
        }
        assert!(!is_valid_host(b"[1:2:3:4:5:6:7:8:9:0]"));
        assert!(is_valid_host(b"[::1]:65535"));
        assert!(!is_valid_host(b"[::1]:65536"));
    }

    proptest! {
        /// Same answer as the oracle on strings dense in the characters that matter, except
        /// brackets inside a registered name, which only the new rule refuses.
        #[test]
        fn agrees_with_the_authority_parser(value in "[a0:\\[\\]@%/?#.~!5 \u{e9}-]{0,12}") {
            let value = value.as_bytes();
            let stricter = value.first() != Some(&b'[') && value.iter().any(|&b| b == b'[' || b == b']');
            if stricter {
                prop_assert!(!is_valid_host(value));
            } else {
                prop_assert_eq!(is_valid_host(value), oracle(value), "{:?}", String::from_utf8_lossy(value));
            }
        }

        #[test]
        fn valid_names_with_ports_pass(name in "[a-z][a-z0-9-]{0,20}(\\.[a-z0-9-]{1,10}){0,3}", port in 1u16..) {
            let with_port = format!("{name}:{port}");
            prop_assert!(is_valid_host(name.as_bytes()));
            prop_assert!(is_valid_host(with_port.as_bytes()));
        }

        #[test]
        fn userinfo_never_passes(user in "[a-z]{1,8}", host in "[a-z]{1,8}") {
            let value = format!("{user}@{host}");
            prop_assert!(!is_valid_host(value.as_bytes()));
        }
    }
}
