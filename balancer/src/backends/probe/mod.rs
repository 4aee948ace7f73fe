//! The active health check: every `--health-interval` each backend is probed on a fresh
//! connection (never a pooled one, so a probe tests what a new request would meet); anything but
//! a pass within the interval is a failed probe. A backend that joins the pool is probed at once,
//! not at the next interval, so a new replica that is ready joins within one probe's time.
//! What a probe is (`--health-check`, [`HealthCheck`]):
//! - `http`: `GET --health-path`, passed by a 2xx, in the protocol the traffic uses
//!   (`--upstream-protocol`: HTTP/1.1 or h2c);
//! - `grpc`: the standard `grpc.health.v1.Health/Check` over h2c ([`grpc`]), passed by `SERVING`;
//! - `tcp`: the connection alone.
//!
//! Results go to the backend's [`crate::backends::health::Health`], which decides what they mean.

mod grpc;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, Version};
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::backends::backend::{Backend, BackendSet};
use crate::runtime::clock::now_ms;
use crate::upstream::UpstreamProtocol;

/// `--health-check`: what a probe asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HealthCheck {
    /// `GET --health-path`, any 2xx passes.
    Http,
    /// `grpc.health.v1.Health/Check` over h2c, `SERVING` passes.
    Grpc,
    /// The TCP connection alone.
    Tcp,
}

impl HealthCheck {
    pub fn name(self) -> &'static str {
        match self {
            HealthCheck::Http => "http",
            HealthCheck::Grpc => "grpc",
            HealthCheck::Tcp => "tcp",
        }
    }
}

/// How a probe is made: what it asks (`--health-check`) and, for `http`, in the protocol of the
/// traffic (`--upstream-protocol`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    pub check: HealthCheck,
    pub path: Arc<str>,
    pub interval: Duration,
    pub connect_timeout: Duration,
    pub protocol: UpstreamProtocol,
}

/// Active checks: probes every backend each interval, concurrently, on fresh connections; a
/// backend that joins is probed at once (its first check decides whether it leaves `pending`).
pub async fn run_active_checks(pool: Arc<BackendSet>, probe: Probe) {
    let interval = probe.interval;
    let probe = Arc::new(probe);
    tokio::spawn(run_first_checks(pool.clone(), probe.clone()));
    // Every backend's first probe comes from `run_first_checks`, so the rounds start one interval in.
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let backends = pool.snapshot();
        let mut probes = tokio::task::JoinSet::new();
        for backend in backends.iter().cloned() {
            probes.spawn(check(backend, probe.clone()));
        }
        while probes.join_next().await.is_some() {}
    }
}

/// Probes each backend that joined the pool as soon as it joins, each on its own.
async fn run_first_checks(pool: Arc<BackendSet>, probe: Arc<Probe>) {
    loop {
        for backend in pool.take_joined() {
            tokio::spawn(check(backend, probe.clone()));
        }
        pool.wait_joined().await;
    }
}

/// One probe of one backend, its result recorded and any change of state logged.
async fn check(backend: Arc<Backend>, probe: Arc<Probe>) {
    let timeout = probe.interval.max(probe.connect_timeout);
    let result = match tokio::time::timeout(timeout, send_probe(&backend, &probe)).await {
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

async fn send_probe(backend: &Backend, probe: &Probe) -> Result<(), String> {
    let stream = crate::upstream::connect::connect(backend.addr, probe.connect_timeout).await?;
    let io = TokioIo::new(stream);
    match probe.check {
        HealthCheck::Tcp => Ok(()),
        HealthCheck::Grpc => grpc::check(backend, io).await,
        HealthCheck::Http => http_check(backend, probe, io).await,
    }
}

/// `GET --health-path` on `io`, in the traffic's protocol: a 2xx passes.
async fn http_check(
    backend: &Backend,
    probe: &Probe,
    io: TokioIo<tokio::net::TcpStream>,
) -> Result<(), String> {
    let status = match probe.protocol {
        UpstreamProtocol::Http1 => {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|e| format!("handshake: {e}"))?;
            let conn = tokio::spawn(conn);
            let req = Request::get(&*probe.path)
                .header(header::HOST, backend.host_header.clone())
                .header(header::USER_AGENT, "balancer-health-check")
                .header(header::CONNECTION, "close")
                .body(Empty::<Bytes>::new())
                .map_err(|e| format!("request: {e}"))?;
            let resp = sender.send_request(req).await;
            conn.abort();
            resp.map_err(|e| format!("response: {e}"))?.status()
        }
        UpstreamProtocol::H2c => {
            let (mut sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .map_err(|e| format!("h2c handshake: {e}"))?;
            let conn = tokio::spawn(conn);
            let host = backend.host_header.to_str().unwrap_or("localhost");
            let req = Request::get(format!("http://{host}{}", probe.path))
                .version(Version::HTTP_2)
                .header(header::HOST, backend.host_header.clone())
                .header(header::USER_AGENT, "balancer-health-check")
                .body(Empty::<Bytes>::new())
                .map_err(|e| format!("request: {e}"))?;
            let resp = sender.send_request(req).await;
            conn.abort();
            resp.map_err(|e| format!("h2c response: {e}"))?.status()
        }
    };
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("status {}", status.as_u16()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::metrics::Metrics;
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A backend answering every request with `status`, then closing.
    async fn answering(status: u16) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let _ = s.read(&mut buf).await;
                    let head = format!(
                        "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                    let _ = s.write_all(head.as_bytes()).await;
                });
            }
        });
        addr
    }

    /// Polls `check` every 10 ms for up to 5 s.
    async fn eventually(check: impl Fn() -> bool) -> bool {
        for _ in 0..500 {
            if check() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        check()
    }

    #[tokio::test]
    async fn a_joining_backend_is_checked_at_once_not_at_the_next_interval() {
        let pool = Arc::new(BackendSet::new(Arc::new(Metrics::new()), 1));
        let (up, down) = (answering(200).await, answering(503).await);
        let mut wanted = vec![(up, "app:1".to_owned()), (down, "app:1".to_owned())];
        pool.set_addresses(&wanted);
        // An hour between rounds: only the first check can admit anything during this test.
        let hour = Duration::from_secs(3600);
        tokio::spawn(run_active_checks(
            pool.clone(),
            Probe {
                check: HealthCheck::Http,
                path: Arc::from("/health"),
                interval: hour,
                connect_timeout: Duration::from_secs(1),
                protocol: UpstreamProtocol::Http1,
            },
        ));
        let find = |addr: SocketAddr| {
            let p = pool.clone();
            move || p.snapshot().iter().find(|b| b.addr == addr).cloned()
        };
        assert!(eventually(|| find(up)().is_some_and(|b| !b.health.is_pending())).await);
        assert!(eventually(|| find(down)().is_some_and(|b| b.health.last_error().is_some())).await);
        let failed = find(down)().unwrap();
        assert!(
            failed.health.is_pending(),
            "a failing first check leaves it pending"
        );
        assert_eq!(
            failed.health.reason().as_deref(),
            Some("pending: health check failed: status 503")
        );
        // One that joins later is checked at once too.
        let later = answering(200).await;
        wanted.push((later, "app:1".to_owned()));
        pool.set_addresses(&wanted);
        assert!(eventually(|| find(later)().is_some_and(|b| !b.health.is_pending())).await);
    }

    /// `--health-check tcp` admits a backend that accepts connections whatever it answers, and
    /// not one where nothing listens.
    #[tokio::test]
    async fn tcp_checks_only_connect() {
        let pool = Arc::new(BackendSet::new(Arc::new(Metrics::new()), 1));
        let listening = answering(503).await;
        let nobody = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap();
        pool.set_addresses(&[
            (listening, "app:1".to_owned()),
            (nobody, "app:1".to_owned()),
        ]);
        tokio::spawn(run_active_checks(
            pool.clone(),
            Probe {
                check: HealthCheck::Tcp,
                path: Arc::from("/health"),
                interval: Duration::from_secs(3600),
                connect_timeout: Duration::from_secs(1),
                protocol: UpstreamProtocol::Http1,
            },
        ));
        let find = |addr: SocketAddr| {
            let p = pool.clone();
            move || p.snapshot().iter().find(|b| b.addr == addr).cloned()
        };
        assert!(eventually(|| find(listening)().is_some_and(|b| !b.health.is_pending())).await);
        assert!(
            eventually(|| find(nobody)().is_some_and(|b| b.health.last_error().is_some())).await
        );
        assert!(find(nobody)().unwrap().health.is_pending());
    }
}
