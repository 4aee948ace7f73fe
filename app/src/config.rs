//! Command-line and environment configuration.
//!
//! Every setting is an environment variable with a matching `--flag` (clap derive + env).
//! Values arrive as strings and are validated here, so that a bad value ends the process
//! with ONE line naming the variable (exit code 2) instead of a multi-line clap report or
//! a panic deep inside the server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use http::HeaderValue;

/// Command line of the `app` binary.
#[derive(Debug, Parser)]
#[command(
    name = "app",
    version,
    about = "Visit counter web service (hyper + minijinja + Redis)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub settings: RawSettings,
}

/// Subcommands; without one the binary serves HTTP.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Ask `/health` on the local listener (APP_LISTEN's port); exit 0 only on 200.
    Healthcheck {
        /// How long to wait for the answer before declaring the service unhealthy.
        #[arg(long, default_value = "3s")]
        timeout: String,
    },
}

/// Settings exactly as given on the command line or in the environment.
#[derive(Debug, clap::Args)]
pub struct RawSettings {
    /// Redis host name (ignored when REDIS_URL is set).
    #[arg(
        long = "redis-host",
        env = "REDIS_HOST",
        default_value = "redis",
        global = true
    )]
    pub redis_host: String,

    /// Redis TCP port (ignored when REDIS_URL is set).
    #[arg(
        long = "redis-port",
        env = "REDIS_PORT",
        default_value = "6379",
        global = true
    )]
    pub redis_port: String,

    /// Full Redis URL, e.g. redis://:secret@host:6379/0; wins over REDIS_HOST/REDIS_PORT.
    #[arg(long = "redis-url", env = "REDIS_URL", global = true)]
    pub redis_url: Option<String>,

    /// Bound on every Redis command and connection attempt (e.g. 500ms, 2s).
    #[arg(
        long = "redis-timeout",
        env = "REDIS_TIMEOUT",
        default_value = "500ms",
        global = true
    )]
    pub redis_timeout: String,

    /// Address the HTTP server listens on.
    #[arg(
        long = "app-listen",
        alias = "listen",
        env = "APP_LISTEN",
        default_value = "0.0.0.0:5000",
        global = true
    )]
    pub app_listen: String,

    /// Site name shown in the pages.
    #[arg(
        long = "app-name",
        env = "APP_NAME",
        default_value = "Visit Counter",
        global = true
    )]
    pub app_name: String,

    /// Name of this replica, sent in X-Served-By (default: the hostname).
    #[arg(long = "replica-name", env = "REPLICA_NAME", global = true)]
    pub replica_name: Option<String>,

    /// Redis key holding the visit counter.
    #[arg(
        long = "counter-key",
        env = "COUNTER_KEY",
        default_value = "visits",
        global = true
    )]
    pub counter_key: String,

    /// Link behind the GitHub icon on /about.
    #[arg(
        long = "github-url",
        env = "GITHUB_URL",
        default_value = "https://github.com/",
        global = true
    )]
    pub github_url: String,

    /// Link behind the LinkedIn icon on /about.
    #[arg(
        long = "linkedin-url",
        env = "LINKEDIN_URL",
        default_value = "https://www.linkedin.com/",
        global = true
    )]
    pub linkedin_url: String,

    /// How long a shutdown waits for in-flight requests before giving up (e.g. 10s).
    #[arg(
        long = "drain-timeout",
        env = "DRAIN_TIMEOUT",
        default_value = "10s",
        global = true
    )]
    pub drain_timeout: String,

    /// After SIGTERM, how long to keep serving open connections (with `Connection: close` and a 503
    /// /health) before closing idle ones, so a balancer's health check takes this replica out first
    /// (e.g. 3s; 0s closes idle connections at once).
    #[arg(
        long = "shutdown-delay",
        env = "SHUTDOWN_DELAY",
        default_value = "0s",
        global = true
    )]
    pub shutdown_delay: String,

    /// Load templates and static files from this directory instead of the embedded copies.
    #[arg(long = "templates-dir", env = "TEMPLATES_DIR", global = true)]
    pub templates_dir: Option<PathBuf>,
}

/// A configuration problem: printed as one line, exit code 2.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn bad(variable: &str, flag: &str, value: &str, why: impl std::fmt::Display) -> ConfigError {
    ConfigError(format!(
        "invalid {variable} (--{flag}) value {value:?}: {why}"
    ))
}

/// Validated settings the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Redis connection URL (credentials included; never log it whole).
    pub redis_url: String,
    pub redis_timeout: Duration,
    pub listen: SocketAddr,
    pub app_name: String,
    pub replica_name: String,
    /// REPLICA_NAME as a ready header value, so X-Served-By costs a refcount per response.
    pub served_by: HeaderValue,
    pub counter_key: String,
    pub github_url: String,
    pub linkedin_url: String,
    pub drain_timeout: Duration,
    pub shutdown_delay: Duration,
    pub templates_dir: Option<PathBuf>,
}

impl RawSettings {
    /// Validates everything the server needs.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let listen = parse_listen(&self.app_listen)?;
        let redis_url = match self.redis_url.as_deref().map(str::trim) {
            Some(url) if !url.is_empty() => {
                redis::Client::open(url)
                    .map_err(|e| bad("REDIS_URL", "redis-url", &redact(url), e))?;
                url.to_owned()
            }
            _ => {
                let host = self.redis_host.trim();
                if host.is_empty()
                    || host.contains(|c: char| c.is_whitespace() || c == '/' || c == '@')
                {
                    return Err(bad(
                        "REDIS_HOST",
                        "redis-host",
                        host,
                        "expected a host name or IP address",
                    ));
                }
                let port = parse_port(&self.redis_port)
                    .map_err(|why| bad("REDIS_PORT", "redis-port", &self.redis_port, why))?;
                let host = if host.contains(':') && !host.starts_with('[') {
                    format!("[{host}]")
                } else {
                    host.to_owned()
                };
                let url = format!("redis://{host}:{port}/");
                redis::Client::open(url.as_str())
                    .map_err(|e| bad("REDIS_HOST", "redis-host", &self.redis_host, e))?;
                url
            }
        };
        let redis_timeout = parse_duration(&self.redis_timeout)
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                bad(
                    "REDIS_TIMEOUT",
                    "redis-timeout",
                    &self.redis_timeout,
                    "expected a duration such as 500ms or 2s",
                )
            })?;
        let drain_timeout = parse_duration(&self.drain_timeout).ok_or_else(|| {
            bad(
                "DRAIN_TIMEOUT",
                "drain-timeout",
                &self.drain_timeout,
                "expected a duration such as 10s or 500ms",
            )
        })?;
        let shutdown_delay = parse_duration(&self.shutdown_delay).ok_or_else(|| {
            bad(
                "SHUTDOWN_DELAY",
                "shutdown-delay",
                &self.shutdown_delay,
                "expected a duration such as 3s or 0s",
            )
        })?;

        if self.app_name.trim().is_empty() {
            return Err(bad(
                "APP_NAME",
                "app-name",
                &self.app_name,
                "must not be empty",
            ));
        }
        let replica_name = match self.replica_name {
            Some(name) => name,
            None => hostname(),
        };
        let served_by = HeaderValue::from_str(&replica_name)
            .ok()
            .filter(|_| !replica_name.trim().is_empty())
            .ok_or_else(|| {
                bad(
                    "REPLICA_NAME",
                    "replica-name",
                    &replica_name,
                    "must be non-empty printable ASCII (it is sent in X-Served-By)",
                )
            })?;
        if self.counter_key.is_empty() {
            return Err(bad(
                "COUNTER_KEY",
                "counter-key",
                &self.counter_key,
                "must not be empty",
            ));
        }
        check_web_url(&self.github_url)
            .map_err(|why| bad("GITHUB_URL", "github-url", &self.github_url, why))?;
        check_web_url(&self.linkedin_url)
            .map_err(|why| bad("LINKEDIN_URL", "linkedin-url", &self.linkedin_url, why))?;
        if let Some(dir) = &self.templates_dir {
            if !dir.is_dir() {
                return Err(bad(
                    "TEMPLATES_DIR",
                    "templates-dir",
                    &dir.display().to_string(),
                    "not a directory",
                ));
            }
        }
        Ok(Config {
            redis_url,
            redis_timeout,
            listen,
            app_name: self.app_name,
            replica_name,
            served_by,
            counter_key: self.counter_key,
            github_url: self.github_url,
            linkedin_url: self.linkedin_url,
            drain_timeout,
            shutdown_delay,
            templates_dir: self.templates_dir,
        })
    }
}

/// Parses APP_LISTEN; also used by `app healthcheck`, which needs nothing else.
pub fn parse_listen(value: &str) -> Result<SocketAddr, ConfigError> {
    value.trim().parse::<SocketAddr>().map_err(|_| {
        bad(
            "APP_LISTEN",
            "app-listen",
            value,
            "expected IP:PORT, e.g. 0.0.0.0:5000",
        )
    })
}

fn parse_port(value: &str) -> Result<u16, &'static str> {
    match value.trim().parse::<u16>() {
        Ok(0) | Err(_) => Err("expected a port number 1-65535"),
        Ok(port) => Ok(port),
    }
}

/// Accepts `250ms`, `2s`, `1m` or a bare number of seconds.
pub fn parse_duration(value: &str) -> Option<Duration> {
    let value = value.trim();
    let (number, unit) = match value.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(split) => value.split_at(split),
        None => (value, "s"),
    };
    let number: f64 = number.parse().ok()?;
    let seconds = match unit.trim() {
        "ms" => number / 1000.0,
        "s" => number,
        "m" => number * 60.0,
        _ => return None,
    };
    if !seconds.is_finite() || !(0.0..=86_400.0).contains(&seconds) {
        return None;
    }
    Some(Duration::from_secs_f64(seconds))
}

fn check_web_url(value: &str) -> Result<(), &'static str> {
    let uri: http::Uri = value.parse().map_err(|_| "expected an http(s) URL")?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(host)) if !host.is_empty() => Ok(()),
        _ => Err("expected an http(s) URL"),
    }
}

/// Hides a password in a Redis URL before it goes into an error or a log line.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://***@{}", &url[..scheme_end], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// The machine's hostname; in a container that is its id, which is what X-Served-By should show.
fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .map(|name| name.trim().to_owned())
        .find(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|n| !n.is_empty()))
        .unwrap_or_else(|| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration("-1s"), None);
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
        assert!(check_web_url("https://github.com/me").is_ok());
        assert!(check_web_url("javascript:alert(1)").is_err());
        assert!(check_web_url("not a url").is_err());
    }
}
