//! `cargo xtask bench --tls`: the balancer's HTTPS listener against NGINX's, on loopback.
//!
//! Both doors get the same ECDSA P-256 certificate (made by `dev_cert`), one worker each
//! (`--workers 1`, `worker_processes 1`), TLS 1.2/1.3 with tickets and a session cache, and sit
//! in front of the same replicas. Per round, alternating balancer then NGINX:
//! * full handshakes/s: `openssl s_time -new` (a new connection and a full handshake per
//!   request, `GET` of the static asset), [`HANDSHAKE_CLIENTS`] clients one after another (each
//!   runs to its end before the next starts, so the rate is one client's);
//! * resumed handshakes/s: the same with `-reuse` (every connection resumes one session);
//! * keep-alive requests/s and p99 on `/count` over HTTP/1.1+TLS and HTTP/2+TLS (oha), with the
//!   counter checked against the successes, and the door's CPU per 10,000 requests.
//!
//! Then, once per door, the RSS that 1,000 idle TLS connections (handshake done) add.
//! Medians over the rounds go to `target/bench-tls/report.{md,json,svg}` ([`report`]). `--quick`
//! (CI) runs one short round and fails only on errors or a counter mismatch, never on speed.
//!
//! It may use the bench's shared modules (`core`, `tls_files`), [`crate::stack`] and
//! [`crate::tools`]; no other runner.

mod report;

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::core;
use super::tls_files::TlsFiles;
use super::BenchArgs;
use crate::report::model::PathKind;
use crate::stack::binaries::{self, Binaries};
use crate::stack::nginx::{self, Nginx};
use crate::stack::{self, loopback, Balancer, Redis};
use crate::tools::{locate, oha, openssl, procstats};
use report::{median_round, write_report, DoorResult, Round, TlsReport};

/// Parallel `openssl s_time` clients.
const HANDSHAKE_CLIENTS: usize = 4;
/// Keep-alive connections of the HTTP/1.1 runs; HTTP/2 uses 8 connections x 8 streams.
const KEEPALIVE_CONNECTIONS: usize = 64;

/// The two doors under test and what they need.
struct Doors {
    balancer: Balancer,
    balancer_tls: SocketAddr,
    nginx: Nginx,
    nginx_tls: SocketAddr,
    ca: PathBuf,
}

fn start_doors(
    args: &BenchArgs,
    bins: &Binaries,
    nginx_bin: &Path,
    upstreams: &[SocketAddr],
    work: &Path,
    logs: &Path,
) -> Result<Doors> {
    let files = TlsFiles::write(work)?;
    let balancer_tls = loopback(stack::free_port()?);
    let flags = files.balancer_flags(balancer_tls);
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
        |c| nginx::with_tls(&c, nginx_tls, &files.cert, &files.key),
    )?;
    Ok(Doors {
        balancer,
        balancer_tls,
        nginx,
        nginx_tls,
        ca: files.ca,
    })
}

/// Handshakes per second from [`HANDSHAKE_CLIENTS`] `openssl s_time` clients in turn (`-new` or
/// `-reuse`), each fetching `path` once per connection for `secs` seconds, and the CPU
/// microseconds `pids` spent per handshake.
fn handshakes(
    addr: SocketAddr,
    pids: &[u32],
    mode: &str,
    path: &str,
    secs: u64,
) -> Result<(f64, f64)> {
    let cpu_before = procstats::sample(pids)?.cpu_seconds;
    let began = Instant::now();
    let mut connections = 0u64;
    for _ in 0..HANDSHAKE_CLIENTS {
        connections += openssl::s_time(addr, mode, path, secs)?;
    }
    let rate = connections as f64 / began.elapsed().as_secs_f64();
    let cpu = procstats::sample(pids)?.cpu_seconds - cpu_before;
    Ok((rate, cpu.max(0.0) * 1e6 / connections.max(1) as f64))
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
        let cpu_before = procstats::sample(pids)?.cpu_seconds;
        let before = self.redis.counter(self.counter_key)?;
        let duration = Duration::from_secs(self.secs);
        let result = oha::run_with(self.oha, &url, connections, duration, &stem, &extra)?;
        let delta = self.redis.counter(self.counter_key)? - before;
        let cpu = procstats::sample(pids)?.cpu_seconds - cpu_before;
        let check = core::check_run(PathKind::Count, &result, delta);
        if let Some(problem) = check {
            self.problems
                .push(format!("{door} {label} round {round}: {problem}"));
        }
        let responses = result.status_counts.values().sum();
        let per_10k = core::per_10k(cpu.max(0.0), responses).unwrap_or(0.0);
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
    let oha_bin = locate::oha()?;
    let nginx_bin = locate::nginx()?;
    let redis_bin = locate::redis_server()?;
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
