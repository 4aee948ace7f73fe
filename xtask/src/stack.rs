//! The processes of a local stack on loopback: `redis-server` (AOF on), `app` replicas and the
//! balancer, each a [`ManagedProcess`] that logs to its own file and is stopped on drop.
//!
//! Both `cargo xtask up` and `cargo xtask bench` build their stacks from these pieces. Readiness
//! is always observed from outside by polling (Redis `PING`, HTTP `/health`), and a process that
//! dies while we wait for it fails at once with the tail of its log rather than a timeout.

use std::fs::{self, File};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::probe::{self, RedisReply};

/// How long a started process may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a process may take to exit after SIGTERM before it gets SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// A child process that logs to a file and is terminated (SIGTERM, then SIGKILL) when dropped.
#[derive(Debug)]
pub struct ManagedProcess {
    name: String,
    child: Child,
    log_path: PathBuf,
    exited: Option<ExitStatus>,
}

impl ManagedProcess {
    /// Spawns `cmd` with stdout and stderr appended to `log_path`.
    ///
    /// The child gets its own process group, so a terminal's Ctrl-C reaches only the xtask, which
    /// then stops the stack front to back; and it is sent SIGTERM if the xtask itself dies.
    pub fn spawn(name: &str, mut cmd: Command, log_path: &Path) -> Result<Self> {
        let log = File::create(log_path)
            .with_context(|| format!("creating log file {}", log_path.display()))?;
        let log_err = log.try_clone().context("duplicating the log file handle")?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .process_group(0);
        // SAFETY: prctl is async-signal-safe and touches only the child's own state.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", cmd.get_program()))?;
        Ok(Self {
            name: name.to_string(),
            child,
            log_path: log_path.to_path_buf(),
            exited: None,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last `lines` lines of the process's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(&self.log_path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// `Err` (with the log tail) if the process has exited.
    pub fn ensure_running(&mut self) -> Result<()> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().context("polling a child process")?;
        }
        match self.exited {
            None => Ok(()),
            Some(status) => bail!(
                "{} exited unexpectedly ({status}); log {}:\n{}",
                self.name,
                self.log_path.display(),
                self.log_tail(15)
            ),
        }
    }

    /// Polls `ready` every 50 ms until it returns true, failing early if the process exits.
    pub fn wait_ready(&mut self, what: &str, mut ready: impl FnMut() -> bool) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            self.ensure_running()?;
            if ready() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not become ready ({what}) within {READY_TIMEOUT:?}; log {}:\n{}",
                    self.name,
                    self.log_path.display(),
                    self.log_tail(15)
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends `signal` to the process (ignored if it already exited).
    pub fn signal(&self, signal: i32) {
        if self.exited.is_none() {
            if let Ok(pid) = i32::try_from(self.child.id()) {
                // SAFETY: kill(2) with a PID we own; a stale PID is harmless because we have not
                // reaped the child yet, so the PID cannot have been reused.
                unsafe { libc::kill(pid, signal) };
            }
        }
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL. Idempotent.
    pub fn stop(&mut self, grace: Duration) {
        if self.exited.is_some() {
            return;
        }
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + grace;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.exited = Some(status);
                    return;
                }
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                _ => break,
            }
        }
        eprintln!(
            "xtask: {} ignored SIGTERM for {grace:?}, killing it",
            self.name
        );
        let _ = self.child.kill();
        self.exited = self.child.wait().ok();
    }
}

impl Drop for ManagedProcess {
    fn drop(&mut self) {
        self.stop(STOP_GRACE);
    }
}

/// A free loopback port (bound then released; the usual small race is acceptable here).
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free loopback port")?;
    Ok(listener.local_addr()?.port())
}

/// `port` if nonzero and free, a free port if zero; a taken port is one clear error naming `flag`.
pub fn pick_port(port: u16, flag: &str) -> Result<u16> {
    if port == 0 {
        return free_port();
    }
    match TcpListener::bind(("127.0.0.1", port)) {
        Ok(_) => Ok(port),
        Err(e) => Err(crate::ConfigError(format!(
            "{flag} {port}: port not available ({e}); choose another, or 0 for a free one"
        ))
        .into()),
    }
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// True if `GET path` on `addr` answers 200.
pub fn answers_ok(addr: SocketAddr, path: &str) -> bool {
    probe::http_get(addr, path, Duration::from_secs(2)).is_ok_and(|r| r.status == 200)
}

/// A `redis-server` with AOF on (`appendfsync everysec`), data in a directory of our choosing.
#[derive(Debug)]
pub struct Redis {
    pub process: ManagedProcess,
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
        let mut cmd = Command::new(bin);
        cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .arg("--dir")
            .arg(&data_dir)
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "",
                "--daemonize",
                "no",
            ]);
        let mut process = ManagedProcess::spawn("redis-server", cmd, &log_dir.join("redis.log"))?;
        process.wait_ready("PING", || {
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
    pub process: ManagedProcess,
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
        let process = ManagedProcess::spawn(&name, cmd, &log_dir.join(format!("{name}.log")))?;
        replicas.push(Replica {
            process,
            addr,
            name,
        });
    }
    // Start them all first, then wait: they boot in parallel.
    for replica in &mut replicas {
        let addr = replica.addr;
        replica
            .process
            .wait_ready("GET /health = 200", || answers_ok(addr, "/health"))?;
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

/// How the balancer logs each request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum RequestLog {
    /// The balancer's default (`RUST_LOG` as set by the user, else one line per request).
    Default,
    /// `RUST_LOG=warn`: no per-request lines.
    Off,
}

/// The balancer in front of some replicas.
#[derive(Debug)]
pub struct Balancer {
    pub process: ManagedProcess,
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
}

impl Balancer {
    /// Starts the balancer on `port` (admin on `admin_port`) and waits until its admin listener
    /// answers `/status` and its public listener serves `/health` through a replica.
    pub fn start(
        bin: &Path,
        port: u16,
        admin_port: u16,
        upstreams: &[SocketAddr],
        workers: Option<usize>,
        request_log: RequestLog,
        log_path: &Path,
    ) -> Result<Self> {
        let addr = loopback(port);
        let admin_addr = loopback(admin_port);
        let mut cmd = Command::new(bin);
        cmd.env("BALANCER_LISTEN", addr.to_string())
            .env("BALANCER_ADMIN_LISTEN", admin_addr.to_string())
            .env("BALANCER_UPSTREAMS", upstream_list(upstreams));
        if let Some(workers) = workers {
            cmd.arg("--workers").arg(workers.to_string());
        }
        if request_log == RequestLog::Off {
            cmd.env("RUST_LOG", "warn");
        }
        let mut process = ManagedProcess::spawn("balancer", cmd, log_path)?;
        process.wait_ready("admin GET /status = 200", || {
            answers_ok(admin_addr, "/status")
        })?;
        process.wait_ready("GET /health through a replica = 200", || {
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

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(script);
        cmd
    }

    #[test]
    fn a_dead_process_reports_its_log_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = ManagedProcess::spawn(
            "failing",
            sh("echo boom-line; exit 3"),
            &dir.path().join("f.log"),
        )
        .unwrap();
        let err = p.wait_ready("never", || false).unwrap_err().to_string();
        assert!(err.contains("failing exited unexpectedly"), "{err}");
        assert!(err.contains("boom-line"), "{err}");
    }

    #[test]
    fn stop_terminates_a_running_process_quickly() {
        let dir = tempfile::tempdir().unwrap();
        let mut p =
            ManagedProcess::spawn("sleeper", sh("exec sleep 100"), &dir.path().join("s.log"))
                .unwrap();
        p.ensure_running().unwrap();
        let started = Instant::now();
        p.stop(Duration::from_secs(5));
        assert!(started.elapsed() < Duration::from_secs(3));
        assert!(p.ensure_running().is_err());
    }

    #[test]
    fn taken_port_is_a_config_error_naming_the_flag() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let err = pick_port(port, "--port").unwrap_err();
        assert!(err.downcast_ref::<crate::ConfigError>().is_some());
        assert!(err.to_string().starts_with("--port"), "{err}");
        assert_ne!(pick_port(0, "--port").unwrap(), 0);
    }

    #[test]
    fn redis_runs_with_aof_in_the_named_dir_and_counts() {
        let bin = crate::binaries::redis_server().unwrap();
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
