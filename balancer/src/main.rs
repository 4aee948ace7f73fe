//! `balancer`: a round-robin HTTP reverse proxy in front of the app replicas, replacing NGINX.
//!
//! Wiring only: parse configuration, start logging and the runtime, resolve the upstreams, start
//! the discovery and health loops, serve the public and admin listeners, and drain on SIGTERM.

mod access_log;
mod admin;
mod admin_drain;
mod backend;
mod config;
mod connection_limit;
mod dashboard;
mod discovery;
mod head_timeout;
mod headers;
mod health;
mod health_check;
mod least_request;
mod lookup;
mod metrics;
mod outlier;
mod proxy;
mod rate_limit;
mod redirect;
mod request_body;
mod request_id;
mod response_body;
mod selection;
mod server;
mod shutdown;
mod slow_start;
mod tls;
mod tls_reload;
mod trusted_proxies;
mod upgrade;
mod upstream_h2;
mod upstream_pool;
mod wait_clock;

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::TcpListener;

use crate::config::{Command, Config, LogFormat};

fn main() {
    let cli = config::parse_or_exit();
    if let Some(Command::Healthcheck) = cli.command {
        std::process::exit(admin::healthcheck(cli.config.admin_listen));
    }
    let config = cli.config;
    let log_guard = init_logging(config.log_format);
    let (access_log, access_guard) = match access_log::AccessLog::start(config.access_log) {
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
    let code = runtime.block_on(run(config, access_log));
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

async fn bind(addr: std::net::SocketAddr, flag: &str) -> Result<TcpListener, i32> {
    TcpListener::bind(addr).await.map_err(|e| {
        eprintln!("balancer: cannot listen on {flag} {addr}: {e}");
        2
    })
}

/// Wires the balancer together and serves until SIGTERM/SIGINT; returns the exit status.
async fn run(config: Config, access_log: access_log::AccessLog) -> i32 {
    let mut metrics = metrics::Metrics::new();
    metrics
        .registry
        .register_collector(Box::new(access_log.line_metrics()));
    let tls = match Tls::start(&config, &mut metrics.registry).await {
        Ok(tls) => tls,
        Err(code) => return code,
    };
    let metrics = Arc::new(metrics);
    let workers = config.workers();
    let pool = Arc::new(backend::Pool::new(metrics.clone(), workers));
    let discovery = Arc::new(discovery::Discovery::new(
        config.upstreams.0.clone(),
        pool.clone(),
        config.resolve_interval,
    ));
    let public = match bind(config.listen, "--listen").await {
        Ok(l) => l,
        Err(code) => return code,
    };
    let admin_listener = match bind(config.admin_listen, "--admin-listen").await {
        Ok(l) => l,
        Err(code) => return code,
    };
    start_background(&config, &pool, &discovery).await;

    let proxies = Proxies::new(&config, pool.clone(), metrics.clone(), access_log);
    let http = Arc::new(server::Http::new(config.header_read_timeout));
    let (workers_set, threads) = match start_workers(&config, &proxies, &http) {
        Ok(started) => started,
        Err(code) => return code,
    };
    let admin = Arc::new(admin::Admin {
        pool,
        discovery,
        metrics,
        started: Instant::now(),
        tls: tls.as_ref().map(|t| t.store.clone()),
        limits: admin::Limits::new(&config),
        rules: proxies.rules.clone(),
        token: config.admin_token.clone(),
    });
    tracing::info!(
        listen = %config.listen,
        tls_listen = ?config.tls_listen,
        admin = %config.admin_listen,
        workers,
        upstreams = ?config.upstreams.0.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "balancer started"
    );
    let listeners = Listeners {
        public,
        tls,
        admin: admin_listener,
    };
    serve_until_stopped(&config, listeners, workers_set, http, admin).await;
    join_workers(threads).await
}

/// The TLS listener, when `--tls-listen` is set: its socket, its door and the live certificate.
struct Tls {
    listener: TcpListener,
    door: Arc<tls::TlsDoor>,
    store: Arc<tls::CertStore>,
}

impl Tls {
    /// Loads and checks the pair (a bad one: one line naming the flag, exit 2), binds the
    /// listener, registers the TLS metrics and starts the reload loop.
    async fn start(
        config: &Config,
        registry: &mut prometheus_client::registry::Registry,
    ) -> Result<Option<Tls>, i32> {
        let (Some(addr), Some(cert), Some(key)) =
            (config.tls_listen, &config.tls_cert, &config.tls_key)
        else {
            return Ok(None);
        };
        let files = tls::PairFiles {
            cert: cert.clone(),
            key: key.clone(),
        };
        let pair = tls::load_pair(&files, std::time::SystemTime::now()).map_err(|e| {
            let path = if e.flag() == "--tls-key" { key } else { cert };
            eprintln!(
                "{}",
                shared::config_error::line(
                    "balancer",
                    format_args!("{} {}: {e}", e.flag(), path.display())
                )
            );
            2
        })?;
        let store = Arc::new(tls::CertStore::new(pair, files));
        let server_config = tls::server_config(store.clone()).map_err(|e| {
            eprintln!("balancer: cannot build the TLS configuration: {e}");
            2
        })?;
        let listener = bind(addr, "--tls-listen").await?;
        let metrics = tls::TlsMetrics::register(registry, store.clone());
        let door = Arc::new(tls::TlsDoor::new(
            server_config,
            config.hsts,
            metrics.clone(),
        ));
        tokio::spawn(tls_reload::run(store.clone(), metrics));
        Ok(Some(Tls {
            listener,
            door,
            store,
        }))
    }
}

/// Every listener the balancer serves.
struct Listeners {
    public: TcpListener,
    tls: Option<Tls>,
    admin: TcpListener,
}

/// Resolves once before serving so the first requests already have backends (a name that does
/// not resolve yet only means 503 until a later round finds it), then starts the discovery and
/// active health-check loops.
async fn start_background(
    config: &Config,
    pool: &Arc<backend::Pool>,
    discovery: &Arc<discovery::Discovery>,
) {
    discovery.resolve_all().await;
    tokio::spawn(discovery.clone().run(config.resolve_interval));
    tokio::spawn(health_check::run_active_checks(
        pool.clone(),
        health_check::Probe {
            path: Arc::from(config.health_path.as_str()),
            interval: config.health_interval,
            connect_timeout: config.connect_timeout,
            protocol: config.upstream_protocol,
        },
    ));
}

/// Builds each worker's proxy. One rotation cursor for all workers, so the shares stay exact
/// whichever worker serves.
struct Proxies {
    pool: Arc<backend::Pool>,
    selection: Arc<selection::Selection>,
    metrics: Arc<metrics::Metrics>,
    settings: proxy::ProxySettings,
    access_log: access_log::AccessLog,
    rules: Arc<proxy::TrafficRules>,
}

impl Proxies {
    fn new(
        config: &Config,
        pool: Arc<backend::Pool>,
        metrics: Arc<metrics::Metrics>,
        access_log: access_log::AccessLog,
    ) -> Self {
        let settings = proxy::ProxySettings {
            connect_timeout: config.connect_timeout,
            upstream_timeout: config.upstream_timeout,
            max_body: config.max_body,
            max_idle_per_backend: config.max_idle_per_backend,
            upstream_protocol: config.upstream_protocol,
            health_interval: config.health_interval,
            policy: health::HealthPolicy {
                max_fails: config.max_fails,
                fail_timeout: config.fail_timeout,
            },
        };
        let rules = proxy::TrafficRules {
            limiter: config.rate_limit.map(|rate| {
                let clients = usize::try_from(config.rate_limit_clients).unwrap_or(usize::MAX);
                rate_limit::Limiter::new(rate, config.rate_burst, clients)
            }),
            trusted: config.trusted_proxies.clone(),
            max_5xx: config.max_5xx,
            ejector: outlier::Ejector::default(),
        };
        Proxies {
            pool,
            selection: Arc::new(selection::Selection::new(config.balance, config.slow_start)),
            metrics,
            settings,
            access_log,
            rules: Arc::new(rules),
        }
    }

    fn for_worker(&self, worker: usize) -> Arc<proxy::Proxy> {
        Arc::new(proxy::Proxy::new(
            self.pool.clone(),
            self.selection.clone(),
            self.metrics.clone(),
            self.settings,
            worker,
            self.access_log.worker(),
            self.rules.clone(),
        ))
    }
}

/// Starts workers 1.. on their own threads; worker 0 is this thread. Exit status 2 if one
/// cannot start.
fn start_workers(
    config: &Config,
    proxies: &Proxies,
    http: &Arc<server::Http>,
) -> Result<(server::Workers, Vec<std::thread::JoinHandle<()>>), i32> {
    let workers = config.workers();
    let mut handoffs = Vec::with_capacity(workers.saturating_sub(1));
    let mut threads = Vec::with_capacity(workers.saturating_sub(1));
    for index in 1..workers {
        match server::spawn_worker(
            index,
            proxies.for_worker(index),
            http.clone(),
            config.shutdown_timeout,
        ) {
            Ok((handoff, thread)) => {
                handoffs.push(handoff);
                threads.push(thread);
            }
            Err(e) => {
                eprintln!("balancer: cannot start worker {index} of --workers {workers}: {e}");
                return Err(2);
            }
        }
    }
    Ok((
        server::Workers::new(proxies.for_worker(0), handoffs),
        threads,
    ))
}

/// Serves the public and admin listeners until SIGTERM/SIGINT, then lets this thread's
/// connections finish for at most `--shutdown-timeout` (the other workers drain on their own
/// threads meanwhile).
async fn serve_until_stopped(
    config: &Config,
    listeners: Listeners,
    workers: server::Workers,
    http: Arc<server::Http>,
    admin: Arc<admin::Admin>,
) {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    tokio::spawn(async move {
        let name = shared::signal::stop_signal().await;
        tracing::info!("{name} received, draining");
        let _ = stop_tx.send(true);
    });
    let public_drain = shutdown::Drain::new();
    let admin_drain = shutdown::Drain::new();
    let traffic = &admin.metrics.traffic;
    let limit = connection_limit::ConnectionLimit::new(
        config.max_connections,
        traffic.connections.clone(),
        &traffic.max_connections,
        traffic.connections_refused.clone(),
    );
    let plain_door = match (&listeners.tls, config.redirect_http) {
        (Some(tls), true) => server::Door::Redirect {
            tls_port: tls.listener.local_addr().map_or(443, |a| a.port()),
        },
        _ => server::Door::Plain,
    };
    // One --max-connections limit over both public listeners.
    let tls_serve = async {
        if let Some(tls) = listeners.tls {
            let door = server::Door::Tls(tls.door);
            let (workers, http) = (workers.clone(), http.clone());
            server::serve(
                tls.listener,
                workers,
                http,
                door,
                &public_drain,
                &limit,
                stopped(),
            )
            .await;
        }
    };
    tokio::join!(
        server::serve(
            listeners.public,
            workers.clone(),
            http.clone(),
            plain_door,
            &public_drain,
            &limit,
            stopped()
        ),
        tls_serve,
        admin::serve(listeners.admin, admin, &admin_drain, stopped()),
    );
    tokio::join!(
        server::finish(0, &public_drain, config.shutdown_timeout),
        async {
            let _ = tokio::time::timeout(config.shutdown_timeout, admin_drain.drain()).await;
        },
    );
}

/// Waits for the worker threads; exit status 1 if one panicked.
async fn join_workers(threads: Vec<std::thread::JoinHandle<()>>) -> i32 {
    let joined = tokio::task::spawn_blocking(move || {
        threads
            .into_iter()
            .map(std::thread::JoinHandle::join)
            .filter(Result::is_err)
            .count()
    })
    .await;
    match joined {
        Ok(0) => {
            tracing::info!("exiting");
            0
        }
        Ok(panicked) => {
            tracing::error!(workers = panicked, "worker threads panicked");
            1
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot wait for the worker threads");
            1
        }
    }
}
