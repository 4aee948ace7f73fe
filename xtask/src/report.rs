//! The benchmark's results: medians per cell, balancer/NGINX ratios, the targets checked
//! (informational: only errors and counter mismatches fail a bench), and the three outputs under
//! `target/bench/`: `report.json` (everything, every run), `report.md` (tables) and
//! `report.svg` (drawn by [`crate::chart`]).

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::bench::{Door, PathKind, Phase, Plan, RunRecord, Setting};

/// Where the numbers come from.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpu_model: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
    pub nginx: String,
    pub redis: String,
    pub oha: String,
    pub rustc: String,
    /// `git describe --always --dirty` of the workspace the binaries were built from.
    pub git: String,
}

impl Machine {
    pub fn describe(oha: &Path, nginx: &Path, redis: &Path) -> Self {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map_or_else(|| "unknown CPU".to_string(), |m| m.trim().to_string());
        let memory_gib = fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kib| kib.parse::<f64>().ok())
            })
            .map_or(0.0, |kib| (kib / 1024.0 / 1024.0 * 10.0).round() / 10.0);
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or_else(|_| "unknown".into(), |k| k.trim().to_string());
        let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
        Self {
            cpu_model,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_gib,
            kernel,
            nginx: crate::binaries::tool_version(nginx, "-v"),
            redis: crate::binaries::tool_version(redis, "--version"),
            oha: crate::oha::version(oha),
            rustc: crate::binaries::tool_version(Path::new(&rustc), "--version"),
            git: std::process::Command::new("git")
                .args(["describe", "--always", "--dirty"])
                .current_dir(crate::binaries::workspace_root())
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map_or_else(
                    || "unknown".into(),
                    |o| String::from_utf8_lossy(&o.stdout).trim().to_string(),
                ),
        }
    }

    pub fn one_line(&self) -> String {
        format!(
            "{} ({} cores), {} GiB RAM, Linux {}; {}; {}; {}; {}; git {}",
            self.cpu_model,
            self.cores,
            self.memory_gib,
            self.kernel,
            self.nginx,
            self.redis.split(" sha=").next().unwrap_or(&self.redis),
            self.oha,
            self.rustc,
            self.git
        )
    }
}

/// Medians over the rounds of one cell (door × path × concurrency × setting × replicas).
#[derive(Debug, Clone, Serialize)]
pub struct CellSummary {
    pub phase: Phase,
    pub setting: Option<Setting>,
    pub replicas: usize,
    pub door: Door,
    pub path: PathKind,
    pub concurrency: usize,
    pub rounds: usize,
    pub requests_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    /// Median of transport errors + non-200 responses per round.
    pub errors_median: f64,
    /// Sum over rounds of transport errors + non-200 responses.
    pub errors_total: u64,
    pub failed_rounds: usize,
    pub cpu_seconds_per_10k: Option<f64>,
    /// Median per-run peak RSS, summed over the door's processes (NGINX: master + workers).
    pub peak_rss_kib: Option<f64>,
    /// Largest single-process peak RSS seen in any round.
    pub peak_rss_max_process_kib: Option<u64>,
}

/// Balancer figures divided by NGINX figures for one cell.
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    pub phase: Phase,
    pub setting: Setting,
    pub replicas: usize,
    pub path: PathKind,
    pub concurrency: usize,
    /// > 1: the balancer serves more.
    pub requests_per_sec: f64,
    /// < 1: the balancer's tail is shorter.
    pub p99: f64,
    pub p999: f64,
    /// < 1: the balancer spends less CPU per request.
    pub cpu_per_request: Option<f64>,
    pub balancer_peak_rss_kib: Option<f64>,
    pub nginx_peak_rss_kib: Option<f64>,
}

/// One of the targets, checked against the medians.
#[derive(Debug, Clone, Serialize)]
pub struct TargetCheck {
    pub target: String,
    pub cell: String,
    pub measured: String,
    pub met: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub generated_utc: String,
    pub duration_seconds: f64,
    pub command: String,
    pub plan: Plan,
    pub machine: Machine,
    pub notes: Vec<String>,
    pub targets: Vec<TargetCheck>,
    pub ratios: Vec<Ratio>,
    pub cells: Vec<CellSummary>,
    pub failures: Vec<String>,
    pub runs: Vec<RunRecord>,
}

pub fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

fn median_of(runs: &[&RunRecord], f: impl Fn(&RunRecord) -> Option<f64>) -> Option<f64> {
    let mut values: Vec<f64> = runs.iter().filter_map(|r| f(r)).collect();
    median(&mut values)
}

fn summarize(runs: &[RunRecord]) -> Vec<CellSummary> {
    type Key = (Phase, Option<Setting>, usize, PathKind, usize, Door);
    let mut keys: Vec<Key> = runs
        .iter()
        .map(|r| {
            (
                r.phase,
                r.setting,
                r.replicas,
                r.path,
                r.concurrency,
                r.door,
            )
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .map(|(phase, setting, replicas, path, concurrency, door)| {
            let cell: Vec<&RunRecord> = runs
                .iter()
                .filter(|r| {
                    (
                        r.phase,
                        r.setting,
                        r.replicas,
                        r.path,
                        r.concurrency,
                        r.door,
                    ) == (phase, setting, replicas, path, concurrency, door)
                })
                .collect();
            CellSummary {
                phase,
                setting,
                replicas,
                door,
                path,
                concurrency,
                rounds: cell.len(),
                requests_per_sec: median_of(&cell, |r| Some(r.requests_per_sec)).unwrap_or(0.0),
                p50_ms: median_of(&cell, |r| Some(r.p50_ms)).unwrap_or(0.0),
                p99_ms: median_of(&cell, |r| Some(r.p99_ms)).unwrap_or(0.0),
                p999_ms: median_of(&cell, |r| Some(r.p999_ms)).unwrap_or(0.0),
                errors_median: median_of(&cell, |r| Some((r.errors + r.non_200) as f64))
                    .unwrap_or(0.0),
                errors_total: cell.iter().map(|r| r.errors + r.non_200).sum(),
                failed_rounds: cell.iter().filter(|r| r.problem.is_some()).count(),
                cpu_seconds_per_10k: median_of(&cell, |r| r.cpu_seconds_per_10k),
                peak_rss_kib: median_of(&cell, |r| r.peak_rss_kib.map(|k| k as f64)),
                peak_rss_max_process_kib: cell
                    .iter()
                    .filter_map(|r| r.peak_rss_max_process_kib)
                    .max(),
            }
        })
        .collect()
}

fn ratios(cells: &[CellSummary]) -> Vec<Ratio> {
    let mut out = Vec::new();
    for b in cells.iter().filter(|c| c.door == Door::Balancer) {
        let Some(setting) = b.setting else { continue };
        let Some(n) = cells.iter().find(|c| {
            c.door == Door::Nginx
                && (c.phase, c.setting, c.replicas, c.path, c.concurrency)
                    == (b.phase, b.setting, b.replicas, b.path, b.concurrency)
        }) else {
            continue;
        };
        let div = |x: f64, y: f64| if y > 0.0 { x / y } else { f64::NAN };
        out.push(Ratio {
            phase: b.phase,
            setting,
            replicas: b.replicas,
            path: b.path,
            concurrency: b.concurrency,
            requests_per_sec: div(b.requests_per_sec, n.requests_per_sec),
            p99: div(b.p99_ms, n.p99_ms),
            p999: div(b.p999_ms, n.p999_ms),
            cpu_per_request: b
                .cpu_seconds_per_10k
                .zip(n.cpu_seconds_per_10k)
                .map(|(x, y)| div(x, y)),
            balancer_peak_rss_kib: b.peak_rss_kib,
            nginx_peak_rss_kib: n.peak_rss_kib,
        });
    }
    out
}

fn path_label(path: PathKind, plan: &Plan) -> String {
    match path {
        PathKind::Count => "/count".into(),
        PathKind::Static => plan.static_path.clone(),
    }
}

fn targets(ratios: &[Ratio], cells: &[CellSummary], plan: &Plan) -> Vec<TargetCheck> {
    let mut out = Vec::new();
    let matrix = |r: &&Ratio| r.phase == Phase::Matrix;
    for r in ratios.iter().filter(matrix) {
        let cell = format!(
            "{}, {}, {} conns",
            r.setting.label(),
            path_label(r.path, plan),
            r.concurrency
        );
        if r.setting == Setting::OneWorker {
            let (target, need) = match r.path {
                PathKind::Static => ("static: req/s ≥ 1.25× NGINX (equal workers)", 1.25),
                PathKind::Count => ("/count: req/s ≥ NGINX (equal workers)", 1.0),
            };
            out.push(TargetCheck {
                target: target.into(),
                cell: cell.clone(),
                measured: format!("{:.2}×", r.requests_per_sec),
                met: r.requests_per_sec >= need,
            });
            if r.path == PathKind::Static {
                out.push(TargetCheck {
                    target: "static: p99 ≤ NGINX's (equal workers)".into(),
                    cell: cell.clone(),
                    measured: format!("{:.2}×", r.p99),
                    met: r.p99 <= 1.0,
                });
            }
        }
        if let Some(cpu) = r.cpu_per_request {
            out.push(TargetCheck {
                target: "CPU per request ≤ NGINX's".into(),
                cell,
                measured: format!("{cpu:.2}×"),
                met: cpu <= 1.0,
            });
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
                    path_label(c.path, plan)
                ),
                measured: format!("{:.1} MiB", rss / 1024.0),
                met: rss < 20.0 * 1024.0,
            });
        }
    }
    out
}

/// ISO-8601 UTC timestamp of `time` (civil-from-days, no date crate needed).
pub fn iso_utc(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

impl Report {
    pub fn build(plan: Plan, machine: Machine, runs: Vec<RunRecord>, took: Duration) -> Self {
        let cells = summarize(&runs);
        let ratios = ratios(&cells);
        let targets = targets(&ratios, &cells, &plan);
        let failures = runs
            .iter()
            .filter_map(|r| {
                r.problem.as_ref().map(|p| {
                    format!(
                        "{} {} {} c={} round {}: {p}",
                        r.setting.map_or("-", Setting::label),
                        r.door.label(),
                        r.url_path,
                        r.concurrency,
                        r.round
                    )
                })
            })
            .collect();
        let per_run = runs.iter().all(|r| r.rss_peak_is_per_run);
        let notes = vec![
            format!(
                "oha, the proxy under test, the app replicas and Redis all share the same {} core(s); nothing is pinned, so absolute figures are lower than on a dedicated load generator, and the ratios are what to read.",
                machine.cores
            ),
            "Each cell is the median of its rounds; within a round the front doors run back to back (A B A B …), so drift hits them alike. Both proxies are started afresh for every cell and warmed up at that cell's concurrency (not recorded), so pools and peak memory do not carry over between cells.".into(),
            "CPU: utime + stime from /proc/PID/stat over the run, all threads; NGINX is charged master + workers. Shown per 10,000 responses.".into(),
            format!(
                "Peak RSS: VmHWM from /proc/PID/status, {}; NGINX is the SUM over master + workers (shared pages counted once per process, so it overstates NGINX slightly); the largest single NGINX process is in report.json (peak_rss_max_process_kib).",
                if per_run { "reset before every run (clear_refs 5), so it is the peak of that run" } else { "lifetime peak (the kernel refused the reset)" }
            ),
            format!(
                "Balancer request logging: {} (the project's nginx.conf has access_log off). Every run waits for in-flight requests (oha -w) and checks the Redis counter rose by exactly the 200 responses to /count (and not at all on the static path).",
                match plan.balancer_request_log {
                    crate::stack::RequestLog::Off => "off, RUST_LOG=warn",
                    crate::stack::RequestLog::Default => "on, one line per request",
                }
            ),
            "The direct-replica door has no proxy: it is the floor, measured once (its figures repeat under both settings).".into(),
        ];
        Self {
            generated_utc: iso_utc(SystemTime::now()),
            duration_seconds: took.as_secs_f64(),
            command: if plan.quick {
                "cargo xtask bench --quick".into()
            } else {
                "cargo xtask bench".into()
            },
            plan,
            machine,
            notes,
            targets,
            ratios,
            cells,
            failures,
            runs,
        }
    }

    pub fn markdown(&self) -> String {
        let plan = &self.plan;
        let mut md = String::new();
        let _ = writeln!(md, "# Benchmark: balancer vs NGINX vs one replica\n");
        let _ = writeln!(
            md,
            "Generated {} by `{}` in {:.0} s: {} round(s) of {} ms per cell, concurrency {:?}, {} replicas (sweep {:?} at {} conns).\n",
            self.generated_utc,
            self.command,
            self.duration_seconds,
            plan.rounds,
            plan.duration_ms,
            plan.concurrency,
            plan.replicas,
            plan.replica_sweep,
            plan.sweep_concurrency
        );
        let _ = writeln!(md, "Machine: {}.\n", self.machine.one_line());
        for note in &self.notes {
            let _ = writeln!(md, "- {note}");
        }
        if self.failures.is_empty() {
            let _ = writeln!(
                md,
                "\nCorrectness: every run had 0 errors and an exact counter. ✅\n"
            );
        } else {
            let _ = writeln!(md, "\n## Failures ❌\n");
            for f in &self.failures {
                let _ = writeln!(md, "- {f}");
            }
            md.push('\n');
        }

        let _ = writeln!(md, "## Balancer / NGINX (medians)\n");
        let _ = writeln!(
            md,
            "| setting | replicas | path | conns | req/s ratio | p99 ratio | p99.9 ratio | CPU/req ratio | balancer RSS | NGINX RSS (sum) |"
        );
        let _ = writeln!(md, "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|");
        for r in &self.ratios {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | **{:.2}×** | {:.2}× | {:.2}× | {} | {} | {} |",
                r.setting.label(),
                r.replicas,
                path_label(r.path, plan),
                r.concurrency,
                r.requests_per_sec,
                r.p99,
                r.p999,
                r.cpu_per_request.map_or("-".into(), |c| format!("{c:.2}×")),
                mib(r.balancer_peak_rss_kib),
                mib(r.nginx_peak_rss_kib),
            );
        }

        let _ = writeln!(
            md,
            "\n## Targets (informational: the bench fails only on errors or a counter mismatch)\n"
        );
        let _ = writeln!(md, "| target | where | measured | met |");
        let _ = writeln!(md, "|---|---|---:|:---:|");
        for t in &self.targets {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} |",
                t.target,
                t.cell,
                t.measured,
                if t.met { "yes" } else { "**no**" }
            );
        }

        for setting in [Setting::OneWorker, Setting::AllCores] {
            for path in [PathKind::Count, PathKind::Static] {
                let rows: Vec<&CellSummary> = self
                    .cells
                    .iter()
                    .filter(|c| {
                        c.phase == Phase::Matrix
                            && c.path == path
                            && (c.setting == Some(setting) || c.setting.is_none())
                    })
                    .collect();
                if rows.is_empty() {
                    continue;
                }
                let _ = writeln!(
                    md,
                    "\n## {} · {} · {} replicas\n",
                    setting.label(),
                    path_label(path, plan),
                    plan.replicas
                );
                table_header(&mut md, "conns");
                let mut sorted = rows;
                sorted.sort_by_key(|c| (c.concurrency, c.door));
                for c in sorted {
                    table_row(&mut md, &c.concurrency.to_string(), c);
                }
            }
        }

        let sweep: Vec<&CellSummary> = self
            .cells
            .iter()
            .filter(|c| c.phase == Phase::ReplicaSweep)
            .collect();
        if !sweep.is_empty() {
            let _ = writeln!(
                md,
                "\n## Replica sweep · all cores · /count · {} conns\n",
                plan.sweep_concurrency
            );
            table_header(&mut md, "replicas");
            let mut sorted = sweep;
            sorted.sort_by_key(|c| (c.replicas, c.door));
            for c in sorted {
                table_row(&mut md, &c.replicas.to_string(), c);
            }
        }
        let _ = writeln!(md, "\n![requests/s and p99 per front door](report.svg)");
        md
    }

    /// A few lines for the terminal: the ratio table.
    pub fn console_summary(&self) -> String {
        let mut out = String::from("balancer / nginx (medians):\n");
        for r in &self.ratios {
            let _ = writeln!(
                out,
                "  {:<9} {} repl {:<18} c={:<3}  req/s {:.2}x  p99 {:.2}x  cpu/req {}  rss {} vs {}",
                r.setting.label(),
                r.replicas,
                path_label(r.path, &self.plan),
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
}

fn mib(kib: Option<f64>) -> String {
    kib.map_or("-".into(), |k| format!("{:.1} MiB", k / 1024.0))
}

fn table_header(md: &mut String, first: &str) {
    let _ = writeln!(
        md,
        "| {first} | front door | req/s | p50 ms | p99 ms | p99.9 ms | errors (sum) | CPU s/10k req | peak RSS |"
    );
    let _ = writeln!(md, "|---:|---|---:|---:|---:|---:|---:|---:|---:|");
}

fn table_row(md: &mut String, first: &str, c: &CellSummary) {
    let _ = writeln!(
        md,
        "| {first} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {} | {} |",
        c.door.label(),
        c.requests_per_sec,
        c.p50_ms,
        c.p99_ms,
        c.p999_ms,
        c.errors_total,
        c.cpu_seconds_per_10k
            .map_or("-".into(), |v| format!("{v:.2}")),
        mib(c.peak_rss_kib),
    );
}

/// Writes report.json, report.md and report.svg into `dir`; returns their paths.
pub fn write_all(report: &Report, dir: &Path) -> Result<Vec<PathBuf>> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = serde_json::to_string_pretty(report).context("serializing the report")?;
    let outputs = [
        ("report.json", json),
        ("report.md", report.markdown()),
        ("report.svg", crate::chart::render(report)),
    ];
    let mut written = Vec::new();
    for (name, text) in outputs {
        let path = dir.join(name);
        fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }

    #[test]
    fn iso_dates() {
        assert_eq!(iso_utc(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_709_210_096); // leap day 2024
        assert_eq!(iso_utc(t), "2024-02-29T12:34:56Z");
    }
}
