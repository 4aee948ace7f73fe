//! Backend health: passive marks from real traffic and active probes.
//!
//! Passive: a connect failure, connect timeout, upstream timeout or broken response is a failure;
//! `--max-fails` of them within `--fail-timeout` take the backend out for `--fail-timeout` (the
//! NGINX `max_fails`/`fail_timeout` rule). Active: every `--health-interval` each backend gets
//! `GET --health-path` on a fresh connection; anything but 2xx in time takes it out and a pass
//! brings it back (and clears passive marks, since it proves the backend answers again).
//!
//! The request path reads health through two atomics; the mutex is only taken on failures and
//! probe results.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{header, Request};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::backend::{Backend, Pool};

/// Milliseconds since the process started, used for cheap atomic timestamps.
pub fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[derive(Debug, Clone, Copy)]
pub struct HealthPolicy {
    pub max_fails: u32,
    pub fail_timeout: Duration,
}

#[derive(Default)]
pub struct Health {
    /// Passive mark: out until this many ms since start (0 = not out).
    passive_out_until: AtomicU64,
    active_down: AtomicBool,
    detail: Mutex<HealthDetail>,
}

#[derive(Default)]
struct HealthDetail {
    recent_failures: VecDeque<Instant>,
    active_reason: Option<String>,
    passive_reason: Option<String>,
    last_error: Option<(String, SystemTime)>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct LastError {
    pub message: String,
    pub unix_ms: u64,
}

impl Health {
    pub fn is_healthy_at(&self, now_ms: u64) -> bool {
        !self.active_down.load(Ordering::Relaxed)
            && now_ms >= self.passive_out_until.load(Ordering::Relaxed)
    }

    /// Records a failed exchange with the backend; returns true if it took the backend out.
    pub fn record_failure(&self, policy: &HealthPolicy, what: &str) -> bool {
        let now = Instant::now();
        let mut d = lock(&self.detail);
        d.last_error = Some((what.to_owned(), SystemTime::now()));
        while d
            .recent_failures
            .front()
            .is_some_and(|t| now.duration_since(*t) > policy.fail_timeout)
        {
            d.recent_failures.pop_front();
        }
        d.recent_failures.push_back(now);
        let max = usize::try_from(policy.max_fails).unwrap_or(usize::MAX);
        if d.recent_failures.len() >= max {
            let n = d.recent_failures.len();
            d.recent_failures.clear();
            d.passive_reason = Some(format!(
                "{n} failure(s) within {:?}, last: {what}",
                policy.fail_timeout
            ));
            let until = now_ms()
                .saturating_add(u64::try_from(policy.fail_timeout.as_millis()).unwrap_or(u64::MAX));
            self.passive_out_until.store(until, Ordering::Relaxed);
            return true;
        }
        false
    }

    pub fn record_probe(&self, result: Result<(), String>) {
        let mut d = lock(&self.detail);
        match result {
            Ok(()) => {
                d.active_reason = None;
                d.passive_reason = None;
                d.recent_failures.clear();
                self.passive_out_until.store(0, Ordering::Relaxed);
                self.active_down.store(false, Ordering::Relaxed);
            }
            Err(reason) => {
                d.last_error = Some((reason.clone(), SystemTime::now()));
                d.active_reason = Some(reason);
                self.active_down.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Why the backend is out, if it is.
    pub fn reason(&self) -> Option<String> {
        let d = lock(&self.detail);
        if self.active_down.load(Ordering::Relaxed) {
            return d
                .active_reason
                .as_ref()
                .map(|r| format!("health check failed: {r}"));
        }
        if now_ms() < self.passive_out_until.load(Ordering::Relaxed) {
            return d
                .passive_reason
                .as_ref()
                .map(|r| format!("passive: {r}"))
                .or_else(|| Some("passive: failing".into()));
        }
        None
    }

    pub fn last_error(&self) -> Option<LastError> {
        let d = lock(&self.detail);
        d.last_error.as_ref().map(|(message, at)| LastError {
            message: message.clone(),
            unix_ms: at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        })
    }
}

/// A poisoned lock only means another thread panicked mid-update of plain data; keep going.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

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
