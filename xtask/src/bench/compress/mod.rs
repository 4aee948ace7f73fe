//! `cargo xtask bench --compress`: what response compression saves and costs on the app's `/`
//! page, the balancer against NGINX's `gzip on` at the same level, in the same run.
//!
//! Saved: the page's bytes on the wire with each coding (identity, gzip, br, zstd from the
//! balancer with `--compress zstd,br,gzip` at its default levels; gzip from NGINX with
//! `gzip_comp_level 5`), one `curl` each, deterministic for a given page. Cost: instructions per
//! response under callgrind (as `bench --instructions` counts them, see its module): each door
//! started under valgrind in front of one replica (the balancer `--workers 1 --compress gzip`,
//! gzip's default level 5; NGINX one process with [`with_gzip`] level 5), warmed up, then
//! [`RUN_REQUESTS`] sequential keep-alive `GET /` counted, once with `Accept-Encoding: gzip` and
//! once without, so the difference is what compressing one response costs. Wall-clock CPU would
//! move by a quarter between rounds on this shared machine; the counts do not.
//!
//! The load is `curl -K` (one keep-alive connection, every response's status and size checked),
//! not oha: nothing here needs concurrency, and curl reports each response's encoded size.
//! Writes `compress.{md,json}` into `<target>/bench-compress` (or `--out-dir`).

mod report;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use e2e::Process;
use serde::Serialize;

use super::core::OutDirs;
use super::BenchArgs;
use crate::config_error::config_error;
use crate::report::git_describe;
use crate::stack::binaries::Binaries;
use crate::stack::launch::Launch;
use crate::stack::nginx::{with_gzip, Nginx};
use crate::stack::{self, loopback, Balancer, Redis, Replica, RequestLog};
use crate::tools::{callgrind, locate};

/// The page measured.
const PATH: &str = "/";
/// gzip's level on both doors (the balancer's default, `gzip_comp_level` for NGINX).
pub const GZIP_LEVEL: u32 = 5;
/// Counted requests per run (quick: [`QUICK_REQUESTS`]).
const RUN_REQUESTS: u64 = 2_000;
const QUICK_REQUESTS: u64 = 300;
/// Requests before counting starts (code translated, pools warm).
const WARMUP_REQUESTS: u64 = 200;

/// A front door of this bench.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Door {
    Balancer,
    Nginx,
}

impl Door {
    pub fn label(self) -> &'static str {
        match self {
            Door::Balancer => "balancer",
            Door::Nginx => "nginx",
        }
    }
}

/// The page's size on the wire as one door sent it for one `Accept-Encoding`.
#[derive(Debug, Clone, Serialize)]
pub struct Wire {
    pub door: Door,
    pub accept: Option<&'static str>,
    /// The `Content-Encoding` it came with (`identity` when none).
    pub coding: String,
    pub bytes: u64,
}

/// One counted run.
#[derive(Debug, Clone, Serialize)]
pub struct Count {
    pub door: Door,
    pub accept: Option<&'static str>,
    pub run: usize,
    pub requests: u64,
    pub instructions: u64,
    pub per_request: f64,
}

/// Everything `compress.json` holds.
#[derive(Debug, Serialize)]
pub struct CompressReport {
    pub git: String,
    pub valgrind: String,
    pub nginx: String,
    pub path: &'static str,
    pub gzip_level: u32,
    pub runs: usize,
    pub requests: u64,
    pub wire: Vec<Wire>,
    pub counts: Vec<Count>,
    pub failures: Vec<String>,
}

/// What every measurement shares.
struct Bench<'a> {
    nginx_bin: PathBuf,
    bins: Binaries,
    replica: &'a Replica,
    work: PathBuf,
    out: &'a OutDirs,
    requests: u64,
}

/// Runs the compression bench; `Ok(false)` when a run failed (the report is still written).
pub fn run(args: &BenchArgs) -> Result<bool> {
    let runs = args.rounds.unwrap_or(if args.quick { 1 } else { 2 });
    if runs == 0 {
        return Err(config_error("--rounds must be at least 1"));
    }
    callgrind::check_installed()?;
    let nginx_bin = locate::nginx()?;
    let redis_bin = locate::redis_server()?;
    let bins = args.binaries.resolve()?;
    let started = Instant::now();
    let out = OutDirs::prepare(args, "bench-compress")?;
    let work = tempfile::Builder::new()
        .prefix("xtask-compress-")
        .tempdir()
        .context("creating a temporary directory")?;
    let redis = Redis::start(
        &redis_bin,
        stack::free_port()?,
        &work.path().join("redis"),
        &out.logs,
    )?;
    let replicas = stack::start_replicas(&bins.app, &redis, 1, &args.counter_key, &out.logs)?;
    let bench = Bench {
        nginx_bin: nginx_bin.clone(),
        bins,
        replica: &replicas[0],
        work: work.path().to_path_buf(),
        out: &out,
        requests: if args.quick {
            QUICK_REQUESTS
        } else {
            RUN_REQUESTS
        },
    };
    let mut report = CompressReport {
        git: git_describe(),
        valgrind: locate::tool_version(Path::new("valgrind"), "--version"),
        nginx: locate::tool_version(&nginx_bin, "-v"),
        path: PATH,
        gzip_level: GZIP_LEVEL,
        runs,
        requests: bench.requests,
        wire: Vec::new(),
        counts: Vec::new(),
        failures: Vec::new(),
    };
    match bench.wire() {
        Ok(wire) => report.wire = wire,
        Err(e) => report.failures.push(format!("bytes on the wire: {e:#}")),
    }
    bench.count_all(runs, &mut report);
    report::finish(&report, args, &out, started)
}

impl Bench<'_> {
    /// The page from each door with each `Accept-Encoding`, not under valgrind.
    fn wire(&self) -> Result<Vec<Wire>> {
        let mut wire = Vec::new();
        let (mut balancer, addr) =
            self.start(Door::Balancer, &Launch::default(), "wire", "zstd,br,gzip")?;
        for accept in [None, Some("gzip"), Some("br"), Some("zstd")] {
            wire.push(fetch(Door::Balancer, addr, accept)?);
        }
        balancer.stop(Duration::from_secs(10));
        let (mut nginx, addr) = self.start(Door::Nginx, &Launch::default(), "wire", "")?;
        for accept in [None, Some("gzip")] {
            wire.push(fetch(Door::Nginx, addr, accept)?);
        }
        nginx.stop(Duration::from_secs(10));
        Ok(wire)
    }

    /// Every run, door and `Accept-Encoding` counted in turn; a failed run is recorded.
    fn count_all(&self, runs: usize, report: &mut CompressReport) {
        for run in 1..=runs {
            for door in [Door::Balancer, Door::Nginx] {
                for accept in [Some("gzip"), None] {
                    let what = format!("{} {} run {run}", door.label(), accept_label(accept));
                    match self.count(door, accept, run) {
                        Ok(count) => {
                            eprintln!(
                                "xtask: {what}: {:.0} instructions/response",
                                count.per_request
                            );
                            report.counts.push(count);
                        }
                        Err(e) => report.failures.push(format!("{what}: {e:#}")),
                    }
                }
            }
        }
    }

    /// `door` under callgrind: warmed up, `self.requests` responses counted, stopped.
    fn count(&self, door: Door, accept: Option<&'static str>, run: usize) -> Result<Count> {
        let slug = format!("{}-{}-{run}", door.label(), accept_label(accept));
        let profile_path = self.out.raw.join(format!("callgrind.{slug}.out"));
        let launch = Launch::callgrind(&profile_path);
        let (mut process, addr) = self.start(door, &launch, &slug, "gzip")?;
        let url = format!("http://{addr}{PATH}");
        let config = self.work.join(format!("curl-{slug}"));
        load(&url, accept, WARMUP_REQUESTS, &config)?;
        callgrind::control(process.pid(), "on")?;
        let loaded = load(&url, accept, self.requests, &config);
        callgrind::control(process.pid(), "off")?;
        let requests = loaded?;
        process.stop(Duration::from_secs(60));
        let program = door.label();
        let profile = callgrind::annotate(&profile_path, program)?;
        Ok(Count {
            door,
            accept,
            run,
            requests,
            instructions: profile.total,
            per_request: profile.total as f64 / requests.max(1) as f64,
        })
    }

    /// `door` in front of the replica as `launch` says: the balancer with `--compress codecs`,
    /// NGINX with `gzip on` at [`GZIP_LEVEL`]; its process and address.
    fn start(
        &self,
        door: Door,
        launch: &Launch,
        slug: &str,
        codecs: &str,
    ) -> Result<(Process, SocketAddr)> {
        let upstreams = [self.replica.addr];
        match door {
            Door::Nginx => {
                let listen = loopback(stack::free_port()?);
                let prefix = self.work.join(format!("nginx-{slug}"));
                let edit = |config: String| with_gzip(&config, GZIP_LEVEL);
                let nginx = Nginx::start_launched(
                    &self.nginx_bin,
                    &prefix,
                    &upstreams,
                    (listen, listen),
                    Some(1),
                    launch,
                    edit,
                )?;
                Ok((nginx.process, nginx.addr))
            }
            Door::Balancer => {
                let ports = (stack::free_port()?, stack::free_port()?);
                // Probes and re-resolution stay out of the counted window.
                let flags = [
                    "--health-interval",
                    "1h",
                    "--resolve-interval",
                    "1h",
                    "--compress",
                    codecs,
                ];
                let log = self.out.logs.join(format!("balancer-{slug}.log"));
                let balancer = Balancer::start_launched(
                    &self.bins.balancer,
                    ports,
                    &upstreams,
                    (Some(1), RequestLog::Off),
                    &log,
                    launch,
                    &flags,
                )?;
                Ok((balancer.process, balancer.addr))
            }
        }
    }
}

pub fn accept_label(accept: Option<&str>) -> &str {
    accept.unwrap_or("identity")
}

/// `GET /` once with `accept`: its coding and encoded size.
fn fetch(door: Door, addr: SocketAddr, accept: Option<&'static str>) -> Result<Wire> {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "--max-time", "10", "-o", "/dev/null", "-w"])
        .arg("%{http_code} %{size_download} %header{content-encoding}");
    if let Some(accept) = accept {
        cmd.arg("-H").arg(format!("Accept-Encoding: {accept}"));
    }
    let output = cmd
        .arg(format!("http://{addr}{PATH}"))
        .output()
        .context("running curl (Debian package curl)")?;
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    let mut fields = text.split_whitespace();
    let (Some("200"), Some(bytes)) = (fields.next(), fields.next()) else {
        bail!(
            "{} {PATH} with {accept:?}: curl printed {text:?}",
            door.label()
        );
    };
    Ok(Wire {
        door,
        accept,
        coding: fields.next().unwrap_or("identity").to_string(),
        bytes: bytes.parse().with_context(|| format!("size {bytes:?}"))?,
    })
}

/// `n` sequential `GET url` on one keep-alive connection (`curl -K`), each with `accept`; the
/// number answered 200, which must be all of them.
fn load(url: &str, accept: Option<&str>, n: u64, config: &Path) -> Result<u64> {
    let mut text = String::new();
    for _ in 0..n {
        let _ = writeln!(text, "url = \"{url}\"\noutput = \"/dev/null\"");
    }
    std::fs::write(config, text).with_context(|| format!("writing {}", config.display()))?;
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "--max-time", "900", "-w", "%{http_code}\\n", "-K"])
        .arg(config);
    if let Some(accept) = accept {
        cmd.arg("-H").arg(format!("Accept-Encoding: {accept}"));
    }
    let output = cmd.output().context("running curl")?;
    let codes = String::from_utf8_lossy(&output.stdout);
    let ok = codes.lines().filter(|c| *c == "200").count() as u64;
    if ok != n {
        bail!(
            "{url}: {ok} of {n} answered 200 ({})",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(ok)
}
