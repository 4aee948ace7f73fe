//! The public listeners' settings: where they listen, how many workers serve them, how long a
//! client may take, how many may connect, how long a stop may drain; and HTTPS.

use std::net::SocketAddr;
use std::time::Duration;

use shared::duration::{within, DAY, HOUR};
use shared::{count, setting::Within};

/// The range of `--header-read-timeout` and `--shutdown-timeout`.
fn timeout() -> Within<Duration> {
    within(Duration::from_millis(1), HOUR)
}

/// The public listener and its workers.
#[derive(Debug, Clone, clap::Args)]
pub struct FrontConfig {
    /// Public listener address (HTTP/1.1, and HTTP/2 with prior knowledge).
    #[arg(
        long,
        env = "BALANCER_LISTEN",
        value_name = "ADDR",
        default_value = "0.0.0.0:5000"
    )]
    pub listen: SocketAddr,

    /// Worker threads, each with its own event loop (default: available cores). Accepted
    /// connections are handed to them in turn, like NGINX's worker processes.
    #[arg(long, env = "BALANCER_WORKERS", value_name = "COUNT", value_parser = count::within(1u16, 1024))]
    pub workers: Option<u16>,

    /// Time a client has to send complete request headers, from its first byte (and to finish its
    /// TLS handshake). Idle keep-alive connections: --keep-alive-timeout.
    #[arg(long, env = "BALANCER_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = timeout(),
          value_name = "DURATION", help_heading = "Timeouts and limits")]
    pub header_read_timeout: Duration,

    /// Open client connections; beyond it new ones are answered 503 and closed.
    #[arg(long, env = "BALANCER_MAX_CONNECTIONS", default_value_t = 10_000, value_parser = count::within(1u64, 10_000_000),
          value_name = "COUNT", help_heading = "Timeouts and limits")]
    pub max_connections: u64,

    /// How long in-flight requests may take to finish after SIGTERM/SIGINT.
    #[arg(long, env = "BALANCER_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = timeout(),
          value_name = "DURATION", help_heading = "Timeouts and limits")]
    pub shutdown_timeout: Duration,

    /// How long an HTTP/1.1 client connection may stay idle between requests (0: no keep-alive).
    #[arg(long, env = "BALANCER_KEEP_ALIVE_TIMEOUT", default_value = "75s",
          value_parser = within(Duration::ZERO, HOUR),
          value_name = "DURATION", help_heading = "Timeouts and limits")]
    pub keep_alive_timeout: Duration,

    /// Unix socket for replacing this balancer with no failed request: a new one started with the
    /// same PATH takes the listening sockets over from the one serving there (created mode 0600).
    #[arg(long, env = "BALANCER_HANDOVER", value_name = "PATH")]
    pub handover: Option<std::path::PathBuf>,
}

impl FrontConfig {
    /// `--workers`, or the cores available.
    pub fn workers(&self) -> usize {
        match self.workers {
            Some(n) => usize::from(n),
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// HTTPS: the TLS listener, its certificate, the redirect and HSTS.
#[derive(Debug, Clone, clap::Args)]
pub struct TlsConfig {
    /// HTTPS listener address (unset: no TLS). Needs --tls-cert and --tls-key, or --acme-domain.
    #[arg(
        long,
        env = "BALANCER_TLS_LISTEN",
        value_name = "ADDR",
        requires = "tls_source"
    )]
    pub tls_listen: Option<SocketAddr>,

    /// PEM certificate chain for --tls-listen, leaf first; reloaded on SIGHUP and when it changes.
    #[arg(
        long,
        env = "BALANCER_TLS_CERT",
        value_name = "PATH",
        requires_all = ["tls_listen", "tls_key"]
    )]
    pub tls_cert: Option<std::path::PathBuf>,

    /// PEM private key (PKCS#8, RSA or EC) matching --tls-cert.
    #[arg(
        long,
        env = "BALANCER_TLS_KEY",
        value_name = "PATH",
        requires_all = ["tls_listen", "tls_cert"]
    )]
    pub tls_key: Option<std::path::PathBuf>,

    /// The plain listener answers every request with 308 to the same host and path on the TLS port.
    #[arg(long, env = "BALANCER_REDIRECT_HTTP", requires = "tls_listen")]
    pub redirect_http: bool,

    /// `Strict-Transport-Security: max-age=...` on TLS responses (e.g. `365d`; off when unset).
    /// Whole seconds count: the header has no smaller unit.
    #[arg(long, env = "BALANCER_HSTS", value_name = "MAX_AGE", requires = "tls_listen",
          value_parser = within(Duration::from_secs(1), DAY * 730))]
    pub hsts: Option<Duration>,
}
