//! Command-line and environment configuration.
//!
//! Every setting is an environment variable with a matching `--flag` (clap derive + env), and each
//! has a value parser, so clap hands over typed values (`u16`, `SocketAddr`, `Duration`, ...) and
//! a bad one ends the process before anything starts: one line naming the variable, exit code 2
//! (see `shared::setting` for the line and `shared::config_error` for the exit). Durations use the
//! shared syntax (`500ms`, `2s`, `1m`; a bare number or a fraction is refused), and each has its
//! range where its flag is declared (`shared::duration::within`). What is left after parsing is
//! the one cross-field rule (REDIS_URL wins over REDIS_HOST/REDIS_PORT) and the REPLICA_NAME
//! default (the hostname), in [`Settings::resolve`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use http::HeaderValue;

use shared::duration::{within, HOUR};
use shared::setting::{plain, secret};

/// Command line of the `app` binary.
#[derive(Debug, Parser)]
#[command(
    name = "app",
    version,
    about = "The demo visit counter behind the balancer: a web service (hyper + minijinja) that \
counts visits in Redis (one INCR per /count). Every flag has the variable shown beside it.",
    after_help = shared::duration::SYNTAX_HELP,
    mut_args = |arg: clap::Arg| arg.hide_env_values(true)
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub settings: Settings,
}

/// Subcommands; without one the binary serves HTTP.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Ask `/health` on the local listener (APP_LISTEN's port); exit 0 only on 200.
    Healthcheck {
        /// How long to wait for the answer before declaring the service unhealthy.
        #[arg(long, default_value = "3s", value_parser = within(Duration::from_millis(1), HOUR))]
        timeout: Duration,
    },
}

/// Settings as clap parsed them from the command line or the environment.
#[derive(Debug, clap::Args)]
pub struct Settings {
    /// Redis host name (ignored when REDIS_URL is set).
    #[arg(long = "redis-host", env = "REDIS_HOST", value_name = "REDIS_HOST",
        default_value = "redis", global = true, value_parser = plain(parse_redis_host))]
    pub redis_host: String,

    /// Redis TCP port (ignored when REDIS_URL is set).
    #[arg(long = "redis-port", env = "REDIS_PORT", value_name = "REDIS_PORT",
        default_value = "6379", global = true, value_parser = plain(parse_port))]
    pub redis_port: u16,

    /// Full Redis URL, e.g. redis://:secret@host:6379/0; wins over REDIS_HOST/REDIS_PORT.
    #[arg(long = "redis-url", env = "REDIS_URL", value_name = "REDIS_URL",
        global = true, value_parser = secret(parse_redis_url, redact))]
    pub redis_url: Option<String>,

    /// Bound on every Redis command and connection attempt (e.g. 500ms, 2s).
    #[arg(long = "redis-timeout", env = "REDIS_TIMEOUT", value_name = "REDIS_TIMEOUT",
        default_value = "500ms", global = true,
        value_parser = within(Duration::from_millis(1), HOUR))]
    pub redis_timeout: Duration,

    /// Address the HTTP server listens on.
    #[arg(long = "app-listen", alias = "listen", env = "APP_LISTEN", value_name = "APP_LISTEN",
        default_value = "0.0.0.0:5000", global = true, value_parser = plain(parse_listen))]
    pub app_listen: SocketAddr,

    /// Site name shown in the pages.
    #[arg(long = "app-name", env = "APP_NAME", value_name = "APP_NAME",
        default_value = "Visit Counter", global = true, value_parser = plain(not_blank))]
    pub app_name: String,

    /// Name of this replica, sent in X-Served-By (default: the hostname).
    #[arg(long = "replica-name", env = "REPLICA_NAME", value_name = "REPLICA_NAME",
        global = true, value_parser = plain(parse_replica_name))]
    pub replica_name: Option<ReplicaName>,

    /// This build's version, in /health, the X-App-Version header and the pages' footer (default:
    /// the crate version; images take it as a build argument).
    #[arg(long = "app-version", env = "APP_VERSION", value_name = "APP_VERSION",
        default_value = env!("CARGO_PKG_VERSION"), global = true,
        value_parser = plain(parse_app_version))]
    pub app_version: AppVersion,

    /// Redis key holding the visit counter.
    #[arg(long = "counter-key", env = "COUNTER_KEY", value_name = "COUNTER_KEY",
        default_value = "visits", global = true, value_parser = plain(not_empty))]
    pub counter_key: String,

    /// Link behind the GitHub icon on /about.
    #[arg(long = "github-url", env = "GITHUB_URL", value_name = "GITHUB_URL",
        default_value = "https://github.com/", global = true, value_parser = plain(parse_web_url))]
    pub github_url: String,

    /// Link behind the LinkedIn icon on /about.
    #[arg(long = "linkedin-url", env = "LINKEDIN_URL", value_name = "LINKEDIN_URL",
        default_value = "https://www.linkedin.com/", global = true,
        value_parser = plain(parse_web_url))]
    pub linkedin_url: String,

    /// How long a shutdown waits for in-flight requests before giving up (e.g. 10s).
    #[arg(long = "drain-timeout", env = "DRAIN_TIMEOUT", value_name = "DRAIN_TIMEOUT",
        default_value = "10s", global = true, value_parser = within(Duration::ZERO, HOUR))]
    pub drain_timeout: Duration,

    /// After SIGTERM, how long to keep serving open connections (with `Connection: close` and a 503
    /// /health) before closing idle ones, so a balancer's health check takes this replica out first
    /// (e.g. 3s; 0s closes idle connections at once).
    #[arg(long = "shutdown-delay", env = "SHUTDOWN_DELAY", value_name = "SHUTDOWN_DELAY",
        default_value = "0s", global = true, value_parser = within(Duration::ZERO, HOUR))]
    pub shutdown_delay: Duration,

    /// Load templates and static files from this directory instead of the embedded copies.
    #[arg(long = "templates-dir", env = "TEMPLATES_DIR", value_name = "TEMPLATES_DIR",
        global = true, value_parser = plain(parse_templates_dir))]
    pub templates_dir: Option<PathBuf>,
}

/// REPLICA_NAME with the header value it becomes, so X-Served-By costs a refcount per response.
#[derive(Debug, Clone)]
pub struct ReplicaName {
    pub name: String,
    pub header: HeaderValue,
}

/// APP_VERSION with the header value it becomes, so X-App-Version costs a refcount per response.
#[derive(Debug, Clone)]
pub struct AppVersion {
    pub name: String,
    pub header: HeaderValue,
}

/// 1 to 64 visible ASCII characters (`1.4.2`, `v2`, `2026-12-02-abc123`): it goes into a header.
/// Empty means the default, so an image built without the build argument still starts.
fn parse_app_version(raw: &str) -> Result<AppVersion, String> {
    let raw = if raw.is_empty() {
        env!("CARGO_PKG_VERSION")
    } else {
        raw
    };
    let ok = (1..=64).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_graphic());
    match HeaderValue::from_str(raw) {
        Ok(header) if ok => Ok(AppVersion {
            name: raw.to_owned(),
            header,
        }),
        _ => {
            Err("must be 1 to 64 visible ASCII characters (it is sent in X-App-Version)".to_owned())
        }
    }
}

/// Settings the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Redis connection URL (credentials included; never log it whole).
    pub redis_url: String,
    pub redis_timeout: Duration,
    pub listen: SocketAddr,
    pub app_name: String,
    pub replica_name: String,
    /// REPLICA_NAME as a ready header value.
    pub served_by: HeaderValue,
    /// APP_VERSION, and as a ready header value.
    pub version: String,
    pub version_header: HeaderValue,
    pub counter_key: String,
    pub github_url: String,
    pub linkedin_url: String,
    pub drain_timeout: Duration,
    pub shutdown_delay: Duration,
    pub templates_dir: Option<PathBuf>,
}

impl Settings {
    /// Applies the rules between settings; the error is the one line naming the variable.
    pub fn resolve(self) -> Result<Config, String> {
        let redis_url = self.effective_redis_url()?;
        let replica = match self.replica_name {
            Some(replica) => replica,
            None => {
                let name = hostname();
                parse_replica_name(&name).map_err(|why| {
                    format!("invalid REPLICA_NAME (--replica-name) default, the hostname {name:?}: {why}")
                })?
            }
        };
        Ok(Config {
            redis_url,
            redis_timeout: self.redis_timeout,
            listen: self.app_listen,
            app_name: self.app_name,
            replica_name: replica.name,
            served_by: replica.header,
            version: self.app_version.name,
            version_header: self.app_version.header,
            counter_key: self.counter_key,
            github_url: self.github_url,
            linkedin_url: self.linkedin_url,
            drain_timeout: self.drain_timeout,
            shutdown_delay: self.shutdown_delay,
            templates_dir: self.templates_dir,
        })
    }

    /// REDIS_URL when set and not empty, else one built from REDIS_HOST and REDIS_PORT.
    fn effective_redis_url(&self) -> Result<String, String> {
        if let Some(url) = self.redis_url.as_ref().filter(|url| !url.is_empty()) {
            return Ok(url.clone());
        }
        let url = host_port_url(&self.redis_host, self.redis_port);
        redis::Client::open(url.as_str()).map_err(|e| {
            let host = &self.redis_host;
            format!("invalid REDIS_HOST (--redis-host) value {host:?}: {e}")
        })?;
        Ok(url)
    }
}

/// `redis://host:port/`, with an IPv6 address in brackets.
fn host_port_url(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("redis://[{host}]:{port}/")
    } else {
        format!("redis://{host}:{port}/")
    }
}

fn parse_redis_host(raw: &str) -> Result<String, String> {
    let host = raw.trim();
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/' || c == '@') {
        return Err("expected a host name or IP address".to_owned());
    }
    Ok(host.to_owned())
}

fn parse_port(raw: &str) -> Result<u16, String> {
    match raw.trim().parse::<u16>() {
        Ok(0) | Err(_) => Err("expected a port number 1-65535".to_owned()),
        Ok(port) => Ok(port),
    }
}

/// A URL redis-rs accepts; empty stands for unset (Compose passes `REDIS_URL=` through). The
/// reason never quotes the value: it may hold a password.
fn parse_redis_url(raw: &str) -> Result<String, String> {
    let url = raw.trim();
    if !url.is_empty() {
        redis::Client::open(url).map_err(|e| e.to_string())?;
    }
    Ok(url.to_owned())
}

fn parse_listen(raw: &str) -> Result<SocketAddr, String> {
    raw.trim()
        .parse()
        .map_err(|_| "expected IP:PORT, e.g. 0.0.0.0:5000".to_owned())
}

fn not_blank(raw: &str) -> Result<String, String> {
    if raw.trim().is_empty() {
        return Err("must not be empty".to_owned());
    }
    Ok(raw.to_owned())
}

fn not_empty(raw: &str) -> Result<String, String> {
    if raw.is_empty() {
        return Err("must not be empty".to_owned());
    }
    Ok(raw.to_owned())
}

fn parse_replica_name(raw: &str) -> Result<ReplicaName, String> {
    match HeaderValue::from_str(raw) {
        Ok(header) if !raw.trim().is_empty() => Ok(ReplicaName {
            name: raw.to_owned(),
            header,
        }),
        _ => Err("must be non-empty printable ASCII (it is sent in X-Served-By)".to_owned()),
    }
}

fn parse_web_url(raw: &str) -> Result<String, String> {
    let uri: Option<http::Uri> = raw.parse().ok();
    match uri.as_ref().map(|uri| (uri.scheme_str(), uri.host())) {
        Some((Some("http" | "https"), Some(host))) if !host.is_empty() => Ok(raw.to_owned()),
        _ => Err("expected an http(s) URL".to_owned()),
    }
}

fn parse_templates_dir(raw: &str) -> Result<PathBuf, String> {
    let dir = PathBuf::from(raw);
    if !dir.is_dir() {
        return Err("not a directory".to_owned());
    }
    Ok(dir)
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
mod tests;
