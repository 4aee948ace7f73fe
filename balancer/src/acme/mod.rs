//! Automatic HTTPS: certificates for the `--acme-domain` names obtained and renewed over ACME
//! (RFC 8555) by the balancer itself, served by the TLS listener beside any `--tls-cert` pair.
//!
//! [`state`] keeps the account and the pairs on disk, [`account`] restores or creates the
//! account, [`order`] runs one order with its [`challenge`] published to the listeners, [`certs`]
//! holds what each name serves, [`schedule`] says when to order next, and [`run`] is the loop per
//! name. The client is instant-acme (see docs/HTTPS.md for why); keys and CSRs come from rcgen.
//!
//! At start a valid stored certificate serves at once and no order is placed until it is due;
//! without one the name is ordered at once, and HTTPS for it starts when the order completes.
//! May use `front` (the certificate and challenge faces) and `runtime`.

pub mod account;
pub mod certs;
pub mod challenge;
pub mod order;
pub mod run;
pub mod schedule;
pub mod state;

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use certs::AcmeCerts;
use challenge::Challenge;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OrderLabels {
    /// "ok" or "failed".
    pub result: &'static str,
}

/// What the ACME client is told (from the `--acme-*` flags, `config::acme`).
#[derive(Debug, Clone)]
pub struct Settings {
    /// `--acme-domain`; empty: no ACME.
    pub domains: Vec<String>,
    pub state: std::path::PathBuf,
    pub account: account::AccountSettings,
    pub challenge: Challenge,
    pub renew_before: Option<std::time::Duration>,
}

/// The running ACME client: what the listeners and `/status` read.
pub struct Acme {
    pub certs: Arc<AcmeCerts>,
    pub challenge: Challenge,
}

fn config_error(message: impl std::fmt::Display) -> i32 {
    eprintln!("{}", shared::config_error::line("balancer", message));
    2
}

impl Acme {
    /// With `--acme-domain`: opens the state directory (exit 2 naming `--acme-state` if it cannot
    /// be used), serves the valid stored certificates, registers the metrics and starts one loop
    /// per name. `None` without `--acme-domain`.
    pub fn start(
        config: &Settings,
        tls_listen: bool,
        registry: &mut Registry,
    ) -> Result<Option<Acme>, i32> {
        if config.domains.is_empty() {
            return Ok(None);
        }
        if !tls_listen {
            return Err(config_error("--acme-domain needs --tls-listen"));
        }
        if let Some(ca) = &config.account.ca {
            let pem = std::fs::read_to_string(ca)
                .map_err(|e| config_error(format_args!("--acme-ca {}: {e}", ca.display())))?;
            if !pem.contains("-----BEGIN CERTIFICATE-----") {
                return Err(config_error(format_args!(
                    "--acme-ca {}: no PEM CERTIFICATE in it",
                    ca.display()
                )));
            }
        }
        let state = state::StateDir::open(&config.state)
            .map_err(|e| config_error(format_args!("--acme-state: {e}")))?;
        let certs = Arc::new(AcmeCerts::new(&config.domains));
        for name in &config.domains {
            match certs::load_stored(&state, name) {
                Ok(Some(served)) => {
                    tracing::info!(%name, serial = %served.serial, not_after = %served.info.not_after_text, "stored ACME certificate served");
                    certs.update(name, |s| s.served = Some(served));
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(%name, error = %e, "stored ACME certificate unusable; ordering a new one");
                    certs.update(name, |s| s.last_error = Some(e));
                }
            }
        }
        let orders = Family::default();
        registry.register(
            "acme_orders",
            "ACME orders placed, by result (ok, failed)",
            orders.clone(),
        );
        let shared = Arc::new(run::Shared {
            certs: certs.clone(),
            state,
            settings: config.account.clone(),
            challenge: config.challenge,
            renew_before: config.renew_before,
            orders,
            account: tokio::sync::Mutex::new(None),
        });
        for name in &config.domains {
            tokio::spawn(run::keep_certified(shared.clone(), name.clone()));
        }
        Ok(Some(Acme {
            certs,
            challenge: config.challenge,
        }))
    }
}
