//! The compression bench's outputs: the page's bytes on the wire per door and coding, and per
//! door the median instructions per response with and without `Accept-Encoding: gzip` and their
//! difference (what compressing one response costs); `compress.{md,json}` written and the tables
//! printed.

use std::fmt::Write as _;
use std::time::Instant;

use anyhow::{Context, Result};

use super::{accept_label, CompressReport, Door, GZIP_LEVEL, PATH};
use crate::bench::core::OutDirs;
use crate::bench::BenchArgs;

/// Writes `compress.{md,json}` (and to `--publish-to`), prints the tables.
pub fn finish(
    report: &CompressReport,
    args: &BenchArgs,
    out: &OutDirs,
    started: Instant,
) -> Result<bool> {
    let tables = tables(report);
    let markdown = format!(
        "# Compression: bytes and instructions per response\n\n\
         `cargo xtask bench --compress` at {} ({}, {}); `GET {PATH}` of one app replica, \
         {} counted responses per run, {} run(s), median run shown.\n\n{tables}",
        report.git, report.valgrind, report.nginx, report.requests, report.runs
    );
    let json = serde_json::to_string_pretty(report).context("serializing the report")?;
    out.write_reports(args, "compress", &markdown, &json)?;
    eprintln!("{tables}");
    eprintln!(
        "xtask: compression bench took {:.0} s",
        started.elapsed().as_secs_f64()
    );
    for failure in &report.failures {
        eprintln!("xtask: FAILED {failure}");
    }
    Ok(report.failures.is_empty())
}

/// The median run's instructions per response of `door` with `accept` (the upper middle of
/// an even count: a figure a run produced).
pub fn median(report: &CompressReport, door: Door, accept: Option<&str>) -> Option<f64> {
    let mut values: Vec<f64> = report
        .counts
        .iter()
        .filter(|c| c.door == door && c.accept == accept)
        .map(|c| c.per_request)
        .collect();
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

/// Both tables in Markdown.
pub fn tables(report: &CompressReport) -> String {
    let mut md = String::from(
        "| door | Accept-Encoding | Content-Encoding | bytes on the wire | of identity |\n\
         | --- | --- | --- | ---: | ---: |\n",
    );
    for w in &report.wire {
        let identity = report
            .wire
            .iter()
            .find(|i| i.door == w.door && i.accept.is_none())
            .map_or(0, |i| i.bytes);
        let share = match identity {
            0 => "—".to_string(),
            n => format!("{:.1} %", 100.0 * w.bytes as f64 / n as f64),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {share} |",
            w.door.label(),
            accept_label(w.accept),
            w.coding,
            w.bytes
        );
    }
    let _ = write!(
        md,
        "\n| door (gzip level {GZIP_LEVEL}) | instructions/response, identity | with gzip | \
         compressing one response |\n| --- | ---: | ---: | ---: |\n"
    );
    let mut costs = Vec::new();
    for door in [Door::Balancer, Door::Nginx] {
        let (plain, gzip) = (
            median(report, door, None),
            median(report, door, Some("gzip")),
        );
        let cost = plain.zip(gzip).map(|(p, g)| g - p);
        costs.push(cost);
        let show = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v:.0}"));
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            door.label(),
            show(plain),
            show(gzip),
            show(cost)
        );
    }
    if let [Some(balancer), Some(nginx)] = costs[..] {
        let _ = writeln!(
            md,
            "\nCompressing one response: the balancer {:.2}x NGINX's instructions.",
            balancer / nginx
        );
    }
    md
}
