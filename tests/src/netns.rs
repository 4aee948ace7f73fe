//! Cutting a replica's network link: a network namespace joined to this host by a veth pair, and a TCP
//! relay that lets a process inside it reach a server listening on loopback only.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::backends::{accept_loop, local_addr};

/// Relays TCP connections from `listen` to `target` (used to let a replica in a network namespace reach the
/// Redis that listens on loopback only).
pub struct Relay {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Relay {
    pub async fn start(listen: SocketAddr, target: SocketAddr) -> Relay {
        let listener = match TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => panic!("relay cannot bind {listen}: {e}"),
        };
        let addr = local_addr(&listener);
        let task = accept_loop(listener, move |mut inbound| async move {
            if let Ok(mut outbound) = TcpStream::connect(target).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
        Relay { addr, task }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A network namespace joined to this host by a veth pair in a private /30: the host end is `host_ip`, the
/// namespace end `ns_ip`. Only this test's own processes live behind it, so traffic to `ns_ip` never leaves
/// the machine. Dropping it deletes the veth pair and the namespace.
pub struct Netns {
    pub name: String,
    pub host_if: String,
    pub ns_if: String,
    pub host_ip: Ipv4Addr,
    pub ns_ip: Ipv4Addr,
}

impl Netns {
    /// Creates the namespace and link, or says why it cannot (not root, no `ip`, no namespace support).
    pub fn create(tag: &str) -> Result<Netns, String> {
        let pid = std::process::id();
        let name = format!("e2e-{tag}-{pid}");
        // Interface names are limited to 15 bytes.
        let suffix = format!("{:x}", pid % 0xfffff);
        let host_if = format!("e2h{suffix}");
        let ns_if = format!("e2n{suffix}");
        let taken = run_ip(&["-4", "-o", "addr", "show"]).unwrap_or_default();
        let octet = (0..250u32)
            .map(|i| ((pid + i) % 250) as u8 + 1)
            .find(|o| !taken.contains(&format!("10.254.{o}.")))
            .ok_or("no free 10.254.N.0/30 subnet")?;
        let host_ip = Ipv4Addr::new(10, 254, octet, 1);
        let ns_ip = Ipv4Addr::new(10, 254, octet, 2);
        // A namespace left behind by a killed earlier run of the same pid would make `add` fail.
        let _ = run_ip(&["link", "del", &host_if]);
        let _ = run_ip(&["netns", "del", &name]);
        run_ip(&["netns", "add", &name])?;
        let ns = Netns {
            name,
            host_if,
            ns_if,
            host_ip,
            ns_ip,
        };
        let host_cidr = format!("{host_ip}/30");
        let ns_cidr = format!("{ns_ip}/30");
        run_ip(&[
            "link",
            "add",
            &ns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &ns.ns_if,
        ])?;
        run_ip(&["link", "set", &ns.ns_if, "netns", &ns.name])?;
        run_ip(&["addr", "add", &host_cidr, "dev", &ns.host_if])?;
        run_ip(&["link", "set", &ns.host_if, "up"])?;
        ns.exec_ip(&["addr", "add", &ns_cidr, "dev", &ns.ns_if])?;
        ns.exec_ip(&["link", "set", &ns.ns_if, "up"])?;
        ns.exec_ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Runs `ip ARGS` inside the namespace.
    pub fn exec_ip(&self, args: &[&str]) -> Result<String, String> {
        let mut full = vec!["netns", "exec", &self.name, "ip"];
        full.extend_from_slice(args);
        run_ip(&full)
    }

    /// Cuts the link: the namespace end goes down, so packets to `ns_ip` are dropped silently and connects
    /// time out (rather than being refused).
    pub fn cut(&self) -> Result<(), String> {
        self.exec_ip(&["link", "set", &self.ns_if, "down"])
            .map(|_| ())
    }

    pub fn restore(&self) -> Result<(), String> {
        self.exec_ip(&["link", "set", &self.ns_if, "up"])
            .map(|_| ())
    }

    /// A command that runs `program` inside the namespace (`ip netns exec` execs it, so the pid is the
    /// program's own).
    pub fn command(&self, program: &std::path::Path) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    pub fn ns_addr(&self, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(self.ns_ip), port)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting one end of a veth pair deletes both.
        let _ = run_ip(&["link", "del", &self.host_if]);
        if let Err(e) = run_ip(&["netns", "del", &self.name]) {
            eprintln!(
                "warning: could not delete network namespace {}: {e}",
                self.name
            );
        }
    }
}

fn run_ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A port that is free in the namespace (nothing runs there yet, so any unprivileged port is).
pub fn ns_port() -> u16 {
    crate::free_port()
}
