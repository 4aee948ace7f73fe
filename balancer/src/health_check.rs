//! The active health check: every `--health-interval` each backend gets `GET --health-path` on a
//! fresh connection (never a pooled one, so a probe tests what a new request would meet);
//! anything but 2xx within the interval is a failed probe. A backend that joins the pool is probed
//! at once, not at the next interval, so a new replica that is ready joins within one probe's time.
//! Results go to the backend's [`crate::health::Health`], which decides what they mean.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::backend::{Backend, Pool};
use crate::health::now_ms;

/// Active checks: probes every backend each interval, concurrently, on fresh connections; a
/// backend that joins is probed at once (its first check decides whether it leaves `pending`).
pub async fn run_active_checks(
    pool: Arc<Pool>,
    path: Arc<str>,
    interval: Duration,
    connect_timeout: Duration,
) {
    let timeout = interval.max(connect_timeout);
    tokio::spawn(run_first_checks(
        pool.clone(),
        path.clone(),
        timeout,
        connect_timeout,
    ));
    // Every backend's first probe comes from `run_first_checks`, so the rounds start one interval in.
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let backends = pool.snapshot();
        let mut probes = tokio::task::JoinSet::new();
        for backend in backends.iter().cloned() {
            probes.spawn(check(backend, path.clone(), timeout, connect_timeout));
        }
        while probes.join_next().await.is_some() {}
    }
}

/// Probes each backend that joined the pool as soon as it joins, each on its own.
async fn run_first_checks(
    pool: Arc<Pool>,
    path: Arc<str>,
    timeout: Duration,
    connect_timeout: Duration,
) {
    loop {
        for backend in pool.take_joined() {
            tokio::spawn(check(backend, path.clone(), timeout, connect_timeout));
        }
        pool.wait_joined().await;
    }
}

/// One probe of one backend, its result recorded and any change of state logged.
async fn check(
    backend: Arc<Backend>,
    path: Arc<str>,
    timeout: Duration,
    connect_timeout: Duration,
) {
    let result = match tokio::time::timeout(timeout, probe(&backend, &path, connect_timeout)).await
    {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {timeout:?}")),
    };
    let was_healthy = backend.health.is_healthy_at(now_ms());
    let ok = result.is_ok();
    if backend.health.record_probe(result) {
        tracing::info!(backend = %backend.addr, "backend passed its first health check; joins the rotation");
    } else if was_healthy != ok && !backend.health.is_pending() {
        if ok {
            tracing::info!(backend = %backend.addr, "backend back in rotation");
        } else {
            tracing::warn!(backend = %backend.addr, reason = ?backend.health.reason(), "backend taken out");
        }
    }
}

async fn probe(backend: &Backend, path: &str, connect_timeout: Duration) -> Result<(), String> {
    let stream = tokio::time::timeout(connect_timeout, TcpStream::connect(backend.addr))
        .await
        .map_err(|_| format!("connect timed out after {connect_timeout:?}"))?
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let conn = tokio::spawn(conn);
    let req = Request::get(path)
        .header(header::HOST, backend.host_header.clone())
        .header(header::USER_AGENT, "balancer-health-check")
        .header(header::CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("request: {e}"))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("response: {e}"))?;
    conn.abort();
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("status {}", resp.status().as_u16()))
    }
}
