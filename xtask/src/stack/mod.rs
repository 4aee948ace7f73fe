//! The local stack on loopback: `redis-server` (AOF on), `app` replicas, the balancer and NGINX,
//! each an [`e2e::Process`] (the harness the end-to-end tests use) that logs to its own file and
//! is stopped on drop, and the `cargo xtask up` command that runs them in the foreground.
//!
//! The folder owns the processes ([`services`], [`nginx`]), how they are started ([`launch`]),
//! the workspace binaries they run ([`binaries`]), the probes that see them from outside
//! ([`probe`]) and [`up`]. Both `cargo xtask up` and `cargo xtask bench` build their stacks from
//! these pieces. Readiness is always observed from outside by polling (Redis `PING`, HTTP
//! `/health`), and a process that dies while we wait for it fails at once with the tail of its
//! log rather than a timeout. It may use [`crate::tools`] and [`crate::config_error`] only.

pub mod binaries;
pub mod launch;
pub mod nginx;
pub mod probe;
mod services;
pub mod up;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use e2e::Process;

pub use services::{start_replicas, Balancer, Redis, Replica, RequestLog};

use crate::config_error::config_error;

/// How long a started process may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Spawns `cmd` as `name`, logging to `log_path` (see [`Process::spawn_logged`]).
pub fn spawn(name: &str, cmd: Command, log_path: &Path) -> Result<Process> {
    let program = cmd.get_program().to_os_string();
    Process::spawn_logged(name, cmd, log_path).with_context(|| {
        format!(
            "starting {name} ({program:?}), logging to {}",
            log_path.display()
        )
    })
}

/// Polls `ready` until it returns true, failing early if `process` exits.
pub fn wait_ready(process: &mut Process, what: &str, ready: impl FnMut() -> bool) -> Result<()> {
    process.wait_ready(what, READY_TIMEOUT, ready)
}

/// A free loopback port (bound then released; the usual small race is acceptable here).
pub fn free_port() -> Result<u16> {
    e2e::net::try_free_port().context("finding a free loopback port")
}

/// `port` if nonzero and free, a free port if zero; a taken port is one clear error naming `flag`.
pub fn pick_port(port: u16, flag: &str) -> Result<u16> {
    if port == 0 {
        return free_port();
    }
    match TcpListener::bind(("127.0.0.1", port)) {
        Ok(_) => Ok(port),
        Err(e) => Err(config_error(format!(
            "{flag} {port}: port not available ({e}); choose another, or 0 for a free one"
        ))),
    }
}

/// `127.0.0.1:port`, where everything of the stack listens.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// True if `GET path` on `addr` answers 200.
pub fn answers_ok(addr: SocketAddr, path: &str) -> bool {
    probe::http_get(addr, path, Duration::from_secs(2)).is_ok_and(|r| r.status == 200)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taken_port_is_a_config_error_naming_the_flag() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let err = pick_port(port, "--port").unwrap_err();
        assert!(err
            .downcast_ref::<crate::config_error::ConfigError>()
            .is_some());
        assert!(err.to_string().starts_with("--port"), "{err}");
        assert_ne!(pick_port(0, "--port").unwrap(), 0);
    }
}
