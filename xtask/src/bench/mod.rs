//! `cargo xtask bench`: its flags ([`BenchArgs`]) and which runner a command line picks.
//!
//! The folder owns every benchmark runner: [`loopback`] (the default: balancer, NGINX and a
//! direct replica on this machine), [`compose`] (`--compose`: the Compose stack's published
//! ports), [`tls`] (`--tls`: HTTPS), [`instructions`] (`--instructions`: callgrind's count per
//! request), [`redis`] (`--redis`: Redis alone under `redis-benchmark`) and [`reload`]
//! (`--reload`: config reloads under load, and memory per route table) and [`compress`]
//! (`--compress`: the `/` page's bytes per coding, instructions per gzip response against NGINX's
//! `gzip on`). What more than one
//! runner needs is written once beside them: [`route_files`] (the `--config` files the
//! instructions and reload benches write), [`plan`] (the flags
//! checked into a [`Plan`](crate::report::model::Plan)), [`core`] (the run check, the record of
//! one oha run, progress lines, output directories, the closing summary) and [`tls_files`] (the
//! certificate pair of the HTTPS doors). `core` is no command and uses no runner.
//!
//! It may use [`crate::report`] (the report's data and writers), [`crate::stack`] (the
//! processes), [`crate::tools`] (oha, callgrind, openssl, `/proc`), [`crate::dev_cert`] and
//! [`crate::config_error`]; nothing below it uses `bench`.

mod compose;
mod compress;
mod core;
mod instructions;
mod loopback;
mod plan;
mod redis;
mod reload;
mod route_files;
mod tls;
mod tls_files;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use shared::duration::parse_nonzero_duration;

use crate::stack::binaries::BinaryArgs;
use crate::stack::RequestLog;

/// Flags of `cargo xtask bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// CI mode, under a minute: one round, 1 s runs, concurrency 16 and 256, replicas 1 and 2.
    /// Fails only on errors or a counter mismatch, never on speed.
    #[arg(long)]
    pub quick: bool,
    /// Measure the Compose stack instead, through its published ports 5000 (balancer) and 5002
    /// (NGINX): `docker compose --profile nginx up -d --build --wait`, the bench, `down -v`.
    /// With --quick, prints SKIP and succeeds when no Docker engine answers, unless
    /// REQUIRE_DOCKER=1 (as CI sets it): then it fails.
    #[arg(long)]
    pub compose: bool,
    /// Count user-space instructions per proxied request instead (valgrind's callgrind): the
    /// balancer (`--workers 1`) and NGINX (one process) in front of one replica, 3 runs of 10,000
    /// requests on both paths (quick: 1 run of 2,000, static path); writes instructions.{md,json}.
    #[arg(long, conflicts_with = "compose")]
    pub instructions: bool,
    /// Measure HTTPS instead: the balancer's --tls-listen against NGINX's `ssl` listener, one
    /// worker each, same certificate (`xtask/src/bench/tls`; report in <target>/bench-tls). With
    /// --instructions: instructions per HTTPS request and per full handshake
    /// (<target>/bench-instructions-tls).
    #[arg(long, conflicts_with = "compose")]
    pub tls: bool,
    /// Measure Redis alone instead: its own `redis-server` run as the stack runs it (AOF on,
    /// `appendfsync everysec`) under `redis-benchmark -t incr` (1 key and 100,000 keys, not
    /// pipelined and `-P 16`, then 1, 16 and 50 connections); INCR/s and Redis's CPU per INCR.
    /// 300,000 INCR per stream (quick: 20,000). Report in <target>/bench-redis (or --out-dir).
    #[arg(long, conflicts_with_all = ["compose", "instructions", "tls"])]
    pub redis: bool,
    /// With --instructions: the balancer reads a generated config file (`--config`) instead of
    /// `--upstreams`. 0: no file (flag-only); 1: one host-less route `/`; N ≥ 2: N/2 hosts ×
    /// 2 paths (`h<i>.example.test`, `/count` and `/static`) plus a host-less `/`, the measured
    /// requests sent with `Host: h57.example.test` (of 100 hosts), so each is matched among them.
    /// The file is written into the output directory (`xtask/src/bench/route_files.rs`).
    #[arg(long, default_value_t = 0, requires = "instructions")]
    pub routes: usize,
    /// With --instructions: measure the balancer only (no h2c cell, no hyper floor, no NGINX),
    /// for an A/B of two balancer builds or route files.
    #[arg(long, requires = "instructions")]
    pub balancer_only: bool,
    /// Reload under load instead (`xtask/src/bench/reload`): the balancer with a config file in
    /// front of the replicas and Redis, oha at a fixed rate (`--reload-rate`) with 64 connections
    /// on `/count` for `--duration` (default 20s), once without reloads and once with a reload
    /// every second (the file rewritten between two contents, then `POST /config/reload`); then
    /// the balancer's peak and final RSS with no file, 1 route and 200 routes after the same
    /// load. Report in <target>/bench-reload (or --out-dir).
    #[arg(long, conflicts_with_all = ["compose", "instructions", "tls", "redis"])]
    pub reload: bool,
    /// Response compression instead (`xtask/src/bench/compress`): the `/` page's bytes on the wire
    /// with each coding, and instructions per response under callgrind, the balancer
    /// (`--compress gzip`, level 5) against NGINX (`gzip on`, `gzip_comp_level 5`), with and
    /// without `Accept-Encoding: gzip`; 2 runs of 2,000 (quick: 1 of 300). Report in
    /// <target>/bench-compress (or --out-dir).
    #[arg(long, conflicts_with_all = ["compose", "instructions", "tls", "redis", "reload"])]
    pub compress: bool,
    /// Requests per second of the reload bench (all 64 connections together).
    #[arg(long, default_value_t = 2000)]
    pub reload_rate: u32,
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
    /// Also copy report.md, report.json and report.svg here (e.g. `docs/bench`, where the docs link to it).
    #[arg(long, value_name = "DIR")]
    pub publish_to: Option<PathBuf>,
    #[command(flatten)]
    pub binaries: BinaryArgs,
}

/// Runs the benchmark the flags pick; `Ok(false)` when a run failed its check (the report is
/// still written).
pub fn run(args: &BenchArgs) -> Result<bool> {
    if args.redis {
        return redis::run(args);
    }
    if args.reload {
        return reload::run(args);
    }
    if args.compress {
        return compress::run(args);
    }
    if args.compose {
        return compose::run(args);
    }
    if args.instructions {
        return instructions::run(args);
    }
    if args.tls {
        return tls::run(args);
    }
    if args.quick {
        // --quick (CI) also runs one short TLS round: HTTPS must keep serving correctly.
        return loopback::run(args).and_then(|plain| Ok(tls::run(args)? && plain));
    }
    loopback::run(args)
}

/// `BenchArgs` from a command line, for the tests of every runner.
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
    fn routes_and_balancer_only_go_with_instructions_and_reload_alone() {
        let a = parse_args(&[
            "bench",
            "--instructions",
            "--routes",
            "200",
            "--balancer-only",
        ]);
        let a = a.unwrap();
        assert_eq!((a.routes, a.balancer_only), (200, true));
        assert!(parse_args(&["bench", "--routes", "1"]).is_err());
        assert!(parse_args(&["bench", "--balancer-only"]).is_err());
        assert!(parse_args(&["bench", "--reload", "--instructions"]).is_err());
        assert_eq!(
            parse_args(&["bench", "--reload"]).unwrap().reload_rate,
            2000
        );
    }

    #[test]
    fn compress_is_a_runner_of_its_own() {
        assert!(parse_args(&["bench", "--compress"]).unwrap().compress);
        for other in [
            "--instructions",
            "--reload",
            "--tls",
            "--redis",
            "--compose",
        ] {
            assert!(
                parse_args(&["bench", "--compress", other]).is_err(),
                "{other}"
            );
        }
    }
}
