//! `cargo xtask up`: the whole stack on loopback in the foreground, for users without Docker.
//!
//! Redis (AOF on, data in a named directory that survives restarts), N app replicas on free
//! ports, the balancer in front of them and optionally NGINX, generated from the project's
//! `nginx.conf`. Ctrl-C or SIGTERM stops everything, front to back; so does any of the processes
//! dying on its own (its log tail is printed), because a half-stack silently serving is worse.

use std::fs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result};

use e2e::Process;

use super::binaries::{self, BinaryArgs};
use super::nginx::Nginx;
use super::{Balancer, Redis, Replica, RequestLog};
use crate::config_error::config_error;
use crate::stack;
use crate::tools::locate;

/// Flags of `cargo xtask up`.
#[derive(Debug, Clone, clap::Args)]
pub struct UpArgs {
    /// Number of app replicas.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub replicas: u16,
    /// Balancer public port on 127.0.0.1 (0: pick a free one).
    #[arg(long, default_value_t = 5000)]
    pub port: u16,
    /// Balancer admin port (/metrics, /status) on 127.0.0.1 (0: pick a free one).
    #[arg(long, default_value_t = 9000)]
    pub admin_port: u16,
    /// Also start NGINX, configured from the project's nginx.conf.
    #[arg(long)]
    pub nginx: bool,
    /// NGINX port on 127.0.0.1 (0: pick a free one).
    #[arg(long, default_value_t = 5002)]
    pub nginx_port: u16,
    /// Redis port on 127.0.0.1 (0: pick a free one).
    #[arg(long, default_value_t = 0)]
    pub redis_port: u16,
    /// Directory of the stack's state: redis/ (AOF data, kept across runs), logs/, nginx/.
    /// Default: <target>/stack.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Balancer worker threads (default: the balancer's own, all cores).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Also serve HTTPS on --tls-port with certs/cert.pem and certs/key.pem (`cargo xtask dev-cert`).
    #[arg(long)]
    pub tls: bool,
    /// The balancer's HTTPS port on 127.0.0.1 with --tls (0: pick a free one).
    #[arg(long, default_value_t = 5443)]
    pub tls_port: u16,
    /// The balancer's access log (into its log file); off by default, like nginx.conf.
    #[arg(long, value_enum, default_value = "off")]
    pub balancer_request_log: RequestLog,
    #[command(flatten)]
    pub binaries: BinaryArgs,
}

/// The running stack; fields drop (stop) in declaration order: front doors first, Redis last.
struct Stack {
    nginx: Option<Nginx>,
    balancer: Balancer,
    replicas: Vec<Replica>,
    redis: Redis,
}

impl Stack {
    fn processes(&mut self) -> Vec<&mut Process> {
        let mut all: Vec<&mut Process> = Vec::new();
        if let Some(nginx) = self.nginx.as_mut() {
            all.push(&mut nginx.process);
        }
        all.push(&mut self.balancer.process);
        all.extend(self.replicas.iter_mut().map(|r| &mut r.process));
        all.push(&mut self.redis.process);
        all
    }
}

/// Tools, ports and binaries, all checked before anything starts (and before the slow build).
struct Plan {
    redis_bin: PathBuf,
    nginx_bin: Option<PathBuf>,
    port: u16,
    admin_port: u16,
    nginx_port: u16,
    redis_port: u16,
    bins: binaries::Binaries,
    state_dir: PathBuf,
    logs_dir: PathBuf,
    /// With --tls: the balancer's flags for HTTPS, and its port.
    tls: Option<(Vec<String>, u16)>,
}

/// The balancer's HTTPS flags for `up --tls`: the pair `cargo xtask dev-cert` writes (or a real
/// one put there), on `127.0.0.1:<port>`.
fn tls_flags(args: &UpArgs) -> Result<Option<(Vec<String>, u16)>> {
    if !args.tls {
        return Ok(None);
    }
    let certs = binaries::workspace_root().join("certs");
    let (cert, key) = (certs.join("cert.pem"), certs.join("key.pem"));
    for file in [&cert, &key] {
        if !file.is_file() {
            return Err(config_error(format!(
                "--tls: {} is missing; run `cargo xtask dev-cert` first (or put a real pair there)",
                file.display()
            )));
        }
    }
    let port = stack::pick_port(args.tls_port, "--tls-port")?;
    let flags = Balancer::tls_flags(stack::loopback(port), &cert, &key);
    Ok(Some((flags, port)))
}

impl Plan {
    fn new(args: &UpArgs) -> Result<Self> {
        let redis_bin = locate::redis_server()?;
        let nginx_bin = if args.nginx {
            Some(locate::nginx()?)
        } else {
            None
        };
        let port = stack::pick_port(args.port, "--port")?;
        let admin_port = stack::pick_port(args.admin_port, "--admin-port")?;
        let nginx_port = if args.nginx {
            stack::pick_port(args.nginx_port, "--nginx-port")?
        } else {
            0
        };
        let redis_port = stack::pick_port(args.redis_port, "--redis-port")?;
        let tls = tls_flags(args)?;
        let bins = args.binaries.resolve()?;
        let state_dir = args
            .state_dir
            .clone()
            .unwrap_or_else(|| binaries::target_dir().join("stack"));
        let logs_dir = state_dir.join("logs");
        fs::create_dir_all(&logs_dir)
            .with_context(|| format!("creating {}", logs_dir.display()))?;
        Ok(Plan {
            redis_bin,
            nginx_bin,
            port,
            admin_port,
            nginx_port,
            redis_port,
            bins,
            state_dir,
            logs_dir,
            tls,
        })
    }
}

pub fn run(args: &UpArgs) -> Result<()> {
    let plan = Plan::new(args)?;
    // Signals first: a Ctrl-C during start-up still stops what has started (by unwinding drops).
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    ctrlc::set_handler(move || {
        let _ = stop_tx.send(());
    })
    .context("installing the Ctrl-C/SIGTERM handler")?;

    let stack = start(args, &plan)?;
    print_urls(&stack, &plan.state_dir);
    if let Some((_, port)) = &plan.tls {
        println!(
            "  https      https://localhost:{port}/   (HTTP/2; trust certs/ca.pem, see `cargo xtask dev-cert`)"
        );
    }
    serve_until_stopped(stack, &stop_rx)?;
    eprintln!("xtask: stopped");
    Ok(())
}

/// Redis, the replicas, the balancer and (with `--nginx`) NGINX, each waited for in turn.
fn start(args: &UpArgs, plan: &Plan) -> Result<Stack> {
    eprintln!(
        "xtask: starting redis-server, {} app replica(s) and the balancer",
        args.replicas
    );
    let logs_dir = &plan.logs_dir;
    let redis = Redis::start(
        &plan.redis_bin,
        plan.redis_port,
        &plan.state_dir.join("redis"),
        logs_dir,
    )?;
    let replicas = stack::start_replicas(
        &plan.bins.app,
        &redis,
        usize::from(args.replicas),
        "visits",
        logs_dir,
    )?;
    let upstreams: Vec<SocketAddr> = replicas.iter().map(|r| r.addr).collect();
    let tls_flags: Vec<&str> = plan.tls.as_ref().map_or(Vec::new(), |(flags, _)| {
        flags.iter().map(String::as_str).collect()
    });
    let balancer = Balancer::start(
        &plan.bins.balancer,
        (plan.port, plan.admin_port),
        &upstreams,
        args.workers,
        args.balancer_request_log,
        &logs_dir.join("balancer.log"),
        &tls_flags,
    )?;
    let nginx = match &plan.nginx_bin {
        Some(bin) => Some(Nginx::start(
            bin,
            &plan.state_dir.join("nginx"),
            &upstreams,
            stack::loopback(plan.nginx_port),
            None,
        )?),
        None => None,
    };
    Ok(Stack {
        nginx,
        balancer,
        replicas,
        redis,
    })
}

/// Waits for Ctrl-C/SIGTERM, checking every 500 ms that every process still runs; the stack
/// stops (drops) on the way out either way.
fn serve_until_stopped(mut stack: Stack, stop_rx: &mpsc::Receiver<()>) -> Result<()> {
    loop {
        match stop_rx.recv_timeout(Duration::from_millis(500)) {
            Ok(()) => {
                eprintln!("\nxtask: stopping the stack...");
                return Ok(());
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Some(err) = stack
                    .processes()
                    .into_iter()
                    .find_map(|p| p.ensure_running().err())
                {
                    eprintln!("xtask: stopping the stack: {err:#}");
                    anyhow::bail!("a stack process exited on its own");
                }
            }
        }
    }
}

fn print_urls(stack: &Stack, state_dir: &std::path::Path) {
    let b = &stack.balancer;
    println!("Stack is up (Ctrl-C stops everything):");
    println!(
        "  balancer   http://{}/   count: http://{}/count",
        b.addr, b.addr
    );
    println!(
        "  admin      http://{}/status   http://{}/metrics",
        b.admin_addr, b.admin_addr
    );
    if let Some(nginx) = &stack.nginx {
        println!(
            "  nginx      http://{}/   (config: {})",
            nginx.addr,
            nginx.prefix.join("nginx.conf").display()
        );
    }
    for r in &stack.replicas {
        println!("  {:<10} http://{}/", r.name, r.addr);
    }
    println!(
        "  redis      {}   (AOF in {})",
        stack.redis.url(),
        stack.redis.data_dir.display()
    );
    println!("  logs       {}", state_dir.join("logs").display());
}
