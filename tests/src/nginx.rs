//! A real NGINX in the foreground under its own prefix directory, configured from the project's
//! `nginx.conf` by [`crate::nginx_config`] (as `cargo xtask up` does), killed on drop.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::{free_port, wait_until_async, Process};

/// How long NGINX may take to serve `/health` through a replica.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A real NGINX in the foreground under its own prefix directory, killed on drop.
pub struct Nginx {
    process: Process,
    addr: SocketAddr,
    _prefix: tempfile::TempDir,
}

impl Nginx {
    pub async fn start(replicas: &[SocketAddr]) -> Nginx {
        let bin = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or_else(|| panic!("nginx not found: install the Debian package `nginx`"));
        let template_path = crate::bins::workspace_root().join("nginx.conf");
        let template = std::fs::read_to_string(&template_path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", template_path.display()));
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let prefix = tempfile::Builder::new()
            .prefix("e2e-nginx-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create an nginx prefix: {e}"));
        let conf = prefix.path().join("nginx.conf");
        let rendered = crate::nginx_config::render_config(&template, replicas, addr, None)
            .unwrap_or_else(|e| panic!("cannot render nginx.conf: {e:#}"));
        std::fs::write(&conf, rendered)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", conf.display()));
        let mut cmd = Command::new(bin);
        // Its own process group, so the workers can be found and stopped with the master.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd.arg("-p")
            .arg(prefix.path())
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg("stderr")
            .arg("-g")
            .arg(format!(
                "pid {}; daemon off;",
                prefix.path().join("nginx.pid").display()
            ));
        let mut process = Process::spawn(format!("nginx-{}", addr.port()), cmd)
            .unwrap_or_else(|e| panic!("cannot start nginx: {e}"));
        let health = format!("http://{addr}/health");
        let ready = wait_until_async(READY_TIMEOUT, || async {
            crate::http::get(&health)
                .await
                .map(|r| r.status == 200)
                .unwrap_or(false)
        })
        .await;
        process.assert_running();
        assert!(
            ready,
            "nginx did not serve {health}; log:\n{}",
            process.log()
        );
        Nginx {
            process,
            addr,
            _prefix: prefix,
        }
    }

    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Nginx {
    /// NGINX's workers outlive a master killed with SIGKILL, which is what dropping its
    /// [`Process`] does (each CI run left one worker behind). SIGTERM makes the master stop its
    /// workers and wait for them; if it has not exited within 5 s, its whole process group
    /// (master and workers, nothing else) is killed.
    fn drop(&mut self) {
        let pid = self.process.pid();
        if pid == 0 || self.process.try_exit().is_some() {
            return;
        }
        self.process.sigterm();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while self.process.try_exit().is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if self.process.try_exit().is_some() {
            // The master stops only after its workers have.
            return;
        }
        if let Ok(group) = i32::try_from(pid) {
            // SAFETY: kill(2) with a negative pid signals that process group only: the one created
            // for this NGINX at spawn, whose leader (the master) is still alive, so the id is not
            // reused.
            unsafe {
                libc::kill(-group, libc::SIGKILL);
            }
        }
    }
}
