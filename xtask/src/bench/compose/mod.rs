//! `cargo xtask bench --compose`: the Compose stack as users load-test it. The stack comes up
//! with `docker compose --profile nginx up -d --build --wait` (docker-compose.yml unchanged; the
//! stand-in base images and vendored crates of `tests/docker/prepare.sh` where no registry
//! answers), oha runs against the published ports 5000 (balancer) and 5002 (NGINX), A B A B,
//! for both paths and the loopback bench's concurrencies, and the stack is torn down
//! (`down -v`) on every way out, errors and Ctrl-C included.
//!
//! Every run is checked like the loopback bench's (no errors, the Redis counter — read with
//! `redis-cli` in the redis container — rose by exactly the 200s to `/count`), and every
//! container's CPU and memory come from its cgroup ([`crate::cgroup`]). The project name
//! `vc-bench` never collides with the end-to-end test's `vc-e2e-*`; the images it builds stay,
//! so the next run's build is warm.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::bench::{self, BenchArgs, OutDirs, Progress, RunId};
use crate::binaries;
use crate::cgroup::{Cgroup, Usage};
use crate::docker::{self, Container, OnInterrupt};
use crate::model::{
    ContainerUsage, Door, PathKind, Phase, Plan, Report, RunRecord, Setting, StackKind,
};
use crate::{oha, probe, procstats, report};

/// The Compose project: distinct from the end-to-end test's `vc-e2e-<pid>-<n>`.
const PROJECT: &str = "vc-bench";
/// The ports docker-compose.yml publishes: balancer, NGINX, balancer admin.
const BALANCER_PORT: u16 = 5000;
const NGINX_PORT: u16 = 5002;
const ADMIN_PORT: u16 = 9000;
/// Stand-ins, vendoring and a cold release build of both images on a small machine.
const PREPARE_TIMEOUT: Duration = Duration::from_secs(20 * 60);
const UP_TIMEOUT: Duration = Duration::from_secs(40 * 60);
const CALL_TIMEOUT: Duration = Duration::from_secs(180);

/// The Compose plan: the loopback plan's rounds, durations, paths and concurrencies, with
/// the two published doors, the stack's own worker settings and no replica sweep.
fn plan(args: &BenchArgs) -> Result<Plan> {
    if args.replica_sweep.is_some() {
        return Err(
            crate::ConfigError("--replica-sweep is not available with --compose".into()).into(),
        );
    }
    let mut plan = bench::plan(args)?;
    plan.fixed_rate = None;
    plan.stack = StackKind::Compose {
        project: PROJECT.into(),
    };
    plan.replica_sweep = Vec::new();
    plan.balancer_request_log = None;
    Ok(plan)
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Runs the Compose bench; `Ok(false)` when a run failed its check (report still written).
pub fn run(args: &BenchArgs) -> Result<bool> {
    let plan = plan(args)?;
    let out = OutDirs::prepare(args, "bench-compose")?;
    let log = out.logs.join("docker.log");
    if !docker::engine_answers(&log) {
        if plan.quick {
            println!("SKIP: cargo xtask bench --compose --quick: no Docker engine answers (docker info failed)");
            return Ok(true);
        }
        bail!(
            "no Docker engine answers (docker info failed; see {})",
            log.display()
        );
    }
    let oha = binaries::oha()?;
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
    bench::finish(&report, args, &out, started)
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

/// The Compose project, up; torn down (`down -v`) when dropped.
struct Stack {
    root: PathBuf,
    /// The vendored build context, when containers cannot download crates.
    context: Option<PathBuf>,
    log: PathBuf,
}

impl Stack {
    fn up(plan: &Plan, work: &Path, out: &OutDirs) -> Result<Self> {
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

    fn containers(&self) -> Result<Vec<Container>> {
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

/// The engine's processes on this machine that work for the doors: dockerd (which writes
/// the containers' logs), containerd and the shims (which copy their output), and the
/// `docker-proxy` of each published port (loopback traffic to a published port goes through
/// it). Empty where the engine runs elsewhere.
fn engine_processes() -> Vec<(String, Vec<u32>)> {
    let engine: Vec<u32> =
        procstats::processes_named(&["dockerd", "containerd", "containerd-shim"])
            .into_iter()
            .map(|(pid, ..)| pid)
            .collect();
    let proxies = procstats::processes_named(&["docker-proxy"]);
    let proxy_of = |port: u16| -> Vec<u32> {
        let flag = format!("-host-port {port} ");
        proxies
            .iter()
            .filter(|(_, _, cmdline)| format!("{cmdline} ").contains(&flag))
            .map(|(pid, ..)| *pid)
            .collect()
    };
    let mut groups = vec![("engine".to_string(), engine)];
    groups.push((
        format!("docker-proxy :{BALANCER_PORT}"),
        proxy_of(BALANCER_PORT),
    ));
    groups.push((format!("docker-proxy :{NGINX_PORT}"), proxy_of(NGINX_PORT)));
    groups.retain(|(_, pids)| !pids.is_empty());
    groups
}

/// The bench loop over the running stack.
struct Runner<'a> {
    stack: &'a Stack,
    plan: Plan,
    oha: PathBuf,
    raw: PathBuf,
    redis: String,
    /// Every container with its cgroup (none when this machine cannot see it).
    cgroups: Vec<(Container, Option<Cgroup>)>,
    /// The engine's own processes on this machine, by what they do (CPU only).
    engine: Vec<(String, Vec<u32>)>,
    progress: Progress,
    records: Vec<RunRecord>,
}

const DOORS: [Door; 2] = [Door::Balancer, Door::Nginx];

impl<'a> Runner<'a> {
    fn new(
        stack: &'a Stack,
        plan: Plan,
        oha: &Path,
        out: &OutDirs,
        containers: &[Container],
    ) -> Result<Self> {
        let redis = containers
            .iter()
            .find(|c| c.service == "redis")
            .context("no redis container in the stack")?
            .id
            .clone();
        let cgroups: Vec<_> = containers
            .iter()
            .map(|c| {
                (
                    c.clone(),
                    (c.pid > 0).then(|| Cgroup::of_pid(c.pid)).flatten(),
                )
            })
            .collect();
        let total = 2 * plan.concurrency.len() * DOORS.len() * plan.rounds;
        eprintln!(
            "xtask: {total} runs of {} ms each ({} round(s), A B alternation) against 127.0.0.1:{BALANCER_PORT} and :{NGINX_PORT}; cgroups found for {}/{} containers",
            plan.duration_ms,
            plan.rounds,
            cgroups.iter().filter(|(_, g)| g.is_some()).count(),
            cgroups.len()
        );
        Ok(Self {
            stack,
            progress: Progress {
                done: 0,
                total,
                rounds: plan.rounds,
            },
            plan,
            oha: oha.to_path_buf(),
            raw: out.raw.clone(),
            redis,
            cgroups,
            engine: engine_processes(),
            records: Vec::new(),
        })
    }

    fn run_cells(&mut self) -> Result<()> {
        for path in [PathKind::Count, PathKind::Static] {
            for concurrency in self.plan.concurrency.clone() {
                self.run_cell(path, concurrency)?;
            }
        }
        Ok(())
    }

    /// A checked warm-up of both doors, then the rounds, A B A B.
    fn run_cell(&mut self, path: PathKind, concurrency: usize) -> Result<()> {
        let replicas = self.plan.replicas;
        let id = |door, round| RunId {
            phase: Phase::Matrix,
            setting: Some(Setting::AllCores),
            replicas,
            door,
            path,
            concurrency,
            round,
            rate: None,
        };
        let warmup = Duration::from_millis(self.plan.warmup_ms as u64);
        for door in DOORS {
            bench::warmup_ok(&self.measure(id(door, 0), warmup)?)?;
        }
        for round in 1..=self.plan.rounds {
            for door in DOORS {
                let duration = Duration::from_millis(self.plan.duration_ms as u64);
                let record = self.measure(id(door, round), duration)?;
                self.progress.report(&record);
                self.records.push(record);
            }
        }
        Ok(())
    }

    fn measure(&mut self, id: RunId, duration: Duration) -> Result<RunRecord> {
        if docker::interrupted() {
            bail!("interrupted");
        }
        let port = match id.door {
            Door::Nginx => NGINX_PORT,
            _ => BALANCER_PORT,
        };
        let url_path = self.plan.url_path(id.path).to_string();
        let url = format!("http://127.0.0.1:{port}{url_path}");
        let reset: Vec<bool> = self
            .cgroups
            .iter()
            .map(|(_, g)| g.as_ref().is_some_and(Cgroup::reset_peak))
            .collect();
        let before = self.usage(&reset);
        let engine_before = self.engine_cpu();
        let counter_before = self.counter()?;
        let stem = bench::raw_stem(&self.raw, "compose", &id);
        let result = oha::run(&self.oha, &url, id.concurrency, duration, &stem)?;
        let counter_after = self.counter()?;
        let after = self.usage(&reset);
        let engine_after = self.engine_cpu();
        let mut record = bench::record(id, url_path, &result, counter_after - counter_before);
        record.containers = self.container_usage(&before, &after);
        record
            .containers
            .extend(self.engine_usage(&engine_before, &engine_after));
        self.charge_door(&mut record, &reset);
        Ok(record)
    }

    fn usage(&self, reset: &[bool]) -> Vec<Option<Usage>> {
        self.cgroups
            .iter()
            .zip(reset)
            .map(|((_, g), &reset)| g.as_ref().map(|g| g.read(reset)))
            .collect()
    }

    fn container_usage(
        &self,
        before: &[Option<Usage>],
        after: &[Option<Usage>],
    ) -> Vec<ContainerUsage> {
        self.cgroups
            .iter()
            .zip(before.iter().zip(after))
            .map(|((c, _), (b, a))| ContainerUsage {
                service: c.service.clone(),
                container: c.name.clone(),
                cpu_seconds: b
                    .and_then(|b| b.cpu_seconds)
                    .zip(a.and_then(|a| a.cpu_seconds))
                    .map(|(b, a)| (a - b).max(0.0)),
                memory_kib: a.and_then(|a| a.memory_kib),
            })
            .collect()
    }

    fn engine_cpu(&self) -> Vec<Option<f64>> {
        self.engine
            .iter()
            .map(|(_, pids)| {
                pids.iter()
                    .map(|&pid| procstats::cpu_seconds(pid).ok())
                    .sum()
            })
            .collect()
    }

    fn engine_usage(&self, before: &[Option<f64>], after: &[Option<f64>]) -> Vec<ContainerUsage> {
        self.engine
            .iter()
            .zip(before.iter().zip(after))
            .map(|((label, _), (b, a))| ContainerUsage {
                service: label.clone(),
                container: "host processes".into(),
                cpu_seconds: b.zip(*a).map(|(b, a)| (a - b).max(0.0)),
                memory_kib: None,
            })
            .collect()
    }

    /// The door's own container is what the door costs.
    fn charge_door(&self, record: &mut RunRecord, reset: &[bool]) {
        let service = match record.door {
            Door::Nginx => "nginx",
            _ => "balancer",
        };
        let Some(index) = record.containers.iter().position(|c| c.service == service) else {
            return;
        };
        let own = &record.containers[index];
        let responses = record.ok_responses + record.non_200;
        let (cpu, memory) = (own.cpu_seconds, own.memory_kib);
        record.proxy_cpu_seconds = cpu;
        record.cpu_seconds_per_10k = cpu.and_then(|c| bench::per_10k(c, responses));
        record.peak_rss_kib = memory;
        record.peak_rss_max_process_kib = memory;
        record.processes = 1;
        record.rss_peak_is_per_run = reset[index];
    }

    /// The Redis counter, read in the redis container (a missing key is 0).
    fn counter(&self) -> Result<i64> {
        let cmd = docker::docker([
            "exec",
            &self.redis,
            "redis-cli",
            "GET",
            &self.plan.counter_key,
        ]);
        let out = docker::run(
            cmd,
            Duration::from_secs(30),
            &self.stack.log,
            OnInterrupt::Stop,
        )?;
        let text = out.trim();
        if text.is_empty() {
            return Ok(0);
        }
        text.parse()
            .with_context(|| format!("redis-cli GET {} answered {text:?}", self.plan.counter_key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_of(argv: &[&str]) -> Result<Plan> {
        let mut all = vec!["bench", "--compose"];
        all.extend(argv);
        plan(&bench::parse_args(&all).unwrap())
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
