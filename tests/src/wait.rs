//! Waiting for a condition by polling, bounded in time.
//!
//! Tests never sleep a fixed time to let something happen: they poll for the state they need and give up with
//! a clear failure after a deadline.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often conditions are polled.
pub const POLL: Duration = Duration::from_millis(20);

/// Polls `check` until it returns true or `timeout` passes; returns whether it became true.
pub async fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Like [`wait_until`] for an async check.
pub async fn wait_until_async<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), check())
            .await
            .unwrap_or(false)
        {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Hard bound on any one test's body, so a wedged process fails the test instead of hanging the suite.
pub const TEST_BOUND: Duration = Duration::from_secs(150);

/// Runs a test body bounded by [`TEST_BOUND`], failing with a message that names `what`.
pub async fn bounded<F: Future<Output = ()>>(what: &str, body: F) {
    if tokio::time::timeout(TEST_BOUND, body).await.is_err() {
        panic!("{what}: did not finish within {TEST_BOUND:?}");
    }
}
