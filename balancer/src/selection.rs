//! Selection: round-robin over the healthy backends, and the order of retries.
//!
//! One shared cursor counts picks; the k-th pick goes to healthy backend `k mod healthy_count`, so
//! with N healthy backends and sequential requests each gets exactly 1/N. A request's attempt
//! order continues through the remaining healthy backends, then the ones marked out (marks can be
//! stale), each at most once. When every backend is out the rotation runs over all of them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::backend::Backend;

#[derive(Default)]
pub struct RoundRobin {
    cursor: AtomicUsize,
}

/// The backends one request may try, in order, each once.
pub struct Attempts {
    backends: Arc<[Arc<Backend>]>,
    /// Health snapshot taken at selection time so the order cannot shift under the request.
    healthy: u128,
    first: usize,
    /// How many have been handed out.
    taken: usize,
}

impl RoundRobin {
    pub fn attempts(&self, backends: Arc<[Arc<Backend>]>, now_ms: u64) -> Attempts {
        let mut healthy: u128 = 0;
        let mut healthy_count = 0usize;
        for (i, b) in backends.iter().enumerate().take(128) {
            if b.health.is_healthy_at(now_ms) {
                healthy |= 1 << i;
                healthy_count += 1;
            }
        }
        let n = backends.len().min(128);
        let first = if n == 0 {
            0
        } else if healthy_count == 0 {
            self.cursor.fetch_add(1, Ordering::Relaxed) % n
        } else {
            let k = self.cursor.fetch_add(1, Ordering::Relaxed) % healthy_count;
            nth_set_bit(healthy, k)
        };
        Attempts {
            backends,
            healthy,
            first,
            taken: 0,
        }
    }
}

fn nth_set_bit(mut bits: u128, mut k: usize) -> usize {
    loop {
        let i = bits.trailing_zeros() as usize;
        if k == 0 {
            return i;
        }
        bits &= !(1u128 << i);
        k -= 1;
    }
}

impl Attempts {
    pub fn is_empty(&self) -> bool {
        self.backends.is_empty()
    }
}

impl Iterator for Attempts {
    type Item = Arc<Backend>;

    fn next(&mut self) -> Option<Arc<Backend>> {
        let n = self.backends.len().min(128);
        if self.taken >= n {
            return None;
        }
        let idx = if self.taken == 0 {
            self.first
        } else {
            // The k-th retry: healthy ones after `first` in ring order, then the unhealthy ones.
            let ring = (1..n).map(|step| (self.first + step) % n);
            let healthy = ring
                .clone()
                .filter(|i| self.healthy & (1 << i) != 0 && *i != self.first);
            let unhealthy = ring.filter(|i| self.healthy & (1 << i) == 0);
            healthy.chain(unhealthy).nth(self.taken - 1)?
        };
        self.taken += 1;
        self.backends.get(idx).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    fn pool(n: u16) -> Arc<[Arc<Backend>]> {
        let m = Metrics::new();
        (0..n)
            .map(|i| {
                Arc::new(
                    Backend::new(
                        format!("127.0.0.1:{}", 1000 + i).parse().unwrap(),
                        "app:5000",
                        &m,
                        1,
                    )
                    .unwrap(),
                )
            })
            .collect::<Vec<_>>()
            .into()
    }

    #[test]
    fn exact_shares_and_skips_unhealthy() {
        let backends = pool(3);
        let rr = RoundRobin::default();
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
        let rr = RoundRobin::default();
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
        let rr = RoundRobin::default();
        let a = rr.attempts(backends.clone(), 0).next().unwrap().addr;
        let b = rr.attempts(backends.clone(), 0).next().unwrap().addr;
        assert_ne!(a, b);
        assert_eq!(rr.attempts(backends, 0).count(), 2);
    }
}
