//! The reference and the help agree with the parser: every flag has its row in docs/CONFIG.md
//! with its range and its default as parsed, and `--help` groups every flag and shows examples
//! that parse.

use clap::{CommandFactory, Parser};

use super::{bounds_in, flag_args, kind_of, parse, range_of, value_of};
use crate::config::Cli;

/// docs/CONFIG.md, the reference of every flag.
const CONFIG_MD: &str = include_str!("../../../../docs/CONFIG.md");

/// The flag's row in docs/CONFIG.md (`` | `--flag` | `VAR` | ... ``), as its cells, and the cells
/// of the header of its table (so a column is found by its name).
fn documented_row(long: &str, env: &str) -> (Vec<String>, Vec<String>) {
    let cells = |line: &str| -> Vec<String> {
        let inner = line.trim().trim_matches('|');
        inner.split(" | ").map(|c| c.trim().to_owned()).collect()
    };
    let prefix = format!("| `--{long}` | `{env}` |");
    let mut header = Vec::new();
    for line in CONFIG_MD.lines() {
        if line.starts_with("| flag |") {
            header = cells(line);
        } else if line.starts_with(&prefix) {
            return (cells(line), header);
        }
    }
    panic!("docs/CONFIG.md has no row {prefix}")
}

/// Every flag is in docs/CONFIG.md's flag tables, with its variable; every duration, size and
/// count row gives the range the parser enforces (`` `10ms` to `1h` ``), and `--rate-limit`'s
/// row its count's.
#[test]
fn every_flag_is_in_the_config_reference() {
    for arg in Cli::command().get_arguments() {
        let (Some(long), Some(env)) = (arg.get_long(), arg.get_env()) else {
            continue;
        };
        let (cells, _) = documented_row(long, &env.to_string_lossy());
        let row = cells.join(" | ");
        if let Some(kind) = kind_of(long) {
            let (min, max) = range_of(long, kind);
            let range = format!("`{min}` to `{max}`");
            assert!(
                row.contains(&range),
                "docs/CONFIG.md row of --{long} lacks {range}: {row}"
            );
        }
        if long == "rate-limit" {
            let err = parse(&["--rate-limit", "4294967295/s"])
                .unwrap_err()
                .to_string();
            let (min, max) = bounds_in(&err).unwrap();
            let range = format!("count `{min}` to `{max}`");
            assert!(
                row.contains(&range),
                "docs/CONFIG.md row of --rate-limit lacks {range}: {row}"
            );
        }
    }
}

/// Each flag's documented default is the default it parses to: a value in backticks is clap's
/// default, word for word, and parses to the same value as giving nothing; words (`unset`,
/// `none`, `off`, `available cores`, `the rate's count`) mean no default value (a switch's is
/// `false`; an empty default, such as `--trusted-proxies`'s, must be hidden from `--help`).
#[test]
fn every_documented_default_is_the_parsed_default() {
    let defaults = Cli::command().try_get_matches_from(["balancer"]).unwrap();
    for arg in Cli::command().get_arguments() {
        let (Some(long), Some(env)) = (arg.get_long(), arg.get_env()) else {
            continue;
        };
        let (cells, header) = documented_row(long, &env.to_string_lossy());
        let column = header.iter().position(|h| h == "default").unwrap();
        let documented = cells[column].as_str();
        let parsed: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        let literal = documented
            .strip_prefix('`')
            .and_then(|d| d.strip_suffix('`'))
            .filter(|d| !d.contains('`'));
        match literal {
            Some(value) => {
                assert_eq!(parsed, [value], "--{long}: documented default {documented}");
                if let Some(kind) = kind_of(long) {
                    let argv = std::iter::once("balancer".to_owned()).chain(flag_args(long, value));
                    let given = Cli::command().try_get_matches_from(argv).unwrap();
                    assert_eq!(
                        value_of(&given, long, kind),
                        value_of(&defaults, long, kind),
                        "--{long} {value}"
                    );
                }
            }
            None => {
                let none = parsed.is_empty()
                    || (parsed == ["false"] && documented == "off")
                    || (parsed == [""] && arg.is_hide_default_value_set());
                assert!(
                    none,
                    "--{long}: documented {documented}, parsed default {parsed:?}"
                );
            }
        }
    }
}

/// `--help` groups every flag under one of its headings, and its examples parse.
#[test]
fn help_is_grouped_and_its_examples_parse() {
    let headings = [
        "Listeners",
        "Upstreams and health",
        "Timeouts and limits",
        "TLS",
    ];
    let headings = [
        &headings[..],
        &["Traffic rules", "Compression", "Logging", "Admin"],
    ]
    .concat();
    for arg in Cli::command().get_arguments() {
        let long = arg.get_long().unwrap_or_default();
        if ["help", "version"].contains(&long) {
            continue;
        }
        let heading = arg.get_help_heading().unwrap_or("none");
        assert!(headings.contains(&heading), "--{long} under {heading}");
    }
    let help = Cli::command().render_long_help().to_string();
    let examples = help.split("Examples:").nth(1).unwrap();
    for line in examples.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let words = line.split_whitespace().skip_while(|w| w.contains('='));
        let argv: Vec<&str> = words.collect();
        assert_eq!(argv[0], "balancer", "{line}");
        assert!(Cli::try_parse_from(&argv).is_ok(), "{line}");
    }
    assert!(
        !help.contains("[default: \"\"]") && !help.contains("=]"),
        "{help}"
    );
}
