//! The Docker CLI as the Compose bench uses it: every call bounded in time, interruptible by
//! Ctrl-C (except the teardown), with its stderr kept in a log file for the error message.
//!
//! Children run in their own process group, so a Ctrl-C reaches the bench (which then stops
//! them and tears the stack down) and not a half-finished `docker compose` directly.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Set by the Ctrl-C / SIGTERM handler; bounded calls and the bench loop stop on it.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// Whether a call may be cut short by Ctrl-C (the teardown may not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnInterrupt {
    Stop,
    Finish,
}

/// Runs `cmd` for at most `limit`; returns its stdout. Its stderr is appended to `log`, and
/// the last lines of it are in the error when the command fails.
pub fn run(
    mut cmd: Command,
    limit: Duration,
    log: &Path,
    on_interrupt: OnInterrupt,
) -> Result<String> {
    let what = describe(&cmd);
    let stdout_path = log.with_extension(format!("{}.out", std::process::id()));
    let stdout = File::create(&stdout_path)
        .with_context(|| format!("creating {}", stdout_path.display()))?;
    let mut stderr = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let _ = writeln!(stderr, "$ {what}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {what}"))?;
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().context("waiting for docker")? {
            break status;
        }
        let stop = on_interrupt == OnInterrupt::Stop && interrupted();
        if stop || Instant::now() > deadline {
            // SAFETY: kill(2) on the child's own process group.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGTERM) };
            thread::sleep(Duration::from_secs(2));
            let _ = child.kill();
            let _ = child.wait();
            let _ = fs::remove_file(&stdout_path);
            bail!(
                "`{what}` {}",
                if stop {
                    "stopped: interrupted".to_string()
                } else {
                    format!("did not finish within {limit:?}")
                }
            );
        }
        thread::sleep(Duration::from_millis(50));
    };
    let out = fs::read_to_string(&stdout_path).unwrap_or_default();
    let _ = fs::remove_file(&stdout_path);
    if !status.success() {
        bail!("`{what}` failed ({status}): {}", tail(log, 15));
    }
    Ok(out)
}

fn describe(cmd: &Command) -> String {
    let mut words = vec![cmd.get_program().to_string_lossy().into_owned()];
    words.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    words.join(" ")
}

/// The last `lines` lines of a log file, on one line.
pub fn tail(log: &Path, lines: usize) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join(" | ")
}

/// `docker ARGS...`.
pub fn docker<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new("docker");
    cmd.args(args);
    cmd
}

/// Whether a Docker engine answers `docker info` within 20 s.
pub fn engine_answers(log: &Path) -> bool {
    run(
        docker(["info"]),
        Duration::from_secs(20),
        log,
        OnInterrupt::Stop,
    )
    .is_ok()
}

/// What the bench needs to know of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub id: String,
    pub service: String,
    pub name: String,
    /// The main process on this machine (0 when the engine is elsewhere).
    pub pid: u32,
    pub restarts: u64,
    pub image: String,
    pub log_driver: String,
    /// The driver's options as JSON (`{"max-size":"10m",...}`; from the engine's defaults
    /// when docker-compose.yml sets none).
    pub log_opts: String,
}

const INSPECT_FORMAT: &str = "{{.Id}}\t{{index .Config.Labels \"com.docker.compose.service\"}}\t{{.Name}}\t{{.State.Pid}}\t{{.RestartCount}}\t{{.Config.Image}}\t{{.HostConfig.LogConfig.Type}}\t{{json .HostConfig.LogConfig.Config}}";

/// One `docker inspect` line in [`INSPECT_FORMAT`].
fn parse_inspect_line(line: &str) -> Option<Container> {
    let f: Vec<&str> = line.split('\t').collect();
    if f.len() != 8 {
        return None;
    }
    Some(Container {
        id: f[0].to_string(),
        service: f[1].to_string(),
        name: f[2].trim_start_matches('/').to_string(),
        pid: f[3].parse().ok()?,
        restarts: f[4].parse().ok()?,
        image: f[5].to_string(),
        log_driver: f[6].to_string(),
        log_opts: f[7].to_string(),
    })
}

/// `docker inspect` of `ids`, sorted by service and name.
pub fn inspect(ids: &[String], log: &Path) -> Result<Vec<Container>> {
    let mut cmd = docker(["inspect", "-f", INSPECT_FORMAT]);
    cmd.args(ids);
    let out = run(cmd, Duration::from_secs(60), log, OnInterrupt::Stop)?;
    let mut containers = out
        .lines()
        .map(|l| parse_inspect_line(l).with_context(|| format!("docker inspect line {l:?}")))
        .collect::<Result<Vec<_>>>()?;
    containers.sort_by(|a, b| (&a.service, &a.name).cmp(&(&b.service, &b.name)));
    Ok(containers)
}

/// `(lines, bytes)` of what `docker logs` returns for a container (stdout and stderr): the
/// text it logged, as far as the log driver still keeps it (rotation drops the oldest).
pub fn log_volume(container: &Container, log: &Path) -> Result<(u64, u64)> {
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        "docker logs \"$1\" 2>&1 | wc -lc",
        "sh",
        &container.id,
    ]);
    let out = run(cmd, Duration::from_secs(120), log, OnInterrupt::Stop)?;
    parse_wc_lc(&out)
        .with_context(|| format!("counting the log lines of {}: {out:?}", container.name))
}

/// `wc -lc` output: lines, then bytes.
fn parse_wc_lc(out: &str) -> Option<(u64, u64)> {
    let mut numbers = out.split_whitespace().map(|n| n.parse::<u64>().ok());
    Some((numbers.next()??, numbers.next()??))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inspect_lines() {
        let line = "abc123\tbalancer\t/vc-bench-balancer-1\t4242\t0\tvc-bench-balancer\tjson-file\t{\"max-size\":\"10m\"}";
        let c = parse_inspect_line(line).unwrap();
        assert_eq!(c.service, "balancer");
        assert_eq!(c.name, "vc-bench-balancer-1");
        assert_eq!((c.pid, c.restarts), (4242, 0));
        assert_eq!(c.log_driver, "json-file");
        assert_eq!(c.log_opts, r#"{"max-size":"10m"}"#);
        assert!(parse_inspect_line("abc\tbalancer").is_none());
        assert_eq!(parse_wc_lc("  131142 26000000\n"), Some((131142, 26000000)));
        assert_eq!(parse_wc_lc("12\n"), None);
    }

    #[test]
    fn bounded_runs_report_output_failure_and_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("cmd.log");
        let mut ok = Command::new("sh");
        ok.args(["-c", "echo out; echo err >&2"]);
        let out = run(ok, Duration::from_secs(10), &log, OnInterrupt::Stop).unwrap();
        assert_eq!(out, "out\n");
        assert!(fs::read_to_string(&log).unwrap().contains("err"));

        let mut failing = Command::new("sh");
        failing.args(["-c", "echo broken >&2; exit 3"]);
        let err = run(failing, Duration::from_secs(10), &log, OnInterrupt::Stop).unwrap_err();
        assert!(format!("{err}").contains("broken"), "{err}");

        let mut slow = Command::new("sleep");
        slow.arg("30");
        let started = Instant::now();
        let err = run(slow, Duration::from_millis(200), &log, OnInterrupt::Stop).unwrap_err();
        assert!(format!("{err}").contains("did not finish"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
