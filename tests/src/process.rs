//! A child process owned by a test: its output captured to a log file, killed on drop.
//!
//! Dropping a [`Process`] sends SIGKILL and reaps it, so nothing a test started outlives it, whether the test
//! passed or panicked. When the test is panicking, the tail of the process's log is printed first, because
//! that is usually where the reason is.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::wait::POLL;

/// How much of a log is printed when a test fails.
const LOG_TAIL_BYTES: usize = 4000;

pub struct Process {
    name: String,
    child: Option<Child>,
    log_path: PathBuf,
    exit: Option<ExitStatus>,
    _log_dir: tempfile::TempDir,
}

impl Process {
    /// Spawns `cmd` with stdout and stderr appended to a fresh log file and stdin closed.
    pub fn spawn(name: impl Into<String>, mut cmd: Command) -> std::io::Result<Process> {
        let name = name.into();
        let log_dir = tempfile::Builder::new().prefix("e2e-log-").tempdir()?;
        // The name may be anything (an address, a path): keep the file name to safe characters.
        let file_stem: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let log_path = log_dir.path().join(format!("{file_stem}.log"));
        let log = File::create(&log_path)?;
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = cmd.spawn()?;
        Ok(Process {
            name,
            child: Some(child),
            log_path,
            exit: None,
            _log_dir: log_dir,
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

    /// Sends a signal (e.g. `libc::SIGTERM`) if the process still runs.
    pub fn signal(&mut self, signal: i32) {
        if self.try_exit().is_some() {
            return;
        }
        let pid = self.pid() as libc::pid_t;
        if pid > 0 {
            // SAFETY: plain kill(2) on a child we spawned and have not reaped, so the pid is still ours.
            unsafe {
                libc::kill(pid, signal);
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

    /// Fails the test with the log tail when the process has died.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.try_exit() {
            panic!(
                "{} exited early ({status}); log:\n{}",
                self.name,
                self.log_tail()
            );
        }
    }

    fn log_tail(&self) -> String {
        let log = self.log();
        let start = log.len().saturating_sub(LOG_TAIL_BYTES);
        let start = (start..log.len())
            .find(|&i| log.is_char_boundary(i))
            .unwrap_or(0);
        log[start..].to_string()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- log of {} (tail) ----\n{}\n---- end of {} ----",
                self.name,
                self.log_tail(),
                self.name
            );
        }
        self.kill();
    }
}
