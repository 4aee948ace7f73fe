//! The issues' targets, checked against the medians: issue 5's loopback ratios at equal workers,
//! issue 16's Compose ratios, issue 14's fixed-rate CPU and latency, and the balancer's peak RSS.
//! Informational: a bench fails only on errors or a counter mismatch, never on a missed target.

use super::model::{
    CellSummary, Door, PathKind, Phase, Plan, Ratio, Setting, StackKind, TargetCheck,
};

/// A ratio's cell in words: setting, path, connections.
pub fn ratio_cell(r: &Ratio, plan: &Plan) -> String {
    format!(
        "{}, {}, {} conns",
        r.setting.label(),
        plan.url_path(r.path),
        r.concurrency
    )
}

fn check(target: &str, cell: &str, measured: f64, met: bool) -> TargetCheck {
    TargetCheck {
        target: target.into(),
        cell: cell.into(),
        measured: format!("{measured:.2}×"),
        met,
    }
}

/// Issue 5's loopback targets: measured at equal workers.
fn loopback_targets(r: &Ratio, plan: &Plan, out: &mut Vec<TargetCheck>) {
    if r.setting != Setting::OneWorker {
        return;
    }
    let cell = ratio_cell(r, plan);
    let (target, need) = match r.path {
        PathKind::Static => ("static: req/s ≥ 1.25× NGINX (equal workers)", 1.25),
        PathKind::Count => ("/count: req/s ≥ NGINX (equal workers)", 1.0),
    };
    out.push(check(
        target,
        &cell,
        r.requests_per_sec,
        r.requests_per_sec >= need,
    ));
    if r.path == PathKind::Static {
        let target = "static: p99 ≤ NGINX's (equal workers)";
        out.push(check(target, &cell, r.p99, r.p99 <= 1.0));
    }
}

/// Issue 16's Compose targets: through the published ports, as the stack is configured.
fn compose_targets(r: &Ratio, plan: &Plan, out: &mut Vec<TargetCheck>) {
    let cell = ratio_cell(r, plan);
    let rps = r.requests_per_sec;
    out.push(check("Compose: req/s ≥ NGINX's", &cell, rps, rps >= 1.0));
    out.push(check("Compose: p99 ≤ NGINX's", &cell, r.p99, r.p99 <= 1.0));
}

/// Issue 14's fixed-rate targets: user CPU per request ≤ 1.2×, total ≤ 1.0×, p99 ≤ 1.0×.
fn fixed_rate_targets(r: &Ratio, plan: &Plan, out: &mut Vec<TargetCheck>) {
    let cell = format!("fixed rate, {}", ratio_cell(r, plan));
    if let Some(user) = r.user_cpu_per_request {
        out.push(check(
            "fixed rate: user CPU per request ≤ 1.2× NGINX's",
            &cell,
            user,
            user <= 1.2,
        ));
    }
    if let Some(total) = r.cpu_per_request {
        out.push(check(
            "fixed rate: CPU per request ≤ NGINX's",
            &cell,
            total,
            total <= 1.0,
        ));
    }
    out.push(check(
        "fixed rate: p99 ≤ NGINX's",
        &cell,
        r.p99,
        r.p99 <= 1.0,
    ));
}

pub fn targets(ratios: &[Ratio], cells: &[CellSummary], plan: &Plan) -> Vec<TargetCheck> {
    let mut out = Vec::new();
    for r in ratios.iter().filter(|r| r.phase == Phase::FixedRate) {
        fixed_rate_targets(r, plan, &mut out);
    }
    for r in ratios.iter().filter(|r| r.phase == Phase::Matrix) {
        match plan.stack {
            StackKind::Loopback => loopback_targets(r, plan, &mut out),
            StackKind::Compose { .. } => compose_targets(r, plan, &mut out),
        }
        if let Some(cpu) = r.cpu_per_request {
            let cell = ratio_cell(r, plan);
            out.push(check("CPU per request ≤ NGINX's", &cell, cpu, cpu <= 1.0));
        }
    }
    let top = plan.concurrency.iter().copied().max().unwrap_or(0);
    for c in cells
        .iter()
        .filter(|c| c.door == Door::Balancer && c.phase == Phase::Matrix && c.concurrency == top)
    {
        if let Some(rss) = c.peak_rss_kib {
            out.push(TargetCheck {
                target: format!("balancer peak RSS < 20 MiB at {top} conns"),
                cell: format!(
                    "{}, {}",
                    c.setting.map_or("-", Setting::label),
                    plan.url_path(c.path)
                ),
                measured: format!("{:.1} MiB", rss / 1024.0),
                met: rss < 20.0 * 1024.0,
            });
        }
    }
    out
}
