//! A deadline for waits that start and stop many times over a connection's life (a client's next
//! request head, a backend's next response head), checked lazily by one sleep per connection.
//!
//! A tokio timer per wait costs a timer-wheel registration when the wait starts and a removal when
//! it ends; per proxied request, hyper's header timer and a `tokio::time::timeout` around the
//! upstream exchange cost about 2,200 instructions together (callgrind), a fifth of all the
//! balancer adds to hyper. A [`WaitClock`] turns each wait into one atomic store of a millisecond
//! timestamp when it starts and one when it ends. [`Guarded`] drives a connection's future with
//! one sleep beside it, set to when the current wait could first run out; when it fires it looks
//! at the clock and either ends the connection or sets itself to when the wait it sees could run
//! out: at most one timer registration per timeout period, however many waits the connection has.
//! Between those moments a poll of the connection costs one look at the sleep's state, not a
//! timer registration (a `select!` on the connection and a sleep would re-register the sleep's
//! waker on every poll).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Sleep;

use crate::runtime::clock::now_ms;

/// `waiting_since` when nothing is awaited.
const NOT_WAITING: u64 = u64::MAX;

/// Marks `waiting_since` as an idle wait (a keep-alive connection between requests), measured
/// against the idle timeout of [`WaitClock::guard_idle`] instead of the head timeout.
const IDLE: u64 = 1 << 62;

/// Since when (milliseconds of [`now_ms`]) something is awaited, or nothing is.
pub struct WaitClock {
    waiting_since: AtomicU64,
    /// A wait ran out and its [`Guarded`] connection was ended.
    expired: AtomicBool,
}

impl WaitClock {
    /// A clock whose first wait starts now.
    pub fn waiting() -> Self {
        WaitClock {
            waiting_since: AtomicU64::new(now_ms()),
            expired: AtomicBool::new(false),
        }
    }

    /// A clock with nothing awaited yet.
    pub fn idle() -> Self {
        WaitClock {
            waiting_since: AtomicU64::new(NOT_WAITING),
            expired: AtomicBool::new(false),
        }
    }

    /// A wait starts now.
    pub fn start(&self) {
        self.waiting_since.store(now_ms(), Ordering::Relaxed);
    }

    /// An idle wait starts now: nothing is owed until the peer sends again.
    pub fn start_idle(&self) {
        self.waiting_since.store(now_ms() | IDLE, Ordering::Relaxed);
    }

    /// The peer sent bytes: an idle wait becomes a head wait from now (other waits go on).
    #[inline]
    pub fn bytes_arrived(&self) {
        if is_idle(self.waiting_since.load(Ordering::Relaxed)) {
            self.start();
        }
    }

    /// Bytes left for the peer: an idle wait starts again from now (a response body still
    /// streaming is not idleness).
    #[inline]
    pub fn bytes_sent(&self) {
        if is_idle(self.waiting_since.load(Ordering::Relaxed)) {
            self.start_idle();
        }
    }

    /// The wait is over.
    pub fn stop(&self) {
        self.waiting_since.store(NOT_WAITING, Ordering::Relaxed);
    }

    /// True while a wait runs.
    #[cfg(test)]
    pub fn is_waiting(&self) -> bool {
        self.waiting_since.load(Ordering::Relaxed) != NOT_WAITING
    }

    /// True while an idle wait runs.
    #[cfg(test)]
    pub fn is_idle_wait(&self) -> bool {
        is_idle(self.waiting_since.load(Ordering::Relaxed))
    }

    /// True once a wait ran out and its [`Guarded`] connection was ended.
    pub fn has_expired(&self) -> bool {
        self.expired.load(Ordering::Relaxed)
    }

    /// `inner` (a connection's future), ended when one of this clock's waits lasts `timeout`.
    pub fn guard<F: Future>(self: &Arc<Self>, inner: F, timeout: Duration) -> Guarded<F> {
        self.guard_idle(inner, timeout, timeout)
    }

    /// Like [`guard`](Self::guard), with idle waits ([`start_idle`](Self::start_idle)) ended
    /// after `idle` instead.
    pub fn guard_idle<F: Future>(
        self: &Arc<Self>,
        inner: F,
        timeout: Duration,
        idle: Duration,
    ) -> Guarded<F> {
        Guarded {
            inner,
            sleep: tokio::time::sleep(timeout.min(idle)),
            clock: self.clone(),
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            idle_ms: u64::try_from(idle.as_millis()).unwrap_or(u64::MAX),
            armed: false,
        }
    }

    /// `Some(milliseconds until the next look)`, or `None` when the current wait ran out (and
    /// then marks the clock expired).
    fn look(&self, timeout_ms: u64, idle_ms: u64) -> Option<u64> {
        let since = self.waiting_since.load(Ordering::Relaxed);
        let next = if since == NOT_WAITING {
            // The next wait, of either kind, cannot run out sooner.
            next_check(since, 0, timeout_ms.min(idle_ms))
        } else if is_idle(since) {
            next_check(since & !IDLE, now_ms(), idle_ms)
        } else {
            next_check(since, now_ms(), timeout_ms)
        };
        if next.is_none() {
            self.expired.store(true, Ordering::Relaxed);
        }
        next
    }
}

pin_project_lite::pin_project! {
    /// A connection's future with its [`WaitClock`]'s deadline: `Some(output)` when the connection
    /// ended by itself, `None` when a wait ran out first (the connection is then dropped).
    pub struct Guarded<F> {
        #[pin]
        inner: F,
        #[pin]
        sleep: Sleep,
        clock: Arc<WaitClock>,
        timeout_ms: u64,
        idle_ms: u64,
        // The sleep has been polled since it was last set, so it will wake the task when due.
        armed: bool,
    }
}

impl<F: Future> Future for Guarded<F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Poll::Ready(output) = this.inner.poll(cx) {
            return Poll::Ready(Some(output));
        }
        loop {
            if *this.armed {
                if !this.sleep.is_elapsed() {
                    return Poll::Pending;
                }
                // The sleep fired: is the wait it was set for (or a later one) really over?
                let Some(wait_ms) = this.clock.look(*this.timeout_ms, *this.idle_ms) else {
                    return Poll::Ready(None);
                };
                let at = tokio::time::Instant::now() + Duration::from_millis(wait_ms);
                this.sleep.as_mut().reset(at);
            }
            *this.armed = true;
            if this.sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }
}

/// An idle wait runs (`NOT_WAITING` has every bit set, and is none).
fn is_idle(since: u64) -> bool {
    since != NOT_WAITING && since & IDLE != 0
}

/// Pure: `None` when a wait that began at `since` has run out by `now`; otherwise how many
/// milliseconds until the clock must be looked at again (a full timeout when nothing is awaited,
/// since the next wait cannot run out sooner).
pub fn next_check(since: u64, now: u64, timeout_ms: u64) -> Option<u64> {
    if since == NOT_WAITING {
        return Some(timeout_ms.max(1));
    }
    let late_at = since.saturating_add(timeout_ms);
    (now < late_at).then(|| late_at - now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn no_wait_never_runs_out() {
        assert_eq!(next_check(NOT_WAITING, 1_000_000, 10_000), Some(10_000));
        assert_eq!(next_check(NOT_WAITING, 0, 0), Some(1), "never a busy loop");
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
    async fn a_running_wait_ends_the_connection_after_the_timeout_a_stopped_one_does_not() {
        let timeout = Duration::from_millis(60);
        let clock = Arc::new(WaitClock::waiting());
        let started = std::time::Instant::now();
        let never = std::future::pending::<()>;
        let guarded = tokio::time::timeout(Duration::from_secs(5), clock.guard(never(), timeout));
        assert_eq!(
            guarded.await.expect("ended in time"),
            None,
            "ended by the clock"
        );
        assert!(started.elapsed() >= timeout, "{:?}", started.elapsed());
        assert!(clock.has_expired());

        let clock = Arc::new(WaitClock::waiting());
        clock.stop();
        let stopped = tokio::time::timeout(4 * timeout, clock.guard(never(), timeout)).await;
        assert!(stopped.is_err(), "nothing awaited, nothing late");
        assert!(!clock.has_expired());
        let done = clock.guard(async { 7 }, timeout).await;
        assert_eq!(
            done,
            Some(7),
            "a connection that ends by itself passes its output"
        );

        // A wait that starts late is measured from its own start, through a re-set sleep.
        let clock = Arc::new(WaitClock::idle());
        let late_start = {
            let clock = clock.clone();
            async move {
                tokio::time::sleep(timeout / 2).await;
                clock.start();
                std::future::pending::<()>().await
            }
        };
        let started = std::time::Instant::now();
        let ended = tokio::time::timeout(Duration::from_secs(5), clock.guard(late_start, timeout));
        assert_eq!(ended.await.expect("ended in time"), None);
        assert!(
            started.elapsed() >= timeout + timeout / 2,
            "{:?}",
            started.elapsed()
        );

        // An idle wait is measured against the idle timeout, and becomes a head wait when bytes
        // arrive.
        let clock = Arc::new(WaitClock::idle());
        clock.start_idle();
        let started = std::time::Instant::now();
        let idle = clock.guard_idle(never(), Duration::from_secs(3600), timeout);
        let ended = tokio::time::timeout(Duration::from_secs(5), idle).await;
        assert_eq!(ended.expect("ended in time"), None);
        assert!(started.elapsed() >= timeout, "{:?}", started.elapsed());
        let clock = Arc::new(WaitClock::idle());
        clock.start_idle();
        clock.bytes_sent();
        assert!(clock.is_idle_wait());
        clock.bytes_arrived();
        assert!(clock.is_waiting());
        assert!(!clock.is_idle_wait());
        let head = clock.guard_idle(never(), timeout, Duration::from_secs(3600));
        let ended = tokio::time::timeout(Duration::from_secs(5), head).await;
        assert_eq!(ended.expect("a head wait ends at the head timeout"), None);

        let idle = WaitClock::idle();
        assert!(!idle.is_waiting());
        idle.start();
        assert!(idle.is_waiting());
    }
}
