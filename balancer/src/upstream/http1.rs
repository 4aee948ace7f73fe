//! Keep-alive HTTP/1.1 connections to the backends, pooled per endpoint (one backend address).
//!
//! Replaces hyper-util's general-purpose legacy `Client`, whose checkout machinery (pool keys
//! hashed per request, boxed connector futures, a task spawned per request to wait for the
//! connection to become idle again) cost more user-space CPU per proxied request than the rest of
//! the proxy together. This pool knows it talks to a fixed address over plain HTTP/1.1:
//!
//! - Each [`Endpoint`] (a backend's address) owns an `IdleConnections` stack per worker, bounded by `--max-idle-per-backend`,
//!   reused LIFO (the most recently used connection is the one least likely to have been closed
//!   by the backend's keep-alive timer); connections idle longer than [`IDLE_TIMEOUT`] are dropped.
//! - A connection goes back on the stack only once its response body was read to the end and
//!   hyper reports it ready for the next request ([`Lease::release`]); a connection that erred,
//!   was closed, was upgraded or whose body was abandoned is discarded.
//! - New connections get `--connect-timeout` and TCP_NODELAY; their hyper task is spawned once
//!   per connection, not per request.
//! - `--upstream-timeout` (request sent, no response head yet) is watched by that same task through
//!   a [`WaitClock`] (`Exchange`), not by a tokio timer per request: a late head closes the
//!   connection and the exchange ends as [`SendError::TimedOut`], a 504 that is never retried.
//! - [`SendError::NotSent`] hands the request back when it provably never reached the backend:
//!   the connect failed, or hyper returned the unwritten request from `try_send_request`. Only
//!   that case is safe to retry elsewhere. A pooled connection that turns out to be stale (the
//!   backend closed it while it sat idle) is retried transparently on the next idle or a fresh
//!   connection to the same backend, because the request was not written to it either.
//! - A connection hyper ends because the backend sent bytes no request asked for (idle, or past a
//!   complete response) is counted and quarantines the backend ([`super::stray`]): while it lasts
//!   no connection to it goes back on a stack. Nor does one whose response came before its request
//!   body was sent whole (the backend may take the rest for a request of its own).
//!
//! With `--upstream-protocol h2c` requests go through [`super::h2`] instead, except upgrades
//! (WebSocket), which HTTP/2 cannot carry this way and which keep using this pool.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use shared::sync::lock;

use super::request_body::RequestBody;
use super::stray::is_stray_error;
use super::{connect, Endpoint, Lease, SendError};
use crate::runtime::clock::now_ms;
use crate::runtime::wait_clock::WaitClock;

/// Idle connections older than this are closed rather than reused (the legacy client's default).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A keep-alive HTTP/1.1 connection's sending half, with the deadline of the response head it
/// awaits (`--upstream-timeout`), which the connection's own task watches.
pub(super) struct Sender {
    inner: http1::SendRequest<RequestBody>,
    exchange: Arc<Exchange>,
}

impl Sender {
    fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    fn is_ready(&self) -> bool {
        self.inner.is_ready()
    }

    async fn ready(&mut self) -> Result<(), hyper::Error> {
        self.inner.ready().await
    }
}

/// One connection's wait for a response head: a [`WaitClock`] wait from sending a request to its
/// response head, instead of a tokio timer per request. When a wait runs out the connection's
/// task ends the connection, which fails the exchange, and the clock says why.
type Exchange = WaitClock;

struct IdleConnection {
    sender: Sender,
    since: Instant,
}

/// One backend's idle keep-alive connections, most recently used last.
#[derive(Default)]
pub(super) struct IdleConnections {
    stack: Mutex<Vec<IdleConnection>>,
}

impl IdleConnections {
    fn pop(&self, now: Instant) -> Option<Sender> {
        let mut stack = lock(&self.stack);
        while let Some(idle) = stack.pop() {
            if idle.sender.is_closed() || now.saturating_duration_since(idle.since) > IDLE_TIMEOUT {
                continue;
            }
            return Some(idle.sender);
        }
        None
    }

    /// Closes them all.
    pub(super) fn clear(&self) {
        let gone = std::mem::take(&mut *lock(&self.stack));
        drop(gone);
    }

    fn push(&self, sender: Sender, max_idle: usize) {
        if max_idle == 0 {
            return;
        }
        let mut stack = lock(&self.stack);
        if stack.len() >= max_idle {
            // The bottom of the stack is the least recently used connection.
            stack.remove(0);
        }
        stack.push(IdleConnection {
            sender,
            since: Instant::now(),
        });
    }
}

/// An HTTP/1.1 connection checked out for one request.
pub struct Http1Lease {
    sender: Sender,
    endpoint: Arc<Endpoint>,
    worker: usize,
    max_idle: usize,
    /// The response came before the request body was sent whole: the backend may read the
    /// rest as a request of its own and answer it, so the connection is not reused.
    early: bool,
}

impl Http1Lease {
    pub(super) fn release(self) {
        let Http1Lease {
            mut sender,
            endpoint,
            worker,
            max_idle,
            early,
        } = self;
        if sender.is_closed() || early || endpoint.stray.is_quarantined(now_ms) {
            return;
        }
        if sender.is_ready() {
            endpoint.idle(worker).push(sender, max_idle);
            return;
        }
        // hyper marks the connection ready from its own task, usually before the last body
        // frame reaches us; when it has not yet, wait for it off the request path.
        tokio::spawn(async move {
            if sender.ready().await.is_ok() && !endpoint.stray.is_quarantined(now_ms) {
                endpoint.idle(worker).push(sender, max_idle);
            }
        });
    }
}

/// One worker's HTTP/1.1 connections to every backend: those it opens are driven by its own event
/// loop and go back to its own idle stacks.
pub(super) struct Http1Pool {
    pub(super) connect_timeout: Duration,
    pub(super) upstream_timeout: Duration,
    pub(super) max_idle: usize,
    pub(super) worker: usize,
    /// `--stray-quarantine` in ms (0: off).
    pub(super) stray_quarantine_ms: u64,
}

impl Http1Pool {
    /// Sends `request` on an idle connection to `endpoint` (stale ones skipped) or a new one.
    pub(super) async fn send(
        &self,
        endpoint: &Arc<Endpoint>,
        mut request: Request<RequestBody>,
        now: Instant,
    ) -> Result<(Response<Incoming>, Lease), SendError> {
        while let Some(sender) = endpoint.idle(self.worker).pop(now) {
            match self.try_send(endpoint, sender, request).await {
                Ok(done) => return Ok(done),
                // Stale keep-alive connection: the request was not written, try the next one.
                Err(SendError::NotSent { request: r, .. }) => request = *r,
                Err(failed) => return Err(failed),
            }
        }
        let sender = match self.connect(endpoint).await {
            Ok(sender) => sender,
            Err(error) => {
                return Err(SendError::NotSent {
                    request: Box::new(request),
                    error,
                })
            }
        };
        self.try_send(endpoint, sender, request).await
    }

    async fn try_send(
        &self,
        endpoint: &Arc<Endpoint>,
        mut sender: Sender,
        request: Request<RequestBody>,
    ) -> Result<(Response<Incoming>, Lease), SendError> {
        let body = request.body().progress();
        sender.exchange.start();
        let sent = sender.inner.try_send_request(request).await;
        sender.exchange.stop();
        let early = body.is_some_and(|b| !b.is_done());
        if sent.is_err() && sender.exchange.has_expired() {
            return Err(SendError::TimedOut);
        }
        match sent {
            Ok(response) => Ok((
                response,
                Lease::Http1(Http1Lease {
                    sender,
                    endpoint: endpoint.clone(),
                    worker: self.worker,
                    max_idle: self.max_idle,
                    early,
                }),
            )),
            Err(mut e) => match e.take_message() {
                Some(request) => Err(SendError::NotSent {
                    request: Box::new(request),
                    error: format!(
                        "connection closed before the request was sent: {}",
                        e.error()
                    ),
                }),
                None => Err(SendError::Failed(Box::new(e.into_error()))),
            },
        }
    }

    async fn connect(&self, endpoint: &Arc<Endpoint>) -> Result<Sender, String> {
        let addr = endpoint.addr;
        let stream = connect::connect(addr, self.connect_timeout).await?;
        let (inner, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake with {addr}: {e}"))?;
        let exchange = Arc::new(Exchange::idle());
        let conn = exchange.guard(conn.with_upgrades(), self.upstream_timeout);
        let open = endpoint.http1_connections.clone();
        open.fetch_add(1, Ordering::Relaxed);
        let endpoint = endpoint.clone();
        let quarantine_ms = self.stray_quarantine_ms;
        tokio::spawn(async move {
            // Upgrades (WebSocket) take the socket over from here; the task then ends.
            let ended = conn.await;
            open.fetch_sub(1, Ordering::Relaxed);
            match ended {
                Some(Err(e)) if is_stray_error(&e) => stray_bytes(&endpoint, quarantine_ms),
                Some(Err(e)) => {
                    tracing::debug!(backend = %addr, error = %e, "upstream connection ended with an error")
                }
                None => {
                    tracing::debug!(backend = %addr, "no response head within --upstream-timeout: connection closed")
                }
                Some(Ok(())) => {}
            }
        });
        Ok(Sender { inner, exchange })
    }
}

/// `endpoint`'s backend sent bytes nobody asked for, and hyper closed that connection: count
/// it, quarantine the backend (its idle connections go now) and warn once.
fn stray_bytes(endpoint: &Endpoint, quarantine_ms: u64) {
    let verdict = endpoint.stray.record(now_ms(), quarantine_ms);
    if quarantine_ms > 0 {
        endpoint.drop_idle();
    }
    if verdict.warn {
        tracing::warn!(
            backend = %endpoint.addr,
            quarantine = ?Duration::from_millis(quarantine_ms),
            "backend sent bytes no request asked for on a pooled HTTP/1.1 connection (a stray response): \
             connection closed; its connections are not reused for --stray-quarantine"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::Endpoint;

    /// A real hyper client connection over an in-memory pipe (nothing listens on the other end;
    /// the pool only looks at whether the connection is still open). Returned with the task that
    /// drives it: aborting that task closes the connection.
    async fn sender() -> (Sender, tokio::task::JoinHandle<()>, tokio::io::DuplexStream) {
        let (ours, theirs) = tokio::io::duplex(1024);
        let (inner, conn) = http1::handshake(TokioIo::new(ours)).await.unwrap();
        let sender = Sender {
            inner,
            exchange: Arc::new(Exchange::idle()),
        };
        let task = tokio::spawn(async move {
            let _ = conn.await;
        });
        (sender, task, theirs)
    }

    #[tokio::test]
    async fn idle_connections_expire_after_the_idle_timeout() {
        let idle = IdleConnections::default();
        let (s, _task, _peer) = sender().await;
        idle.push(s, 4);
        let late = Instant::now() + IDLE_TIMEOUT + Duration::from_secs(1);
        assert!(idle.pop(late).is_none(), "expired");
        assert!(idle.pop(Instant::now()).is_none(), "and dropped, not kept");

        let (s, _task, _peer) = sender().await;
        idle.push(s, 4);
        let soon = Instant::now() + IDLE_TIMEOUT - Duration::from_secs(1);
        assert!(idle.pop(soon).is_some());
    }

    #[tokio::test]
    async fn most_recent_first_bounded_and_closed_ones_skipped() {
        let idle = IdleConnections::default();
        let mut tasks = Vec::new();
        let mut peers = Vec::new();
        for _ in 0..3 {
            let (s, task, peer) = sender().await;
            idle.push(s, 2);
            tasks.push(task);
            peers.push(peer);
        }
        assert_eq!(idle.stack.lock().unwrap().len(), 2, "the oldest one went");
        // Close the most recent connection: the pool must skip it.
        tasks[2].abort();
        let _ = (&mut tasks[2]).await;
        let now = Instant::now();
        assert!(idle.pop(now).is_some(), "the second one");
        assert!(idle.pop(now).is_none());
        let (s, _t, _p) = sender().await;
        idle.push(s, 0);
        assert!(idle.pop(now).is_none(), "max_idle 0 keeps nothing");
    }

    /// A backend on a real socket that answers every request with `ok` and, right behind it on
    /// the first connection only, a second response no one asked for.
    async fn stray_once_backend() -> std::net::SocketAddr {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut first = true;
            while let Ok((mut s, _)) = listener.accept().await {
                let stray = std::mem::take(&mut first);
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while s.read(&mut buf).await.is_ok_and(|n| n > 0) {
                        let mut out = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec();
                        if stray {
                            out.extend(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nSTRAY");
                        }
                        if s.write_all(&out).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn get(pool: &Http1Pool, endpoint: &Arc<Endpoint>) -> String {
        use http_body_util::BodyExt;
        let request = Request::get("/").body(RequestBody::bodiless()).unwrap();
        let Ok((response, lease)) = pool.send(endpoint, request, Instant::now()).await else {
            panic!("request failed");
        };
        let body = response.into_body().collect().await.unwrap().to_bytes();
        lease.release();
        String::from_utf8_lossy(&body).into_owned()
    }

    /// Pins hyper's behaviour (and its error message, which [`is_stray_error`] reads): bytes past
    /// the end of a complete response end the connection, which is counted and quarantines the
    /// backend; the next request goes out on a fresh connection and gets its own answer.
    #[tokio::test]
    async fn bytes_past_a_complete_response_are_counted_and_quarantine_the_backend() {
        let endpoint = Arc::new(Endpoint::new(stray_once_backend().await, 1));
        let pool = Http1Pool {
            connect_timeout: Duration::from_secs(2),
            upstream_timeout: Duration::from_secs(5),
            max_idle: 4,
            worker: 0,
            stray_quarantine_ms: 60_000,
        };
        assert_eq!(get(&pool, &endpoint).await, "ok");
        let deadline = Instant::now() + Duration::from_secs(5);
        while endpoint.stray.total() == 0 {
            assert!(
                Instant::now() < deadline,
                "the stray response was never detected"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(endpoint.stray.is_quarantined(now_ms));
        for _ in 0..3 {
            assert_eq!(get(&pool, &endpoint).await, "ok", "never the stray body");
        }
        assert_eq!(endpoint.stray.total(), 1);
        assert!(
            endpoint.idle(0).pop(Instant::now()).is_none(),
            "quarantined: no connection kept for reuse"
        );
    }

    #[test]
    fn each_worker_has_its_own_stack() {
        let e = Endpoint::new("127.0.0.1:1".parse().unwrap(), 3);
        assert!(std::ptr::eq(e.idle(1), e.idle(4)));
        assert!(!std::ptr::eq(e.idle(0), e.idle(1)));
        let one = Endpoint::new("127.0.0.1:1".parse().unwrap(), 0);
        assert!(std::ptr::eq(one.idle(0), one.idle(5)));
    }
}
