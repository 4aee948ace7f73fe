//! The admin listener: `/metrics` (Prometheus text), `/status` (JSON), the dashboard, and the
//! token-guarded drain calls of [`crate::admin::drain`].
//!
//! Served only on `--admin-listen`, never on the public port, so operators can keep it on
//! loopback or an internal network. Health gauges are refreshed at scrape time because passive
//! marks expire by the clock, without an event to update them.

pub mod dashboard;
pub mod drain;

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::runtime::shutdown::Drain;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use tokio::net::TcpListener;

use crate::backends::backend::Backend;
use crate::backends::discovery::UpstreamStatus;
use crate::backends::group::UpstreamGroup;
use crate::backends::health::LastError;
use crate::backends::selection::{self, MAX_BACKENDS};
use crate::front::tls::{CertInfo, CertStore, ReloadRecord};
use crate::runtime::clock::now_ms;
use crate::runtime::metrics::Metrics;
use crate::traffic::TrafficRules;

pub struct Admin {
    /// The upstream group `/status` shows and the drain calls act on.
    pub group: Arc<UpstreamGroup>,
    pub metrics: Arc<Metrics>,
    pub started: std::time::Instant,
    pub limits: Limits,
    pub rules: Arc<TrafficRules>,
    /// `--admin-token` (`BALANCER_ADMIN_TOKEN`) for the POST calls.
    pub token: Option<String>,
    /// The served certificate, when `--tls-listen` is set.
    pub tls: Option<Arc<CertStore>>,
}

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

/// The balance mode and limits in force, for `/status` and the dashboard.
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
struct BackendStatus {
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
struct Status<'a> {
    backends: Vec<BackendStatus>,
    upstreams: Vec<UpstreamStatus>,
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

impl Admin {
    fn status(&self) -> Status<'_> {
        let now = now_ms();
        let mut backends: Vec<BackendStatus> = self
            .group
            .backends
            .snapshot()
            .iter()
            .map(|b| backend_status(b, true, now, self.limits.upstream_protocol))
            .collect();
        backends.extend(
            self.group
                .backends
                .draining()
                .iter()
                .map(|b| backend_status(b, false, now, self.limits.upstream_protocol)),
        );
        let local: u64 = self.metrics.local.iter().map(|c| c.get()).sum();
        let active = self.group.backends.snapshot().len();
        Status {
            healthy_backends: backends.iter().filter(|b| b.healthy).count(),
            pending_backends: backends.iter().filter(|b| b.state == "pending").count(),
            backends_beyond_limit: selection::beyond_limit(active),
            max_backends: MAX_BACKENDS,
            requests_total: local + backends.iter().map(|b| b.requests_total).sum::<u64>(),
            retries_total: self.metrics.retries.get(),
            backends,
            upstreams: self.group.discovery.status(),
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
        }
    }

    fn refresh_gauges(&self) {
        let now = now_ms();
        let mut pending = 0;
        for b in self.group.backends.snapshot().iter() {
            b.metrics
                .healthy
                .set(i64::from(b.health.is_healthy_at(now)));
            pending += i64::from(b.health.is_pending());
        }
        self.metrics.pending.set(pending);
        let _ = self.group.backends.draining();
        if let Some(limiter) = &self.rules.limiter {
            let clients = i64::try_from(limiter.clients()).unwrap_or(i64::MAX);
            self.metrics.traffic.rate_limit_clients.set(clients);
        }
    }

    /// The drain API's answer to a request under `/backends/`.
    fn drain(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        let a = drain::respond(
            req.method(),
            req.uri().path(),
            req.headers().get(header::AUTHORIZATION),
            self.token.as_deref(),
            &self.group.backends,
        );
        let content_type = if a.status == StatusCode::OK {
            "application/json"
        } else {
            "text/plain; charset=utf-8"
        };
        let mut resp = with_type(a.status, a.body, content_type);
        if a.challenge {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }

    fn respond(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        if req.uri().path().starts_with("/backends/") {
            return self.drain(req);
        }
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return text(
                StatusCode::METHOD_NOT_ALLOWED,
                "405 Method Not Allowed\n".into(),
            );
        }
        match req.uri().path() {
            "/metrics" => {
                self.refresh_gauges();
                match self.metrics.encode() {
                    Ok(body) => with_type(
                        StatusCode::OK,
                        body,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    ),
                    Err(_) => text(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "encoding failed\n".into(),
                    ),
                }
            }
            "/status" => match serde_json::to_string_pretty(&self.status()) {
                Ok(body) => with_type(StatusCode::OK, body, "application/json"),
                Err(_) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "encoding failed\n".into(),
                ),
            },
            "/" => crate::admin::dashboard::response(),
            _ => text(StatusCode::NOT_FOUND, "404 Not Found\n".into()),
        }
    }
}

fn with_type(
    status: StatusCode,
    body: String,
    content_type: &'static str,
) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    with_type(status, body, "text/plain; charset=utf-8")
}

pub async fn serve(
    listener: TcpListener,
    admin: Arc<Admin>,
    drain: &Drain,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            biased;
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let admin = admin.clone();
        let service = service_fn(move |req: Request<Incoming>| {
            let resp = admin.respond(&req);
            async move { Ok::<_, Infallible>(resp) }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(std::time::Duration::from_secs(10))
            .serve_connection(TokioIo::new(stream), service);
        let watch = drain.watcher();
        tokio::spawn(async move {
            let _ = watch.serve(conn, |c| c.graceful_shutdown()).await;
        });
    }
}

/// `balancer healthcheck`: exit 0 only if the admin listener answers `GET /status` with 200
/// within 3 s (the images ship without curl, so the binary checks itself).
pub fn healthcheck(admin_listen: std::net::SocketAddr) -> i32 {
    let addr = shared::healthcheck::target(admin_listen);
    match shared::healthcheck::check(addr, "/status", HEALTHCHECK_TIMEOUT) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("balancer healthcheck: admin listener {addr} did not answer: {e}");
            1
        }
    }
}

const HEALTHCHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);
