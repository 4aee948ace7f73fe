//! `--header-read-timeout` on HTTP/1 client connections, with one lazily checked
//! [`WaitClock`] per connection instead of hyper's timer per request.
//!
//! hyper's own header timer boxes a new sleep for every request a keep-alive connection carries,
//! registers it in tokio's timer wheel while the next head is awaited and removes it when the head
//! arrives: about 1,200 instructions per proxied request (callgrind). Here the wait for a head is a
//! [`WaitClock`] wait, started when a response head leaves and stopped when a request head arrives.
//!
//! The semantics are hyper's: the wait runs from the connection's start (after the first bytes
//! were sniffed or the TLS handshake finished) and from each response head until the next request
//! head is parsed, and a connection whose wait runs out is closed.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::service::Service;

pub use crate::runtime::wait_clock::WaitClock;

/// `inner`, telling a connection's [`WaitClock`] when each request head arrived (the wait for a
/// head stops) and when its response head left (the next wait starts).
pub struct Timed<S> {
    inner: S,
    clock: Arc<WaitClock>,
}

impl<S> Timed<S> {
    pub fn new(inner: S, clock: Arc<WaitClock>) -> Self {
        Timed { inner, clock }
    }
}

impl<S: Service<R>, R> Service<R> for Timed<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = TimedFuture<S::Future>;

    fn call(&self, request: R) -> Self::Future {
        self.clock.stop();
        TimedFuture {
            inner: self.inner.call(request),
            clock: self.clock.clone(),
        }
    }
}

pin_project_lite::pin_project! {
    /// A response future that restarts its connection's wait for a head when it resolves.
    pub struct TimedFuture<F> {
        #[pin]
        inner: F,
        clock: Arc<WaitClock>,
    }
}

impl<F: Future> Future for TimedFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let output = std::task::ready!(this.inner.poll(cx));
        this.clock.start();
        Poll::Ready(output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::Empty;

    #[tokio::test]
    async fn the_wait_stops_with_each_request_and_restarts_with_its_response() {
        let clock = Arc::new(WaitClock::waiting());
        let service = Timed::new(
            hyper::service::service_fn(|_: http::Request<Empty<Bytes>>| async {
                Ok::<_, std::convert::Infallible>(http::Response::new(Empty::<Bytes>::new()))
            }),
            clock.clone(),
        );
        let pending = service.call(http::Request::new(Empty::new()));
        assert!(!clock.is_waiting(), "a head arrived");
        pending.await.unwrap();
        assert!(clock.is_waiting(), "the next head is awaited");
    }
}
