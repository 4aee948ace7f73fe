//! The `balancer` binary: parses the command line, starts logging, the access log writer and the
//! main event loop, and hands over to the library ([`balancer::start::run`]); then flushes the
//! logs and exits with its status.

#![forbid(unsafe_code)]

use std::io::IsTerminal;

use balancer::config::{self, Command, LogFormat};
use balancer::{access_log, admin};

fn main() {
    // Kept whole: every reload reads the command line again with the file.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // `check-config` prints its verdict and exits inside.
    let (command, loaded) = config::load_or_exit(&args);
    if let Some(Command::Healthcheck) = command {
        std::process::exit(admin::healthcheck(loaded.config.admin.admin_listen));
    }
    let config = &loaded.config;
    let log_guard = init_logging(config.log.log_format);
    let (access_log, access_guard) = match access_log::AccessLog::start(config.log.access_log) {
        Ok(started) => started,
        Err(e) => {
            eprintln!("balancer: cannot start the access log writer: {e}");
            std::process::exit(2);
        }
    };
    let runtime = match build_runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("balancer: cannot start the event loop: {e}");
            std::process::exit(2);
        }
    };
    let access_counters = access_log.counters();
    let code = runtime.block_on(balancer::start::run(loaded, args, access_log));
    // Upgraded tunnels and probes may still be running; do not wait for them.
    runtime.shutdown_background();
    // Writes the access lines still batched or queued: a clean stop loses none.
    access_guard.flush_and_stop();
    if access_counters.dropped() > 0 {
        tracing::warn!(
            written = access_counters.written(),
            dropped = access_counters.dropped(),
            "access log lines dropped (stdout could not keep up)"
        );
    }
    // Flushes the log lines still queued (exit() would skip the destructor).
    drop(log_guard);
    std::process::exit(code);
}

/// The main thread's event loop: it accepts connections (serving its share of them as worker 0),
/// and runs discovery, the health checks and the admin listener. Every worker, this one included,
/// is a single-threaded runtime (see [`server::Workers`]).
///
/// The blocking pool only runs getaddrinfo for discovery (one lookup per upstream name per
/// `--resolve-interval`), so it is capped well below tokio's 512: a hung resolver must not be able
/// to pile up threads, each with its own stack and malloc arena.
fn build_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .enable_all()
        .build()
}

/// Threads for DNS lookups; more names than this resolve in turn.
const MAX_BLOCKING_THREADS: usize = 8;

/// Log lines waiting for the writer thread. tracing-appender's default (128,000) preallocates and
/// touches 4 MiB for the queue alone; this still absorbs bursts of thousands of requests while
/// the writer catches up (callers wait when it is full; nothing is dropped).
const LOG_QUEUE_LINES: usize = 8192;

/// Log lines are formatted on the worker threads but written by a dedicated thread through a
/// buffer (tracing-appender), so the per-request access line costs a channel send instead of a
/// `write(2)` on the request path. Nothing is dropped: when the queue is full, callers wait.
fn init_logging(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    use tracing_subscriber::EnvFilter;
    let stdout = std::io::stdout();
    let ansi = stdout.is_terminal();
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(LOG_QUEUE_LINES)
        .thread_name("balancer-log")
        .finish(std::io::BufWriter::with_capacity(64 * 1024, stdout));
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    if let Err(e) = result {
        eprintln!("balancer: logging not initialised: {e}");
    }
    guard
}
