//! The admin listener: `/metrics` (Prometheus text) and `/status` (JSON).
//!
//! Served only on `--admin-listen`, never on the public port, so operators can keep it on
//! loopback or an internal network. Health gauges are refreshed at scrape time because passive
//! marks expire by the clock, without an event to update them.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::shutdown::Drain;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use tokio::net::TcpListener;

use crate::backend::{Backend, Pool};
use crate::discovery::{Discovery, UpstreamStatus};
use crate::health::{now_ms, LastError};
use crate::metrics::Metrics;
use crate::selection::{self, MAX_BACKENDS};

pub struct Admin {
    pub pool: Arc<Pool>,
    pub discovery: Arc<Discovery>,
    pub metrics: Arc<Metrics>,
    pub started: std::time::Instant,
}

#[derive(Serialize)]
struct BackendStatus {
    address: String,
    upstream: String,
    /// "active" while in the rotation, "pending" in the rotation until its first passing health
    /// check, "draining" after its address vanished from DNS.
    state: &'static str,
    healthy: bool,
    reason: Option<String>,
    in_flight: i64,
    requests_total: u64,
    failures_total: u64,
    responses: ResponseClasses,
    last_error: Option<LastError>,
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
struct Status {
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
}

fn backend_status(b: &Backend, state: &'static str, now: u64) -> BackendStatus {
    let c = &b.metrics.by_class;
    BackendStatus {
        address: b.label.clone(),
        upstream: b.upstream.clone(),
        state,
        healthy: state == "active" && b.health.is_healthy_at(now),
        reason: if state == "draining" {
            Some("address no longer resolves; finishing in-flight requests".into())
        } else {
            b.health.reason()
        },
        in_flight: b.in_flight(),
        requests_total: b.requests_total.load(Ordering::Relaxed),
        failures_total: b.failures_total.load(Ordering::Relaxed),
        responses: ResponseClasses {
            c1: c[0].get(),
            c2: c[1].get(),
            c3: c[2].get(),
            c4: c[3].get(),
            c5: c[4].get(),
        },
        last_error: b.health.last_error(),
    }
}

/// A backend in the rotation is "pending" until its first passing health check, then "active".
fn rotation_state(b: &Backend) -> &'static str {
    if b.health.is_pending() {
        "pending"
    } else {
        "active"
    }
}

impl Admin {
    fn status(&self) -> Status {
        let now = now_ms();
        let mut backends: Vec<BackendStatus> = self
            .pool
            .snapshot()
            .iter()
            .map(|b| backend_status(b, rotation_state(b), now))
            .collect();
        backends.extend(
            self.pool
                .draining()
                .iter()
                .map(|b| backend_status(b, "draining", now)),
        );
        let local: u64 = self.metrics.local.iter().map(|c| c.get()).sum();
        let active = backends.iter().filter(|b| b.state != "draining").count();
        Status {
            healthy_backends: backends.iter().filter(|b| b.healthy).count(),
            pending_backends: backends.iter().filter(|b| b.state == "pending").count(),
            backends_beyond_limit: selection::beyond_limit(active),
            max_backends: MAX_BACKENDS,
            requests_total: local + backends.iter().map(|b| b.requests_total).sum::<u64>(),
            retries_total: self.metrics.retries.get(),
            backends,
            upstreams: self.discovery.status(),
            uptime_seconds: self.started.elapsed().as_secs(),
        }
    }

    fn refresh_gauges(&self) {
        let now = now_ms();
        let mut pending = 0;
        for b in self.pool.snapshot().iter() {
            b.metrics
                .healthy
                .set(i64::from(b.health.is_healthy_at(now)));
            pending += i64::from(b.health.is_pending());
        }
        self.metrics.pending.set(pending);
        let _ = self.pool.draining();
    }

    fn respond(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
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
            "/" => crate::dashboard::response(),
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
