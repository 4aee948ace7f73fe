//! The `Host` header rule (RFC 9110 §7.2, RFC 9112 §3.2), one for both binaries.
//!
//! A Host is `uri-host [ ":" port ]` with a non-empty host, no userinfo and a numeric port. The
//! app once also accepted an empty Host and `a:junk`; the balancer never did, and the stricter rule
//! is the one kept.

use http::header::HOST;
use http::{HeaderMap, Version};

/// True if `value` is a valid `Host` value.
pub fn is_valid_host(value: &[u8]) -> bool {
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
    // `Authority` does not check the port, so `host:junk` would pass without this.
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
    let mut hosts = headers.get_all(HOST).iter();
    let first = hosts.next();
    if hosts.next().is_some() {
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
    use http::HeaderValue;
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

    proptest! {
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
