//! Command line and environment configuration, on top of the crate: it names every setting and
//! builds each part's own settings from them; no part below imports it.
//!
//! Every setting is a `--flag` with a matching `BALANCER_*` environment variable (clap derive + env),
//! grouped by concern: [`front`] (listeners, workers, HTTPS), [`upstreams`] (the upstream group),
//! [`traffic`] (body and rate limits), [`ops`] (admin, logs). Durations are humane (`500ms`, `2s`,
//! `1m`; no bare number, no fraction), sizes accept plain bytes or `KiB`/`MiB`/`GiB`/`TiB` (and
//! `KB`/`MB`/`GB`/`TB`). Every duration, size and count has a range, written once where its flag is
//! declared (`shared::duration::within`, `shared::size::within`, `shared::count::within`), so no
//! value can overflow a deadline or a limiter later. A bad value ends the process with one line
//! naming the flag and its variable (and the range, when outside it) and exit code 2, before
//! anything is started.
//!
//! With `--config PATH` ([`mod@file`]) the routes and upstream groups come from a TOML file, whose
//! `[server]` table may set any other flag; what the command line or the environment sets wins.

pub mod acme;
pub mod compress;
pub mod file;
pub mod front;
pub mod ops;
#[cfg(test)]
mod tests;
pub mod traffic;
pub mod upstreams;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::admin::Limits;
pub use file::{check_file, load, load_or_exit, FileInfo, GroupSpec, LoadError, Loaded};
pub use front::{FrontConfig, TlsConfig};
pub use ops::{AdminConfig, LogConfig, LogFormat};
pub use traffic::TrafficConfig;
pub use upstreams::UpstreamConfig;

/// A reverse proxy and load balancer in front of a service's replicas, replacing NGINX.
#[derive(Debug, Parser)]
#[command(name = "balancer", version, about = ABOUT, long_about = None, after_help = after_help(),
          mut_args = |arg: clap::Arg| arg.hide_env_values(true))]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

/// The first line of `--help`: what the binary is.
const ABOUT: &str = "An HTTP reverse proxy and load balancer (HTTP/1.1, HTTP/2, WebSocket, gRPC; \
TLS): spreads requests over a service's replicas, found by DNS and health-checked, or over several \
services routed by host and path from a TOML file (--config). Reference: docs/CONFIG.md.";

/// The end of `--help`: the value syntax, the variables, two examples.
fn after_help() -> String {
    format!(
        "{syntax}\n\nEvery flag has a variable: BALANCER_ and the long name in upper case, `_` for `-` \
(--health-interval is BALANCER_HEALTH_INTERVAL). A flag wins over its variable, both over the \
config file's [server] table. Sizes: bytes, 512KiB, 16MiB, 1TiB (or KB, MB, GB, TB).\n\n\
Examples:\n  \
balancer --upstreams web:8080 --health-path /healthz --listen 0.0.0.0:80\n  \
BALANCER_CONFIG=/etc/balancer/balancer.toml balancer --tls-listen 0.0.0.0:443 \
--tls-cert cert.pem --tls-key key.pem --redirect-http",
        syntax = shared::duration::SYNTAX_HELP
    )
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Exit 0 only if this balancer's admin listener answers (for container health checks).
    Healthcheck,
    /// Validate the config file PATH without starting (like `nginx -t`).
    ///
    /// Prints a one-line summary (routes, upstream groups, sha256) and exits 0, or
    /// `PATH:LINE:COLUMN: what is wrong` and exits 2. The environment counts as it would for the
    /// server (`BALANCER_UPSTREAMS` set is an error), other flags do not.
    CheckConfig {
        #[arg(value_name = "PATH")]
        path: PathBuf,
    },
}

/// Every setting, by concern.
#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("tls_source").args(["tls_cert", "acme_domain"]).multiple(true)))]
pub struct Config {
    /// TOML file of routes (`[[route]]`) and upstream groups (`[[upstream]]`); its `[server]`
    /// table may set any other flag, and a flag or variable given here wins over it. Not with
    /// --upstreams. Check it with `balancer check-config PATH`; it is reloaded on SIGHUP,
    /// `POST /config/reload` and when it changes.
    #[arg(
        long = "config",
        env = "BALANCER_CONFIG",
        value_name = "PATH",
        help_heading = "Upstreams and health"
    )]
    pub routes_file: Option<PathBuf>,
    #[command(flatten, next_help_heading = "Listeners")]
    pub front: FrontConfig,
    #[command(flatten, next_help_heading = "Upstreams and health")]
    pub group: UpstreamConfig,
    #[command(flatten, next_help_heading = "Traffic rules")]
    pub traffic: TrafficConfig,
    #[command(flatten, next_help_heading = "Compression")]
    pub compress: compress::CompressConfig,
    #[command(flatten, next_help_heading = "TLS")]
    pub tls: TlsConfig,
    #[command(flatten, next_help_heading = "Admin")]
    pub admin: AdminConfig,
    #[command(flatten, next_help_heading = "Logging")]
    pub log: LogConfig,
    #[command(flatten, next_help_heading = "TLS")]
    pub acme: acme::AcmeConfig,
}

impl Config {
    /// The limits in force, as `/status` shows them.
    pub fn limits(&self) -> Limits {
        let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let (g, t) = (&self.group, &self.traffic);
        Limits {
            balance: g.balance.name(),
            slow_start_ms: ms(g.slow_start),
            max_5xx: g.max_5xx,
            fail_timeout_ms: ms(g.fail_timeout),
            max_fails: g.max_fails,
            rate_limit: t.rate_limit.map(|r| r.to_string()),
            rate_burst: t.rate_limit.map(|r| t.rate_burst.unwrap_or(r.count.get())),
            rate_limit_clients: t.rate_limit_clients,
            trusted_proxies: t.trusted_proxies.to_string(),
            max_connections: self.front.max_connections,
            drain_api: self
                .admin
                .admin_token
                .as_ref()
                .is_some_and(|t| !t.is_empty()),
            upstream_protocol: g.upstream_protocol.name(),
        }
    }
}

/// Parses the command line; on error prints `balancer: configuration error: ...` (one line naming
/// the flag) and exits 2.
pub fn parse_or_exit() -> Cli {
    shared::config_error::parse_or_exit("balancer")
}
