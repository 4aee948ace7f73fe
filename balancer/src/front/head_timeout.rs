//! `--header-read-timeout` and `--keep-alive-timeout` on HTTP/1 client connections, with one
//! lazily checked [`WaitClock`] per connection instead of hyper's timer per request.
//!
//! hyper's own header timer boxes a new sleep for every request a keep-alive connection carries,
//! registers it in tokio's timer wheel while the next head is awaited and removes it when the head
//! arrives: about 1,200 instructions per proxied request (callgrind). Here the wait for a head is a
//! [`WaitClock`] wait, started when a response head leaves and stopped when a request head arrives.
//!
//! A head wait runs from the connection's start (after the first bytes were sniffed or the TLS
//! handshake finished) until its first request head is parsed. Between requests the connection
//! is idle: an idle wait starts when a response head leaves (each write of the response restarts
//! it) and is bounded by `--keep-alive-timeout`; the next request's first byte ([`Watched`]) turns
//! it into a head wait bounded by `--header-read-timeout`. A connection whose wait runs out is
//! closed.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::service::Service;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub use crate::runtime::wait_clock::WaitClock;

/// `inner`, telling a connection's [`WaitClock`] when each request head arrived (the wait for a
/// head stops) and when its response head left (the next wait starts).
///
/// Once the balancer drains (`closing`), each response also says `Connection: close`.
pub struct Timed<S> {
    inner: S,
    clock: Arc<WaitClock>,
    closing: Arc<AtomicBool>,
}

impl<S> Timed<S> {
    pub fn new(inner: S, clock: Arc<WaitClock>, closing: Arc<AtomicBool>) -> Self {
        Timed {
            inner,
            clock,
            closing,
        }
    }
}

impl<S: Service<R, Response = http::Response<B>>, R, B> Service<R> for Timed<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = TimedFuture<S::Future>;

    fn call(&self, request: R) -> Self::Future {
        self.clock.stop();
        TimedFuture {
            inner: self.inner.call(request),
            clock: self.clock.clone(),
            closing: self.closing.clone(),
        }
    }
}

pin_project_lite::pin_project! {
    /// A response future that restarts its connection's wait for a head when it resolves.
    pub struct TimedFuture<F> {
        #[pin]
        inner: F,
        clock: Arc<WaitClock>,
        closing: Arc<AtomicBool>,
    }
}

impl<F, B, E> Future for TimedFuture<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let mut output = std::task::ready!(this.inner.poll(cx));
        this.clock.start_idle();
        if this.closing.load(Ordering::Relaxed) {
            if let Ok(response) = &mut output {
                let close = http::HeaderValue::from_static("close");
                response
                    .headers_mut()
                    .insert(http::header::CONNECTION, close);
            }
        }
        Poll::Ready(output)
    }
}

pin_project_lite::pin_project! {
    /// A client connection's socket, telling its [`WaitClock`] when bytes arrive (an idle wait
    /// becomes a head wait) and when they leave (an idle wait restarts).
    pub struct Watched<I> {
        #[pin]
        io: I,
        clock: Arc<WaitClock>,
    }
}

impl<I> Watched<I> {
    pub fn new(io: I, clock: Arc<WaitClock>) -> Self {
        Watched { io, clock }
    }
}

impl<I: AsyncRead> AsyncRead for Watched<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let polled = this.io.poll_read(cx, buf);
        if buf.filled().len() > before {
            this.clock.bytes_arrived();
        }
        polled
    }
}

impl<I: AsyncWrite> AsyncWrite for Watched<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.project();
        this.clock.bytes_sent();
        this.io.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.project();
        this.clock.bytes_sent();
        this.io.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::Empty;

    #[tokio::test]
    async fn the_wait_stops_with_each_request_and_an_idle_one_starts_with_its_response() {
        let clock = Arc::new(WaitClock::waiting());
        let service = Timed::new(
            hyper::service::service_fn(|_: http::Request<Empty<Bytes>>| async {
                Ok::<_, std::convert::Infallible>(http::Response::new(Empty::<Bytes>::new()))
            }),
            clock.clone(),
            Arc::new(AtomicBool::new(false)),
        );
        let pending = service.call(http::Request::new(Empty::new()));
        assert!(!clock.is_waiting(), "a head arrived");
        let response = pending.await.unwrap();
        assert!(response.headers().get(http::header::CONNECTION).is_none());
        assert!(clock.is_idle_wait(), "the connection idles");
        let (mut client, server) = tokio::io::duplex(64);
        let mut watched = Watched::new(server, clock.clone());
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        client.write_all(b"G").await.unwrap();
        let mut byte = [0u8; 1];
        watched.read_exact(&mut byte).await.unwrap();
        assert!(
            clock.is_waiting() && !clock.is_idle_wait(),
            "a head wait after the first byte"
        );
    }
}
