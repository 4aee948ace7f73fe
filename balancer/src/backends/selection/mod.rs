//! Selection: the first backend of a request (`--balance round-robin` or `least-request`, with
//! `--slow-start`) and the order of retries.
//!
//! Round-robin: one shared cursor counts picks; the k-th pick goes to healthy backend
//! `k mod healthy_count`, so with N healthy backends and sequential requests each gets exactly
//! 1/N. Least-request: power of two choices over in-flight requests ([`crate::backends::selection::least_request`]).
//! Slow start ([`crate::backends::selection::slow_start`]) first leaves out the ramping backends that lose their draw.
//! Drained backends (admin API) are never tried; backends ejected for 5xx count as out. A request's attempt
//! order continues through the remaining healthy backends, then the ones marked out (marks can be
//! stale), then the pending ones (never passed a health check yet), each at most once. When no
//! backend is healthy the rotation runs over all of them, pending ones included: that is the cold
//! start, when every backend is new and none has been checked yet.
//!
//! Health is snapshotted into a `u128` bit set per request (no allocation), so at most
//! [`MAX_BACKENDS`] backends (the first in address order) take part; the rest get no traffic, which
//! discovery logs and `/status` shows (`backends_beyond_limit`).

pub mod least_request;
pub mod slow_start;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::backends::backend::Backend;
use least_request::nth_set_bit;

/// `--balance`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Balance {
    RoundRobin,
    LeastRequest,
}

impl Balance {
    pub fn name(self) -> &'static str {
        match self {
            Balance::RoundRobin => "round-robin",
            Balance::LeastRequest => "least-request",
        }
    }
}

/// The most backends selection serves: the width of the per-request health bit set.
pub const MAX_BACKENDS: usize = u128::BITS as usize;

/// How many of `backends` selection leaves out (0 within [`MAX_BACKENDS`]).
pub fn beyond_limit(backends: usize) -> usize {
    backends.saturating_sub(MAX_BACKENDS)
}

/// The first choice of every request (`--balance`, `--slow-start`), shared by all workers.
pub struct Selection {
    mode: Balance,
    slow_start_ms: u64,
    cursor: AtomicUsize,
}

impl Default for Selection {
    /// Round-robin without slow start.
    fn default() -> Self {
        Selection::new(Balance::RoundRobin, Duration::ZERO)
    }
}

/// The backends one request may try, in order, each once.
pub struct Attempts {
    backends: Arc<[Arc<Backend>]>,
    /// Health snapshot taken at selection time so the order cannot shift under the request.
    healthy: u128,
    /// Backends that may be tried at all: every one but the drained ones.
    usable: u128,
    /// The pending ones (a subset of the not healthy).
    pending: u128,
    first: usize,
    /// How many have been handed out.
    taken: usize,
}

impl Selection {
    pub fn new(mode: Balance, slow_start: Duration) -> Self {
        Selection {
            mode,
            slow_start_ms: u64::try_from(slow_start.as_millis()).unwrap_or(u64::MAX),
            cursor: AtomicUsize::new(0),
        }
    }

    pub fn attempts(&self, backends: Arc<[Arc<Backend>]>, now_ms: u64) -> Attempts {
        let (healthy, usable, pending) = classify(&backends, now_ms);
        // When every backend is out the rotation runs over all of them (marks can be stale).
        let pool = if healthy != 0 { healthy } else { usable };
        let first = if pool == 0 {
            0
        } else {
            let eligible = self.admit(pool, &backends, now_ms);
            match self.mode {
                Balance::RoundRobin => {
                    let k = self.cursor.fetch_add(1, Ordering::Relaxed) % count(eligible);
                    nth_set_bit(eligible, k as u64)
                }
                Balance::LeastRequest => {
                    least_request::pick(eligible, rand::random(), rand::random(), |i| {
                        backends.get(i).map_or(i64::MAX, |b| b.in_flight())
                    })
                }
            }
        };
        Attempts {
            backends,
            healthy,
            usable,
            pending,
            first,
            taken: 0,
        }
    }

    /// A sticky request's attempts: backend `pinned` first when it is in the rotation (healthy,
    /// not ejected, not drained), the others after it as retries; otherwise an ordinary pick.
    pub fn attempts_pinned(
        &self,
        backends: Arc<[Arc<Backend>]>,
        now_ms: u64,
        pinned: usize,
    ) -> Attempts {
        let (healthy, usable, pending) = classify(&backends, now_ms);
        if pinned >= MAX_BACKENDS || healthy & (1 << pinned) == 0 {
            return self.attempts(backends, now_ms);
        }
        Attempts {
            backends,
            healthy,
            usable,
            pending,
            first: pinned,
            taken: 0,
        }
    }

    /// `pool` less the ramping backends that lose their slow-start draw this time (all of `pool`
    /// if every one of them lost).
    fn admit(&self, pool: u128, backends: &[Arc<Backend>], now_ms: u64) -> u128 {
        if self.slow_start_ms == 0 {
            return pool;
        }
        let mut admitted = pool;
        let mut bits = pool;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let Some(b) = backends.get(i) else { continue };
            let weight = slow_start::weight(now_ms, b.ramp_since_ms(), self.slow_start_ms);
            if !slow_start::admitted(weight, rand::random::<f64>()) {
                admitted &= !(1 << i);
            }
        }
        if admitted == 0 {
            pool
        } else {
            admitted
        }
    }
}

/// The health snapshot of one request: (healthy, usable, pending) bit sets; see [`Attempts`].
fn classify(backends: &[Arc<Backend>], now_ms: u64) -> (u128, u128, u128) {
    let (mut healthy, mut usable, mut pending) = (0u128, 0u128, 0u128);
    for (i, b) in backends.iter().enumerate().take(MAX_BACKENDS) {
        if b.is_drained() {
            continue;
        }
        usable |= 1 << i;
        if b.in_rotation_at(now_ms) {
            healthy |= 1 << i;
        } else if b.health.is_pending() {
            pending |= 1 << i;
        }
    }
    (healthy, usable, pending)
}

fn count(bits: u128) -> usize {
    bits.count_ones() as usize
}

impl Attempts {
    pub fn is_empty(&self) -> bool {
        self.usable == 0
    }
}

impl Iterator for Attempts {
    type Item = Arc<Backend>;

    fn next(&mut self) -> Option<Arc<Backend>> {
        let n = self.backends.len().min(MAX_BACKENDS);
        if self.taken >= count(self.usable) {
            return None;
        }
        let idx = if self.taken == 0 {
            self.first
        } else {
            // The k-th retry: healthy ones after `first` in ring order, then those marked out,
            // then the pending ones; never a drained one.
            let ring = (1..n)
                .map(|step| (self.first + step) % n)
                .filter(|i| self.usable & (1 << i) != 0);
            let class = |bits: u128| ring.clone().filter(move |i| bits & (1 << i) != 0);
            let out = !self.healthy & !self.pending;
            class(self.healthy)
                .chain(class(out))
                .chain(class(self.pending))
                .nth(self.taken - 1)?
        };
        self.taken += 1;
        self.backends.get(idx).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::metrics::Metrics;

    /// `n` backends that passed their first health check.
    fn pool(n: u16) -> Arc<[Arc<Backend>]> {
        let backends = pending_pool(n);
        for b in backends.iter() {
            b.health.record_probe(Ok(()));
        }
        backends
    }

    /// `n` backends just discovered: pending, none checked yet.
    fn pending_pool(n: u16) -> Arc<[Arc<Backend>]> {
        let m = Metrics::new();
        (0..n)
            .map(|i| {
                let mut b = Backend::new(
                    format!("127.0.0.1:{}", 1000 + i).parse().unwrap(),
                    "app:5000",
                    &m,
                    1,
                )
                .unwrap();
                b.joined_ms = 0;
                Arc::new(b)
            })
            .collect::<Vec<_>>()
            .into()
    }

    #[test]
    fn exact_shares_and_skips_unhealthy() {
        let backends = pool(3);
        let rr = Selection::default();
        let mut counts = [0; 3];
        for _ in 0..300 {
            let b = rr.attempts(backends.clone(), 0).next().unwrap();
            counts[usize::from(b.addr.port() - 1000)] += 1;
        }
        assert_eq!(counts, [100, 100, 100]);

        backends[1].health.record_probe(Err("down".into()));
        let mut counts = [0; 3];
        for _ in 0..100 {
            let b = rr.attempts(backends.clone(), 0).next().unwrap();
            counts[usize::from(b.addr.port() - 1000)] += 1;
        }
        assert_eq!(counts, [50, 0, 50]);
    }

    #[test]
    fn every_backend_tried_once_healthy_first() {
        let backends = pool(4);
        backends[2].health.record_probe(Err("down".into()));
        let rr = Selection::default();
        for _ in 0..8 {
            let order: Vec<u16> = rr
                .attempts(backends.clone(), 0)
                .map(|b| b.addr.port() - 1000)
                .collect();
            assert_eq!(order.len(), 4);
            assert_eq!(*order.last().unwrap(), 2);
            let mut sorted = order.clone();
            sorted.sort();
            assert_eq!(sorted, [0, 1, 2, 3]);
        }
    }

    #[test]
    fn all_out_still_rotates_over_all() {
        let backends = pool(2);
        for b in backends.iter() {
            b.health.record_probe(Err("down".into()));
        }
        let rr = Selection::default();
        let a = rr.attempts(backends.clone(), 0).next().unwrap().addr;
        let b = rr.attempts(backends.clone(), 0).next().unwrap().addr;
        assert_ne!(a, b);
        assert_eq!(rr.attempts(backends, 0).count(), 2);
    }

    #[test]
    fn beyond_the_limit_backends_get_nothing_and_are_counted() {
        assert_eq!(beyond_limit(MAX_BACKENDS), 0);
        assert_eq!(beyond_limit(MAX_BACKENDS + 2), 2);
        let backends = pool(130);
        let rr = Selection::default();
        let order: Vec<u16> = rr
            .attempts(backends.clone(), 0)
            .map(|b| b.addr.port() - 1000)
            .collect();
        assert_eq!(order.len(), MAX_BACKENDS);
        assert!(order.iter().all(|p| usize::from(*p) < MAX_BACKENDS));
    }

    #[test]
    fn a_pending_backend_gets_no_first_pick_while_one_is_healthy_and_is_tried_last() {
        let backends = pending_pool(3);
        backends[0].health.record_probe(Ok(()));
        backends[1].health.record_probe(Ok(()));
        backends[1].health.record_probe(Err("down".into()));
        let rr = Selection::default();
        for _ in 0..6 {
            let order: Vec<u16> = rr
                .attempts(backends.clone(), 0)
                .map(|b| b.addr.port() - 1000)
                .collect();
            // Healthy, then marked out, then pending.
            assert_eq!(order, [0, 1, 2]);
        }
        backends[2].health.record_probe(Ok(()));
        let firsts: Vec<u16> = (0..2)
            .map(|_| rr.attempts(backends.clone(), 0).next().unwrap().addr.port() - 1000)
            .collect();
        assert!(firsts.contains(&2), "admitted after its pass: {firsts:?}");
    }

    #[test]
    fn cold_start_rotates_over_the_pending_ones() {
        let backends = pending_pool(3);
        let rr = Selection::default();
        let mut firsts: Vec<u16> = (0..3)
            .map(|_| rr.attempts(backends.clone(), 0).next().unwrap().addr.port() - 1000)
            .collect();
        firsts.sort_unstable();
        assert_eq!(firsts, [0, 1, 2]);
        assert_eq!(rr.attempts(backends, 0).count(), 3);
    }

    /// A backend's class in the attempt order: 0 healthy, 1 marked out, 2 pending.
    fn set_class(b: &Backend, class: u8) {
        if class < 2 {
            b.health.record_probe(Ok(()));
        }
        if class == 1 {
            b.health.record_probe(Err("down".into()));
        }
    }

    #[test]
    fn slow_start_gives_a_returning_backend_a_small_share_in_both_modes() {
        for mode in [Balance::RoundRobin, Balance::LeastRequest] {
            // Two backends of the first rotation, one back from a failed check just now.
            let backends = pool(3);
            backends[2].health.record_probe(Err("down".into()));
            backends[2].health.record_probe(Ok(()));
            let since = backends[2].ramp_since_ms();
            let s = Selection::new(mode, Duration::from_secs(10));
            let mut late = 0;
            for _ in 0..3000 {
                let first = s.attempts(backends.clone(), since).next().unwrap();
                late += usize::from(first.addr == backends[2].addr);
            }
            // Weight 0.05 at the start of the ramp: about 0.05 / 2.05 of the picks.
            assert!(late < 150, "{mode:?}: {late} of 3000");
            assert!(late > 0, "{mode:?}: never picked");
            // After the window: a full third (least-request with equal loads: about a third).
            let mut late = 0;
            for _ in 0..3000 {
                let first = s.attempts(backends.clone(), since + 10_000).next().unwrap();
                late += usize::from(first.addr == backends[2].addr);
            }
            assert!(
                (800..=1200).contains(&late),
                "{mode:?}: {late} of 3000 after the window"
            );
        }
    }

    #[test]
    fn a_pinned_request_goes_to_its_backend_while_in_rotation_and_retries_elsewhere() {
        let backends = pool(3);
        let rr = Selection::default();
        for _ in 0..4 {
            let order: Vec<u16> = rr
                .attempts_pinned(backends.clone(), 0, 1)
                .map(|b| b.addr.port() - 1000)
                .collect();
            assert_eq!(order, [1, 2, 0]);
        }
        backends[1].set_drained(true);
        let order: Vec<u16> = rr
            .attempts_pinned(backends.clone(), 0, 1)
            .map(|b| b.addr.port() - 1000)
            .collect();
        assert_eq!(order.len(), 2);
        assert!(!order.contains(&1), "drained: never tried");
        backends[1].set_drained(false);
        backends[1].health.record_probe(Err("down".into()));
        let first = rr.attempts_pinned(backends.clone(), 0, 1).next().unwrap();
        assert_ne!(first.addr.port(), 1001, "out of the rotation: a fresh pick");
        let beyond = rr
            .attempts_pinned(backends, 0, MAX_BACKENDS)
            .next()
            .unwrap();
        assert_ne!(beyond.addr.port(), 1001);
    }

    proptest::proptest! {
        /// For any mix of healthy, marked-out and pending backends and any cursor position: each
        /// backend once, healthy ones first, then marked out, then pending (after the first pick
        /// when none is healthy); the first pick healthy when any is; over `healthy` picks each
        /// healthy one exactly once, and with none healthy over `n` picks every backend once.
        #[test]
        fn attempt_order(class in proptest::collection::vec(0u8..3, 1..12), skip in 0usize..50) {
            let n = class.len();
            let backends = pending_pool(u16::try_from(n).unwrap());
            for (b, c) in backends.iter().zip(&class) {
                set_class(b, *c);
            }
            let rr = Selection::default();
            for _ in 0..skip {
                rr.attempts(backends.clone(), 0);
            }
            let healthy: Vec<usize> = (0..n).filter(|i| class[*i] == 0).collect();
            let order: Vec<usize> = rr
                .attempts(backends.clone(), 0)
                .map(|b| usize::from(b.addr.port() - 1000))
                .collect();
            let mut sorted = order.clone();
            sorted.sort_unstable();
            proptest::prop_assert_eq!(sorted, (0..n).collect::<Vec<_>>());
            let ranks: Vec<u8> = order.iter().map(|i| class[*i]).collect();
            let ordered_from = usize::from(healthy.is_empty());
            proptest::prop_assert!(ranks[ordered_from..].windows(2).all(|w| w[0] <= w[1]), "{:?}", ranks);
            let picks = if healthy.is_empty() { n } else { healthy.len() };
            let mut firsts: Vec<usize> = (0..picks)
                .map(|_| usize::from(rr.attempts(backends.clone(), 0).next().unwrap().addr.port() - 1000))
                .collect();
            firsts.sort_unstable();
            let expected: Vec<usize> = if healthy.is_empty() { (0..n).collect() } else { healthy };
            proptest::prop_assert_eq!(firsts, expected);
        }
    }
}
