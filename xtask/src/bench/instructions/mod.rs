//! `cargo xtask bench --instructions`: user-space instructions per proxied request, the balancer
//! (`--workers 1`) against NGINX (`master_process off`, one worker), each run under valgrind's
//! callgrind in front of the same replica.
//!
//! Why: on a shared 2-core machine, requests/s and CPU seconds move by up to 25 % between rounds,
//! so a change of a few percent on the request path cannot be judged by them. Callgrind counts
//! the instructions a process executes, which depend on the binary and its inputs, not on what
//! else the machine does. Instrumentation is switched on only after a warm-up
//! (`callgrind_control -i on`), for a fixed number of requests over 16 keep-alive connections,
//! and off again before the process stops, so start-up and shutdown are not counted. Each door
//! restarts for each run and the spread of the runs is reported: an A/B of one change is a
//! number. A third door, the hyper floor (`balancer/examples/hyper_floor.rs`: hyper passing
//! requests through with no logic of ours), is measured the same way, so the report splits the
//! balancer's count into what hyper costs at least and what the balancer adds. Outputs
//! `instructions.{md,json}` beside the bench report. With `--tls` the cases are HTTPS ones
//! ([`cases`]), in `bench-instructions-tls`. [`measure`] starts a door under callgrind and counts
//! one run; [`report`] turns the runs into the tables.
//!
//! With `--routes N` the balancer reads a generated config file instead of `--upstreams`
//! ([`RouteFile`]), and every door's requests carry the file's `Host`; `--balancer-only` drops
//! the other doors (an A/B of balancer builds or route tables).
//!
//! It may use the bench's shared modules (`core`, `route_files`, `tls_files`), [`crate::stack`] and
//! [`crate::tools`]; no other runner.

mod cases;
mod measure;
mod report;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;

use super::core::OutDirs;
use super::route_files::RouteFile;
use super::tls_files::TlsFiles;
use super::BenchArgs;
use crate::config_error::config_error;
use crate::report::git_describe;
use crate::report::model::Door;
use crate::stack::{self, binaries, Redis};
use crate::tools::callgrind::{self, FunctionCost};
use crate::tools::locate;
use cases::Case;
use measure::Bench;

/// Keep-alive connections oha opens in every measured run.
const CONNECTIONS: usize = 16;
/// Functions listed per door.
const TOP_FUNCTIONS: usize = 15;
/// Seconds of counted `openssl s_time -new` in the full-handshake case (a few hundred
/// handshakes under callgrind).
const HANDSHAKE_SECONDS: u64 = 8;

/// Sizes of one instructions benchmark.
#[derive(Debug, Clone, Serialize)]
pub struct InstructionsPlan {
    pub runs: usize,
    pub warmup_requests: u64,
    pub requests: u64,
    pub connections: usize,
    pub cases: Vec<Case>,
    /// `--routes`: 0 flag-only, else the routes of the balancer's config file.
    pub routes: usize,
    /// `--balancer-only`: the other doors are not measured.
    pub balancer_only: bool,
}

impl InstructionsPlan {
    /// Full: 3 runs of 10,000 requests on both paths; quick (CI): one run of 2,000, static only.
    pub fn of(args: &BenchArgs) -> Self {
        let quick = args.quick;
        Self {
            runs: args.rounds.unwrap_or(if quick { 1 } else { 3 }),
            warmup_requests: if quick { 500 } else { 2_000 },
            requests: if quick { 2_000 } else { 10_000 },
            connections: CONNECTIONS,
            cases: cases::cases(args),
            routes: args.routes,
            balancer_only: args.balancer_only,
        }
    }
}

/// The doors measured on a case, in the order each run starts them (HTTPS has no h2c cell and
/// no hyper floor; `--balancer-only` only the balancer).
fn doors(case: &Case, plan: &InstructionsPlan) -> &'static [Door] {
    if plan.balancer_only {
        &[Door::Balancer]
    } else if case.tls() {
        &[Door::Balancer, Door::Nginx]
    } else {
        &[
            Door::Balancer,
            Door::BalancerH2c,
            Door::HyperFloor,
            Door::Nginx,
        ]
    }
}

/// One door measured once on one path.
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    pub door: Door,
    pub path: String,
    pub run: usize,
    pub requests: u64,
    pub instructions: u64,
    pub per_request: f64,
    /// The most expensive functions (self cost), for the report.
    pub top: Vec<FunctionCost>,
    /// Instructions by crate or library.
    pub groups: Vec<(String, u64)>,
}

/// Everything `instructions.json` holds.
#[derive(Debug, Serialize)]
pub struct InstructionsReport {
    pub plan: InstructionsPlan,
    pub git: String,
    pub valgrind: String,
    pub nginx: String,
    pub measurements: Vec<Measurement>,
    pub failures: Vec<String>,
}

/// Runs the instructions benchmark; `Ok(false)` when a run failed its check (report written).
pub fn run(args: &BenchArgs) -> Result<bool> {
    let plan = InstructionsPlan::of(args);
    if plan.runs == 0 {
        return Err(config_error("--rounds must be at least 1"));
    }
    callgrind::check_installed()?;
    let oha = locate::oha()?;
    let nginx_bin = locate::nginx()?;
    let redis_bin = locate::redis_server()?;
    let bins = args.binaries.resolve()?;
    let floor = match args.balancer_only {
        true => PathBuf::new(),
        false => binaries::hyper_floor(args.binaries.no_build)?,
    };
    let started = Instant::now();
    let out_name = if args.tls {
        "bench-instructions-tls"
    } else {
        "bench-instructions"
    };
    let out = OutDirs::prepare(args, out_name)?;
    let work = tempfile::Builder::new()
        .prefix("xtask-instructions-")
        .tempdir()
        .context("creating a temporary directory")?;
    let redis = Redis::start(
        &redis_bin,
        stack::free_port()?,
        &work.path().join("redis"),
        &out.logs,
    )?;
    let replicas = stack::start_replicas(&bins.app, &redis, 1, &args.counter_key, &out.logs)?;
    let tls = match args.tls {
        true => Some(TlsFiles::write(work.path())?),
        false => None,
    };
    let upstreams = [replicas[0].addr];
    let routes = match args.routes {
        0 => None,
        n => Some(RouteFile::write(&out.root, n, &upstreams)?),
    };
    let bench = Bench {
        oha,
        nginx_bin: nginx_bin.clone(),
        bins,
        floor,
        replica: &replicas[0],
        redis: &redis,
        counter_key: &args.counter_key,
        work: work.path().to_path_buf(),
        out: &out,
        tls,
        routes,
    };
    let mut report = InstructionsReport {
        plan: plan.clone(),
        git: git_describe(),
        valgrind: locate::tool_version(Path::new("valgrind"), "--version"),
        nginx: locate::tool_version(&nginx_bin, "-v"),
        measurements: Vec::new(),
        failures: Vec::new(),
    };
    measure_all(&bench, &plan, &mut report);
    report::finish(&report, args, &out, started)
}

/// Every case, run and door measured in turn; a failed run is recorded and the rest go on.
fn measure_all(bench: &Bench, plan: &InstructionsPlan, report: &mut InstructionsReport) {
    for case in &plan.cases {
        let path = &case.label;
        for run in 1..=plan.runs {
            for &door in doors(case, plan) {
                match bench.measure(door, case, run, plan) {
                    Ok(m) => {
                        eprintln!(
                            "xtask: {} {path} run {run}: {:.0} instructions/request",
                            door.label(),
                            m.per_request
                        );
                        report.measurements.push(m);
                    }
                    Err(e) => report
                        .failures
                        .push(format!("{} {path} run {run}: {e:#}", door.label())),
                }
            }
        }
    }
}
