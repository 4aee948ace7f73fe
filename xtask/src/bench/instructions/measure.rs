//! One measured run of the instructions bench: a door (balancer, balancer h2c, hyper floor or
//! NGINX) started under callgrind in front of the replica, warmed up, counted over a fixed number
//! of requests (or seconds of full handshakes) with counting switched on only around them, and
//! stopped; its profile annotated into the total, the top functions and the crate totals.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use e2e::Process;

use super::cases::{Case, Kind};
use super::{InstructionsPlan, Measurement, CONNECTIONS, HANDSHAKE_SECONDS, TOP_FUNCTIONS};
use crate::bench::core::OutDirs;
use crate::bench::route_files::RouteFile;
use crate::bench::tls_files::TlsFiles;
use crate::report::model::Door;
use crate::stack::binaries::Binaries;
use crate::stack::launch::Launch;
use crate::stack::nginx::{self, Nginx};
use crate::stack::{self, loopback, Balancer, Redis, Replica, RequestLog};
use crate::tools::oha::{self, Load, OhaResult};
use crate::tools::{callgrind, openssl};

/// What every measurement shares.
pub struct Bench<'a> {
    pub oha: PathBuf,
    pub nginx_bin: PathBuf,
    pub bins: Binaries,
    pub floor: PathBuf,
    pub replica: &'a Replica,
    pub redis: &'a Redis,
    pub counter_key: &'a str,
    pub work: PathBuf,
    pub out: &'a OutDirs,
    /// The pair of the HTTPS cases (`--tls`).
    pub tls: Option<TlsFiles>,
    /// The balancer's config file (`--routes N`, N ≥ 1); `None`: `--upstreams`.
    pub routes: Option<RouteFile>,
}

impl Bench<'_> {
    /// Starts `door` under callgrind, warms it up, counts `plan.requests` requests, stops it.
    pub fn measure(
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
        let launch = Launch::callgrind(&profile_path);
        let (mut process, addr, program) = self.start(door, &launch, &slug, case)?;
        let requests = if case.kind == Kind::FullHandshake {
            openssl::s_time(addr, "-new", path, 1)?;
            callgrind::control(process.pid(), "on")?;
            let done = openssl::s_time(addr, "-new", path, HANDSHAKE_SECONDS);
            callgrind::control(process.pid(), "off")?;
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
        callgrind::control(process.pid(), "on")?;
        let measured = self.load(&url, Load::Requests(plan.requests), slug, case)?;
        callgrind::control(process.pid(), "off")?;
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
        let tls = match (&self.tls, case.tls()) {
            (Some(files), true) => Some((files, loopback(stack::free_port()?))),
            _ => None,
        };
        match door {
            Door::Nginx => {
                let listen = loopback(stack::free_port()?);
                let prefix = self.work.join(format!("nginx-{slug}"));
                let edit = |config: String| match tls {
                    Some((f, at)) => nginx::with_tls(&config, at, &f.cert, &f.key),
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
                // With a file the groups come from it (an empty BALANCER_UPSTREAMS is unset).
                let upstreams: &[SocketAddr] = match &self.routes {
                    Some(file) => {
                        flags.extend(file.balancer_flags());
                        &[]
                    }
                    None => &upstreams,
                };
                let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
                let log = self.out.logs.join(format!("balancer-{slug}.log"));
                let balancer = Balancer::start_launched(
                    &self.bins.balancer,
                    ports,
                    upstreams,
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
        let addr = loopback(stack::free_port()?);
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
        let (connections, mut extra) = case.oha(CONNECTIONS, ca);
        extra.extend(self.routes.iter().flat_map(RouteFile::oha_flags));
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
