//! A real `redis-server` for one test: its own data directory, a free port, append-only file on.
//!
//! The server can be stopped cleanly, killed, and started again on the same port and directory, which is how
//! tests exercise Redis restarts and AOF recovery.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::process::Process;
use crate::{free_port, wait_until_async};

const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// `redis-server` (the program at `bin`) on 127.0.0.1:`port` in the foreground, its data in `dir`,
/// append-only file on with `appendfsync everysec` and no RDB snapshots: the one Redis set-up of the
/// tests and of `cargo xtask up`/`bench`.
pub fn redis_server_command(bin: &Path, port: u16, dir: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args(["--bind", "127.0.0.1", "--port"])
        .arg(port.to_string())
        .arg("--dir")
        .arg(dir)
        .args([
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--protected-mode",
            "no",
            "--daemonize",
            "no",
        ]);
    cmd
}

pub struct RedisServer {
    port: u16,
    dir: tempfile::TempDir,
    process: Option<Process>,
}

impl RedisServer {
    /// Starts a server and waits until it answers PING. Fails with one line naming the Debian package when
    /// `redis-server` is not installed.
    pub async fn start() -> RedisServer {
        if Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
        {
            panic!("redis-server not found: install the Debian package `redis-server` (apt-get install -y redis-server)");
        }
        let dir = match tempfile::Builder::new().prefix("e2e-redis-").tempdir() {
            Ok(dir) => dir,
            Err(e) => panic!("cannot create a temporary directory for redis: {e}"),
        };
        let mut server = RedisServer {
            port: free_port(),
            dir,
            process: None,
        };
        server.start_again().await;
        server
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn pid(&self) -> u32 {
        self.process.as_ref().map(Process::pid).unwrap_or(0)
    }

    pub fn client(&self) -> redis::Client {
        match redis::Client::open(self.url()) {
            Ok(client) => client,
            Err(e) => panic!("bad redis url {}: {e}", self.url()),
        }
    }

    /// Starts (again) on the same port and data directory, so the AOF written before is loaded.
    pub async fn start_again(&mut self) {
        if let Some(mut old) = self.process.take() {
            old.kill();
        }
        let cmd = redis_server_command(Path::new("redis-server"), self.port, self.dir.path());
        let process = match Process::spawn(format!("redis-{}", self.port), cmd) {
            Ok(p) => p,
            Err(e) => panic!("cannot start redis-server: {e}"),
        };
        self.process = Some(process);
        let client = self.client();
        let ready = wait_until_async(READY_TIMEOUT, || {
            let client = client.clone();
            async move {
                match client.get_multiplexed_async_connection().await {
                    Ok(mut conn) => redis::cmd("PING")
                        .query_async::<String>(&mut conn)
                        .await
                        .is_ok(),
                    Err(_) => false,
                }
            }
        })
        .await;
        if !ready {
            let log = self.process.as_ref().map(Process::log).unwrap_or_default();
            panic!(
                "redis-server on port {} not ready within {READY_TIMEOUT:?}; log:\n{log}",
                self.port
            );
        }
    }

    /// Clean stop (SIGTERM: Redis flushes its AOF and exits), waiting for the process to end.
    pub async fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.sigterm();
            if process.wait_exit(Duration::from_secs(10)).await.is_none() {
                panic!("redis-server did not exit within 10 s of SIGTERM");
            }
        }
    }

    /// SIGKILL: whatever the AOF had not fsynced is lost, as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// The integer at `key`, 0 when it does not exist.
    pub async fn get_i64(&self, key: &str) -> i64 {
        let mut conn = match self.client().get_multiplexed_async_connection().await {
            Ok(conn) => conn,
            Err(e) => panic!("cannot connect to redis on port {}: {e}", self.port),
        };
        match redis::cmd("GET")
            .arg(key)
            .query_async::<Option<i64>>(&mut conn)
            .await
        {
            Ok(value) => value.unwrap_or(0),
            Err(e) => panic!("GET {key} failed: {e}"),
        }
    }

    /// Sets `key` to `value`.
    pub async fn set_i64(&self, key: &str, value: i64) {
        let mut conn = match self.client().get_multiplexed_async_connection().await {
            Ok(conn) => conn,
            Err(e) => panic!("cannot connect to redis on port {}: {e}", self.port),
        };
        if let Err(e) = redis::cmd("SET")
            .arg(key)
            .arg(value)
            .query_async::<()>(&mut conn)
            .await
        {
            panic!("SET {key} failed: {e}");
        }
    }
}
