//! `cargo xtask bench --compose`: the Compose stack as users load-test it. The stack comes up
//! with `docker compose --profile nginx up -d --build --wait` (docker-compose.yml unchanged; the
//! stand-in base images and vendored crates of `tests/docker/prepare.sh` where no registry
//! answers), oha runs against the published ports 5000 (balancer) and 5002 (NGINX), A B A B,
//! for both paths and the loopback bench's concurrencies, and the stack is torn down
//! (`down -v`) on every way out, errors and Ctrl-C included.
//!
//! Every run is checked like the loopback bench's (no errors, the Redis counter — read with
//! `redis-cli` in the redis container — rose by exactly the 200s to `/count`), and every
//! container's CPU and memory come from its cgroup ([`crate::tools::cgroup`]). [`project`] owns
//! the Compose project (up, down, its containers), [`runner`] the measured loop; this file the
//! plan, the pre-flight checks and the report's Compose-only parts (restarts, log volume).
//!
//! It may use the bench's shared modules (`plan`, `core`), [`crate::report`], the stack's probe
//! and binaries' paths, and [`crate::tools`] (docker, cgroup, procstats, oha); no other runner.

mod project;
mod runner;

use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::core::{self, OutDirs};
use super::{plan, BenchArgs};
use crate::config_error::config_error;
use crate::report;
use crate::report::model::{Plan, Report, StackKind};
use crate::stack::loopback;
use crate::tools::docker::{self, Container, OnInterrupt};
use crate::tools::locate;
use project::{Stack, ADMIN_PORT, BALANCER_PORT, NGINX_PORT, PROJECT};
use runner::Runner;

/// The Compose plan: the loopback plan's rounds, durations, paths and concurrencies, with
/// the two published doors, the stack's own worker settings and no replica sweep.
fn compose_plan(args: &BenchArgs) -> Result<Plan> {
    if args.replica_sweep.is_some() {
        return Err(config_error(
            "--replica-sweep is not available with --compose",
        ));
    }
    let mut plan = plan::plan(args)?;
    plan.fixed_rate = None;
    plan.stack = StackKind::Compose {
        project: PROJECT.into(),
    };
    plan.replica_sweep = Vec::new();
    plan.balancer_request_log = None;
    Ok(plan)
}

/// Runs the Compose bench; `Ok(false)` when a run failed its check (report still written).
pub fn run(args: &BenchArgs) -> Result<bool> {
    let plan = compose_plan(args)?;
    let out = OutDirs::prepare(args, "bench-compose")?;
    let log = out.logs.join("docker.log");
    if !docker::engine_answers(&log) {
        // A skip is a failure unless allowed: CI sets REQUIRE_DOCKER=1, so a machine whose
        // engine is down cannot pass this stage.
        if plan.quick && std::env::var_os("REQUIRE_DOCKER").is_none_or(|v| v != "1") {
            println!("SKIP: cargo xtask bench --compose --quick: no Docker engine answers (docker info failed; REQUIRE_DOCKER=1 makes this an error)");
            return Ok(true);
        }
        bail!(
            "no Docker engine answers (docker info failed; see {})",
            log.display()
        );
    }
    let oha = locate::oha()?;
    preflight(&log)?;
    ctrlc::set_handler(|| docker::INTERRUPTED.store(true, Ordering::Relaxed))
        .context("installing the Ctrl-C handler")?;
    let work = tempfile::Builder::new()
        .prefix("xtask-bench-compose-")
        .tempdir()
        .context("creating a temporary directory")?;
    let up_started = Instant::now();
    // Declared after `work`: torn down before the build context is removed.
    let stack = Stack::up(&plan, work.path(), &out)?;
    eprintln!(
        "xtask: compose stack up in {:.0} s (build included)",
        up_started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let report = bench_stack(&stack, plan, &oha, &out, started)?;
    drop(stack);
    core::finish(&report, args, &out, started)
}

/// Docker Compose v2 is there and the published ports are free.
fn preflight(log: &Path) -> Result<()> {
    docker::run(
        docker::docker(["compose", "version"]),
        Duration::from_secs(20),
        log,
        OnInterrupt::Stop,
    )
    .context("`docker compose` (the Compose v2 plugin) is needed for --compose")?;
    for port in [BALANCER_PORT, NGINX_PORT, ADMIN_PORT] {
        if TcpStream::connect_timeout(&loopback(port), Duration::from_secs(1)).is_ok() {
            bail!("127.0.0.1:{port} is already in use; docker-compose.yml publishes it (is another stack up?)");
        }
    }
    Ok(())
}

/// The measured part: containers found, doors checked, the cells run, the stack checked again.
fn bench_stack(
    stack: &Stack,
    plan: Plan,
    oha: &Path,
    out: &OutDirs,
    started: Instant,
) -> Result<Report> {
    let containers = stack.containers()?;
    let logs_before = log_lines(&containers, &stack.log)?;
    let machine = report::describe_machine(
        oha,
        image_of(&containers, "nginx"),
        image_of(&containers, "redis"),
    );
    let mut runner = Runner::new(stack, plan, oha, out, &containers)?;
    runner.run_cells()?;
    let after = stack.containers()?;
    let logs_after = log_lines(&after, &stack.log)?;
    let mut report = report::build(
        runner.plan.clone(),
        machine,
        std::mem::take(&mut runner.records),
        started.elapsed(),
    );
    report.failures.extend(restarts(&containers, &after));
    report
        .notes
        .extend(log_notes(&after, &logs_before, &logs_after));
    Ok(report)
}

fn image_of(containers: &[Container], service: &str) -> String {
    containers
        .iter()
        .find(|c| c.service == service)
        .map_or_else(|| "unknown".into(), |c| format!("{} (container)", c.image))
}

/// Containers that were replaced or restarted during the bench.
fn restarts(before: &[Container], after: &[Container]) -> Vec<String> {
    let mut problems = Vec::new();
    for b in before {
        match after.iter().find(|a| a.id == b.id) {
            None => problems.push(format!(
                "container {} was replaced during the bench",
                b.name
            )),
            Some(a) if a.restarts != b.restarts => problems.push(format!(
                "container {} restarted {} time(s) during the bench",
                a.name,
                a.restarts - b.restarts
            )),
            Some(_) => {}
        }
    }
    problems
}

type LogVolume = Vec<(String, u64, u64)>;

fn log_lines(containers: &[Container], log: &Path) -> Result<LogVolume> {
    containers
        .iter()
        .filter(|c| c.service == "balancer" || c.service == "nginx")
        .map(|c| {
            let (lines, bytes) = docker::log_volume(c, log)?;
            Ok((c.service.clone(), lines, bytes))
        })
        .collect()
}

fn log_notes(containers: &[Container], before: &LogVolume, after: &LogVolume) -> Vec<String> {
    let (driver, opts) = containers
        .iter()
        .find(|c| c.service == "balancer")
        .map_or(("unknown", "{}"), |c| {
            (c.log_driver.as_str(), c.log_opts.as_str())
        });
    after
        .iter()
        .map(|(service, lines, bytes)| {
            let (lines0, bytes0) = before
                .iter()
                .find(|(s, ..)| s == service)
                .map_or((0, 0), |(_, l, b)| (*l, *b));
            format!(
                "Log volume: {service} logged {} lines ({:.1} MB of text, as `docker logs` returns it) during the bench, through Docker's `{driver}` driver with options {opts} (a rotating driver may have dropped older lines, so these are lower bounds).",
                lines.saturating_sub(lines0),
                bytes.saturating_sub(bytes0) as f64 / 1e6
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use runner::DOORS;

    fn plan_of(argv: &[&str]) -> Result<Plan> {
        let mut all = vec!["bench", "--compose"];
        all.extend(argv);
        compose_plan(&crate::bench::parse_args(&all).unwrap())
    }

    #[test]
    fn quick_compose_plan_is_short_and_has_no_sweep() {
        let plan = plan_of(&["--quick"]).unwrap();
        assert!(plan.replica_sweep.is_empty());
        assert_eq!(plan.balancer_request_log, None);
        assert_eq!(plan.command(), "cargo xtask bench --compose --quick");
        let runs = 2 * plan.concurrency.len() * DOORS.len() * (plan.rounds + 1);
        let load = runs as f64 * plan.duration_ms as f64 / 1000.0;
        assert!(load < 30.0, "{runs} runs, {load} s of load");
    }

    #[test]
    fn full_compose_plan_uses_the_loopback_concurrencies() {
        let plan = plan_of(&[]).unwrap();
        assert_eq!(plan.concurrency, vec![16, 64, 256]);
        assert_eq!(plan.rounds, 3);
        assert!(plan_of(&["--replica-sweep", "1,2"]).is_err());
    }

    fn container(id: &str, restarts: u64) -> Container {
        Container {
            id: id.into(),
            service: "app".into(),
            name: format!("vc-bench-app-{id}"),
            pid: 1,
            restarts,
            image: "vc-bench-app".into(),
            log_driver: "json-file".into(),
            log_opts: "{}".into(),
        }
    }

    #[test]
    fn replaced_and_restarted_containers_are_failures() {
        let before = [container("a", 0), container("b", 0), container("c", 1)];
        let after = [container("a", 0), container("c", 2)];
        let problems = restarts(&before, &after);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("replaced"));
        assert!(problems[1].contains("restarted 1"));
    }
}
