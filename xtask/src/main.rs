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
//! * `cargo xtask bench --instructions [--tls] [--quick]`: instructions per request under callgrind.
//! * `cargo xtask bench --redis [--quick]`: Redis alone with `redis-benchmark` (INCR/s, Redis CPU
//!   per INCR); writes `target/bench-redis/report.{json,md}`.
//!
//! This file only parses and dispatches. The modules, top down (each uses only those below it,
//! so there is no import cycle): [`bench`] (the bench command and its runners) → [`report`] (the
//! data, Markdown and SVG of a loopback or Compose bench) → [`stack`] (the local stack's
//! processes and `cargo xtask up`) → [`tools`] (the external programs driven: oha, callgrind,
//! docker, openssl, `/proc` and cgroup readers); [`dev_cert`] and [`config_error`] beside them.

mod bench;
mod config_error;
mod dev_cert;
mod report;
mod stack;
mod tools;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config_error::ConfigError;

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
    Up(stack::up::UpArgs),
    /// Benchmark the balancer against NGINX and a direct replica with oha.
    Bench(bench::BenchArgs),
    /// Write a development CA and a certificate for localhost into certs/ (never overwrites without --force).
    DevCert(dev_cert::DevCertArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match &cli.command {
        Command::Up(args) => stack::up::run(args).map(|()| true),
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
