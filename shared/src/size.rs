//! Size syntax: plain bytes, or a number with a binary (`KiB`, `MiB`, `GiB`, or `K`/`M`/`G`) or
//! decimal (`KB`, `MB`, `GB`) unit, case-insensitive.

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
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => {
            return Err(format!(
                "`{raw}` has an unknown unit (use B, KiB, MiB, GiB)"
            ))
        }
    };
    num.checked_mul(mult)
        .ok_or_else(|| format!("`{raw}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
