//! The active health check: every `--health-interval` each backend gets `GET --health-path` on a
//! fresh connection (never a pooled one, so a probe tests what a new request would meet);
//! anything but 2xx within the interval is a failed probe. Results go to the backend's
//! [`crate::health::Health`], which decides what they mean.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::backend::{Backend, Pool};
use crate::health::now_ms;

/// Active checks: probes every backend each interval, concurrently, on fresh connections.
pub async fn run_active_checks(
    pool: Arc<Pool>,
    path: Arc<str>,
    interval: Duration,
    connect_timeout: Duration,
) {
    let timeout = interval.max(connect_timeout);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let backends = pool.snapshot();
        let mut probes = tokio::task::JoinSet::new();
        for backend in backends.iter().cloned() {
            let path = path.clone();
            probes.spawn(async move {
                let result = match tokio::time::timeout(
                    timeout,
                    probe(&backend, &path, connect_timeout),
                )
                .await
                {
                    Ok(r) => r,
                    Err(_) => Err(format!("no answer within {timeout:?}")),
                };
                let was_healthy = backend.health.is_healthy_at(now_ms());
                let ok = result.is_ok();
                backend.health.record_probe(result);
                if was_healthy != ok {
                    if ok {
                        tracing::info!(backend = %backend.addr, "backend back in rotation");
                    } else {
                        tracing::warn!(backend = %backend.addr, reason = ?backend.health.reason(), "backend taken out");
                    }
                }
            });
        }
        while probes.join_next().await.is_some() {}
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
