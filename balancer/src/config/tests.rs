//! The configuration's contract: defaults, ranges, flags that go together, the README table.

use std::time::Duration;

use clap::Parser;

use super::upstreams::{parse_health_path, parse_upstreams};
use super::*;
use crate::access_log;
use crate::backends::selection::Balance;
use crate::upstream::UpstreamProtocol;

/// The balancer's contract on top of the shared syntax: every duration is a timeout or an
/// interval, so zero is refused, and so is a bare number.
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

#[test]
fn tls_flags_go_together() {
    let parse = |args: &[&str]| Cli::try_parse_from([&["balancer"], args].concat());
    let tls = [
        "--tls-listen",
        "127.0.0.1:5443",
        "--tls-cert",
        "c.pem",
        "--tls-key",
        "k.pem",
    ];
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
    let bad: [&[&str]; 13] = [
        &["--upstream-protocol", "h3"],
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

/// Every flag is in the README's balancer table, with its variable.
#[test]
fn every_flag_is_in_the_readme() {
    use clap::CommandFactory;
    let readme = include_str!("../../../README.md");
    for arg in Cli::command().get_arguments() {
        let (Some(long), Some(env)) = (arg.get_long(), arg.get_env()) else {
            continue;
        };
        let row = format!("| `--{long}` | `{}` |", env.to_string_lossy());
        assert!(readme.contains(&row), "README has no row {row}");
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
