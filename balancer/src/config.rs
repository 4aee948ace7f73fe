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
    #[arg(long, env = "BALANCER_RESOLVE_INTERVAL", default_value = "2s", value_parser = parse_duration)]
    pub resolve_interval: Duration,

    /// Path of the active health check (GET).
    #[arg(long, env = "BALANCER_HEALTH_PATH", default_value = "/health", value_parser = parse_health_path)]
    pub health_path: String,

    /// How often each backend is health-checked on a fresh connection.
    #[arg(long, env = "BALANCER_HEALTH_INTERVAL", default_value = "2s", value_parser = parse_duration)]
    pub health_interval: Duration,

    /// Failures within --fail-timeout that take a backend out.
    #[arg(long, env = "BALANCER_MAX_FAILS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_fails: u32,

    /// Window for counting failures, and how long a failing backend stays out.
    #[arg(long, env = "BALANCER_FAIL_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub fail_timeout: Duration,

    /// Time allowed to open a connection to a backend.
    #[arg(long, env = "BALANCER_CONNECT_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    pub connect_timeout: Duration,

    /// Time allowed for a backend's response head once the request is sent.
    #[arg(long, env = "BALANCER_UPSTREAM_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub upstream_timeout: Duration,

    /// Time a client has to send complete request headers.
    #[arg(long, env = "BALANCER_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
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

    /// How long in-flight requests may take to finish after SIGTERM/SIGINT.
    #[arg(long, env = "BALANCER_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// Idle keep-alive connections kept per backend by each worker (like NGINX's `keepalive`,
    /// which counts per worker process).
    #[arg(long, env = "BALANCER_MAX_IDLE_PER_BACKEND", default_value_t = 256)]
    pub max_idle_per_backend: usize,
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

/// `500ms`, `2s`, `1m`, `1m30s`, ... (humantime); zero is refused because every duration here is a
/// timeout or an interval.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(raw.trim())
        .map_err(|e| format!("`{raw}` is not a duration like 500ms, 2s or 1m ({e})"))?;
    if d.is_zero() {
        return Err("must be greater than zero".into());
    }
    Ok(d)
}

/// Plain bytes, or a number followed by B, KiB, MiB, GiB, KB, MB, GB (case-insensitive unit).
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

/// Parses the command line; on error prints one line naming the flag and exits 2.
pub fn parse_or_exit() -> Cli {
    match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                std::process::exit(0);
            }
            let rendered = e.to_string();
            let line = rendered
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid configuration")
                .trim_start_matches("error: ");
            eprintln!("balancer: configuration error: {line}");
            std::process::exit(2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("512KiB"), Ok(512 * 1024));
        assert_eq!(parse_size("16MiB"), Ok(16 * 1024 * 1024));
        assert_eq!(parse_size("1kb"), Ok(1000));
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("99999999999999999999GiB").is_err());
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
        assert!(cli.command.is_none());
        let hc = Cli::try_parse_from(["balancer", "healthcheck", "--admin-listen", "127.0.0.1:1"])
            .unwrap();
        assert!(matches!(hc.command, Some(Command::Healthcheck)));
        assert_eq!(hc.config.admin_listen.port(), 1);
    }
}
