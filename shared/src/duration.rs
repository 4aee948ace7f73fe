//! Duration syntax for every flag and variable: humane units (`500ms`, `2s`, `1m`, `1m30s`), as
//! humantime reads them. A bare number is refused: `5` could mean seconds or milliseconds, and a
//! silent guess is worse than a one-line error. A fraction (`1.5s`) is refused too, for the same
//! reason docs/CONFIG.md gives: write `1500ms`. Every duration setting also has a range
//! ([`within`]), so no value can overflow a deadline (`Instant::now() + d`) later.

use std::time::Duration;

use crate::setting::Within;

/// One hour, the upper bound of most duration settings.
pub const HOUR: Duration = Duration::from_secs(3600);
/// One day.
pub const DAY: Duration = Duration::from_secs(86_400);

/// What `--help` says about the syntax, for both binaries.
pub const SYNTAX_HELP: &str =
    "Durations take a unit: 500ms, 2s, 1m, 1m30s, 2h (a bare number such as 5, \
or a fraction such as 1.5s, is refused: write 1500ms). Every duration, size and count has a range \
(docs/CONFIG.md); a value outside it is refused at start with exit status 2.";

/// Parses `500ms`, `2s`, `1m`, `1m30s`, ...; zero (`0s`) is allowed, fractions are not.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let text = raw.trim();
    if text.contains('.') {
        return Err(format!(
            "`{raw}` has a fraction: use a smaller unit, like 1500ms for 1.5s"
        ));
    }
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{raw}` needs a unit, like {text}s or {text}ms"));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("`{raw}` is not a duration like 500ms, 2s or 1m ({e})"))
}

/// As [`parse_duration`], but zero is refused: for timeouts and intervals, where zero means
/// "never wait" or "spin".
pub fn parse_nonzero_duration(raw: &str) -> Result<Duration, String> {
    let d = parse_duration(raw)?;
    if d.is_zero() {
        return Err(format!("`{raw}` must be greater than zero"));
    }
    Ok(d)
}

/// A duration setting taking `min..=max`: the clap value parser both binaries use, e.g.
/// `value_parser = within(Duration::from_millis(10), HOUR)`. Its error says
/// `must be between 10ms and 1h`.
pub const fn within(min: Duration, max: Duration) -> Within<Duration> {
    Within::new(parse_duration, format, min, max)
}

/// A duration in the largest unit that writes it exactly, as [`parse_duration`] reads it back:
/// `0s`, `10ms`, `1h`, `730d`, `90s`.
pub fn format(d: &Duration) -> String {
    const UNITS: [(&str, u128); 7] = [
        ("d", 86_400_000_000_000),
        ("h", 3_600_000_000_000),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
        ("ns", 1),
    ];
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    let (unit, size) = UNITS
        .into_iter()
        .find(|(_, size)| nanos % size == 0)
        .unwrap_or(("ns", 1));
    format!("{}{unit}", nanos / size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn humane_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration(" 2s "), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn bare_numbers_and_junk_are_refused() {
        for bad in ["5", "2.5", "", "forever", "-1s", "5 parsecs"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_duration("5").unwrap_err().contains("5s"));
    }

    /// docs/CONFIG.md says so, and `--help` ([`SYNTAX_HELP`]): `1.5s` is refused, `1500ms` is not.
    #[test]
    fn fractions_are_refused() {
        for bad in ["1.5s", "0.5h", ".5s", "1.s", "1m 0.5s", "2.5"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains("fraction"), "{bad:?}: {err}");
        }
        assert!(SYNTAX_HELP.contains("1.5s"));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
    }

    #[test]
    fn zero_refused_where_it_must_be() {
        assert!(parse_nonzero_duration("0s").is_err());
        assert!(parse_nonzero_duration("0ms").is_err());
        assert_eq!(parse_nonzero_duration("1ms"), Ok(Duration::from_millis(1)));
    }

    #[test]
    fn ranges_are_inclusive_and_named() {
        let interval = within(Duration::from_millis(10), HOUR);
        assert_eq!(interval.check("10ms"), Ok(Duration::from_millis(10)));
        assert_eq!(interval.check("1h"), Ok(HOUR));
        assert_eq!(interval.check("60m"), Ok(HOUR));
        for bad in ["9ms", "0s", "1h 1ns", "18446744073709551615s", "2d"] {
            assert_eq!(
                interval.check(bad),
                Err("must be between 10ms and 1h".to_owned()),
                "{bad}"
            );
        }
        assert!(interval.check("99999999999999999999999s").is_err());
    }

    #[test]
    fn bounds_are_written_in_their_largest_exact_unit() {
        let f = |d: Duration| format(&d);
        assert_eq!(f(Duration::ZERO), "0s");
        assert_eq!(f(Duration::from_nanos(1)), "1ns");
        assert_eq!(f(Duration::from_millis(10)), "10ms");
        assert_eq!(f(Duration::from_millis(1500)), "1500ms");
        assert_eq!(f(Duration::from_secs(90)), "90s");
        assert_eq!(f(HOUR), "1h");
        assert_eq!(f(DAY), "1d");
        assert_eq!(f(DAY * 730), "730d");
        assert_eq!(f(Duration::MAX), "18446744073709551615999999999ns");
    }

    proptest! {
        #[test]
        fn millis_round_trip(ms in 0u64..10_000_000) {
            prop_assert_eq!(parse_duration(&format!("{ms}ms")), Ok(Duration::from_millis(ms)));
        }

        #[test]
        fn never_panics(s in "\\PC{0,12}") {
            let _ = parse_duration(&s);
        }

        #[test]
        fn extremes_are_refused_or_in_range(raw in crate::extremes::values(), max_ms in 1u64..=86_400_000) {
            let max = Duration::from_millis(max_ms);
            let min = Duration::from_nanos(1).min(max);
            match within(min, max).check(&raw) {
                Ok(d) => prop_assert!(min <= d && d <= max, "{raw:?} gave {d:?}"),
                Err(why) => prop_assert!(!why.is_empty()),
            }
            let _ = parse_nonzero_duration(&raw);
        }

        #[test]
        fn a_bound_reads_back_as_itself(nanos in any::<u64>()) {
            let d = Duration::from_nanos(nanos);
            prop_assert_eq!(parse_duration(&format(&d)), Ok(d));
        }
    }
}
