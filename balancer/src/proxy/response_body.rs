//! The body of a response to the client: a backend's body streamed through, or one of the
//! balancer's own short answers.
//!
//! An upstream body keeps the backend's in-flight mark until the last byte, hands the upstream
//! connection back to its pool when the body ended cleanly ([`Lease::release`]), and counts a body
//! broken mid-stream as a backend failure. A route's `compress` wraps it in an encoder
//! ([`Compressed`]), which reads it the same way.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use crate::backends::backend::InFlight;
use crate::backends::health::HealthPolicy;
use crate::upstream::{BoxError, Lease, Release};
use compress::Compressed;

pub mod compress;

/// Body of a response to the client: `B` is the backend's body and `L` what carried it (by
/// default hyper's body and a pooled connection or stream; see [`crate::upstream::Upstream`]).
pub enum ResponseBody<B: Body = Incoming, L: Release = Lease> {
    Upstream {
        inner: B,
        in_flight: InFlight,
        policy: HealthPolicy,
        /// The upstream connection, returned to its pool when this body was read to the end.
        lease: Option<L>,
        /// The body ended cleanly (`None` after the last frame).
        finished: bool,
    },
    Fixed(Option<Bytes>),
    /// A backend's body encoded on its way (`compress`; boxed: the rare case pays the size).
    Compressed(Box<Compressed<B, L>>),
}

impl<B: Body, L: Release> Drop for ResponseBody<B, L> {
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

impl<B: Body, L: Release> ResponseBody<B, L> {
    pub fn fixed(text: &'static str) -> Self {
        ResponseBody::Fixed(Some(Bytes::from_static(text.as_bytes())))
    }

    pub fn empty() -> Self {
        ResponseBody::Fixed(None)
    }
}

impl<B, L> Body for ResponseBody<B, L>
where
    B: Body<Data = Bytes, Error: std::error::Error + Send + Sync + 'static> + Unpin,
    L: Release + Unpin,
{
    type Data = Bytes;
    /// The backend's error (boxed only when there is one), or the encoder's.
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ResponseBody::Fixed(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            ResponseBody::Compressed(encoder) => encoder.poll_frame(cx),
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
                        if let Some(lease) = lease.take() {
                            lease.broken(e);
                        }
                        in_flight
                            .0
                            .record_failure(policy, &format!("response body broken: {e}"));
                    }
                    Some(Ok(_)) => {}
                }
                Poll::Ready(frame.map(|f| f.map_err(BoxError::from)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Fixed(d) => d.is_none(),
            ResponseBody::Upstream { inner, .. } => inner.is_end_stream(),
            ResponseBody::Compressed(encoder) => encoder.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Fixed(d) => {
                SizeHint::with_exact(d.as_ref().map_or(0, |d| d.len() as u64))
            }
            ResponseBody::Upstream { inner, .. } => inner.size_hint(),
            ResponseBody::Compressed(_) => SizeHint::default(),
        }
    }
}
