//! Live certificate reload: on SIGHUP, and when the certificate or key file changes.
//!
//! The files are looked at every [`POLL_INTERVAL`] (modification time, size and inode, through
//! symlinks): polling survives what file notifications miss, such as bind mounts, `cp` over the
//! file, and Kubernetes' symlink swap of a Secret volume. A changed pair is loaded and checked
//! ([`tls::load_pair`]); a good one serves the next handshake, a broken one (bad PEM, a key that
//! does not match, expired) is refused with one log line and `balancer_tls_reloads_total
//! {outcome="refused"}`, and the old pair keeps serving. Open connections are never touched: a
//! reload only changes what new handshakes present.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::front::tls::{self, CertStore, ReloadLabels, ReloadRecord, TlsMetrics};

/// How often the files' metadata is compared.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// What identifies one version of a file: a rewrite in place changes the time or size, a
/// replacement (rename, symlink swap) the inode.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode: meta.ino(),
    })
}

fn stamps(store: &CertStore) -> (Option<Stamp>, Option<Stamp>) {
    (stamp(&store.files.cert), stamp(&store.files.key))
}

/// Loads the pair again and installs it if it is good; returns whether it was.
pub fn reload(store: &CertStore, metrics: &TlsMetrics, why: &'static str) -> bool {
    let at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match tls::load_pair(&store.files, SystemTime::now()) {
        Ok(pair) => {
            tracing::info!(
                why,
                subject = %pair.info.subject,
                not_after = %pair.info.not_after_text,
                "TLS certificate reloaded"
            );
            store.install(pair);
            metrics
                .reloads
                .get_or_create(&ReloadLabels { outcome: "ok" })
                .inc();
            store.record_reload(ReloadRecord {
                at,
                outcome: "ok",
                error: None,
            });
            true
        }
        Err(e) => {
            tracing::error!(why, flag = e.flag(), error = %e, "TLS certificate reload refused; the previous certificate keeps serving");
            metrics
                .reloads
                .get_or_create(&ReloadLabels { outcome: "refused" })
                .inc();
            store.record_reload(ReloadRecord {
                at,
                outcome: "refused",
                error: Some(format!("{}: {e}", e.flag())),
            });
            false
        }
    }
}

/// Reloads on SIGHUP and on changed files, forever (spawn it).
pub async fn run(store: Arc<CertStore>, metrics: TlsMetrics) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(hup) => Some(hup),
        Err(e) => {
            tracing::warn!(error = %e, "no SIGHUP handler; certificate files are still polled");
            None
        }
    };
    let mut seen = stamps(&store);
    let mut tick = tokio::time::interval(POLL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let why = tokio::select! {
            Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => None } } => "SIGHUP",
            _ = tick.tick() => "files changed",
        };
        let now = stamps(&store);
        if why == "SIGHUP" || now != seen {
            seen = now;
            reload(&store, &metrics, why);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::registry::Registry;

    fn pem(cn: &str, from: i32, to: i32) -> (String, String) {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.not_before = rcgen::date_time_ymd(from, 1, 1);
        params.not_after = rcgen::date_time_ymd(to, 1, 1);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().unwrap();
        (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
    }

    #[test]
    fn a_broken_pair_is_refused_and_the_old_one_kept() {
        let dir = tempfile::tempdir().unwrap();
        let files = tls::PairFiles {
            cert: dir.path().join("c.pem"),
            key: dir.path().join("k.pem"),
        };
        let write = |(c, k): (String, String)| {
            std::fs::write(&files.cert, c).unwrap();
            std::fs::write(&files.key, k).unwrap();
        };
        write(pem("first", 2020, 2090));
        let first = tls::load_pair(&files, SystemTime::now()).unwrap();
        let store = Arc::new(CertStore::new(first, files.clone()));
        let metrics = TlsMetrics::register(&mut Registry::default(), Some(store.clone()), None);
        let before = stamps(&store);
        write(pem("expired", 2000, 2001));
        assert_ne!(stamps(&store), before, "a rewrite must change the stamp");
        assert!(!reload(&store, &metrics, "test"));
        assert_eq!(store.info().subject, "CN=first");
        assert_eq!(store.last_reload().unwrap().outcome, "refused");
        write(pem("second", 2020, 2090));
        assert!(reload(&store, &metrics, "test"));
        assert_eq!(store.info().subject, "CN=second");
        let count = |outcome| {
            metrics
                .reloads
                .get_or_create(&ReloadLabels { outcome })
                .get()
        };
        assert_eq!((count("ok"), count("refused")), (1, 1));
    }
}
