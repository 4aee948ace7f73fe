//! The benchmark's data, and nothing else: what a bench plans ([`Plan`]), what one oha run
//! observed ([`RunRecord`]), and what a report holds ([`Report`] and its parts).
//!
//! It sits at the bottom of the report's modules so they import it and not each other:
//! `model` ← {`summary` (medians, ratios), `targets`, `markdown`, `chart` (SVG)} ← the bench
//! runners (loopback and Compose). Both runners fill the same records, so both get the same
//! report and chart.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::stack::RequestLog;

/// A front door oha hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Door {
    Balancer,
    Nginx,
    /// One replica hit directly: the floor no proxy can beat.
    Direct,
    /// The balancer with `--balance least-request` (the traffic cells).
    BalancerLeastRequest,
    /// The balancer with `--rate-limit` at a rate no client reaches (the traffic cells).
    BalancerRateLimited,
    /// `balancer/examples/hyper_floor.rs`: hyper passing requests through with no logic of ours
    /// (the instructions benchmark), the floor of a hyper proxy.
    HyperFloor,
    /// The balancer with `--upstream-protocol h2c`: HTTP/2 to the replicas (the matrix).
    BalancerH2c,
}

impl Door {
    pub fn label(self) -> &'static str {
        match self {
            Door::Balancer => "balancer",
            Door::Nginx => "nginx",
            Door::Direct => "direct replica",
            Door::BalancerLeastRequest => "balancer least-request",
            Door::BalancerRateLimited => "balancer rate-limited",
            Door::HyperFloor => "hyper floor",
            Door::BalancerH2c => "balancer h2c",
        }
    }

    /// The balancer's flags for this door beyond the shared ones (the traffic cells).
    pub fn balancer_args(self) -> &'static [&'static str] {
        match self {
            Door::BalancerLeastRequest => &["--balance", "least-request"],
            Door::BalancerRateLimited => &["--rate-limit", "1000000/s"],
            Door::BalancerH2c => &["--upstream-protocol", "h2c"],
            _ => &[],
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
    /// Both doors at the same fixed request rate (below both saturation points), one worker:
    /// CPU per request and latency where throughput cannot differ.
    FixedRate,
    /// Round-robin beside least-request and the rate limiter, all cores: their cost per request.
    Traffic,
}

/// Which stack the doors belong to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StackKind {
    /// Processes on loopback started by the bench (`cargo xtask bench`).
    Loopback,
    /// `docker compose --profile nginx up` under this project name, through the published ports
    /// (`cargo xtask bench --compose`).
    Compose { project: String },
}

/// CPU and memory one container used during one run, read from its cgroup.
#[derive(Debug, Clone, Serialize)]
pub struct ContainerUsage {
    /// The Compose service (`balancer`, `nginx`, `app`, `redis`).
    pub service: String,
    pub container: String,
    /// CPU seconds (user + system, every process in the container) during the run.
    pub cpu_seconds: Option<f64>,
    /// Peak memory charged to the container during the run (cgroup v1 `max_usage_in_bytes`,
    /// reset before the run), else its usage at the end of the run.
    pub memory_kib: Option<u64>,
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
    /// The requests/s oha was asked for (fixed-rate runs); `None`: as fast as it can.
    pub target_rate: Option<u32>,
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
    pub error_kinds: BTreeMap<String, u64>,
    /// Increase of the Redis counter during the run.
    pub counter_delta: i64,
    /// Why the run failed the correctness check, if it did.
    pub problem: Option<String>,
    /// Proxy CPU seconds (utime + stime, every process of the front door) during the run.
    pub proxy_cpu_seconds: Option<f64>,
    pub cpu_seconds_per_10k: Option<f64>,
    /// The user-space part of `cpu_seconds_per_10k` (loopback only).
    pub user_cpu_seconds_per_10k: Option<f64>,
    /// Peak RSS during the run, summed over the front door's processes (NGINX: master + workers);
    /// in Compose, the door's container memory.
    pub peak_rss_kib: Option<u64>,
    /// Largest single process's peak RSS (NGINX: the biggest worker or master).
    pub peak_rss_max_process_kib: Option<u64>,
    /// Number of processes (in Compose: containers) the CPU and RSS figures cover.
    pub processes: usize,
    /// Whether the peak-RSS mark could be reset before the run (else it is a lifetime peak).
    pub rss_peak_is_per_run: bool,
    /// TCP connections from the front door to the replicas, established at the end of the run
    /// (loopback only).
    pub upstream_connections: Option<u64>,
    /// Compose only: every container of the stack during the run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<ContainerUsage>,
}

/// The resolved plan of a bench invocation.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub stack: StackKind,
    pub quick: bool,
    pub rounds: usize,
    pub duration_ms: u128,
    pub warmup_ms: u128,
    pub concurrency: Vec<usize>,
    pub replicas: usize,
    pub replica_sweep: Vec<usize>,
    pub sweep_concurrency: usize,
    /// Connections of the fixed-rate phase, and its rate as a fraction of NGINX's measured
    /// maximum on the same path (one worker); `None`: no fixed-rate phase (Compose).
    pub fixed_rate: Option<FixedRatePlan>,
    pub static_path: String,
    pub counter_key: String,
    /// `None` in Compose: the balancer logs as docker-compose.yml configures it.
    pub balancer_request_log: Option<RequestLog>,
    pub cores: usize,
}

impl Plan {
    /// The URL path oha requests for `path`.
    pub fn url_path(&self, path: PathKind) -> &str {
        match path {
            PathKind::Count => "/count",
            PathKind::Static => &self.static_path,
        }
    }

    /// The load duration of one measured run.
    pub fn duration(&self) -> Duration {
        Duration::from_millis(self.duration_ms as u64)
    }

    /// The load duration of one warm-up run.
    pub fn warmup(&self) -> Duration {
        Duration::from_millis(self.warmup_ms as u64)
    }

    /// The command line that runs this plan, for the report.
    pub fn command(&self) -> String {
        let mut command = String::from("cargo xtask bench");
        if matches!(self.stack, StackKind::Compose { .. }) {
            command.push_str(" --compose");
        }
        if self.quick {
            command.push_str(" --quick");
        }
        command
    }
}

/// The fixed-rate phase's settings.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct FixedRatePlan {
    pub concurrency: usize,
    pub fraction_of_nginx_max: f64,
}

/// Where the numbers come from.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpu_model: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
    pub nginx: String,
    pub redis: String,
    pub oha: String,
    pub rustc: String,
    /// `git describe --always --dirty` of the workspace the binaries were built from.
    pub git: String,
}

/// One service's CPU and memory in one cell: medians over the rounds of the sums over its
/// containers (the app's replicas together).
#[derive(Debug, Clone, Serialize)]
pub struct ServiceUsage {
    pub service: String,
    pub containers: usize,
    pub cpu_seconds_per_10k: Option<f64>,
    pub memory_kib: Option<f64>,
}

/// Medians over the rounds of one cell (door × path × concurrency × setting × replicas).
#[derive(Debug, Clone, Serialize)]
pub struct CellSummary {
    pub phase: Phase,
    pub setting: Option<Setting>,
    pub replicas: usize,
    pub door: Door,
    pub path: PathKind,
    pub concurrency: usize,
    pub rounds: usize,
    pub requests_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    /// Median of transport errors + non-200 responses per round.
    pub errors_median: f64,
    /// Sum over rounds of transport errors + non-200 responses.
    pub errors_total: u64,
    pub failed_rounds: usize,
    pub target_rate: Option<u32>,
    pub cpu_seconds_per_10k: Option<f64>,
    pub user_cpu_seconds_per_10k: Option<f64>,
    /// Median per-run peak RSS, summed over the door's processes (NGINX: master + workers).
    pub peak_rss_kib: Option<f64>,
    /// Median of the runs' upstream connection counts.
    pub upstream_connections: Option<f64>,
    /// Largest single-process peak RSS seen in any round.
    pub peak_rss_max_process_kib: Option<u64>,
    /// Compose only: every service of the stack.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceUsage>,
}

/// Balancer figures divided by NGINX figures for one cell.
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    pub phase: Phase,
    pub setting: Setting,
    pub replicas: usize,
    pub path: PathKind,
    pub concurrency: usize,
    /// > 1: the balancer serves more.
    pub requests_per_sec: f64,
    /// < 1: the balancer's tail is shorter.
    pub p99: f64,
    pub p999: f64,
    /// < 1: the balancer spends less CPU per request.
    pub cpu_per_request: Option<f64>,
    /// The same for user-space CPU only.
    pub user_cpu_per_request: Option<f64>,
    pub balancer_peak_rss_kib: Option<f64>,
    pub nginx_peak_rss_kib: Option<f64>,
}

/// One of the targets, checked against the medians.
#[derive(Debug, Clone, Serialize)]
pub struct TargetCheck {
    pub target: String,
    pub cell: String,
    pub measured: String,
    pub met: bool,
}

/// Everything one bench found; `report::build` makes it, `report::markdown` and `chart::render`
/// show it.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub generated_utc: String,
    pub duration_seconds: f64,
    pub command: String,
    pub plan: Plan,
    pub machine: Machine,
    pub notes: Vec<String>,
    pub targets: Vec<TargetCheck>,
    pub ratios: Vec<Ratio>,
    pub cells: Vec<CellSummary>,
    pub failures: Vec<String>,
    pub runs: Vec<RunRecord>,
}
