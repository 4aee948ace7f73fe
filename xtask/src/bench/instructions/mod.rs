//! `cargo xtask bench --instructions`: user-space instructions per proxied request, the balancer
//! (`--workers 1`) against NGINX (`master_process off`, one worker), each run under valgrind's
//! callgrind in front of the same replica.
//!
//! Why: on a shared 2-core machine, requests/s and CPU seconds move by up to 25 % between rounds,
//! so a change of a few percent on the request path cannot be judged by them. Callgrind counts
//! the instructions a process executes, which depend on the binary and its inputs, not on what
//! else the machine does. Instrumentation is switched on only after a warm-up
//! (`callgrind_control -i on`), for a fixed number of requests over 16 keep-alive connections,
//! and off again before the process stops, so start-up and shutdown are not counted. Each door
//! restarts for each run and the spread of the runs is reported: an A/B of one change is a
//! number. A third door, the hyper floor (`balancer/examples/hyper_floor.rs`: hyper passing
//! requests through with no logic of ours), is measured the same way, so the report splits the
//! balancer's count into what hyper costs at least and what the balancer adds. Outputs
//! `instructions.{md,json}` beside the bench report. With `--tls` the cases are HTTPS ones
//! (`instructions_tls`), in `bench-instructions-tls`.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use e2e::Process;
use serde::Serialize;

use crate::bench::{BenchArgs, OutDirs};
use crate::binaries::{self, Binaries};
use crate::callgrind::{self, FunctionCost};
use crate::instructions_tls::{self, Case, Kind, TlsFiles};
use crate::launch::Launch;
use crate::model::Door;
use crate::nginx::Nginx;
use crate::oha::{self, Load, OhaResult};
use crate::stack::{self, Balancer, Redis, Replica, RequestLog};

/// Keep-alive connections oha opens in every measured run.
const CONNECTIONS: usize = 16;
/// Functions listed per door.
const TOP_FUNCTIONS: usize = 15;
/// Seconds of counted `openssl s_time -new` in the full-handshake case (a few hundred
/// handshakes under callgrind).
const HANDSHAKE_SECONDS: u64 = 8;

/// Sizes of one instructions benchmark.
#[derive(Debug, Clone, Serialize)]
pub struct InstructionsPlan {
    pub runs: usize,
    pub warmup_requests: u64,
    pub requests: u64,
    pub connections: usize,
    pub cases: Vec<Case>,
}

impl InstructionsPlan {
    /// Full: 3 runs of 10,000 requests on both paths; quick (CI): one run of 2,000, static only.
    pub fn of(args: &BenchArgs) -> Self {
        let quick = args.quick;
        Self {
            runs: args.rounds.unwrap_or(if quick { 1 } else { 3 }),
            warmup_requests: if quick { 500 } else { 2_000 },
            requests: if quick { 2_000 } else { 10_000 },
            connections: CONNECTIONS,
            cases: instructions_tls::cases(args),
        }
    }
}

/// The doors measured on a case, in the order each run starts them (HTTPS has no h2c cell and
/// no hyper floor).
fn doors(case: &Case) -> &'static [Door] {
    if case.tls() {
        &[Door::Balancer, Door::Nginx]
    } else {
        &[
            Door::Balancer,
            Door::BalancerH2c,
            Door::HyperFloor,
            Door::Nginx,
        ]
    }
}

/// One door measured once on one path.
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    pub door: Door,
    pub path: String,
    pub run: usize,
    pub requests: u64,
    pub instructions: u64,
    pub per_request: f64,
    /// The most expensive functions (self cost), for the report.
    pub top: Vec<FunctionCost>,
    /// Instructions by crate or library.
    pub groups: Vec<(String, u64)>,
}

/// Everything `instructions.json` holds.
#[derive(Debug, Serialize)]
pub struct InstructionsReport {
    pub plan: InstructionsPlan,
    pub git: String,
    pub valgrind: String,
    pub nginx: String,
    pub measurements: Vec<Measurement>,
    pub failures: Vec<String>,
}

/// The tools this benchmark needs beyond the stack's.
fn valgrind_tools() -> Result<()> {
    for tool in ["valgrind", "callgrind_control", "callgrind_annotate"] {
        let found = Command::new(tool).arg("--version").output().is_ok();
        if !found {
            bail!(
                "{tool} not found: install the Debian package with `apt-get install -y valgrind`"
            );
        }
    }
    Ok(())
}

/// Runs the instructions benchmark; `Ok(false)` when a run failed its check (report written).
pub fn run(args: &BenchArgs) -> Result<bool> {
    let plan = InstructionsPlan::of(args);
    if plan.runs == 0 {
        return Err(crate::ConfigError("--rounds must be at least 1".into()).into());
    }
    valgrind_tools()?;
    let oha = binaries::oha()?;
    let nginx_bin = binaries::nginx()?;
    let redis_bin = binaries::redis_server()?;
    let bins = args.binaries.resolve()?;
    let floor = binaries::hyper_floor(args.binaries.no_build)?;
    let started = Instant::now();
    let out_name = if args.tls {
        "bench-instructions-tls"
    } else {
        "bench-instructions"
    };
    let out = OutDirs::prepare(args, out_name)?;
    let work = tempfile::Builder::new()
        .prefix("xtask-instructions-")
        .tempdir()
        .context("creating a temporary directory")?;
    let redis = Redis::start(
        &redis_bin,
        stack::free_port()?,
        &work.path().join("redis"),
        &out.logs,
    )?;
    let replicas = stack::start_replicas(&bins.app, &redis, 1, &args.counter_key, &out.logs)?;
    let tls = match args.tls {
        true => Some(TlsFiles::write(work.path())?),
        false => None,
    };
    let bench = Bench {
        oha,
        nginx_bin: nginx_bin.clone(),
        bins,
        floor,
        replica: &replicas[0],
        redis: &redis,
        counter_key: &args.counter_key,
        work: work.path().to_path_buf(),
        out: &out,
        tls,
    };
    let mut report = InstructionsReport {
        plan: plan.clone(),
        git: crate::report::git_describe(),
        valgrind: binaries::tool_version(Path::new("valgrind"), "--version"),
        nginx: binaries::tool_version(&nginx_bin, "-v"),
        measurements: Vec::new(),
        failures: Vec::new(),
    };
    for case in &plan.cases {
        let path = &case.label;
        for run in 1..=plan.runs {
            for &door in doors(case) {
                match bench.measure(door, case, run, &plan) {
                    Ok(m) => {
                        eprintln!(
                            "xtask: {} {path} run {run}: {:.0} instructions/request",
                            door.label(),
                            m.per_request
                        );
                        report.measurements.push(m);
                    }
                    Err(e) => report
                        .failures
                        .push(format!("{} {path} run {run}: {e:#}", door.label())),
                }
            }
        }
    }
    finish(&report, args, &out, started)
}

/// Writes `instructions.{md,json}` (and to `--publish-to`), prints the summary.
fn finish(
    report: &InstructionsReport,
    args: &BenchArgs,
    out: &OutDirs,
    started: Instant,
) -> Result<bool> {
    let markdown = markdown(report);
    let json = serde_json::to_string_pretty(report).context("serializing the report")?;
    let mut dirs = vec![out.root.clone()];
    dirs.extend(args.publish_to.clone());
    for dir in dirs {
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        for (name, text) in [("instructions.md", &markdown), ("instructions.json", &json)] {
            let path = dir.join(name);
            fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("xtask: wrote {}", path.display());
        }
    }
    eprintln!("{}", summary_table(report));
    eprintln!(
        "xtask: instructions bench took {:.0} s",
        started.elapsed().as_secs_f64()
    );
    for failure in &report.failures {
        eprintln!("xtask: FAILED {failure}");
    }
    Ok(report.failures.is_empty())
}

/// What every measurement shares.
struct Bench<'a> {
    oha: PathBuf,
    nginx_bin: PathBuf,
    bins: Binaries,
    floor: PathBuf,
    replica: &'a Replica,
    redis: &'a Redis,
    counter_key: &'a str,
    work: PathBuf,
    out: &'a OutDirs,
    /// The pair of the HTTPS cases (`--tls`).
    tls: Option<TlsFiles>,
}

impl Bench<'_> {
    /// Starts `door` under callgrind, warms it up, counts `plan.requests` requests, stops it.
    fn measure(
        &self,
        door: Door,
        case: &Case,
        run: usize,
        plan: &InstructionsPlan,
    ) -> Result<Measurement> {
        let path = case.path.as_str();
        let slug = format!(
            "{}-{}-{run}",
            door.label(),
            case.label.trim_matches('/').replace(['/', ' ', '+'], "_")
        );
        let profile_path = self.out.raw.join(format!("callgrind.{slug}.out"));
        let launch = Launch {
            wrapper: vec![
                "valgrind".into(),
                "--tool=callgrind".into(),
                "--instr-atstart=no".into(),
                format!("--callgrind-out-file={}", profile_path.display()),
            ],
            single_process: true,
        };
        let (mut process, addr, program) = self.start(door, &launch, &slug, case)?;
        let requests = if case.kind == Kind::FullHandshake {
            instructions_tls::full_handshakes(addr, path, 1)?;
            callgrind_control(process.pid(), "on")?;
            let done = instructions_tls::full_handshakes(addr, path, HANDSHAKE_SECONDS);
            callgrind_control(process.pid(), "off")?;
            done?
        } else {
            self.count_requests(&process, case.url(addr), case, plan, &slug)?
        };
        process.stop(Duration::from_secs(60));
        let profile = callgrind::annotate(&profile_path, program)?;
        Ok(Measurement {
            door,
            path: case.label.clone(),
            run,
            requests,
            instructions: profile.total,
            per_request: profile.total as f64 / requests.max(1) as f64,
            groups: callgrind::by_group(&profile.functions),
            top: profile.functions.into_iter().take(TOP_FUNCTIONS).collect(),
        })
    }

    /// The warm-up, then `plan.requests` counted requests with oha; the 200s counted (and on
    /// `/count` checked against the counter).
    fn count_requests(
        &self,
        process: &Process,
        url: String,
        case: &Case,
        plan: &InstructionsPlan,
        slug: &str,
    ) -> Result<u64> {
        let before = self.redis.counter(self.counter_key)?;
        let warmup = Load::Requests(plan.warmup_requests);
        let warm = self.load(&url, warmup, &format!("{slug}-warmup"), case)?;
        callgrind_control(process.pid(), "on")?;
        let measured = self.load(&url, Load::Requests(plan.requests), slug, case)?;
        callgrind_control(process.pid(), "off")?;
        if case.path == "/count" {
            let delta = self.redis.counter(self.counter_key)? - before;
            let ok = (warm.responses_with(200) + measured.responses_with(200)) as i64;
            if delta != ok {
                bail!("the counter rose by {delta} for {ok} successful responses");
            }
        }
        Ok(measured.responses_with(200))
    }

    /// The door under `launch`: its process, the address `case` talks to and the program name.
    fn start(
        &self,
        door: Door,
        launch: &Launch,
        slug: &str,
        case: &Case,
    ) -> Result<(Process, SocketAddr, &'static str)> {
        let upstreams = [self.replica.addr];
        let loopback = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let tls = match (&self.tls, case.tls()) {
            (Some(files), true) => Some((files, loopback(stack::free_port()?))),
            _ => None,
        };
        match door {
            Door::Nginx => {
                let listen = loopback(stack::free_port()?);
                let prefix = self.work.join(format!("nginx-{slug}"));
                let edit = |config: String| match tls {
                    Some((f, at)) => crate::tls_bench::nginx_with_tls(&config, at, &f.cert, &f.key),
                    None => Ok(config),
                };
                let nginx = Nginx::start_launched(
                    &self.nginx_bin,
                    &prefix,
                    &upstreams,
                    (listen, listen),
                    Some(1),
                    launch,
                    edit,
                )?;
                Ok((nginx.process, tls.map_or(nginx.addr, |t| t.1), "nginx"))
            }
            Door::HyperFloor => self.start_floor(launch, slug),
            _ => {
                let ports = (stack::free_port()?, stack::free_port()?);
                // Probes and re-resolution stay out of the counted window.
                let mut flags: Vec<String> =
                    ["--health-interval", "1h", "--resolve-interval", "1h"]
                        .map(String::from)
                        .to_vec();
                flags.extend(door.balancer_args().iter().map(|f| f.to_string()));
                if let Some((files, at)) = tls {
                    flags.extend(files.balancer_flags(at));
                }
                let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
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
                Ok((
                    balancer.process,
                    tls.map_or(balancer.addr, |t| t.1),
                    "balancer",
                ))
            }
        }
    }

    /// The hyper floor in front of the replica, ready once `/health` answers through it.
    fn start_floor(
        &self,
        launch: &Launch,
        slug: &str,
    ) -> Result<(Process, SocketAddr, &'static str)> {
        let addr = SocketAddr::from(([127, 0, 0, 1], stack::free_port()?));
        let mut cmd = launch.command(&self.floor, false);
        cmd.arg(addr.to_string()).arg(self.replica.addr.to_string());
        let log = self.out.logs.join(format!("hyper-floor-{slug}.log"));
        let mut process = stack::spawn("hyper_floor", cmd, &log)?;
        process.wait_ready(
            "GET /health through the replica = 200",
            launch.ready_timeout(),
            || stack::answers_ok(addr, "/health"),
        )?;
        Ok((process, addr, "hyper_floor"))
    }

    /// One oha run that must answer 200 to every request.
    fn load(&self, url: &str, load: Load, stem: &str, case: &Case) -> Result<OhaResult> {
        let ca = self.tls.as_ref().map(|t| t.ca.as_path());
        let (connections, extra) = case.oha(CONNECTIONS, ca);
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let result = oha::run_load(
            &self.oha,
            url,
            connections,
            load,
            &self.out.raw.join(stem),
            &extra,
        )?;
        if result.errors() > 0 || result.non_200() > 0 {
            bail!(
                "{url}: {} transport errors and {} non-200 responses ({:?} {:?})",
                result.errors(),
                result.non_200(),
                result.error_counts,
                result.status_counts
            );
        }
        Ok(result)
    }
}

/// `callgrind_control -i on|off PID`.
fn callgrind_control(pid: u32, state: &str) -> Result<()> {
    let output = Command::new("callgrind_control")
        .args(["-i", state, &pid.to_string()])
        .output()
        .context("running callgrind_control")?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() || !text.contains("OK") {
        bail!(
            "callgrind_control -i {state} {pid} failed: {} {}",
            text.trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// Median, minimum and maximum instructions per request of `door` on `path`.
pub fn stats(report: &InstructionsReport, door: Door, path: &str) -> Option<(f64, f64, f64)> {
    let mut values: Vec<f64> = report
        .measurements
        .iter()
        .filter(|m| m.door == door && m.path == path)
        .map(|m| m.per_request)
        .collect();
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    Some((
        values[values.len() / 2],
        values[0],
        values[values.len() - 1],
    ))
}

/// The per-path table: median instructions per request, spread, ratio to NGINX; then the hyper
/// floor beside NGINX and the part of the balancer's count above the floor.
fn summary_table(report: &InstructionsReport) -> String {
    let mut out = String::from(
        "| path | balancer instr/request | spread | NGINX instr/request | spread | ratio | hyper floor | floor / NGINX | balancer above the floor | balancer h2c instr/request | h2c ratio |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for path in report.plan.cases.iter().map(|c| &c.label) {
        let (Some(b), Some(n)) = (
            stats(report, Door::Balancer, path),
            stats(report, Door::Nginx, path),
        ) else {
            continue;
        };
        let spread = |(median, min, max): (f64, f64, f64)| (max - min) / median * 100.0;
        let floor = match stats(report, Door::HyperFloor, path) {
            Some((f, _, _)) => format!("{f:.0} | {:.2}× | {:.0}", f / n.0, b.0 - f),
            None => "– | – | –".to_string(),
        };
        let h2c = stats(report, Door::BalancerH2c, path);
        out.push_str(&format!(
            "| `{path}` | {:.0} | ±{:.2} % | {:.0} | ±{:.2} % | **{:.2}×** | {floor} | {} | {} |\n",
            b.0,
            spread(b) / 2.0,
            n.0,
            spread(n) / 2.0,
            b.0 / n.0,
            h2c.map_or("-".into(), |h| format!(
                "{:.0} (±{:.2} %)",
                h.0,
                spread(h) / 2.0
            )),
            h2c.map_or("-".into(), |h| format!("{:.2}×", h.0 / n.0)),
        ));
    }
    out
}

/// `instructions.md`: the summary, then each door's top functions and crates (median run).
fn markdown(report: &InstructionsReport) -> String {
    let plan = &report.plan;
    let mut out = format!(
        "# Instructions per proxied request\n\nUser-space instructions counted by valgrind's callgrind ({}), \
         {} run(s) per door and path, {} requests over {} keep-alive connections after a warm-up of {}; \
         the balancer with `--workers 1`, NGINX ({}) with `master_process off` and one worker, and the hyper \
         floor (`balancer/examples/hyper_floor.rs`: hyper passing requests through, no logic of ours), all in \
         front of the same single replica. Commit {}.\n\n",
        report.valgrind, plan.runs, plan.requests, plan.connections, plan.warmup_requests, report.nginx, report.git
    );
    out.push_str(&summary_table(report));
    for case in &plan.cases {
        let path = &case.label;
        for &door in doors(case) {
            if let Some(m) = median_measurement(report, door, path) {
                out.push_str(&door_section(m));
            }
        }
    }
    if !report.failures.is_empty() {
        out.push_str("\n## Failed runs\n\n");
        for f in &report.failures {
            out.push_str(&format!("- {f}\n"));
        }
    }
    out
}

fn median_measurement<'a>(
    report: &'a InstructionsReport,
    door: Door,
    path: &str,
) -> Option<&'a Measurement> {
    let (median, _, _) = stats(report, door, path)?;
    report
        .measurements
        .iter()
        .find(|m| m.door == door && m.path == path && m.per_request == median)
}

/// One door's top functions and crate totals, per request.
fn door_section(m: &Measurement) -> String {
    let per = |n: u64| n as f64 / m.requests.max(1) as f64;
    let share = |n: u64| n as f64 / m.instructions.max(1) as f64 * 100.0;
    let mut out = format!(
        "\n## {} on `{}` (run {}: {:.0} instructions/request)\n\n| crate or library | instr/request | share |\n|---|---:|---:|\n",
        m.door.label(),
        m.path,
        m.run,
        m.per_request
    );
    for (group, n) in m.groups.iter().take(12) {
        out.push_str(&format!(
            "| {group} | {:.0} | {:.1} % |\n",
            per(*n),
            share(*n)
        ));
    }
    out.push_str(
        "\n| function (self cost) | crate | instr/request | share |\n|---|---|---:|---:|\n",
    );
    for f in &m.top {
        let name: String = f.function.chars().take(110).collect();
        out.push_str(&format!(
            "| `{}` | {} | {:.0} | {:.1} % |\n",
            name.replace('|', "\\|"),
            f.group,
            per(f.instructions),
            share(f.instructions)
        ));
    }
    out
}
