//! The balancer inside a private mount namespace with its own `/etc/hosts` and `/etc/resolv.conf`, for late
//! DNS resolution: the test edits the namespace's hosts file, or the answers of the DNS server its
//! resolv.conf names ([`crate::dnsmasq`]), and watches the balancer follow them.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// How long the namespaced balancer may take to answer its admin `/status`.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A balancer inside a private mount namespace whose `/etc/hosts` is `hosts` (bind-mounted, so the
/// test edits it in place) and whose resolver points at a loopback DNS server: by default
/// 127.0.0.1:53 where nothing listens, so no lookup leaves the machine. The real `/etc/hosts` and
/// `/etc/resolv.conf` are never touched. Where the machine cannot make mount namespaces (not root, no
/// `unshare`) the test fails saying so, or, with `E2E_ALLOW_SKIP=1`, prints SKIP and gets `None`
/// ([`crate::skip::or_fail`]).
pub struct NamespacedBalancer {
    pub process: crate::Process,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    dir: tempfile::TempDir,
    pub hosts: PathBuf,
}

impl NamespacedBalancer {
    pub async fn start(upstreams: &str, args: &[&str]) -> Option<NamespacedBalancer> {
        Self::start_with_nameserver(upstreams, args, Ipv4Addr::LOCALHOST).await
    }

    /// Like [`NamespacedBalancer::start`], resolving through the DNS server on `nameserver` port 53
    /// (one try, 1 s timeout: a stopped server shows as a timeout at once).
    pub async fn start_with_nameserver(
        upstreams: &str,
        args: &[&str],
        nameserver: Ipv4Addr,
    ) -> Option<NamespacedBalancer> {
        let dir = tempfile::tempdir().expect("temporary directory for the namespace's files");
        let hosts = dir.path().join("hosts");
        let resolv = dir.path().join("resolv.conf");
        std::fs::write(&hosts, "127.0.0.1 localhost\n").expect("write the namespace's hosts file");
        std::fs::write(
            &resolv,
            format!("nameserver {nameserver}\noptions timeout:1 attempts:1\n"),
        )
        .expect("write the namespace's resolv.conf");
        if let Err(why) = can_bind_mount_in_a_namespace(&hosts, &resolv) {
            crate::skip::or_fail(&format!(
                "cannot make a mount namespace: {why}; install util-linux (unshare) and run as root"
            ));
            return None;
        }
        let addr = SocketAddr::from(([127, 0, 0, 1], crate::free_port()));
        let admin = SocketAddr::from(([127, 0, 0, 1], crate::free_port()));
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg("mount --bind \"$1\" /etc/hosts && mount --bind \"$2\" /etc/resolv.conf && shift 2 && exec \"$@\"")
            .arg("sh")
            .arg(&hosts)
            .arg(&resolv)
            .arg(crate::bin_path("balancer"))
            .args(args);
        for var in crate::services::SCRUBBED_ENV {
            cmd.env_remove(var);
        }
        cmd.env("BALANCER_LISTEN", addr.to_string())
            .env("BALANCER_ADMIN_LISTEN", admin.to_string())
            .env("BALANCER_UPSTREAMS", upstreams)
            .env("RUST_LOG", "info");
        let mut process = crate::Process::spawn(format!("balancer-ns-{}", addr.port()), cmd)
            .unwrap_or_else(|e| panic!("spawn namespaced balancer: {e}"));
        let url = format!("http://{admin}/status");
        let up = crate::wait_until_async(READY_TIMEOUT, || async {
            crate::http::get(&url).await.is_ok()
        })
        .await;
        process.assert_running();
        assert!(
            up,
            "namespaced balancer did not answer; log:\n{}",
            process.log()
        );
        Some(NamespacedBalancer {
            process,
            addr,
            admin,
            dir,
            hosts,
        })
    }

    /// Rewrites the namespace's /etc/hosts in place (same inode, so the bind mount sees it).
    pub fn set_hosts(&self, content: &str) {
        write_in_place(&self.hosts, content);
    }

    /// Rewrites the namespace's /etc/resolv.conf in place, e.g. to name another DNS server.
    pub fn set_resolv_conf(&self, content: &str) {
        write_in_place(&self.dir.path().join("resolv.conf"), content);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }
}

/// Tries the bind mounts the balancer will run under, in a throwaway mount namespace; says why they fail.
fn can_bind_mount_in_a_namespace(hosts: &Path, resolv: &Path) -> Result<(), String> {
    let probe = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg("mount --bind \"$1\" /etc/hosts && mount --bind \"$2\" /etc/resolv.conf")
        .args(["sh"])
        .arg(hosts)
        .arg(resolv)
        .output();
    match probe {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "unshare --mount failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(format!("cannot run unshare: {e}")),
    }
}

fn write_in_place(path: &Path, content: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    f.write_all(content.as_bytes())
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}
