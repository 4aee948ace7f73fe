//! The instructions bench's outputs: per path the median instructions per request of every door,
//! their spread and ratios (the hyper floor beside NGINX, the balancer above the floor, h2c), then
//! each door's top functions and crates from its median run; `instructions.{md,json}` written
//! and the table printed.
//!
//! The median here is the middle measured run (the upper one of an even count), not an average:
//! the report shows that run's functions, so the figure must be one a run produced.

use std::time::Instant;

use anyhow::{Context, Result};

use super::{doors, InstructionsReport, Measurement};
use crate::bench::core::OutDirs;
use crate::bench::BenchArgs;
use crate::report::model::Door;

/// Writes `instructions.{md,json}` (and to `--publish-to`), prints the summary.
pub fn finish(
    report: &InstructionsReport,
    args: &BenchArgs,
    out: &OutDirs,
    started: Instant,
) -> Result<bool> {
    let markdown = markdown(report);
    let json = serde_json::to_string_pretty(report).context("serializing the report")?;
    out.write_reports(args, "instructions", &markdown, &json)?;
    eprintln!("{}", summary_table(report));
    eprintln!(
        "xtask: instructions bench took {:.0} s",
        started.elapsed().as_secs_f64()
    );
    for failure in &report.failures {
        eprintln!("xtask: FAILED {failure}");
    }
    Ok(report.failures.is_empty())
}

/// Median, minimum and maximum instructions per request of `door` on `path`.
pub fn stats(report: &InstructionsReport, door: Door, path: &str) -> Option<(f64, f64, f64)> {
    let mut values: Vec<f64> = report
        .measurements
        .iter()
        .filter(|m| m.door == door && m.path == path)
        .map(|m| m.per_request)
        .collect();
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    Some((
        values[values.len() / 2],
        values[0],
        values[values.len() - 1],
    ))
}

/// The per-path table: median instructions per request, spread, ratio to NGINX; then the hyper
/// floor beside NGINX and the part of the balancer's count above the floor.
pub fn summary_table(report: &InstructionsReport) -> String {
    let mut out = String::from(
        "| path | balancer instr/request | spread | NGINX instr/request | spread | ratio | hyper floor | floor / NGINX | balancer above the floor | balancer h2c instr/request | h2c ratio |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for path in report.plan.cases.iter().map(|c| &c.label) {
        let Some(b) = stats(report, Door::Balancer, path) else {
            continue;
        };
        let spread = |(median, min, max): (f64, f64, f64)| (max - min) / median * 100.0;
        let Some(n) = stats(report, Door::Nginx, path) else {
            // --balancer-only: the balancer's cells alone.
            out.push_str(&format!(
                "| `{path}` | {:.0} | ±{:.2} % | – | – | – | – | – | – | – | – |\n",
                b.0,
                spread(b) / 2.0
            ));
            continue;
        };
        let floor = match stats(report, Door::HyperFloor, path) {
            Some((f, _, _)) => format!("{f:.0} | {:.2}× | {:.0}", f / n.0, b.0 - f),
            None => "– | – | –".to_string(),
        };
        let h2c = stats(report, Door::BalancerH2c, path);
        out.push_str(&format!(
            "| `{path}` | {:.0} | ±{:.2} % | {:.0} | ±{:.2} % | **{:.2}×** | {floor} | {} | {} |\n",
            b.0,
            spread(b) / 2.0,
            n.0,
            spread(n) / 2.0,
            b.0 / n.0,
            h2c.map_or("-".into(), |h| format!(
                "{:.0} (±{:.2} %)",
                h.0,
                spread(h) / 2.0
            )),
            h2c.map_or("-".into(), |h| format!("{:.2}×", h.0 / n.0)),
        ));
    }
    out
}

/// `instructions.md`: the summary, then each door's top functions and crates (median run).
pub fn markdown(report: &InstructionsReport) -> String {
    let plan = &report.plan;
    let mut out = format!(
        "# Instructions per proxied request\n\nUser-space instructions counted by valgrind's callgrind ({}), \
         {} run(s) per door and path, {} requests over {} keep-alive connections after a warm-up of {}; \
         the balancer with `--workers 1`, NGINX ({}) with `master_process off` and one worker, and the hyper \
         floor (`balancer/examples/hyper_floor.rs`: hyper passing requests through, no logic of ours), all in \
         front of the same single replica. Commit {}.\n\n{}",
        report.valgrind, plan.runs, plan.requests, plan.connections, plan.warmup_requests, report.nginx, report.git,
        setup_note(plan)
    );
    out.push_str(&summary_table(report));
    for case in &plan.cases {
        let path = &case.label;
        for &door in doors(case, plan) {
            if let Some(m) = median_measurement(report, door, path) {
                out.push_str(&door_section(m));
            }
        }
    }
    if !report.failures.is_empty() {
        out.push_str("\n## Failed runs\n\n");
        for f in &report.failures {
            out.push_str(&format!("- {f}\n"));
        }
    }
    out
}

/// What `--routes` and `--balancer-only` changed, as a sentence (empty when neither was given).
fn setup_note(plan: &super::InstructionsPlan) -> String {
    let mut note = match plan.routes {
        0 => String::new(),
        1 => "The balancer read a config file of one host-less route `/` (`--routes 1`). ".into(),
        n => format!(
            "The balancer read a config file of {n} routes ({} hosts × `/count` and `/static`) plus a \
             host-less `/` (`--routes {n}`); the requests carried the `Host` of one of them. ",
            n.div_ceil(2)
        ),
    };
    if plan.balancer_only {
        note.push_str("Balancer only (`--balancer-only`). ");
    }
    if !note.is_empty() {
        note.push_str("\n\n");
    }
    note
}

fn median_measurement<'a>(
    report: &'a InstructionsReport,
    door: Door,
    path: &str,
) -> Option<&'a Measurement> {
    let (median, _, _) = stats(report, door, path)?;
    report
        .measurements
        .iter()
        .find(|m| m.door == door && m.path == path && m.per_request == median)
}

/// One door's top functions and crate totals, per request.
fn door_section(m: &Measurement) -> String {
    let per = |n: u64| n as f64 / m.requests.max(1) as f64;
    let share = |n: u64| n as f64 / m.instructions.max(1) as f64 * 100.0;
    let mut out = format!(
        "\n## {} on `{}` (run {}: {:.0} instructions/request)\n\n| crate or library | instr/request | share |\n|---|---:|---:|\n",
        m.door.label(),
        m.path,
        m.run,
        m.per_request
    );
    for (group, n) in m.groups.iter().take(12) {
        out.push_str(&format!(
            "| {group} | {:.0} | {:.1} % |\n",
            per(*n),
            share(*n)
        ));
    }
    out.push_str(
        "\n| function (self cost) | crate | instr/request | share |\n|---|---|---:|---:|\n",
    );
    for f in &m.top {
        let name: String = f.function.chars().take(110).collect();
        out.push_str(&format!(
            "| `{}` | {} | {:.0} | {:.1} % |\n",
            name.replace('|', "\\|"),
            f.group,
            per(f.instructions),
            share(f.instructions)
        ));
    }
    out
}
