//! The Redis bench's figures and `report.{md,json}`: per stream INCR/s, Redis CPU per INCR and
//! INCR/s per core of Redis CPU, with the commit, the versions and every command line.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use super::parse::{self, Summary};
use super::Stream;
use crate::report::git_describe;

/// One stream's figures.
#[derive(Debug, Clone, Serialize)]
pub struct StreamResult {
    /// `table` or `sweep`.
    pub group: &'static str,
    pub label: String,
    /// The redis-benchmark command line, as run.
    pub command: String,
    pub clients: u64,
    pub random_keys: bool,
    pub pipelined: bool,
    pub requests: u64,
    /// As redis-benchmark reports it (client-side, all connections).
    pub incr_per_sec: f64,
    pub p50_ms: Option<f64>,
    pub wall_seconds: f64,
    /// `used_cpu_sys` + `used_cpu_user` of Redis over the stream.
    pub redis_cpu_seconds: f64,
    pub redis_cpu_us_per_incr: f64,
    /// 1 s of Redis CPU divided by its CPU per INCR: the rate one busy core would give.
    pub incr_per_sec_per_redis_core: Option<f64>,
    /// INCRs Redis counted over the stream (`INFO commandstats`); must equal `requests`.
    pub incr_calls: u64,
    pub problem: Option<String>,
}

impl StreamResult {
    pub fn new(
        stream: &Stream,
        command: String,
        requests: u64,
        summary: Summary,
        wall_seconds: f64,
        redis_cpu_seconds: f64,
        incr_calls: u64,
    ) -> Self {
        let cpu_us = redis_cpu_seconds * 1e6 / requests.max(1) as f64;
        let problem = (incr_calls != requests)
            .then(|| format!("Redis counted {incr_calls} INCR, {requests} were asked for"));
        Self {
            group: stream.group,
            label: stream.label(),
            command,
            clients: stream.clients,
            random_keys: stream.random_keys,
            pipelined: stream.pipelined,
            requests,
            incr_per_sec: summary.requests_per_sec,
            p50_ms: summary.p50_ms,
            wall_seconds,
            redis_cpu_seconds,
            redis_cpu_us_per_incr: cpu_us,
            incr_per_sec_per_redis_core: (cpu_us > 0.0).then(|| 1e6 / cpu_us),
            incr_calls,
            problem,
        }
    }

    /// The `[n/total] …` line's text.
    pub fn progress_line(&self) -> String {
        format!(
            "{:<45} {:>9.0} INCR/s  Redis CPU {:>5.2} µs/INCR  {}",
            self.label,
            self.incr_per_sec,
            self.redis_cpu_us_per_incr,
            self.problem
                .as_deref()
                .map_or_else(|| "ok".to_string(), |p| format!("FAILED: {p}"))
        )
    }
}

/// The whole run.
#[derive(Debug, Serialize)]
pub struct RedisReport {
    /// `git describe --always --dirty` of the workspace.
    pub commit: String,
    pub quick: bool,
    pub requests_per_stream: u64,
    pub redis_version: String,
    pub redis_benchmark_version: String,
    pub redis_server_command: String,
    pub cpu_model: String,
    pub cores: usize,
    /// `/proc/loadavg`'s three averages when the run started (the machine may be shared).
    pub load_average_at_start: String,
    pub streams: Vec<StreamResult>,
    pub problems: Vec<String>,
}

impl RedisReport {
    /// An empty report; `info_server` is Redis's `INFO server` text.
    pub fn new(
        quick: bool,
        requests_per_stream: u64,
        info_server: String,
        redis_benchmark_version: String,
        redis_server_command: String,
    ) -> Self {
        let cpu_model = fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| parse::info_field(&c, "model name\t").map(String::from))
            .unwrap_or_else(|| "unknown CPU".into());
        let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
        Self {
            commit: git_describe(),
            quick,
            requests_per_stream,
            redis_version: parse::info_field(&info_server, "redis_version")
                .unwrap_or("unknown")
                .to_string(),
            redis_benchmark_version,
            redis_server_command,
            cpu_model,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            load_average_at_start: load
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
            streams: Vec::new(),
            problems: Vec::new(),
        }
    }

    pub fn add(&mut self, result: StreamResult) {
        if let Some(problem) = &result.problem {
            self.problems.push(format!("{}: {problem}", result.command));
        }
        self.streams.push(result);
    }

    /// Writes report.json and report.md into `dir` (and `publish_to`), prints the Markdown.
    pub fn write(&self, dir: &Path, publish_to: Option<&Path>) -> Result<()> {
        let json = serde_json::to_string_pretty(self).context("serializing the report")?;
        let md = self.markdown();
        for dir in std::iter::once(dir).chain(publish_to) {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            for (name, text) in [("report.json", &json), ("report.md", &md)] {
                let path = dir.join(name);
                fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
                eprintln!("xtask: wrote {}", path.display());
            }
        }
        println!("{md}");
        for problem in &self.problems {
            eprintln!("xtask: redis bench check failed: {problem}");
        }
        Ok(())
    }

    fn markdown(&self) -> String {
        let mut md = String::new();
        let quick = if self.quick { " --quick" } else { "" };
        let _ = writeln!(md, "# Redis alone: `redis-benchmark -t incr`\n");
        let _ = writeln!(
            md,
            "`cargo xtask bench --redis{quick}` at `{}`: Redis {} ({}), {}; {} INCR per stream. \
             Machine: {} ({} cores), load average {} at the start; redis-benchmark runs on the \
             same cores as Redis.\n",
            self.commit,
            self.redis_version,
            self.redis_server_command,
            self.redis_benchmark_version,
            self.requests_per_stream,
            self.cpu_model,
            self.cores,
            self.load_average_at_start,
        );
        md.push_str(
            "Redis CPU is `used_cpu_sys` + `used_cpu_user` of `INFO cpu` before and after the \
             stream, divided by the INCRs; INCR/s per Redis core is 1 s divided by that.\n\n",
        );
        let _ = writeln!(md, "## The four streams (16 connections)\n");
        md.push_str(
            "| command stream | INCR/s | Redis CPU per INCR | INCR/s per Redis core | p50 |\n\
             | --- | ---: | ---: | ---: | ---: |\n",
        );
        for s in self.streams.iter().filter(|s| s.group == "table") {
            let _ = writeln!(md, "{}", row(s));
        }
        let _ = writeln!(md, "\n## Connection sweep (1 key)\n");
        md.push_str(
            "| command stream | INCR/s | Redis CPU per INCR | INCR/s per Redis core | p50 |\n\
             | --- | ---: | ---: | ---: | ---: |\n",
        );
        for s in self.streams.iter().filter(|s| s.group == "sweep") {
            let _ = writeln!(md, "{}", row(s));
        }
        let _ = writeln!(md, "\n## Command lines\n");
        let _ = writeln!(md, "- `{}`", self.redis_server_command);
        for s in &self.streams {
            let _ = writeln!(md, "- `{}`", s.command);
        }
        let _ = writeln!(md, "\n## Checks\n");
        if self.problems.is_empty() {
            md.push_str("Every stream exited 0, printed its summary, and Redis counted exactly the INCRs asked for.\n");
        }
        for problem in &self.problems {
            let _ = writeln!(md, "- FAILED: {problem}");
        }
        md
    }
}

/// One table row.
fn row(s: &StreamResult) -> String {
    format!(
        "| {} | {} | {:.2} µs | {} | {} |",
        s.label,
        thousands(s.incr_per_sec),
        s.redis_cpu_us_per_incr,
        s.incr_per_sec_per_redis_core.map_or("-".into(), thousands),
        s.p50_ms.map_or("-".into(), |p| format!("{p:.3} ms")),
    )
}

/// `50200.4` as `50,200`.
fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_follow_from_cpu_and_count() {
        let stream = Stream::all()[0];
        let summary = Summary {
            requests_per_sec: 50_200.0,
            p50_ms: Some(0.151),
        };
        let ok = StreamResult::new(&stream, "cmd".into(), 300_000, summary, 6.0, 2.82, 300_000);
        assert!((ok.redis_cpu_us_per_incr - 9.4).abs() < 1e-9);
        assert_eq!(
            ok.incr_per_sec_per_redis_core.map(|r| r.round()),
            Some(106_383.0)
        );
        assert_eq!(ok.problem, None);
        assert_eq!(
            row(&ok),
            "| not pipelined, 1 key, 16 connections | 50,200 | 9.40 µs | 106,383 | 0.151 ms |"
        );
        let short = StreamResult::new(&stream, "cmd".into(), 300_000, summary, 6.0, 2.82, 299_999);
        assert!(short.problem.unwrap().contains("299999"));
        assert_eq!(thousands(999.6), "1,000");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
        assert_eq!(thousands(12.0), "12");
    }
}
