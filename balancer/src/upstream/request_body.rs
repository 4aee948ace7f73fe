//! The client's request body on its way to a backend, streamed without being buffered.
//!
//! [`RequestBody`] enforces `--max-body` on bodies of unknown length (a declared length is checked
//! before anything is sent), and reports through a [`BodyHandle`] why it stopped, so a failed
//! exchange can be answered 413 or 400 (a request that never left comes back whole from
//! [`crate::upstream`], body included). Generic over the inner body only so the limit can be
//! tested without a socket; the proxy always uses hyper's `Incoming`.

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

const OUTCOME_UNTOUCHED: u8 = 0;
const OUTCOME_STARTED: u8 = 1;
const OUTCOME_TOO_LARGE: u8 = 2;
const OUTCOME_CLIENT_ERROR: u8 = 3;
/// Read to its end (and so handed whole to the connection).
const OUTCOME_DONE: u8 = 4;

/// Why the request body stopped.
#[derive(Debug)]
pub enum BodyError {
    TooLarge,
    /// The client's body broke (reset, bad chunking, ...).
    Client(Box<dyn std::error::Error + Send + Sync>),
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
pub struct RequestBody<B = Incoming>(Option<Box<Streaming<B>>>);

struct Streaming<B> {
    inner: B,
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

impl<B: Body> RequestBody<B> {
    /// Wraps the client's body. The returned handle tells how it ended.
    pub fn new(incoming: B, max: u64) -> (RequestBody<B>, BodyHandle) {
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

impl<B> RequestBody<B> {
    /// No body at all (a request rebuilt from its head for another try).
    pub fn bodiless() -> Self {
        RequestBody(None)
    }

    /// Whether there is no body to send (nothing of it can have been consumed).
    pub fn is_bodiless(&self) -> bool {
        self.0.is_none()
    }

    /// For a body still to be sent, a way to ask later whether it was sent whole (a response
    /// that arrives before that leaves the connection unfit for reuse). `None` for no body.
    pub fn progress(&self) -> Option<BodyProgress> {
        self.0.as_ref().map(|b| BodyProgress(b.outcome.clone()))
    }
}

/// Whether a request body was read to its end; see [`RequestBody::progress`].
pub struct BodyProgress(Arc<AtomicU8>);

impl BodyProgress {
    /// The whole body was handed to the connection.
    pub fn is_done(&self) -> bool {
        self.0.load(Ordering::Acquire) == OUTCOME_DONE
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

impl<B> Body for RequestBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
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
                body.outcome.store(OUTCOME_DONE, Ordering::Release);
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
                // hyper stops polling a body of known length once it has all of it.
                if body.inner.is_end_stream() {
                    body.outcome.store(OUTCOME_DONE, Ordering::Release);
                }
                Some(Ok(frame))
            }
            Some(Err(e)) => {
                body.outcome.store(OUTCOME_CLIENT_ERROR, Ordering::Release);
                body.done = true;
                Some(Err(BodyError::Client(e.into())))
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

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Empty, Full, StreamBody};

    type Chunks = StreamBody<
        futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, std::io::Error>>>,
    >;

    fn chunks(sizes: &[usize]) -> Chunks {
        let frames: Vec<_> = sizes
            .iter()
            .map(|n| Ok(Frame::data(Bytes::from(vec![b'x'; *n]))))
            .collect();
        StreamBody::new(futures_util::stream::iter(frames))
    }

    /// Reads the body to its end or first error: (bytes passed, the error).
    async fn drain<B>(mut body: RequestBody<B>) -> (usize, Option<BodyError>)
    where
        RequestBody<B>: Body<Data = Bytes, Error = BodyError> + Unpin,
    {
        let mut passed = 0;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) => passed += f.data_ref().map_or(0, Bytes::len),
                Err(e) => return (passed, Some(e)),
            }
        }
        assert!(body.is_end_stream());
        (passed, None)
    }

    #[tokio::test]
    async fn a_body_up_to_the_limit_passes_whole() {
        let (body, handle) = RequestBody::new(chunks(&[4, 4, 2]), 10);
        assert_eq!(handle.outcome(), RequestBodyOutcome::Untouched);
        let (passed, err) = drain(body).await;
        assert_eq!((passed, err.is_none()), (10, true));
        assert_eq!(handle.outcome(), RequestBodyOutcome::Started);
    }

    #[tokio::test]
    async fn the_byte_past_the_limit_stops_the_body() {
        let (body, handle) = RequestBody::new(chunks(&[4, 4, 3, 100]), 10);
        let (passed, err) = drain(body).await;
        assert_eq!(
            passed, 8,
            "the chunk that crosses the limit is not passed on"
        );
        assert!(matches!(err, Some(BodyError::TooLarge)));
        assert_eq!(handle.outcome(), RequestBodyOutcome::TooLarge);
    }

    #[tokio::test]
    async fn a_broken_client_body_is_told_apart() {
        let frames = vec![
            Ok(Frame::data(Bytes::from_static(b"abc"))),
            Err(std::io::Error::other("reset")),
        ];
        let (body, handle) =
            RequestBody::new(StreamBody::new(futures_util::stream::iter(frames)), 10);
        let (passed, err) = drain(body).await;
        assert_eq!(passed, 3);
        assert_eq!(err.unwrap().to_string(), "client body: reset");
        assert_eq!(handle.outcome(), RequestBodyOutcome::ClientError);
    }

    #[tokio::test]
    async fn bodiless_requests_allocate_nothing_and_keep_their_size() {
        let (body, handle) = RequestBody::new(Empty::<Bytes>::new(), 0);
        assert!(body.0.is_none());
        assert_eq!(body.size_hint().exact(), Some(0));
        assert_eq!(handle.outcome(), RequestBodyOutcome::Untouched);
        let (body, _) = RequestBody::new(Full::new(Bytes::from_static(b"12345")), 5);
        assert_eq!(body.size_hint().exact(), Some(5));
        assert_eq!(drain(body).await.0, 5);
    }
}
