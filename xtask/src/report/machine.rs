//! What a report says about where it was measured: the CPU, memory and kernel of this machine,
//! the versions of the tools (NGINX, Redis, oha, rustc) and the workspace's git state.

use std::fs;
use std::path::Path;

use super::model::Machine;
use crate::stack::binaries::workspace_root;
use crate::tools::{locate, oha};

/// This machine, the tools (their versions as given) and the workspace's git state.
pub fn describe_machine(oha: &Path, nginx: String, redis: String) -> Machine {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or_else(|| "unknown CPU".to_string(), |m| m.trim().to_string());
    let memory_gib = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| (kib / 1024.0 / 1024.0 * 10.0).round() / 10.0);
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "unknown".into(), |k| k.trim().to_string());
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    Machine {
        cpu_model,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        memory_gib,
        kernel,
        nginx,
        redis,
        oha: oha::version(oha),
        rustc: locate::tool_version(Path::new(&rustc), "--version"),
        git: git_describe(),
    }
}

/// `git describe --always --dirty` of the workspace, or `unknown`.
pub fn git_describe() -> String {
    std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .current_dir(workspace_root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or_else(
            || "unknown".into(),
            |o| String::from_utf8_lossy(&o.stdout).trim().to_string(),
        )
}

/// The machine in one line, for the report's header.
pub fn machine_line(m: &Machine) -> String {
    format!(
        "{} ({} cores), {} GiB RAM, Linux {}; {}; {}; {}; {}; git {}",
        m.cpu_model,
        m.cores,
        m.memory_gib,
        m.kernel,
        m.nginx,
        m.redis.split(" sha=").next().unwrap_or(&m.redis),
        m.oha,
        m.rustc,
        m.git
    )
}
