//! The default `cargo xtask bench`: the balancer measured against NGINX and a direct hit on one
//! replica, in one run, on one machine, with `oha`.
//!
//! It owns the loopback plan's groups (which front doors, paths, worker settings, concurrencies
//! and replica counts, in which order; [`groups`]) and the stack they share; [`runner`] owns the
//! per-run protocol: check every process is alive, read the counter, reset the proxy's peak-RSS
//! mark and read its CPU time, run oha, read them all again, and check that the counter rose by
//! exactly the number of successful `/count` responses. The two proxies alternate A B A B within
//! every cell so drift on a noisy machine hits both alike. The flags' plan, the run check and the
//! outputs are the bench's shared ones (`bench::plan`, `bench::core`), also used by `--compose`.
//!
//! It may use the bench's shared modules, [`crate::report`], [`crate::stack`] and
//! [`crate::tools`]; no other runner.

mod groups;
mod runner;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};

use super::core::{self, OutDirs};
use super::{plan, BenchArgs};
use crate::report;
use crate::stack::binaries::Binaries;
use crate::tools::locate;
use runner::Bench;

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

/// Runs the loopback benchmark; `Ok(false)` when a correctness check failed (report still
/// written).
pub fn run(args: &BenchArgs) -> Result<bool> {
    let plan = plan::plan(args)?;
    // Missing tools fail before the (slow) build.
    let oha = locate::oha()?;
    let nginx_bin = locate::nginx()?;
    let redis_bin = locate::redis_server()?;
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
        locate::tool_version(&nginx_bin, "-v"),
        locate::tool_version(&redis_bin, "--version"),
    );
    let mut bench = Bench::start(plan, oha, nginx_bin, &redis_bin, bins, work.path(), out)?;
    for group in &groups::groups(&bench.plan) {
        bench.run_group(group)?;
    }
    let report = report::build(
        bench.plan.clone(),
        machine,
        std::mem::take(&mut bench.records),
        started.elapsed(),
    );
    core::finish(&report, args, &bench.out, started)
}
