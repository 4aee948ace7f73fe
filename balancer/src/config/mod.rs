//! Command line and environment configuration.
//!
//! Every setting is a `--flag` with a matching `BALANCER_*` environment variable (clap derive + env).
//! Durations are humane (`500ms`, `2s`, `1m`), sizes accept plain bytes or `KiB`/`MiB`/`GiB`
//! (and `KB`/`MB`/`GB`). A bad value ends the process with one line naming the flag and exit code 2,
//! before anything is started.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use shared::duration::{parse_duration, parse_nonzero_duration};
use shared::size::parse_size;

use crate::access_log;
use crate::traffic::rate_limit::{parse_rate, Rate};
use crate::traffic::trusted_proxies::{parse_trusted_proxies, TrustedProxies};

/// Round-robin reverse proxy in front of the app replicas, replacing NGINX.
#[derive(Debug, Parser)]
#[command(name = "balancer", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Exit 0 only if this balancer's admin listener answers (for container health checks).
    Healthcheck,
}

#[derive(Debug, Clone, Parser)]
pub struct Config {
    /// Public listener address.
    #[arg(long, env = "BALANCER_LISTEN", default_value = "0.0.0.0:5000")]
    pub listen: SocketAddr,

    /// Comma-separated `host:port` upstream names; every address a name resolves to is a backend.
    #[arg(long, env = "BALANCER_UPSTREAMS", default_value = "app:5000", value_parser = parse_upstreams)]
    pub upstreams: Upstreams,

    /// Admin listener (/metrics, /status); never served on the public listener.
    #[arg(
        long,
        env = "BALANCER_ADMIN_LISTEN",
        default_value = "127.0.0.1:9000",
        global = true
    )]
    pub admin_listen: SocketAddr,

    /// How often every upstream name is resolved again.
    #[arg(long, env = "BALANCER_RESOLVE_INTERVAL", default_value = "2s", value_parser = parse_nonzero_duration)]
    pub resolve_interval: Duration,

    /// Path of the active health check (GET).
    #[arg(long, env = "BALANCER_HEALTH_PATH", default_value = "/health", value_parser = parse_health_path)]
    pub health_path: String,

    /// How often each backend is health-checked on a fresh connection.
    #[arg(long, env = "BALANCER_HEALTH_INTERVAL", default_value = "2s", value_parser = parse_nonzero_duration)]
    pub health_interval: Duration,

    /// Failures within --fail-timeout that take a backend out.
    #[arg(long, env = "BALANCER_MAX_FAILS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_fails: u32,

    /// Window for counting failures, and how long a failing backend stays out.
    #[arg(long, env = "BALANCER_FAIL_TIMEOUT", default_value = "10s", value_parser = parse_nonzero_duration)]
    pub fail_timeout: Duration,

    /// Time allowed to open a connection to a backend.
    #[arg(long, env = "BALANCER_CONNECT_TIMEOUT", default_value = "2s", value_parser = parse_nonzero_duration)]
    pub connect_timeout: Duration,

    /// Time allowed for a backend's response head once the request is sent.
    #[arg(long, env = "BALANCER_UPSTREAM_TIMEOUT", default_value = "60s", value_parser = parse_nonzero_duration)]
    pub upstream_timeout: Duration,

    /// Time a client has to send complete request headers.
    #[arg(long, env = "BALANCER_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_nonzero_duration)]
    pub header_read_timeout: Duration,

    /// Largest request body accepted (larger gets 413).
    #[arg(long, env = "BALANCER_MAX_BODY", default_value = "16MiB", value_parser = parse_size)]
    pub max_body: u64,

    /// Worker threads, each with its own event loop (default: available cores). Accepted
    /// connections are handed to them in turn, like NGINX's worker processes.
    #[arg(long, env = "BALANCER_WORKERS", value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: Option<u16>,

    /// Log line format.
    #[arg(long, env = "BALANCER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// One line per request: `combined` (NGINX's, plus request ID, backend and upstream time),
    /// `json` (one object per line) or `off`. Written to stdout in 32 KiB batches, off the
    /// request path; under overload lines are dropped (and counted), never requests slowed.
    #[arg(long, env = "BALANCER_ACCESS_LOG", value_enum, default_value_t = access_log::Format::Off)]
    pub access_log: access_log::Format,

    /// How long in-flight requests may take to finish after SIGTERM/SIGINT.
    #[arg(long, env = "BALANCER_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = parse_nonzero_duration)]
    pub shutdown_timeout: Duration,

    /// Idle keep-alive connections kept per backend by each worker (like NGINX's `keepalive`,
    /// which counts per worker process).
    #[arg(long, env = "BALANCER_MAX_IDLE_PER_BACKEND", default_value_t = 256)]
    pub max_idle_per_backend: usize,

    /// How requests reach the replicas: `http1` (pooled keep-alive HTTP/1.1 connections) or `h2c`
    /// (HTTP/2 with prior knowledge: one multiplexed connection per backend per worker, every
    /// response tied to its request by its stream). Upgrades (WebSocket) always use HTTP/1.1.
    #[arg(long, env = "BALANCER_UPSTREAM_PROTOCOL", value_enum, default_value_t = UpstreamProtocol::Http1)]
    pub upstream_protocol: UpstreamProtocol,

    /// HTTPS listener address (unset: no TLS). Needs --tls-cert and --tls-key.
    #[arg(long, env = "BALANCER_TLS_LISTEN", requires_all = ["tls_cert", "tls_key"])]
    pub tls_listen: Option<SocketAddr>,

    /// PEM certificate chain for --tls-listen, leaf first; reloaded on SIGHUP and when it changes.
    #[arg(long, env = "BALANCER_TLS_CERT", requires = "tls_listen")]
    pub tls_cert: Option<std::path::PathBuf>,

    /// PEM private key (PKCS#8, RSA or EC) matching --tls-cert.
    #[arg(long, env = "BALANCER_TLS_KEY", requires = "tls_listen")]
    pub tls_key: Option<std::path::PathBuf>,

    /// The plain listener answers every request with 308 to the same host and path on the TLS port.
    #[arg(long, env = "BALANCER_REDIRECT_HTTP", requires = "tls_listen")]
    pub redirect_http: bool,

    /// `Strict-Transport-Security: max-age=...` on TLS responses (e.g. `365d`; off when unset).
    #[arg(long, env = "BALANCER_HSTS", value_name = "MAX_AGE", requires = "tls_listen", value_parser = parse_nonzero_duration)]
    pub hsts: Option<Duration>,
    /// How a request's first backend is chosen: `round-robin`, or `least-request` (power of two
    /// choices over in-flight requests).
    #[arg(long, env = "BALANCER_BALANCE", value_enum, default_value_t = Balance::RoundRobin)]
    pub balance: Balance,

    /// A backend that joins or comes back ramps its share linearly from 5 % to full over this
    /// window (`0s` = off).
    #[arg(long, env = "BALANCER_SLOW_START", default_value = "0s", value_parser = parse_duration)]
    pub slow_start: Duration,

    /// Consecutive 5xx responses that take a backend out for --fail-timeout (0 = off); never
    /// more than half of the backends are out for this at once.
    #[arg(long = "max-5xx", env = "BALANCER_MAX_5XX", default_value_t = 0)]
    pub max_5xx: u32,

    /// Requests per client address, e.g. `50/s` or `3000/m` (off when unset); over it: 429.
    #[arg(long, env = "BALANCER_RATE_LIMIT", value_parser = parse_rate)]
    pub rate_limit: Option<Rate>,

    /// Requests a client may send at once above the rate (default: one second's worth, at least 1).
    #[arg(long, env = "BALANCER_RATE_BURST", value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_burst: Option<u32>,

    /// Proxies (CIDR list) whose `X-Forwarded-For` is believed: the client is the last address
    /// in it that is not one of them. Empty: the socket's peer is the client.
    #[arg(long, env = "BALANCER_TRUSTED_PROXIES", default_value = "", value_parser = parse_trusted_proxies)]
    pub trusted_proxies: TrustedProxies,

    /// Client addresses the rate limiter remembers; past it the oldest entries are dropped.
    #[arg(long, env = "BALANCER_RATE_LIMIT_CLIENTS", default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub rate_limit_clients: u64,

    /// Open client connections; beyond it new ones are answered 503 and closed.
    #[arg(long, env = "BALANCER_MAX_CONNECTIONS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub max_connections: u64,

    /// Bearer token for the admin API's POST calls (drain, undrain); unset or empty: they
    /// answer 403.
    #[arg(long, env = "BALANCER_ADMIN_TOKEN", hide_env_values = true,
          value_parser = shared::setting::secret(parse_admin_token, hide_token))]
    pub admin_token: Option<String>,
}

/// `--balance`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Balance {
    RoundRobin,
    LeastRequest,
}

/// `--upstream-protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UpstreamProtocol {
    Http1,
    H2c,
}

impl UpstreamProtocol {
    pub fn name(self) -> &'static str {
        match self {
            UpstreamProtocol::Http1 => "http1",
            UpstreamProtocol::H2c => "h2c",
        }
    }
}

/// A refused token is never echoed.
fn hide_token(_: &str) -> String {
    "<hidden>".to_owned()
}

impl Balance {
    pub fn name(self) -> &'static str {
        match self {
            Balance::RoundRobin => "round-robin",
            Balance::LeastRequest => "least-request",
        }
    }
}

/// A token of visible ASCII (it travels in a header), not so short that it is guessed; empty
/// means none (a Compose file may pass the variable through unset).
fn parse_admin_token(raw: &str) -> Result<String, String> {
    if raw.is_empty() {
        return Ok(String::new());
    }
    if raw.len() < 16 || !raw.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err("must be at least 16 visible ASCII characters".into());
    }
    Ok(raw.to_owned())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// One configured upstream name, e.g. `app:5000`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Upstream {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstreams(pub Vec<Upstream>);

fn parse_upstreams(raw: &str) -> Result<Upstreams, String> {
    let mut out = Vec::new();
    for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let upstream = parse_upstream(entry)?;
        if !out.contains(&upstream) {
            out.push(upstream);
        }
    }
    if out.is_empty() {
        return Err("expected at least one host:port".into());
    }
    Ok(Upstreams(out))
}

fn parse_upstream(entry: &str) -> Result<Upstream, String> {
    let (host, port) = entry
        .rsplit_once(':')
        .ok_or_else(|| format!("`{entry}` is not host:port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty()
        || host
            .chars()
            .any(|c| c.is_whitespace() || c == '/' || c == '@')
    {
        return Err(format!("`{entry}` has no valid host"));
    }
    let port: u16 = port
        .parse()
        .map_err(|_| format!("`{entry}` has no valid port"))?;
    if port == 0 {
        return Err(format!("`{entry}` has port 0"));
    }
    Ok(Upstream {
        host: host.to_owned(),
        port,
    })
}

fn parse_health_path(raw: &str) -> Result<String, String> {
    if !raw.starts_with('/') || raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("`{raw}` must be an absolute path like /health"));
    }
    http::uri::PathAndQuery::try_from(raw).map_err(|e| format!("`{raw}`: {e}"))?;
    Ok(raw.to_owned())
}

impl Config {
    pub fn workers(&self) -> usize {
        match self.workers {
            Some(n) => usize::from(n),
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// Parses the command line; on error prints `balancer: configuration error: ...` (one line naming
/// the flag) and exits 2.
pub fn parse_or_exit() -> Cli {
    shared::config_error::parse_or_exit("balancer")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The balancer's contract on top of the shared syntax: every duration is a timeout or an
    /// interval, so zero is refused, and so is a bare number.
    #[test]
    fn durations_and_sizes_use_the_shared_rules() {
        let parse = |args: &[&str]| Cli::try_parse_from([&["balancer"], args].concat());
        let c = parse(&["--fail-timeout", "1m30s", "--max-body", "512KiB"]).unwrap();
        assert_eq!(c.config.fail_timeout, Duration::from_secs(90));
        assert_eq!(c.config.max_body, 512 << 10);
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
        assert_eq!(c.config.hsts, Some(Duration::from_secs(365 * 86400)));
        assert!(c.config.redirect_http);
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
        assert_eq!(c.balance, Balance::LeastRequest);
        assert_eq!(c.slow_start, Duration::from_secs(5));
        assert_eq!(c.max_5xx, 3);
        assert_eq!(c.rate_limit.unwrap().to_string(), "50/s");
        assert_eq!(c.rate_burst, Some(10));
        assert_eq!((c.rate_limit_clients, c.max_connections), (1000, 20));
        assert_eq!(c.admin_token.as_deref(), Some("0123456789abcdef"));
        assert_eq!(c.upstream_protocol.name(), "h2c");
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
        assert_eq!(c.listen.to_string(), "0.0.0.0:5000");
        assert_eq!(c.admin_listen.to_string(), "127.0.0.1:9000");
        assert_eq!(c.upstreams.0[0].to_string(), "app:5000");
        assert_eq!(c.max_body, 16 << 20);
        assert_eq!(c.max_fails, 1);
        assert_eq!(c.fail_timeout, Duration::from_secs(10));
        assert_eq!(c.upstream_timeout, Duration::from_secs(60));
        assert_eq!(c.access_log, access_log::Format::Off);
        assert_eq!(c.balance, Balance::RoundRobin);
        assert_eq!(c.upstream_protocol, UpstreamProtocol::Http1);
        assert_eq!(c.slow_start, Duration::ZERO);
        assert_eq!(c.max_5xx, 0);
        assert!(c.rate_limit.is_none() && c.rate_burst.is_none());
        assert!(c.trusted_proxies.is_empty());
        assert_eq!(c.rate_limit_clients, 100_000);
        assert_eq!(c.max_connections, 10_000);
        assert!(c.admin_token.is_none());
        assert!(cli.command.is_none());
        assert!(c.tls_listen.is_none() && c.tls_cert.is_none() && c.tls_key.is_none());
        assert!(!c.redirect_http && c.hsts.is_none());
        let hc = Cli::try_parse_from(["balancer", "healthcheck", "--admin-listen", "127.0.0.1:1"])
            .unwrap();
        assert!(matches!(hc.command, Some(Command::Healthcheck)));
        assert_eq!(hc.config.admin_listen.port(), 1);
    }
}
