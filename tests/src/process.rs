//! A child process owned by a test or by `cargo xtask`: its output captured to a log file, stopped on drop.
//!
//! [`Process::spawn`] is the test flavour: the log goes to a fresh temporary file, and dropping the
//! [`Process`] sends SIGKILL and reaps it, so nothing a test started outlives it, whether the test passed
//! or panicked; when the test is panicking, the tail of the log is printed first, because that is usually
//! where the reason is. [`Process::spawn_logged`] is the `cargo xtask` flavour: the log goes where the
//! caller says, the child gets its own process group (a terminal's Ctrl-C reaches only the xtask, which
//! stops the stack front to back) and SIGTERM if the xtask itself dies, and dropping it stops it gently
//! (SIGTERM, then SIGKILL after a grace period). Readiness is observed from outside by polling, and a
//! process that dies meanwhile fails at once with its log tail rather than a timeout.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::wait::POLL;

/// How many log lines an error or a failing test shows.
const LOG_TAIL_LINES: usize = 40;
/// How long a [`Process::spawn_logged`] child may take to exit after SIGTERM on drop.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// What dropping the process does.
#[derive(Debug, Clone, Copy)]
enum OnDrop {
    Kill,
    Stop(Duration),
}

#[derive(Debug)]
pub struct Process {
    name: String,
    child: Option<Child>,
    log_path: PathBuf,
    exit: Option<ExitStatus>,
    on_drop: OnDrop,
    _log_dir: Option<tempfile::TempDir>,
}

impl Process {
    /// Spawns `cmd` with stdout and stderr going to a fresh temporary log file and stdin closed; SIGKILL
    /// on drop.
    pub fn spawn(name: impl Into<String>, cmd: Command) -> std::io::Result<Process> {
        let name = name.into();
        let log_dir = tempfile::Builder::new().prefix("e2e-log-").tempdir()?;
        let log_path = log_dir.path().join(format!("{}.log", file_stem(&name)));
        let mut process = Process::start(name, cmd, &log_path, OnDrop::Kill)?;
        process._log_dir = Some(log_dir);
        Ok(process)
    }

    /// Spawns `cmd` logging to `log_path`, in its own process group, with SIGTERM when this process dies;
    /// SIGTERM (then SIGKILL after 10 s) on drop.
    pub fn spawn_logged(name: &str, mut cmd: Command, log_path: &Path) -> std::io::Result<Process> {
        cmd.process_group(0);
        // SAFETY: prctl is async-signal-safe and touches only the child's own state.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Process::start(name.to_string(), cmd, log_path, OnDrop::Stop(STOP_GRACE))
    }

    fn start(
        name: String,
        mut cmd: Command,
        log_path: &Path,
        on_drop: OnDrop,
    ) -> std::io::Result<Process> {
        let log = File::create(log_path)?;
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = cmd.spawn()?;
        Ok(Process {
            name,
            child: Some(child),
            log_path: log_path.to_path_buf(),
            exit: None,
            on_drop,
            _log_dir: None,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id, while it has not been reaped.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Everything the process wrote so far.
    pub fn log(&self) -> String {
        std::fs::read(&self.log_path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Sends a signal (e.g. `libc::SIGTERM`) if the process still runs.
    pub fn signal(&mut self, signal: i32) {
        if self.try_exit().is_some() {
            return;
        }
        if let Ok(pid) = libc::pid_t::try_from(self.pid()) {
            if pid > 0 {
                // SAFETY: plain kill(2) on a child we spawned and have not reaped, so the pid is still ours.
                unsafe {
                    libc::kill(pid, signal);
                }
            }
        }
    }

    pub fn sigterm(&mut self) {
        self.signal(libc::SIGTERM);
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        if let Some(child) = self.child.as_mut() {
            if self.exit.is_none() {
                let _ = child.kill();
                self.exit = child.wait().ok();
            }
        }
        self.exit
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL. Idempotent; blocks the thread.
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        self.sigterm();
        let deadline = Instant::now() + grace;
        while self.try_exit().is_none() {
            if Instant::now() >= deadline {
                eprintln!("{} ignored SIGTERM for {grace:?}, killing it", self.name);
                return self.kill();
            }
            std::thread::sleep(POLL);
        }
        self.exit
    }

    /// The exit status if the process has exited, without blocking.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            if let Some(child) = self.child.as_mut() {
                self.exit = child.try_wait().ok().flatten();
            }
        }
        self.exit
    }

    /// Waits up to `timeout` for the process to exit.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// `Err` naming the process, its exit status and its log tail, once it has exited.
    pub fn ensure_running(&mut self) -> Result<()> {
        match self.try_exit() {
            None => Ok(()),
            Some(status) => bail!(
                "{} exited unexpectedly ({status}); log {}:\n{}",
                self.name,
                self.log_path.display(),
                self.log_tail(LOG_TAIL_LINES)
            ),
        }
    }

    /// Fails the test with the log tail when the process has died.
    pub fn assert_running(&mut self) {
        if let Err(e) = self.ensure_running() {
            panic!("{e:#}");
        }
    }

    /// Polls `ready` (blocking the thread) until it returns true, failing early if the process exits and
    /// with the log tail after `timeout`.
    pub fn wait_ready(
        &mut self,
        what: &str,
        timeout: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            self.ensure_running()?;
            if ready() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not become ready ({what}) within {timeout:?}; log {}:\n{}",
                    self.name,
                    self.log_path.display(),
                    self.log_tail(LOG_TAIL_LINES)
                );
            }
            std::thread::sleep(POLL);
        }
    }
}

/// The name may be anything (an address, a path): keep the log file's name to safe characters.
fn file_stem(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Drop for Process {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- log of {} (tail) ----\n{}\n---- end of {} ----",
                self.name,
                self.log_tail(LOG_TAIL_LINES),
                self.name
            );
        }
        match self.on_drop {
            OnDrop::Kill => {
                self.kill();
            }
            OnDrop::Stop(grace) => {
                self.stop(grace);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(script);
        cmd
    }

    #[test]
    fn a_dead_process_reports_its_log_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Process::spawn_logged(
            "failing",
            sh("echo boom-line; exit 3"),
            &dir.path().join("f.log"),
        )
        .unwrap();
        let err = p
            .wait_ready("never", Duration::from_secs(5), || false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("failing exited unexpectedly"), "{err}");
        assert!(err.contains("boom-line"), "{err}");
    }

    #[test]
    fn stop_terminates_a_running_process_quickly() {
        let dir = tempfile::tempdir().unwrap();
        let mut p =
            Process::spawn_logged("sleeper", sh("exec sleep 100"), &dir.path().join("s.log"))
                .unwrap();
        p.ensure_running().unwrap();
        let started = Instant::now();
        p.stop(Duration::from_secs(5));
        assert!(started.elapsed() < Duration::from_secs(3));
        assert!(p.ensure_running().is_err());
    }
}
