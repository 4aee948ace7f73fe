//! The stack's own processes: `redis-server` with AOF on, the `app` replicas and the balancer,
//! each started, waited for until it serves, and stopped on drop.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use e2e::Process;

use super::launch::Launch;
use super::probe::{self, RedisReply};
use super::{answers_ok, free_port, loopback, spawn, wait_ready};

/// A `redis-server` with AOF on (`appendfsync everysec`), data in a directory of our choosing.
#[derive(Debug)]
pub struct Redis {
    pub process: Process,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
}

impl Redis {
    pub fn start(bin: &Path, port: u16, data_dir: &Path, log_dir: &Path) -> Result<Self> {
        fs::create_dir_all(data_dir)
            .with_context(|| format!("creating redis data dir {}", data_dir.display()))?;
        let data_dir = data_dir
            .canonicalize()
            .with_context(|| format!("resolving {}", data_dir.display()))?;
        let addr = loopback(port);
        let cmd = e2e::redis_server::redis_server_command(bin, port, &data_dir);
        let mut process = spawn("redis-server", cmd, &log_dir.join("redis.log"))?;
        wait_ready(&mut process, "PING", || {
            matches!(
                probe::redis_command(addr, &["PING"], Duration::from_secs(1)),
                Ok(RedisReply::Status(s)) if s == "PONG"
            )
        })?;
        Ok(Self {
            process,
            addr,
            data_dir,
        })
    }

    pub fn url(&self) -> String {
        format!("redis://{}/0", self.addr)
    }

    /// The counter's current value.
    pub fn counter(&self, key: &str) -> Result<i64> {
        probe::redis_get_i64(self.addr, key)
    }
}

/// One `app` replica on a loopback port.
#[derive(Debug)]
pub struct Replica {
    pub process: Process,
    pub addr: SocketAddr,
    pub name: String,
}

/// Starts `count` replicas on free ports against `redis`, named `replica-1`…, and waits until
/// each answers `/health` with 200 (which means it reached Redis).
pub fn start_replicas(
    app: &Path,
    redis: &Redis,
    count: usize,
    counter_key: &str,
    log_dir: &Path,
) -> Result<Vec<Replica>> {
    let mut replicas = Vec::with_capacity(count);
    for i in 1..=count {
        let addr = loopback(free_port()?);
        let name = format!("replica-{i}");
        let mut cmd = Command::new(app);
        cmd.env_remove("REDIS_URL")
            .env("REDIS_HOST", "127.0.0.1")
            .env("REDIS_PORT", redis.addr.port().to_string())
            .env("APP_LISTEN", addr.to_string())
            .env("REPLICA_NAME", &name)
            .env("COUNTER_KEY", counter_key);
        let process = spawn(&name, cmd, &log_dir.join(format!("{name}.log")))?;
        replicas.push(Replica {
            process,
            addr,
            name,
        });
    }
    // Start them all first, then wait: they boot in parallel.
    for replica in &mut replicas {
        let addr = replica.addr;
        wait_ready(&mut replica.process, "GET /health = 200", || {
            answers_ok(addr, "/health")
        })?;
    }
    Ok(replicas)
}

/// Comma-separated `host:port` list, the balancer's `BALANCER_UPSTREAMS` format.
pub fn upstream_list(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The balancer's access log (`BALANCER_ACCESS_LOG`): off by default, like the project's
/// nginx.conf (`access_log off`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum RequestLog {
    /// No line per request.
    Off,
    /// NGINX's `combined` line plus request ID, backend and upstream time.
    Combined,
    /// One JSON object per request.
    Json,
}

impl RequestLog {
    /// The `--access-log` value.
    pub fn as_flag(self) -> &'static str {
        match self {
            RequestLog::Off => "off",
            RequestLog::Combined => "combined",
            RequestLog::Json => "json",
        }
    }
}

/// The balancer in front of some replicas.
#[derive(Debug)]
pub struct Balancer {
    pub process: Process,
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
}

impl Balancer {
    /// The flags of an HTTPS listener on `listen` serving the pair `cert` and `key`.
    pub fn tls_flags(listen: SocketAddr, cert: &Path, key: &Path) -> Vec<String> {
        vec![
            "--tls-listen".to_string(),
            listen.to_string(),
            "--tls-cert".to_string(),
            cert.display().to_string(),
            "--tls-key".to_string(),
            key.display().to_string(),
        ]
    }

    /// Starts the balancer on `port` (admin on `admin_port`), with `extra_args` after the shared
    /// flags, and waits until its admin listener answers `/status` and its public listener serves
    /// `/health` through a replica.
    pub fn start(
        bin: &Path,
        (port, admin_port): (u16, u16),
        upstreams: &[SocketAddr],
        workers: Option<usize>,
        request_log: RequestLog,
        log_path: &Path,
        extra_args: &[&str],
    ) -> Result<Self> {
        let (launch, settings) = (Launch::default(), (workers, request_log));
        let ports = (port, admin_port);
        Self::start_launched(
            bin, ports, upstreams, settings, log_path, &launch, extra_args,
        )
    }

    /// The general form: on `(port, admin_port)`, run as `launch` says, with `extra_args`.
    pub fn start_launched(
        bin: &Path,
        (port, admin_port): (u16, u16),
        upstreams: &[SocketAddr],
        (workers, request_log): (Option<usize>, RequestLog),
        log_path: &Path,
        launch: &Launch,
        extra_args: &[&str],
    ) -> Result<Self> {
        let addr = loopback(port);
        let admin_addr = loopback(admin_port);
        let mut cmd = launch.command(bin, false);
        cmd.env("BALANCER_LISTEN", addr.to_string())
            .env("BALANCER_ADMIN_LISTEN", admin_addr.to_string())
            .env("BALANCER_UPSTREAMS", upstream_list(upstreams));
        if let Some(workers) = workers {
            cmd.arg("--workers").arg(workers.to_string());
        }
        cmd.env("BALANCER_ACCESS_LOG", request_log.as_flag());
        cmd.args(extra_args);
        let mut process = spawn("balancer", cmd, log_path)?;
        let timeout = launch.ready_timeout();
        process.wait_ready("admin GET /status = 200", timeout, || {
            answers_ok(admin_addr, "/status")
        })?;
        process.wait_ready("GET /health through a replica = 200", timeout, || {
            answers_ok(addr, "/health")
        })?;
        Ok(Self {
            process,
            addr,
            admin_addr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::free_port;
    use crate::tools::locate;

    #[test]
    fn redis_runs_with_aof_in_the_named_dir_and_counts() {
        let bin = locate::redis_server().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let redis = Redis::start(
            &bin,
            free_port().unwrap(),
            &dir.path().join("data"),
            dir.path(),
        )
        .unwrap();
        assert_eq!(redis.counter("visits").unwrap(), 0);
        probe::redis_command(
            redis.addr,
            &["INCRBY", "visits", "41"],
            Duration::from_secs(2),
        )
        .unwrap();
        probe::redis_command(redis.addr, &["INCR", "visits"], Duration::from_secs(2)).unwrap();
        assert_eq!(redis.counter("visits").unwrap(), 42);
        assert!(redis
            .data_dir
            .starts_with(dir.path().canonicalize().unwrap()));
        // Redis 7 keeps its AOF in <dir>/appendonlydir; earlier ones in <dir>/appendonly.aof.
        let aof = fs::read_dir(&redis.data_dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().starts_with("appendonly"));
        assert!(aof, "AOF is on and lives in the named data dir");
    }
}
