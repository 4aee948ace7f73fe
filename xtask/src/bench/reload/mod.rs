//! `cargo xtask bench --reload`: the config file's live reload under load, and the memory a
//! route table costs.
//!
//! Redis and `--replicas` app replicas as the loopback bench starts them; the balancer (all
//! workers, access log off) reads a config file of two groups (`app`: every replica, `next`:
//! the first) and a `/` route split between them ([`reload_toml`]). Each round runs two phases
//! of `--duration` (default 20 s) at `--reload-rate` requests/s over 64 connections on `/count`
//! ([`load`]): without reloads, then with the file rewritten to its other content (the split
//! moved 90/10 ↔ 50/50 and a route added or removed) and `POST /config/reload` every second.
//! Every request must succeed and the counter must rise by exactly the 200s; the report gives
//! p50/p99 of both and the p99 ratio. Then [`memory`]: peak and final RSS of a fresh balancer
//! with no file, 1 route and 200 routes after the same load. [`report`] writes
//! `reload.{md,json}`.
//!
//! It may use the bench's shared modules (`core`, `route_files`), [`crate::stack`] and
//! [`crate::tools`]; no other runner.

mod load;
mod memory;
mod report;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;

use super::core::OutDirs;
use super::route_files::{self, reload_toml};
use super::BenchArgs;
use crate::config_error::config_error;
use crate::report::git_describe;
use crate::stack::{self, Balancer, Redis, Replica, RequestLog};
use crate::tools::locate;
use crate::tools::oha::{self, Load};
use load::{Phase, Target};
use memory::Memory;

/// The admin token the bench gives the balancer (loopback only, this run only).
const TOKEN: &str = "xtask-bench-reload-token";
/// Route tables of the memory phase (0: no file).
const MEMORY_ROUTES: [usize; 3] = [0, 1, 200];

/// Everything `reload.json` holds.
#[derive(Debug, Serialize)]
pub struct ReloadReport {
    pub git: String,
    pub oha: String,
    pub replicas: usize,
    pub cores: usize,
    pub phases: Vec<Phase>,
    pub memory: Vec<Memory>,
    pub failures: Vec<String>,
}

/// Runs the reload and memory phases; `Ok(false)` when a check failed (report written).
pub fn run(args: &BenchArgs) -> Result<bool> {
    let rounds = args.rounds.unwrap_or(1);
    let duration = args.duration.unwrap_or(Duration::from_secs(20));
    if rounds == 0 || args.replicas == 0 || args.reload_rate == 0 {
        return Err(config_error(
            "--rounds, --replicas and --reload-rate must be at least 1",
        ));
    }
    let started = Instant::now();
    let oha_bin = locate::oha()?;
    let bins = args.binaries.resolve()?;
    let out = OutDirs::prepare(args, "bench-reload")?;
    let work = tempfile::Builder::new()
        .prefix("xtask-reload-")
        .tempdir()
        .context("creating a temporary directory")?;
    let redis_dir = work.path().join("redis");
    let redis = Redis::start(
        &locate::redis_server()?,
        stack::free_port()?,
        &redis_dir,
        &out.logs,
    )?;
    let replicas = stack::start_replicas(
        &bins.app,
        &redis,
        args.replicas,
        &args.counter_key,
        &out.logs,
    )?;
    let mut report = ReloadReport {
        git: git_describe(),
        oha: oha::version(&oha_bin),
        replicas: args.replicas,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        phases: Vec::new(),
        memory: Vec::new(),
        failures: Vec::new(),
    };
    let servers: Vec<_> = replicas.iter().map(|r| r.addr).collect();
    let run = (
        bins.balancer.as_path(),
        oha_bin.as_path(),
        &redis,
        replicas.as_slice(),
    );
    reload_phases(args, run, (rounds, duration), &out, &mut report)?;
    for round in 1..=rounds {
        for routes in MEMORY_ROUTES {
            match memory::measure((&bins.balancer, &oha_bin), &servers, (routes, round), &out) {
                Ok(m) => report.memory.push(m),
                Err(e) => report.failures.push(format!("memory {routes}: {e:#}")),
            }
        }
    }
    report::finish(&report, args, &out, started)
}

/// The balancer on the reload file, warmed up, then each round's two phases.
fn reload_phases(
    args: &BenchArgs,
    (balancer, oha_bin, redis, replicas): (&Path, &Path, &Redis, &[Replica]),
    (rounds, duration): (usize, Duration),
    out: &OutDirs,
    report: &mut ReloadReport,
) -> Result<()> {
    let servers: Vec<_> = replicas.iter().map(|r| r.addr).collect();
    let config = out.root.join("balancer-reload.toml");
    route_files::write_text(&config, &reload_toml(&servers, false))?;
    let flags = [
        "--config",
        &config.display().to_string(),
        "--admin-token",
        TOKEN,
    ]
    .map(String::from);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let ports = (stack::free_port()?, stack::free_port()?);
    let log = out.logs.join("balancer-reload.log");
    let b = Balancer::start(balancer, ports, &[], None, RequestLog::Off, &log, &flags)?;
    let target = Target {
        oha: oha_bin,
        url: format!("http://{}/count", b.addr),
        admin: b.admin_addr,
        token: TOKEN,
        config: &config,
        servers: &servers,
        redis,
        counter_key: &args.counter_key,
    };
    let warmup = Load::Rate {
        per_second: args.reload_rate,
        duration: Duration::from_secs(3),
    };
    oha::run_load(
        oha_bin,
        &target.url,
        load::CONNECTIONS,
        warmup,
        &out.raw.join("warmup"),
        &[],
    )?;
    for round in 1..=rounds {
        for reloading in [false, true] {
            let stem = out.raw.join(format!("phase-{round}-{reloading}"));
            let rate = (args.reload_rate, duration);
            let phase = load::phase(&target, rate, (reloading, round), &stem)?;
            eprintln!(
                "xtask: round {round} {}: {} ok, {} failed, p50 {:.2} ms, p99 {:.2} ms, {} reloads",
                if reloading { "reloading" } else { "steady" },
                phase.ok,
                phase.failed,
                phase.p50_ms,
                phase.p99_ms,
                phase.reloads.len()
            );
            report.failures.extend(report::phase_problems(&phase));
            report.phases.push(phase);
        }
    }
    Ok(())
}
