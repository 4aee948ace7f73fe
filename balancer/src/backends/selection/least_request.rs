//! `--balance least-request`: power of two choices over in-flight requests (Envoy's and Traefik's
//! `p2c`). Two distinct candidates are drawn at random from the eligible backends and the one with
//! fewer requests in flight wins (ties go to the first drawn, itself random). Unlike a full scan
//! for the minimum, two random draws keep many balancers or workers from herding onto the same
//! momentarily idle backend, and the cost stays constant in the number of backends.
//!
//! Pure: the eligible set as a bit set, the load as a function, the random draws as arguments.

/// The chosen index among the set bits of `eligible` (which must not be empty), given two random
/// numbers and each index's load.
pub fn pick(eligible: u128, r1: u64, r2: u64, load: impl Fn(usize) -> i64) -> usize {
    let count = u64::from(eligible.count_ones());
    debug_assert!(count > 0);
    if count <= 1 {
        return eligible.trailing_zeros() as usize;
    }
    let a = r1 % count;
    // A second draw among the others: distinct from the first.
    let b = (a + 1 + r2 % (count - 1)) % count;
    let (a, b) = (nth_set_bit(eligible, a), nth_set_bit(eligible, b));
    if load(b) < load(a) {
        b
    } else {
        a
    }
}

/// Index of the `k`-th set bit of `bits` (k from 0; `bits` must have more than `k` set bits).
pub fn nth_set_bit(mut bits: u128, k: u64) -> usize {
    for _ in 0..k {
        bits &= bits.wrapping_sub(1);
    }
    bits.trailing_zeros() as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_less_loaded_of_two_wins() {
        // Two backends: every draw compares both, so the idle one always wins.
        let load = |i: usize| [5, 0][i];
        for r in 0..50 {
            assert_eq!(pick(0b11, r, r * 7 + 3, load), 1);
        }
    }

    #[test]
    fn one_eligible_is_always_chosen() {
        assert_eq!(pick(0b100, 9, 9, |_| 0), 2);
    }

    #[test]
    fn nth_set_bit_counts_set_bits_only() {
        assert_eq!(nth_set_bit(0b1011_0100, 0), 2);
        assert_eq!(nth_set_bit(0b1011_0100, 2), 5);
        assert_eq!(nth_set_bit(1 << 127, 0), 127);
    }

    #[test]
    fn the_most_loaded_is_never_chosen_and_equal_loads_share_evenly() {
        let mut counts = [0usize; 4];
        for r1 in 0..40u64 {
            for r2 in 0..40u64 {
                counts[pick(0b1111, r1, r2, |i| [1, 1, 1, 9][i])] += 1;
            }
        }
        assert_eq!(counts[3], 0, "{counts:?}");
        assert!(counts[..3].iter().all(|c| *c > 400), "{counts:?}");
    }

    proptest::proptest! {
        /// The pick is eligible, and no eligible backend has a load below the pick's and the
        /// other drawn one's... at least, the pick is never the strictly most loaded of two.
        #[test]
        fn picks_an_eligible_backend(eligible in 1u128.., r1: u64, r2: u64, loads in proptest::collection::vec(0i64..100, 128)) {
            let i = pick(eligible, r1, r2, |i| loads[i]);
            proptest::prop_assert!(eligible & (1 << i) != 0);
            if eligible.count_ones() > 1 {
                let max = (0..128).filter(|j| eligible & (1 << j) != 0).map(|j| loads[j]).max().unwrap_or(0);
                let strictly_max = (0..128).filter(|j| eligible & (1 << j) != 0 && loads[*j] == max).count() == 1;
                proptest::prop_assert!(!(strictly_max && loads[i] == max), "picked the single most loaded");
            }
        }
    }
}
