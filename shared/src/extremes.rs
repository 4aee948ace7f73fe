//! Odd and extreme setting values, for the property tests of every parser and of both binaries'
//! command lines: one list, so a value that once broke a parser is tried on all of them. Behind
//! the `test-support` feature (dev-dependencies only), never in a release build.

use proptest::prelude::*;

/// Numbers a setting may be given: zero, one, each integer width's maximum and one past `u64`,
/// huge, negative, fractional, tiny, and random ones.
pub fn numbers() -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        Just("0".to_owned()),
        Just("1".to_owned()),
        Just(u16::MAX.to_string()),
        Just(u32::MAX.to_string()),
        Just(u64::MAX.to_string()),
        Just("18446744073709551616".to_owned()),
        Just(u128::MAX.to_string()),
        Just("9".repeat(80)),
        Just("-1".to_owned()),
        Just("1.5".to_owned()),
        Just("0.000000001".to_owned()),
        Just(".5".to_owned()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| f.to_string()),
        (0u64..100_000).prop_map(|n| n.to_string()),
    ]
}

/// Units of every kind of setting (durations, sizes, rates) and near misses, so each parser also
/// meets the others' units.
pub const UNITS: &[&str] = &[
    "", "ns", "us", "µs", "ms", "s", "m", "h", "d", "w", "M", "y", "years", "B", "k", "KiB", "MB",
    "GiB", "tib", "TB", "TiB", "PiB", " MiB", "iB", "/s", "/h", "/d", "parsecs", " s", "ss", "s1",
];

/// A value: a number with a unit, two of them (`1m 30s`), arbitrary printable text, empty or
/// blank.
pub fn values() -> impl Strategy<Value = String> {
    let unit = proptest::sample::select(UNITS);
    prop_oneof![
        4 => (numbers(), unit.clone()).prop_map(|(n, u)| format!("{n}{u}")),
        1 => (numbers(), unit.clone(), numbers(), unit)
            .prop_map(|(a, u, b, v)| format!("{a}{u} {b}{v}")),
        1 => "\\PC{0,16}",
        1 => Just(String::new()),
        1 => Just(" ".to_owned()),
    ]
}
