//! Backends and the pool that holds them.
//!
//! A [`Backend`] is one resolved address with its health, in-flight count, totals and metric
//! handles. The [`BackendSet`] holds the current rotation as an immutable snapshot (swapped whole when
//! discovery changes it, read with one uncontended lock and an `Arc` clone per request) plus the
//! backends that left the rotation but still have requests in flight.
//!
//! Every backend that joins (new, or an address back from DNS) joins *pending* (see
//! [`crate::backends::health`]) and is queued for the prober, which checks it at once rather than at the next
//! `--health-interval` ([`BackendSet::take_joined`], [`BackendSet::wait_joined`]).

use shared::sync::{lock, read_lock, write_lock};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use http::HeaderValue;

use crate::backends::health::{Health, HealthPolicy};
use crate::backends::outlier::Outlier;
use crate::runtime::clock::now_ms;
use crate::runtime::metrics::{BackendLabels, BackendMetrics, Metrics};
use crate::upstream::Endpoint;

pub struct Backend {
    pub addr: SocketAddr,
    /// `addr` as text, used as the metrics label and in logs/status.
    pub label: String,
    /// Host header for health probes: the upstream name the address came from.
    pub host_header: HeaderValue,
    /// Upstream name that resolved to this address.
    pub upstream: String,
    pub health: Health,
    pub requests_total: AtomicU64,
    pub failures_total: AtomicU64,
    pub metrics: BackendMetrics,
    /// The address with its idle keep-alive connections (shared with the leases on them).
    pub endpoint: Arc<Endpoint>,
    /// When it joined (ms since start), where its slow-start ramp begins; 0 for the backends
    /// of the first (or an empty) rotation, which have no one to ramp up beside.
    pub joined_ms: u64,
    /// Its consecutive-5xx streak and ejection (`--max-5xx`).
    pub outlier: Outlier,
    /// Drained through the admin API: no new requests, in-flight ones finish.
    drained: AtomicBool,
}

impl Backend {
    pub fn new(
        addr: SocketAddr,
        upstream: &str,
        metrics: &Metrics,
        workers: usize,
    ) -> Result<Self, String> {
        let label = addr.to_string();
        let host_header = HeaderValue::from_str(upstream).map_err(|e| e.to_string())?;
        Ok(Backend {
            addr,
            host_header,
            upstream: upstream.to_owned(),
            health: Health::default(),
            requests_total: AtomicU64::new(0),
            failures_total: AtomicU64::new(0),
            metrics: metrics.for_backend(&label),
            endpoint: Arc::new(Endpoint::with_stray_counter(
                addr,
                workers,
                metrics
                    .upstream
                    .stray_bytes
                    .get_or_create(&BackendLabels {
                        backend: label.clone(),
                    })
                    .clone(),
            )),
            label,
            joined_ms: now_ms().max(1),
            outlier: Outlier::default(),
            drained: AtomicBool::new(false),
        })
    }

    /// Healthy (health checks) and not ejected for 5xx.
    pub fn in_rotation_at(&self, now_ms: u64) -> bool {
        self.health.is_healthy_at(now_ms) && !self.outlier.is_ejected_at(now_ms)
    }

    /// Since when it has been back in the rotation: the latest of joining (for a newcomer, its
    /// admission by the first passing probe), coming back from a passive or active mark, and the
    /// end of a 5xx ejection (for `--slow-start`).
    pub fn ramp_since_ms(&self) -> u64 {
        let admitted = match self.joined_ms {
            0 => 0,
            _ => self.health.admitted_at_ms(),
        };
        self.joined_ms
            .max(admitted)
            .max(self.health.back_since_ms())
            .max(self.outlier.ejected_until())
    }

    pub fn is_drained(&self) -> bool {
        self.drained.load(Ordering::Relaxed)
    }

    /// Drains (`true`) or undrains it; returns whether that changed anything.
    pub fn set_drained(&self, drained: bool) -> bool {
        self.drained.swap(drained, Ordering::Relaxed) != drained
    }

    pub fn in_flight(&self) -> i64 {
        self.metrics.in_flight.get()
    }

    pub fn record_failure(&self, policy: &HealthPolicy, what: &str) {
        self.failures_total.fetch_add(1, Ordering::Relaxed);
        if self.health.record_failure(policy, what) {
            tracing::warn!(backend = %self.addr, error = what, "backend taken out by passive health check");
        }
    }
}

/// Marks a request as in flight on a backend for as long as the guard lives (through the end of
/// the streamed response body).
pub struct InFlight(pub Arc<Backend>);

impl InFlight {
    pub fn start(backend: Arc<Backend>) -> Self {
        backend.metrics.in_flight.inc();
        InFlight(backend)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.metrics.in_flight.dec();
    }
}

pub struct BackendSet {
    rotation: RwLock<Arc<[Arc<Backend>]>>,
    /// Backends whose address vanished from DNS, kept visible until their in-flight requests end.
    draining: Mutex<Vec<Arc<Backend>>>,
    pub metrics: Arc<Metrics>,
    /// Event-loop threads serving clients (`--workers`); each backend keeps idle connections per worker.
    workers: usize,
    /// Backends that joined and have not been handed to the prober yet.
    joined: Mutex<Vec<Arc<Backend>>>,
    joined_signal: tokio::sync::Notify,
}

impl BackendSet {
    pub fn new(metrics: Arc<Metrics>, workers: usize) -> Self {
        BackendSet {
            workers,
            rotation: RwLock::new(Arc::from(Vec::new())),
            draining: Mutex::new(Vec::new()),
            metrics,
            joined: Mutex::new(Vec::new()),
            joined_signal: tokio::sync::Notify::new(),
        }
    }

    /// The backends that joined since the last call, for their first health check.
    pub fn take_joined(&self) -> Vec<Arc<Backend>> {
        std::mem::take(&mut *lock(&self.joined))
    }

    /// Returns once a backend joined since the last [`BackendSet::take_joined`] (at once if one did).
    pub async fn wait_joined(&self) {
        self.joined_signal.notified().await;
    }

    pub fn snapshot(&self) -> Arc<[Arc<Backend>]> {
        read_lock(&self.rotation).clone()
    }

    pub fn draining(&self) -> Vec<Arc<Backend>> {
        let mut d = lock(&self.draining);
        d.retain(|b| {
            let busy = b.in_flight() > 0;
            if !busy {
                self.metrics.forget_backend(&b.label);
            }
            busy
        });
        d.clone()
    }

    /// Replaces the rotation with exactly `wanted` (address, upstream name), keeping the state of
    /// backends that stay. Returns (added, removed) addresses.
    pub fn set_addresses(
        &self,
        wanted: &[(SocketAddr, String)],
    ) -> (Vec<SocketAddr>, Vec<SocketAddr>) {
        let current = self.snapshot();
        let mut next: Vec<Arc<Backend>> = Vec::with_capacity(wanted.len());
        let mut added = Vec::new();
        let mut joined = Vec::new();
        for (addr, upstream) in wanted {
            if next.iter().any(|b| b.addr == *addr) {
                continue;
            }
            if let Some(existing) = current.iter().find(|b| b.addr == *addr) {
                next.push(existing.clone());
                continue;
            }
            // A backend coming back while it still drains keeps its history, but must pass a
            // check again: the address may now be a restarted task.
            let revived = {
                let mut d = lock(&self.draining);
                d.iter()
                    .position(|b| b.addr == *addr)
                    .map(|i| d.swap_remove(i))
            };
            let joining = match revived {
                Some(b) => {
                    b.health.require_check();
                    b
                }
                None => match Backend::new(*addr, upstream, &self.metrics, self.workers) {
                    Ok(mut b) => {
                        // The first backends are the rotation itself, not newcomers to ramp up.
                        if current.is_empty() {
                            b.joined_ms = 0;
                        }
                        Arc::new(b)
                    }
                    Err(e) => {
                        tracing::warn!(%addr, error = %e, "address cannot be used as a backend");
                        continue;
                    }
                },
            };
            next.push(joining.clone());
            joined.push(joining);
            added.push(*addr);
        }
        let mut removed = Vec::new();
        for b in current.iter() {
            if !next.iter().any(|n| n.addr == b.addr) {
                removed.push(b.addr);
                lock(&self.draining).push(b.clone());
            }
        }
        // Stable order makes the rotation predictable: sorted by address.
        next.sort_by_key(|b| b.addr);
        self.metrics
            .backends
            .set(i64::try_from(next.len()).unwrap_or(i64::MAX));
        *write_lock(&self.rotation) = Arc::from(next);
        let _ = self.draining();
        if !joined.is_empty() {
            lock(&self.joined).extend(joined);
            self.joined_signal.notify_one();
        }
        (added, removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn wanted(ports: &[u16]) -> Vec<(SocketAddr, String)> {
        ports
            .iter()
            .map(|p| (addr(*p), "app:5000".into()))
            .collect()
    }

    fn ports(backends: &[Arc<Backend>]) -> Vec<u16> {
        backends.iter().map(|b| b.addr.port()).collect()
    }

    fn pool() -> BackendSet {
        BackendSet::new(Arc::new(Metrics::new()), 2)
    }

    #[test]
    fn new_addresses_join_sorted_and_duplicates_count_once() {
        let p = pool();
        let (added, removed) = p.set_addresses(&wanted(&[3, 1, 2, 1]));
        assert_eq!(added, [addr(3), addr(1), addr(2)]);
        assert!(removed.is_empty());
        assert_eq!(ports(&p.snapshot()), [1, 2, 3]);
        assert_eq!(p.metrics.backends.get(), 3);
        assert_eq!(p.snapshot()[0].host_header, "app:5000");
    }

    #[test]
    fn backends_that_stay_keep_their_state() {
        let p = pool();
        p.set_addresses(&wanted(&[1, 2]));
        let before = p.snapshot()[0].clone();
        before.requests_total.fetch_add(7, Ordering::Relaxed);
        let (added, removed) = p.set_addresses(&wanted(&[1, 2, 3]));
        assert_eq!((added, removed), (vec![addr(3)], vec![]));
        assert!(Arc::ptr_eq(&before, &p.snapshot()[0]));
    }

    #[test]
    fn a_vanished_backend_drains_while_busy_and_is_forgotten_when_idle() {
        let p = pool();
        p.set_addresses(&wanted(&[1, 2]));
        let busy = InFlight::start(p.snapshot()[0].clone());
        let (added, removed) = p.set_addresses(&wanted(&[2]));
        assert_eq!((added, removed), (vec![], vec![addr(1)]));
        assert_eq!(ports(&p.snapshot()), [2]);
        assert_eq!(ports(&p.draining()), [1]);
        drop(busy);
        assert!(p.draining().is_empty());
        // Idle at once: never listed as draining.
        p.set_addresses(&wanted(&[]));
        assert!(p.snapshot().is_empty());
        assert!(p.draining().is_empty());
        assert_eq!(p.metrics.backends.get(), 0);
    }

    #[test]
    fn a_draining_backend_that_comes_back_keeps_its_history() {
        let p = pool();
        p.set_addresses(&wanted(&[1]));
        let first = p.snapshot()[0].clone();
        first.failures_total.fetch_add(3, Ordering::Relaxed);
        let busy = InFlight::start(first.clone());
        p.set_addresses(&wanted(&[]));
        assert_eq!(ports(&p.draining()), [1]);
        let (added, _) = p.set_addresses(&wanted(&[1]));
        assert_eq!(added, [addr(1)]);
        assert!(
            Arc::ptr_eq(&first, &p.snapshot()[0]),
            "revived, not rebuilt"
        );
        assert!(p.draining().is_empty());
        assert_eq!(p.snapshot()[0].failures_total.load(Ordering::Relaxed), 3);
        drop(busy);
    }

    #[test]
    fn joining_backends_are_pending_and_queued_for_their_first_check_once() {
        let p = pool();
        p.set_addresses(&wanted(&[1, 2]));
        assert!(p.snapshot().iter().all(|b| b.health.is_pending()));
        assert_eq!(ports(&p.take_joined()), [1, 2]);
        assert!(p.take_joined().is_empty());
        p.snapshot()[0].health.record_probe(Ok(()));
        // Backends that stay are not queued again and keep their admission.
        p.set_addresses(&wanted(&[1, 2, 3]));
        assert_eq!(ports(&p.take_joined()), [3]);
        assert!(!p.snapshot()[0].health.is_pending());
        assert!(p.snapshot()[2].health.is_pending());
    }

    #[test]
    fn an_address_that_left_and_came_back_is_pending_again() {
        let p = pool();
        p.set_addresses(&wanted(&[1]));
        let first = p.snapshot()[0].clone();
        first.health.record_probe(Ok(()));
        let busy = InFlight::start(first.clone());
        p.set_addresses(&wanted(&[]));
        p.take_joined();
        // Revived while draining: same backend, pending, queued.
        p.set_addresses(&wanted(&[1]));
        assert!(Arc::ptr_eq(&first, &p.snapshot()[0]));
        assert!(first.health.is_pending());
        assert_eq!(ports(&p.take_joined()), [1]);
        drop(busy);
        // Forgotten (idle when it left), then back: a new backend, pending.
        first.health.record_probe(Ok(()));
        p.set_addresses(&wanted(&[]));
        p.set_addresses(&wanted(&[1]));
        assert!(!Arc::ptr_eq(&first, &p.snapshot()[0]));
        assert!(p.snapshot()[0].health.is_pending());
        assert_eq!(ports(&p.take_joined()), [1]);
    }

    #[tokio::test]
    async fn wait_joined_returns_once_a_backend_joined() {
        let p = pool();
        p.set_addresses(&wanted(&[1]));
        // The signal was stored: no wait.
        tokio::time::timeout(std::time::Duration::from_secs(5), p.wait_joined())
            .await
            .expect("joined backend signalled");
        assert_eq!(ports(&p.take_joined()), [1]);
        p.set_addresses(&wanted(&[1]));
        let nothing_new =
            tokio::time::timeout(std::time::Duration::from_millis(50), p.wait_joined()).await;
        assert!(nothing_new.is_err(), "no backend joined, no signal");
    }

    #[test]
    fn an_upstream_name_that_is_no_header_value_is_skipped() {
        let p = pool();
        let (added, _) =
            p.set_addresses(&[(addr(1), "bad\nname".into()), (addr(2), "ok:1".into())]);
        assert_eq!(added, [addr(2)]);
        assert_eq!(ports(&p.snapshot()), [2]);
    }
}
