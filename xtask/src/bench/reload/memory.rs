//! The memory phase of the reload bench: the balancer started afresh with no file
//! (`--upstreams`), a one-route file and a 200-route file ([`RouteFile`]), each given the same
//! load (a fixed number of `/count` requests over 64 connections, with the file's `Host`), then
//! its peak resident memory (`VmHWM`) and its resident memory after the load (`VmRSS`) read from
//! `/proc/PID/status`.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{bail, Result};
use serde::Serialize;

use super::load::CONNECTIONS;
use crate::bench::core::OutDirs;
use crate::bench::route_files::RouteFile;
use crate::stack::{self, Balancer, RequestLog};
use crate::tools::oha::{self, Load};
use crate::tools::procstats;

/// Requests of the load before the reading.
pub const REQUESTS: u64 = 60_000;

/// One reading.
#[derive(Debug, Clone, Serialize)]
pub struct Memory {
    /// 0: no file; else the routes of the file (the many-route file counts its fallback too).
    pub routes: usize,
    pub round: usize,
    pub ok: u64,
    pub peak_rss_kib: u64,
    pub rss_after_kib: u64,
}

/// Reads the balancer's memory after [`REQUESTS`] requests with `routes` (0: no file).
pub fn measure(
    (balancer, oha): (&Path, &Path),
    servers: &[SocketAddr],
    (routes, round): (usize, usize),
    out: &OutDirs,
) -> Result<Memory> {
    let file = match routes {
        0 => None,
        n => Some(RouteFile::write(&out.root, n, servers)?),
    };
    let mut flags = file.as_ref().map_or(Vec::new(), RouteFile::balancer_flags);
    flags.extend(["--health-interval", "1h"].map(String::from));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let upstreams = if file.is_some() { &[][..] } else { servers };
    let ports = (stack::free_port()?, stack::free_port()?);
    let log = out
        .logs
        .join(format!("balancer-memory-{routes}-{round}.log"));
    let b = Balancer::start(
        balancer,
        ports,
        upstreams,
        None,
        RequestLog::Off,
        &log,
        &flags,
    )?;
    let extra = file.as_ref().map_or(Vec::new(), RouteFile::oha_flags);
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let url = format!("http://{}/count", b.addr);
    let stem = out.raw.join(format!("memory-{routes}-{round}"));
    let load = Load::Requests(REQUESTS);
    let result = oha::run_load(oha, &url, CONNECTIONS, load, &stem, &extra)?;
    if result.non_200() + result.errors() > 0 {
        bail!(
            "memory run with {routes} routes: {:?} {:?}",
            result.status_counts,
            result.error_counts
        );
    }
    let pid = b.process.pid();
    Ok(Memory {
        routes: file.map_or(0, |f| f.routes),
        round,
        ok: result.responses_with(200),
        peak_rss_kib: procstats::peak_rss_kib(pid)?,
        rss_after_kib: rss_kib(pid)?,
    })
}

/// `VmRSS` of `pid` in KiB.
fn rss_kib(pid: u32) -> Result<u64> {
    procstats::read_status_kib(pid, "VmRSS")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vm_rss() {
        let status = "Name:\tbalancer\nVmHWM:\t    8123 kB\nVmRSS:\t 7000 kB\n";
        assert_eq!(procstats::status_kib(status, "VmRSS").ok(), Some(7000));
        assert!(procstats::status_kib("Name:\tx\n", "VmRSS").is_err());
    }
}
