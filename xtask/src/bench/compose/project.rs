//! The Compose project `vc-bench` as the bench drives it: base images and build context
//! prepared, `docker compose --profile nginx up -d --build --wait`, its containers listed, the
//! doors checked ready, and `down -v` when dropped (errors and Ctrl-C included). The project name
//! never collides with the end-to-end test's `vc-e2e-*`; the images it builds stay, so the next
//! run's build is warm.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::bench::core::OutDirs;
use crate::report::model::Plan;
use crate::stack::{binaries, loopback, probe};
use crate::tools::docker::{self, Container, OnInterrupt};

/// The Compose project: distinct from the end-to-end test's `vc-e2e-<pid>-<n>`.
pub const PROJECT: &str = "vc-bench";
/// The ports docker-compose.yml publishes: balancer, NGINX, balancer admin.
pub const BALANCER_PORT: u16 = 5000;
pub const NGINX_PORT: u16 = 5002;
pub const ADMIN_PORT: u16 = 9000;
/// Stand-ins, vendoring and a cold release build of both images on a small machine.
const PREPARE_TIMEOUT: Duration = Duration::from_secs(20 * 60);
const UP_TIMEOUT: Duration = Duration::from_secs(40 * 60);
const CALL_TIMEOUT: Duration = Duration::from_secs(180);

/// The Compose project, up; torn down (`down -v`) when dropped.
pub struct Stack {
    root: PathBuf,
    /// The vendored build context, when containers cannot download crates.
    context: Option<PathBuf>,
    pub log: PathBuf,
}

impl Stack {
    pub fn up(plan: &Plan, work: &Path, out: &OutDirs) -> Result<Self> {
        let root = binaries::workspace_root();
        let log = out.logs.join("compose.log");
        let context = prepare_images(&root, work, &log)?;
        let stack = Self { root, context, log };
        // A stack a killed run left behind goes first.
        stack.down();
        eprintln!(
            "xtask: docker compose -p {PROJECT} --profile nginx up -d --build --wait --scale app={} (a cold build takes minutes; log in {})",
            plan.replicas,
            stack.log.display()
        );
        let scale = format!("app={}", plan.replicas);
        stack.compose(
            &[
                "up",
                "-d",
                "--build",
                "--wait",
                "--quiet-pull",
                "--scale",
                &scale,
            ],
            UP_TIMEOUT,
        )?;
        stack.wait_ready(plan)?;
        Ok(stack)
    }

    /// `docker compose` with the project's files and profile.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = docker::docker(["compose", "--ansi", "never", "-p", PROJECT, "-f"]);
        cmd.arg(self.root.join("docker-compose.yml"));
        if let Some(context) = &self.context {
            cmd.arg("-f")
                .arg(self.root.join("tests/docker/compose.vendored.yml"));
            cmd.env("E2E_BUILD_CONTEXT", context);
        }
        cmd.arg("--project-directory").arg(&self.root);
        cmd.args(["--profile", "nginx"]).args(args);
        cmd
    }

    fn compose(&self, args: &[&str], limit: Duration) -> Result<String> {
        docker::run(self.command(args), limit, &self.log, OnInterrupt::Stop)
    }

    fn down(&self) {
        let cmd = self.command(&["down", "-v", "--remove-orphans"]);
        if let Err(err) = docker::run(cmd, CALL_TIMEOUT, &self.log, OnInterrupt::Finish) {
            eprintln!("xtask: warning: tearing the compose stack down: {err:#}");
        }
    }

    pub fn containers(&self) -> Result<Vec<Container>> {
        let ids: Vec<String> = self
            .compose(&["ps", "-q"], CALL_TIMEOUT)?
            .lines()
            .map(str::to_string)
            .collect();
        if ids.is_empty() {
            bail!("docker compose ps lists no containers");
        }
        docker::inspect(&ids, &self.log)
    }

    /// The balancer lists every replica as healthy and both doors serve both paths.
    fn wait_ready(&self, plan: &Plan) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while healthy_backends() != Some(plan.replicas) {
            if Instant::now() > deadline || docker::interrupted() {
                bail!(
                    "the balancer's /status did not list {} healthy backends within 60 s",
                    plan.replicas
                );
            }
            thread::sleep(Duration::from_millis(200));
        }
        for port in [BALANCER_PORT, NGINX_PORT] {
            for path in ["/count", plan.static_path.as_str()] {
                let reply = probe::http_get(loopback(port), path, Duration::from_secs(5))?;
                if reply.status != 200 || reply.body.is_empty() {
                    bail!("GET {path} on 127.0.0.1:{port} answered {} with {} body bytes instead of 200 with a body", reply.status, reply.body.len());
                }
            }
        }
        Ok(())
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        eprintln!("xtask: docker compose -p {PROJECT} down -v");
        self.down();
    }
}

/// `healthy_backends` from the balancer's admin `/status`.
fn healthy_backends() -> Option<usize> {
    let reply = probe::http_get(loopback(ADMIN_PORT), "/status", Duration::from_secs(2)).ok()?;
    let status: serde_json::Value = serde_json::from_slice(&reply.body).ok()?;
    status.get("healthy_backends")?.as_u64().map(|n| n as usize)
}

/// Stand-in base images and, where containers cannot download crates, a vendored build
/// context: `tests/docker/prepare.sh`, the end-to-end test's own preparation.
fn prepare_images(root: &Path, work: &Path, log: &Path) -> Result<Option<PathBuf>> {
    eprintln!("xtask: base images and build context (tests/docker/prepare.sh)");
    let mut cmd = Command::new("bash");
    cmd.arg(root.join("tests/docker/prepare.sh"))
        .arg(root)
        .arg(work);
    let out = docker::run(cmd, PREPARE_TIMEOUT, log, OnInterrupt::Stop)?;
    Ok(out
        .lines()
        .last()
        .filter(|l| !l.trim().is_empty())
        .map(PathBuf::from))
}
