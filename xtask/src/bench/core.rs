//! The shared core of the bench runners, itself no command: what every runner does the same way
//! around one oha run, written once.
//!
//! It owns the run check (no errors, only 200s, and a Redis counter that rose by exactly the
//! 200 responses to `/count` and not at all on the static path), the [`RunRecord`] of one run,
//! the CPU-per-10k figure, where oha's raw output goes, the checked warm-up, the `[n/total]`
//! progress lines, the output directories and the closing summary. The loopback and Compose
//! runners build on all of it; the TLS runner on the run check and [`per_10k`].

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use super::BenchArgs;
use crate::report;
use crate::report::model::{Door, PathKind, Phase, Report, RunRecord, Setting};
use crate::stack::binaries;
use crate::tools::oha::OhaResult;

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

    /// Writes `<stem>.md` and `<stem>.json` into the output directory and every `--publish-to`.
    pub fn write_reports(
        &self,
        args: &BenchArgs,
        stem: &str,
        markdown: &str,
        json: &str,
    ) -> Result<()> {
        let mut dirs = vec![self.root.clone()];
        dirs.extend(args.publish_to.clone());
        for dir in dirs {
            fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for (ext, text) in [("md", markdown), ("json", json)] {
                let path = dir.join(format!("{stem}.{ext}"));
                fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
                eprintln!("xtask: wrote {}", path.display());
            }
        }
        Ok(())
    }
}

/// Writes the report (to the output dir and `--publish-to`), prints the summary; `Ok(false)`
/// when a run failed its check.
pub fn finish(report: &Report, args: &BenchArgs, out: &OutDirs, started: Instant) -> Result<bool> {
    let mut written = report::write_all(report, &out.root)?;
    if let Some(dir) = &args.publish_to {
        written.extend(report::write_all(report, dir)?);
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

#[cfg(test)]
mod tests {
    use super::*;

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
