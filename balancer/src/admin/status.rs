//! `/status`: the backends of every group, the routes, the config file in force and its last
//! reload, the limits, TLS, and the totals the dashboard shows. Read at request time from the
//! live route table, so it always shows the configuration requests are using.

use std::sync::atomic::Ordering;

use serde::Serialize;

use super::reload::ConfigInfo;
use super::Admin;
use crate::backends::backend::Backend;
use crate::backends::discovery::UpstreamStatus;
use crate::backends::group::UpstreamGroup;
use crate::backends::health::LastError;
use crate::backends::selection::{self, MAX_BACKENDS};
use crate::front::tls::{CertInfo, CertStore, ReloadRecord};
use crate::routes::table::Route;
use crate::runtime::clock::now_ms;

/// The `tls` object of `/status`.
#[derive(Serialize)]
struct TlsStatus {
    certificate: CertInfo,
    expires_in_seconds: i64,
    days_left: i64,
    /// Under 14 days left.
    expiry_warning: bool,
    last_reload: Option<ReloadRecord>,
}

fn tls_status(store: &CertStore) -> TlsStatus {
    let expires_in_seconds = store.expires_in(std::time::SystemTime::now());
    let days_left = expires_in_seconds.div_euclid(86_400);
    TlsStatus {
        certificate: store.info(),
        expires_in_seconds,
        days_left,
        expiry_warning: days_left < 14,
        last_reload: store.last_reload(),
    }
}

/// The balance mode and limits in force, for `/status` and the dashboard (the group settings
/// are the flags'; with `--config` each group's own are under `groups`).
#[derive(Serialize)]
pub struct Limits {
    pub balance: &'static str,
    pub slow_start_ms: u64,
    pub max_5xx: u32,
    pub fail_timeout_ms: u64,
    pub max_fails: u32,
    pub rate_limit: Option<String>,
    pub rate_burst: Option<u32>,
    pub rate_limit_clients: u64,
    pub trusted_proxies: String,
    pub max_connections: u64,
    pub drain_api: bool,
    /// `--upstream-protocol`: `http1` or `h2c`.
    pub upstream_protocol: &'static str,
}

#[derive(Serialize)]
pub(super) struct BackendStatus {
    address: String,
    upstream: String,
    /// "active" while in the rotation, "pending" in the rotation until its first passing health
    /// check, "draining" after its address vanished from DNS or once drained through the admin API.
    state: &'static str,
    /// Drained through the admin API.
    drained: bool,
    /// Taken out by `--max-5xx` right now.
    ejected: bool,
    ejections_total: u64,
    healthy: bool,
    reason: Option<String>,
    in_flight: i64,
    requests_total: u64,
    failures_total: u64,
    responses: ResponseClasses,
    last_error: Option<LastError>,
    /// How requests reach it: `http1` or `h2c` (upgrades always go over HTTP/1.1).
    protocol: &'static str,
    /// HTTP/2 streams open on it now (0 with `http1`).
    open_streams: usize,
    /// Connections open to it now (both protocols: upgrades use HTTP/1.1 under `h2c` too).
    upstream_connections: usize,
    /// HTTP/1.1 connections closed because it sent bytes no request asked for.
    stray_bytes_total: u64,
    /// Its connections are not reused right now (`--stray-quarantine`), and for how much longer.
    stray_quarantined: bool,
    stray_quarantine_left_ms: u64,
}

#[derive(Serialize)]
struct ResponseClasses {
    #[serde(rename = "1xx")]
    c1: u64,
    #[serde(rename = "2xx")]
    c2: u64,
    #[serde(rename = "3xx")]
    c3: u64,
    #[serde(rename = "4xx")]
    c4: u64,
    #[serde(rename = "5xx")]
    c5: u64,
}

#[derive(Serialize)]
pub(super) struct Status<'a> {
    /// Every group's backends together.
    backends: Vec<BackendStatus>,
    /// The upstream names of every group and what they resolve to.
    upstreams: Vec<UpstreamStatus>,
    /// Each group with its backends.
    groups: Vec<GroupStatus>,
    /// The routes in force, in the file's order.
    routes: Vec<RouteStatus>,
    /// The config file in force and the last reload (`null` without `--config`).
    config: Option<ConfigInfo>,
    /// Requests no route took (404).
    route_not_found_total: u64,
    healthy_backends: usize,
    /// Backends waiting for their first passing health check (no traffic unless none is healthy).
    pending_backends: usize,
    /// Backends in the rotation that get no traffic because there are more than
    /// `max_backends` (0 normally).
    backends_beyond_limit: usize,
    max_backends: usize,
    requests_total: u64,
    retries_total: u64,
    uptime_seconds: u64,
    /// Present when `--tls-listen` is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<TlsStatus>,
    limits: &'a Limits,
    connections: i64,
    rate_limited_total: u64,
    rate_limit_clients: usize,
    ejections_total: u64,
    local_responses: ResponseClasses,
    /// HTTP/2 streams the backends refused unprocessed, and reset after the request went out.
    upstream_streams_refused_total: u64,
    upstream_streams_reset_total: u64,
    /// Each `--acme-domain` name: its certificate, issuer, expiry, last ACME error.
    #[serde(skip_serializing_if = "Option::is_none")]
    acme: Option<Vec<crate::acme::certs::NameStatus>>,
}

fn backend_status(
    b: &Backend,
    in_rotation: bool,
    now: u64,
    protocol: &'static str,
) -> BackendStatus {
    let c = &b.metrics.by_class;
    let drained = b.is_drained();
    let ejected = b.outlier.is_ejected_at(now);
    let state = if !in_rotation || drained {
        "draining"
    } else if b.health.is_pending() {
        "pending"
    } else {
        "active"
    };
    BackendStatus {
        address: b.label.clone(),
        upstream: b.upstream.clone(),
        state,
        drained,
        ejected,
        ejections_total: b.outlier.ejections(),
        healthy: state == "active" && b.in_rotation_at(now),
        reason: if !in_rotation {
            Some("address no longer resolves; finishing in-flight requests".into())
        } else if drained {
            Some("drained through the admin API; finishing in-flight requests".into())
        } else if ejected && b.health.is_healthy_at(now) {
            Some("ejected: consecutive 5xx responses (--max-5xx)".into())
        } else {
            b.health.reason()
        },
        in_flight: b.in_flight(),
        requests_total: b.requests_total.load(Ordering::Relaxed),
        failures_total: b.failures_total.load(Ordering::Relaxed),
        responses: classes(c),
        last_error: b.health.last_error(),
        protocol,
        open_streams: b.endpoint.h2.open_streams(),
        upstream_connections: b.endpoint.connections(),
        stray_bytes_total: b.endpoint.stray.total(),
        stray_quarantined: b.endpoint.stray.is_quarantined(|| now),
        stray_quarantine_left_ms: b.endpoint.stray.quarantined_until().saturating_sub(now),
    }
}

fn classes(c: &[prometheus_client::metrics::counter::Counter; 5]) -> ResponseClasses {
    ResponseClasses {
        c1: c[0].get(),
        c2: c[1].get(),
        c3: c[2].get(),
        c4: c[3].get(),
        c5: c[4].get(),
    }
}

/// One group of `/status`.
#[derive(Serialize)]
struct GroupStatus {
    name: String,
    balance: &'static str,
    protocol: &'static str,
    backends: Vec<BackendStatus>,
    /// The sticky cookie's name when the group has `sticky` (`null` otherwise).
    sticky_cookie: Option<String>,
}

/// One route of `/status`.
#[derive(Serialize)]
struct RouteStatus {
    name: String,
    host: Option<String>,
    path: String,
    strip_prefix: bool,
    upstreams: Vec<Target>,
    requests: u64,
    /// `compress`: its codecs in order of preference, minimum size, levels; `null` when off.
    compress: Option<CompressStatus>,
}

#[derive(Serialize)]
struct CompressStatus {
    codecs: Vec<&'static str>,
    min_size: u64,
    levels: std::collections::BTreeMap<&'static str, i32>,
}

fn compress_status(c: &crate::policy::compress::Compress) -> CompressStatus {
    use crate::policy::compress::Codec;
    CompressStatus {
        codecs: c.codecs.iter().map(|codec| codec.token()).collect(),
        min_size: c.min_size,
        levels: Codec::ALL
            .map(|codec| (codec.token(), c.level(codec)))
            .into(),
    }
}

#[derive(Serialize)]
struct Target {
    name: String,
    weight: u32,
}

fn route_status(route: &Route) -> RouteStatus {
    let spec = &route.spec;
    RouteStatus {
        name: spec.name.to_string(),
        host: match spec.rule.host {
            crate::routes::matcher::HostPattern::Any => None,
            ref host => Some(host.to_string()),
        },
        path: spec.rule.path.to_string(),
        strip_prefix: spec.strip_prefix,
        upstreams: spec
            .targets
            .iter()
            .map(|t| Target {
                name: t.upstream.to_string(),
                weight: t.weight,
            })
            .collect(),
        requests: route.requests.get(),
        compress: spec.policy.compress.as_ref().map(compress_status),
    }
}

/// A group's backends: those in the rotation, then those finishing their requests.
fn group_backends(group: &UpstreamGroup, now: u64) -> Vec<BackendStatus> {
    let protocol = group.settings().connections.protocol.name();
    let mut backends: Vec<BackendStatus> = group
        .backends
        .snapshot()
        .iter()
        .map(|b| backend_status(b, true, now, protocol))
        .collect();
    backends.extend(
        group
            .backends
            .draining()
            .iter()
            .map(|b| backend_status(b, false, now, protocol)),
    );
    backends
}

impl Admin {
    pub(super) fn status(&self) -> Status<'_> {
        let now = now_ms();
        let table = self.routes.load_full();
        let groups: Vec<GroupStatus> = table
            .groups()
            .iter()
            .map(|g| GroupStatus {
                name: g.name.to_string(),
                balance: g.settings().balance.name(),
                protocol: g.settings().connections.protocol.name(),
                backends: group_backends(g, now),
                sticky_cookie: g.sticky_cookie().map(str::to_owned),
            })
            .collect();
        let backends: Vec<BackendStatus> = table
            .groups()
            .iter()
            .flat_map(|g| group_backends(g, now))
            .collect();
        let local: u64 = self.metrics.local.iter().map(|c| c.get()).sum();
        let active = table
            .groups()
            .iter()
            .map(|g| g.backends.snapshot().len())
            .max()
            .unwrap_or(0);
        Status {
            healthy_backends: backends.iter().filter(|b| b.healthy).count(),
            pending_backends: backends.iter().filter(|b| b.state == "pending").count(),
            backends_beyond_limit: selection::beyond_limit(active),
            max_backends: MAX_BACKENDS,
            requests_total: local + backends.iter().map(|b| b.requests_total).sum::<u64>(),
            retries_total: self.metrics.retries.get(),
            backends,
            upstreams: table
                .groups()
                .iter()
                .flat_map(|g| g.discovery.status())
                .collect(),
            groups,
            routes: table.routes().iter().map(route_status).collect(),
            config: self.config.as_ref().map(|c| c.get()),
            route_not_found_total: self.metrics.routes.not_found.get(),
            uptime_seconds: self.started.elapsed().as_secs(),
            limits: &self.limits,
            connections: self.metrics.traffic.connections.get(),
            rate_limited_total: self.metrics.traffic.rate_limited.get(),
            rate_limit_clients: self.rules.limiter.as_ref().map_or(0, |l| l.clients()),
            ejections_total: self.metrics.traffic.ejections.get(),
            local_responses: classes(&self.metrics.local),
            upstream_streams_refused_total: self.metrics.upstream.streams_refused.get(),
            upstream_streams_reset_total: self.metrics.upstream.streams_reset.get(),
            tls: self.tls.as_deref().map(tls_status),
            acme: self.acme.as_ref().map(|a| a.status()),
        }
    }

    pub(super) fn refresh_gauges(&self) {
        let now = now_ms();
        let mut pending = 0;
        let mut known = 0;
        let table = self.routes.load_full();
        for group in table.groups() {
            known += group.backends.snapshot().len();
            for b in group.backends.snapshot().iter() {
                b.metrics
                    .healthy
                    .set(i64::from(b.health.is_healthy_at(now)));
                pending += i64::from(b.health.is_pending());
            }
            let _ = group.backends.draining();
        }
        self.metrics.pending.set(pending);
        // Each group sets the gauge to its own count as it changes; with several, the sum counts.
        self.metrics
            .backends
            .set(i64::try_from(known).unwrap_or(i64::MAX));
        if let Some(limiter) = &self.rules.limiter {
            let clients = i64::try_from(limiter.clients()).unwrap_or(i64::MAX);
            self.metrics.traffic.rate_limit_clients.set(clients);
        }
    }
}
