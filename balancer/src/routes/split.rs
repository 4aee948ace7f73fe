//! A route's weighted split over its upstream groups (`upstreams = [{ name, weight }, ...]`):
//! which group each request goes to (pure; proptest).
//!
//! The order is NGINX's smooth weighted round-robin, computed once when the table is built into
//! a sequence of one entry per unit of weight; a request takes the next entry of a shared cursor.
//! Every window of `sum(weights)` consecutive requests therefore holds exactly each group's
//! weight, and the groups are interleaved (90/10 sends one in ten to the canary, never ten in a
//! row), whatever the request rate. Random choice would only be within a few points over 10,000
//! requests; this is exact, for one relaxed atomic add per request.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The most groups one route may split over.
pub const MAX_TARGETS: usize = 32;
/// A weight's range: at least 1 (a zero weight is refused: leave the group out instead).
pub const MIN_WEIGHT: u32 = 1;
pub const MAX_WEIGHT: u32 = 1000;

/// The precomputed order and its cursor.
#[derive(Debug)]
pub struct Split {
    sequence: Box<[u8]>,
    next: AtomicUsize,
}

impl Split {
    /// The split over `weights` (one per target, in the file's order).
    pub fn new(weights: &[u32]) -> Result<Split, String> {
        if weights.is_empty() || weights.len() > MAX_TARGETS {
            return Err(format!("a split has between 1 and {MAX_TARGETS} upstreams"));
        }
        if let Some(w) = weights
            .iter()
            .find(|w| !(MIN_WEIGHT..=MAX_WEIGHT).contains(*w))
        {
            return Err(format!(
                "weight {w} must be between {MIN_WEIGHT} and {MAX_WEIGHT}"
            ));
        }
        Ok(Split {
            sequence: smooth_order(weights).into_boxed_slice(),
            next: AtomicUsize::new(0),
        })
    }

    /// The target the next request goes to.
    pub fn pick(&self) -> usize {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        usize::from(self.sequence[n % self.sequence.len()])
    }

    /// How many targets the split has.
    pub fn len(&self) -> usize {
        self.sequence
            .iter()
            .copied()
            .max()
            .map_or(0, |m| usize::from(m) + 1)
    }

    /// Whether the split has no target (never: [`Split::new`] refuses that).
    pub fn is_empty(&self) -> bool {
        self.sequence.is_empty()
    }
}

/// NGINX's smooth weighted round-robin, run for one full cycle: each step every target gains
/// its weight, the highest current value is chosen and loses the total.
fn smooth_order(weights: &[u32]) -> Vec<u8> {
    let total: i64 = weights.iter().map(|&w| i64::from(w)).sum();
    let mut current = vec![0i64; weights.len()];
    let mut order = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for _ in 0..total {
        for (c, &w) in current.iter_mut().zip(weights) {
            *c += i64::from(w);
        }
        // The first of the highest, so the file's order breaks ties.
        let mut best = 0;
        for (i, &c) in current.iter().enumerate() {
            if c > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        order.push(u8::try_from(best).unwrap_or(u8::MAX));
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ninety_ten_sends_every_tenth_request_to_the_canary() {
        let split = Split::new(&[90, 10]).unwrap();
        let picks: Vec<usize> = (0..100).map(|_| split.pick()).collect();
        assert_eq!(picks.iter().filter(|&&p| p == 1).count(), 10);
        let longest_app_run = picks.split(|&p| p == 1).map(<[usize]>::len).max().unwrap();
        assert!(longest_app_run <= 10, "interleaved: {picks:?}");
    }

    #[test]
    fn zero_weights_and_too_many_targets_are_refused() {
        assert!(Split::new(&[0]).is_err());
        assert!(Split::new(&[5, 0]).is_err());
        assert!(Split::new(&[]).is_err());
        assert!(Split::new(&[1001]).is_err());
        assert!(Split::new(&[1; MAX_TARGETS + 1]).is_err());
        assert_eq!(Split::new(&[1; MAX_TARGETS]).unwrap().len(), MAX_TARGETS);
    }

    proptest! {
        /// Every window of sum(weights) requests holds exactly each target's weight.
        #[test]
        fn every_cycle_is_exact(
            weights in proptest::collection::vec(MIN_WEIGHT..=50u32, 1..8),
            start in 0usize..500,
        ) {
            let split = Split::new(&weights).unwrap();
            let total: usize = weights.iter().map(|&w| w as usize).sum();
            for _ in 0..start {
                split.pick();
            }
            let mut counts = vec![0u32; weights.len()];
            for _ in 0..total {
                counts[split.pick()] += 1;
            }
            prop_assert_eq!(counts, weights);
        }
    }
}
