//! `cargo xtask bench --redis`: Redis alone, the ceiling under every `/count` (one `INCR`).
//!
//! Starts its own `redis-server` on a free loopback port exactly as the stack runs it
//! ([`Redis::start`]: `--appendonly yes`, `appendfsync everysec`, data in a temporary directory)
//! and drives it with `redis-benchmark -t incr -q` (Debian's `redis-tools`), one stream after
//! another: the table of `docs/SCALING.md` (16 connections; one key, then 100,000 keys with
//! `-r 100000`; not pipelined, then `-P 16`), then the connection sweep (1, 16 and 50
//! connections, not pipelined and `-P 16`). Per stream: INCR/s as redis-benchmark reports it, and
//! Redis's own CPU (`INFO cpu`: `used_cpu_sys` + `used_cpu_user`, before and after) per INCR,
//! whence INCR/s per core of Redis CPU. The client shares the machine's cores with Redis.
//!
//! Each stream is checked: redis-benchmark exits 0 and prints its summary, and Redis counted
//! exactly the requested INCRs (`INFO commandstats`). Any failure makes the command fail; there
//! is no SKIP. Report: `report.{md,json}` in `<target>/bench-redis` (or `--out-dir`, and a copy
//! in `--publish-to`), redis-benchmark's raw output in `raw/`, Redis's log in `logs/`.
//!
//! It may use the bench's [`core`] (output directories), [`crate::report`] (the commit),
//! [`crate::stack`] and [`crate::tools`]; no other runner.

mod parse;
mod report;

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::core::OutDirs;
use super::BenchArgs;
use crate::stack::probe::{self, RedisReply};
use crate::stack::{self, Redis};
use crate::tools::locate;
use report::{RedisReport, StreamResult};

/// INCRs per stream of a full run, and of `--quick`.
const FULL_REQUESTS: u64 = 300_000;
const QUICK_REQUESTS: u64 = 20_000;
/// `-r`: the key space of the many-keys streams.
const RANDOM_KEYS: u64 = 100_000;
/// `-P`: commands per round trip of the pipelined streams.
const PIPELINE: u64 = 16;

/// One `redis-benchmark -t incr` command stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stream {
    /// `table` (the doc's four rows) or `sweep` (the connection sweep).
    pub group: &'static str,
    pub clients: u64,
    pub random_keys: bool,
    pub pipelined: bool,
}

impl Stream {
    /// The four streams of the doc's table, then the connection sweep.
    pub fn all() -> Vec<Stream> {
        let stream = |group, clients, random_keys, pipelined| Stream {
            group,
            clients,
            random_keys,
            pipelined,
        };
        let mut all = vec![
            stream("table", 16, false, false),
            stream("table", 16, true, false),
            stream("table", 16, false, true),
            stream("table", 16, true, true),
        ];
        for pipelined in [false, true] {
            for clients in [1, 16, 50] {
                all.push(stream("sweep", clients, false, pipelined));
            }
        }
        all
    }

    /// What the stream is, in words.
    pub fn label(&self) -> String {
        format!(
            "{}, {}, {} connection{}",
            if self.pipelined {
                format!("pipelined {PIPELINE}")
            } else {
                "not pipelined".to_string()
            },
            if self.random_keys {
                "100,000 keys"
            } else {
                "1 key"
            },
            self.clients,
            if self.clients == 1 { "" } else { "s" },
        )
    }

    /// redis-benchmark's arguments against `addr`, `requests` INCRs.
    pub fn args(&self, addr: SocketAddr, requests: u64) -> Vec<String> {
        let mut args: Vec<String> = ["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()]
            .map(String::from)
            .into();
        args.extend(["-t", "incr", "-n"].map(String::from));
        args.push(requests.to_string());
        args.extend(["-c".to_string(), self.clients.to_string(), "-q".to_string()]);
        if self.random_keys {
            args.extend(["-r".to_string(), RANDOM_KEYS.to_string()]);
        }
        if self.pipelined {
            args.extend(["-P".to_string(), PIPELINE.to_string()]);
        }
        args
    }
}

/// A command line as one shell-like string.
fn command_line<'a>(program: &str, args: impl IntoIterator<Item = &'a OsStr>) -> String {
    let mut line = program.to_string();
    for arg in args {
        let arg = arg.to_string_lossy();
        line.push(' ');
        if arg.is_empty() {
            line.push_str("\"\"");
        } else {
            line.push_str(&arg);
        }
    }
    line
}

/// Runs the Redis bench; `Ok(false)` when a stream failed its check (the report is still
/// written), `Err` when a tool is missing or a run could not be measured at all.
pub fn run(args: &BenchArgs) -> Result<bool> {
    let started = Instant::now();
    let server_bin = locate::redis_server()?;
    let benchmark_bin = locate::redis_benchmark()?;
    let out = OutDirs::prepare(args, "bench-redis")?;
    let work = tempfile::Builder::new()
        .prefix("xtask-bench-redis-")
        .tempdir()?;
    let redis = Redis::start(
        &server_bin,
        stack::free_port()?,
        &work.path().join("redis"),
        &out.logs,
    )?;
    let server_cmd =
        e2e::redis_server::redis_server_command(&server_bin, redis.addr.port(), &redis.data_dir);
    let requests = if args.quick {
        QUICK_REQUESTS
    } else {
        FULL_REQUESTS
    };
    let mut report = RedisReport::new(
        args.quick,
        requests,
        info_text(redis.addr, "server")?,
        locate::tool_version(&benchmark_bin, "--version"),
        command_line("redis-server", server_cmd.get_args()),
    );
    let streams = Stream::all();
    for (i, stream) in streams.iter().enumerate() {
        let result = measure(&benchmark_bin, &redis, stream, requests, &out.raw)?;
        eprintln!("[{}/{}] {}", i + 1, streams.len(), result.progress_line());
        report.add(result);
    }
    drop(redis);
    report.write(&out.root, args.publish_to.as_deref())?;
    eprintln!("xtask: bench took {:.0} s", started.elapsed().as_secs_f64());
    Ok(report.problems.is_empty())
}

/// The text of `INFO section`.
fn info_text(addr: SocketAddr, section: &str) -> Result<String> {
    match probe::redis_command(addr, &["INFO", section], Duration::from_secs(5))? {
        RedisReply::Bulk(Some(bytes)) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        other => bail!("unexpected reply to INFO {section}: {other:?}"),
    }
}

/// Redis's CPU seconds so far and its INCR count so far.
fn server_counters(addr: SocketAddr) -> Result<(f64, u64)> {
    let cpu = info_text(addr, "cpu")?;
    let cpu = parse::used_cpu_seconds(&cpu)
        .with_context(|| format!("INFO cpu has no used_cpu_sys/used_cpu_user: {cpu:?}"))?;
    let stats = info_text(addr, "commandstats")?;
    let calls = parse::command_calls(&stats, "incr")
        .with_context(|| format!("INFO commandstats has an unreadable INCR line: {stats:?}"))?;
    Ok((cpu, calls))
}

/// One stream: redis-benchmark's summary and Redis's CPU and INCR count around it.
fn measure(
    bin: &Path,
    redis: &Redis,
    stream: &Stream,
    requests: u64,
    raw: &Path,
) -> Result<StreamResult> {
    let args = stream.args(redis.addr, requests);
    let command = command_line("redis-benchmark", args.iter().map(OsStr::new));
    let (cpu_before, calls_before) = server_counters(redis.addr)?;
    let began = Instant::now();
    let output = Command::new(bin)
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {command}"))?;
    let wall_seconds = began.elapsed().as_secs_f64();
    let (cpu_after, calls_after) = server_counters(redis.addr)?;
    let slug = format!(
        "{}-c{}{}{}",
        stream.group,
        stream.clients,
        if stream.random_keys { "-r" } else { "" },
        if stream.pipelined { "-P" } else { "" }
    );
    let raw_path = raw.join(format!("{slug}.txt"));
    std::fs::write(&raw_path, &output.stdout)
        .with_context(|| format!("writing {}", raw_path.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "{command} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim(),
            text.trim()
        );
    }
    let summary = parse::summary(&text, "INCR").with_context(|| {
        format!("{command} printed no `INCR: … requests per second` summary: {text:?}")
    })?;
    Ok(StreamResult::new(
        stream,
        command,
        requests,
        summary,
        wall_seconds,
        (cpu_after - cpu_before).max(0.0),
        calls_after.saturating_sub(calls_before),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_streams_are_the_docs_command_lines() {
        let addr = stack::loopback(6390);
        let lines: Vec<String> = Stream::all()
            .iter()
            .map(|s| {
                command_line(
                    "redis-benchmark",
                    s.args(addr, 300_000).iter().map(OsStr::new),
                )
            })
            .collect();
        let base = "redis-benchmark -h 127.0.0.1 -p 6390 -t incr -n 300000";
        assert_eq!(lines.len(), 10);
        assert_eq!(lines[0], format!("{base} -c 16 -q"));
        assert_eq!(lines[1], format!("{base} -c 16 -q -r 100000"));
        assert_eq!(lines[2], format!("{base} -c 16 -q -P 16"));
        assert_eq!(lines[3], format!("{base} -c 16 -q -r 100000 -P 16"));
        assert_eq!(lines[4], format!("{base} -c 1 -q"));
        assert_eq!(lines[9], format!("{base} -c 50 -q -P 16"));
        assert_eq!(
            Stream::all()[4].label(),
            "not pipelined, 1 key, 1 connection"
        );
        assert_eq!(
            Stream::all()[3].label(),
            "pipelined 16, 100,000 keys, 16 connections"
        );
    }

    #[test]
    fn the_flag_parses_and_excludes_the_other_runners() {
        let parse = super::super::parse_args;
        assert!(parse(&["bench", "--redis", "--quick"]).unwrap().redis);
        for other in ["--compose", "--tls", "--instructions"] {
            assert!(parse(&["bench", "--redis", other]).is_err(), "{other}");
        }
        let server = e2e::redis_server::redis_server_command(
            Path::new("/usr/bin/redis-server"),
            6390,
            Path::new("/tmp/d"),
        );
        let line = command_line("redis-server", server.get_args());
        assert!(
            line.contains("--appendonly yes --appendfsync everysec --save \"\""),
            "{line}"
        );
    }
}
