//! `cargo xtask bench`: the balancer measured against NGINX and a direct hit on one replica, in
//! one run, on one machine, with `oha`.
//!
//! It owns the plan (which front doors, paths, worker settings, concurrencies and replica counts,
//! in which order) and the per-run protocol: check every process is alive, read the counter,
//! reset the proxy's peak-RSS mark and read its CPU time, run oha, read them all again, and
//! check that the counter rose by exactly the number of successful `/count` responses. The two
//! proxies alternate A B A B within every cell so drift on a noisy machine hits both alike.

use std::fs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::binaries::{self, Binaries, BinaryArgs};
use crate::nginx::Nginx;
use crate::oha;
use crate::procstats;
use crate::report;
use crate::stack::{self, Balancer, Redis, Replica, RequestLog};

/// Flags of `cargo xtask bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// CI mode, under a minute: one round, 1 s runs, concurrency 16 and 256, replicas 1 and 2.
    /// Fails only on errors or a counter mismatch, never on speed.
    #[arg(long)]
    pub quick: bool,
    /// Rounds per cell (each round runs every front door once, A B A B). Default 3, quick 1.
    #[arg(long)]
    pub rounds: Option<usize>,
    /// Load duration of one oha run, e.g. `4s`, `1500ms`. Default 4s, quick 1s.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Concurrency sweep (oha connections). Default 16,64,256; quick 16,256.
    #[arg(long, value_delimiter = ',')]
    pub concurrency: Option<Vec<usize>>,
    /// Replicas behind the proxies in the main matrix.
    #[arg(long, default_value_t = 3)]
    pub replicas: usize,
    /// Replica sweep (on /count, all cores). Default 1,2,3,4; quick 1,2.
    #[arg(long, value_delimiter = ',')]
    pub replica_sweep: Option<Vec<usize>>,
    /// Concurrency used in the replica sweep.
    #[arg(long, default_value_t = 64)]
    pub sweep_concurrency: usize,
    /// The app's static asset measured as the cheap path.
    #[arg(long, default_value = "/static/style.css")]
    pub static_path: String,
    /// Redis key of the counter (passed to the replicas as COUNTER_KEY).
    #[arg(long, default_value = "visits")]
    pub counter_key: String,
    /// Balancer per-request logging. `off` matches the project's nginx.conf (`access_log off`).
    #[arg(long, value_enum, default_value = "off")]
    pub balancer_request_log: RequestLog,
    /// Where report.json, report.md and report.svg go. Default: <target>/bench.
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

/// Parses `500ms`, `2s`, `1m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map(|i| text.split_at(i))
        .unwrap_or((text, "s"));
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 500ms, 2s or 1m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("{text:?}: unit must be ms, s or m")),
    };
    if seconds <= 0.0 {
        return Err(format!("{text:?} must be positive"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// A front door oha hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Door {
    Balancer,
    Nginx,
    /// One replica hit directly: the floor no proxy can beat.
    Direct,
}

impl Door {
    pub fn label(self) -> &'static str {
        match self {
            Door::Balancer => "balancer",
            Door::Nginx => "nginx",
            Door::Direct => "direct replica",
        }
    }
}

/// How many cores each proxy may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Setting {
    /// `--workers 1` and `worker_processes 1`: equal CPU for both proxies.
    OneWorker,
    /// `--workers <cores>` and the template's `worker_processes auto`.
    AllCores,
}

impl Setting {
    pub fn label(self) -> &'static str {
        match self {
            Setting::OneWorker => "1 worker",
            Setting::AllCores => "all cores",
        }
    }
}

/// Which kind of response is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PathKind {
    /// `/count`: the full path through Redis.
    Count,
    /// The stylesheet: proxy overhead on a cheap response.
    Static,
}

/// Which part of the plan a run belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Doors × paths × concurrency at both worker settings.
    Matrix,
    /// Replica count 1..N on /count at all cores.
    ReplicaSweep,
}

/// One oha run and what was observed around it.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub phase: Phase,
    /// `None` for the direct door (no proxy involved).
    pub setting: Option<Setting>,
    pub replicas: usize,
    pub door: Door,
    pub path: PathKind,
    pub url_path: String,
    pub concurrency: usize,
    pub round: usize,
    pub requests_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    /// 200 responses.
    pub ok_responses: u64,
    /// Responses with any other status.
    pub non_200: u64,
    /// Transport errors reported by oha.
    pub errors: u64,
    pub error_kinds: std::collections::BTreeMap<String, u64>,
    /// Increase of the Redis counter during the run.
    pub counter_delta: i64,
    /// Why the run failed the correctness check, if it did.
    pub problem: Option<String>,
    /// Proxy CPU seconds (utime + stime, every process of the front door) during the run.
    pub proxy_cpu_seconds: Option<f64>,
    pub cpu_seconds_per_10k: Option<f64>,
    /// Peak RSS during the run, summed over the front door's processes (NGINX: master + workers).
    pub peak_rss_kib: Option<u64>,
    /// Largest single process's peak RSS (NGINX: the biggest worker or master).
    pub peak_rss_max_process_kib: Option<u64>,
    /// Number of processes the CPU and RSS figures cover.
    pub processes: usize,
    /// Whether the peak-RSS mark could be reset before the run (else it is a lifetime peak).
    pub rss_peak_is_per_run: bool,
}

/// The resolved plan of a bench invocation.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub quick: bool,
    pub rounds: usize,
    pub duration_ms: u128,
    pub warmup_ms: u128,
    pub concurrency: Vec<usize>,
    pub replicas: usize,
    pub replica_sweep: Vec<usize>,
    pub sweep_concurrency: usize,
    pub static_path: String,
    pub counter_key: String,
    pub balancer_request_log: RequestLog,
    pub cores: usize,
}

impl Plan {
    fn from_args(args: &BenchArgs) -> Result<Self> {
        let quick = args.quick;
        let rounds = args.rounds.unwrap_or(if quick { 1 } else { 3 });
        let duration = args
            .duration
            .unwrap_or(Duration::from_secs(if quick { 1 } else { 4 }));
        let concurrency = args.concurrency.clone().unwrap_or_else(|| {
            if quick {
                vec![16, 256]
            } else {
                vec![16, 64, 256]
            }
        });
        let replica_sweep = args.replica_sweep.clone().unwrap_or_else(|| {
            if quick {
                vec![1, 2]
            } else {
                vec![1, 2, 3, 4]
            }
        });
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
        if !args.static_path.starts_with('/') {
            return Err(config("--static-path must start with '/'"));
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Self {
            quick,
            rounds,
            duration_ms: duration.as_millis(),
            warmup_ms: if quick { 300 } else { 700 },
            concurrency,
            replicas: args.replicas,
            replica_sweep,
            sweep_concurrency: args.sweep_concurrency,
            static_path: args.static_path.clone(),
            counter_key: args.counter_key.clone(),
            balancer_request_log: args.balancer_request_log,
            cores,
        })
    }

    fn duration(&self) -> Duration {
        Duration::from_millis(self.duration_ms as u64)
    }

    fn groups(&self) -> Vec<Group> {
        let mut groups = vec![
            Group {
                phase: Phase::Matrix,
                setting: Setting::OneWorker,
                replicas: self.replicas,
                // The direct door does not depend on the proxy setting: measured once, here.
                doors: vec![Door::Balancer, Door::Nginx, Door::Direct],
                paths: vec![PathKind::Count, PathKind::Static],
                concurrency: self.concurrency.clone(),
            },
            Group {
                phase: Phase::Matrix,
                setting: Setting::AllCores,
                replicas: self.replicas,
                doors: vec![Door::Balancer, Door::Nginx],
                paths: vec![PathKind::Count, PathKind::Static],
                concurrency: self.concurrency.clone(),
            },
        ];
        for &replicas in &self.replica_sweep {
            groups.push(Group {
                phase: Phase::ReplicaSweep,
                setting: Setting::AllCores,
                replicas,
                doors: vec![Door::Balancer, Door::Nginx],
                paths: vec![PathKind::Count],
                concurrency: vec![self.sweep_concurrency],
            });
        }
        groups
    }

    fn url_path(&self, path: PathKind) -> &str {
        match path {
            PathKind::Count => "/count",
            PathKind::Static => &self.static_path,
        }
    }
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

/// Everything that lives for the whole bench. Field order is drop order: replicas, then Redis.
struct Bench {
    plan: Plan,
    oha: PathBuf,
    nginx_bin: PathBuf,
    bins: Binaries,
    work_dir: PathBuf,
    logs_dir: PathBuf,
    raw_dir: PathBuf,
    replicas: Vec<Replica>,
    redis: Redis,
    done: usize,
    total: usize,
    records: Vec<RunRecord>,
}

/// The front doors of one group.
struct Doors {
    balancer: Balancer,
    nginx: Nginx,
}

impl Bench {
    fn addr_of(&self, doors: &Doors, door: Door) -> SocketAddr {
        match door {
            Door::Balancer => doors.balancer.addr,
            Door::Nginx => doors.nginx.addr,
            Door::Direct => self.replicas[0].addr,
        }
    }

    /// The processes a door's CPU and RSS are charged to; none for the direct door.
    fn pids_of(doors: &Doors, door: Door) -> Vec<u32> {
        match door {
            Door::Balancer => vec![doors.balancer.process.pid()],
            Door::Nginx => doors.nginx.pids(),
            Door::Direct => Vec::new(),
        }
    }

    fn ensure_all_running(&mut self, doors: &mut Doors) -> Result<()> {
        self.redis.process.ensure_running()?;
        for replica in &mut self.replicas {
            replica.process.ensure_running()?;
        }
        doors.balancer.process.ensure_running()?;
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
        let balancer = Balancer::start(
            &self.bins.balancer,
            stack::free_port()?,
            stack::free_port()?,
            &upstreams,
            Some(balancer_workers),
            self.plan.balancer_request_log,
            &self.logs_dir.join(format!("balancer-{slug}.log")),
        )?;
        let nginx = Nginx::start(
            &self.nginx_bin,
            &self.work_dir.join(format!("nginx-{slug}")),
            &upstreams,
            SocketAddr::from(([127, 0, 0, 1], stack::free_port()?)),
            nginx_workers,
        )?;
        Ok(Doors { balancer, nginx })
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
        let warmup = Duration::from_millis(self.plan.warmup_ms as u64);
        for &path in &group.paths {
            for &concurrency in &group.concurrency {
                let mut doors = self.start_doors(group, &format!("{path:?}-c{concurrency}"))?;
                // Warm-up at this cell's load: fills the keep-alive pools; checked, not recorded.
                for &door in &group.doors {
                    let record =
                        self.measure(&mut doors, group, door, path, concurrency, 0, warmup)?;
                    if let Some(problem) = record.problem {
                        bail!(
                            "warm-up of {} on {}: {problem}",
                            door.label(),
                            record.url_path
                        );
                    }
                }
                for round in 1..=self.plan.rounds {
                    for &door in &group.doors {
                        let duration = self.plan.duration();
                        let record = self.measure(
                            &mut doors,
                            group,
                            door,
                            path,
                            concurrency,
                            round,
                            duration,
                        )?;
                        self.done += 1;
                        eprintln!(
                            "{}",
                            progress_line(self.done, self.total, self.plan.rounds, &record)
                        );
                        self.records.push(record);
                    }
                }
                // This cell's proxies stop here (drop), before the next cell starts its own.
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn measure(
        &mut self,
        doors: &mut Doors,
        group: &Group,
        door: Door,
        path: PathKind,
        concurrency: usize,
        round: usize,
        duration: Duration,
    ) -> Result<RunRecord> {
        self.ensure_all_running(doors)?;
        let addr = self.addr_of(doors, door);
        let url_path = self.plan.url_path(path).to_string();
        let url = format!("http://{addr}{url_path}");
        let pids = Self::pids_of(doors, door);
        let rss_reset = pids.iter().all(|&pid| procstats::reset_peak_rss(pid));
        let before = if pids.is_empty() {
            None
        } else {
            Some(procstats::sample(&pids).context("reading the proxy's /proc stats")?)
        };
        let counter_before = self.redis.counter(&self.plan.counter_key)?;

        let stem = self.raw_dir.join(format!(
            "{}-{}-{:?}-c{concurrency}-r{round}",
            group.slug(),
            door.label().replace(' ', "-"),
            path
        ));
        let result = oha::run(&self.oha, &url, concurrency, duration, &stem)?;

        let counter_after = self.redis.counter(&self.plan.counter_key)?;
        let after = if pids.is_empty() {
            None
        } else {
            Some(procstats::sample(&pids).context("reading the proxy's /proc stats")?)
        };
        self.ensure_all_running(doors)?;

        let ok = result.responses_with(200);
        let counter_delta = counter_after - counter_before;
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
        let cpu = before
            .zip(after)
            .map(|(b, a)| (a.cpu_seconds - b.cpu_seconds).max(0.0));
        let total_responses: u64 = result.status_counts.values().sum();
        Ok(RunRecord {
            phase: group.phase,
            setting: (door != Door::Direct).then_some(group.setting),
            replicas: if door == Door::Direct {
                1
            } else {
                group.replicas
            },
            door,
            path,
            url_path,
            concurrency,
            round,
            requests_per_sec: result.requests_per_sec,
            p50_ms: result.p50_ms,
            p99_ms: result.p99_ms,
            p999_ms: result.p999_ms,
            ok_responses: ok,
            non_200: result.non_200(),
            errors: result.errors(),
            error_kinds: result.error_counts.clone(),
            counter_delta,
            problem: (!problems.is_empty()).then(|| problems.join("; ")),
            proxy_cpu_seconds: cpu,
            cpu_seconds_per_10k: cpu
                .filter(|_| total_responses > 0)
                .map(|c| c * 10_000.0 / total_responses as f64),
            peak_rss_kib: after.map(|a| a.peak_rss_sum_kib),
            peak_rss_max_process_kib: after.map(|a| a.peak_rss_max_kib),
            processes: pids.len(),
            rss_peak_is_per_run: rss_reset,
        })
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
fn snapshot_binaries(bins: &Binaries, dir: &std::path::Path) -> Result<Binaries> {
    let copy = |from: &std::path::Path, name: &str| -> Result<PathBuf> {
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

/// Runs the whole benchmark; `Ok(false)` when a correctness check failed (report still written).
pub fn run(args: &BenchArgs) -> Result<bool> {
    let plan = Plan::from_args(args)?;
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

    let out_dir = args
        .out_dir
        .clone()
        .unwrap_or_else(|| binaries::target_dir().join("bench"));
    let logs_dir = out_dir.join("logs");
    let raw_dir = out_dir.join("raw");
    for dir in [&logs_dir, &raw_dir] {
        // Only our own previous output lives here.
        let _ = fs::remove_dir_all(dir);
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    // Redis data and NGINX prefixes are throwaway; declared first so it is removed last.
    let work = tempfile::Builder::new()
        .prefix("xtask-bench-")
        .tempdir()
        .context("creating a temporary directory")?;
    // Snapshot the binaries: teammates rebuilding target/release mid-run must not swap the
    // balancer under test between two groups.
    let bins = snapshot_binaries(&bins, work.path())?;
    // Described now, so `git` names the tree the binaries were just built from.
    let machine = report::Machine::describe(&oha, &nginx_bin, &redis_bin);

    let redis = Redis::start(
        &redis_bin,
        stack::free_port()?,
        &work.path().join("redis"),
        &logs_dir,
    )?;
    let needed = plan
        .replica_sweep
        .iter()
        .copied()
        .chain([plan.replicas])
        .max()
        .unwrap_or(plan.replicas);
    eprintln!("xtask: starting redis-server and {needed} app replicas");
    let replicas = stack::start_replicas(&bins.app, &redis, needed, &plan.counter_key, &logs_dir)?;
    for path in ["/count", plan.static_path.as_str()] {
        let reply = crate::probe::http_get(replicas[0].addr, path, Duration::from_secs(5))?;
        if reply.status != 200 || reply.body.is_empty() {
            bail!(
                "GET {path} on a replica answered {} with {} body bytes instead of 200 with a body (for the static asset, pass --static-path)",
                reply.status,
                reply.body.len()
            );
        }
    }

    let groups = plan.groups();
    let total = groups.iter().map(|g| g.runs(plan.rounds)).sum();
    eprintln!(
        "xtask: {total} runs of {:?} each ({} round(s), A B alternation); oha and the proxies share this machine's {} core(s)",
        plan.duration(),
        plan.rounds,
        plan.cores
    );
    let mut bench = Bench {
        plan,
        oha,
        nginx_bin,
        bins,
        work_dir: work.path().to_path_buf(),
        logs_dir,
        raw_dir,
        replicas,
        redis,
        done: 0,
        total,
        records: Vec::new(),
    };
    for group in &groups {
        bench.run_group(group)?;
    }

    let report = report::Report::build(
        bench.plan.clone(),
        machine,
        bench.records.clone(),
        started.elapsed(),
    );
    let mut written = report::write_all(&report, &out_dir)?;
    if let Some(dir) = &args.publish_to {
        written.extend(report::write_all(&report, dir)?);
    }
    let failures = report.failures.len();
    eprintln!("{}", report.console_summary());
    for path in written {
        eprintln!("xtask: wrote {}", path.display());
    }
    eprintln!("xtask: bench took {:.0} s", started.elapsed().as_secs_f64());
    if failures > 0 {
        eprintln!("xtask: {failures} run(s) failed the correctness check (see report.md)");
    }
    Ok(failures == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("2h").is_err());
        assert!(parse_duration("fast").is_err());
    }

    fn args(quick: bool) -> BenchArgs {
        BenchArgs {
            quick,
            rounds: None,
            duration: None,
            concurrency: None,
            replicas: 3,
            replica_sweep: None,
            sweep_concurrency: 64,
            static_path: "/static/style.css".into(),
            counter_key: "visits".into(),
            balancer_request_log: RequestLog::Off,
            out_dir: None,
            publish_to: None,
            binaries: BinaryArgs {
                app_bin: None,
                balancer_bin: None,
                no_build: true,
            },
        }
    }

    #[test]
    fn full_plan_meets_the_issue_and_fits_the_time_budget() {
        let plan = Plan::from_args(&args(false)).unwrap();
        assert!(plan.rounds >= 3);
        for c in [16, 64, 256] {
            assert!(plan.concurrency.contains(&c));
        }
        assert_eq!(plan.replica_sweep, vec![1, 2, 3, 4]);
        let groups = plan.groups();
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
        let plan = Plan::from_args(&args(true)).unwrap();
        assert_eq!(plan.rounds, 1);
        let runs: usize = plan.groups().iter().map(|g| g.runs(plan.rounds)).sum();
        // One warm-up per door and cell.
        let warmups: usize = plan.groups().iter().map(|g| g.runs(1)).sum();
        let load = runs as f64 * plan.duration_ms as f64 / 1000.0
            + warmups as f64 * plan.warmup_ms as f64 / 1000.0;
        assert!(load < 40.0, "{runs} runs: {load} s of load");
    }

    #[test]
    fn bad_plans_are_rejected() {
        let mut a = args(false);
        a.rounds = Some(0);
        assert!(Plan::from_args(&a).is_err());
        let mut a = args(false);
        a.static_path = "static/style.css".into();
        assert!(Plan::from_args(&a).is_err());
        let mut a = args(false);
        a.concurrency = Some(vec![0]);
        assert!(Plan::from_args(&a).is_err());
    }
}
