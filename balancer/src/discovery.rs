//! Discovery: turns the configured upstream names into backends, again and again.
//!
//! Every `--resolve-interval` each name is resolved with the system resolver
//! (`tokio::net::lookup_host`, i.e. getaddrinfo, which is what Docker's embedded DNS answers with
//! one address per replica). The union of all addresses becomes the rotation: new ones join,
//! vanished ones leave (finishing their in-flight requests). A name that fails to resolve keeps
//! its last known addresses, so a DNS hiccup never empties the pool; a name that never resolved
//! contributes nothing and the balancer answers 503 until it does.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::backend::Pool;
use crate::config::Upstream;
use crate::selection::{self, MAX_BACKENDS};

#[derive(Debug, Clone, serde::Serialize)]
pub struct UpstreamStatus {
    pub name: String,
    pub addresses: Vec<SocketAddr>,
    /// When the name last resolved successfully (Unix ms), if ever.
    pub last_resolved_unix_ms: Option<u64>,
    pub last_attempt_unix_ms: Option<u64>,
    pub last_error: Option<String>,
}

pub struct Discovery {
    upstreams: Vec<Upstream>,
    status: Mutex<Vec<UpstreamStatus>>,
    pool: Arc<Pool>,
    lookup_timeout: Duration,
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Discovery {
    pub fn new(upstreams: Vec<Upstream>, pool: Arc<Pool>, interval: Duration) -> Self {
        let status = upstreams
            .iter()
            .map(|u| UpstreamStatus {
                name: u.to_string(),
                addresses: Vec::new(),
                last_resolved_unix_ms: None,
                last_attempt_unix_ms: None,
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
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Resolves every name once (concurrently) and updates the pool.
    pub async fn resolve_all(&self) {
        let lookups = self.upstreams.iter().map(|u| {
            let timeout = self.lookup_timeout;
            async move {
                match tokio::time::timeout(
                    timeout,
                    tokio::net::lookup_host((u.host.as_str(), u.port)),
                )
                .await
                {
                    Ok(Ok(addrs)) => {
                        let mut v: Vec<SocketAddr> = addrs.collect();
                        v.sort();
                        v.dedup();
                        if v.is_empty() {
                            Err("resolved to no address".to_owned())
                        } else {
                            Ok(v)
                        }
                    }
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(format!("lookup timed out after {timeout:?}")),
                }
            }
        });
        let results = futures_util::future::join_all(lookups).await;
        let now = unix_ms(SystemTime::now());
        let mut wanted: Vec<(SocketAddr, String)> = Vec::new();
        {
            let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
            for (st, result) in status.iter_mut().zip(results) {
                st.last_attempt_unix_ms = Some(now);
                match result {
                    Ok(addrs) => {
                        if st.addresses != addrs || st.last_error.is_some() {
                            tracing::info!(upstream = %st.name, addresses = ?addrs, "upstream resolved");
                        }
                        st.addresses = addrs;
                        st.last_resolved_unix_ms = Some(now);
                        st.last_error = None;
                    }
                    Err(e) => {
                        if st.last_error.as_deref() != Some(e.as_str()) {
                            tracing::warn!(upstream = %st.name, error = %e, kept = st.addresses.len(), "upstream does not resolve");
                        }
                        st.last_error = Some(e);
                    }
                }
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
