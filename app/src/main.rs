//! `app`: the visit counter web service (hyper + minijinja + Redis).
//!
//! `main` parses the configuration, sets up logging and wires the modules together:
//! `config` (flags and environment, typed by the value parsers in `setting`), `routes`
//! (routing and handlers), `pages` (templates), `counter` (Redis), `metrics`, `static_files`,
//! `server` (accept loop and draining) and `shutdown` (signals). `app healthcheck` is the
//! shared blocking probe (`shared::healthcheck`) aimed at APP_LISTEN's `/health`.

#![forbid(unsafe_code)]

mod config;
mod counter;
mod metrics;
mod pages;
mod routes;
mod server;
mod static_files;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use shared::config_error::{self, EXIT_CONFIG};

use crate::config::{Cli, Command, Config};

/// The name configuration errors start with.
const BINARY: &str = "app";

fn main() -> ExitCode {
    let cli: Cli = config_error::parse_or_exit(BINARY);
    if let Some(Command::Healthcheck { timeout }) = cli.command {
        return run_healthcheck(cli.settings.app_listen, timeout);
    }
    let config = cli
        .settings
        .resolve()
        .unwrap_or_else(|e| config_error::exit(BINARY, e));
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("app: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(run(config));
    // Background tasks (the Redis probe) must not hold the exit up.
    runtime.shutdown_timeout(Duration::from_millis(100));
    code
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi)
        .init();
}

async fn run(config: Config) -> ExitCode {
    let statics = match static_files::StaticFiles::load(config.templates_dir.as_deref()) {
        Ok(statics) => statics,
        Err(e) => {
            return config_failure(format_args!("invalid TEMPLATES_DIR (--templates-dir): {e}"));
        }
    };
    let pages = match pages::Pages::new(&config, &statics.version) {
        Ok(pages) => pages,
        Err(e) => {
            let detail = e.to_string().replace('\n', " ");
            if config.templates_dir.is_some() {
                return config_failure(format_args!(
                    "invalid TEMPLATES_DIR (--templates-dir): {detail}"
                ));
            }
            eprintln!("app: embedded templates are broken: {detail}");
            return ExitCode::FAILURE;
        }
    };
    let client = match redis::Client::open(config.redis_url.as_str()) {
        Ok(client) => client,
        Err(e) => {
            return config_failure(format_args!("invalid REDIS_URL (--redis-url): {e}"));
        }
    };
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("app: cannot listen on APP_LISTEN={}: {e}", config.listen);
            return ExitCode::FAILURE;
        }
    };
    let local = listener.local_addr().unwrap_or(config.listen);

    let metrics = metrics::Metrics::new();
    let counter = counter::Counter::connect(
        client,
        config.counter_key.clone(),
        config.redis_timeout,
        metrics.clone(),
    );
    tracing::info!(
        listen = %local,
        replica = %config.replica_name,
        redis = %config::redact(&config.redis_url),
        key = %config.counter_key,
        templates = config.templates_dir.as_ref().map(|d| d.display().to_string()).unwrap_or_else(|| "embedded".into()),
        "app listening (HTTP/1.1 and HTTP/2)"
    );
    let (shutdown_delay, drain_timeout) = (config.shutdown_delay, config.drain_timeout);
    let app = Arc::new(routes::App::new(config, pages, counter, metrics, statics));
    match server::serve(
        listener,
        app,
        shutdown_delay,
        drain_timeout,
        shared::signal::stop_signal(),
    )
    .await
    {
        server::Drained::Clean | server::Drained::TimedOut => ExitCode::SUCCESS,
    }
}

/// `app healthcheck`: exit 0 only if `/health` on the local listener answers 200 in time.
fn run_healthcheck(listen: SocketAddr, timeout: Duration) -> ExitCode {
    let target = shared::healthcheck::target(listen);
    match shared::healthcheck::check(target, "/health", timeout) {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            eprintln!("app healthcheck: unhealthy: {reason}");
            ExitCode::FAILURE
        }
    }
}

/// Prints the one configuration-error line and gives the exit code (2) for `run` to return, so
/// the runtime still shuts down in order.
fn config_failure(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("{}", config_error::line(BINARY, message));
    ExitCode::from(u8::try_from(EXIT_CONFIG).unwrap_or(2))
}
