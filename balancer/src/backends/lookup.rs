//! Name lookups through the system resolver, with the answer classified.
//!
//! The lookup is getaddrinfo, as for every other program on the host: `/etc/hosts`, then the
//! servers of `/etc/resolv.conf` (glibc re-reads that file when it changes, so a rewritten
//! resolv.conf takes effect without a restart), with its search domains and `ndots`. std's
//! `lookup_host` folds every failure into one opaque error; discovery needs the difference, so
//! the call goes through `dns-lookup`, which keeps getaddrinfo's error kind:
//!
//! - `EAI_NONAME` / `EAI_NODATA`: the server answered that the name does not exist (NXDOMAIN) or
//!   has no address record. That is an answer: the service has no replica now (scaled to zero).
//! - anything else (`EAI_AGAIN`: a timeout, SERVFAIL, no server reachable; `EAI_FAIL`: a refused
//!   or malformed answer; a system error) says nothing about the name: it is transient.

use std::net::SocketAddr;
use std::time::Duration;

use dns_lookup::{AddrInfoHints, LookupErrorKind};

/// What one lookup of one name found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The name's addresses now: sorted, without duplicates, never empty.
    Addresses(Vec<SocketAddr>),
    /// The name does not exist or has no address (NXDOMAIN or no A/AAAA record): authoritative.
    NoSuchName(String),
    /// The lookup failed without an answer about the name (timeout, SERVFAIL, refused, ...).
    Failed(String),
}

/// Resolves `host` (a name or an IP literal) for `port` on the blocking pool, giving up after
/// `timeout` (the blocked thread finishes on its own; the resolver's own timeout bounds it).
pub async fn resolve(host: &str, port: u16, timeout: Duration) -> Lookup {
    let owned = host.to_owned();
    let blocking = tokio::task::spawn_blocking(move || lookup(&owned, port));
    match tokio::time::timeout(timeout, blocking).await {
        Ok(Ok(found)) => found,
        Ok(Err(e)) => Lookup::Failed(format!("lookup task failed: {e}")),
        Err(_) => Lookup::Failed(format!("lookup timed out after {timeout:?}")),
    }
}

/// One blocking getaddrinfo call for stream sockets (one entry per address).
pub fn lookup(host: &str, port: u16) -> Lookup {
    let hints = AddrInfoHints {
        socktype: dns_lookup::SockType::Stream.into(),
        ..AddrInfoHints::default()
    };
    match dns_lookup::getaddrinfo(Some(host), None, Some(hints)) {
        Ok(entries) => {
            let mut addrs: Vec<SocketAddr> = entries
                .filter_map(Result::ok)
                .map(|e| {
                    let mut a = e.sockaddr;
                    a.set_port(port);
                    a
                })
                .collect();
            addrs.sort();
            addrs.dedup();
            if addrs.is_empty() {
                Lookup::NoSuchName("resolved to no address".into())
            } else {
                Lookup::Addresses(addrs)
            }
        }
        Err(e) => {
            let kind = e.kind();
            let message = std::io::Error::from(e).to_string();
            if is_authoritative(kind) {
                Lookup::NoSuchName(message)
            } else {
                Lookup::Failed(message)
            }
        }
    }
}

/// Whether a getaddrinfo failure is the DNS saying the name has no address (as opposed to not
/// answering).
pub fn is_authoritative(kind: LookupErrorKind) -> bool {
    matches!(kind, LookupErrorKind::NoName | LookupErrorKind::NoData)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_name_and_no_data_are_answers_the_rest_is_transient() {
        assert!(is_authoritative(LookupErrorKind::NoName));
        assert!(is_authoritative(LookupErrorKind::NoData));
        for transient in [
            LookupErrorKind::Again,
            LookupErrorKind::Fail,
            LookupErrorKind::System,
            LookupErrorKind::Memory,
            LookupErrorKind::IO,
            LookupErrorKind::Unknown,
        ] {
            assert!(!is_authoritative(transient), "{transient:?}");
        }
    }

    #[test]
    fn an_ip_literal_resolves_to_itself_with_the_port() {
        assert_eq!(
            lookup("127.0.0.1", 5000),
            Lookup::Addresses(vec![SocketAddr::from(([127, 0, 0, 1], 5000))])
        );
        assert_eq!(
            lookup("::1", 80),
            Lookup::Addresses(vec!["[::1]:80".parse().unwrap()])
        );
    }

    #[tokio::test]
    async fn resolve_runs_the_lookup_off_the_runtime() {
        assert_eq!(
            resolve("127.0.0.2", 7, Duration::from_secs(5)).await,
            Lookup::Addresses(vec![SocketAddr::from(([127, 0, 0, 2], 7))])
        );
    }
}
