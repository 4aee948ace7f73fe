//! `POST /config/reload` and what `/status` shows about the config file (`--config`).
//!
//! The admin listener does not reload anything itself: it asks the one task that owns the
//! configuration (`live`) through a channel and relays its [`ReloadReport`], so a reload from the
//! API, from SIGHUP and from a changed file are the same code, one at a time. The POST follows the
//! drain API's token rule: 403 without `--admin-token`, 401 without the right `Bearer` token.

use std::sync::RwLock;

use http::header::HeaderValue;
use http::{Method, StatusCode};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use super::drain::{authorize, Answer};

/// What asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Sighup,
    Admin,
    File,
}

impl Trigger {
    pub fn name(self) -> &'static str {
        match self {
            Trigger::Sighup => "sighup",
            Trigger::Admin => "admin",
            Trigger::File => "file",
        }
    }
}

/// A reload asked of the configuration's owner; `reply` gets the outcome.
pub struct ReloadRequest {
    pub trigger: Trigger,
    pub reply: Option<oneshot::Sender<ReloadReport>>,
}

/// Where reload requests go (`None` without `--config`: nothing to reload).
pub type ReloadSender = mpsc::Sender<ReloadRequest>;

/// How one reload ended: the POST's JSON answer and `/status`'s `config.last_reload`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReloadReport {
    /// `ok` (applied), `unchanged` (same content as in force) or `error` (nothing changed).
    pub result: &'static str,
    pub trigger: &'static str,
    /// Unix seconds.
    pub at: u64,
    /// The file's SHA-256 (hex) in force after the reload.
    pub sha256: Option<String>,
    /// What was wrong, with the file's `PATH:LINE:COLUMN` when it has one.
    pub error: Option<String>,
    /// Settings that changed in the file but only take effect on a restart.
    pub restart_needed: Vec<String>,
}

/// The `config` object of `/status`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ConfigInfo {
    pub path: String,
    pub sha256: String,
    /// When the configuration in force was loaded (Unix seconds).
    pub loaded_at: u64,
    pub last_reload: Option<ReloadReport>,
}

/// The config file's state, written by its owner, read by `/status`.
#[derive(Default)]
pub struct ConfigStatus(RwLock<ConfigInfo>);

impl ConfigStatus {
    pub fn new(info: ConfigInfo) -> Self {
        ConfigStatus(RwLock::new(info))
    }

    pub fn get(&self) -> ConfigInfo {
        shared::sync::read_lock(&self.0).clone()
    }

    /// Records a reload; an applied one also moves the hash and load time.
    pub fn record(&self, report: &ReloadReport) {
        let mut info = shared::sync::write_lock(&self.0);
        if report.result == "ok" {
            if let Some(sha) = &report.sha256 {
                info.sha256.clone_from(sha);
            }
            info.loaded_at = report.at;
        }
        info.last_reload = Some(report.clone());
    }
}

/// The answer to `POST /config/reload`: 200 with the report when the file was applied or
/// unchanged, 400 with it when the file was refused (the running configuration stays).
pub async fn respond(
    method: &Method,
    authorization: Option<&HeaderValue>,
    token: Option<&str>,
    reload: Option<&ReloadSender>,
) -> Answer {
    if method != Method::POST {
        return Answer::text(
            StatusCode::METHOD_NOT_ALLOWED,
            "405 Method Not Allowed: use POST\n",
        );
    }
    if let Err(refused) = authorize(authorization, token) {
        return refused;
    }
    let Some(reload) = reload else {
        return Answer::text(
            StatusCode::CONFLICT,
            "409 Conflict: the balancer runs without --config, so there is no file to reload\n",
        );
    };
    let (tx, rx) = oneshot::channel();
    let request = ReloadRequest {
        trigger: Trigger::Admin,
        reply: Some(tx),
    };
    let report = match reload.send(request).await {
        Ok(()) => rx.await.ok(),
        Err(_) => None,
    };
    let Some(report) = report else {
        return Answer::text(
            StatusCode::SERVICE_UNAVAILABLE,
            "503 Service Unavailable: the balancer is stopping\n",
        );
    };
    let status = if report.result == "error" {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    match serde_json::to_string(&report) {
        Ok(json) => Answer::json(status, json + "\n"),
        Err(_) => Answer::text(StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n"),
    }
}
