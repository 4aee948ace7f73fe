//! A container's CPU time and memory, read from its cgroup the way the engine reads them for
//! `docker stats`, but cumulative (so one oha run's CPU seconds are an exact difference) and
//! with the memory peak reset before each run where the kernel allows it.
//!
//! The cgroup is found from the container's main process (`/proc/PID/cgroup`), so any cgroup
//! driver and both hierarchies work: v1 (`cpuacct.usage` in ns, `memory.max_usage_in_bytes`,
//! reset by writing 0) and v2 (`cpu.stat` `usage_usec`, `memory.current`). A container whose
//! process this machine cannot see (a remote engine) simply has no figures.

use std::fs;
use std::path::PathBuf;

/// The cgroup directories of one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    cpu: Option<CpuFile>,
    memory: Option<MemoryFiles>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum CpuFile {
    /// v1 `cpuacct.usage`: nanoseconds.
    V1(PathBuf),
    /// v2 `cpu.stat`: `usage_usec` microseconds.
    V2(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum MemoryFiles {
    /// v1: `memory.max_usage_in_bytes` (resettable peak) and `memory.usage_in_bytes`.
    V1 { peak: PathBuf, current: PathBuf },
    /// v2: `memory.current`.
    V2 { current: PathBuf },
}

/// One reading of a cgroup.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    pub cpu_seconds: Option<f64>,
    /// The peak since the last [`Cgroup::reset_peak`] (v1), else the current usage.
    pub memory_kib: Option<u64>,
}

/// `(controllers, path)` pairs of a `/proc/PID/cgroup` text (`4:memory:/docker/ID`,
/// `0::/system.slice/docker-ID.scope`).
fn parse_proc_cgroup(text: &str) -> Vec<(&str, &str)> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let _id = parts.next()?;
            Some((parts.next()?, parts.next()?))
        })
        .collect()
}

/// `usage_usec` of a v2 `cpu.stat` text, in seconds.
fn parse_cpu_stat_usec(text: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix("usage_usec "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|usec| usec as f64 / 1e6)
}

fn read_u64(path: &PathBuf) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

impl Cgroup {
    /// The cgroup of process `pid` as this machine mounts it (`/sys/fs/cgroup`).
    pub fn of_pid(pid: u32) -> Option<Self> {
        let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        Some(Self::from_proc_cgroup(
            &text,
            &PathBuf::from("/sys/fs/cgroup"),
        ))
    }

    fn from_proc_cgroup(text: &str, root: &std::path::Path) -> Self {
        let entries = parse_proc_cgroup(text);
        let v1 = |controller: &str| {
            entries.iter().find_map(|(controllers, path)| {
                controllers
                    .split(',')
                    .any(|c| c == controller)
                    .then(|| {
                        [*controllers, controller]
                            .map(|dir| root.join(dir).join(path.trim_start_matches('/')))
                    })
                    .and_then(|dirs| dirs.into_iter().find(|d| d.is_dir()))
            })
        };
        let v2 = entries
            .iter()
            .find(|(controllers, _)| controllers.is_empty())
            .map(|(_, path)| root.join(path.trim_start_matches('/')))
            .filter(|d| d.join("cpu.stat").is_file());
        let cpu = v1("cpuacct")
            .map(|d| CpuFile::V1(d.join("cpuacct.usage")))
            .or_else(|| v2.clone().map(|d| CpuFile::V2(d.join("cpu.stat"))));
        let memory = v1("memory")
            .map(|d| MemoryFiles::V1 {
                peak: d.join("memory.max_usage_in_bytes"),
                current: d.join("memory.usage_in_bytes"),
            })
            .or_else(|| {
                v2.map(|d| MemoryFiles::V2 {
                    current: d.join("memory.current"),
                })
            });
        Self { cpu, memory }
    }

    /// Starts a new memory peak (v1); `false` where the peak cannot be reset.
    pub fn reset_peak(&self) -> bool {
        match &self.memory {
            Some(MemoryFiles::V1 { peak, .. }) => fs::write(peak, "0").is_ok(),
            _ => false,
        }
    }

    pub fn read(&self, peak_was_reset: bool) -> Usage {
        let cpu_seconds = match &self.cpu {
            Some(CpuFile::V1(path)) => read_u64(path).map(|ns| ns as f64 / 1e9),
            Some(CpuFile::V2(path)) => fs::read_to_string(path)
                .ok()
                .and_then(|t| parse_cpu_stat_usec(&t)),
            None => None,
        };
        let bytes = match &self.memory {
            Some(MemoryFiles::V1 { peak, .. }) if peak_was_reset => read_u64(peak),
            Some(MemoryFiles::V1 { current, .. }) | Some(MemoryFiles::V2 { current }) => {
                read_u64(current)
            }
            None => None,
        };
        Usage {
            cpu_seconds,
            memory_kib: bytes.map(|b| b / 1024),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_cgroup_lines() {
        let text = "4:memory:/docker/abc\n2:cpu,cpuacct:/docker/abc\n0::/\n";
        assert_eq!(
            parse_proc_cgroup(text),
            vec![
                ("memory", "/docker/abc"),
                ("cpu,cpuacct", "/docker/abc"),
                ("", "/")
            ]
        );
    }

    #[test]
    fn cpu_stat_usage() {
        let text = "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n";
        assert_eq!(parse_cpu_stat_usec(text), Some(2.5));
        assert_eq!(parse_cpu_stat_usec("nr_periods 0\n"), None);
    }

    #[test]
    fn v1_and_v2_layouts_are_found() {
        let root = tempfile::tempdir().unwrap();
        let dir = |p: &str| {
            let d = root.path().join(p);
            fs::create_dir_all(&d).unwrap();
            d
        };
        let cpuacct = dir("cpu,cpuacct/docker/abc");
        let memory = dir("memory/docker/abc");
        fs::write(cpuacct.join("cpuacct.usage"), "1500000000\n").unwrap();
        fs::write(memory.join("memory.max_usage_in_bytes"), "4096\n").unwrap();
        fs::write(memory.join("memory.usage_in_bytes"), "2048\n").unwrap();
        let v1 = Cgroup::from_proc_cgroup(
            "4:memory:/docker/abc\n2:cpu,cpuacct:/docker/abc\n",
            root.path(),
        );
        assert_eq!(
            v1.read(true),
            Usage {
                cpu_seconds: Some(1.5),
                memory_kib: Some(4)
            }
        );
        assert_eq!(v1.read(false).memory_kib, Some(2));

        let scope = dir("system.slice/docker-abc.scope");
        fs::write(scope.join("cpu.stat"), "usage_usec 250000\n").unwrap();
        fs::write(scope.join("memory.current"), "8192\n").unwrap();
        let v2 = Cgroup::from_proc_cgroup("0::/system.slice/docker-abc.scope\n", root.path());
        assert!(!v2.reset_peak());
        assert_eq!(
            v2.read(false),
            Usage {
                cpu_seconds: Some(0.25),
                memory_kib: Some(8)
            }
        );
    }

    /// This process: Linux always lists its cgroup, and whatever accounting files were found
    /// read as this process's own usage (it has run, so CPU and memory are above zero); a pid
    /// that does not exist has none.
    #[test]
    fn own_process_cgroup_reads_real_usage() {
        let own = Cgroup::of_pid(std::process::id()).expect("/proc/self/cgroup exists on Linux");
        let usage = own.read(false);
        if own.cpu.is_some() {
            assert!(usage.cpu_seconds.is_some_and(|s| s > 0.0), "{usage:?}");
        }
        if own.memory.is_some() {
            assert!(usage.memory_kib.is_some_and(|k| k > 0), "{usage:?}");
        }
        assert!(Cgroup::of_pid(u32::MAX).is_none());
    }
}
