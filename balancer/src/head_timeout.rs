//! `--header-read-timeout` on HTTP/1 client connections: one lazily re-armed timer per connection
//! instead of one timer per request.
//!
//! hyper's own header timer boxes a new sleep for every request a keep-alive connection carries,
//! registers it in tokio's timer wheel while the next head is awaited and removes it when the head
//! arrives: about 1,300 instructions per proxied request (callgrind; a tenth of all the balancer
//! adds to hyper). Here each connection has a [`HeadClock`]: the request path only stores a
//! millisecond timestamp when a response head leaves (the wait for the next head starts) and a
//! marker when a request head arrives (the wait is over). One sleep per connection wakes when the
//! current wait could first run out, looks at the clock and either closes the connection or goes
//! back to sleep until the wait it sees could run out: at most one timer registration per timeout
//! period, however many requests the connection carries.
//!
//! The semantics are hyper's: the wait runs from the connection's start (after the first bytes
//! were sniffed or the TLS handshake finished) and from each response head until the next request
//! head is parsed, and a connection whose wait runs out is closed.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::service::Service;

use crate::health::now_ms;

/// `waiting_since` while a request is being answered (no head is awaited).
const SERVING: u64 = u64::MAX;

/// When the connection started waiting for a request head (milliseconds of [`now_ms`]), or
/// [`SERVING`].
pub struct HeadClock {
    waiting_since: AtomicU64,
}

impl HeadClock {
    /// A connection that starts waiting for its first head now.
    pub fn started() -> Arc<Self> {
        Arc::new(HeadClock {
            waiting_since: AtomicU64::new(now_ms()),
        })
    }

    fn head_read(&self) {
        self.waiting_since.store(SERVING, Ordering::Relaxed);
    }

    fn response_sent(&self) {
        self.waiting_since.store(now_ms(), Ordering::Relaxed);
    }

    /// Resolves once a head has been awaited for `timeout`.
    pub async fn expired(&self, timeout: Duration) {
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let sleep = tokio::time::sleep(timeout);
        tokio::pin!(sleep);
        loop {
            sleep.as_mut().await;
            let since = self.waiting_since.load(Ordering::Relaxed);
            match next_check(since, now_ms(), timeout_ms) {
                None => return,
                Some(wait_ms) => sleep
                    .as_mut()
                    .reset(tokio::time::Instant::now() + Duration::from_millis(wait_ms)),
            }
        }
    }
}

/// Pure: `None` when a wait that began at `since` has run out by `now`; otherwise how many
/// milliseconds until the clock must be looked at again (a full timeout while serving, since the
/// next wait cannot run out sooner).
pub fn next_check(since: u64, now: u64, timeout_ms: u64) -> Option<u64> {
    if since == SERVING {
        return Some(timeout_ms.max(1));
    }
    let late_at = since.saturating_add(timeout_ms);
    (now < late_at).then(|| late_at - now)
}

/// `inner`, telling a connection's [`HeadClock`] when each request head arrived and when its
/// response head left.
pub struct Timed<S> {
    inner: S,
    clock: Arc<HeadClock>,
}

impl<S> Timed<S> {
    pub fn new(inner: S, clock: Arc<HeadClock>) -> Self {
        Timed { inner, clock }
    }
}

impl<S: Service<R>, R> Service<R> for Timed<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = TimedFuture<S::Future>;

    fn call(&self, request: R) -> Self::Future {
        self.clock.head_read();
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
        clock: Arc<HeadClock>,
    }
}

impl<F: Future> Future for TimedFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let output = std::task::ready!(this.inner.poll(cx));
        this.clock.response_sent();
        Poll::Ready(output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::Empty;
    use proptest::prelude::*;

    #[test]
    fn serving_connections_never_run_out() {
        assert_eq!(next_check(SERVING, 1_000_000, 10_000), Some(10_000));
        assert_eq!(next_check(SERVING, 0, 0), Some(1), "never a busy loop");
    }

    #[test]
    fn a_wait_runs_out_exactly_at_the_timeout() {
        assert_eq!(next_check(1_000, 1_000, 500), Some(500));
        assert_eq!(next_check(1_000, 1_499, 500), Some(1));
        assert_eq!(next_check(1_000, 1_500, 500), None);
        assert_eq!(
            next_check(u64::MAX - 1, 5, 500),
            Some(u64::MAX - 5),
            "no overflow"
        );
    }

    proptest! {
        /// Never late before `since + timeout`, always late from then on, and the next look is
        /// never later than the moment the wait runs out.
        #[test]
        fn late_exactly_from_the_deadline(since in 0u64..1 << 40, elapsed in 0u64..1 << 20, timeout in 0u64..1 << 20) {
            let now = since + elapsed;
            match next_check(since, now, timeout) {
                None => prop_assert!(elapsed >= timeout),
                Some(wait) => {
                    prop_assert!(elapsed < timeout);
                    prop_assert_eq!(now + wait, since + timeout);
                }
            }
        }
    }

    #[tokio::test]
    async fn a_waiting_connection_expires_after_the_timeout_a_serving_one_does_not() {
        let timeout = Duration::from_millis(60);
        let clock = HeadClock::started();
        let started = std::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(5), clock.expired(timeout))
            .await
            .expect("expired");
        assert!(started.elapsed() >= timeout, "{:?}", started.elapsed());

        clock.head_read();
        let serving = tokio::time::timeout(4 * timeout, clock.expired(timeout)).await;
        assert!(
            serving.is_err(),
            "a connection answering a request is not cut"
        );
    }

    #[tokio::test]
    async fn the_clock_restarts_with_each_response() {
        let clock = HeadClock::started();
        let service = Timed::new(
            hyper::service::service_fn(|_: http::Request<Empty<Bytes>>| async {
                Ok::<_, std::convert::Infallible>(http::Response::new(Empty::<Bytes>::new()))
            }),
            clock.clone(),
        );
        let pending = service.call(http::Request::new(Empty::new()));
        assert_eq!(clock.waiting_since.load(Ordering::Relaxed), SERVING);
        pending.await.unwrap();
        assert_ne!(clock.waiting_since.load(Ordering::Relaxed), SERVING);
    }
}
