//! `report.svg`: a hand-drawn SVG (no plotting dependency; the panels are drawn by
//! [`super::svg`]) with requests/s and p99 per front door across the concurrency sweep, for
//! `/count` and the static path, plus the replica sweep and the fixed-rate phase (CPU per 10,000
//! requests and p99 at one rate for both doors).
//!
//! Colour says the front door (balancer orange, NGINX green, direct replica grey); solid lines are
//! the 1-worker setting, dashed lines all cores.

use std::fmt::Write as _;

use super::model::{CellSummary, Door, PathKind, Phase, Report, Setting, StackKind};
use super::svg::{draw_panel, escape, Panel, Series, PANEL_H, PANEL_W};

const GAP: f64 = 20.0;
const HEADER: f64 = 74.0;
const LEGEND: f64 = 40.0;

fn style(door: Door, setting: Option<Setting>) -> (&'static str, &'static str) {
    let color = match door {
        Door::Balancer => "#e8710a",
        Door::Nginx => "#1e8e3e",
        Door::Direct => "#80868b",
        Door::BalancerLeastRequest => "#c5221f",
        Door::BalancerRateLimited => "#9334e6",
        Door::HyperFloor => "#1a73e8",
        Door::BalancerH2c => "#f9ab00",
    };
    let dash = match (door, setting) {
        (Door::Direct, _) => "2 4",
        (_, Some(Setting::AllCores)) => "7 4",
        _ => "",
    };
    (color, dash)
}

fn matrix_panels(report: &Report, path: PathKind, path_label: &str) -> [Panel; 2] {
    let conc = &report.plan.concurrency;
    let lines: Vec<(Door, Option<Setting>)> = vec![
        (Door::Balancer, Some(Setting::OneWorker)),
        (Door::Nginx, Some(Setting::OneWorker)),
        (Door::Balancer, Some(Setting::AllCores)),
        (Door::Nginx, Some(Setting::AllCores)),
        (Door::Direct, None),
    ];
    let find = |door: Door, setting: Option<Setting>, c: usize| -> Option<&CellSummary> {
        report.cells.iter().find(|cell| {
            cell.phase == Phase::Matrix
                && cell.path == path
                && cell.door == door
                && cell.setting == setting
                && cell.concurrency == c
        })
    };
    let series = |metric: fn(&CellSummary) -> f64| -> Vec<Series> {
        lines
            .iter()
            .map(|&(door, setting)| {
                let (color, dash) = style(door, setting);
                Series {
                    name: match setting {
                        Some(s) => format!("{} ({})", door.label(), s.label()),
                        None => door.label().to_string(),
                    },
                    color,
                    dash,
                    values: conc
                        .iter()
                        .map(|&c| find(door, setting, c).map(metric))
                        .collect(),
                }
            })
            .collect()
    };
    let labels: Vec<String> = conc.iter().map(|c| c.to_string()).collect();
    [
        Panel {
            title: format!("{path_label}: requests/s (higher is better)"),
            x_title: "concurrent connections",
            x_labels: labels.clone(),
            series: series(|c| c.requests_per_sec),
        },
        Panel {
            title: format!("{path_label}: p99 latency, ms (lower is better)"),
            x_title: "concurrent connections",
            x_labels: labels,
            series: series(|c| c.p99_ms),
        },
    ]
}

fn sweep_panels(report: &Report) -> Option<[Panel; 2]> {
    let replicas = &report.plan.replica_sweep;
    let cells: Vec<&CellSummary> = report
        .cells
        .iter()
        .filter(|c| c.phase == Phase::ReplicaSweep)
        .collect();
    if cells.is_empty() {
        return None;
    }
    let series = |metric: fn(&CellSummary) -> f64| -> Vec<Series> {
        [Door::Balancer, Door::Nginx]
            .iter()
            .map(|&door| {
                let (color, dash) = style(door, Some(Setting::AllCores));
                Series {
                    name: format!("{} (all cores)", door.label()),
                    color,
                    dash,
                    values: replicas
                        .iter()
                        .map(|&n| {
                            cells
                                .iter()
                                .find(|c| c.door == door && c.replicas == n)
                                .map(|c| metric(c))
                        })
                        .collect(),
                }
            })
            .collect()
    };
    let labels: Vec<String> = replicas.iter().map(|r| r.to_string()).collect();
    let c = report.plan.sweep_concurrency;
    Some([
        Panel {
            title: format!("/count, {c} conns: requests/s by replicas"),
            x_title: "app replicas",
            x_labels: labels.clone(),
            series: series(|c| c.requests_per_sec),
        },
        Panel {
            title: format!("/count, {c} conns: p99 ms by replicas"),
            x_title: "app replicas",
            x_labels: labels,
            series: series(|c| c.p99_ms),
        },
    ])
}

/// The fixed-rate phase: CPU per 10,000 requests (total solid, user-space dashed) and p99, per
/// path, both doors at the same rate with one worker.
fn fixed_rate_panels(report: &Report) -> Option<[Panel; 2]> {
    let cells: Vec<&CellSummary> = report
        .cells
        .iter()
        .filter(|c| c.phase == Phase::FixedRate)
        .collect();
    if cells.is_empty() {
        return None;
    }
    let paths = [PathKind::Count, PathKind::Static];
    let values = |door: Door, metric: &dyn Fn(&CellSummary) -> Option<f64>| -> Vec<Option<f64>> {
        paths
            .iter()
            .map(|&p| {
                cells
                    .iter()
                    .find(|c| c.door == door && c.path == p)
                    .and_then(|c| metric(c))
            })
            .collect()
    };
    let doors = [Door::Balancer, Door::Nginx];
    let mut cpu = Vec::new();
    for door in doors {
        let (color, _) = style(door, Some(Setting::OneWorker));
        cpu.push(Series {
            name: format!("{} CPU", door.label()),
            color,
            dash: "",
            values: values(door, &|c| c.cpu_seconds_per_10k),
        });
        cpu.push(Series {
            name: format!("{} user CPU", door.label()),
            color,
            dash: "6 4",
            values: values(door, &|c| c.user_cpu_seconds_per_10k),
        });
    }
    let p99 = doors
        .iter()
        .map(|&door| {
            let (color, dash) = style(door, Some(Setting::OneWorker));
            Series {
                name: door.label().to_string(),
                color,
                dash,
                values: values(door, &|c| Some(c.p99_ms)),
            }
        })
        .collect();
    let labels: Vec<String> = paths
        .iter()
        .map(|&p| report.plan.url_path(p).to_string())
        .collect();
    Some([
        Panel {
            title: "fixed rate, 1 worker: CPU s per 10k requests (dashed: user)".into(),
            x_title: "path",
            x_labels: labels.clone(),
            series: cpu,
        },
        Panel {
            title: "fixed rate, 1 worker: p99 ms".into(),
            x_title: "path",
            x_labels: labels,
            series: p99,
        },
    ])
}

/// The whole chart as an SVG document.
pub fn render(report: &Report) -> String {
    let mut rows = vec![
        matrix_panels(report, PathKind::Count, "/count"),
        matrix_panels(report, PathKind::Static, &report.plan.static_path),
    ];
    if let Some(sweep) = sweep_panels(report) {
        rows.push(sweep);
    }
    if let Some(fixed) = fixed_rate_panels(report) {
        rows.push(fixed);
    }
    let width = 2.0 * PANEL_W + 3.0 * GAP;
    let height = HEADER + LEGEND + rows.len() as f64 * (PANEL_H + GAP) + GAP;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif">"##
    );
    let _ = writeln!(
        svg,
        r##"<rect width="100%" height="100%" fill="#f8f9fa"/>"##
    );
    draw_header(&mut svg, report);
    draw_legend(&mut svg, report);
    for (row, panels) in rows.iter().enumerate() {
        let y = HEADER + LEGEND + row as f64 * (PANEL_H + GAP);
        for (col, panel) in panels.iter().enumerate() {
            draw_panel(&mut svg, panel, GAP + col as f64 * (PANEL_W + GAP), y);
        }
    }
    svg.push_str("</svg>\n");
    svg
}

fn draw_header(svg: &mut String, report: &Report) {
    let (title, shared_by) = match report.plan.stack {
        StackKind::Loopback => (
            "Balancer vs NGINX vs one replica",
            "oha, proxies, replicas and Redis",
        ),
        StackKind::Compose { .. } => (
            "Docker Compose: balancer :5000 vs NGINX :5002",
            "oha, dockerd and every container",
        ),
    };
    let _ = writeln!(
        svg,
        r##"<text x="{GAP}" y="26" font-size="17" font-weight="bold">{title} (oha, medians of {} round(s))</text>"##,
        report.plan.rounds
    );
    let m = &report.machine;
    let subtitle = [
        format!(
            "{} · {} ({} cores, shared by {shared_by}), {} GiB, Linux {}",
            report.generated_utc, m.cpu_model, m.cores, m.memory_gib, m.kernel
        ),
        format!("{} · {} · {}", m.nginx, m.oha, m.rustc),
    ];
    for (i, line) in subtitle.iter().enumerate() {
        let _ = writeln!(
            svg,
            r##"<text x="{GAP}" y="{}" font-size="12" fill="#555">{}</text>"##,
            46 + 16 * i,
            escape(line)
        );
    }
}

/// One legend entry per line the report has data for.
fn draw_legend(svg: &mut String, report: &Report) {
    let legend = [
        (
            Door::Balancer,
            Some(Setting::OneWorker),
            "balancer, 1 worker",
        ),
        (Door::Nginx, Some(Setting::OneWorker), "NGINX, 1 worker"),
        (
            Door::Balancer,
            Some(Setting::AllCores),
            "balancer, all cores",
        ),
        (Door::Nginx, Some(Setting::AllCores), "NGINX, all cores"),
        (Door::Direct, None, "one replica directly"),
    ];
    let present = legend.iter().filter(|(door, setting, _)| {
        report
            .cells
            .iter()
            .any(|c| c.door == *door && c.setting == *setting)
    });
    for (i, (door, setting, label)) in present.enumerate() {
        let (color, dash) = style(*door, *setting);
        let x = GAP + i as f64 * 180.0;
        let y = HEADER + 16.0;
        let _ = writeln!(
            svg,
            r##"<line x1="{x}" y1="{y}" x2="{}" y2="{y}" stroke="{color}" stroke-width="2.5" stroke-dasharray="{dash}"/><text x="{}" y="{}" font-size="12">{label}</text>"##,
            x + 30.0,
            x + 36.0,
            y + 4.0
        );
    }
}
