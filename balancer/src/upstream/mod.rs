//! The connections from the balancer to one backend, and the one interface the proxy sends through.
//!
//! [`Upstream`] is what the proxy needs from this layer: send a prepared request to an
//! [`Endpoint`] and get back the response head with a lease on what carried it, or a
//! [`SendError`] that says whether the request may be tried elsewhere. [`UpstreamPool`] is the
//! real one (a worker's keep-alive HTTP/1.1 connections of [`http1`], or the multiplexed h2c
//! connections of [`h2`] with `--upstream-protocol h2c`); unit tests of the proxy implement the
//! trait in-process, so every proxy rule is checked without a socket. The trait is generic, not
//! boxed: the real path is monomorphised and costs nothing per request.
//!
//! [`SendError::NotSent`] hands the request back when it provably never reached the backend: the
//! connect failed, or the connection returned the unwritten request. Only that case is safe to
//! retry elsewhere; the retry safety is in the type.

pub mod connect;
pub mod h2;
pub mod http1;
pub mod request_body;
pub mod stray;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::{Body, Incoming};

use crate::runtime::metrics::UpstreamMetrics;
use h2::{H2Endpoint, H2Pool, H2SendError, H2Settings, StreamGuard};
use http1::{Http1Lease, Http1Pool, IdleConnections};
use request_body::RequestBody;
use stray::Stray;

/// An error of any kind, for the rare paths that only describe it.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Where the proxy sends a request it prepared (origin-form target, Host set, body limited).
///
/// `B` is the client's body type: hyper's `Incoming` on the real path, any body in tests.
pub trait Upstream<B>: Send + Sync + 'static {
    /// The backend's response body, streamed to the client.
    type Body: Body<Data = Bytes, Error: std::error::Error + Send + Sync + 'static>
        + Send
        + Unpin
        + 'static;
    /// What the response holds on to until its body ended (a connection, a stream).
    type Lease: Release + Send + Unpin + 'static;

    /// Sends `request` to `endpoint`; `now` is the caller's clock reading.
    fn send(
        &self,
        endpoint: &Arc<Endpoint>,
        request: Request<RequestBody<B>>,
        now: Instant,
    ) -> impl Future<Output = SendResult<Self::Body, Self::Lease, B>> + Send;
}

/// What [`Upstream::send`] returns: the response head and its lease, or why not.
pub type SendResult<R, L, B> = Result<(Response<R>, L), SendError<B>>;

/// The end of a response body, told to what carried it.
pub trait Release {
    /// The body was read to the end: the connection may carry the next request.
    fn release(self);
    /// The body broke with `e`: what carried it must not be reused.
    fn broken(self, e: &(dyn std::error::Error + 'static));
}

/// Nothing to give back: an in-process upstream holds no connection.
impl Release for () {
    fn release(self) {}
    fn broken(self, _: &(dyn std::error::Error + 'static)) {}
}

/// `--upstream-protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UpstreamProtocol {
    Http1,
    H2c,
}

impl UpstreamProtocol {
    pub fn name(self) -> &'static str {
        match self {
            UpstreamProtocol::Http1 => "http1",
            UpstreamProtocol::H2c => "h2c",
        }
    }
}

/// Why a request failed.
pub enum SendError<B = Incoming> {
    /// The request never reached the backend; here it is back, ready to be sent elsewhere.
    NotSent {
        /// Boxed: this is the rare path, and it keeps every `Result` small.
        request: Box<Request<RequestBody<B>>>,
        error: String,
    },
    /// The request may have been (partly) written: it must not be retried.
    Failed(BoxError),
    /// No response head within `--upstream-timeout` (the request may have been written): a 504,
    /// never retried.
    TimedOut,
}

impl From<H2SendError> for SendError {
    fn from(e: H2SendError) -> Self {
        match e {
            H2SendError::NotSent { request, error } => SendError::NotSent { request, error },
            H2SendError::Failed(e) => SendError::Failed(Box::new(e)),
        }
    }
}

/// Where a backend is and the keep-alive connections to it waiting for their next request, one
/// stack per worker: a connection is driven by the worker that opened it, so handing it to another
/// worker would put two threads on every request it carries.
pub struct Endpoint {
    pub addr: SocketAddr,
    idle: Box<[IdleConnections]>,
    /// HTTP/1.1 connections open now (idle or busy), all workers together.
    http1_connections: Arc<AtomicUsize>,
    /// The h2c connections (`--upstream-protocol h2c`).
    pub h2: H2Endpoint,
    /// Stray bytes seen from it over HTTP/1.1, and its quarantine (`--stray-quarantine`).
    pub stray: Stray,
}

impl Endpoint {
    pub fn new(addr: SocketAddr, workers: usize) -> Self {
        Endpoint {
            addr,
            idle: (0..workers.max(1))
                .map(|_| IdleConnections::default())
                .collect(),
            http1_connections: Arc::new(AtomicUsize::new(0)),
            h2: H2Endpoint::new(workers),
            stray: Stray::default(),
        }
    }

    /// An endpoint whose stray-byte detections count into `stray` (the backend's series of
    /// `balancer_upstream_stray_bytes_total`).
    pub fn with_stray_counter(
        addr: SocketAddr,
        workers: usize,
        stray: prometheus_client::metrics::counter::Counter,
    ) -> Self {
        Endpoint {
            stray: Stray::counted(stray),
            ..Endpoint::new(addr, workers)
        }
    }

    /// Connections open to this endpoint now, both protocols, for `/status`.
    pub fn connections(&self) -> usize {
        self.http1_connections.load(Ordering::Relaxed) + self.h2.connections()
    }

    /// Worker `worker`'s idle connections to this endpoint.
    fn idle(&self, worker: usize) -> &IdleConnections {
        &self.idle[worker % self.idle.len()]
    }

    /// Closes every worker's idle HTTP/1.1 connections (the backend was just quarantined).
    fn drop_idle(&self) {
        for idle in self.idle.iter() {
            idle.clear();
        }
    }
}

/// What a response holds on to until its body ended; see [`Lease::release`].
pub enum Lease {
    /// An HTTP/1.1 connection checked out for this one request.
    Http1(Http1Lease),
    /// An HTTP/2 stream, counted open on its connection.
    H2(StreamGuard),
}

impl Lease {
    /// The response body was read to the end: an HTTP/1.1 connection goes back into its idle
    /// stack, a stream stops counting. Dropping a `Lease` instead discards an HTTP/1.1 connection.
    pub fn release(self) {
        match self {
            Lease::Http1(lease) => lease.release(),
            Lease::H2(stream) => drop(stream),
        }
    }

    /// The response body broke with `e`: the connection is never reused (HTTP/1.1), a reset by
    /// the backend is counted (HTTP/2).
    pub fn broken(self, e: &(dyn std::error::Error + 'static)) {
        match self {
            Lease::Http1(lease) => drop(lease),
            Lease::H2(stream) => stream.broken(e),
        }
    }
}

impl Release for Lease {
    fn release(self) {
        Lease::release(self)
    }

    fn broken(self, e: &(dyn std::error::Error + 'static)) {
        Lease::broken(self, e)
    }
}

/// How the connections to the backends are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpstreamSettings {
    pub connect_timeout: Duration,
    /// `--upstream-timeout`: from sending a request to its response head.
    pub upstream_timeout: Duration,
    /// `--max-idle-per-backend` (HTTP/1.1).
    pub max_idle: usize,
    pub protocol: UpstreamProtocol,
    /// `--health-interval`: the h2c PING keep-alive fits in it.
    pub keep_alive: Duration,
    /// `--stray-quarantine` (zero: off).
    pub stray_quarantine: Duration,
}

/// One worker's way to its backends: connections it opens are driven by its own event loop and
/// go back to its own idle stacks.
pub struct UpstreamPool {
    http1: Http1Pool,
    /// `Some` with `--upstream-protocol h2c`.
    h2: Option<H2Pool>,
}

impl UpstreamPool {
    pub fn new(settings: UpstreamSettings, worker: usize, metrics: UpstreamMetrics) -> Self {
        let h2 = (settings.protocol == UpstreamProtocol::H2c).then(|| {
            let h2 = H2Settings {
                connect_timeout: settings.connect_timeout,
                keep_alive: settings.keep_alive,
            };
            H2Pool::new(h2, worker, metrics)
        });
        UpstreamPool {
            http1: Http1Pool {
                connect_timeout: settings.connect_timeout,
                upstream_timeout: settings.upstream_timeout,
                max_idle: settings.max_idle,
                worker,
                stray_quarantine_ms: u64::try_from(settings.stray_quarantine.as_millis())
                    .unwrap_or(u64::MAX),
            },
            h2,
        }
    }
}

impl Upstream<Incoming> for UpstreamPool {
    type Body = Incoming;
    type Lease = Lease;

    /// Sends `request` (origin-form URI, Host set) to `endpoint` and returns the response head
    /// with the lease on its connection or stream. `now` is the caller's clock reading, for idle
    /// expiry.
    async fn send(
        &self,
        endpoint: &Arc<Endpoint>,
        request: Request<RequestBody>,
        now: Instant,
    ) -> Result<(Response<Incoming>, Lease), SendError> {
        match &self.h2 {
            Some(h2) if !request.headers().contains_key(http::header::UPGRADE) => {
                // Streams share their connection, so each gets a timer of its own.
                let sent = h2.send(&endpoint.h2, endpoint.addr, request);
                let Ok(sent) = tokio::time::timeout(self.http1.upstream_timeout, sent).await else {
                    return Err(SendError::TimedOut);
                };
                let (response, stream) = sent?;
                Ok((response, Lease::H2(stream)))
            }
            _ => self.http1.send(endpoint, request, now).await,
        }
    }
}
