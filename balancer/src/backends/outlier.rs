//! Outlier ejection on 5xx (`--max-5xx N`, Envoy's consecutive-5xx detection): N 5xx responses
//! in a row from one backend take it out for `--fail-timeout`, like a connection failure. Never
//! more than half of the backends are out for this reason at once, so an outage of the app
//! itself (every replica answering 500) does not empty the rotation.
//!
//! [`Outlier`] is one backend's streak and ejection mark (atomics on the response path);
//! [`Ejector`] serialises the rare decision to eject so the half cap holds under concurrency.

use shared::sync::lock;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;

/// One backend's consecutive-5xx streak and ejection.
#[derive(Default)]
pub struct Outlier {
    streak: AtomicU32,
    /// Out until this many ms since start (0 = never ejected).
    ejected_until: AtomicU64,
    /// Ejections so far.
    ejections: AtomicU64,
}

impl Outlier {
    pub fn is_ejected_at(&self, now_ms: u64) -> bool {
        now_ms < self.ejected_until.load(Ordering::Relaxed)
    }

    /// When the last ejection ends (or ended); 0 if never ejected.
    pub fn ejected_until(&self) -> u64 {
        self.ejected_until.load(Ordering::Relaxed)
    }

    pub fn ejections(&self) -> u64 {
        self.ejections.load(Ordering::Relaxed)
    }

    /// Records one response status; returns the streak length when it reached `max` (the caller
    /// then asks the [`Ejector`]). `max` 0 means off.
    pub fn record(&self, status: u16, max: u32) -> Option<u32> {
        if max == 0 {
            return None;
        }
        if status < 500 {
            if self.streak.load(Ordering::Relaxed) != 0 {
                self.streak.store(0, Ordering::Relaxed);
            }
            return None;
        }
        let streak = self
            .streak
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        (streak >= max).then_some(streak)
    }

    fn eject(&self, until_ms: u64) {
        self.streak.store(0, Ordering::Relaxed);
        self.ejections.fetch_add(1, Ordering::Relaxed);
        self.ejected_until.store(until_ms, Ordering::Relaxed);
    }
}

/// Decides ejections one at a time, holding the half cap.
#[derive(Default)]
pub struct Ejector {
    deciding: Mutex<()>,
}

/// The most backends out for 5xx at once among `total`: half, rounded down.
pub fn cap(total: usize) -> usize {
    total / 2
}

impl Ejector {
    /// Ejects `candidate` until `until_ms` unless that would put more than half of `all` out
    /// for 5xx at `now_ms`. Returns whether it did.
    pub fn try_eject<'a>(
        &self,
        candidate: &Outlier,
        all: impl Iterator<Item = &'a Outlier>,
        now_ms: u64,
        until_ms: u64,
    ) -> bool {
        let _one_at_a_time = lock(&self.deciding);
        if candidate.is_ejected_at(now_ms) {
            return false;
        }
        let (mut total, mut out) = (0usize, 0usize);
        for o in all {
            total += 1;
            out += usize::from(o.is_ejected_at(now_ms));
        }
        if out + 1 > cap(total) {
            // Keep the streak short so the next 5xx asks again rather than overflowing.
            candidate.streak.store(0, Ordering::Relaxed);
            return false;
        }
        candidate.eject(until_ms);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn n_consecutive_5xx_reach_the_limit_and_a_success_resets() {
        let o = Outlier::default();
        assert_eq!(o.record(500, 3), None);
        assert_eq!(o.record(502, 3), None);
        assert_eq!(o.record(200, 3), None);
        assert_eq!(o.record(500, 3), None);
        assert_eq!(o.record(503, 3), None);
        assert_eq!(o.record(500, 3), Some(3));
        assert_eq!(o.record(500, 0), None, "off");
    }

    #[test]
    fn ejection_lasts_until_the_mark() {
        let all: Vec<Outlier> = (0..2).map(|_| Outlier::default()).collect();
        let e = Ejector::default();
        assert!(e.try_eject(&all[0], all.iter(), 100, 1_100));
        assert!(all[0].is_ejected_at(1_099));
        assert!(!all[0].is_ejected_at(1_100));
        assert_eq!(all[0].ejections(), 1);
    }

    #[test]
    fn never_more_than_half_out() {
        let all: Vec<Outlier> = (0..5).map(|_| Outlier::default()).collect();
        let e = Ejector::default();
        let ejected = all
            .iter()
            .filter(|o| e.try_eject(o, all.iter(), 0, 1_000))
            .count();
        assert_eq!(ejected, 2);
        // Once the first ejections end, others may go.
        assert!(e.try_eject(&all[4], all.iter(), 1_000, 2_000));
        let single = [Outlier::default()];
        assert!(
            !e.try_eject(&single[0], single.iter(), 0, 1_000),
            "one backend is never ejected"
        );
    }

    proptest::proptest! {
        /// Any sequence of ejection attempts at any times keeps at most half out at every moment.
        #[test]
        fn the_cap_holds(n in 1usize..12, tries in proptest::collection::vec((0usize..12, 0u64..5_000), 0..60)) {
            let all: Vec<Outlier> = (0..n).map(|_| Outlier::default()).collect();
            let e = Ejector::default();
            let mut tries = tries;
            tries.sort_by_key(|t| t.1);
            for (i, now) in tries {
                e.try_eject(&all[i % n], all.iter(), now, now + 1_000);
                let out = all.iter().filter(|o| o.is_ejected_at(now)).count();
                proptest::prop_assert!(out <= n / 2);
            }
        }
    }
}
