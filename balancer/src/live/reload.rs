//! When the config file is read again and what is reported: SIGHUP, `POST /config/reload`
//! (through the admin listener's channel) and a change of the file's content, one at a time.
//!
//! The file is polled every [`POLL`] by its content (SHA-256 of the bytes), not watched with
//! inotify: a bind mount edited in place, an editor that writes a new inode and renames it over,
//! and a Kubernetes ConfigMap's symlink swap all change what reading the path returns, while
//! inotify would miss one or the other. Reading a file of at most 1 MiB every 2 s costs nothing.
//!
//! A reload parses and validates the whole file (and the flags and variables around it) before
//! anything changes. An invalid file leaves the running configuration as it is: one error line
//! with the file's position is logged, `balancer_config_reloads_total{result="error"}` counts it
//! and `/status` shows it. A valid one is applied by [`super::Groups::apply`]; settings that only
//! a restart can change (listen addresses, workers, TLS, limits, logs) are named in the log line
//! and the report, and everything else still applies.

use std::ffi::OsString;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::Groups;
use crate::admin::reload::{ConfigStatus, ReloadReport, ReloadRequest, Trigger};
use crate::config::{self, Loaded};
use crate::runtime::metrics::{Metrics, ReloadLabels};

/// How often the file's content is compared with the one in force.
pub const POLL: Duration = Duration::from_secs(2);

/// The owner of the configuration in force: the groups, the arguments it was built from, and
/// where it reports.
pub struct Reloader {
    pub groups: Groups,
    /// The command line, read again with the file at every reload.
    pub args: Vec<OsString>,
    /// The configuration the process started with: what a restart-only setting is compared to.
    pub started: Loaded,
    /// The SHA-256 of the file in force.
    pub sha256: String,
    pub status: Arc<ConfigStatus>,
    pub metrics: Arc<Metrics>,
}

/// Seconds since the Unix epoch, for the reports.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What reading the file gives now: its hash, or why it cannot be read.
fn content_key(path: &std::path::Path) -> Result<String, String> {
    std::fs::read(path)
        .map(|bytes| hex(&Sha256::digest(&bytes)))
        .map_err(|e| e.to_string())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Reloader {
    /// Serves reload requests until the sender side is gone: from `requests` (the admin API),
    /// SIGHUP and the file poll.
    pub async fn run(mut self, mut requests: mpsc::Receiver<ReloadRequest>) {
        let path = self.started.file.as_ref().map(|f| f.path.clone());
        let mut hangups =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut seen: Result<String, String> = Ok(self.sha256.clone());
        let mut poll = tokio::time::interval(POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let hangup = async {
                match hangups.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            };
            let (trigger, reply) = tokio::select! {
                request = requests.recv() => match request {
                    Some(r) => (r.trigger, r.reply),
                    None => return,
                },
                _ = hangup => (Trigger::Sighup, None),
                _ = poll.tick() => {
                    let Some(path) = &path else { continue };
                    let now = content_key(path);
                    if now == seen {
                        continue;
                    }
                    seen = now;
                    (Trigger::File, None)
                }
            };
            // What this reload reads, so the poll does not try the same content again; a change
            // made during the reload differs from it and is picked up by the next poll.
            if let Some(path) = &path {
                seen = content_key(path);
            }
            let report = self.reload(trigger).await;
            if let Some(reply) = reply {
                let _ = reply.send(report);
            }
        }
    }

    /// Reads the file again and applies it, or keeps what runs; see the module doc.
    pub async fn reload(&mut self, trigger: Trigger) -> ReloadReport {
        let report = match config::load(&self.args) {
            Err(e) => self.refused(trigger, e.to_string()),
            Ok(next) => self.apply(trigger, next).await,
        };
        let result = if report.result == "error" {
            "error"
        } else {
            "ok"
        };
        self.metrics
            .routes
            .reloads
            .get_or_create(&ReloadLabels { result })
            .inc();
        self.status.record(&report);
        report
    }

    fn refused(&self, trigger: Trigger, error: String) -> ReloadReport {
        tracing::error!(trigger = trigger.name(), %error, "config reload refused; the running configuration stays");
        ReloadReport {
            result: "error",
            trigger: trigger.name(),
            at: unix_now(),
            sha256: Some(self.sha256.clone()),
            error: Some(error),
            restart_needed: Vec::new(),
        }
    }

    async fn apply(&mut self, trigger: Trigger, next: Loaded) -> ReloadReport {
        let sha256 = next
            .file
            .as_ref()
            .map(|f| f.sha256.clone())
            .unwrap_or_default();
        let restart_needed = self.started.needs_restart(&next);
        // The same file can still load differently: a route's `basic_auth` users file changed.
        let in_force = self.groups.routes().load_full();
        let same_routes = in_force
            .routes()
            .iter()
            .map(|r| &r.spec)
            .eq(next.routes.iter());
        if sha256 == self.sha256 && same_routes {
            return ReloadReport {
                result: "unchanged",
                trigger: trigger.name(),
                at: unix_now(),
                sha256: Some(sha256),
                error: None,
                restart_needed,
            };
        }
        let groups: Vec<_> = next
            .groups
            .iter()
            .map(|g| (g.name.clone(), g.settings.clone()))
            .collect();
        let applied = match self.groups.apply(&groups, &next.routes).await {
            Ok(applied) => applied,
            Err(e) => return self.refused(trigger, e.to_string()),
        };
        self.sha256.clone_from(&sha256);
        let at = unix_now();
        self.metrics
            .routes
            .last_reload_success
            .set(i64::try_from(at).unwrap_or(i64::MAX));
        tracing::info!(
            trigger = trigger.name(),
            sha256 = %sha256,
            routes = next.routes.len(),
            kept = ?applied.kept,
            started = ?applied.started,
            stopped = ?applied.stopped,
            restart_needed = ?restart_needed,
            "config reloaded{}",
            if restart_needed.is_empty() { "" } else { "; some settings need a restart" }
        );
        ReloadReport {
            result: "ok",
            trigger: trigger.name(),
            at,
            sha256: Some(sha256),
            error: None,
            restart_needed,
        }
    }
}
