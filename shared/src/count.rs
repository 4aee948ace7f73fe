//! Count syntax: a whole number of digits (`10`, `100000`), nothing else: no sign, no unit, no
//! fraction, no separators. Every count setting has a range ([`within`]), never its whole type:
//! a typo such as `4294967295` is refused at start rather than overflowing something later.

use std::fmt::Display;
use std::str::FromStr;

use crate::setting::Within;

/// Parses a whole number that fits `T`; anything else is a clean error.
pub fn parse_count<T: FromStr>(raw: &str) -> Result<T, String> {
    whole_number(raw)?
        .parse()
        .map_err(|_| format!("`{raw}` is too large"))
}

/// `raw` trimmed, if it is digits only.
fn whole_number(raw: &str) -> Result<&str, String> {
    let text = raw.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{raw}` is not a whole number like 10"));
    }
    Ok(text)
}

/// The integer types a count setting may have.
pub trait Count: FromStr + Display + Copy + PartialOrd {
    const MAX: Self;
}

macro_rules! count {
    ($($t:ty),*) => {$(impl Count for $t { const MAX: Self = <$t>::MAX; })*};
}
count!(u16, u32, u64, usize);

/// As [`parse_count`], but a number too large for `T` reads as `T::MAX`, which no range takes
/// ([`within`]), so it is refused with the range rather than with "too large".
fn parse_saturating<T: Count>(raw: &str) -> Result<T, String> {
    Ok(whole_number(raw)?.parse().unwrap_or(T::MAX))
}

/// A count setting taking `min..=max`: the clap value parser, e.g.
/// `value_parser = within(1u32, 1_000_000)`. Its error says `must be between 1 and 1000000`.
/// `max` must lie below the type's maximum: every count has a range narrower than its type.
pub fn within<T: Count>(min: T, max: T) -> Within<T> {
    debug_assert!(
        max < T::MAX,
        "a count's range must end below its type's maximum"
    );
    Within::new(parse_saturating::<T>, T::to_string, min, max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn whole_numbers_only() {
        assert_eq!(parse_count::<u32>(" 42 "), Ok(42));
        assert_eq!(parse_count::<u16>("007"), Ok(7));
        for bad in [
            "", " ", "-1", "+1", "1.5", "1e3", "1_000", "1,000", "ten", "5s",
        ] {
            assert!(parse_count::<u64>(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_count::<u32>("4294967296")
            .unwrap_err()
            .contains("too large"));
        assert!(parse_count::<u64>("18446744073709551616").is_err());
    }

    #[test]
    fn the_type_maximum_is_outside_a_range() {
        let burst = within(1u32, 1_000_000);
        assert_eq!(burst.check("1"), Ok(1));
        assert_eq!(burst.check("1000000"), Ok(1_000_000));
        for bad in ["0", "1000001", "4294967295"] {
            assert_eq!(
                burst.check(bad),
                Err("must be between 1 and 1000000".to_owned())
            );
        }
        assert!(within(0usize, 100_000)
            .check(&usize::MAX.to_string())
            .is_err());
        for huge in [u64::MAX.to_string(), "9".repeat(80)] {
            assert_eq!(
                within(1u16, 1024).check(&huge),
                Err("must be between 1 and 1024".to_owned())
            );
        }
        assert!(within(1u16, 1024)
            .check("-1")
            .unwrap_err()
            .contains("whole number"));
    }

    proptest! {
        /// A clean `Err` or a value inside the range, never a panic, for each width.
        #[test]
        fn extremes_are_refused_or_in_range(raw in crate::extremes::values(), max in any::<u16>()) {
            let max = u32::from(max);
            match within(1u32, max.max(1)).check(&raw) {
                Ok(n) => prop_assert!((1..=max.max(1)).contains(&n), "{raw:?} gave {n}"),
                Err(why) => prop_assert!(!why.is_empty()),
            }
            if let Ok(n) = within(0u16, 1024).check(&raw) {
                prop_assert!(n <= 1024);
            }
            if let Ok(n) = within(0usize, 100_000).check(&raw) {
                prop_assert!(n <= 100_000);
            }
            if let Ok(n) = within(1u64, 100_000_000).check(&raw) {
                prop_assert!((1..=100_000_000).contains(&n));
            }
        }
    }
}
