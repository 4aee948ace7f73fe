//! A real DNS server whose answers a test changes, as an orchestrator's DNS does: Debian's dnsmasq
//! serving the names of one hosts file, reloaded with SIGHUP when the test rewrites it.
//!
//! It listens on port 53 of a loopback address of its own (127.N.N.53), so a process whose
//! `/etc/resolv.conf` names that address (a [`crate::namespaced_balancer::NamespacedBalancer`])
//! resolves through it with the system resolver. Names under [`DOMAIN`] that the file does not list
//! get NXDOMAIN (`--local`); it has no upstream server, so no query leaves the machine (anything
//! outside the domain is refused). Stopping it (SIGSTOP) makes queries time out; killing it makes
//! them fail at once: the two transient failures a resolver meets.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::process::Process;
use crate::wait_until;

/// The domain dnsmasq answers for; every test name lives under it.
pub const DOMAIN: &str = "e2e.test";

/// How long dnsmasq may take to start or to reload.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Dnsmasq {
    pub process: Process,
    /// The address it listens on (port 53).
    pub ip: Ipv4Addr,
    hosts: PathBuf,
    /// How many times it has read the hosts file (its log says each time).
    reads: usize,
    _dir: tempfile::TempDir,
}

impl Dnsmasq {
    /// Starts dnsmasq serving `hosts` (lines `IP NAME`). Panics when dnsmasq is missing (`.ci/run`
    /// installs Debian's `dnsmasq-base`) or cannot start.
    pub async fn start(hosts: &str) -> Dnsmasq {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let path = dir.path().join("hosts");
        std::fs::write(&path, hosts).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        let ip = free_loopback_53();
        let mut dns = Dnsmasq {
            process: spawn(ip, &path),
            ip,
            hosts: path,
            reads: 0,
            _dir: dir,
        };
        dns.wait_read().await;
        dns
    }

    /// Rewrites the hosts file and reloads it (SIGHUP); returns once dnsmasq has read it.
    pub async fn set_hosts(&mut self, content: &str) {
        std::fs::write(&self.hosts, content)
            .unwrap_or_else(|e| panic!("write {}: {e}", self.hosts.display()));
        self.process.signal(libc::SIGHUP);
        self.wait_read().await;
    }

    /// Freezes it (SIGSTOP): queries reach its socket and are never answered.
    pub fn pause(&mut self) {
        self.process.signal(libc::SIGSTOP);
    }

    /// Lets a paused server go on (SIGCONT).
    pub fn resume(&mut self) {
        self.process.signal(libc::SIGCONT);
    }

    /// Kills it: its port is closed, queries are refused at once.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Starts it again on the same address and hosts file, after [`Dnsmasq::kill`].
    pub async fn restart(&mut self) {
        self.process = spawn(self.ip, &self.hosts);
        self.reads = 0;
        self.wait_read().await;
    }

    /// Waits until the log shows one more read of the hosts file than before.
    async fn wait_read(&mut self) {
        let needle = format!("read {} - ", self.hosts.display());
        let want = self.reads + 1;
        let log_path = self.process.log_path().to_path_buf();
        let read = wait_until(READY_TIMEOUT, || {
            std::fs::read_to_string(&log_path)
                .map(|log| log.matches(needle.as_str()).count() >= want)
                .unwrap_or(false)
        })
        .await;
        self.process.assert_running();
        assert!(
            read,
            "dnsmasq did not read its hosts file; log:\n{}",
            self.process.log()
        );
        self.reads = want;
    }
}

fn spawn(ip: Ipv4Addr, hosts: &std::path::Path) -> Process {
    let mut cmd = Command::new(dnsmasq_path());
    cmd.arg("--keep-in-foreground")
        .arg("--log-facility=-")
        .arg("--user=root")
        .arg("--pid-file=")
        .arg("--no-resolv")
        .arg("--no-hosts")
        .arg(format!("--addn-hosts={}", hosts.display()))
        .arg(format!("--local=/{DOMAIN}/"))
        .arg("--bind-interfaces")
        .arg(format!("--listen-address={ip}"))
        .arg("--port=53");
    Process::spawn(format!("dnsmasq-{ip}"), cmd).unwrap_or_else(|e| panic!("spawn dnsmasq: {e}"))
}

/// dnsmasq lives in /usr/sbin, which a non-login PATH may lack.
fn dnsmasq_path() -> PathBuf {
    let sbin = PathBuf::from("/usr/sbin/dnsmasq");
    if sbin.exists() {
        return sbin;
    }
    assert!(
        Command::new("dnsmasq").arg("--version").output().is_ok(),
        "dnsmasq is not installed (Debian package dnsmasq-base; .ci/run installs it)"
    );
    PathBuf::from("dnsmasq")
}

/// A loopback address whose port 53 is free (UDP bind check), derived from the pid so parallel
/// test processes pick different ones.
fn free_loopback_53() -> Ipv4Addr {
    let pid = std::process::id();
    (0..200u32)
        .map(|i| {
            let n = (pid + i) % 200 + 20;
            Ipv4Addr::new(127, 53, u8::try_from(n).unwrap_or(53), 53)
        })
        .find(|ip| UdpSocket::bind(SocketAddr::from((*ip, 53))).is_ok())
        .unwrap_or_else(|| panic!("no free port 53 on 127.53.N.53 (not root?)"))
}
