//! `report.md` and the terminal's summary: the header (plan, machine, notes, failures), the
//! balancer/NGINX ratio table, the targets, then one table per matrix cell group, the Compose
//! containers, the replica sweep, the fixed-rate phase and the traffic rules.

use std::fmt::Write as _;

use super::machine::machine_line;
use super::model::{
    CellSummary, Door, PathKind, Phase, Plan, Ratio, Report, ServiceUsage, Setting, StackKind,
};

/// `report.md`.
pub fn markdown(report: &Report) -> String {
    let mut md = String::new();
    header_section(&mut md, report);
    ratio_section(&mut md, report);
    target_section(&mut md, report);
    matrix_sections(&mut md, report);
    services_section(&mut md, report);
    sweep_section(&mut md, report);
    fixed_rate_section(&mut md, report);
    traffic_section(&mut md, report);
    let _ = writeln!(md, "\n![requests/s and p99 per front door](report.svg)");
    md
}

fn title(plan: &Plan) -> &'static str {
    match plan.stack {
        StackKind::Loopback => "Benchmark: balancer vs NGINX vs one replica",
        StackKind::Compose { .. } => {
            "Benchmark through Docker Compose: balancer :5000 vs NGINX :5002"
        }
    }
}

fn header_section(md: &mut String, report: &Report) {
    let plan = &report.plan;
    let _ = writeln!(md, "# {}\n", title(plan));
    let sweep = if plan.replica_sweep.is_empty() {
        String::new()
    } else {
        format!(
            " (sweep {:?} at {} conns)",
            plan.replica_sweep, plan.sweep_concurrency
        )
    };
    let _ = writeln!(
        md,
        "Generated {} by `{}` in {:.0} s: {} round(s) of {} ms per cell, concurrency {:?}, {} replicas{sweep}.\n",
        report.generated_utc,
        report.command,
        report.duration_seconds,
        plan.rounds,
        plan.duration_ms,
        plan.concurrency,
        plan.replicas,
    );
    let _ = writeln!(md, "Machine: {}.\n", machine_line(&report.machine));
    for note in &report.notes {
        let _ = writeln!(md, "- {note}");
    }
    if report.failures.is_empty() {
        let _ = writeln!(
            md,
            "\nCorrectness: every run had 0 errors and an exact counter. ✅\n"
        );
    } else {
        let _ = writeln!(md, "\n## Failures ❌\n");
        for f in &report.failures {
            let _ = writeln!(md, "- {f}");
        }
        md.push('\n');
    }
}

fn ratio_section(md: &mut String, report: &Report) {
    let _ = writeln!(md, "## Balancer / NGINX (medians)\n");
    let _ = writeln!(
        md,
        "| setting | replicas | path | conns | req/s ratio | p99 ratio | p99.9 ratio | CPU/req ratio | user CPU/req ratio | balancer RSS | NGINX RSS (sum) |"
    );
    let _ = writeln!(md, "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &report.ratios {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | **{:.2}×** | {:.2}× | {:.2}× | {} | {} | {} | {} |",
            ratio_setting(r),
            r.replicas,
            report.plan.url_path(r.path),
            r.concurrency,
            r.requests_per_sec,
            r.p99,
            r.p999,
            r.cpu_per_request.map_or("-".into(), |c| format!("{c:.2}×")),
            r.user_cpu_per_request
                .map_or("-".into(), |c| format!("{c:.2}×")),
            mib(r.balancer_peak_rss_kib),
            mib(r.nginx_peak_rss_kib),
        );
    }
}

/// The setting column: the fixed-rate phase is named, the others go by their worker setting.
fn ratio_setting(r: &Ratio) -> String {
    match r.phase {
        Phase::FixedRate => format!("{}, fixed rate", r.setting.label()),
        _ => r.setting.label().to_string(),
    }
}

fn target_section(md: &mut String, report: &Report) {
    let _ = writeln!(
        md,
        "\n## Targets (informational: the bench fails only on errors or a counter mismatch)\n"
    );
    let _ = writeln!(md, "| target | where | measured | met |");
    let _ = writeln!(md, "|---|---|---:|:---:|");
    for t in &report.targets {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            t.target,
            t.cell,
            t.measured,
            if t.met { "yes" } else { "**no**" }
        );
    }
}

fn matrix_sections(md: &mut String, report: &Report) {
    let plan = &report.plan;
    for setting in [Setting::OneWorker, Setting::AllCores] {
        for path in [PathKind::Count, PathKind::Static] {
            let mut rows: Vec<&CellSummary> = report
                .cells
                .iter()
                .filter(|c| {
                    c.phase == Phase::Matrix
                        && c.path == path
                        && (c.setting == Some(setting) || c.setting.is_none())
                })
                .collect();
            if !rows.iter().any(|c| c.setting == Some(setting)) {
                continue;
            }
            let _ = writeln!(
                md,
                "\n## {} · {} · {} replicas\n",
                setting.label(),
                plan.url_path(path),
                plan.replicas
            );
            table_header(md, "conns");
            rows.sort_by_key(|c| (c.concurrency, c.door));
            for c in rows {
                table_row(md, &c.concurrency.to_string(), c);
            }
        }
    }
}

/// Compose only: CPU and memory of every service, per cell and door.
fn services_section(md: &mut String, report: &Report) {
    let mut names: Vec<&str> = report
        .cells
        .iter()
        .flat_map(|c| c.services.iter().map(|s| s.service.as_str()))
        .collect();
    names.sort_unstable();
    names.dedup();
    if names.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "\n## Containers: CPU s per 10k responses · memory (medians)\n"
    );
    let _ = writeln!(md, "| path | conns | front door | {} |", names.join(" | "));
    let _ = writeln!(md, "|---|---:|---|{}", "---:|".repeat(names.len()));
    for c in report.cells.iter().filter(|c| !c.services.is_empty()) {
        let figures: Vec<String> = names
            .iter()
            .map(|name| {
                c.services
                    .iter()
                    .find(|s| s.service == *name)
                    .map_or("-".into(), service_figure)
            })
            .collect();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            report.plan.url_path(c.path),
            c.concurrency,
            c.door.label(),
            figures.join(" | ")
        );
    }
}

fn service_figure(s: &ServiceUsage) -> String {
    let cpu = s
        .cpu_seconds_per_10k
        .map_or("-".into(), |v| format!("{v:.2} s"));
    let count = if s.containers > 1 {
        format!(" ({}×)", s.containers)
    } else {
        String::new()
    };
    format!("{cpu} · {}{count}", mib(s.memory_kib))
}

fn sweep_section(md: &mut String, report: &Report) {
    let mut sweep: Vec<&CellSummary> = report
        .cells
        .iter()
        .filter(|c| c.phase == Phase::ReplicaSweep)
        .collect();
    if sweep.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "\n## Replica sweep · all cores · /count · {} conns\n",
        report.plan.sweep_concurrency
    );
    table_header(md, "replicas");
    sweep.sort_by_key(|c| (c.replicas, c.door));
    for c in sweep {
        table_row(md, &c.replicas.to_string(), c);
    }
}

/// Both doors at one fixed rate: CPU per request split into user and system, and latency.
fn fixed_rate_section(md: &mut String, report: &Report) {
    let mut cells: Vec<&CellSummary> = report
        .cells
        .iter()
        .filter(|c| c.phase == Phase::FixedRate)
        .collect();
    let Some(fixed) = report.plan.fixed_rate.filter(|_| !cells.is_empty()) else {
        return;
    };
    let _ = writeln!(
        md,
        "\n## Fixed rate · 1 worker · {} conns · {:.0} % of NGINX's best one-worker rate on the path\n",
        fixed.concurrency,
        fixed.fraction_of_nginx_max * 100.0
    );
    let _ = writeln!(md, "| path | front door | asked req/s | served req/s | user CPU s/10k | system CPU s/10k | total CPU s/10k | p50 ms | p99 ms | errors |");
    let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    cells.sort_by_key(|c| (c.path, c.door));
    let s = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.3}"));
    for c in cells {
        let system = c
            .cpu_seconds_per_10k
            .zip(c.user_cpu_seconds_per_10k)
            .map(|(t, u)| t - u);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.0} | {} | {} | {} | {:.2} | {:.2} | {} |",
            report.plan.url_path(c.path),
            c.door.label(),
            c.target_rate.map_or("-".into(), |r| r.to_string()),
            c.requests_per_sec,
            s(c.user_cpu_seconds_per_10k),
            s(system),
            s(c.cpu_seconds_per_10k),
            c.p50_ms,
            c.p99_ms,
            c.errors_total
        );
    }
}

/// Round-robin beside least-request and the rate limiter: what each costs per request.
fn traffic_section(md: &mut String, report: &Report) {
    let mut cells: Vec<&CellSummary> = report
        .cells
        .iter()
        .filter(|c| c.phase == Phase::Traffic)
        .collect();
    if cells.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "\n## Traffic rules · all cores · {} · {} conns\n\n`--balance least-request` and \
         `--rate-limit 1000000/s` (a limit no client reaches, so every request pays the check) \
         beside the default round-robin; CPU per request relative to round-robin in the last column.\n",
        report.plan.url_path(PathKind::Static),
        report.plan.sweep_concurrency
    );
    let base = cells
        .iter()
        .find(|c| c.door == Door::Balancer)
        .and_then(|c| c.cpu_seconds_per_10k);
    table_header(md, "balancer");
    cells.sort_by_key(|c| c.door);
    for c in cells {
        let relative = c
            .cpu_seconds_per_10k
            .zip(base)
            .filter(|(_, b)| *b > 0.0)
            .map_or("-".to_string(), |(x, b)| {
                format!("{:+.1} % CPU/req", (x / b - 1.0) * 100.0)
            });
        table_row(md, &relative, c);
    }
}

/// A few lines for the terminal: the ratio table.
pub fn console_summary(report: &Report) -> String {
    let mut out = String::from("balancer / nginx (medians):\n");
    for r in &report.ratios {
        let _ = writeln!(
            out,
            "  {:<9} {} repl {:<18} c={:<3}  req/s {:.2}x  p99 {:.2}x  cpu/req {}  rss {} vs {}",
            ratio_setting(r),
            r.replicas,
            report.plan.url_path(r.path),
            r.concurrency,
            r.requests_per_sec,
            r.p99,
            r.cpu_per_request.map_or("-".into(), |c| format!("{c:.2}x")),
            mib(r.balancer_peak_rss_kib),
            mib(r.nginx_peak_rss_kib),
        );
    }
    out
}

fn mib(kib: Option<f64>) -> String {
    kib.map_or("-".into(), |k| format!("{:.1} MiB", k / 1024.0))
}

fn table_header(md: &mut String, first: &str) {
    let _ = writeln!(
        md,
        "| {first} | front door | req/s | p50 ms | p99 ms | p99.9 ms | errors (sum) | CPU s/10k req | peak RSS | upstream conns |"
    );
    let _ = writeln!(md, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
}

fn table_row(md: &mut String, first: &str, c: &CellSummary) {
    let _ = writeln!(
        md,
        "| {first} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {} |",
        c.door.label(),
        c.requests_per_sec,
        c.p50_ms,
        c.p99_ms,
        c.p999_ms,
        c.errors_total,
        c.cpu_seconds_per_10k
            .map_or("-".into(), |v| format!("{v:.2}")),
        mib(c.peak_rss_kib),
        c.upstream_connections
            .map_or("-".into(), |n| format!("{n:.0}")),
    );
}
