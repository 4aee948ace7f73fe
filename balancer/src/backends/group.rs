//! An upstream group: one set of backends behind one or more upstream names, with everything that
//! keeps it current and chooses among it — discovery, health state, active probing, 5xx outlier
//! ejection, slow start, selection — and the settings of the connections to its backends.
//!
//! Built from its own [`GroupSettings`], started and stopped as a unit ([`UpstreamGroup::start`]
//! returns the [`Running`] handle whose drop stops its loops), so the balancer holds any number
//! of them: one behind `--upstreams`, or one per `[[upstream]]` of the config file, replaced on a
//! reload only when its settings changed. Nothing in it is global: two groups share no backend,
//! no cursor and no ejection budget.
//!
//! The group also holds each worker's way to its backends (`pools`, one per worker): generic, so
//! the proxy's unit tests give it an in-process upstream; the real one is [`UpstreamPool`].

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::backends::backend::{Backend, BackendSet};
use crate::backends::discovery::{Discovery, UpstreamName};
use crate::backends::health::HealthPolicy;
use crate::backends::outlier::Ejector;
use crate::backends::probe::{self, Probe};
use crate::backends::selection::{Attempts, Balance, Selection};
use crate::backends::sticky::{Pin, Sticky, StickyCookie};
use crate::runtime::clock::now_ms;
use crate::runtime::metrics::Metrics;
use crate::upstream::{UpstreamPool, UpstreamSettings};

/// Everything one group is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSettings {
    /// The names whose addresses are the backends (`--upstreams`).
    pub names: Vec<UpstreamName>,
    /// `--resolve-interval`.
    pub resolve_interval: Duration,
    /// `--health-path`, `--health-interval`, and the protocol and connect timeout of the probes.
    pub probe: Probe,
    /// `--max-fails` and `--fail-timeout`.
    pub policy: HealthPolicy,
    /// `--balance` and `--slow-start`.
    pub balance: Balance,
    pub slow_start: Duration,
    /// `--max-5xx` (0: off).
    pub max_5xx: u32,
    /// How connections to the backends are made (`--connect-timeout`, `--upstream-timeout`,
    /// `--max-idle-per-backend`, `--upstream-protocol`).
    pub connections: UpstreamSettings,
    /// `sticky = { cookie = "NAME" }` (config file only; `None`: no sticky sessions).
    pub sticky: Option<StickyCookie>,
}

/// One upstream group; see the module doc.
pub struct UpstreamGroup<U = UpstreamPool> {
    /// The `[[upstream]]`'s `name` (`default` for `--upstreams`).
    pub name: Arc<str>,
    pub backends: Arc<BackendSet>,
    pub discovery: Arc<Discovery>,
    selection: Selection,
    ejector: Ejector,
    settings: GroupSettings,
    metrics: Arc<Metrics>,
    /// Worker `i`'s connections to the backends.
    pools: Box<[U]>,
    /// The sticky cookie's state, when the group has one.
    sticky: Option<Sticky>,
}

/// A started group's background loops (discovery, probes); dropping it stops them.
pub struct Running {
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops the group's loops (what dropping the handle does, said where it happens).
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl UpstreamGroup {
    /// A group with no backend yet; [`UpstreamGroup::start`] finds them. `workers` is how many
    /// workers keep connections to each backend.
    pub fn new(
        name: Arc<str>,
        settings: GroupSettings,
        metrics: Arc<Metrics>,
        workers: usize,
    ) -> Arc<Self> {
        let pools = (0..workers.max(1))
            .map(|worker| UpstreamPool::new(settings.connections, worker, metrics.upstream.clone()))
            .collect();
        UpstreamGroup::with_pools(name, settings, metrics, pools)
    }
}

impl<U> UpstreamGroup<U> {
    /// A group whose worker `i` sends through `pools[i]` (at least one).
    pub fn with_pools(
        name: Arc<str>,
        settings: GroupSettings,
        metrics: Arc<Metrics>,
        pools: Vec<U>,
    ) -> Arc<Self> {
        let workers = pools.len();
        let backends = Arc::new(BackendSet::new(metrics.clone(), workers));
        let discovery = Arc::new(Discovery::new(
            settings.names.clone(),
            backends.clone(),
            settings.resolve_interval,
        ));
        Arc::new(UpstreamGroup {
            name,
            backends,
            discovery,
            selection: Selection::new(settings.balance, settings.slow_start),
            ejector: Ejector::default(),
            sticky: settings.sticky.as_ref().map(Sticky::new),
            settings,
            metrics,
            pools: pools.into_boxed_slice(),
        })
    }

    /// Resolves the names once, so the first requests already have backends (a name that does
    /// not resolve yet only means 503 until a later round finds it), then starts the discovery
    /// and active health-check loops.
    pub async fn start(self: &Arc<Self>) -> Running {
        self.discovery.resolve_all().await;
        let discovery = tokio::spawn(self.discovery.clone().run(self.settings.resolve_interval));
        let probes = tokio::spawn(probe::run_active_checks(
            self.backends.clone(),
            self.settings.probe.clone(),
        ));
        Running {
            tasks: vec![discovery, probes],
        }
    }

    /// Worker `worker`'s connections to this group's backends.
    pub fn pool(&self, worker: usize) -> &U {
        &self.pools[worker % self.pools.len()]
    }

    /// The backends one request may try, in order, each once.
    pub fn attempts(&self, now_ms: u64) -> Attempts {
        self.selection.attempts(self.backends.snapshot(), now_ms)
    }

    /// [`UpstreamGroup::attempts`] for a request with these headers: on a sticky group the
    /// backend its cookie names first (while in the rotation), with the pin that sets the cookie
    /// on the answer; on any other group exactly `attempts` (one branch).
    pub fn attempts_for(&self, now_ms: u64, headers: &http::HeaderMap) -> (Attempts, Option<Pin>) {
        let Some(sticky) = &self.sticky else {
            return (self.attempts(now_ms), None);
        };
        let backends = self.backends.snapshot();
        let pin = sticky.pin(&backends, headers);
        let attempts = match pin.target() {
            Some(i) => self.selection.attempts_pinned(backends, now_ms, i),
            None => self.selection.attempts(backends, now_ms),
        };
        (attempts, Some(pin))
    }

    /// The sticky cookie's name, when the group has one (for `/status`).
    pub fn sticky_cookie(&self) -> Option<&str> {
        self.sticky.as_ref().map(Sticky::name)
    }

    /// `--max-fails` and `--fail-timeout`.
    pub fn policy(&self) -> HealthPolicy {
        self.settings.policy
    }

    /// The settings the group was built from.
    pub fn settings(&self) -> &GroupSettings {
        &self.settings
    }

    /// `--max-5xx`: counts a backend's answer in its streak and ejects it when the streak is
    /// long enough and the half cap allows.
    pub fn record_status(&self, backend: &Backend, status: u16) {
        if backend.endpoint.stray.take_ejection() {
            self.eject_for_stray(backend);
        }
        let Some(streak) = backend.outlier.record(status, self.settings.max_5xx) else {
            return;
        };
        let fail_timeout = self.settings.policy.fail_timeout;
        if self.try_eject(backend) {
            tracing::warn!(backend = %backend.addr, streak, ?fail_timeout, "backend ejected after consecutive 5xx responses");
        } else {
            tracing::warn!(backend = %backend.addr, streak, "consecutive 5xx, but half of the backends are already ejected: kept");
        }
    }
}

impl<U> UpstreamGroup<U> {
    /// A backend that keeps sending stray bytes (`--stray-quarantine`) is ejected for
    /// --fail-timeout, as `--max-5xx` ejects, under the same half cap.
    fn eject_for_stray(&self, backend: &Backend) {
        let fail_timeout = self.settings.policy.fail_timeout;
        if self.try_eject(backend) {
            tracing::warn!(backend = %backend.addr, ?fail_timeout, "backend ejected: stray bytes again within --stray-quarantine");
        } else {
            tracing::debug!(backend = %backend.addr, "stray bytes again, but half of the backends are already ejected: kept (still quarantined)");
        }
    }

    /// Ejects `backend` for `--fail-timeout` unless half of the group is out already (the one
    /// ejection path of `--max-5xx` and the stray quarantine); counted when it happens.
    fn try_eject(&self, backend: &Backend) -> bool {
        let now = now_ms();
        let fail_timeout = self.settings.policy.fail_timeout;
        let until = now.saturating_add(u64::try_from(fail_timeout.as_millis()).unwrap_or(u64::MAX));
        let all = self.backends.snapshot();
        let outliers = all.iter().map(|b| &b.outlier);
        let ejected = self
            .ejector
            .try_eject(&backend.outlier, outliers, now, until);
        if ejected {
            self.metrics.traffic.ejections.inc();
        }
        ejected
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::backends::discovery::UpstreamName;
    use crate::backends::probe::HealthCheck;
    use crate::upstream::UpstreamProtocol;

    /// One backend on `port` of 127.0.0.1, one-second timers.
    pub(crate) fn settings(port: u16) -> GroupSettings {
        let second = Duration::from_secs(1);
        GroupSettings {
            names: vec![UpstreamName {
                host: "127.0.0.1".into(),
                port,
            }],
            resolve_interval: second,
            probe: Probe {
                check: HealthCheck::Http,
                path: Arc::from("/health"),
                interval: second,
                connect_timeout: second,
                protocol: UpstreamProtocol::Http1,
            },
            policy: HealthPolicy {
                max_fails: 1,
                fail_timeout: second,
            },
            balance: Balance::RoundRobin,
            slow_start: Duration::ZERO,
            max_5xx: 0,
            connections: UpstreamSettings {
                connect_timeout: second,
                upstream_timeout: second,
                max_idle: 1,
                protocol: UpstreamProtocol::Http1,
                keep_alive: second,
                stray_quarantine: Duration::from_secs(60),
            },
            sticky: None,
        }
    }

    #[tokio::test]
    async fn a_group_starts_with_its_backends_and_stops_its_loops() {
        // A port nothing listens on: the backend is known at once, and its first probe fails.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let group = UpstreamGroup::new("g".into(), settings(port), Arc::new(Metrics::new()), 2);
        let running = group.start().await;
        let backends = group.backends.snapshot();
        assert_eq!(backends.len(), 1, "resolved before start returns");
        let backend = backends[0].clone();
        let probed = async {
            while backend.health.last_error().is_none() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(2), probed)
            .await
            .expect("the first probe runs at once");
        assert!(
            backend.health.is_pending(),
            "a refused probe admits nothing"
        );
        let tasks: Vec<_> = running.tasks.iter().map(JoinHandle::abort_handle).collect();
        running.stop();
        tokio::task::yield_now().await;
        assert!(
            tasks.iter().all(|t| t.is_finished()),
            "stop ends every loop"
        );
        // Two groups share nothing: another one starts empty-handed with its own cursor.
        let other = UpstreamGroup::new("h".into(), settings(port), Arc::new(Metrics::new()), 1);
        assert!(other.backends.snapshot().is_empty());
    }

    #[tokio::test]
    async fn a_backend_that_keeps_sending_stray_bytes_is_ejected_under_the_half_cap() {
        let group = UpstreamGroup::new("g".into(), settings(1), Arc::new(Metrics::new()), 1);
        let addrs: Vec<_> = (1..=4)
            .map(|p| {
                (
                    std::net::SocketAddr::from(([127, 0, 0, 1], p)),
                    "g:1".to_owned(),
                )
            })
            .collect();
        group.backends.set_addresses(&addrs);
        let all = group.backends.snapshot();
        let now = now_ms();
        // Once: quarantined, not ejected.
        all[0].endpoint.stray.record(now, 60_000);
        group.record_status(&all[0], 200);
        assert!(!all[0].outlier.is_ejected_at(now_ms()));
        // Again within the quarantine: ejected, as --max-5xx ejects, even with --max-5xx off.
        for b in &all[..3] {
            b.endpoint.stray.record(now, 60_000);
            b.endpoint.stray.record(now, 60_000);
            group.record_status(b, 200);
        }
        let out: Vec<bool> = all
            .iter()
            .map(|b| b.outlier.is_ejected_at(now_ms()))
            .collect();
        assert_eq!(out, [true, true, false, false], "never more than half out");
    }
}
