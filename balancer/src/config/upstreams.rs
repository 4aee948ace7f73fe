//! The upstream group's settings: which names, how they are resolved and probed, when a backend
//! is out, how one is chosen, and how connections to them are made. [`UpstreamConfig::group`]
//! turns them into the group's own [`GroupSettings`].

use std::sync::Arc;
use std::time::Duration;

use shared::duration::{within, DAY, HOUR};
use shared::{count, setting::Within};

use crate::backends::discovery::UpstreamName;
use crate::backends::group::GroupSettings;
use crate::backends::health::HealthPolicy;
use crate::backends::probe::{HealthCheck, Probe};
use crate::backends::selection::Balance;
use crate::upstream::{UpstreamProtocol, UpstreamSettings};

/// One upstream group, from `--upstreams` and the flags around it.
#[derive(Debug, Clone, clap::Args)]
pub struct UpstreamConfig {
    /// Comma-separated `host:port` upstream names; every address a name resolves to is a backend
    /// (e.g. `web:8080`). Not with --config.
    #[arg(long, env = "BALANCER_UPSTREAMS", value_name = "HOST:PORT,...", default_value = "app:5000", value_parser = parse_upstreams)]
    pub upstreams: Upstreams,

    /// How often every upstream name is resolved again.
    #[arg(long, env = "BALANCER_RESOLVE_INTERVAL", value_name = "DURATION", default_value = "2s", value_parser = interval())]
    pub resolve_interval: Duration,

    /// What the active health check asks: `http` (`GET --health-path`, a 2xx passes, in the
    /// traffic's protocol), `grpc` (`grpc.health.v1.Health/Check` over h2c, `SERVING` passes) or
    /// `tcp` (the connection alone).
    #[arg(long, env = "BALANCER_HEALTH_CHECK", value_name = "KIND", value_enum, default_value_t = HealthCheck::Http)]
    pub health_check: HealthCheck,

    /// Path of the active health check (GET).
    #[arg(long, env = "BALANCER_HEALTH_PATH", value_name = "PATH", default_value = "/health", value_parser = parse_health_path)]
    pub health_path: String,

    /// How often each backend is health-checked on a fresh connection.
    #[arg(long, env = "BALANCER_HEALTH_INTERVAL", value_name = "DURATION", default_value = "2s", value_parser = interval())]
    pub health_interval: Duration,

    /// Failures within --fail-timeout that take a backend out.
    #[arg(long, env = "BALANCER_MAX_FAILS", value_name = "COUNT", default_value_t = 1, value_parser = count::within(1u32, 1_000_000))]
    pub max_fails: u32,

    /// Window for counting failures, and how long a failing backend stays out.
    #[arg(long, env = "BALANCER_FAIL_TIMEOUT", value_name = "DURATION", default_value = "10s", value_parser = timeout())]
    pub fail_timeout: Duration,

    /// Time allowed to open a connection to a backend.
    #[arg(long, env = "BALANCER_CONNECT_TIMEOUT", default_value = "2s", value_parser = timeout(),
          value_name = "DURATION", help_heading = "Timeouts and limits")]
    pub connect_timeout: Duration,

    /// Time allowed for a backend's response head once the request is sent.
    #[arg(long, env = "BALANCER_UPSTREAM_TIMEOUT", default_value = "60s",
          value_parser = within(Duration::from_millis(1), DAY), value_name = "DURATION", help_heading = "Timeouts and limits")]
    pub upstream_timeout: Duration,

    /// Idle keep-alive connections kept per backend by each worker (like NGINX's `keepalive`,
    /// which counts per worker process).
    #[arg(long, env = "BALANCER_MAX_IDLE_PER_BACKEND", default_value_t = 256,
          value_parser = count::within(0usize, 100_000), value_name = "COUNT", help_heading = "Timeouts and limits")]
    pub max_idle_per_backend: usize,

    /// How requests reach the replicas: `http1` (pooled keep-alive HTTP/1.1 connections) or `h2c`
    /// (HTTP/2 with prior knowledge: one multiplexed connection per backend per worker, every
    /// response tied to its request by its stream). Upgrades (WebSocket) always use HTTP/1.1.
    #[arg(long, env = "BALANCER_UPSTREAM_PROTOCOL", value_name = "PROTOCOL", value_enum, default_value_t = UpstreamProtocol::Http1)]
    pub upstream_protocol: UpstreamProtocol,

    /// How a request's first backend is chosen: `round-robin`, or `least-request` (power of two
    /// choices over in-flight requests).
    #[arg(long, env = "BALANCER_BALANCE", value_name = "MODE", value_enum, default_value_t = Balance::RoundRobin)]
    pub balance: Balance,

    /// A backend that joins or comes back ramps its share linearly from 5 % to full over this
    /// window (`0s` = off).
    #[arg(long, env = "BALANCER_SLOW_START", value_name = "DURATION", default_value = "0s", value_parser = within(Duration::ZERO, HOUR))]
    pub slow_start: Duration,

    /// Consecutive 5xx responses that take a backend out for --fail-timeout (0 = off); never
    /// more than half of the backends are out for this at once.
    #[arg(long = "max-5xx", env = "BALANCER_MAX_5XX", value_name = "COUNT", default_value_t = 0,
          value_parser = count::within(0u32, 10_000))]
    pub max_5xx: u32,

    /// After a backend sent bytes no request asked for on an HTTP/1.1 connection (a stray
    /// response), how long its connections are not reused: one request per connection (`0` = off).
    /// Doing it again within that period after it ejects the backend as --max-5xx does.
    #[arg(long, env = "BALANCER_STRAY_QUARANTINE", value_name = "DURATION", default_value = "60s",
          value_parser = within(Duration::ZERO, DAY))]
    pub stray_quarantine: Duration,
}

/// The range of `--resolve-interval` and `--health-interval`: not so short that it spins.
fn interval() -> Within<Duration> {
    within(Duration::from_millis(10), HOUR)
}

/// The range of `--fail-timeout` and `--connect-timeout`.
fn timeout() -> Within<Duration> {
    within(Duration::from_millis(1), HOUR)
}

impl UpstreamConfig {
    /// The group these flags describe.
    pub fn group(&self) -> GroupSettings {
        GroupSettings {
            names: self.upstreams.0.clone(),
            resolve_interval: self.resolve_interval,
            probe: Probe {
                check: self.health_check,
                path: Arc::from(self.health_path.as_str()),
                interval: self.health_interval,
                connect_timeout: self.connect_timeout,
                protocol: self.upstream_protocol,
            },
            policy: HealthPolicy {
                max_fails: self.max_fails,
                fail_timeout: self.fail_timeout,
            },
            balance: self.balance,
            slow_start: self.slow_start,
            max_5xx: self.max_5xx,
            connections: UpstreamSettings {
                connect_timeout: self.connect_timeout,
                upstream_timeout: self.upstream_timeout,
                max_idle: self.max_idle_per_backend,
                protocol: self.upstream_protocol,
                keep_alive: self.health_interval,
                stray_quarantine: self.stray_quarantine,
            },
            sticky: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstreams(pub Vec<UpstreamName>);

pub(super) fn parse_upstreams(raw: &str) -> Result<Upstreams, String> {
    let mut out = Vec::new();
    for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let upstream = parse_upstream(entry)?;
        if !out.contains(&upstream) {
            out.push(upstream);
        }
    }
    if out.is_empty() {
        return Err("expected at least one host:port".into());
    }
    Ok(Upstreams(out))
}

pub(super) fn parse_upstream(entry: &str) -> Result<UpstreamName, String> {
    let (host, port) = entry
        .rsplit_once(':')
        .ok_or_else(|| format!("`{entry}` is not host:port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty()
        || host
            .chars()
            .any(|c| c.is_whitespace() || c == '/' || c == '@')
    {
        return Err(format!("`{entry}` has no valid host"));
    }
    let port: u16 = port
        .parse()
        .map_err(|_| format!("`{entry}` has no valid port"))?;
    if port == 0 {
        return Err(format!("`{entry}` has port 0"));
    }
    Ok(UpstreamName {
        host: host.to_owned(),
        port,
    })
}

pub(super) fn parse_health_path(raw: &str) -> Result<String, String> {
    if !raw.starts_with('/') || raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("`{raw}` must be an absolute path like /health"));
    }
    http::uri::PathAndQuery::try_from(raw).map_err(|e| format!("`{raw}`: {e}"))?;
    Ok(raw.to_owned())
}
