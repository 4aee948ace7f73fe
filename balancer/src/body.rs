//! Body types that stream through the proxy without being buffered.
//!
//! [`RequestBody`] carries the client's body to a backend, enforces `--max-body` on bodies of
//! unknown length, and reports why it stopped so a failed exchange can be answered 413 or 400
//! (a request that never left comes back whole from [`crate::upstream_pool`], body included).
//! [`ResponseBody`] carries a backend's body to the client, keeps the backend's in-flight mark
//! until the last byte, hands the upstream connection back to its pool when the body ended
//! cleanly, and counts a body broken mid-stream as a backend failure; it is also the type of the
//! balancer's own short answers.

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use crate::backend::InFlight;
use crate::health::HealthPolicy;
use crate::upstream_pool::Lease;

const OUTCOME_UNTOUCHED: u8 = 0;
const OUTCOME_STARTED: u8 = 1;
const OUTCOME_TOO_LARGE: u8 = 2;
const OUTCOME_CLIENT_ERROR: u8 = 3;

/// Why the request body stopped.
#[derive(Debug)]
pub enum BodyError {
    TooLarge,
    Client(hyper::Error),
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::TooLarge => f.write_str("request body larger than --max-body"),
            BodyError::Client(e) => write!(f, "client body: {e}"),
        }
    }
}

impl std::error::Error for BodyError {}

/// The client's body on its way to a backend.
///
/// One pointer wide: hyper's client moves every request through a channel whose blocks hold 32
/// requests per upstream connection, so each byte here costs 32 bytes of memory per connection.
/// Bodiless requests (most of them) allocate nothing.
pub struct RequestBody(Option<Box<Streaming>>);

struct Streaming {
    inner: Incoming,
    hint: SizeHint,
    remaining: u64,
    done: bool,
    outcome: Arc<AtomicU8>,
}

/// What happened to a request body, read by the handler after a failed exchange.
#[derive(Debug, PartialEq, Eq)]
pub enum RequestBodyOutcome {
    /// Never polled.
    Untouched,
    Started,
    TooLarge,
    ClientError,
}

/// The handler's handle on a request body it handed out.
pub struct BodyHandle {
    outcome: Option<Arc<AtomicU8>>,
}

impl RequestBody {
    /// Wraps the client's body. The returned handle tells how it ended.
    pub fn new(incoming: Incoming, max: u64) -> (RequestBody, BodyHandle) {
        if incoming.is_end_stream() {
            return (RequestBody(None), BodyHandle { outcome: None });
        }
        let outcome = Arc::new(AtomicU8::new(OUTCOME_UNTOUCHED));
        let hint = incoming.size_hint();
        (
            RequestBody(Some(Box::new(Streaming {
                inner: incoming,
                hint,
                remaining: max,
                done: false,
                outcome: outcome.clone(),
            }))),
            BodyHandle {
                outcome: Some(outcome),
            },
        )
    }
}

impl BodyHandle {
    pub fn outcome(&self) -> RequestBodyOutcome {
        let Some(outcome) = &self.outcome else {
            return RequestBodyOutcome::Untouched;
        };
        match outcome.load(Ordering::Acquire) {
            OUTCOME_UNTOUCHED => RequestBodyOutcome::Untouched,
            OUTCOME_TOO_LARGE => RequestBodyOutcome::TooLarge,
            OUTCOME_CLIENT_ERROR => RequestBodyOutcome::ClientError,
            _ => RequestBodyOutcome::Started,
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let Some(body) = self.get_mut().0.as_deref_mut() else {
            return Poll::Ready(None);
        };
        if body.done {
            return Poll::Ready(None);
        }
        let _ = body.outcome.compare_exchange(
            OUTCOME_UNTOUCHED,
            OUTCOME_STARTED,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        let frame = ready!(Pin::new(&mut body.inner).poll_frame(cx));
        Poll::Ready(match frame {
            None => {
                body.done = true;
                None
            }
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    if len > body.remaining {
                        body.outcome.store(OUTCOME_TOO_LARGE, Ordering::Release);
                        body.done = true;
                        return Poll::Ready(Some(Err(BodyError::TooLarge)));
                    }
                    body.remaining -= len;
                }
                Some(Ok(frame))
            }
            Some(Err(e)) => {
                body.outcome.store(OUTCOME_CLIENT_ERROR, Ordering::Release);
                body.done = true;
                Some(Err(BodyError::Client(e)))
            }
        })
    }

    fn is_end_stream(&self) -> bool {
        self.0.as_ref().is_none_or(|b| b.done)
    }

    fn size_hint(&self) -> SizeHint {
        self.0
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |b| b.hint)
    }
}

/// Body of a response to the client.
pub enum ResponseBody {
    Upstream {
        inner: Incoming,
        in_flight: InFlight,
        policy: HealthPolicy,
        /// The upstream connection, returned to its pool when this body was read to the end.
        lease: Option<Lease>,
        /// The body ended cleanly (`None` after the last frame).
        finished: bool,
    },
    Fixed(Option<Bytes>),
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if let ResponseBody::Upstream {
            inner,
            lease,
            finished,
            ..
        } = self
        {
            // A body left unread would arrive on the connection before the next response.
            if *finished || inner.is_end_stream() {
                if let Some(lease) = lease.take() {
                    lease.release();
                }
            }
        }
    }
}

impl ResponseBody {
    pub fn fixed(text: &'static str) -> Self {
        ResponseBody::Fixed(Some(Bytes::from_static(text.as_bytes())))
    }

    pub fn empty() -> Self {
        ResponseBody::Fixed(None)
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ResponseBody::Fixed(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            ResponseBody::Upstream {
                inner,
                in_flight,
                policy,
                lease,
                finished,
            } => {
                let frame = ready!(Pin::new(inner).poll_frame(cx));
                match &frame {
                    None => *finished = true,
                    Some(Err(e)) => {
                        // The connection is unusable: never hand it to another request.
                        *lease = None;
                        in_flight
                            .0
                            .record_failure(policy, &format!("response body broken: {e}"));
                    }
                    Some(Ok(_)) => {}
                }
                Poll::Ready(frame)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Fixed(d) => d.is_none(),
            ResponseBody::Upstream { inner, .. } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Fixed(d) => {
                SizeHint::with_exact(d.as_ref().map_or(0, |d| d.len() as u64))
            }
            ResponseBody::Upstream { inner, .. } => inner.size_hint(),
        }
    }
}
