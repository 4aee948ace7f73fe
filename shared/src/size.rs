//! Size syntax: plain bytes, or a whole number with a binary (`KiB`, `MiB`, `GiB`, `TiB`, or
//! `K`/`M`/`G`/`T`) or decimal (`KB`, `MB`, `GB`, `TB`) unit, case-insensitive. Every size setting
//! has a range ([`within`]).

use crate::setting::Within;

/// One tebibyte (`1TiB`).
pub const TIB: u64 = 1 << 40;

/// A size setting taking `min..=max` bytes: the clap value parser, e.g.
/// `value_parser = within(0, TIB)`. Its error says `must be between 0 and 1TiB`.
pub const fn within(min: u64, max: u64) -> Within<u64> {
    Within::new(parse_size, format, min, max)
}

/// A size in the largest binary unit that writes it exactly: `0`, `512`, `64KiB`, `16MiB`, `1TiB`.
pub fn format(bytes: &u64) -> String {
    let bytes = *bytes;
    for (unit, shift) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if bytes != 0 && bytes.trailing_zeros() >= shift {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// Parses `1048576`, `512KiB`, `16MiB`, `1GB`, ...
pub fn parse_size(raw: &str) -> Result<u64, String> {
    let s = raw.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: u64 = num
        .parse()
        .map_err(|_| format!("`{raw}` is not a size like 1048576, 512KiB or 16MiB"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => {
            return Err(format!(
                "`{raw}` has an unknown unit (use B, KiB, MiB, GiB, TiB)"
            ))
        }
    };
    num.checked_mul(mult)
        .ok_or_else(|| format!("`{raw}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn units() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("16mib"), Ok(16 << 20));
        assert_eq!(parse_size("512 KiB"), Ok(512 << 10));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_size("3B"), Ok(3));
    }

    #[test]
    fn bad_sizes() {
        for bad in [
            "",
            "MiB",
            "-1",
            "1.5MiB",
            "12 parsecs",
            "99999999999999999999GiB",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_size("18446744073709551615GiB")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn ranges_and_their_bounds() {
        let body = within(0, TIB);
        assert_eq!(body.check("0"), Ok(0));
        assert_eq!(body.check("1TiB"), Ok(TIB));
        assert_eq!(body.check("1024GiB"), Ok(TIB));
        for bad in ["1099511627777", "2TiB", "18446744073709551615"] {
            assert_eq!(
                body.check(bad),
                Err("must be between 0 and 1TiB".to_owned()),
                "{bad}"
            );
        }
        assert!(body.check("18446744073709551616").is_err(), "2^64 bytes");
        assert_eq!(format(&(16 << 20)), "16MiB");
        assert_eq!(format(&1000), "1000");
        assert_eq!(format(&(3 << 10)), "3KiB");
        assert_eq!(format(&0), "0");
    }

    proptest! {
        /// A clean `Err` or a value inside the range, never a panic.
        #[test]
        fn extremes_are_refused_or_in_range(raw in crate::extremes::values(), max in any::<u64>()) {
            let min = max / 2;
            match within(min, max).check(&raw) {
                Ok(n) => prop_assert!(min <= n && n <= max, "{raw:?} gave {n}"),
                Err(why) => prop_assert!(!why.is_empty()),
            }
        }

        #[test]
        fn a_bound_reads_back_as_itself(n in any::<u64>(), shift in 0u32..64) {
            let bytes = n >> shift << shift;
            prop_assert_eq!(parse_size(&format(&bytes)), Ok(bytes));
        }
    }
}
