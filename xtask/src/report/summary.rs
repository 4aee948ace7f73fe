//! From runs to a [`Report`]: medians per cell (and per Compose service), the balancer/NGINX
//! ratios, the targets ([`super::targets`]), the failures and the notes that say how the figures
//! were taken, stamped with the UTC time of the report.

use std::time::{Duration, SystemTime};

use super::model::{
    CellSummary, ContainerUsage, Door, Machine, PathKind, Phase, Plan, Ratio, Report, RunRecord,
    ServiceUsage, Setting, StackKind,
};
use super::targets::targets;
use crate::stack::RequestLog;

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

/// `time` as an ISO-8601 UTC timestamp to the second (`2024-02-29T12:34:56Z`).
pub fn iso_utc(time: SystemTime) -> String {
    let t = time::OffsetDateTime::from(time);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
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

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

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
