//! Per-process resource figures read straight from `/proc`: CPU time (`utime + stime` from
//! `/proc/PID/stat`, all threads included) and peak resident memory (`VmHWM` from
//! `/proc/PID/status`).
//!
//! The benchmark charges a front door with the CPU and memory of every process it consists of
//! (the balancer is one process; NGINX is a master plus its workers), so these helpers work on a
//! set of PIDs. `/proc` is Linux-only, which is fine for a benchmark that also needs `oha`,
//! `nginx` and `redis-server`.

use std::fs;

use anyhow::{bail, Context, Result};

/// CPU and memory of a group of processes at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupSample {
    /// Sum of user + system CPU seconds over the processes since they started.
    pub cpu_seconds: f64,
    /// The user-space part of `cpu_seconds`.
    pub user_seconds: f64,
    /// Sum of the processes' peak resident set sizes (`VmHWM`), KiB.
    pub peak_rss_sum_kib: u64,
    /// Largest single `VmHWM` among the processes, KiB.
    pub peak_rss_max_kib: u64,
}

/// Clock ticks per second, the unit of `utime`/`stime` in `/proc/PID/stat`.
fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a process-wide constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        // Every Linux ABI uses USER_HZ = 100.
        100.0
    }
}

/// The fields of `/proc/PID/stat` that follow the `(comm)` field, which may itself contain
/// spaces and parentheses: split after the *last* `)`.
fn fields_after_comm(stat: &str) -> Result<Vec<&str>> {
    let close = stat.rfind(')').context("no ')' after the command name")?;
    Ok(stat[close + 1..].split_whitespace().collect())
}

/// `(ppid, utime, stime)` (times in ticks) parsed from the text of `/proc/PID/stat`.
fn parse_stat(stat: &str) -> Result<(u32, u64, u64)> {
    let fields = fields_after_comm(stat)?;
    // After the comm: state(3) ppid(4) ... utime(14) stime(15), so indexes 1, 11 and 12.
    if fields.len() < 13 {
        bail!("/proc stat line has only {} fields", fields.len());
    }
    let ppid = fields[1].parse().context("ppid")?;
    let utime: u64 = fields[11].parse().context("utime")?;
    let stime: u64 = fields[12].parse().context("stime")?;
    Ok((ppid, utime, stime))
}

/// A `kB` field (`VmHWM`, `VmRSS`, ...) of the text of `/proc/PID/status`, in KiB.
pub fn status_kib(status: &str, field: &str) -> Result<u64> {
    let line = status
        .lines()
        .find(|l| {
            l.strip_prefix(field)
                .is_some_and(|rest| rest.starts_with(':'))
        })
        .with_context(|| format!("no {field} line"))?;
    let value = line[field.len() + 1..]
        .split_whitespace()
        .next()
        .with_context(|| format!("empty {field} line"))?;
    value.parse().with_context(|| format!("{field} value"))
}

/// A `kB` field of `pid`'s `/proc/PID/status`, in KiB.
pub fn read_status_kib(pid: u32, field: &str) -> Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status_kib(&status, field).with_context(|| format!("parsing /proc/{pid}/status"))
}

/// CPU seconds (user + system, all threads) that `pid` has used so far.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    user_and_system_seconds(pid).map(|(user, system)| user + system)
}

/// `(user, system)` CPU seconds (all threads) that `pid` has used so far.
pub fn user_and_system_seconds(pid: u32) -> Result<(f64, f64)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    let (_, user, system) =
        parse_stat(&stat).with_context(|| format!("parsing /proc/{pid}/stat"))?;
    let hz = clock_ticks_per_second();
    Ok((user as f64 / hz, system as f64 / hz))
}

/// Peak resident set size of `pid` in KiB (since start or since the last [`reset_peak_rss`]).
pub fn peak_rss_kib(pid: u32) -> Result<u64> {
    read_status_kib(pid, "VmHWM")
}

/// Resets `VmHWM` to the current RSS (Linux ≥ 4.0, `echo 5 > /proc/PID/clear_refs`), so the next
/// reading is the peak of one run rather than of the process's whole life. Returns whether the
/// kernel accepted it; when it did not, readings are lifetime peaks and the report says so.
pub fn reset_peak_rss(pid: u32) -> bool {
    fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// Direct children of `pid` (e.g. NGINX workers of their master), found by scanning `/proc`.
pub fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut children: Vec<u32> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|&candidate| {
            fs::read_to_string(format!("/proc/{candidate}/stat"))
                .ok()
                .and_then(|s| parse_stat(&s).ok())
                .is_some_and(|(ppid, ..)| ppid == pid)
        })
        .collect();
    children.sort_unstable();
    children
}

/// Processes whose command name (`/proc/PID/comm`, at most 15 bytes) is one of `names`, as
/// `(pid, comm, command line)`, in PID order.
pub fn processes_named(names: &[&str]) -> Vec<(u32, String, String)> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found: Vec<(u32, String, String)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter_map(|pid| {
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            let comm = comm.trim().to_string();
            names.contains(&comm.as_str()).then_some(())?;
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            Some((pid, comm, cmdline.trim().to_string()))
        })
        .collect();
    found.sort_unstable();
    found
}

/// Reads CPU and peak RSS of every process in `pids`.
pub fn sample(pids: &[u32]) -> Result<GroupSample> {
    let mut out = GroupSample {
        cpu_seconds: 0.0,
        user_seconds: 0.0,
        peak_rss_sum_kib: 0,
        peak_rss_max_kib: 0,
    };
    for &pid in pids {
        let (user, system) = user_and_system_seconds(pid)?;
        out.cpu_seconds += user + system;
        out.user_seconds += user;
        let rss = peak_rss_kib(pid)?;
        out.peak_rss_sum_kib += rss;
        out.peak_rss_max_kib = out.peak_rss_max_kib.max(rss);
    }
    Ok(out)
}

/// TCP connections the processes in `pids` hold established to any of `ports` on loopback (the
/// replicas): their socket inodes (`/proc/<pid>/fd`) matched against `/proc/net/tcp{,6}`.
/// `None` when there is no process or `/proc` cannot be read.
pub fn upstream_connections(pids: &[u32], ports: &[u16]) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    let mut inodes = std::collections::HashSet::new();
    for pid in pids {
        for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.flatten() {
            let Ok(target) = std::fs::read_link(entry.path()) else {
                continue;
            };
            let target = target.to_string_lossy();
            if let Some(inode) = target
                .strip_prefix("socket:[")
                .and_then(|t| t.strip_suffix(']'))
            {
                inodes.insert(inode.to_owned());
            }
        }
    }
    let mut count = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        count += text
            .lines()
            .skip(1)
            .filter(|line| established_to(line, ports, &inodes))
            .count() as u64;
    }
    Some(count)
}

/// One `/proc/net/tcp` line: established (state 01), remote port in `ports`, inode ours.
fn established_to(line: &str, ports: &[u16], inodes: &std::collections::HashSet<String>) -> bool {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (Some(remote), Some(state), Some(inode)) = (fields.get(2), fields.get(3), fields.get(9))
    else {
        return false;
    };
    let port = remote
        .rsplit_once(':')
        .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
    *state == "01" && port.is_some_and(|p| ports.contains(&p)) && inodes.contains(*inode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_spaces_and_parens_in_comm() {
        let line = "4242 (nginx: (worker) x) S 4241 4241 4241 0 -1 4194624 120 0 0 0 37 12 0 0 20 0 1 0 1000 10000 300";
        assert_eq!(parse_stat(line).unwrap(), (4241, 37, 12));
    }

    #[test]
    fn short_stat_is_an_error() {
        assert!(parse_stat("1 (x) S 0").is_err());
    }

    #[test]
    fn vm_hwm_is_read_in_kib() {
        let status = "Name:\tbalancer\nVmPeak:\t  100 kB\nVmHWM:\t    8123 kB\nVmRSS:\t 7000 kB\n";
        assert_eq!(status_kib(status, "VmHWM").unwrap(), 8123);
        assert!(status_kib("Name:\tx\n", "VmHWM").is_err());
    }

    #[test]
    fn own_process_is_found_by_name() {
        let comm = fs::read_to_string("/proc/self/comm").unwrap();
        let found = processes_named(&[comm.trim()]);
        assert!(found.iter().any(|(pid, ..)| *pid == std::process::id()));
    }

    #[test]
    fn own_process_is_readable() {
        let me = std::process::id();
        let s = sample(&[me]).unwrap();
        assert!(s.peak_rss_sum_kib > 0);
        assert_eq!(s.peak_rss_sum_kib, s.peak_rss_max_kib);
        assert!(s.cpu_seconds >= 0.0);
    }
}
