//! `cargo xtask`: developer commands for this workspace (the cargo-xtask convention; the alias
//! lives in `.cargo/config.toml`).
//!
//! * `cargo xtask up`: Redis, N app replicas, the balancer (and optionally NGINX) on loopback,
//!   in the foreground, until Ctrl-C.
//! * `cargo xtask bench [--quick]`: the balancer against NGINX and a direct replica with oha;
//!   writes `target/bench/report.{json,md,svg}`.
//! * `cargo xtask dev-cert [--force]`: a development CA and a `localhost` certificate in `certs/`.
//! * `cargo xtask bench --tls [--quick]`: HTTPS, balancer vs NGINX (handshakes, keep-alive over
//!   HTTP/1.1 and HTTP/2, CPU, idle-connection memory); `--quick` runs a short TLS round too.
//! * `cargo xtask bench --compose [--quick]`: the same through the Compose stack's published
//!   ports; writes `target/bench-compose/report.{json,md,svg}`.
//!
//! The bench's modules, bottom up (no cycles): `model` (data) ← `report`, `chart` ← `bench`
//! (loopback runner, shared run check and outputs) ← `compose` (Compose runner, on `docker` and
//! `cgroup`).

mod bench;
mod binaries;
mod callgrind;
mod cgroup;
mod chart;
mod compose;
mod dev_cert;
mod docker;
mod instructions;
mod instructions_tls;
mod launch;
mod model;
mod nginx;
mod oha;
mod probe;
mod procstats;
mod report;
mod stack;
mod tls_bench;
mod up;

use std::fmt;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Local stack and benchmarks for the visit counter"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run Redis, the app replicas, the balancer (and with --nginx, NGINX) on loopback.
    Up(up::UpArgs),
    /// Benchmark the balancer against NGINX and a direct replica with oha.
    Bench(bench::BenchArgs),
    /// Write a development CA and a certificate for localhost into certs/ (never overwrites without --force).
    DevCert(dev_cert::DevCertArgs),
}

/// A bad flag value or an unusable setting: reported on one line, exit code 2 (like clap's own).
#[derive(Debug)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match &cli.command {
        Command::Up(args) => up::run(args).map(|()| true),
        Command::Bench(args) if args.compose => compose::run(args),
        Command::Bench(args) if args.instructions => instructions::run(args),
        Command::Bench(args) if args.tls => tls_bench::run(args),
        // --quick (CI) also runs one short TLS round: HTTPS must keep serving correctly.
        Command::Bench(args) if args.quick => {
            bench::run(args).and_then(|plain| Ok(tls_bench::run(args)? && plain))
        }
        Command::Bench(args) => bench::run(args),
        Command::DevCert(args) => dev_cert::run(args).map(|()| true),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) if err.downcast_ref::<ConfigError>().is_some() => {
            eprintln!("xtask: error: {err}");
            ExitCode::from(2)
        }
        Err(err) => {
            // One line for the cause chain; multi-line log tails stay readable after it.
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
