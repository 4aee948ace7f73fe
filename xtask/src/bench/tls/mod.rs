//! `cargo xtask bench --tls`: the balancer's HTTPS listener against NGINX's, on loopback.
//!
//! Both doors get the same ECDSA P-256 certificate (made by `dev_cert`), one worker each
//! (`--workers 1`, `worker_processes 1`), TLS 1.2/1.3 with tickets and a session cache, and sit
//! in front of the same replicas. Per round, alternating balancer then NGINX:
//! * full handshakes/s: `openssl s_time -new` (a new connection and a full handshake per
//!   request, `GET` of the static asset), [`HANDSHAKE_CLIENTS`] clients in parallel;
//! * resumed handshakes/s: the same with `-reuse` (every connection resumes one session);
//! * keep-alive requests/s and p99 on `/count` over HTTP/1.1+TLS and HTTP/2+TLS (oha), with the
//!   counter checked against the successes, and the door's CPU per 10,000 requests.
//!
//! Then, once per door, the RSS that 1,000 idle TLS connections (handshake done) add.
//! Medians over the rounds go to `target/bench-tls/report.{md,json}`. `--quick` (CI) runs one
//! short round and fails only on errors or a counter mismatch, never on speed.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::bench::BenchArgs;
use crate::binaries;
use crate::nginx::Nginx;
use crate::oha;
use crate::stack::{self, Balancer, Redis};

/// Parallel `openssl s_time` clients.
const HANDSHAKE_CLIENTS: usize = 4;
/// Keep-alive connections of the HTTP/1.1 runs; HTTP/2 uses 8 connections x 8 streams.
const KEEPALIVE_CONNECTIONS: usize = 64;

/// One door's figures in one round.
#[derive(Debug, Clone, Default, Serialize)]
struct Round {
    full_handshakes_per_sec: f64,
    /// The door's CPU per full handshake (with its one request), microseconds: the server's
    /// own cost, which the clients sharing the machine do not blur.
    full_handshake_cpu_us: f64,
    resumed_handshakes_per_sec: f64,
    resumed_handshake_cpu_us: f64,
    http1_rps: f64,
    http1_p99_ms: f64,
    http2_rps: f64,
    http2_p99_ms: f64,
    cpu_seconds_per_10k: f64,
}

/// A door's medians and its idle-connection memory.
#[derive(Debug, Clone, Serialize)]
struct DoorResult {
    door: &'static str,
    rounds: Vec<Round>,
    median: Round,
    rss_kib_per_1000_idle: f64,
}

#[derive(Debug, Serialize)]
struct TlsReport {
    quick: bool,
    rounds: usize,
    seconds_per_run: u64,
    idle_connections: usize,
    balancer: DoorResult,
    nginx: DoorResult,
    problems: Vec<String>,
}

/// The two doors under test and what they need.
struct Doors {
    balancer: Balancer,
    balancer_tls: SocketAddr,
    nginx: Nginx,
    nginx_tls: SocketAddr,
    ca: PathBuf,
}

/// Adds an HTTPS listener to the generated NGINX server (after its plain `listen`), with the
/// same pair and session settings as `nginx-tls/tls.conf`.
pub fn nginx_with_tls(config: &str, tls: SocketAddr, cert: &Path, key: &Path) -> Result<String> {
    let mut out = Vec::new();
    let mut added = false;
    for line in config.lines() {
        out.push(line.to_string());
        let text = e2e::nginx_config::directive(line);
        if !added && text.starts_with("listen ") {
            let indent = &line[..line.len() - line.trim_start().len()];
            for directive in [
                format!("listen {tls} ssl http2;"),
                format!("ssl_certificate {};", cert.display()),
                format!("ssl_certificate_key {};", key.display()),
                "ssl_protocols TLSv1.2 TLSv1.3;".to_string(),
                "ssl_session_cache shared:TLS:10m;".to_string(),
                "ssl_session_tickets on;".to_string(),
                // NGINX ends an HTTP/2 connection with GOAWAY after 1,000 requests by default,
                // which oha counts as errors; the balancer sets no such limit.
                "keepalive_requests 1000000;".to_string(),
            ] {
                out.push(format!("{indent}{directive}"));
            }
            added = true;
        }
    }
    if !added {
        bail!("the generated nginx config has no `listen` line to add TLS after");
    }
    Ok(out.join("\n") + "\n")
}

fn start_doors(
    args: &BenchArgs,
    bins: &binaries::Binaries,
    nginx_bin: &Path,
    upstreams: &[SocketAddr],
    work: &Path,
    logs: &Path,
) -> Result<Doors> {
    let certs = crate::dev_cert::write(&work.join("certs"), true)?;
    let (cert, key) = (certs.join("cert.pem"), certs.join("key.pem"));
    let loopback = |port| SocketAddr::from(([127, 0, 0, 1], port));
    let balancer_tls = loopback(stack::free_port()?);
    let flags = [
        "--tls-listen".to_string(),
        balancer_tls.to_string(),
        "--tls-cert".to_string(),
        cert.display().to_string(),
        "--tls-key".to_string(),
        key.display().to_string(),
    ];
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let balancer = Balancer::start(
        &bins.balancer,
        (stack::free_port()?, stack::free_port()?),
        upstreams,
        Some(1),
        args.balancer_request_log,
        &logs.join("balancer.log"),
        &flags,
    )?;
    let nginx_tls = loopback(stack::free_port()?);
    let plain = loopback(stack::free_port()?);
    let nginx = Nginx::start_edited(
        nginx_bin,
        &work.join("nginx"),
        upstreams,
        (plain, plain),
        Some(1),
        |c| nginx_with_tls(&c, nginx_tls, &cert, &key),
    )?;
    Ok(Doors {
        balancer,
        balancer_tls,
        nginx,
        nginx_tls,
        ca: certs.join("ca.pem"),
    })
}

/// Handshakes per second from [`HANDSHAKE_CLIENTS`] `openssl s_time` clients (`-new` or
/// `-reuse`), each fetching `path` once per connection for `secs` seconds, and the CPU
/// microseconds `pids` spent per handshake.
fn handshakes(
    addr: SocketAddr,
    pids: &[u32],
    mode: &str,
    path: &str,
    secs: u64,
) -> Result<(f64, f64)> {
    let cpu_before = crate::procstats::sample(pids)?.cpu_seconds;
    let began = Instant::now();
    let children: Vec<_> = (0..HANDSHAKE_CLIENTS)
        .map(|_| {
            Command::new("openssl")
                .args(["s_time", "-connect", &addr.to_string(), mode])
                .args(["-time", &secs.to_string(), "-www", path])
                .stdin(std::process::Stdio::null())
                .output()
        })
        .collect();
    let mut connections = 0u64;
    for child in children {
        let out = child.context("running openssl s_time")?;
        let text = String::from_utf8_lossy(&out.stdout);
        connections += s_time_connections(&text)
            .with_context(|| format!("openssl s_time {mode} printed no count: {text}"))?;
    }
    let rate = connections as f64 / began.elapsed().as_secs_f64();
    let cpu = crate::procstats::sample(pids)?.cpu_seconds - cpu_before;
    Ok((rate, cpu.max(0.0) * 1e6 / connections.max(1) as f64))
}

/// The connection count of `s_time`'s summary line (`N connections in T real seconds`).
pub fn s_time_connections(text: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.contains("connections in") && l.contains("real seconds"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Median of `values` (0 when empty).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn median_round(rounds: &[Round]) -> Round {
    let m = |f: fn(&Round) -> f64| median(rounds.iter().map(f).collect());
    Round {
        full_handshakes_per_sec: m(|r| r.full_handshakes_per_sec),
        full_handshake_cpu_us: m(|r| r.full_handshake_cpu_us),
        resumed_handshakes_per_sec: m(|r| r.resumed_handshakes_per_sec),
        resumed_handshake_cpu_us: m(|r| r.resumed_handshake_cpu_us),
        http1_rps: m(|r| r.http1_rps),
        http1_p99_ms: m(|r| r.http1_p99_ms),
        http2_rps: m(|r| r.http2_rps),
        http2_p99_ms: m(|r| r.http2_p99_ms),
        cpu_seconds_per_10k: m(|r| r.cpu_seconds_per_10k),
    }
}

/// Holds `count` idle TLS connections (handshake finished) to `addr`; the RSS of `pids` they
/// add, in KiB per 1,000 connections.
fn idle_rss_per_1000(addr: SocketAddr, ca: &Path, pids: &[u32], count: usize) -> Result<f64> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca)? {
        roots.add(cert?)?;
    }
    let config = Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    e2e::resources::raise_nofile(count as u64 + 1024);
    let rss = || -> u64 {
        pids.iter()
            .filter_map(|&p| e2e::resources::rss_kib(p))
            .sum()
    };
    let before = rss();
    let mut held = Vec::with_capacity(count);
    for i in 0..count {
        let name = rustls::pki_types::ServerName::try_from("localhost")?;
        let mut conn = rustls::ClientConnection::new(config.clone(), name)?;
        let mut tcp = TcpStream::connect(addr).with_context(|| format!("idle connection {i}"))?;
        tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp)
                .with_context(|| format!("handshake of idle connection {i}"))?;
        }
        held.push((conn, tcp));
    }
    // Let the server finish its side (tickets, buffers) before reading its memory.
    std::thread::sleep(Duration::from_millis(500));
    let after = rss();
    drop(held);
    Ok(after.saturating_sub(before) as f64 * 1000.0 / count as f64)
}

/// What every measurement needs.
struct Ctx<'a> {
    oha: &'a Path,
    redis: &'a Redis,
    counter_key: &'a str,
    raw: &'a Path,
    secs: u64,
    static_path: &'a str,
    problems: Vec<String>,
}

impl Ctx<'_> {
    /// oha on `/count` over HTTP/1.1+TLS or HTTP/2+TLS; the result checked against the counter,
    /// and the door's CPU seconds per 10,000 responses.
    fn keepalive(
        &mut self,
        (door, addr, ca, pids): (&str, SocketAddr, &Path, &[u32]),
        http2: bool,
        round: usize,
    ) -> Result<(oha::OhaResult, f64)> {
        let url = format!("https://127.0.0.1:{}/count", addr.port());
        let ca = ca.display().to_string();
        let mut extra = vec!["--cacert", ca.as_str()];
        if http2 {
            extra.extend(["--http2", "-p", "8"]);
        }
        let connections = if http2 { 8 } else { KEEPALIVE_CONNECTIONS };
        let label = if http2 { "h2" } else { "h1" };
        let stem = self.raw.join(format!("{door}-{label}-round{round}"));
        let cpu_before = crate::procstats::sample(pids)?.cpu_seconds;
        let before = self.redis.counter(self.counter_key)?;
        let duration = Duration::from_secs(self.secs);
        let result = oha::run_with(self.oha, &url, connections, duration, &stem, &extra)?;
        let delta = self.redis.counter(self.counter_key)? - before;
        let cpu = crate::procstats::sample(pids)?.cpu_seconds - cpu_before;
        let check = crate::bench::check_run(crate::model::PathKind::Count, &result, delta);
        if let Some(problem) = check {
            self.problems
                .push(format!("{door} {label} round {round}: {problem}"));
        }
        let responses = result.status_counts.values().sum();
        let per_10k = crate::bench::per_10k(cpu.max(0.0), responses).unwrap_or(0.0);
        Ok((result, per_10k))
    }

    fn round(&mut self, door: (&str, SocketAddr, &Path, &[u32]), round: usize) -> Result<Round> {
        let (addr, pids) = (door.1, door.3);
        let full = handshakes(addr, pids, "-new", self.static_path, self.secs)?;
        let resumed = handshakes(addr, pids, "-reuse", self.static_path, self.secs)?;
        let (h1, cpu) = self.keepalive(door, false, round)?;
        let (h2, _) = self.keepalive(door, true, round)?;
        let r = Round {
            full_handshakes_per_sec: full.0,
            full_handshake_cpu_us: full.1,
            resumed_handshakes_per_sec: resumed.0,
            resumed_handshake_cpu_us: resumed.1,
            http1_rps: h1.requests_per_sec,
            http1_p99_ms: h1.p99_ms,
            http2_rps: h2.requests_per_sec,
            http2_p99_ms: h2.p99_ms,
            cpu_seconds_per_10k: cpu,
        };
        eprintln!("xtask: tls round {round} {}: {r:?}", door.0);
        Ok(r)
    }
}

/// Runs the TLS benchmark; `Ok(false)` when a run check failed (the report is still written).
pub fn run(args: &BenchArgs) -> Result<bool> {
    let quick = args.quick;
    let oha_bin = binaries::oha()?;
    let nginx_bin = binaries::nginx()?;
    let redis_bin = binaries::redis_server()?;
    let bins = args.binaries.resolve()?;
    let out = match &args.out_dir {
        Some(dir) => dir.join("tls"),
        None => binaries::target_dir().join("bench-tls"),
    };
    let (raw, logs) = (out.join("raw"), out.join("logs"));
    for dir in [&raw, &logs] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let work = tempfile::Builder::new()
        .prefix("xtask-bench-tls-")
        .tempdir()?;
    let redis = Redis::start(
        &redis_bin,
        stack::free_port()?,
        &work.path().join("redis"),
        &logs,
    )?;
    let replicas =
        stack::start_replicas(&bins.app, &redis, args.replicas, &args.counter_key, &logs)?;
    let upstreams: Vec<SocketAddr> = replicas.iter().map(|r| r.addr).collect();
    let doors = start_doors(args, &bins, &nginx_bin, &upstreams, work.path(), &logs)?;
    let rounds = args.rounds.unwrap_or(if quick { 1 } else { 3 });
    let secs = args
        .duration
        .map_or(if quick { 1 } else { 4 }, |d| d.as_secs().max(1));
    let mut ctx = Ctx {
        oha: &oha_bin,
        redis: &redis,
        counter_key: &args.counter_key,
        raw: &raw,
        secs,
        static_path: &args.static_path,
        problems: Vec::new(),
    };
    let report = measure(&mut ctx, &doors, rounds, quick)?;
    drop(replicas);
    write_report(&report, &out)
}

fn measure(ctx: &mut Ctx<'_>, doors: &Doors, rounds: usize, quick: bool) -> Result<TlsReport> {
    let balancer_pids = vec![doors.balancer.process.pid()];
    let nginx_pids = doors.nginx.pids();
    let b = (
        "balancer",
        doors.balancer_tls,
        doors.ca.as_path(),
        &balancer_pids[..],
    );
    let n = (
        "nginx",
        doors.nginx_tls,
        doors.ca.as_path(),
        &nginx_pids[..],
    );
    let (mut b_rounds, mut n_rounds) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        b_rounds.push(ctx.round(b, round)?);
        n_rounds.push(ctx.round(n, round)?);
    }
    let idle = if quick { 100 } else { 1000 };
    let door = |name, rounds: Vec<Round>, addr, pids: &[u32]| -> Result<DoorResult> {
        Ok(DoorResult {
            door: name,
            median: median_round(&rounds),
            rounds,
            rss_kib_per_1000_idle: idle_rss_per_1000(addr, &doors.ca, pids, idle)?,
        })
    };
    Ok(TlsReport {
        quick,
        rounds,
        seconds_per_run: ctx.secs,
        idle_connections: idle,
        balancer: door("balancer", b_rounds, doors.balancer_tls, &balancer_pids)?,
        nginx: door("nginx", n_rounds, doors.nginx_tls, &nginx_pids)?,
        problems: std::mem::take(&mut ctx.problems),
    })
}

/// `report.json` and `report.md` into `out`; prints the table; false when a check failed.
fn write_report(report: &TlsReport, out: &Path) -> Result<bool> {
    let json = serde_json::to_string_pretty(report)?;
    std::fs::write(out.join("report.json"), json)?;
    let md = markdown(report);
    std::fs::write(out.join("report.md"), &md)?;
    std::fs::write(out.join("report.svg"), chart(report))?;
    println!("{md}");
    for p in &report.problems {
        eprintln!("xtask: tls bench check failed: {p}");
    }
    Ok(report.problems.is_empty())
}

fn markdown(r: &TlsReport) -> String {
    let (b, n) = (&r.balancer.median, &r.nginx.median);
    let ratio = |x: f64, y: f64| {
        if y > 0.0 {
            format!("{:.2}x", x / y)
        } else {
            "-".into()
        }
    };
    let rows: [(&str, f64, f64, &str); 10] = [
        (
            "full handshakes/s (s_time -new)",
            b.full_handshakes_per_sec,
            n.full_handshakes_per_sec,
            ">= 1.2x",
        ),
        (
            "CPU us per full handshake + request",
            b.full_handshake_cpu_us,
            n.full_handshake_cpu_us,
            "",
        ),
        (
            "resumed handshakes/s (s_time -reuse)",
            b.resumed_handshakes_per_sec,
            n.resumed_handshakes_per_sec,
            "",
        ),
        (
            "CPU us per resumed handshake + request",
            b.resumed_handshake_cpu_us,
            n.resumed_handshake_cpu_us,
            "",
        ),
        (
            "HTTP/1.1+TLS keep-alive req/s (/count, c=64)",
            b.http1_rps,
            n.http1_rps,
            ">= 1.0x",
        ),
        ("HTTP/1.1+TLS p99 ms", b.http1_p99_ms, n.http1_p99_ms, ""),
        (
            "HTTP/2+TLS req/s (/count, 8 conns x 8 streams)",
            b.http2_rps,
            n.http2_rps,
            ">= 1.0x",
        ),
        ("HTTP/2+TLS p99 ms", b.http2_p99_ms, n.http2_p99_ms, ""),
        (
            "CPU s per 10k requests (HTTP/1.1+TLS)",
            b.cpu_seconds_per_10k,
            n.cpu_seconds_per_10k,
            "",
        ),
        (
            "RSS KiB per 1,000 idle TLS connections",
            r.balancer.rss_kib_per_1000_idle,
            r.nginx.rss_kib_per_1000_idle,
            "<= 0.5x",
        ),
    ];
    let mut md = format!(
        "# TLS: balancer --workers 1 vs NGINX worker_processes 1\n\nSame ECDSA P-256 certificate, \
         medians of {} round(s) of {} s runs (alternating), {} idle connections for the RSS figure{}.\n\n\
         | measure | balancer | nginx | balancer / nginx | target |\n| --- | ---: | ---: | ---: | --- |\n",
        r.rounds,
        r.seconds_per_run,
        r.idle_connections,
        if r.quick { " (--quick: not figures to quote)" } else { "" }
    );
    for (name, x, y, target) in rows {
        md.push_str(&format!(
            "| {name} | {x:.2} | {y:.2} | {} | {target} |\n",
            ratio(x, y)
        ));
    }
    md
}

/// Horizontal bars of balancer / NGINX per measure, with the 1.0 line: right of it is better for
/// rates, left of it for costs (CPU, p99, memory).
fn chart(r: &TlsReport) -> String {
    let (b, n) = (&r.balancer.median, &r.nginx.median);
    let bars = [
        (
            "full handshakes/s",
            b.full_handshakes_per_sec / n.full_handshakes_per_sec,
            true,
        ),
        (
            "CPU per full handshake",
            b.full_handshake_cpu_us / n.full_handshake_cpu_us,
            false,
        ),
        (
            "resumed handshakes/s",
            b.resumed_handshakes_per_sec / n.resumed_handshakes_per_sec,
            true,
        ),
        (
            "CPU per resumed handshake",
            b.resumed_handshake_cpu_us / n.resumed_handshake_cpu_us,
            false,
        ),
        ("HTTP/1.1+TLS req/s", b.http1_rps / n.http1_rps, true),
        ("HTTP/1.1+TLS p99", b.http1_p99_ms / n.http1_p99_ms, false),
        ("HTTP/2+TLS req/s", b.http2_rps / n.http2_rps, true),
        ("HTTP/2+TLS p99", b.http2_p99_ms / n.http2_p99_ms, false),
        (
            "CPU per 10k requests",
            b.cpu_seconds_per_10k / n.cpu_seconds_per_10k,
            false,
        ),
        (
            "RSS per idle TLS connection",
            r.balancer.rss_kib_per_1000_idle / r.nginx.rss_kib_per_1000_idle,
            false,
        ),
    ];
    let (left, width, row) = (230.0, 400.0, 28.0);
    let scale = |x: f64| left + (x.clamp(0.0, 2.0) / 2.0) * width;
    let height = 60.0 + row * bars.len() as f64;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"700\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"13\">\n\
         <text x=\"10\" y=\"20\" font-weight=\"bold\">TLS: balancer / NGINX (1 worker each; medians)</text>\n"
    );
    for (i, (name, ratio, higher_is_better)) in bars.iter().enumerate() {
        let y = 40.0 + row * i as f64;
        let good = if *higher_is_better {
            *ratio >= 1.0
        } else {
            *ratio <= 1.0
        };
        let color = if good { "#2e7d32" } else { "#c62828" };
        svg.push_str(&format!(
            "<text x=\"10\" y=\"{:.0}\">{name}</text><rect x=\"{left}\" y=\"{y:.0}\" width=\"{:.1}\" height=\"18\" fill=\"{color}\"/>\
             <text x=\"{:.1}\" y=\"{:.0}\">{ratio:.2}x</text>\n",
            y + 14.0,
            scale(*ratio) - left,
            scale(*ratio) + 6.0,
            y + 14.0
        ));
    }
    let one = scale(1.0);
    svg.push_str(&format!(
        "<line x1=\"{one}\" y1=\"30\" x2=\"{one}\" y2=\"{:.0}\" stroke=\"#000\" stroke-dasharray=\"4\"/>\n\
         <text x=\"{one}\" y=\"{:.0}\" text-anchor=\"middle\">1.0 (green: balancer better)</text>\n</svg>\n",
        height - 20.0,
        height - 5.0
    ));
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_gets_an_https_listen_after_its_plain_one() {
        let config = "http {\n    server {\n        listen 127.0.0.1:1;\n    }\n}\n";
        let tls = SocketAddr::from(([127, 0, 0, 1], 2));
        let out = nginx_with_tls(config, tls, Path::new("/c.pem"), Path::new("/k.pem")).unwrap();
        assert!(
            out.contains("        listen 127.0.0.1:1;\n        listen 127.0.0.1:2 ssl http2;\n")
        );
        assert!(out.contains("ssl_certificate /c.pem;") && out.contains("ssl_session_tickets on;"));
        assert!(nginx_with_tls("http {}\n", tls, Path::new("c"), Path::new("k")).is_err());
    }

    #[test]
    fn s_time_summaries_are_read() {
        let out = "Collecting connection statistics for 1 seconds\n\
                   tttt\n\n812 connections in 0.53s; 1532.08 connections/user sec, bytes read 0\n\
                   812 connections in 2 real seconds, 0 bytes read per connection\n";
        assert_eq!(s_time_connections(out), Some(812));
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0]), 2.5);
    }
}

#[cfg(test)]
mod chart_tests {
    use super::*;

    #[test]
    fn the_chart_has_a_bar_per_measure_colored_by_which_door_wins() {
        let round = |x: f64| Round {
            full_handshakes_per_sec: x,
            full_handshake_cpu_us: x,
            resumed_handshakes_per_sec: x,
            resumed_handshake_cpu_us: x,
            http1_rps: x,
            http1_p99_ms: x,
            http2_rps: x,
            http2_p99_ms: x,
            cpu_seconds_per_10k: x,
        };
        let door = |name, x| DoorResult {
            door: name,
            rounds: vec![],
            median: round(x),
            rss_kib_per_1000_idle: x,
        };
        let report = TlsReport {
            quick: true,
            rounds: 1,
            seconds_per_run: 1,
            idle_connections: 100,
            balancer: door("balancer", 2.0),
            nginx: door("nginx", 1.0),
            problems: vec![],
        };
        let svg = chart(&report);
        assert_eq!(svg.matches("<rect").count(), 10);
        // Twice the rate is good, twice the cost is bad: 4 rates green, 6 costs red.
        assert_eq!(svg.matches("#2e7d32").count(), 4);
        assert_eq!(svg.matches("#c62828").count(), 6);
    }
}
