//! HTTP/2 with prior knowledge (`--upstream-protocol h2c`) to the backends: a few multiplexed
//! connections per endpoint instead of a pool of HTTP/1.1 ones.
//!
//! Why: over HTTP/1.1 nothing ties a response to its request, so a replica that writes a stray,
//! unasked-for response poisons the next request on that pooled connection. Over HTTP/2 every
//! response carries its stream id; a frame for a stream nobody opened is a protocol error on that
//! connection, never another client's answer.
//!
//! - Each worker keeps its own connections to each endpoint ([`H2Endpoint`]): one, and another
//!   only while every open one carries as many streams as the backend's
//!   `SETTINGS_MAX_CONCURRENT_STREAMS` allows (read from the connection as it runs; 100, the RFC's
//!   recommended floor, until the backend's SETTINGS arrive). One connect at a time per worker and
//!   endpoint: requests that find no room wait for it and share its outcome.
//! - PING keep-alive every half `--health-interval`, answered within the other half, so a dead
//!   connection is noticed within the interval; a connection that got GOAWAY or closed is skipped
//!   and dropped, and new requests get a new one.
//! - Retry safety ([`classify`]): a request comes back as never sent only when hyper handed it
//!   back, when the backend refused the stream (`REFUSED_STREAM`) or when its GOAWAY named a last
//!   stream id below it (RFC 9113 §8.7: neither was processed). hyper does not hand such a request
//!   back, so a copy of the head is kept for bodiless requests (most of them); one whose body went
//!   out is never retried. A stream reset after the request went out is a failure, never a retry.

use shared::sync::lock;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::header::HOST;
use http::uri::{Authority, Scheme};
use http::{Request, Response, Uri, Version};
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use crate::runtime::metrics::UpstreamMetrics;
use crate::upstream::request_body::RequestBody;

type Sender = http2::SendRequest<RequestBody>;

/// Streams a connection carries before the backend's SETTINGS say otherwise (RFC 9113 §6.5.2
/// recommends servers allow at least 100; hyper's client assumes the same).
pub const INITIAL_MAX_STREAMS: usize = 100;

/// How the h2c connections are made.
#[derive(Clone, Copy, Debug)]
pub struct H2Settings {
    pub connect_timeout: Duration,
    /// `--health-interval`: PINGs go out every half of it, and must be answered within the other.
    pub keep_alive: Duration,
}

/// What the connection's own task and the requests on it share.
struct ConnState {
    /// Streams open on it now (requests sent whose response body has not ended).
    streams: AtomicUsize,
    /// The backend's `SETTINGS_MAX_CONCURRENT_STREAMS`, as last seen by the connection's task.
    max_streams: AtomicUsize,
    metrics: UpstreamMetrics,
}

#[derive(Clone)]
struct Conn {
    sender: Sender,
    state: Arc<ConnState>,
}

impl Conn {
    fn has_room(&self) -> bool {
        self.state.streams.load(Ordering::Relaxed) < self.state.max_streams.load(Ordering::Relaxed)
    }
}

/// One worker's connections to one endpoint.
#[derive(Default)]
struct WorkerConnections {
    conns: Mutex<Vec<Conn>>,
    /// One connect at a time; the others wait for it.
    gate: tokio::sync::Mutex<()>,
    /// Connects that failed, and the last one's error, for the requests that waited on it.
    failed_connects: AtomicU64,
    last_error: Mutex<String>,
}

impl WorkerConnections {
    /// A live connection with room for one more stream; closed ones are dropped on the way.
    fn checkout(&self) -> Option<Conn> {
        let mut conns = lock(&self.conns);
        conns.retain(|c| !c.sender.is_closed());
        conns.iter().find(|c| c.has_room()).cloned()
    }

    fn retire(&self, state: &Arc<ConnState>) {
        let mut conns = lock(&self.conns);
        conns.retain(|c| !Arc::ptr_eq(&c.state, state));
    }
}

/// An endpoint's h2c connections, per worker (a connection is driven by the worker that opened it).
pub struct H2Endpoint {
    workers: Box<[WorkerConnections]>,
    /// Connections open now, all workers together.
    connections: Arc<AtomicUsize>,
}

impl H2Endpoint {
    pub fn new(workers: usize) -> Self {
        H2Endpoint {
            workers: (0..workers.max(1))
                .map(|_| WorkerConnections::default())
                .collect(),
            connections: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn worker(&self, worker: usize) -> &WorkerConnections {
        &self.workers[worker % self.workers.len()]
    }

    /// Streams open on this endpoint's connections now, for `/status`.
    pub fn open_streams(&self) -> usize {
        self.workers
            .iter()
            .map(|w| {
                let conns = lock(&w.conns);
                conns
                    .iter()
                    .map(|c| c.state.streams.load(Ordering::Relaxed))
                    .sum::<usize>()
            })
            .sum()
    }

    /// h2c connections open now.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }
}

/// A stream counted as open on its connection until the response body ended or was dropped.
pub struct StreamGuard(Arc<ConnState>);

impl StreamGuard {
    fn open(state: &Arc<ConnState>) -> Self {
        state.streams.fetch_add(1, Ordering::Relaxed);
        StreamGuard(state.clone())
    }

    /// The response body broke: counts a reset by the backend.
    pub fn broken(self, e: &(dyn std::error::Error + 'static)) {
        if classify(e) == Fate::Reset {
            self.0.metrics.streams_reset.inc();
        }
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why an h2c request failed.
pub enum H2SendError {
    /// Provably never processed by the backend; the request is back for another try.
    NotSent {
        request: Box<Request<RequestBody>>,
        error: String,
    },
    /// May have been processed: never retried.
    Failed(hyper::Error),
}

/// What an error on a stream says about its request.
#[derive(Debug, PartialEq, Eq)]
pub enum Fate {
    /// Refused before processing: `REFUSED_STREAM`, or above the last stream id of a GOAWAY.
    NeverProcessed,
    /// Reset by the backend after it may have processed it.
    Reset,
    /// Anything else (I/O error, protocol error, timeout): may have been processed.
    Other,
}

/// Reads hyper's error for the h2 error under it.
pub fn classify(e: &(dyn std::error::Error + 'static)) -> Fate {
    let mut cause = Some(e);
    while let Some(err) = cause {
        if let Some(h2) = err.downcast_ref::<h2::Error>() {
            return classify_h2(h2);
        }
        cause = err.source();
    }
    Fate::Other
}

fn classify_h2(e: &h2::Error) -> Fate {
    if !e.is_remote() {
        return Fate::Other;
    }
    // h2 gives a remote GOAWAY's error only to the streams above its last stream id (and to
    // streams opened after it); the ones below carry on, or end with an I/O error.
    if e.is_go_away() {
        return Fate::NeverProcessed;
    }
    if e.is_reset() {
        if e.reason() == Some(h2::Reason::REFUSED_STREAM) {
            return Fate::NeverProcessed;
        }
        return Fate::Reset;
    }
    Fate::Other
}

/// Gives the request the absolute form HTTP/2 needs (`:scheme`, `:authority` from its Host, which
/// stays): idempotent, so a request handed back can go through it again for the next backend.
fn to_h2_form(request: &mut Request<RequestBody>, addr: SocketAddr) -> Result<(), String> {
    let authority = match request.headers().get(HOST) {
        Some(host) => Authority::try_from(host.as_bytes()).map_err(|e| e.to_string())?,
        None => Authority::try_from(addr.to_string()).map_err(|e| e.to_string())?,
    };
    let mut parts = std::mem::take(request.uri_mut()).into_parts();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(authority);
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    *request.uri_mut() = Uri::from_parts(parts).map_err(|e| e.to_string())?;
    *request.version_mut() = Version::HTTP_2;
    Ok(())
}

/// Opens an h2c connection and spawns its task, which keeps the backend's stream limit current.
async fn connect(
    addr: SocketAddr,
    settings: H2Settings,
    metrics: &UpstreamMetrics,
    open: &Arc<AtomicUsize>,
) -> Result<Conn, String> {
    let stream = super::connect::connect(addr, settings.connect_timeout).await?;
    let half = (settings.keep_alive / 2).max(Duration::from_millis(1));
    let (sender, conn) = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(half)
        .keep_alive_timeout(half)
        .keep_alive_while_idle(true)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("h2c handshake with {addr}: {e}"))?;
    let state = Arc::new(ConnState {
        streams: AtomicUsize::new(0),
        max_streams: AtomicUsize::new(INITIAL_MAX_STREAMS),
        metrics: metrics.clone(),
    });
    let watched = state.clone();
    let open = open.clone();
    open.fetch_add(1, Ordering::Relaxed);
    tokio::spawn(async move {
        let mut conn = std::pin::pin!(conn);
        let ended = std::future::poll_fn(|cx| {
            let polled = conn.as_mut().poll(cx);
            let max = conn.as_ref().get_ref().current_max_send_streams();
            watched.max_streams.store(max.max(1), Ordering::Relaxed);
            polled
        })
        .await;
        open.fetch_sub(1, Ordering::Relaxed);
        if let Err(e) = ended {
            tracing::debug!(backend = %addr, error = %e, "h2c connection ended with an error");
        }
    });
    Ok(Conn { sender, state })
}

/// One worker's way to its backends over h2c.
pub struct H2Pool {
    settings: H2Settings,
    worker: usize,
    metrics: UpstreamMetrics,
}

impl H2Pool {
    pub fn new(settings: H2Settings, worker: usize, metrics: UpstreamMetrics) -> Self {
        H2Pool {
            settings,
            worker,
            metrics,
        }
    }

    /// Sends `request` to the endpoint at `addr`: on a connection with room, or a new one; once
    /// more on a new connection when the first one turned out closed or refused it.
    pub async fn send(
        &self,
        endpoint: &H2Endpoint,
        addr: SocketAddr,
        mut request: Request<RequestBody>,
    ) -> Result<(Response<Incoming>, StreamGuard), H2SendError> {
        if let Err(error) = to_h2_form(&mut request, addr) {
            return Err(H2SendError::NotSent {
                request: Box::new(request),
                error: format!("no HTTP/2 target: {error}"),
            });
        }
        let conns = endpoint.worker(self.worker);
        if let Some(conn) = conns.checkout() {
            match self.try_send(conn.clone(), request).await {
                Err(H2SendError::NotSent { request: r, error }) => {
                    tracing::debug!(backend = %addr, %error, "h2c stream not sent; trying a new connection");
                    conns.retire(&conn.state);
                    request = *r;
                }
                done => return done,
            }
        }
        let conn = match self.connect_once(conns, endpoint, addr).await {
            Ok(conn) => conn,
            Err(error) => {
                return Err(H2SendError::NotSent {
                    request: Box::new(request),
                    error,
                })
            }
        };
        self.try_send(conn, request).await
    }

    /// A connection with room: one that another request opened meanwhile, or a new one. Requests
    /// that waited for a connect that failed share its error instead of trying again one by one.
    async fn connect_once(
        &self,
        conns: &WorkerConnections,
        endpoint: &H2Endpoint,
        addr: SocketAddr,
    ) -> Result<Conn, String> {
        let failed_before = conns.failed_connects.load(Ordering::Acquire);
        let _gate = conns.gate.lock().await;
        if let Some(conn) = conns.checkout() {
            return Ok(conn);
        }
        if conns.failed_connects.load(Ordering::Acquire) != failed_before {
            let error = lock(&conns.last_error);
            return Err(error.clone());
        }
        match connect(addr, self.settings, &self.metrics, &endpoint.connections).await {
            Ok(conn) => {
                let mut list = lock(&conns.conns);
                list.push(conn.clone());
                Ok(conn)
            }
            Err(error) => {
                *lock(&conns.last_error) = error.clone();
                conns.failed_connects.fetch_add(1, Ordering::Release);
                Err(error)
            }
        }
    }

    async fn try_send(
        &self,
        conn: Conn,
        request: Request<RequestBody>,
    ) -> Result<(Response<Incoming>, StreamGuard), H2SendError> {
        // hyper keeps the request once it took it; a bodiless one can be rebuilt from its head.
        let head = request.body().is_bodiless().then(|| head_of(&request));
        let guard = StreamGuard::open(&conn.state);
        let mut sender = conn.sender;
        match sender.try_send_request(request).await {
            Ok(mut response) => {
                // The client gets HTTP/1.1 framing (or its own HTTP/2); the version is ours to set.
                *response.version_mut() = Version::HTTP_11;
                Ok((response, guard))
            }
            Err(mut e) => {
                if let Some(request) = e.take_message() {
                    return Err(H2SendError::NotSent {
                        request: Box::new(request),
                        error: format!(
                            "h2c connection closed before the request was sent: {}",
                            e.error()
                        ),
                    });
                }
                let error = e.into_error();
                match (classify(&error), head) {
                    (Fate::NeverProcessed, head) => {
                        self.metrics.streams_refused.inc();
                        match head {
                            Some(head) => Err(H2SendError::NotSent {
                                request: Box::new(Request::from_parts(
                                    head,
                                    RequestBody::bodiless(),
                                )),
                                error: format!("stream refused by the backend: {error}"),
                            }),
                            None => Err(H2SendError::Failed(error)),
                        }
                    }
                    (Fate::Reset, _) => {
                        self.metrics.streams_reset.inc();
                        Err(H2SendError::Failed(error))
                    }
                    (Fate::Other, _) => Err(H2SendError::Failed(error)),
                }
            }
        }
    }
}

/// A copy of a request's head (method, target, version, headers; extensions are not needed).
fn head_of<B>(request: &Request<B>) -> http::request::Parts {
    let (mut parts, ()) = Request::new(()).into_parts();
    parts.method = request.method().clone();
    parts.uri = request.uri().clone();
    parts.version = request.version();
    parts.headers = request.headers().clone();
    parts
}

#[cfg(test)]
mod tests;
