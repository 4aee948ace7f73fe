//! `cargo xtask bench`: the balancer measured against NGINX and a direct hit on one replica, in
//! one run, on one machine, with `oha`.
//!
//! It owns the loopback plan (which front doors, paths, worker settings, concurrencies and
//! replica counts, in which order) and the per-run protocol: check every process is alive, read
//! the counter, reset the proxy's peak-RSS mark and read its CPU time, run oha, read them all
//! again, and check that the counter rose by exactly the number of successful `/count`
//! responses. The two proxies alternate A B A B within every cell so drift on a noisy machine
//! hits both alike. The flags, the run check and the outputs are shared with `--compose`
//! (`compose.rs`).

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use shared::duration::parse_nonzero_duration;

use crate::binaries::{self, Binaries, BinaryArgs};
use crate::model::{
    Door, FixedRatePlan, PathKind, Phase, Plan, Report, RunRecord, Setting, StackKind,
};
use crate::nginx::Nginx;
use crate::oha::{self, Load, OhaResult};
use crate::procstats::{self, GroupSample};
use crate::stack::{self, Balancer, Redis, Replica, RequestLog};
use crate::{chart, report};

/// Flags of `cargo xtask bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// CI mode, under a minute: one round, 1 s runs, concurrency 16 and 256, replicas 1 and 2.
    /// Fails only on errors or a counter mismatch, never on speed.
    #[arg(long)]
    pub quick: bool,
    /// Measure the Compose stack instead, through its published ports 5000 (balancer) and 5002
    /// (NGINX): `docker compose --profile nginx up -d --build --wait`, the bench, `down -v`.
    /// With --quick, prints SKIP and succeeds when no Docker engine answers.
    #[arg(long)]
    pub compose: bool,
    /// Count user-space instructions per proxied request instead (valgrind's callgrind): the
    /// balancer (`--workers 1`) and NGINX (one process) in front of one replica, 3 runs of 10,000
    /// requests on both paths (quick: 1 run of 2,000, static path); writes instructions.{md,json}.
    #[arg(long, conflicts_with = "compose")]
    pub instructions: bool,
    /// Measure HTTPS instead: the balancer's --tls-listen against NGINX's `ssl` listener, one
    /// worker each, same certificate (`tls_bench.rs`; report in <target>/bench-tls). With
    /// --instructions: instructions per HTTPS request and per full handshake
    /// (<target>/bench-instructions-tls).
    #[arg(long, conflicts_with = "compose")]
    pub tls: bool,
    /// Rounds per cell (each round runs every front door once, A B A B). Default 3, quick 1.
    #[arg(long)]
    pub rounds: Option<usize>,
    /// Load duration of one oha run, e.g. `4s`, `1500ms` (a unit is required). Default 4s,
    /// quick 1s.
    #[arg(long, value_parser = parse_nonzero_duration)]
    pub duration: Option<Duration>,
    /// Concurrency sweep (oha connections). Default 16,64,256; quick 16,256.
    #[arg(long, value_delimiter = ',')]
    pub concurrency: Option<Vec<usize>>,
    /// Replicas behind the proxies in the main matrix (with --compose: `--scale app=N`).
    #[arg(long, default_value_t = 3)]
    pub replicas: usize,
    /// Replica sweep (on /count, all cores). Default 1,2,3,4; quick 1,2. Not with --compose.
    #[arg(long, value_delimiter = ',')]
    pub replica_sweep: Option<Vec<usize>>,
    /// Concurrency used in the replica sweep.
    #[arg(long, default_value_t = 64)]
    pub sweep_concurrency: usize,
    /// Fixed-rate phase: both doors (one worker) at this fraction of NGINX's measured maximum on
    /// the same path, for CPU per request and latency at equal load. 0 skips the phase.
    #[arg(long, default_value_t = 0.5)]
    pub fixed_rate_fraction: f64,
    /// The app's static asset measured as the cheap path.
    #[arg(long, default_value = "/static/style.css")]
    pub static_path: String,
    /// Redis key of the counter (passed to the replicas as COUNTER_KEY; with --compose, the
    /// key docker-compose.yml's app uses).
    #[arg(long, default_value = "visits")]
    pub counter_key: String,
    /// Balancer per-request logging. `off` matches the project's nginx.conf (`access_log off`).
    /// Not with --compose, where docker-compose.yml decides.
    #[arg(long, value_enum, default_value = "off")]
    pub balancer_request_log: RequestLog,
    /// Where report.json, report.md and report.svg go. Default: <target>/bench
    /// (<target>/bench-compose with --compose).
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
    /// Also copy report.md, report.json and report.svg here (e.g. `docs/bench` for the README).
    #[arg(long, value_name = "DIR")]
    pub publish_to: Option<PathBuf>,
    #[command(flatten)]
    pub binaries: BinaryArgs,
}

fn config(message: &str) -> anyhow::Error {
    crate::ConfigError(message.to_string()).into()
}

/// The loopback plan of `args`: every flag checked, the quick and full defaults filled in.
pub fn plan(args: &BenchArgs) -> Result<Plan> {
    let quick = args.quick;
    let rounds = args.rounds.unwrap_or(if quick { 1 } else { 3 });
    let duration = args
        .duration
        .unwrap_or(Duration::from_secs(if quick { 1 } else { 4 }));
    let pick = |given: &Option<Vec<usize>>, quick_default: &[usize], full: &[usize]| {
        given
            .clone()
            .unwrap_or_else(|| if quick { quick_default } else { full }.to_vec())
    };
    let concurrency = pick(&args.concurrency, &[16, 256], &[16, 64, 256]);
    let replica_sweep = pick(&args.replica_sweep, &[1, 2], &[1, 2, 3, 4]);
    if rounds == 0 {
        return Err(config("--rounds must be at least 1"));
    }
    if concurrency.is_empty() || concurrency.contains(&0) || args.sweep_concurrency == 0 {
        return Err(config(
            "--concurrency and --sweep-concurrency must be positive",
        ));
    }
    if args.replicas == 0 || replica_sweep.contains(&0) {
        return Err(config("--replicas and --replica-sweep must be at least 1"));
    }
    if !(0.0..1.0).contains(&args.fixed_rate_fraction) {
        return Err(config(
            "--fixed-rate-fraction must be at least 0 and below 1",
        ));
    }
    if !args.static_path.starts_with('/') {
        return Err(config("--static-path must start with '/'"));
    }
    Ok(Plan {
        stack: StackKind::Loopback,
        quick,
        rounds,
        duration_ms: duration.as_millis(),
        warmup_ms: if quick { 300 } else { 700 },
        concurrency,
        replicas: args.replicas,
        replica_sweep,
        sweep_concurrency: args.sweep_concurrency,
        fixed_rate: (args.fixed_rate_fraction > 0.0).then_some(FixedRatePlan {
            concurrency: 64,
            fraction_of_nginx_max: args.fixed_rate_fraction,
        }),
        static_path: args.static_path.clone(),
        counter_key: args.counter_key.clone(),
        balancer_request_log: Some(args.balancer_request_log),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
    })
}

/// The groups of runs a loopback plan makes, in order.
fn groups(plan: &Plan) -> Vec<Group> {
    let both_paths = vec![PathKind::Count, PathKind::Static];
    let mut groups = vec![
        Group {
            phase: Phase::Matrix,
            setting: Setting::OneWorker,
            replicas: plan.replicas,
            // The direct door does not depend on the proxy setting: measured once, here.
            doors: vec![Door::Balancer, Door::Nginx, Door::Direct],
            paths: both_paths.clone(),
            concurrency: plan.concurrency.clone(),
        },
        Group {
            phase: Phase::Matrix,
            setting: Setting::AllCores,
            replicas: plan.replicas,
            doors: vec![Door::Balancer, Door::Nginx],
            paths: both_paths,
            concurrency: plan.concurrency.clone(),
        },
        // HTTP/2 to the replicas (`--upstream-protocol h2c`), beside the all-cores rows above on
        // the path that reaches the replicas' work: its rows join that table. (Its own group, not
        // a fourth door in the matrix, to keep the full plan within its ten minutes of load.)
        Group {
            phase: Phase::Matrix,
            setting: Setting::AllCores,
            replicas: plan.replicas,
            doors: vec![Door::BalancerH2c],
            paths: vec![PathKind::Count],
            // Quick (CI) checks that it works, at the lowest concurrency only.
            concurrency: if plan.quick {
                plan.concurrency.iter().copied().take(1).collect()
            } else {
                plan.concurrency.clone()
            },
        },
    ];
    if let Some(fixed) = plan.fixed_rate {
        // After the matrix, whose NGINX maxima set the rate.
        groups.push(Group {
            phase: Phase::FixedRate,
            setting: Setting::OneWorker,
            replicas: plan.replicas,
            doors: vec![Door::Balancer, Door::Nginx],
            // Quick (CI) checks that the phase works on the cheap path only.
            paths: if plan.quick {
                vec![PathKind::Static]
            } else {
                vec![PathKind::Count, PathKind::Static]
            },
            concurrency: vec![fixed.concurrency],
        });
    }
    // What least-request and the rate limiter cost per request, beside round-robin: the cheap
    // path, where the proxy's own work shows most.
    groups.push(Group {
        phase: Phase::Traffic,
        setting: Setting::AllCores,
        replicas: plan.replicas,
        doors: vec![
            Door::Balancer,
            Door::BalancerLeastRequest,
            Door::BalancerRateLimited,
        ],
        paths: vec![PathKind::Static],
        concurrency: vec![plan.sweep_concurrency],
    });
    for &replicas in &plan.replica_sweep {
        groups.push(Group {
            phase: Phase::ReplicaSweep,
            setting: Setting::AllCores,
            replicas,
            doors: vec![Door::Balancer, Door::Nginx],
            paths: vec![PathKind::Count],
            concurrency: vec![plan.sweep_concurrency],
        });
    }
    groups
}

fn duration_of(plan: &Plan) -> Duration {
    Duration::from_millis(plan.duration_ms as u64)
}

/// Proxies started once with one configuration, and the runs made against them.
#[derive(Debug, Clone)]
struct Group {
    phase: Phase,
    setting: Setting,
    replicas: usize,
    doors: Vec<Door>,
    paths: Vec<PathKind>,
    concurrency: Vec<usize>,
}

impl Group {
    fn runs(&self, rounds: usize) -> usize {
        self.doors.len() * self.paths.len() * self.concurrency.len() * rounds
    }

    fn slug(&self) -> String {
        let setting = match self.setting {
            Setting::OneWorker => "1w",
            Setting::AllCores => "all",
        };
        format!("{setting}-{}r", self.replicas)
    }
}

/// Which run a record belongs to.
#[derive(Debug, Clone, Copy)]
pub struct RunId {
    pub phase: Phase,
    pub setting: Option<Setting>,
    pub replicas: usize,
    pub door: Door,
    pub path: PathKind,
    pub concurrency: usize,
    /// 0 for a warm-up.
    pub round: usize,
    /// Requests/s asked of oha; `None`: as fast as it can.
    pub rate: Option<u32>,
}

/// What a run's correctness check found wrong: errors, non-200 answers, or a counter that did
/// not rise by exactly the 200 responses to `/count` (and not at all on the static path).
pub fn check_run(path: PathKind, result: &OhaResult, counter_delta: i64) -> Option<String> {
    let ok = result.responses_with(200);
    let expected_delta = match path {
        PathKind::Count => ok as i64,
        PathKind::Static => 0,
    };
    let mut problems = Vec::new();
    if ok == 0 {
        problems.push("no successful response".to_string());
    }
    if result.non_200() > 0 {
        problems.push(format!("non-200 responses {:?}", result.status_counts));
    }
    if result.errors() > 0 {
        problems.push(format!("transport errors {:?}", result.error_counts));
    }
    if counter_delta != expected_delta {
        problems.push(format!(
            "counter mismatch: rose by {counter_delta}, expected {expected_delta}"
        ));
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

/// The record of one oha run, checked; the door's CPU and memory are the caller's to fill in.
pub fn record(id: RunId, url_path: String, result: &OhaResult, counter_delta: i64) -> RunRecord {
    RunRecord {
        phase: id.phase,
        setting: id.setting,
        replicas: id.replicas,
        door: id.door,
        path: id.path,
        url_path,
        concurrency: id.concurrency,
        round: id.round,
        target_rate: id.rate,
        requests_per_sec: result.requests_per_sec,
        p50_ms: result.p50_ms,
        p99_ms: result.p99_ms,
        p999_ms: result.p999_ms,
        ok_responses: result.responses_with(200),
        non_200: result.non_200(),
        errors: result.errors(),
        error_kinds: result.error_counts.clone(),
        counter_delta,
        problem: check_run(id.path, result, counter_delta),
        proxy_cpu_seconds: None,
        cpu_seconds_per_10k: None,
        user_cpu_seconds_per_10k: None,
        peak_rss_kib: None,
        peak_rss_max_process_kib: None,
        upstream_connections: None,
        processes: 0,
        rss_peak_is_per_run: false,
        containers: Vec::new(),
    }
}

/// CPU seconds per 10,000 responses.
pub fn per_10k(cpu_seconds: f64, responses: u64) -> Option<f64> {
    (responses > 0).then(|| cpu_seconds * 10_000.0 / responses as f64)
}

/// Where oha writes the raw output of one run.
pub fn raw_stem(raw_dir: &Path, slug: &str, id: &RunId) -> PathBuf {
    raw_dir.join(format!(
        "{slug}-{}-{:?}-c{}-r{}",
        id.door.label().replace(' ', "-"),
        id.path,
        id.concurrency,
        id.round
    ))
}

/// Everything that lives for the whole bench. Field order is drop order: replicas, then Redis.
struct Bench {
    plan: Plan,
    oha: PathBuf,
    nginx_bin: PathBuf,
    bins: Binaries,
    work_dir: PathBuf,
    out: OutDirs,
    replicas: Vec<Replica>,
    redis: Redis,
    progress: Progress,
    records: Vec<RunRecord>,
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
            best = best.max(crate::report::median(&mut rates).unwrap_or(0.0));
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

    fn run_group(&mut self, group: &Group) -> Result<()> {
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
        let warmup = Duration::from_millis(self.plan.warmup_ms as u64);
        for &door in &group.doors {
            let record = self.measure(doors, &group.slug(), id(door, 0), warmup)?;
            warmup_ok(&record)?;
        }
        for round in 1..=self.plan.rounds {
            for &door in &group.doors {
                let duration = duration_of(&self.plan);
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

        let stem = raw_stem(&self.out.raw, slug, &id);
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

        let mut record = record(id, url_path, &result, counter_after - counter_before);
        let cpu = before
            .zip(after)
            .map(|(b, a)| (a.cpu_seconds - b.cpu_seconds).max(0.0));
        let responses = record.ok_responses + record.non_200;
        record.proxy_cpu_seconds = cpu;
        record.cpu_seconds_per_10k = cpu.and_then(|c| per_10k(c, responses));
        record.user_cpu_seconds_per_10k = before
            .zip(after)
            .and_then(|(b, a)| per_10k((a.user_seconds - b.user_seconds).max(0.0), responses));
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

/// A warm-up must pass the run check: a broken door fails fast, before any figure is recorded.
pub fn warmup_ok(record: &RunRecord) -> Result<()> {
    match &record.problem {
        None => Ok(()),
        Some(problem) => bail!(
            "warm-up of {} on {}: {problem}",
            record.door.label(),
            record.url_path
        ),
    }
}

/// The `[n/total] …` lines on stderr.
pub struct Progress {
    pub done: usize,
    pub total: usize,
    pub rounds: usize,
}

impl Progress {
    pub fn report(&mut self, record: &RunRecord) {
        self.done += 1;
        eprintln!(
            "{}",
            progress_line(self.done, self.total, self.rounds, record)
        );
    }
}

fn progress_line(done: usize, total: usize, rounds: usize, r: &RunRecord) -> String {
    let width = total.to_string().len();
    let setting = r.setting.map_or("-", Setting::label);
    let mut line = format!(
        "[{done:>width$}/{total}] {setting:<9} {:>2} repl  {:<7} c={:<3} {:<14} round {}/{rounds}: {:>8.0} req/s  p99 {:>7.2} ms  errors {}  counter +{}",
        r.replicas,
        match r.path {
            PathKind::Count => "/count",
            PathKind::Static => "static",
        },
        r.concurrency,
        r.door.label(),
        r.round,
        r.requests_per_sec,
        r.p99_ms,
        r.errors + r.non_200,
        r.counter_delta,
    );
    if let (Some(cpu), Some(rss)) = (r.cpu_seconds_per_10k, r.peak_rss_kib) {
        line.push_str(&format!(
            "  cpu {cpu:.2} s/10k  rss {:.1} MiB",
            rss as f64 / 1024.0
        ));
    }
    match &r.problem {
        None => line.push_str("  ok"),
        Some(problem) => line.push_str(&format!("  FAILED: {problem}")),
    }
    line
}

/// Copies the binaries under test into `dir`, so every group runs the same build.
fn snapshot_binaries(bins: &Binaries, dir: &Path) -> Result<Binaries> {
    let copy = |from: &Path, name: &str| -> Result<PathBuf> {
        let to = dir.join(name);
        fs::copy(from, &to)
            .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
        Ok(to)
    };
    Ok(Binaries {
        app: copy(&bins.app, "app")?,
        balancer: copy(&bins.balancer, "balancer")?,
    })
}

/// A bench's output directory and its `logs/` and `raw/` (oha's own output) parts.
pub struct OutDirs {
    pub root: PathBuf,
    pub logs: PathBuf,
    pub raw: PathBuf,
}

impl OutDirs {
    /// `--out-dir`, else `<target>/<default_name>`; `logs/` and `raw/` emptied.
    pub fn prepare(args: &BenchArgs, default_name: &str) -> Result<Self> {
        let root = args
            .out_dir
            .clone()
            .unwrap_or_else(|| binaries::target_dir().join(default_name));
        let out = Self {
            logs: root.join("logs"),
            raw: root.join("raw"),
            root,
        };
        for dir in [&out.logs, &out.raw] {
            // Only our own previous output lives here.
            let _ = fs::remove_dir_all(dir);
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        Ok(out)
    }
}

/// Writes report.json, report.md and report.svg into `dir`; returns their paths.
pub fn write_all(report: &Report, dir: &Path) -> Result<Vec<PathBuf>> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = serde_json::to_string_pretty(report).context("serializing the report")?;
    let outputs = [
        ("report.json", json),
        ("report.md", report::markdown(report)),
        ("report.svg", chart::render(report)),
    ];
    let mut written = Vec::new();
    for (name, text) in outputs {
        let path = dir.join(name);
        fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// Writes the report (to the output dir and `--publish-to`), prints the summary; `Ok(false)`
/// when a run failed its check.
pub fn finish(report: &Report, args: &BenchArgs, out: &OutDirs, started: Instant) -> Result<bool> {
    let mut written = write_all(report, &out.root)?;
    if let Some(dir) = &args.publish_to {
        written.extend(write_all(report, dir)?);
    }
    let failures = report.failures.len();
    eprintln!("{}", report::console_summary(report));
    for path in written {
        eprintln!("xtask: wrote {}", path.display());
    }
    eprintln!("xtask: bench took {:.0} s", started.elapsed().as_secs_f64());
    if failures > 0 {
        eprintln!("xtask: {failures} run(s) or check(s) failed (see report.md)");
    }
    Ok(failures == 0)
}

/// The replicas answer 200 with a body on both measured paths.
fn check_paths(replica: SocketAddr, static_path: &str) -> Result<()> {
    for path in ["/count", static_path] {
        let reply = crate::probe::http_get(replica, path, Duration::from_secs(5))?;
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

/// Runs the loopback benchmark; `Ok(false)` when a correctness check failed (report still
/// written).
pub fn run(args: &BenchArgs) -> Result<bool> {
    let plan = plan(args)?;
    // Missing tools fail before the (slow) build.
    let oha = binaries::oha()?;
    let nginx_bin = binaries::nginx()?;
    let redis_bin = binaries::redis_server()?;
    let build_started = Instant::now();
    let bins = args.binaries.resolve()?;
    eprintln!(
        "xtask: binaries ready after {:.0} s",
        build_started.elapsed().as_secs_f64()
    );
    // The bench's own time excludes the build, which depends on what cargo must redo.
    let started = Instant::now();
    let out = OutDirs::prepare(args, "bench")?;
    // Redis data and NGINX prefixes are throwaway; declared first so it is removed last.
    let work = tempfile::Builder::new()
        .prefix("xtask-bench-")
        .tempdir()
        .context("creating a temporary directory")?;
    // Snapshot the binaries: teammates rebuilding target/release mid-run must not swap the
    // balancer under test between two groups.
    let bins = snapshot_binaries(&bins, work.path())?;
    // Described now, so `git` names the tree the binaries were just built from.
    let machine = report::describe_machine(
        &oha,
        binaries::tool_version(&nginx_bin, "-v"),
        binaries::tool_version(&redis_bin, "--version"),
    );
    let mut bench = start_stack(plan, oha, nginx_bin, &redis_bin, bins, work.path(), out)?;
    for group in &groups(&bench.plan) {
        bench.run_group(group)?;
    }
    let report = report::build(
        bench.plan.clone(),
        machine,
        std::mem::take(&mut bench.records),
        started.elapsed(),
    );
    finish(&report, args, &bench.out, started)
}

/// Redis and the replicas every group shares, checked on both paths.
fn start_stack(
    plan: Plan,
    oha: PathBuf,
    nginx_bin: PathBuf,
    redis_bin: &Path,
    bins: Binaries,
    work_dir: &Path,
    out: OutDirs,
) -> Result<Bench> {
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
    let replicas = stack::start_replicas(&bins.app, &redis, needed, &plan.counter_key, &out.logs)?;
    check_paths(replicas[0].addr, &plan.static_path)?;
    let groups = groups(&plan);
    let total = groups.iter().map(|g| g.runs(plan.rounds)).sum();
    eprintln!(
        "xtask: {total} runs of {:?} each ({} round(s), A B alternation); oha and the proxies share this machine's {} core(s)",
        duration_of(&plan),
        plan.rounds,
        plan.cores
    );
    Ok(Bench {
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

/// `BenchArgs` from a command line, for the tests of both runners.
#[cfg(test)]
pub fn parse_args(argv: &[&str]) -> Result<BenchArgs, clap::Error> {
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }
    Cli::try_parse_from(argv).map(|cli| cli.bench)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(quick: bool) -> BenchArgs {
        let mut argv = vec!["bench", "--no-build"];
        if quick {
            argv.push("--quick");
        }
        parse_args(&argv).unwrap()
    }

    #[test]
    fn durations_need_a_unit() {
        let parse = |d: &str| parse_args(&["bench", "--duration", d]);
        assert_eq!(
            parse("1500ms").unwrap().duration,
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse("1m").unwrap().duration, Some(Duration::from_secs(60)));
        for bad in ["3", "0s", "fast"] {
            assert!(parse(bad).is_err(), "--duration {bad} accepted");
        }
    }

    #[test]
    fn full_plan_meets_the_issue_and_fits_the_time_budget() {
        let plan = plan(&args(false)).unwrap();
        assert!(plan.rounds >= 3);
        for c in [16, 64, 256] {
            assert!(plan.concurrency.contains(&c));
        }
        assert_eq!(plan.replica_sweep, vec![1, 2, 3, 4]);
        let groups = groups(&plan);
        let runs: usize = groups.iter().map(|g| g.runs(plan.rounds)).sum();
        let load_seconds = runs as f64 * plan.duration_ms as f64 / 1000.0;
        assert!(
            load_seconds < 10.0 * 60.0,
            "{runs} runs, {load_seconds} s of load"
        );
        // Both proxies at both settings, and the direct floor.
        assert!(groups.iter().any(|g| g.setting == Setting::OneWorker));
        assert!(groups.iter().any(|g| g.setting == Setting::AllCores));
        assert!(groups.iter().any(|g| g.doors.contains(&Door::Direct)));
    }

    #[test]
    fn quick_plan_stays_well_under_a_minute_of_load() {
        let plan = plan(&args(true)).unwrap();
        assert_eq!(plan.rounds, 1);
        let runs: usize = groups(&plan).iter().map(|g| g.runs(plan.rounds)).sum();
        // One warm-up per door and cell.
        let warmups: usize = groups(&plan).iter().map(|g| g.runs(1)).sum();
        let load = runs as f64 * plan.duration_ms as f64 / 1000.0
            + warmups as f64 * plan.warmup_ms as f64 / 1000.0;
        assert!(load < 40.0, "{runs} runs: {load} s of load");
    }

    #[test]
    fn bad_plans_are_rejected() {
        let mut a = args(false);
        a.rounds = Some(0);
        assert!(plan(&a).is_err());
        let mut a = args(false);
        a.static_path = "static/style.css".into();
        assert!(plan(&a).is_err());
        let mut a = args(false);
        a.concurrency = Some(vec![0]);
        assert!(plan(&a).is_err());
    }

    fn oha_result(ok: u64, other: Option<(u16, u64)>, errors: u64) -> OhaResult {
        let mut status_counts = std::collections::BTreeMap::from([(200, ok)]);
        status_counts.extend(other);
        OhaResult {
            requests_per_sec: 1.0,
            p50_ms: 1.0,
            p99_ms: 1.0,
            p999_ms: 1.0,
            status_counts,
            error_counts: std::collections::BTreeMap::from([("reset".to_string(), errors)]),
        }
    }

    #[test]
    fn the_run_check_wants_an_exact_counter_and_no_errors() {
        assert_eq!(
            check_run(PathKind::Count, &oha_result(10, None, 0), 10),
            None
        );
        assert_eq!(
            check_run(PathKind::Static, &oha_result(10, None, 0), 0),
            None
        );
        let mismatch = check_run(PathKind::Count, &oha_result(10, None, 0), 11).unwrap();
        assert!(mismatch.contains("counter mismatch"), "{mismatch}");
        assert!(check_run(PathKind::Static, &oha_result(10, None, 0), 1).is_some());
        assert!(check_run(PathKind::Count, &oha_result(10, Some((502, 1)), 0), 10).is_some());
        assert!(check_run(PathKind::Count, &oha_result(10, None, 1), 10).is_some());
        assert!(check_run(PathKind::Count, &oha_result(0, None, 0), 0).is_some());
    }
}
