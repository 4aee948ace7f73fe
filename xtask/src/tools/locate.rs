//! Finding the system tools the stack and the benches drive (`redis-server`, `redis-benchmark`,
//! `nginx`, `oha`) and
//! reading their versions for the reports. A missing tool is one line naming how to install it,
//! before any slow build starts.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

/// Finds `name` on `PATH` (plus the sbin directories, where Debian puts nginx, and
/// `~/.cargo/bin`, where `cargo install` puts oha).
fn find_on_path(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = env::var_os("PATH")
        .map(|p| env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from));
    if let Some(home) = env::var_os("CARGO_HOME") {
        dirs.push(PathBuf::from(home).join("bin"));
    }
    if let Some(home) = env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|candidate| candidate.is_file())
}

/// `redis-server`, or one line naming the Debian package.
pub fn redis_server() -> Result<PathBuf> {
    find_on_path("redis-server").context(
        "redis-server not found: install the Debian package with `apt-get install -y redis-server`",
    )
}

/// `redis-benchmark`, or one line naming the Debian package (`redis-tools`, which
/// `redis-server` depends on).
pub fn redis_benchmark() -> Result<PathBuf> {
    find_on_path("redis-benchmark").context(
        "redis-benchmark not found: install the Debian package with `apt-get install -y redis-tools` \
         (redis-server depends on it)",
    )
}

/// `nginx`, or one line naming the Debian package.
pub fn nginx() -> Result<PathBuf> {
    find_on_path("nginx")
        .context("nginx not found: install the Debian package with `apt-get install -y nginx`")
}

/// `oha`, or one line with the documented install step.
pub fn oha() -> Result<PathBuf> {
    find_on_path("oha").context("oha not found: install it with `cargo install oha --locked`")
}

/// First line of `<tool> <flag>` output, for the report's machine description.
pub fn tool_version(tool: &Path, flag: &str) -> String {
    Command::new(tool)
        .arg(flag)
        .output()
        .ok()
        .map(|o| {
            // nginx prints its version on stderr.
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_string()
        })
        .unwrap_or_else(|| "unknown".into())
}
