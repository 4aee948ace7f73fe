//! Discovery: turns the configured upstream names into backends, again and again.
//!
//! Every `--resolve-interval` each name is resolved with the system resolver ([`crate::backends::lookup`]:
//! getaddrinfo, which Docker's embedded DNS, a Swarm `tasks.` name or a Kubernetes headless
//! Service answer with one address per replica). The union of all addresses becomes the
//! rotation: new ones join (pending until their first passing health check), vanished ones leave
//! (finishing their in-flight requests). The three outcomes of a lookup are kept apart:
//!
//! - addresses: they become the name's addresses;
//! - no such name (NXDOMAIN, or no address record): the name has no replica now (scaled to
//!   zero), so its addresses leave; with no other name the balancer answers 503;
//! - a failure that is no answer (timeout, SERVFAIL, no server): the name keeps its last known
//!   addresses, so a DNS hiccup never empties the rotation.
//!
//! A name that never resolved contributes nothing and the balancer answers 503 until it does.
//! `/status` shows per name what the last lookup saw (`last_outcome`) and since when.

use shared::sync::lock;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::backends::backend::BackendSet;
use crate::backends::lookup::{self, Lookup};
use crate::backends::selection::{self, MAX_BACKENDS};

#[derive(Debug, Clone, serde::Serialize)]
pub struct UpstreamStatus {
    pub name: String,
    pub addresses: Vec<SocketAddr>,
    /// When the name last resolved successfully (Unix ms), if ever.
    pub last_resolved_unix_ms: Option<u64>,
    pub last_attempt_unix_ms: Option<u64>,
    /// What the last lookup saw: "resolved", "no_such_name" (its addresses left) or "failed"
    /// (no answer: the last addresses are kept). None before the first lookup.
    pub last_outcome: Option<&'static str>,
    pub last_error: Option<String>,
}

impl UpstreamStatus {
    /// Takes in one lookup's result at `now` (Unix ms), logging what changed.
    fn apply(&mut self, found: Lookup, now: u64) {
        self.last_attempt_unix_ms = Some(now);
        match found {
            Lookup::Addresses(addrs) => {
                if self.addresses != addrs || self.last_outcome != Some("resolved") {
                    tracing::info!(upstream = %self.name, addresses = ?addrs, "upstream resolved");
                }
                self.addresses = addrs;
                self.last_resolved_unix_ms = Some(now);
                self.last_outcome = Some("resolved");
                self.last_error = None;
            }
            Lookup::NoSuchName(e) => {
                if self.last_outcome != Some("no_such_name") {
                    tracing::warn!(upstream = %self.name, error = %e, removed = self.addresses.len(), "upstream has no address now; its backends leave");
                }
                self.addresses.clear();
                self.last_outcome = Some("no_such_name");
                self.last_error = Some(e);
            }
            Lookup::Failed(e) => {
                if self.last_error.as_deref() != Some(e.as_str()) {
                    tracing::warn!(upstream = %self.name, error = %e, kept = self.addresses.len(), "upstream lookup failed; keeping its last addresses");
                }
                self.last_outcome = Some("failed");
                self.last_error = Some(e);
            }
        }
    }
}

/// One configured upstream name, e.g. `app:5000`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UpstreamName {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for UpstreamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

pub struct Discovery {
    upstreams: Vec<UpstreamName>,
    status: Mutex<Vec<UpstreamStatus>>,
    pool: Arc<BackendSet>,
    lookup_timeout: Duration,
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Discovery {
    pub fn new(upstreams: Vec<UpstreamName>, pool: Arc<BackendSet>, interval: Duration) -> Self {
        let status = upstreams
            .iter()
            .map(|u| UpstreamStatus {
                name: u.to_string(),
                addresses: Vec::new(),
                last_resolved_unix_ms: None,
                last_attempt_unix_ms: None,
                last_outcome: None,
                last_error: None,
            })
            .collect();
        Discovery {
            upstreams,
            status: Mutex::new(status),
            pool,
            // A stuck resolver must not stall the loop past the next round.
            lookup_timeout: interval.clamp(Duration::from_millis(500), Duration::from_secs(5)),
        }
    }

    pub fn status(&self) -> Vec<UpstreamStatus> {
        lock(&self.status).clone()
    }

    /// Resolves every name once (concurrently) and updates the pool.
    pub async fn resolve_all(&self) {
        let lookups = self
            .upstreams
            .iter()
            .map(|u| lookup::resolve(&u.host, u.port, self.lookup_timeout));
        let results = futures_util::future::join_all(lookups).await;
        let now = unix_ms(SystemTime::now());
        let mut wanted: Vec<(SocketAddr, String)> = Vec::new();
        {
            let mut status = lock(&self.status);
            for (st, found) in status.iter_mut().zip(results) {
                st.apply(found, now);
                wanted.extend(st.addresses.iter().map(|a| (*a, st.name.clone())));
            }
        }
        let (added, removed) = self.pool.set_addresses(&wanted);
        if !added.is_empty() || !removed.is_empty() {
            tracing::info!(?added, ?removed, "backends changed");
            warn_beyond_limit(self.pool.snapshot().len());
        }
    }

    pub async fn run(self: Arc<Self>, interval: Duration) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            self.resolve_all().await;
        }
    }
}

/// Selection serves at most [`MAX_BACKENDS`]; say so whenever the backends change while more are
/// known (also shown on `/status` as `backends_beyond_limit`).
fn warn_beyond_limit(backends: usize) {
    let left_out = selection::beyond_limit(backends);
    if left_out > 0 {
        tracing::warn!(
            backends,
            max = MAX_BACKENDS,
            left_out,
            "more backends than the balancer can serve; the last ones in address order get no traffic"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status() -> UpstreamStatus {
        UpstreamStatus {
            name: "app:5000".into(),
            addresses: Vec::new(),
            last_resolved_unix_ms: None,
            last_attempt_unix_ms: None,
            last_outcome: None,
            last_error: None,
        }
    }

    fn addrs(last_octets: &[u8]) -> Vec<SocketAddr> {
        last_octets
            .iter()
            .map(|o| SocketAddr::from(([10, 0, 0, *o], 5000)))
            .collect()
    }

    #[test]
    fn addresses_replace_the_last_ones() {
        let mut st = status();
        st.apply(Lookup::Addresses(addrs(&[1, 2])), 10);
        st.apply(Lookup::Addresses(addrs(&[2, 3])), 20);
        assert_eq!(st.addresses, addrs(&[2, 3]));
        assert_eq!(st.last_resolved_unix_ms, Some(20));
        assert_eq!(st.last_outcome, Some("resolved"));
        assert_eq!(st.last_error, None);
    }

    #[test]
    fn a_failed_lookup_keeps_the_last_addresses() {
        let mut st = status();
        st.apply(Lookup::Addresses(addrs(&[1, 2])), 10);
        st.apply(Lookup::Failed("lookup timed out after 1s".into()), 20);
        assert_eq!(st.addresses, addrs(&[1, 2]));
        assert_eq!(st.last_resolved_unix_ms, Some(10));
        assert_eq!(st.last_attempt_unix_ms, Some(20));
        assert_eq!(st.last_outcome, Some("failed"));
        assert_eq!(st.last_error.as_deref(), Some("lookup timed out after 1s"));
    }

    #[test]
    fn no_such_name_empties_the_name_and_a_later_answer_refills_it() {
        let mut st = status();
        st.apply(Lookup::Addresses(addrs(&[1, 2])), 10);
        st.apply(Lookup::NoSuchName("Name or service not known".into()), 20);
        assert!(st.addresses.is_empty());
        assert_eq!(st.last_outcome, Some("no_such_name"));
        assert_eq!(st.last_resolved_unix_ms, Some(10));
        // A transient failure after that keeps the (empty) set; an answer brings them back.
        st.apply(Lookup::Failed("timeout".into()), 30);
        assert!(st.addresses.is_empty());
        st.apply(Lookup::Addresses(addrs(&[3])), 40);
        assert_eq!(st.addresses, addrs(&[3]));
        assert_eq!(st.last_outcome, Some("resolved"));
    }

    #[tokio::test]
    async fn resolve_all_follows_the_answers_into_the_pool() {
        let pool = Arc::new(BackendSet::new(
            Arc::new(crate::runtime::metrics::Metrics::new()),
            1,
        ));
        let upstreams = vec![
            UpstreamName {
                host: "127.0.0.1".into(),
                port: 5000,
            },
            UpstreamName {
                host: "127.0.0.2".into(),
                port: 5001,
            },
        ];
        let d = Discovery::new(upstreams, pool.clone(), Duration::from_secs(1));
        d.resolve_all().await;
        let got: Vec<SocketAddr> = pool.snapshot().iter().map(|b| b.addr).collect();
        assert_eq!(
            got,
            [
                SocketAddr::from(([127, 0, 0, 1], 5000)),
                SocketAddr::from(([127, 0, 0, 2], 5001))
            ]
        );
        assert!(d
            .status()
            .iter()
            .all(|s| s.last_outcome == Some("resolved")));
    }
}
