//! The configuration's contract: defaults, ranges, flags that go together, the flag tables of
//! docs/CONFIG.md (each flag's row, range and default: [`docs`]), `--help`.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use clap::{ArgMatches, CommandFactory, Parser};
use proptest::prelude::*;
use shared::count::parse_count;
use shared::duration::parse_duration;
use shared::size::parse_size;

use super::upstreams::{parse_health_path, parse_upstreams};
use super::*;
use crate::access_log;
use crate::backends::probe::HealthCheck;
use crate::backends::selection::Balance;
use crate::upstream::UpstreamProtocol;

mod docs;

/// The balancer's contract on top of the shared syntax: a bare number is refused, and so is zero
/// for a timeout (only settings whose range starts at `0s`, such as `--slow-start`, take it).
#[test]
fn durations_and_sizes_use_the_shared_rules() {
    let parse = |args: &[&str]| Cli::try_parse_from([&["balancer"], args].concat());
    let c = parse(&["--fail-timeout", "1m30s", "--max-body", "512KiB"]).unwrap();
    assert_eq!(c.config.group.fail_timeout, Duration::from_secs(90));
    assert_eq!(c.config.traffic.max_body, 512 << 10);
    for bad in ["0s", "5", "soon"] {
        assert!(
            parse(&["--connect-timeout", bad]).is_err(),
            "{bad} accepted"
        );
    }
    assert!(parse(&["--max-body", "12 parsecs"]).is_err());
}

/// The flags every TLS-only flag needs beside it.
const TLS_ARGS: [&str; 6] = [
    "--tls-listen",
    "127.0.0.1:5443",
    "--tls-cert",
    "c.pem",
    "--tls-key",
    "k.pem",
];

#[test]
fn tls_flags_go_together() {
    let parse = |args: &[&str]| Cli::try_parse_from([&["balancer"], args].concat());
    let tls = TLS_ARGS;
    let c = parse(&[&tls[..], &["--hsts", "365d", "--redirect-http"]].concat()).unwrap();
    assert_eq!(c.config.tls.hsts, Some(Duration::from_secs(365 * 86400)));
    assert!(c.config.tls.redirect_http);
    assert!(parse(&tls[..4]).is_err(), "--tls-listen without --tls-key");
    assert!(parse(&["--tls-cert", "c.pem"]).is_err());
    assert!(parse(&["--redirect-http"]).is_err());
    assert!(parse(&["--hsts", "1d"]).is_err());
}

#[test]
fn upstream_lists() {
    let u = parse_upstreams("app:5000, 127.0.0.1:81,app:5000").unwrap();
    assert_eq!(u.0.len(), 2);
    assert_eq!(u.0[1].to_string(), "127.0.0.1:81");
    assert_eq!(parse_upstreams("[::1]:80").unwrap().0[0].host, "::1");
    assert!(parse_upstreams("app").is_err());
    assert!(parse_upstreams("app:0").is_err());
    assert!(parse_upstreams("app:99999").is_err());
    assert!(parse_upstreams(" , ").is_err());
}

#[test]
fn traffic_flags_parse_and_bad_values_are_refused() {
    let parse = |args: &[&str]| Cli::try_parse_from([&["balancer"], args].concat());
    let c = parse(&[
        "--balance",
        "least-request",
        "--slow-start",
        "5s",
        "--max-5xx",
        "3",
        "--rate-limit",
        "50/s",
        "--rate-burst",
        "10",
        "--trusted-proxies",
        "10.0.0.0/8",
        "--rate-limit-clients",
        "1000",
        "--max-connections",
        "20",
        "--admin-token",
        "0123456789abcdef",
        "--upstream-protocol",
        "h2c",
        "--health-check",
        "grpc",
    ])
    .unwrap()
    .config;
    assert_eq!(c.group.balance, Balance::LeastRequest);
    assert_eq!(c.group.slow_start, Duration::from_secs(5));
    assert_eq!(c.group.max_5xx, 3);
    assert_eq!(c.traffic.rate_limit.unwrap().to_string(), "50/s");
    assert_eq!(c.traffic.rate_burst, Some(10));
    assert_eq!(
        (c.traffic.rate_limit_clients, c.front.max_connections),
        (1000, 20)
    );
    assert_eq!(c.admin.admin_token.as_deref(), Some("0123456789abcdef"));
    assert_eq!(c.group.upstream_protocol.name(), "h2c");
    assert_eq!(c.group.health_check, HealthCheck::Grpc);
    assert_eq!(c.group.group().probe.check.name(), "grpc");
    let bad: [&[&str]; 15] = [
        &["--upstream-protocol", "h3"],
        &["--health-check", "icmp"],
        &["--health-check", "GRPC"],
        &["--balance", "random"],
        &["--slow-start", "soon"],
        &["--max-5xx", "many"],
        &["--rate-limit", "50"],
        &["--rate-limit", "0/s"],
        &["--rate-burst", "0"],
        &["--trusted-proxies", "10.0.0.0/40"],
        &["--rate-limit-clients", "0"],
        &["--max-connections", "0"],
        &["--max-connections", "many"],
        &["--admin-token", "short"],
        &["--admin-token", "sixteen chars but spaces"],
    ];
    for args in bad {
        let err = parse(args).unwrap_err().to_string();
        assert!(err.contains(args[0]), "{args:?}: {err}");
        assert!(
            !err.contains("sixteen chars"),
            "a token is never echoed: {err}"
        );
    }
}

#[test]
fn health_path_must_be_absolute() {
    assert!(parse_health_path("/health").is_ok());
    assert!(parse_health_path("health").is_err());
}

#[test]
fn defaults_match_the_contract() {
    let cli = Cli::try_parse_from(["balancer"]).unwrap();
    let c = cli.config;
    assert_eq!(c.front.listen.to_string(), "0.0.0.0:5000");
    assert_eq!(c.admin.admin_listen.to_string(), "127.0.0.1:9000");
    assert_eq!(c.group.upstreams.0[0].to_string(), "app:5000");
    assert_eq!(c.traffic.max_body, 16 << 20);
    assert_eq!(c.group.max_fails, 1);
    assert_eq!(c.group.fail_timeout, Duration::from_secs(10));
    assert_eq!(c.group.upstream_timeout, Duration::from_secs(60));
    assert_eq!(c.log.access_log, access_log::Format::Off);
    assert_eq!(c.group.balance, Balance::RoundRobin);
    assert_eq!(c.group.upstream_protocol, UpstreamProtocol::Http1);
    assert_eq!(c.group.health_check, HealthCheck::Http);
    assert_eq!(c.group.slow_start, Duration::ZERO);
    assert_eq!(c.group.max_5xx, 0);
    assert!(c.traffic.rate_limit.is_none() && c.traffic.rate_burst.is_none());
    assert!(c.traffic.trusted_proxies.is_empty());
    assert_eq!(c.traffic.rate_limit_clients, 100_000);
    assert_eq!(c.front.max_connections, 10_000);
    assert!(c.admin.admin_token.is_none());
    assert!(cli.command.is_none());
    assert!(c.tls.tls_listen.is_none() && c.tls.tls_cert.is_none() && c.tls.tls_key.is_none());
    assert!(!c.tls.redirect_http && c.tls.hsts.is_none());
    let hc =
        Cli::try_parse_from(["balancer", "healthcheck", "--admin-listen", "127.0.0.1:1"]).unwrap();
    assert!(matches!(hc.command, Some(Command::Healthcheck)));
    assert_eq!(hc.config.admin.admin_listen.port(), 1);
}

fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from([&["balancer"], args].concat())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Duration,
    Size,
    /// A count, with the largest value of its field's type.
    Count(u64),
}

const DURATIONS: [&str; 12] = [
    "header-read-timeout",
    "shutdown-timeout",
    "hsts",
    "resolve-interval",
    "health-interval",
    "fail-timeout",
    "connect-timeout",
    "upstream-timeout",
    "slow-start",
    "acme-renew-before",
    "stray-quarantine",
    "keep-alive-timeout",
];
const SIZES: [&str; 1] = ["max-body"];
const COUNTS: [(&str, u64); 8] = [
    ("workers", u16::MAX as u64),
    ("max-connections", u64::MAX),
    ("max-idle-per-backend", usize::MAX as u64),
    ("max-fails", u32::MAX as u64),
    ("max-5xx", u32::MAX as u64),
    ("rate-burst", u32::MAX as u64),
    ("rate-limit-clients", u64::MAX),
    ("rate-limit-ipv6-prefix", u16::MAX as u64),
];
/// Settings that are not a duration, a size or a count: addresses, names, paths, choices, a
/// switch, a token; and `--rate-limit`, whose count has its own range (tested below).
const NOT_RANGED: [&str; 25] = [
    "config",
    "listen",
    "upstreams",
    "health-check",
    "health-path",
    "upstream-protocol",
    "balance",
    "rate-limit",
    "trusted-proxies",
    "compress",
    "tls-listen",
    "tls-cert",
    "tls-key",
    "redirect-http",
    "admin-listen",
    "admin-token",
    "log-format",
    "access-log",
    "acme-domain",
    "acme-email",
    "acme-directory",
    "acme-state",
    "acme-ca",
    "acme-challenge",
    "handover",
];

fn kind_of(long: &str) -> Option<Kind> {
    if DURATIONS.contains(&long) {
        return Some(Kind::Duration);
    }
    if SIZES.contains(&long) {
        return Some(Kind::Size);
    }
    COUNTS
        .iter()
        .find(|(flag, _)| *flag == long)
        .map(|(_, max)| Kind::Count(*max))
}

/// The command line setting `--flag value`, with what the flag needs beside it.
fn flag_args<'a>(long: &'a str, value: &'a str) -> Vec<String> {
    let mut args = vec![format!("--{long}"), value.to_owned()];
    if long == "hsts" {
        for a in TLS_ARGS {
            args.push(a.to_owned());
        }
    }
    args
}

fn parse_flag(long: &str, value: &str) -> Result<Cli, clap::Error> {
    let args = flag_args(long, value);
    parse(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// The largest value of the setting's type, written as the setting is.
fn type_max(kind: Kind) -> String {
    match kind {
        Kind::Duration => format!("{}s", u64::MAX),
        Kind::Size => u64::MAX.to_string(),
        Kind::Count(max) => max.to_string(),
    }
}

/// `(min, max)` from `must be between <min> and <max>`.
fn bounds_in(err: &str) -> Option<(String, String)> {
    let rest = err.split("must be between ").nth(1)?;
    let (min, max) = rest.lines().next()?.trim_end().split_once(" and ")?;
    Some((min.to_owned(), max.to_owned()))
}

/// The setting's range as its parser states it, refusing its type's maximum.
fn range_of(long: &str, kind: Kind) -> (String, String) {
    let err = parse_flag(long, &type_max(kind)).unwrap_err().to_string();
    bounds_in(&err).unwrap_or_else(|| panic!("--{long}: no range in {err}"))
}

/// The range as numbers (nanoseconds, bytes or the count), to compare parsed values with.
fn numeric_range(long: &str, kind: Kind) -> (u128, u128) {
    let (min, max) = range_of(long, kind);
    let number = |text: &str| match kind {
        Kind::Duration => parse_duration(text).unwrap().as_nanos(),
        Kind::Size => u128::from(parse_size(text).unwrap()),
        Kind::Count(_) => u128::from(parse_count::<u64>(text).unwrap()),
    };
    (number(&min), number(&max))
}

/// The value clap parsed for `--long`, as a number (`None`: not given).
fn value_of(matches: &ArgMatches, long: &str, kind: Kind) -> Option<u128> {
    let cmd = Cli::command();
    let arg = cmd.get_arguments().find(|a| a.get_long() == Some(long))?;
    let id = arg.get_id().as_str();
    match kind {
        Kind::Duration => matches.get_one::<Duration>(id).map(Duration::as_nanos),
        Kind::Size => matches.get_one::<u64>(id).map(|n| u128::from(*n)),
        Kind::Count(_) => {
            let m = matches;
            let widen = |n: u64| u128::from(n);
            m.try_get_one::<u16>(id)
                .ok()
                .flatten()
                .map(|n| widen(u64::from(*n)))
                .or_else(|| {
                    m.try_get_one::<u32>(id)
                        .ok()
                        .flatten()
                        .map(|n| widen(u64::from(*n)))
                })
                .or_else(|| m.try_get_one::<u64>(id).ok().flatten().map(|n| widen(*n)))
                .or_else(|| {
                    m.try_get_one::<usize>(id)
                        .ok()
                        .flatten()
                        .and_then(|n| u64::try_from(*n).ok())
                        .map(widen)
                })
        }
    }
}

/// Every setting is a duration, a size or a count with a range, or named as none of these: a new
/// flag cannot arrive without a range by mistake.
#[test]
fn every_setting_is_classified() {
    let cmd = Cli::command();
    let mut longs: Vec<&str> = cmd
        .get_arguments()
        .filter_map(|a| a.get_long())
        .filter(|l| !["help", "version"].contains(l))
        .collect();
    longs.sort_unstable();
    let mut known: Vec<&str> = DURATIONS
        .iter()
        .chain(&SIZES)
        .chain(COUNTS.iter().map(|(f, _)| f))
        .chain(&NOT_RANGED)
        .copied()
        .collect();
    known.sort_unstable();
    assert_eq!(longs, known);
}

/// For every duration flag `18446744073709551615s` (which once overflowed the health task's and
/// every connection's deadline), and for every size and count flag its type's maximum, is refused
/// with one line naming the flag, its variable and the range; both bounds are accepted, the
/// defaults lie inside, and the largest duration still makes a deadline.
#[test]
fn every_duration_size_and_count_has_a_range() {
    let cmd = Cli::command();
    for arg in cmd.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        let Some(kind) = kind_of(long) else { continue };
        let env = arg.get_env().unwrap().to_string_lossy();
        let err = parse_flag(long, &type_max(kind)).unwrap_err();
        assert_eq!(
            err.kind(),
            clap::error::ErrorKind::ValueValidation,
            "--{long}"
        );
        let line = shared::config_error::first_line(&err);
        let named = format!("{env} (--{long})");
        assert!(line.contains(&named), "--{long}: {line}");
        assert!(line.contains("must be between "), "--{long}: {line}");
        let (min, max) = range_of(long, kind);
        for bound in [&min, &max] {
            assert!(
                parse_flag(long, bound).is_ok(),
                "--{long} refuses its bound {bound}"
            );
        }
        if kind != Kind::Duration {
            assert!(
                parse_flag(long, "18446744073709551616").is_err(),
                "--{long}: 2^64"
            );
        }
        let (lo, hi) = numeric_range(long, kind);
        let defaults = Cli::command().try_get_matches_from(["balancer"]).unwrap();
        if let Some(default) = value_of(&defaults, long, kind) {
            assert!(
                (lo..=hi).contains(&default),
                "--{long}: default {default} outside"
            );
        }
        if kind == Kind::Duration {
            let longest = Duration::from_nanos(u64::try_from(hi).unwrap());
            assert!(std::time::Instant::now().checked_add(longest * 2).is_some());
            assert!(tokio::time::Instant::now()
                .checked_add(longest * 2)
                .is_some());
        }
    }
}

/// `--help` says what docs/CONFIG.md says: a fraction such as `1.5s` is refused.
#[test]
fn help_states_the_duration_syntax() {
    let help = Cli::command().render_long_help().to_string();
    assert!(help.contains("1.5s") && help.contains("1500ms"), "{help}");
    let err = parse(&["--connect-timeout", "1.5s"]).unwrap_err();
    assert!(shared::config_error::first_line(&err).contains("fraction"));
    assert!(parse(&["--connect-timeout", "1500ms"]).is_ok());
}

/// `--rate-limit 1/h --rate-burst 4294967295` once panicked inside governor; now the burst and
/// the count are bounded, and the extremes that are accepted build a limiter that answers.
#[test]
fn rate_limit_extremes_are_refused_or_work() {
    let err = parse(&["--rate-limit", "1/h", "--rate-burst", "4294967295"]).unwrap_err();
    let line = shared::config_error::first_line(&err);
    assert!(
        line.contains("BALANCER_RATE_BURST (--rate-burst)"),
        "{line}"
    );
    let err = parse(&["--rate-limit", "4294967295/s"]).unwrap_err();
    let line = shared::config_error::first_line(&err);
    assert!(
        line.contains("BALANCER_RATE_LIMIT (--rate-limit)"),
        "{line}"
    );
    assert!(line.contains("the count must be between 1 and "), "{line}");
    let (_, max_burst) = range_of("rate-burst", Kind::Count(u64::from(u32::MAX)));
    let max_count = bounds_in(&line).unwrap().1;
    for unit in ["s", "m", "h"] {
        for count in ["1", max_count.as_str()] {
            let rate = format!("{count}/{unit}");
            for burst in [None, Some("1"), Some(max_burst.as_str())] {
                let mut args = vec!["--rate-limit", rate.as_str()];
                args.extend(burst.iter().flat_map(|b| ["--rate-burst", b]));
                let c = parse(&args).unwrap().config;
                let rules = c.traffic.rules();
                let limiter = rules.limiter.as_ref().unwrap();
                let client = IpAddr::V4(Ipv4Addr::LOCALHOST);
                for _ in 0..3 {
                    let _ = limiter.check(client);
                }
                let _ = c.limits();
            }
        }
    }
}

fn ranged_flags() -> Vec<(&'static str, Kind)> {
    DURATIONS
        .iter()
        .chain(&SIZES)
        .chain(COUNTS.iter().map(|(f, _)| f))
        .map(|f| (*f, kind_of(f).unwrap()))
        .collect()
}

proptest! {
    /// Through `Cli::try_parse_from`, as the binary parses: every value is refused (clap's
    /// error, exit 2) or lands inside the flag's range; nothing panics.
    #[test]
    fn any_value_is_refused_or_in_range(value in shared::extremes::values(), which in 0usize..17) {
        let flags = ranged_flags();
        let (long, kind) = flags[which % flags.len()];
        let args = flag_args(long, &value);
        let argv = std::iter::once("balancer".to_owned()).chain(args);
        match Cli::command().try_get_matches_from(argv) {
            Ok(matches) => {
                let got = value_of(&matches, long, kind).unwrap();
                let (lo, hi) = numeric_range(long, kind);
                prop_assert!((lo..=hi).contains(&got), "--{long} {value:?} gave {got}");
            }
            Err(e) => prop_assert!(!shared::config_error::first_line(&e).is_empty()),
        }
    }

    /// `--rate-limit`: refused, or a count within its range.
    #[test]
    fn any_rate_is_refused_or_in_range(value in shared::extremes::values()) {
        if let Ok(cli) = parse(&["--rate-limit", &value]) {
            let err = parse(&["--rate-limit", "4294967295/s"]).unwrap_err().to_string();
            let (min, max) = bounds_in(&err).unwrap();
            let (min, max) = (parse_count::<u32>(&min).unwrap(), parse_count::<u32>(&max).unwrap());
            let rate = cli.config.traffic.rate_limit.unwrap();
            prop_assert!((min..=max).contains(&rate.count.get()), "{value:?}");
        }
    }
}
