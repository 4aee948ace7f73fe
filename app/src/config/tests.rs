//! The app's configuration contract: defaults, ranges, docs/CONFIG.md's rows, `--help`.

use super::*;

#[test]
fn app_version_is_a_header_value_and_empty_means_the_crate_version() {
    assert_eq!(parse_app_version("2.0.1").unwrap().name, "2.0.1");
    assert_eq!(
        parse_app_version("").unwrap().name,
        env!("CARGO_PKG_VERSION")
    );
    for bad in ["two words", "bad\nversion", &"9".repeat(65)] {
        assert!(parse_app_version(bad).is_err(), "{bad:?} accepted");
    }
}
use clap::CommandFactory;

fn parse(args: &[&str]) -> Result<Cli, String> {
    let argv = std::iter::once("app").chain(args.iter().copied());
    Cli::try_parse_from(argv).map_err(|e| e.render().to_string())
}

#[test]
fn clap_definition_is_consistent() {
    Cli::command().debug_assert();
}

/// docs/CONFIG.md's table of the app's variables gives these defaults.
#[test]
fn defaults_match_the_readme() {
    let config = parse(&[]).unwrap().settings.resolve().unwrap();
    assert_eq!(config.redis_url, "redis://redis:6379/");
    assert_eq!(config.redis_timeout, Duration::from_millis(500));
    assert_eq!(config.listen.to_string(), "0.0.0.0:5000");
    assert_eq!(config.app_name, "Visit Counter");
    assert_eq!(config.replica_name, hostname());
    assert_eq!(config.counter_key, "visits");
    assert_eq!(config.github_url, "https://github.com/");
    assert_eq!(config.linkedin_url, "https://www.linkedin.com/");
    assert_eq!(config.drain_timeout, Duration::from_secs(10));
    assert_eq!(config.shutdown_delay, Duration::ZERO);
    assert!(config.templates_dir.is_none());
}

#[test]
fn redis_url_wins_over_host_and_port_unless_empty() {
    let url = "redis://:pw@db:6380/1";
    let cli = parse(&["--redis-url", url, "--redis-host", "x", "--redis-port", "1"]).unwrap();
    assert_eq!(cli.settings.resolve().unwrap().redis_url, url);
    let cli = parse(&[
        "--redis-url",
        " ",
        "--redis-host",
        "::1",
        "--redis-port",
        "7",
    ])
    .unwrap();
    assert_eq!(
        cli.settings.resolve().unwrap().redis_url,
        "redis://[::1]:7/"
    );
}

#[test]
fn bad_values_name_the_variable_and_hide_passwords() {
    let err = parse(&["--redis-port", "nope"]).unwrap_err();
    assert!(err.contains("REDIS_PORT (--redis-port)"), "{err}");
    let err = parse(&["--redis-url", "redis://:pw@host:99999/0"]).unwrap_err();
    assert!(err.contains("REDIS_URL"), "{err}");
    assert!(!err.contains("pw"), "{err}");
    let err = parse(&["--replica-name", "bad\nname"]).unwrap_err();
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("REPLICA_NAME"), "{err}");
    let err = parse(&["healthcheck", "--timeout", "0s"]).unwrap_err();
    assert!(err.contains("--timeout"), "{err}");
}

#[test]
fn value_parsers() {
    assert_eq!(parse_port(" 6379 "), Ok(6379));
    for bad in ["0", "70000", "abc", ""] {
        assert!(parse_port(bad).is_err(), "{bad:?}");
    }
    assert_eq!(parse_redis_host(" db "), Ok("db".to_owned()));
    for bad in ["", " ", "a b", "u@h", "h/0"] {
        assert!(parse_redis_host(bad).is_err(), "{bad:?}");
    }
    assert!(parse_redis_url("http://not-redis").is_err());
    assert_eq!(parse_redis_url(""), Ok(String::new()));
    assert!(parse_listen("nowhere").is_err());
    assert!(parse_listen("127.0.0.1:99999").is_err());
    assert!(not_blank("  ").is_err());
    assert!(not_empty("").is_err());
    assert!(parse_replica_name("bad\nname").is_err());
    assert_eq!(parse_replica_name("r1").unwrap().header, "r1");
    assert!(parse_templates_dir("/definitely/not/here").is_err());
}

/// The duration settings, each with its range in `--help`'s terms; `healthcheck --timeout` is
/// the subcommand's. Every other setting is a name, address, URL, path or port.
const DURATIONS: [&str; 3] = ["redis-timeout", "drain-timeout", "shutdown-delay"];
const NOT_DURATIONS: [&str; 10] = [
    "redis-host",
    "redis-port",
    "redis-url",
    "app-listen",
    "app-name",
    "replica-name",
    "app-version",
    "counter-key",
    "github-url",
    "linkedin-url",
];

/// `(min, max)` from a range error, `must be between <min> and <max>`.
fn range_of(err: &str) -> Option<(String, String)> {
    let rest = err.split("must be between ").nth(1)?;
    let (min, max) = rest.trim_end().split_once(" and ")?;
    Some((min.to_owned(), max.to_owned()))
}

/// `args` for the flag, before or after the subcommand whose flag it is.
fn flag_args<'a>(flag: &'a str, value: &'a str) -> Vec<&'a str> {
    match flag {
        "timeout" => vec!["healthcheck", "--timeout", value],
        _ => vec![flag, value],
    }
}

#[test]
fn every_setting_is_classified() {
    let cmd = Cli::command();
    let mut longs: Vec<&str> = cmd
        .get_arguments()
        .filter_map(|a| a.get_long())
        .filter(|l| !["help", "version", "templates-dir"].contains(l))
        .collect();
    longs.sort_unstable();
    let mut known: Vec<&str> = DURATIONS.iter().chain(&NOT_DURATIONS).copied().collect();
    known.sort_unstable();
    assert_eq!(
        longs, known,
        "a new setting needs a range, or a place in NOT_DURATIONS"
    );
}

/// `u64::MAX` seconds (which once overflowed a deadline in the balancer) is refused for every
/// duration, naming the flag, the variable and the range; both bounds are accepted.
#[test]
fn every_duration_has_a_range_and_refuses_the_extremes() {
    let flags = DURATIONS.iter().map(|f| format!("--{f}"));
    for flag in flags.chain(["timeout".to_owned()]) {
        let err = parse(&flag_args(&flag, "18446744073709551615s")).unwrap_err();
        let line = err.trim_end();
        assert_eq!(line.lines().count(), 1, "{err}");
        let name = if flag == "timeout" {
            "--timeout"
        } else {
            &flag
        };
        assert!(line.contains(name), "{flag}: {line}");
        let (min, max) = range_of(line).unwrap_or_else(|| panic!("{flag}: no range: {line}"));
        for bound in [&min, &max] {
            assert!(
                parse(&flag_args(&flag, bound)).is_ok(),
                "{flag} refuses {bound}"
            );
        }
        for bad in ["25h", "1.5s", "5", "-1s", "", "1ns"] {
            if bad == "1ns" && min == "0s" {
                continue;
            }
            assert!(
                parse(&flag_args(&flag, bad)).is_err(),
                "{flag} accepts {bad:?}"
            );
        }
    }
    let cli = parse(&["--shutdown-delay", "1h", "--drain-timeout", "0s"]).unwrap();
    assert_eq!(cli.settings.shutdown_delay, HOUR);
    assert_eq!(cli.settings.drain_timeout, Duration::ZERO);
}

/// docs/CONFIG.md's table of the app's variables has a row `| `VAR` | `--flag` |` for every setting, and for each
/// duration its range as the parser states it (`` `1ms` to `1h` ``); the healthcheck's timeout
/// range is in the sentence on `app healthcheck`.
#[test]
fn every_setting_is_in_the_config_reference_with_its_range() {
    let reference = include_str!("../../../docs/CONFIG.md");
    let app = reference
        .split("## The app's variables")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .unwrap();
    for arg in Cli::command().get_arguments() {
        let (Some(long), Some(env)) = (arg.get_long(), arg.get_env()) else {
            continue;
        };
        let env = env.to_string_lossy();
        let row = app
            .lines()
            .find(|l| {
                l.starts_with(&format!("| `{env}` | `--{long}` |"))
                    || (l.starts_with('|')
                        && l.contains(&format!("`{env}`"))
                        && l.contains(&format!("`--{long}`")))
            })
            .unwrap_or_else(|| panic!("docs/CONFIG.md has no row | `{env}` | `--{long}` |"));
        if DURATIONS.contains(&long) {
            let err = parse(&[&format!("--{long}"), "18446744073709551615s"]).unwrap_err();
            let (min, max) = range_of(&err).unwrap();
            let range = format!("`{min}` to `{max}`");
            assert!(
                row.contains(&range),
                "docs/CONFIG.md row for --{long} lacks {range}: {row}"
            );
        }
    }
    let err = parse(&flag_args("timeout", "2h")).unwrap_err();
    let (min, max) = range_of(&err).unwrap();
    let sentence = format!("`app healthcheck [--timeout 3s]` (`{min}` to `{max}`)");
    assert!(app.contains(&sentence), "docs/CONFIG.md lacks {sentence}");
}

/// `--help` says what docs/CONFIG.md says about fractions.
#[test]
fn help_states_the_duration_syntax() {
    let help = Cli::command().render_long_help().to_string();
    assert!(help.contains("1.5s"), "{help}");
    assert!(parse(&["--redis-timeout", "1.5s"]).is_err());
    assert!(parse(&["--redis-timeout", "1500ms"]).is_ok());
}

mod extremes {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Random and extreme values: clap refuses them (exit 2) or the value is in range.
        #[test]
        fn durations_are_refused_or_in_range(v in shared::extremes::values(), which in 0usize..4) {
            let flag = match which {
                3 => "timeout".to_owned(),
                i => format!("--{}", DURATIONS[i]),
            };
            let Ok(cli) = parse(&flag_args(&flag, &v)) else {
                return Ok(());
            };
            let s = &cli.settings;
            let (got, min) = match which {
                0 => (s.redis_timeout, Duration::from_millis(1)),
                1 => (s.drain_timeout, Duration::ZERO),
                2 => (s.shutdown_delay, Duration::ZERO),
                _ => match cli.command {
                    Some(Command::Healthcheck { timeout }) => (timeout, Duration::from_millis(1)),
                    None => unreachable!(),
                },
            };
            prop_assert!(min <= got && got <= HOUR, "{flag} {v:?} gave {got:?}");
        }
    }
}

#[test]
fn redaction_hides_password() {
    assert_eq!(
        redact("redis://:secret@host:6379/0"),
        "redis://***@host:6379/0"
    );
    assert_eq!(redact("redis://host:6379"), "redis://host:6379");
}

#[test]
fn web_urls() {
    assert!(parse_web_url("https://github.com/me").is_ok());
    assert!(parse_web_url("javascript:alert(1)").is_err());
    assert!(parse_web_url("not a url").is_err());
}
