//! Wiring: builds every part from the configuration, starts the background loops, serves the
//! public, TLS and admin listeners until SIGTERM/SIGINT, then drains. What each part does lives in
//! its own folder; this only connects them.

use std::ffi::OsString;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::TcpListener;

use crate::admin::reload::{ConfigInfo, ConfigStatus, ReloadSender};
use crate::config::{Config, FrontConfig, Loaded, TlsConfig};
use crate::live::reload::{unix_now, Reloader};
use crate::live::Groups;
use crate::routes::table::LiveRoutes;
use crate::traffic::TrafficRules;
use crate::{access_log, admin, front, handover, listeners, proxy, runtime};

/// Wires the balancer together and serves until SIGTERM/SIGINT; returns the exit status. `args`
/// is the command line, read again with the config file at every reload.
pub async fn run(loaded: Loaded, args: Vec<OsString>, access_log: access_log::AccessLog) -> i32 {
    let config = loaded.config.clone();
    let mut metrics = runtime::metrics::Metrics::new();
    metrics
        .registry
        .register_collector(Box::new(access_log.line_metrics()));
    let listeners::Obtained { sockets, handover } = match listeners::obtain(&config).await {
        Ok(obtained) => obtained,
        Err(code) => return code,
    };
    let tls = match Tls::start(&config, sockets.tls, &mut metrics.registry).await {
        Ok(tls) => tls,
        Err(code) => return code,
    };
    let metrics = Arc::new(metrics);
    let workers = config.front.workers();
    let groups: Vec<_> = loaded
        .groups
        .iter()
        .map(|g| (g.name.clone(), g.settings.clone()))
        .collect();
    let groups = match Groups::start(&groups, &loaded.routes, metrics.clone(), workers).await {
        Ok(groups) => groups,
        Err(e) => {
            eprintln!("{}", shared::config_error::line("balancer", e));
            return 2;
        }
    };
    let routes = groups.routes();
    let config_file = ConfigFile::start(loaded, args, groups, metrics.clone());

    let proxies = WorkerProxies {
        routes: routes.clone(),
        max_body: config.traffic.max_body,
        metrics: metrics.clone(),
        access_log,
        rules: Arc::new(config.traffic.rules()),
    };
    let http = Arc::new(front::server::Http::new(
        config.front.header_read_timeout,
        config.front.keep_alive_timeout,
    ));
    let (workers_set, threads) = match start_workers(&config.front, &proxies, &http) {
        Ok(started) => started,
        Err(code) => return code,
    };
    let admin = Arc::new(admin::Admin {
        routes,
        config: config_file.status.clone(),
        reload: config_file.reload.clone(),
        metrics,
        started: Instant::now(),
        tls: tls.as_ref().and_then(|t| t.store.clone()),
        acme: tls
            .as_ref()
            .and_then(|t| t.acme.as_ref())
            .map(|a| a.certs.clone()),
        limits: config.limits(),
        rules: proxies.rules.clone(),
        token: config.admin.admin_token.clone(),
    });
    tracing::info!(
        listen = %config.front.listen,
        tls_listen = ?config.tls.tls_listen,
        admin = %config.admin.admin_listen,
        workers,
        config = ?config.routes_file,
        "balancer started"
    );
    let listeners = Listeners {
        public: sockets.public,
        tls,
        admin: sockets.admin,
    };
    serve_until_stopped(&config, (listeners, handover), workers_set, http, admin).await;
    let code = join_workers(threads).await;
    drop(config_file);
    code
}

/// The config file's owner: with `--config`, the reload task (which owns the groups) and what
/// the admin listener needs to reach it; without, the groups themselves, held to the end.
struct ConfigFile {
    status: Option<Arc<ConfigStatus>>,
    reload: Option<ReloadSender>,
    /// The flag-only groups (no reload task owns them).
    _groups: Option<Groups>,
}

impl ConfigFile {
    fn start(
        loaded: Loaded,
        args: Vec<OsString>,
        groups: Groups,
        metrics: Arc<runtime::metrics::Metrics>,
    ) -> Self {
        let Some(file) = &loaded.file else {
            tokio::spawn(ignore_hangups());
            return ConfigFile {
                status: None,
                reload: None,
                _groups: Some(groups),
            };
        };
        let loaded_at = unix_now();
        metrics
            .routes
            .last_reload_success
            .set(i64::try_from(loaded_at).unwrap_or(i64::MAX));
        let status = Arc::new(ConfigStatus::new(ConfigInfo {
            path: file.path.display().to_string(),
            sha256: file.sha256.clone(),
            loaded_at,
            last_reload: None,
        }));
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let reloader = Reloader {
            groups,
            args,
            sha256: file.sha256.clone(),
            started: loaded,
            status: status.clone(),
            metrics,
        };
        tokio::spawn(reloader.run(rx));
        ConfigFile {
            status: Some(status),
            reload: Some(tx),
            _groups: None,
        }
    }
}

/// The TLS listener, when `--tls-listen` is set: its socket, its door, the `--tls-cert` pair
/// and the ACME client.
struct Tls {
    listener: TcpListener,
    door: Arc<front::tls::TlsDoor>,
    store: Option<Arc<front::tls::CertStore>>,
    acme: Option<crate::acme::Acme>,
}

impl Tls {
    /// Loads and checks the pair (a bad one: one line naming the flag, exit 2), starts the ACME
    /// client, takes the listener, registers the TLS metrics and starts the reload loop.
    async fn start(
        config: &Config,
        listener: Option<TcpListener>,
        registry: &mut prometheus_client::registry::Registry,
    ) -> Result<Option<Tls>, i32> {
        let acme = crate::acme::Acme::start(
            &config.acme.settings(),
            config.tls.tls_listen.is_some(),
            registry,
        )?;
        let Some(listener) = listener else {
            return Ok(None);
        };
        let store = load_store(&config.tls)?;
        let named = acme
            .as_ref()
            .map(|a| a.certs.clone() as Arc<dyn front::sni::NamedCerts>);
        let resolver = Arc::new(front::sni::Resolver {
            files: store
                .clone()
                .map(|s| s as Arc<dyn rustls::server::ResolvesServerCert>),
            named: named.clone(),
        });
        let alpn_challenge = acme
            .as_ref()
            .is_some_and(|a| a.challenge == crate::acme::challenge::Challenge::TlsAlpn01);
        let server_config = front::tls::server_config(resolver, alpn_challenge).map_err(|e| {
            eprintln!("balancer: cannot build the TLS configuration: {e}");
            2
        })?;
        let metrics = front::tls::TlsMetrics::register(registry, store.clone(), named);
        let door = Arc::new(front::tls::TlsDoor::new(
            server_config,
            config.tls.hsts,
            metrics.clone(),
        ));
        if let Some(store) = &store {
            tokio::spawn(front::tls_reload::run(store.clone(), metrics));
        }
        Ok(Some(Tls {
            listener,
            door,
            store,
            acme,
        }))
    }
}

/// The `--tls-cert`/`--tls-key` pair, when given (a bad one: exit 2 naming the flag).
fn load_store(config: &TlsConfig) -> Result<Option<Arc<front::tls::CertStore>>, i32> {
    let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) else {
        return Ok(None);
    };
    let files = front::tls::PairFiles {
        cert: cert.clone(),
        key: key.clone(),
    };
    let pair = front::tls::load_pair(&files, std::time::SystemTime::now()).map_err(|e| {
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
    Ok(Some(Arc::new(front::tls::CertStore::new(pair, files))))
}

/// Every listener the balancer serves.
struct Listeners {
    public: TcpListener,
    tls: Option<Tls>,
    admin: TcpListener,
}

/// Without `--config`, SIGHUP (NGINX's reload signal, which a user may well send) is logged and
/// otherwise ignored, instead of ending the process as its default action would. With
/// `--tls-listen` it also reloads the certificate (`front::tls_reload`).
async fn ignore_hangups() {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        return;
    };
    while hangups.recv().await.is_some() {
        tracing::info!("SIGHUP: no --config file to reload (flags are read at start)");
    }
}

/// Builds each worker's proxy. One route table and one rotation cursor per group for all
/// workers, so the shares stay exact whichever worker serves.
struct WorkerProxies {
    routes: Arc<LiveRoutes>,
    max_body: u64,
    metrics: Arc<runtime::metrics::Metrics>,
    access_log: access_log::AccessLog,
    rules: Arc<TrafficRules>,
}

impl WorkerProxies {
    fn for_worker(&self, worker: usize) -> Arc<proxy::Proxy> {
        Arc::new(proxy::Proxy::new(
            self.routes.clone(),
            worker,
            self.max_body,
            self.metrics.clone(),
            self.access_log.worker(),
            self.rules.clone(),
        ))
    }
}

/// Starts workers 1.. on their own threads; worker 0 is this thread. Exit status 2 if one
/// cannot start.
fn start_workers(
    config: &FrontConfig,
    proxies: &WorkerProxies,
    http: &Arc<front::server::Http>,
) -> Result<(front::server::Workers, Vec<std::thread::JoinHandle<()>>), i32> {
    let workers = config.workers();
    let mut handoffs = Vec::with_capacity(workers.saturating_sub(1));
    let mut threads = Vec::with_capacity(workers.saturating_sub(1));
    for index in 1..workers {
        match front::server::spawn_worker(
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
        front::server::Workers::new(proxies.for_worker(0), handoffs),
        threads,
    ))
}

/// The stop, as a watch that turns true on SIGTERM/SIGINT or, with `--handover`, once a newer
/// balancer serves on these listeners (the same drain follows); and the handover's future, to
/// run beside the listeners.
fn stop_on_signal_or_handover(
    handover: Option<listeners::Handover>,
) -> (
    tokio::sync::watch::Receiver<bool>,
    impl std::future::Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let stop = stop_tx.clone();
    tokio::spawn(async move {
        let name = shared::signal::stop_signal().await;
        tracing::info!("{name} received, draining");
        let _ = stop.send(true);
    });
    let mut stopped = stop_rx.clone();
    let handed_over = async move {
        let Some(h) = handover else { return };
        tokio::select! {
            pid = handover::serve(h.path, h.taking, h.offered) => {
                tracing::info!(pid, "handed over to a new balancer, draining");
                let _ = stop_tx.send(true);
            }
            _ = stopped.wait_for(|stop| *stop) => {}
        }
    };
    (stop_rx, handed_over)
}

/// Serves the public and admin listeners until SIGTERM/SIGINT (or a handover), then lets this thread's
/// connections finish for at most `--shutdown-timeout` (the other workers drain on their own
/// threads meanwhile).
async fn serve_until_stopped(
    config: &Config,
    (listeners, handover): (Listeners, Option<listeners::Handover>),
    workers: front::server::Workers,
    http: Arc<front::server::Http>,
    admin: Arc<admin::Admin>,
) {
    let (stop_rx, handed_over) = stop_on_signal_or_handover(handover);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    let public_drain = runtime::shutdown::Drain::new();
    let admin_drain = runtime::shutdown::Drain::new();
    let traffic = &admin.metrics.traffic;
    let limit = front::connection_limit::ConnectionLimit::new(
        config.front.max_connections,
        traffic.connections.clone(),
        &traffic.max_connections,
        traffic.connections_refused.clone(),
    );
    let plain_door = plain_door(config, listeners.tls.as_ref());
    // One --max-connections limit over both public listeners.
    let tls_serve = async {
        if let Some(tls) = listeners.tls {
            let door = front::server::Door::Tls(tls.door);
            let (workers, http) = (workers.clone(), http.clone());
            front::server::serve(
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
        front::server::serve(
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
        handed_over,
    );
    tokio::join!(
        front::server::finish(0, &public_drain, config.front.shutdown_timeout),
        async {
            let _ = tokio::time::timeout(config.front.shutdown_timeout, admin_drain.drain()).await;
        },
    );
}

/// What the plain listener does: proxy, redirect to the TLS port (`--redirect-http`), either one
/// after answering ACME HTTP-01 challenges (`--acme-challenge http-01`).
fn plain_door(config: &Config, tls: Option<&Tls>) -> front::server::Door {
    use crate::acme::challenge::Challenge;
    let tls_port = tls.map(|t| t.listener.local_addr().map_or(443, |a| a.port()));
    let redirect_to = tls_port.filter(|_| config.tls.redirect_http);
    match tls.and_then(|t| t.acme.as_ref()) {
        Some(acme) if acme.challenge == Challenge::Http01 => front::server::Door::Http01 {
            tokens: acme.certs.clone(),
            redirect_to,
        },
        _ => match redirect_to {
            Some(tls_port) => front::server::Door::Redirect { tls_port },
            None => front::server::Door::Plain,
        },
    }
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
