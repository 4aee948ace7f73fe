//! The benchmark's results: medians per cell, balancer/NGINX ratios, the issues' targets checked
//! (informational: only errors and counter mismatches fail a bench), and the Markdown tables of
//! `report.md`. The data types live in [`crate::model`]; the chart is [`crate::chart`]'s.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::model::{
    CellSummary, ContainerUsage, Door, Machine, PathKind, Phase, Plan, Ratio, Report, RunRecord,
    ServiceUsage, Setting, StackKind, TargetCheck,
};
use crate::stack::RequestLog;

/// This machine, the tools (their versions as given) and the workspace's git state.
pub fn describe_machine(oha: &Path, nginx: String, redis: String) -> Machine {
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
    Machine {
        cpu_model,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        memory_gib,
        kernel,
        nginx,
        redis,
        oha: crate::oha::version(oha),
        rustc: crate::binaries::tool_version(Path::new(&rustc), "--version"),
        git: git_describe(),
    }
}

pub fn git_describe() -> String {
    std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .current_dir(crate::binaries::workspace_root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or_else(
            || "unknown".into(),
            |o| String::from_utf8_lossy(&o.stdout).trim().to_string(),
        )
}

fn machine_line(m: &Machine) -> String {
    format!(
        "{} ({} cores), {} GiB RAM, Linux {}; {}; {}; {}; {}; git {}",
        m.cpu_model,
        m.cores,
        m.memory_gib,
        m.kernel,
        m.nginx,
        m.redis.split(" sha=").next().unwrap_or(&m.redis),
        m.oha,
        m.rustc,
        m.git
    )
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

type CellKey = (Phase, Option<Setting>, usize, PathKind, usize, Door);

fn cell_key(r: &RunRecord) -> CellKey {
    (
        r.phase,
        r.setting,
        r.replicas,
        r.path,
        r.concurrency,
        r.door,
    )
}

fn summarize(runs: &[RunRecord]) -> Vec<CellSummary> {
    let mut keys: Vec<CellKey> = runs.iter().map(cell_key).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .map(|key| {
            let cell: Vec<&RunRecord> = runs.iter().filter(|r| cell_key(r) == key).collect();
            summarize_cell(key, &cell)
        })
        .collect()
}

fn summarize_cell(key: CellKey, cell: &[&RunRecord]) -> CellSummary {
    let (phase, setting, replicas, path, concurrency, door) = key;
    CellSummary {
        phase,
        setting,
        replicas,
        door,
        path,
        concurrency,
        rounds: cell.len(),
        requests_per_sec: median_of(cell, |r| Some(r.requests_per_sec)).unwrap_or(0.0),
        p50_ms: median_of(cell, |r| Some(r.p50_ms)).unwrap_or(0.0),
        p99_ms: median_of(cell, |r| Some(r.p99_ms)).unwrap_or(0.0),
        p999_ms: median_of(cell, |r| Some(r.p999_ms)).unwrap_or(0.0),
        errors_median: median_of(cell, |r| Some((r.errors + r.non_200) as f64)).unwrap_or(0.0),
        errors_total: cell.iter().map(|r| r.errors + r.non_200).sum(),
        failed_rounds: cell.iter().filter(|r| r.problem.is_some()).count(),
        target_rate: cell.iter().find_map(|r| r.target_rate),
        cpu_seconds_per_10k: median_of(cell, |r| r.cpu_seconds_per_10k),
        user_cpu_seconds_per_10k: median_of(cell, |r| r.user_cpu_seconds_per_10k),
        peak_rss_kib: median_of(cell, |r| r.peak_rss_kib.map(|k| k as f64)),
        upstream_connections: median_of(cell, |r| r.upstream_connections.map(|n| n as f64)),
        peak_rss_max_process_kib: cell.iter().filter_map(|r| r.peak_rss_max_process_kib).max(),
        services: summarize_services(cell),
    }
}

/// Per service: the medians over the rounds of the sums over its containers.
fn summarize_services(cell: &[&RunRecord]) -> Vec<ServiceUsage> {
    let mut names: Vec<&str> = cell
        .iter()
        .flat_map(|r| r.containers.iter().map(|c| c.service.as_str()))
        .collect();
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .map(|service| {
            let cpu = median_of(cell, |r| {
                let responses = r.ok_responses + r.non_200;
                let seconds: Option<f64> = of_service(r, service).map(|c| c.cpu_seconds).sum();
                seconds
                    .filter(|_| responses > 0)
                    .map(|s| s * 10_000.0 / responses as f64)
            });
            ServiceUsage {
                service: service.to_string(),
                containers: cell
                    .iter()
                    .map(|r| of_service(r, service).count())
                    .max()
                    .unwrap_or(0),
                cpu_seconds_per_10k: cpu,
                memory_kib: median_of(cell, |r| {
                    of_service(r, service)
                        .map(|c| c.memory_kib)
                        .sum::<Option<u64>>()
                        .map(|k| k as f64)
                }),
            }
        })
        .collect()
}

fn of_service<'r>(r: &'r RunRecord, service: &'r str) -> impl Iterator<Item = &'r ContainerUsage> {
    r.containers.iter().filter(move |c| c.service == service)
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
            user_cpu_per_request: b
                .user_cpu_seconds_per_10k
                .zip(n.user_cpu_seconds_per_10k)
                .map(|(x, y)| div(x, y)),
            balancer_peak_rss_kib: b.peak_rss_kib,
            nginx_peak_rss_kib: n.peak_rss_kib,
        });
    }
    out
}

fn ratio_cell(r: &Ratio, plan: &Plan) -> String {
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

fn targets(ratios: &[Ratio], cells: &[CellSummary], plan: &Plan) -> Vec<TargetCheck> {
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

/// The report of `runs` made under `plan`; the caller may add notes and failures it found.
pub fn build(plan: Plan, machine: Machine, runs: Vec<RunRecord>, took: Duration) -> Report {
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
    let notes = match plan.stack {
        StackKind::Loopback => loopback_notes(&plan, &machine, &runs),
        StackKind::Compose { .. } => compose_notes(&machine),
    };
    Report {
        generated_utc: iso_utc(SystemTime::now()),
        duration_seconds: took.as_secs_f64(),
        command: plan.command(),
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

const ALTERNATION_NOTE: &str = "Each cell is the median of its rounds; within a round the front doors run back to back (A B A B …), so drift hits them alike.";

fn loopback_notes(plan: &Plan, machine: &Machine, runs: &[RunRecord]) -> Vec<String> {
    let per_run = runs.iter().all(|r| r.rss_peak_is_per_run);
    vec![
        format!(
            "oha, the proxy under test, the app replicas and Redis all share the same {} core(s); nothing is pinned, so absolute figures are lower than on a dedicated load generator, and the ratios are what to read.",
            machine.cores
        ),
        format!("{ALTERNATION_NOTE} Both proxies are started afresh for every cell and warmed up at that cell's concurrency (not recorded), so pools and peak memory do not carry over between cells."),
        "CPU: utime + stime from /proc/PID/stat over the run, all threads; NGINX is charged master + workers. Shown per 10,000 responses.".into(),
        format!(
            "Peak RSS: VmHWM from /proc/PID/status, {}; NGINX is the SUM over master + workers (shared pages counted once per process, so it overstates NGINX slightly); the largest single NGINX process is in report.json (peak_rss_max_process_kib).",
            if per_run { "reset before every run (clear_refs 5), so it is the peak of that run" } else { "lifetime peak (the kernel refused the reset)" }
        ),
        format!(
            "Balancer access log: {} (the project's nginx.conf has access_log off). Every run waits for in-flight requests (oha -w) and checks the Redis counter rose by exactly the 200 responses to /count (and not at all on the static path).",
            match plan.balancer_request_log {
                Some(RequestLog::Off) | None => "off (--access-log off, the default)",
                Some(RequestLog::Combined) => "on, --access-log combined",
                Some(RequestLog::Json) => "on, --access-log json",
            }
        ),
        "The direct-replica door has no proxy: it is the floor, measured once (its figures repeat under both settings).".into(),
    ]
}

fn compose_notes(machine: &Machine) -> Vec<String> {
    vec![
        format!(
            "The Compose stack as a user starts it (`docker compose --profile nginx up -d --build --wait`, docker-compose.yml unchanged), measured through the published ports: the balancer on 127.0.0.1:5000, NGINX on 127.0.0.1:5002, both in front of the same app replicas and Redis. oha, dockerd, the containers and their log driver share this machine's {} core(s).",
            machine.cores
        ),
        format!("{ALTERNATION_NOTE} The stack stays up for the whole bench; every cell is warmed up at its concurrency (not recorded)."),
        "Both doors log as docker-compose.yml and nginx.conf configure them; the balancer's log-line count over the bench is below. Every run waits for in-flight requests (oha -w) and checks the Redis counter (`redis-cli GET` in the redis container) rose by exactly the 200 responses to /count (and not at all on the static path).".into(),
        "CPU and memory per container from its cgroup (cpuacct.usage or cpu.stat; memory max_usage_in_bytes reset before each run, or memory.current at its end), per 10,000 responses; the app column sums its replicas. Container memory includes the page cache charged to it. `engine` is dockerd + containerd + the shims (they carry and write the containers' logs), `docker-proxy :PORT` the userland proxy every loopback request to a published port passes through (CPU only, from /proc).".into(),
    ]
}

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
