//! `app`: the visit counter web service (hyper + minijinja + Redis).
//!
//! `main` parses the configuration, sets up logging and wires the modules together:
//! `config` (flags and environment), `routes` (routing and handlers), `pages`
//! (templates), `counter` (Redis), `metrics`, `static_files`, `server` (accept loop and
//! draining), `shutdown` (signals) and `healthcheck` (the `app healthcheck` subcommand).

mod config;
mod counter;
mod healthcheck;
mod metrics;
mod pages;
mod routes;
mod server;
mod shutdown;
mod static_files;

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;

use crate::config::{Cli, Command, Config};

/// Exit code for bad configuration (same as clap's usage errors).
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            // One line, as for every other configuration problem.
            let text = e.render().to_string();
            let line = text
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid arguments");
            eprintln!("app: {}", line.trim_start_matches("error: "));
            return ExitCode::from(EXIT_CONFIG);
        }
    };

    if let Some(Command::Healthcheck { timeout }) = &cli.command {
        return run_healthcheck(&cli.settings.app_listen, timeout);
    }

    let config = match cli.settings.validate() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("app: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
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
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
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
            eprintln!("app: invalid TEMPLATES_DIR (--templates-dir): {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let pages = match pages::Pages::new(&config, &statics.version) {
        Ok(pages) => pages,
        Err(e) => {
            let detail = e.to_string().replace('\n', " ");
            if config.templates_dir.is_some() {
                eprintln!("app: invalid TEMPLATES_DIR (--templates-dir): {detail}");
                return ExitCode::from(EXIT_CONFIG);
            }
            eprintln!("app: embedded templates are broken: {detail}");
            return ExitCode::FAILURE;
        }
    };
    let client = match redis::Client::open(config.redis_url.as_str()) {
        Ok(client) => client,
        Err(e) => {
            eprintln!("app: invalid REDIS_URL (--redis-url): {e}");
            return ExitCode::from(EXIT_CONFIG);
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
        shutdown::signal(),
    )
    .await
    {
        server::Drained::Clean | server::Drained::TimedOut => ExitCode::SUCCESS,
    }
}

fn run_healthcheck(listen: &str, timeout: &str) -> ExitCode {
    let listen = match config::parse_listen(listen) {
        Ok(listen) => listen,
        Err(e) => {
            eprintln!("app healthcheck: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let Some(timeout) = config::parse_duration(timeout).filter(|d| !d.is_zero()) else {
        eprintln!(
            "app healthcheck: invalid --timeout value {timeout:?}: expected a duration such as 3s"
        );
        return ExitCode::from(EXIT_CONFIG);
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("app healthcheck: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let target = healthcheck::target(listen);
    match runtime.block_on(healthcheck::check(target, timeout)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            eprintln!("app healthcheck: unhealthy: {reason}");
            ExitCode::FAILURE
        }
    }
}
