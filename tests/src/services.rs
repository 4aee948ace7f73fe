//! The project's own binaries as test processes: `app` replicas and the `balancer`.
//!
//! Each is started on free loopback ports with its configuration passed through the environment (the same
//! variables users set), and `start()` returns only once the process answers HTTP (and, for the balancer, once
//! its backends had their first health check), so a test can use it at once.
//! Both dereference to their [`Process`], for `pid()`, `sigterm()`, `kill()`, `wait_exit()` and `log()`.

use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::process::Command;
use std::time::Duration;

use crate::process::Process;
use crate::redis_server::RedisServer;
use crate::{bin_path, free_port, wait_until_async};

const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Redis key the app counts visits under (its default `COUNTER_KEY`).
pub const COUNTER_KEY: &str = "visits";

/// Variables a developer's shell may carry that would change what a test process does: removed from
/// every `app` and `balancer` a test starts.
pub const SCRUBBED_ENV: &[&str] = &[
    "REDIS_URL",
    "REDIS_HOST",
    "REDIS_PORT",
    "REDIS_TIMEOUT",
    "DRAIN_TIMEOUT",
    "GITHUB_URL",
    "LINKEDIN_URL",
    "APP_LISTEN",
    "APP_NAME",
    "REPLICA_NAME",
    "COUNTER_KEY",
    "TEMPLATES_DIR",
    "BALANCER_LISTEN",
    "BALANCER_UPSTREAMS",
    "BALANCER_ADMIN_LISTEN",
    "BALANCER_WORKERS",
    "BALANCER_MAX_BODY",
    "BALANCER_CONFIG",
    "BALANCER_ADMIN_TOKEN",
];

fn command(bin: &str) -> Command {
    let mut cmd = Command::new(bin_path(bin));
    for var in SCRUBBED_ENV {
        cmd.env_remove(var);
    }
    cmd.env(
        "RUST_LOG",
        std::env::var("E2E_RUST_LOG").unwrap_or_else(|_| "info".into()),
    );
    cmd
}

/// True once something at `addr` answers an HTTP request with any status.
async fn answers_http(addr: SocketAddr, path: &str) -> bool {
    crate::http::get(&format!("http://{addr}{path}"))
        .await
        .is_ok()
}

async fn wait_ready(process: &mut Process, addr: SocketAddr, path: &str) {
    let ready = wait_until_async(READY_TIMEOUT, || answers_http(addr, path)).await;
    process.assert_running();
    if !ready {
        panic!(
            "{} did not answer on {addr} within {READY_TIMEOUT:?}; log:\n{}",
            process.name(),
            process.log()
        );
    }
}

/// How to start an `app` replica.
pub struct AppBuilder {
    redis_port: u16,
    port: Option<u16>,
    name: Option<String>,
    env: Vec<(String, String)>,
    args: Vec<String>,
}

impl AppBuilder {
    /// Listen on this port instead of a fresh free one (e.g. to restart a replica where it was).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// The replica's `REPLICA_NAME` (default `app-<port>`).
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }

    pub async fn start(self) -> App {
        // A port picked free can be taken by another test's process before this one binds it;
        // then that process would answer our readiness probe. So readiness is "our REPLICA_NAME
        // answered", and a lost race is retried on another port.
        let tries = if self.port.is_some() { 1 } else { 3 };
        for _ in 1..tries {
            if let Some(app) = self.try_start().await {
                return app;
            }
        }
        match self.try_start().await {
            Some(app) => app,
            None => panic!("app: its port was taken by another process {tries} time(s)"),
        }
    }

    /// One start; `None` when the app exited because its port was taken.
    async fn try_start(&self) -> Option<App> {
        let port = self.port.unwrap_or_else(free_port);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let name = self.name.clone().unwrap_or_else(|| format!("app-{port}"));
        // What it will report: a REPLICA_NAME given through `env` wins over `name`.
        let reported = self
            .env
            .iter()
            .rev()
            .find(|(k, _)| k == "REPLICA_NAME")
            .map_or(name.clone(), |(_, v)| v.clone());
        let mut cmd = command("app");
        cmd.env("REDIS_HOST", "127.0.0.1")
            .env("REDIS_PORT", self.redis_port.to_string())
            .env("APP_LISTEN", addr.to_string())
            .env("REPLICA_NAME", &name)
            .envs(self.env.iter().cloned())
            .args(&self.args);
        let mut process = match Process::spawn(name.clone(), cmd) {
            Ok(p) => p,
            Err(e) => panic!("cannot start app: {e}"),
        };
        let ours = wait_until_async(READY_TIMEOUT, || answered_by(addr, &reported)).await;
        if !ours && process.try_exit().is_some() && process.log().contains("Address already in use")
        {
            return None;
        }
        process.assert_running();
        if !ours {
            panic!(
                "{name} did not answer on {addr} within {READY_TIMEOUT:?}; log:\n{}",
                process.log()
            );
        }
        Some(App {
            process,
            addr,
            name,
        })
    }
}

/// True if `GET /about` on `addr` is answered (any status) by the replica named `name`: every
/// response of the app carries its `X-Served-By`.
async fn answered_by(addr: SocketAddr, name: &str) -> bool {
    let url = format!("http://{addr}/about");
    crate::http::get(&url)
        .await
        .is_ok_and(|r| r.header("x-served-by") == Some(name))
}

/// A running `app` replica.
pub struct App {
    process: Process,
    addr: SocketAddr,
    name: String,
}

impl App {
    pub async fn start(redis: &RedisServer) -> App {
        App::builder(redis).start().await
    }

    pub fn builder(redis: &RedisServer) -> AppBuilder {
        AppBuilder::for_redis_port(redis.port())
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Its `REPLICA_NAME`, which it reports in `X-Served-By`.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn process(&mut self) -> &mut Process {
        &mut self.process
    }
}

impl AppBuilder {
    /// An app pointed at a Redis on `port` (which need not be running: the app starts without Redis).
    pub fn for_redis_port(port: u16) -> AppBuilder {
        AppBuilder {
            redis_port: port,
            port: None,
            name: None,
            env: Vec::new(),
            args: Vec::new(),
        }
    }
}

/// How to start the `balancer`.
#[derive(Default)]
pub struct BalancerBuilder {
    upstreams: Option<String>,
    port: Option<u16>,
    admin_port: Option<u16>,
    listen_from_file: bool,
    env: Vec<(String, String)>,
    args: Vec<String>,
}

impl BalancerBuilder {
    /// The public listener is `127.0.0.1:port` as the `--config` file's `[server] listen` says:
    /// `BALANCER_LISTEN` is not set (it would win over the file).
    pub fn listen_from_file(mut self, port: u16) -> Self {
        self.port = Some(port);
        self.listen_from_file = true;
        self
    }

    /// `BALANCER_UPSTREAMS`: comma-separated `host:port` entries.
    pub fn upstreams(mut self, upstreams: &str) -> Self {
        self.upstreams = Some(upstreams.to_string());
        self
    }

    /// Upstreams from addresses (test backends).
    pub fn backends(self, backends: &[SocketAddr]) -> Self {
        let list: Vec<String> = backends.iter().map(|b| b.to_string()).collect();
        self.upstreams(&list.join(","))
    }

    /// Upstreams from running replicas.
    pub fn apps(self, apps: &[&App]) -> Self {
        let list: Vec<String> = apps.iter().map(|a| a.addr().to_string()).collect();
        self.upstreams(&list.join(","))
    }

    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    pub fn admin_port(mut self, port: u16) -> Self {
        self.admin_port = Some(port);
        self
    }

    pub async fn start(self) -> Balancer {
        let mut balancer = self.spawn();
        wait_ready(&mut balancer.process, balancer.admin, "/status").await;
        wait_first_checks(balancer.admin).await;
        balancer
    }

    /// Starts the process without waiting for anything (e.g. a balancer taking over from one
    /// already answering on the same ports: readiness is then the caller's to observe).
    pub fn spawn(self) -> Balancer {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port.unwrap_or_else(free_port)));
        let admin = SocketAddr::from(([127, 0, 0, 1], self.admin_port.unwrap_or_else(free_port)));
        let mut cmd = command("balancer");
        if !self.listen_from_file {
            cmd.env("BALANCER_LISTEN", addr.to_string());
        }
        cmd.env("BALANCER_ADMIN_LISTEN", admin.to_string());
        if let Some(upstreams) = &self.upstreams {
            cmd.env("BALANCER_UPSTREAMS", upstreams);
        }
        cmd.envs(self.env).args(self.args);
        let process = match Process::spawn(format!("balancer-{}", addr.port()), cmd) {
            Ok(p) => p,
            Err(e) => panic!("cannot start balancer: {e}"),
        };
        Balancer {
            process,
            addr,
            admin,
        }
    }
}

/// How long [`BalancerBuilder::start`] waits for the first health checks to settle.
const FIRST_CHECKS_TIMEOUT: Duration = Duration::from_secs(5);

/// Waits (up to [`FIRST_CHECKS_TIMEOUT`], without failing) until every backend the balancer lists has had
/// its first health check: admitted, or pending with the failure recorded. A new balancer tries pending
/// backends only while none has passed, so until then which backend serves depends on which probe answered
/// first; tests that count shares start after that.
async fn wait_first_checks(admin: SocketAddr) {
    let url = format!("http://{admin}/status");
    wait_until_async(FIRST_CHECKS_TIMEOUT, || async {
        let Ok(resp) = crate::http::get(&url).await else {
            return false;
        };
        let status: serde_json::Value = serde_json::from_slice(&resp.body).unwrap_or_default();
        let checked = |backends: &serde_json::Value| {
            backends.as_array().is_some_and(|backends| {
                backends
                    .iter()
                    .all(|b| b["state"] != "pending" || !b["last_error"].is_null())
            })
        };
        // With `--config`, each upstream group lists its own backends too.
        let groups = status["groups"].as_array().map_or(&[][..], Vec::as_slice);
        let top = match status.get("backends") {
            Some(backends) => checked(backends),
            None => !groups.is_empty(),
        };
        top && groups
            .iter()
            .all(|g| g.get("backends").is_none_or(&checked))
    })
    .await;
}

/// A running `balancer`.
pub struct Balancer {
    process: Process,
    addr: SocketAddr,
    admin: SocketAddr,
}

impl Balancer {
    pub fn builder() -> BalancerBuilder {
        BalancerBuilder::default()
    }

    /// The public listener.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    pub fn process(&mut self) -> &mut Process {
        &mut self.process
    }
}

/// The environment and flags both builders pass to their process.
macro_rules! env_and_args {
    ($($builder:ty),*) => {$(
        impl $builder {
            /// An environment variable for the process.
            pub fn env(mut self, key: &str, value: &str) -> Self {
                self.env.push((key.to_string(), value.to_string()));
                self
            }

            /// One command-line argument.
            pub fn arg(mut self, arg: &str) -> Self {
                self.args.push(arg.to_string());
                self
            }

            /// Every argument in `args`, in order.
            pub fn args(mut self, args: &[&str]) -> Self {
                self.args.extend(args.iter().map(|a| a.to_string()));
                self
            }
        }
    )*};
}

env_and_args!(AppBuilder, BalancerBuilder);

macro_rules! derefs_to_process {
    ($($service:ty),*) => {$(
        impl Deref for $service {
            type Target = Process;
            fn deref(&self) -> &Process {
                &self.process
            }
        }

        impl DerefMut for $service {
            fn deref_mut(&mut self) -> &mut Process {
                &mut self.process
            }
        }
    )*};
}

derefs_to_process!(App, Balancer);

/// A balancer expected not to start: run with `args` and `env` on top of dead listen ports and one
/// upstream, to its exit; its exit code and stderr (bad configuration exits 2 with one line).
pub fn balancer_start_failing(args: &[&str], env: &[(&str, String)]) -> (Option<i32>, String) {
    let dead = || format!("127.0.0.1:{}", crate::net::dead_port());
    let out = std::process::Command::new(crate::bin_path("balancer"))
        .env("BALANCER_LISTEN", dead())
        .env("BALANCER_ADMIN_LISTEN", dead())
        .env("BALANCER_UPSTREAMS", "127.0.0.1:1")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .args(args)
        .output()
        .expect("running the balancer");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
