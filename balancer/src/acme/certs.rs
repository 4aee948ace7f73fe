//! The ACME names and what each one serves: its certificate (swapped whole when a new one
//! arrives, so the next handshake presents it and open connections keep theirs), its validity and
//! serial, the last error and the next attempt; the `/status` view and the `NamedCerts` and
//! `Http01Tokens` faces the listeners see.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use rustls::sign::CertifiedKey;
use serde::Serialize;
use shared::sync::{read_lock, write_lock};

use crate::acme::challenge::Challenges;
use crate::acme::schedule::Validity;
use crate::acme::state::StateDir;
use crate::front::acme_http::Http01Tokens;
use crate::front::sni::NamedCerts;
use crate::front::tls::{self, CertInfo, PairFiles};

/// A certificate being served for a name.
#[derive(Debug, Clone)]
pub struct Served {
    pub key: Arc<CertifiedKey>,
    pub info: CertInfo,
    pub validity: Validity,
    /// The leaf's serial number, hex.
    pub serial: String,
}

/// One name's state.
#[derive(Debug, Clone, Default)]
pub struct NameState {
    pub served: Option<Served>,
    pub last_error: Option<String>,
    /// Unix seconds.
    pub last_error_at: Option<i64>,
    pub next_attempt: Option<i64>,
    pub orders: u64,
}

/// Every ACME name, and the challenges in progress.
#[derive(Debug, Default)]
pub struct AcmeCerts {
    names: RwLock<BTreeMap<String, NameState>>,
    pub challenges: Arc<Challenges>,
}

/// What `/status` shows for a name.
#[derive(Debug, Clone, Serialize)]
pub struct NameStatus {
    pub name: String,
    pub subject: Option<String>,
    pub issuer: Option<String>,
    pub not_after: Option<i64>,
    pub not_after_text: Option<String>,
    pub serial: Option<String>,
    pub orders: u64,
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
    pub next_attempt: Option<i64>,
}

/// Reads the stored pair of `name` and checks it (parses, key matches, valid now).
pub fn load_stored(state: &StateDir, name: &str) -> Result<Option<Served>, String> {
    let (cert, key) = state.pair_files(name);
    if !cert.exists() {
        return Ok(None);
    }
    let pair = tls::load_pair(&PairFiles { cert, key }, SystemTime::now())
        .map_err(|e| format!("stored certificate for {name}: {e}"))?;
    let (validity, serial) = leaf_details(&pair.key)?;
    Ok(Some(Served {
        key: pair.key,
        info: pair.info,
        validity,
        serial,
    }))
}

/// The leaf's validity and serial.
fn leaf_details(key: &CertifiedKey) -> Result<(Validity, String), String> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let leaf = key.cert.first().ok_or("an empty chain")?;
    let (_, cert) = X509Certificate::from_der(leaf.as_ref()).map_err(|e| e.to_string())?;
    let validity = Validity {
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
    };
    Ok((validity, cert.raw_serial_as_string()))
}

impl AcmeCerts {
    pub fn new(names: &[String]) -> Self {
        let names = names
            .iter()
            .map(|n| (n.clone(), NameState::default()))
            .collect();
        AcmeCerts {
            names: RwLock::new(names),
            challenges: Arc::default(),
        }
    }

    pub fn get(&self, name: &str) -> NameState {
        read_lock(&self.names)
            .get(name)
            .cloned()
            .unwrap_or_default()
    }

    /// Changes `name`'s state with `f`.
    pub fn update(&self, name: &str, f: impl FnOnce(&mut NameState)) {
        if let Some(state) = write_lock(&self.names).get_mut(name) {
            f(state);
        }
    }

    pub fn status(&self) -> Vec<NameStatus> {
        read_lock(&self.names)
            .iter()
            .map(|(name, s)| {
                let info = s.served.as_ref().map(|c| &c.info);
                NameStatus {
                    name: name.clone(),
                    subject: info.map(|i| i.subject.clone()),
                    issuer: info.map(|i| i.issuer.clone()),
                    not_after: info.map(|i| i.not_after),
                    not_after_text: info.map(|i| i.not_after_text.clone()),
                    serial: s.served.as_ref().map(|c| c.serial.clone()),
                    orders: s.orders,
                    last_error: s.last_error.clone(),
                    last_error_at: s.last_error_at,
                    next_attempt: s.next_attempt,
                }
            })
            .collect()
    }
}

impl NamedCerts for AcmeCerts {
    fn challenge(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        self.challenges.alpn(name)
    }

    fn certificate(&self, name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let names = read_lock(&self.names);
        match name {
            Some(name) => names.get(name)?.served.as_ref().map(|s| s.key.clone()),
            None => names
                .values()
                .find_map(|s| s.served.as_ref().map(|s| s.key.clone())),
        }
    }

    fn expiries(&self) -> Vec<(String, i64)> {
        read_lock(&self.names)
            .iter()
            .filter_map(|(n, s)| Some((n.clone(), s.served.as_ref()?.validity.not_after)))
            .collect()
    }
}

impl Http01Tokens for AcmeCerts {
    fn key_authorization(&self, token: &str) -> Option<String> {
        self.challenges.http(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(cn: &str) -> (String, String) {
        let mut params = rcgen::CertificateParams::new(vec![cn.into()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2090, 1, 1);
        let key = rcgen::KeyPair::generate().unwrap();
        (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
    }

    #[test]
    fn a_stored_pair_is_served_by_its_name_only() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        let names = ["a.example".to_string(), "b.example".to_string()];
        let certs = AcmeCerts::new(&names);
        assert!(load_stored(&state, "a.example").unwrap().is_none());
        let (chain, key) = pair("a.example");
        state.store_pair("a.example", &chain, &key).unwrap();
        let served = load_stored(&state, "a.example").unwrap().unwrap();
        assert!(served.validity.not_after > served.validity.not_before);
        certs.update("a.example", |s| s.served = Some(served));
        assert!(certs.certificate(Some("a.example")).is_some());
        assert!(certs.certificate(Some("b.example")).is_none());
        assert!(certs.certificate(None).is_some());
        assert_eq!(certs.expiries().len(), 1);
        assert_eq!(certs.status().len(), 2);
    }

    #[test]
    fn a_corrupt_stored_pair_is_an_error_naming_the_name_not_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        let (chain, _) = pair("a.example");
        state
            .store_pair("a.example", &chain, "SECRET-NOT-A-KEY")
            .unwrap();
        let e = load_stored(&state, "a.example").unwrap_err();
        assert!(e.contains("a.example") && !e.contains("SECRET"), "{e}");
    }
}
