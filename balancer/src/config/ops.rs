//! The operator's side: the admin listener and its token, the log format and the access log.

use std::net::SocketAddr;

use clap::ValueEnum;

use crate::access_log;

/// The admin listener (`/metrics`, `/status`, the drain API).
#[derive(Debug, Clone, clap::Args)]
pub struct AdminConfig {
    /// Admin listener: the dashboard (/), /metrics, /status and the admin API; never served on
    /// the public listener.
    #[arg(
        long,
        env = "BALANCER_ADMIN_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:9000",
        global = true
    )]
    pub admin_listen: SocketAddr,

    /// Bearer token (16+ visible ASCII characters) for the admin API's POST calls (drain,
    /// undrain, config reload); unset or empty: they answer 403.
    #[arg(long, env = "BALANCER_ADMIN_TOKEN", value_name = "TOKEN", hide_env_values = true,
          value_parser = shared::setting::secret(parse_admin_token, hide_token))]
    pub admin_token: Option<String>,
}

/// What the balancer writes to stdout.
#[derive(Debug, Clone, clap::Args)]
pub struct LogConfig {
    /// Format of the balancer's own log lines (start, backends joining and leaving, failures);
    /// RUST_LOG sets the level.
    #[arg(long, env = "BALANCER_LOG_FORMAT", value_name = "FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// One line per request: `combined` (NGINX's, plus request ID, backend and upstream time),
    /// `json` (one object per line) or `off`. Written to stdout in 32 KiB batches, off the
    /// request path; under overload lines are dropped (and counted), never requests slowed.
    #[arg(long, env = "BALANCER_ACCESS_LOG", value_name = "FORMAT", value_enum, default_value_t = access_log::Format::Off)]
    pub access_log: access_log::Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// A refused token is never echoed.
fn hide_token(_: &str) -> String {
    "<hidden>".to_owned()
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
