//! Health state of one backend: the passive failure window and the active probe's verdict.
//!
//! Passive: a connect failure, connect timeout, upstream timeout or broken response is a failure;
//! `--max-fails` of them within `--fail-timeout` take the backend out for `--fail-timeout` (the
//! NGINX `max_fails`/`fail_timeout` rule). Active: the prober ([`crate::backends::probe`]) reports
//! each probe here; a failed probe takes the backend out and a pass brings it back (and clears
//! passive marks, since it proves the backend answers again).
//!
//! Pending: a backend starts *pending* and is not healthy until its first probe passes, so a new
//! address (a scale-up, a new version, a restarted task) takes no traffic before it has shown it
//! can serve. Once admitted it stays admitted: a later failing probe takes it *out*, not back to
//! pending. [`Health::require_check`] makes it pending again (an address that left DNS and came
//! back). Selection decides what a pending backend gets when nothing is healthy (the cold start).
//!
//! Pure state, no I/O, so the rules can be tested without a backend. The request path reads
//! health through two atomics; the mutex is only taken on failures and probe results.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use shared::sync::lock;

use crate::runtime::clock::now_ms;
use std::time::{Duration, Instant, SystemTime};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthPolicy {
    pub max_fails: u32,
    pub fail_timeout: Duration,
}

#[derive(Default)]
pub struct Health {
    /// Passive mark: out until this many ms since start (0 = not out).
    passive_out_until: AtomicU64,
    active_down: AtomicBool,
    /// Set by the first passing probe; false while the backend is pending.
    admitted: AtomicBool,
    /// When a passing probe last brought it back from a failed one (ms since start; 0 = never).
    back_at_ms: AtomicU64,
    /// When the first passing probe admitted it (ms since start; 0 = not yet): a newcomer's
    /// slow-start ramp starts here, not when its address appeared.
    admitted_at_ms: AtomicU64,
    detail: Mutex<HealthDetail>,
}

#[derive(Default)]
struct HealthDetail {
    recent_failures: VecDeque<Instant>,
    active_reason: Option<String>,
    passive_reason: Option<String>,
    last_error: Option<(String, SystemTime)>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct LastError {
    pub message: String,
    pub unix_ms: u64,
}

impl Health {
    pub fn is_healthy_at(&self, now_ms: u64) -> bool {
        self.admitted.load(Ordering::Relaxed)
            && !self.active_down.load(Ordering::Relaxed)
            && now_ms >= self.passive_out_until.load(Ordering::Relaxed)
    }

    /// True until the first passing probe (or again after [`Health::require_check`]).
    pub fn is_pending(&self) -> bool {
        !self.admitted.load(Ordering::Relaxed)
    }

    /// Makes the backend pending again: it takes traffic only after its next passing probe.
    /// Its history (last error) is kept.
    pub fn require_check(&self) {
        let mut d = lock(&self.detail);
        d.active_reason = None;
        self.active_down.store(false, Ordering::Relaxed);
        self.admitted.store(false, Ordering::Relaxed);
    }

    /// Records a failed exchange with the backend; returns true if it took the backend out.
    pub fn record_failure(&self, policy: &HealthPolicy, what: &str) -> bool {
        self.record_failure_at(policy, what, Instant::now(), now_ms())
    }

    /// [`Health::record_failure`] at a given time (`now` and the same moment as [`now_ms`]).
    fn record_failure_at(
        &self,
        policy: &HealthPolicy,
        what: &str,
        now: Instant,
        now_ms: u64,
    ) -> bool {
        let mut d = lock(&self.detail);
        d.last_error = Some((what.to_owned(), SystemTime::now()));
        while d
            .recent_failures
            .front()
            .is_some_and(|t| now.duration_since(*t) > policy.fail_timeout)
        {
            d.recent_failures.pop_front();
        }
        d.recent_failures.push_back(now);
        let max = usize::try_from(policy.max_fails).unwrap_or(usize::MAX);
        if d.recent_failures.len() >= max {
            let n = d.recent_failures.len();
            d.recent_failures.clear();
            d.passive_reason = Some(format!(
                "{n} failure(s) within {:?}, last: {what}",
                policy.fail_timeout
            ));
            let until = now_ms
                .saturating_add(u64::try_from(policy.fail_timeout.as_millis()).unwrap_or(u64::MAX));
            self.passive_out_until.store(until, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// Records a probe's result; returns true if this pass admitted a pending backend.
    pub fn record_probe(&self, result: Result<(), String>) -> bool {
        let mut d = lock(&self.detail);
        match result {
            Ok(()) => {
                d.active_reason = None;
                d.passive_reason = None;
                d.recent_failures.clear();
                // An expired passive mark stays: it tells slow start when the backend came back.
                // Never 0, which slow start reads as "never out".
                let now = now_ms().max(1);
                let was_down = self.active_down.swap(false, Ordering::Relaxed);
                if self.passive_out_until.load(Ordering::Relaxed) > now {
                    self.passive_out_until.store(0, Ordering::Relaxed);
                    self.back_at_ms.store(now, Ordering::Relaxed);
                } else if was_down {
                    self.back_at_ms.store(now, Ordering::Relaxed);
                }
                let admitted_now = !self.admitted.swap(true, Ordering::Relaxed);
                if admitted_now {
                    self.admitted_at_ms.store(now, Ordering::Relaxed);
                }
                admitted_now
            }
            Err(reason) => {
                d.last_error = Some((reason.clone(), SystemTime::now()));
                d.active_reason = Some(reason);
                self.active_down.store(true, Ordering::Relaxed);
                false
            }
        }
    }

    /// Since when it has been back from its last mark: a passing probe after a failed one, or
    /// the end of a passive mark (ms since start; 0 if never out). Slow start ramps from here.
    pub fn back_since_ms(&self) -> u64 {
        self.back_at_ms
            .load(Ordering::Relaxed)
            .max(self.passive_out_until.load(Ordering::Relaxed))
    }

    /// When its first passing probe admitted it (ms since start; 0 while pending).
    pub fn admitted_at_ms(&self) -> u64 {
        self.admitted_at_ms.load(Ordering::Relaxed)
    }

    /// Why the backend is out (or pending), if it is.
    pub fn reason(&self) -> Option<String> {
        let d = lock(&self.detail);
        if self.is_pending() {
            return Some(match &d.active_reason {
                Some(r) => format!("pending: health check failed: {r}"),
                None => "pending: waiting for its first passing health check".into(),
            });
        }
        if self.active_down.load(Ordering::Relaxed) {
            return d
                .active_reason
                .as_ref()
                .map(|r| format!("health check failed: {r}"));
        }
        if now_ms() < self.passive_out_until.load(Ordering::Relaxed) {
            return d
                .passive_reason
                .as_ref()
                .map(|r| format!("passive: {r}"))
                .or_else(|| Some("passive: failing".into()));
        }
        None
    }

    pub fn last_error(&self) -> Option<LastError> {
        let d = lock(&self.detail);
        d.last_error.as_ref().map(|(message, at)| LastError {
            message: message.clone(),
            unix_ms: at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_fails: u32, fail_timeout_s: u64) -> HealthPolicy {
        HealthPolicy {
            max_fails,
            fail_timeout: Duration::from_secs(fail_timeout_s),
        }
    }

    /// A backend that passed its first probe.
    fn admitted() -> Health {
        let h = Health::default();
        assert!(h.record_probe(Ok(())));
        h
    }

    #[test]
    fn a_new_backend_is_pending_until_its_first_passing_probe() {
        let h = Health::default();
        assert!(h.is_pending());
        assert!(!h.is_healthy_at(0));
        assert_eq!(
            h.reason().as_deref(),
            Some("pending: waiting for its first passing health check")
        );
        // A failing first probe leaves it pending, with the reason.
        assert!(!h.record_probe(Err("status 503".into())));
        assert!(h.is_pending());
        assert!(!h.is_healthy_at(0));
        assert_eq!(
            h.reason().as_deref(),
            Some("pending: health check failed: status 503")
        );
        // The first pass admits it (and says so once).
        assert!(h.record_probe(Ok(())));
        assert!(!h.is_pending());
        assert!(h.is_healthy_at(0));
        assert_eq!(h.reason(), None);
        assert!(!h.record_probe(Ok(())), "admitted only once");
    }

    #[test]
    fn an_admitted_backend_that_fails_is_out_not_pending() {
        let h = admitted();
        h.record_probe(Err("status 503".into()));
        assert!(!h.is_pending());
        assert!(!h.is_healthy_at(0));
        assert_eq!(
            h.reason().as_deref(),
            Some("health check failed: status 503")
        );
    }

    #[test]
    fn require_check_makes_it_pending_again_keeping_its_last_error() {
        let h = admitted();
        h.record_probe(Err("connect: refused".into()));
        h.require_check();
        assert!(h.is_pending());
        assert!(!h.is_healthy_at(0));
        assert_eq!(
            h.reason().as_deref(),
            Some("pending: waiting for its first passing health check")
        );
        assert_eq!(h.last_error().unwrap().message, "connect: refused");
        assert!(h.record_probe(Ok(())));
        assert!(h.is_healthy_at(0));
    }

    #[test]
    fn passive_failures_count_while_pending_and_a_pass_clears_them() {
        let h = Health::default();
        assert!(h.record_failure_at(&policy(1, 10), "refused", Instant::now(), 100));
        assert!(h.is_pending());
        assert!(h.record_probe(Ok(())));
        assert!(h.is_healthy_at(100));
    }

    #[test]
    fn max_fails_within_the_window_take_the_backend_out_for_fail_timeout() {
        let h = admitted();
        let p = policy(3, 10);
        let t0 = Instant::now();
        assert!(!h.record_failure_at(&p, "a", t0, 1_000));
        assert!(!h.record_failure_at(&p, "b", t0 + Duration::from_secs(1), 2_000));
        assert!(h.is_healthy_at(2_000));
        assert!(h.record_failure_at(&p, "c", t0 + Duration::from_secs(2), 3_000));
        assert!(!h.is_healthy_at(3_000));
        assert!(!h.is_healthy_at(12_999));
        assert!(h.is_healthy_at(13_000), "back after --fail-timeout");
        assert_eq!(h.last_error().unwrap().message, "c");
    }

    #[test]
    fn failures_older_than_the_window_do_not_count() {
        let h = admitted();
        let p = policy(2, 10);
        let t0 = Instant::now();
        assert!(!h.record_failure_at(&p, "old", t0, 0));
        // 11 s later the first failure has left the window: this one is alone in it.
        assert!(!h.record_failure_at(&p, "new", t0 + Duration::from_secs(11), 11_000));
        assert!(h.is_healthy_at(11_000));
        assert!(h.record_failure_at(&p, "again", t0 + Duration::from_secs(12), 12_000));
    }

    #[test]
    fn taking_out_clears_the_window() {
        let h = Health::default();
        let p = policy(2, 10);
        let t0 = Instant::now();
        h.record_failure_at(&p, "a", t0, 0);
        assert!(h.record_failure_at(&p, "b", t0, 0));
        // The next failure starts a new count rather than extending the old one.
        assert!(!h.record_failure_at(&p, "c", t0, 0));
    }

    #[test]
    fn max_fails_one_takes_out_at_once() {
        let h = admitted();
        assert!(h.record_failure_at(&policy(1, 5), "refused", Instant::now(), 100));
        assert!(!h.is_healthy_at(100));
        assert!(h.is_healthy_at(5_100));
    }

    #[test]
    fn a_passing_probe_clears_passive_marks_and_a_failing_one_takes_out() {
        let h = admitted();
        let far = u64::MAX / 2;
        h.record_probe(Err("status 503".into()));
        assert!(!h.is_healthy_at(0));
        assert_eq!(
            h.reason().as_deref(),
            Some("health check failed: status 503")
        );
        h.record_probe(Ok(()));
        assert!(h.is_healthy_at(0));
        assert!(h.record_failure_at(&policy(1, 1000), "x", Instant::now(), far));
        assert!(!h.is_healthy_at(far));
        h.record_probe(Ok(()));
        assert!(h.is_healthy_at(far));
        assert_eq!(h.reason(), None);
    }
}
