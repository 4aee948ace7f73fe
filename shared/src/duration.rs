//! Duration syntax for every flag and variable: humane units (`500ms`, `2s`, `1m`, `1m30s`), as
//! humantime reads them. A bare number is refused: `5` could mean seconds or milliseconds, and a
//! silent guess is worse than a one-line error.

use std::time::Duration;

/// Parses `500ms`, `2s`, `1m`, `1m30s`, ...; zero (`0s`) is allowed.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let text = raw.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
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

    #[test]
    fn zero_refused_where_it_must_be() {
        assert!(parse_nonzero_duration("0s").is_err());
        assert!(parse_nonzero_duration("0ms").is_err());
        assert_eq!(parse_nonzero_duration("1ms"), Ok(Duration::from_millis(1)));
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
    }
}
