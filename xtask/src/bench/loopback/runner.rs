//! The loopback runner itself: Redis and the replicas every group shares, fresh proxies for every
//! cell, a checked warm-up, then the rounds A B A B, and for every run the counter, the door's CPU
//! and peak RSS read around oha (see the folder's doc for the protocol).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::groups::{groups, Group};
use crate::bench::core::{self, OutDirs, Progress, RunId};
use crate::report;
use crate::report::model::{Door, PathKind, Phase, Plan, RunRecord, Setting};
use crate::stack::binaries::Binaries;
use crate::stack::nginx::Nginx;
use crate::stack::{self, probe, Balancer, Redis, Replica, RequestLog};
use crate::tools::oha::{self, Load};
use crate::tools::procstats::{self, GroupSample};

/// Everything that lives for the whole bench. Field order is drop order: replicas, then Redis.
pub struct Bench {
    pub plan: Plan,
    oha: PathBuf,
    nginx_bin: PathBuf,
    bins: Binaries,
    work_dir: PathBuf,
    pub out: OutDirs,
    replicas: Vec<Replica>,
    redis: Redis,
    progress: Progress,
    pub records: Vec<RunRecord>,
}

/// The front doors of one group: the balancer, NGINX, and the balancer variants of the traffic
/// cells when the group has them.
struct Doors {
    balancer: Balancer,
    nginx: Nginx,
    variants: Vec<(Door, Balancer)>,
}

impl Doors {
    fn variant(&self, door: Door) -> Option<&Balancer> {
        self.variants
            .iter()
            .find(|(d, _)| *d == door)
            .map(|(_, b)| b)
    }
}

impl Bench {
    /// Redis and the replicas every group shares, checked on both paths.
    pub fn start(
        plan: Plan,
        oha: PathBuf,
        nginx_bin: PathBuf,
        redis_bin: &Path,
        bins: Binaries,
        work_dir: &Path,
        out: OutDirs,
    ) -> Result<Self> {
        let redis = Redis::start(
            redis_bin,
            stack::free_port()?,
            &work_dir.join("redis"),
            &out.logs,
        )?;
        let needed = plan
            .replica_sweep
            .iter()
            .copied()
            .chain([plan.replicas])
            .max()
            .unwrap_or(plan.replicas);
        eprintln!("xtask: starting redis-server and {needed} app replicas");
        let replicas =
            stack::start_replicas(&bins.app, &redis, needed, &plan.counter_key, &out.logs)?;
        check_paths(replicas[0].addr, &plan.static_path)?;
        let groups = groups(&plan);
        let total = groups.iter().map(|g| g.runs(plan.rounds)).sum();
        eprintln!(
            "xtask: {total} runs of {:?} each ({} round(s), A B alternation); oha and the proxies share this machine's {} core(s)",
            plan.duration(),
            plan.rounds,
            plan.cores
        );
        Ok(Self {
            progress: Progress {
                done: 0,
                total,
                rounds: plan.rounds,
            },
            plan,
            oha,
            nginx_bin,
            bins,
            work_dir: work_dir.to_path_buf(),
            out,
            replicas,
            redis,
            records: Vec::new(),
        })
    }

    fn addr_of(&self, doors: &Doors, door: Door) -> SocketAddr {
        match door {
            Door::Balancer => doors.balancer.addr,
            Door::Nginx => doors.nginx.addr,
            Door::Direct => self.replicas[0].addr,
            variant => doors
                .variant(variant)
                .map_or(doors.balancer.addr, |b| b.addr),
        }
    }

    /// The processes a door's CPU and RSS are charged to; none for the direct door.
    fn pids_of(doors: &Doors, door: Door) -> Vec<u32> {
        match door {
            Door::Balancer => vec![doors.balancer.process.pid()],
            Door::Nginx => doors.nginx.pids(),
            Door::Direct => Vec::new(),
            variant => doors
                .variant(variant)
                .map(|b| vec![b.process.pid()])
                .unwrap_or_default(),
        }
    }

    fn ensure_all_running(&mut self, doors: &mut Doors) -> Result<()> {
        self.redis.process.ensure_running()?;
        for replica in &mut self.replicas {
            replica.process.ensure_running()?;
        }
        doors.balancer.process.ensure_running()?;
        for (_, variant) in &mut doors.variants {
            variant.process.ensure_running()?;
        }
        doors.nginx.process.ensure_running()
    }

    /// Starts a fresh balancer and NGINX for `group` (fresh, so one cell's peak RSS and pools do
    /// not carry over into the next).
    fn start_doors(&self, group: &Group, cell: &str) -> Result<Doors> {
        let upstreams: Vec<SocketAddr> = self.replicas[..group.replicas]
            .iter()
            .map(|r| r.addr)
            .collect();
        let (balancer_workers, nginx_workers) = self.workers(group.setting);
        let slug = format!("{}-{cell}", group.slug());
        let start_balancer = |door: Door| {
            let name = door.label().replace(' ', "-");
            Balancer::start(
                &self.bins.balancer,
                (stack::free_port()?, stack::free_port()?),
                &upstreams,
                Some(balancer_workers),
                self.plan.balancer_request_log.unwrap_or(RequestLog::Off),
                &self.out.logs.join(format!("{name}-{slug}.log")),
                door.balancer_args(),
            )
        };
        let balancer = start_balancer(Door::Balancer)?;
        let mut variants = Vec::new();
        for &door in &group.doors {
            if !door.balancer_args().is_empty() {
                variants.push((door, start_balancer(door)?));
            }
        }
        let nginx = Nginx::start(
            &self.nginx_bin,
            &self.work_dir.join(format!("nginx-{slug}")),
            &upstreams,
            SocketAddr::from(([127, 0, 0, 1], stack::free_port()?)),
            nginx_workers,
        )?;
        Ok(Doors {
            balancer,
            nginx,
            variants,
        })
    }

    /// The fixed-rate phase's requests/s on `path`: the configured fraction of NGINX's best
    /// one-worker median in the matrix, so both doors run below their saturation points.
    fn fixed_rate(&self, path: PathKind) -> Result<u32> {
        let fraction = self
            .plan
            .fixed_rate
            .map_or(0.5, |f| f.fraction_of_nginx_max);
        let mut best = 0.0_f64;
        for &concurrency in &self.plan.concurrency {
            let mut rates: Vec<f64> = self
                .records
                .iter()
                .filter(|r| {
                    (r.phase, r.setting, r.door, r.path)
                        == (Phase::Matrix, Some(Setting::OneWorker), Door::Nginx, path)
                })
                .filter(|r| r.concurrency == concurrency)
                .map(|r| r.requests_per_sec)
                .collect();
            best = best.max(report::median(&mut rates).unwrap_or(0.0));
        }
        if best < 1.0 {
            bail!("no one-worker NGINX run on {path:?} to derive the fixed rate from");
        }
        Ok(((best * fraction).round() as u32).max(1))
    }

    fn workers(&self, setting: Setting) -> (usize, Option<usize>) {
        match setting {
            Setting::OneWorker => (1, Some(1)),
            Setting::AllCores => (self.plan.cores, None),
        }
    }

    pub fn run_group(&mut self, group: &Group) -> Result<()> {
        let (balancer_workers, nginx_workers) = self.workers(group.setting);
        eprintln!(
            "xtask: {} with {} replica(s): balancer --workers {balancer_workers}, nginx worker_processes {} (both restarted for every cell)",
            group.setting.label(),
            group.replicas,
            nginx_workers.map_or("auto".to_string(), |n| n.to_string()),
        );
        for &path in &group.paths {
            for &concurrency in &group.concurrency {
                let mut doors = self.start_doors(group, &format!("{path:?}-c{concurrency}"))?;
                self.run_cell(&mut doors, group, path, concurrency)?;
                // This cell's proxies stop here (drop), before the next cell starts its own.
            }
        }
        Ok(())
    }

    /// A checked warm-up of every door, then the rounds, A B A B.
    fn run_cell(
        &mut self,
        doors: &mut Doors,
        group: &Group,
        path: PathKind,
        concurrency: usize,
    ) -> Result<()> {
        let rate = match group.phase {
            Phase::FixedRate => Some(self.fixed_rate(path)?),
            _ => None,
        };
        let id = |door: Door, round: usize| RunId {
            phase: group.phase,
            setting: (door != Door::Direct).then_some(group.setting),
            replicas: if door == Door::Direct {
                1
            } else {
                group.replicas
            },
            door,
            path,
            concurrency,
            round,
            rate,
        };
        // Warm-up at this cell's load: fills the keep-alive pools; checked, not recorded.
        let warmup = self.plan.warmup();
        for &door in &group.doors {
            let record = self.measure(doors, &group.slug(), id(door, 0), warmup)?;
            core::warmup_ok(&record)?;
        }
        for round in 1..=self.plan.rounds {
            for &door in &group.doors {
                let duration = self.plan.duration();
                let record = self.measure(doors, &group.slug(), id(door, round), duration)?;
                self.progress.report(&record);
                self.records.push(record);
            }
        }
        Ok(())
    }

    /// One oha run against `id.door`, with the counter and the door's CPU and RSS around it.
    fn measure(
        &mut self,
        doors: &mut Doors,
        slug: &str,
        id: RunId,
        duration: Duration,
    ) -> Result<RunRecord> {
        self.ensure_all_running(doors)?;
        let addr = self.addr_of(doors, id.door);
        let url_path = self.plan.url_path(id.path).to_string();
        let url = format!("http://{addr}{url_path}");
        let pids = Self::pids_of(doors, id.door);
        let rss_reset = pids.iter().all(|&pid| procstats::reset_peak_rss(pid));
        let before = sample_pids(&pids)?;
        let counter_before = self.redis.counter(&self.plan.counter_key)?;

        let stem = core::raw_stem(&self.out.raw, slug, &id);
        let load = match id.rate {
            Some(per_second) => Load::Rate {
                per_second,
                duration,
            },
            None => Load::For(duration),
        };
        let result = oha::run_load(&self.oha, &url, id.concurrency, load, &stem, &[])?;
        let replica_ports: Vec<u16> = self.replicas.iter().map(|r| r.addr.port()).collect();
        let upstream_connections = procstats::upstream_connections(&pids, &replica_ports);

        let counter_after = self.redis.counter(&self.plan.counter_key)?;
        let after = sample_pids(&pids)?;
        self.ensure_all_running(doors)?;

        let mut record = core::record(id, url_path, &result, counter_after - counter_before);
        let cpu = before
            .zip(after)
            .map(|(b, a)| (a.cpu_seconds - b.cpu_seconds).max(0.0));
        let responses = record.ok_responses + record.non_200;
        record.proxy_cpu_seconds = cpu;
        record.cpu_seconds_per_10k = cpu.and_then(|c| core::per_10k(c, responses));
        record.user_cpu_seconds_per_10k = before.zip(after).and_then(|(b, a)| {
            core::per_10k((a.user_seconds - b.user_seconds).max(0.0), responses)
        });
        record.peak_rss_kib = after.map(|a| a.peak_rss_sum_kib);
        record.peak_rss_max_process_kib = after.map(|a| a.peak_rss_max_kib);
        record.processes = pids.len();
        record.rss_peak_is_per_run = rss_reset;
        record.upstream_connections = upstream_connections;
        Ok(record)
    }
}

/// `/proc` figures of a door's processes; `None` for a door with none (the direct replica).
fn sample_pids(pids: &[u32]) -> Result<Option<GroupSample>> {
    if pids.is_empty() {
        return Ok(None);
    }
    procstats::sample(pids)
        .map(Some)
        .context("reading the proxy's /proc stats")
}

/// The replicas answer 200 with a body on both measured paths.
fn check_paths(replica: SocketAddr, static_path: &str) -> Result<()> {
    for path in ["/count", static_path] {
        let reply = probe::http_get(replica, path, Duration::from_secs(5))?;
        if reply.status != 200 || reply.body.is_empty() {
            bail!(
                "GET {path} on a replica answered {} with {} body bytes instead of 200 with a body (for the static asset, pass --static-path)",
                reply.status,
                reply.body.len()
            );
        }
    }
    Ok(())
}
