//! The Compose bench loop over the running stack: for every path and concurrency a checked
//! warm-up, then the rounds A B A B against the published ports; around every oha run the Redis
//! counter (`redis-cli` in the redis container), every container's CPU and memory from its
//! cgroup, and the engine's own processes (dockerd, containerd, the shims, `docker-proxy`) from
//! `/proc`. The door's own container is what the door is charged.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::project::{Stack, BALANCER_PORT, NGINX_PORT};
use crate::bench::core::{self, OutDirs, Progress, RunId};
use crate::report::model::{ContainerUsage, Door, PathKind, Phase, Plan, RunRecord, Setting};
use crate::tools::cgroup::{Cgroup, Usage};
use crate::tools::docker::{self, Container, OnInterrupt};
use crate::tools::{oha, procstats};

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
pub struct Runner<'a> {
    stack: &'a Stack,
    pub plan: Plan,
    oha: PathBuf,
    raw: PathBuf,
    redis: String,
    /// Every container with its cgroup (none when this machine cannot see it).
    cgroups: Vec<(Container, Option<Cgroup>)>,
    /// The engine's own processes on this machine, by what they do (CPU only).
    engine: Vec<(String, Vec<u32>)>,
    progress: Progress,
    pub records: Vec<RunRecord>,
}

pub const DOORS: [Door; 2] = [Door::Balancer, Door::Nginx];

impl<'a> Runner<'a> {
    pub fn new(
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

    pub fn run_cells(&mut self) -> Result<()> {
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
        let warmup = self.plan.warmup();
        for door in DOORS {
            core::warmup_ok(&self.measure(id(door, 0), warmup)?)?;
        }
        for round in 1..=self.plan.rounds {
            for door in DOORS {
                let duration = self.plan.duration();
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
        let stem = core::raw_stem(&self.raw, "compose", &id);
        let result = oha::run(&self.oha, &url, id.concurrency, duration, &stem)?;
        let counter_after = self.counter()?;
        let after = self.usage(&reset);
        let engine_after = self.engine_cpu();
        let mut record = core::record(id, url_path, &result, counter_after - counter_before);
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
        record.cpu_seconds_per_10k = cpu.and_then(|c| core::per_10k(c, responses));
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
