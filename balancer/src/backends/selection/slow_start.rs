//! Slow start (`--slow-start`): a backend that joins or comes back ramps its share linearly from
//! [`MIN_WEIGHT`] to full over the window (HAProxy's `slowstart`), so a cold replica (empty
//! caches, a JIT or a connection pool still warming) is not handed a full share at once.
//!
//! The weight is applied by selection as an admission chance: a ramping backend takes part in a
//! request's first choice with probability `weight`, in both balance modes, so its share is about
//! `weight` times a full one. Retries may still use it (a retry only happens when the others
//! failed). Pure: times in, weight out.

/// The weight a backend starts its ramp with: small but not zero, so it is seen to work.
pub const MIN_WEIGHT: f64 = 0.05;

/// The weight at `now_ms` of a backend back in the rotation since `since_ms`, for a window of
/// `window_ms` (0 = slow start off: always 1). `since_ms` 0 means it has been in the rotation
/// from the start, with no one to ramp up beside: full weight.
pub fn weight(now_ms: u64, since_ms: u64, window_ms: u64) -> f64 {
    if window_ms == 0 || since_ms == 0 {
        return 1.0;
    }
    let elapsed = now_ms.saturating_sub(since_ms);
    if elapsed >= window_ms {
        return 1.0;
    }
    // Millisecond counts below 2^53 convert exactly.
    #[allow(clippy::cast_precision_loss)]
    let fraction = elapsed as f64 / window_ms as f64;
    MIN_WEIGHT + (1.0 - MIN_WEIGHT) * fraction
}

/// Whether a backend of `weight` takes part, given a uniform `roll` in `[0, 1)`.
pub fn admitted(weight: f64, roll: f64) -> bool {
    weight >= 1.0 || roll < weight
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ramps_linearly_from_the_minimum_to_full() {
        assert!((weight(1_000, 1_000, 10_000) - MIN_WEIGHT).abs() < 1e-9);
        let half = weight(6_000, 1_000, 10_000);
        assert!((half - (MIN_WEIGHT + (1.0 - MIN_WEIGHT) / 2.0)).abs() < 1e-9);
        assert!((weight(11_000, 1_000, 10_000) - 1.0).abs() < f64::EPSILON);
        assert!((weight(5, 0, 0) - 1.0).abs() < f64::EPSILON, "off");
        assert!(
            (weight(5, 0, 10_000) - 1.0).abs() < f64::EPSILON,
            "there from the start"
        );
        // Not back yet (the mark is in the future): the minimum, never more.
        assert!((weight(0, 5_000, 10_000) - MIN_WEIGHT).abs() < 1e-9);
    }

    #[test]
    fn admission_follows_the_weight() {
        assert!(admitted(1.0, 0.999));
        assert!(!admitted(0.25, 0.25));
        assert!(admitted(0.25, 0.2499));
        let admitted_count = (0..1000)
            .filter(|i| admitted(0.3, f64::from(*i) / 1000.0))
            .count();
        assert_eq!(admitted_count, 300);
    }

    proptest::proptest! {
        /// The weight never leaves [MIN_WEIGHT, 1] and never falls as time passes.
        #[test]
        fn bounded_and_monotone(since in 1u64..100_000, window in 0u64..100_000, a in 0u64..300_000, b in 0u64..300_000) {
            let (early, late) = (a.min(b), a.max(b));
            let (w1, w2) = (weight(early, since, window), weight(late, since, window));
            proptest::prop_assert!((MIN_WEIGHT..=1.0).contains(&w1));
            proptest::prop_assert!(w1 <= w2);
        }
    }
}
