//! The reload bench's outputs: each phase (failed requests, p50/p99/p99.9, counter against the
//! 200s, reload answers), the p99 ratio of the reloading phase to the steady one per round, and
//! the memory readings per route table with the difference to the one-route file;
//! `reload.{md,json}` written (and to `--publish-to`) and the tables printed.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context, Result};

use super::load::{Phase, CONNECTIONS};
use super::memory::{Memory, REQUESTS};
use super::ReloadReport;
use crate::bench::core::OutDirs;
use crate::bench::BenchArgs;

/// What a phase got wrong: a failed request, a counter off the 200s, a reload not applied.
pub fn phase_problems(phase: &Phase) -> Vec<String> {
    let name = format!(
        "round {} {}",
        phase.round,
        if phase.reloading {
            "reloading"
        } else {
            "steady"
        }
    );
    let mut problems = Vec::new();
    if phase.failed > 0 {
        problems.push(format!("{name}: {} failed requests", phase.failed));
    }
    if phase.counter_delta != phase.ok as i64 {
        problems.push(format!(
            "{name}: the counter rose by {} for {} successful responses",
            phase.counter_delta, phase.ok
        ));
    }
    let bad: Vec<&String> = (phase.reloads.iter())
        .filter(|r| !matches!(r.as_str(), "ok" | "unchanged"))
        .collect();
    if !bad.is_empty() {
        problems.push(format!("{name}: reloads not applied: {bad:?}"));
    }
    problems
}

/// Writes `reload.{md,json}`, prints the tables; `Ok(false)` when a check failed.
pub fn finish(
    report: &ReloadReport,
    args: &BenchArgs,
    out: &OutDirs,
    started: Instant,
) -> Result<bool> {
    let markdown = markdown(report);
    let json = serde_json::to_string_pretty(report).context("serializing the report")?;
    out.write_reports(args, "reload", &markdown, &json)?;
    eprintln!(
        "{}\n{}\n\n{}",
        phase_table(report),
        median_line(report),
        memory_table(report)
    );
    eprintln!(
        "xtask: reload bench took {:.0} s",
        started.elapsed().as_secs_f64()
    );
    for failure in &report.failures {
        eprintln!("xtask: FAILED {failure}");
    }
    Ok(report.failures.is_empty())
}

/// `reload.md`: the setup, the phases, the memory readings, the failures.
fn markdown(report: &ReloadReport) -> String {
    let mut out = format!(
        "# Config reload under load, and memory per route table\n\nCommit {}, {}, {} cores, {} app \
         replicas. oha on `/count` with {CONNECTIONS} connections at a fixed rate, once without reloads \
         and once with the config file rewritten (split 90/10 ↔ 50/50, a route added or removed) and \
         `POST /config/reload` every second. Memory: a fresh balancer per reading, {REQUESTS} \
         `/count` requests over {CONNECTIONS} connections, then `VmHWM` and `VmRSS`.\n\n",
        report.git, report.oha, report.cores, report.replicas
    );
    out.push_str(&phase_table(report));
    out.push_str(&format!("\n{}\n\n", median_line(report)));
    out.push_str(&memory_table(report));
    if !report.failures.is_empty() {
        out.push_str("\n## Failed checks\n\n");
        for f in &report.failures {
            out.push_str(&format!("- {f}\n"));
        }
    }
    out
}

/// One row per phase, the reloading row with its p99 over the steady one of its round.
fn phase_table(report: &ReloadReport) -> String {
    let mut out = String::from(
        "| round | phase | rate/s | s | ok | failed | counter delta | p50 ms | p99 ms | p99.9 ms | reloads (answers) | p99 / steady |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|\n",
    );
    for p in &report.phases {
        let steady = report
            .phases
            .iter()
            .find(|s| s.round == p.round && !s.reloading);
        let ratio = match (p.reloading, steady) {
            (true, Some(s)) => format!("**{:.3}**", p.p99_ms / s.p99_ms),
            _ => "–".to_string(),
        };
        let mut answers: BTreeMap<&str, usize> = BTreeMap::new();
        for r in &p.reloads {
            *answers.entry(r.as_str()).or_default() += 1;
        }
        out.push_str(&format!(
            "| {} | {} | {} | {:.0} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {} {answers:?} | {ratio} |\n",
            p.round,
            if p.reloading { "reload every 1 s" } else { "steady" },
            p.rate,
            p.seconds,
            p.ok,
            p.failed,
            p.counter_delta,
            p.p50_ms,
            p.p99_ms,
            p.p999_ms,
            p.reloads.len(),
        ));
    }
    out
}

/// The median p99 of the steady phases against that of the reloading ones (the upper middle
/// of an even count), the figure that a noisy round moves least.
fn median_line(report: &ReloadReport) -> String {
    let median = |reloading: bool| {
        let mut p99: Vec<f64> = (report.phases.iter())
            .filter(|p| p.reloading == reloading)
            .map(|p| p.p99_ms)
            .collect();
        p99.sort_by(f64::total_cmp);
        p99.get(p99.len() / 2).copied()
    };
    match (median(false), median(true)) {
        (Some(steady), Some(reloading)) => format!(
            "Median p99 over the rounds: steady {steady:.2} ms, reloading {reloading:.2} ms, ratio **{:.3}**.",
            reloading / steady
        ),
        _ => "No complete round.".to_string(),
    }
}

/// One row per memory reading, with the difference to the one-route file of the same round.
fn memory_table(report: &ReloadReport) -> String {
    let mut out = String::from(
        "| round | routes | ok | peak RSS KiB | RSS after KiB | peak − 1 route KiB | after − 1 route KiB |\n|---:|---|---:|---:|---:|---:|---:|\n",
    );
    for m in &report.memory {
        let one = report
            .memory
            .iter()
            .find(|o| o.round == m.round && o.routes == 1);
        let diff = |f: fn(&Memory) -> u64| {
            one.map_or("–".to_string(), |o| {
                format!("{:+}", f(m) as i64 - f(o) as i64)
            })
        };
        let routes = match m.routes {
            0 => "no file (--upstreams)".to_string(),
            n => n.to_string(),
        };
        out.push_str(&format!(
            "| {} | {routes} | {} | {} | {} | {} | {} |\n",
            m.round,
            m.ok,
            m.peak_rss_kib,
            m.rss_after_kib,
            diff(|m| m.peak_rss_kib),
            diff(|m| m.rss_after_kib),
        ));
    }
    out
}
