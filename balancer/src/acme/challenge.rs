//! The challenge responders' state: HTTP-01 key authorizations by token and TLS-ALPN-01
//! certificates by name, present only while their order is in progress ([`Pending`] removes
//! them when the order ends, however it ends).
//!
//! The TLS-ALPN-01 certificate (RFC 8737) is self-signed for the one name and carries the
//! critical `acmeIdentifier` extension with the SHA-256 of the key authorization; made with rcgen.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use shared::sync::{read_lock, write_lock};

use crate::front::tls;

/// The challenge the certificate authority is answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Challenge {
    /// On the TLS listener (`acme-tls/1`): needs only the HTTPS port.
    #[value(name = "tls-alpn-01")]
    TlsAlpn01,
    /// On the plain listener, `/.well-known/acme-challenge/TOKEN`: needs port 80.
    #[value(name = "http-01")]
    Http01,
}

impl Challenge {
    pub fn name(self) -> &'static str {
        match self {
            Challenge::TlsAlpn01 => "tls-alpn-01",
            Challenge::Http01 => "http-01",
        }
    }
}

/// What the listeners answer challenges with, shared with them.
#[derive(Debug, Default)]
pub struct Challenges {
    http: RwLock<HashMap<String, String>>,
    alpn: RwLock<HashMap<String, Arc<CertifiedKey>>>,
}

impl Challenges {
    pub fn http(&self, token: &str) -> Option<String> {
        read_lock(&self.http).get(token).cloned()
    }

    pub fn alpn(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        read_lock(&self.alpn).get(name).cloned()
    }
}

/// One challenge published for the length of an order; unpublished on drop.
pub struct Pending {
    challenges: Arc<Challenges>,
    entry: Entry,
}

enum Entry {
    Http(String),
    Alpn(String),
}

impl Pending {
    /// Serves `key_authorization` at `/.well-known/acme-challenge/<token>`.
    pub fn http(challenges: &Arc<Challenges>, token: &str, key_authorization: &str) -> Pending {
        write_lock(&challenges.http).insert(token.to_owned(), key_authorization.to_owned());
        Pending {
            challenges: challenges.clone(),
            entry: Entry::Http(token.to_owned()),
        }
    }

    /// Serves the TLS-ALPN-01 certificate for `name` with `digest` (SHA-256 of the key
    /// authorization) to `acme-tls/1` handshakes.
    pub fn alpn(
        challenges: &Arc<Challenges>,
        name: &str,
        digest: &[u8],
    ) -> Result<Pending, String> {
        let key = alpn_certificate(name, digest)?;
        write_lock(&challenges.alpn).insert(name.to_owned(), Arc::new(key));
        Ok(Pending {
            challenges: challenges.clone(),
            entry: Entry::Alpn(name.to_owned()),
        })
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        match &self.entry {
            Entry::Http(token) => {
                write_lock(&self.challenges.http).remove(token);
            }
            Entry::Alpn(name) => {
                write_lock(&self.challenges.alpn).remove(name);
            }
        }
    }
}

/// The RFC 8737 certificate for `name`.
fn alpn_certificate(name: &str, digest: &[u8]) -> Result<CertifiedKey, String> {
    let why = |e: rcgen::Error| format!("TLS-ALPN-01 certificate for {name}: {e}");
    let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).map_err(why)?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let key = rcgen::KeyPair::generate().map_err(why)?;
    let cert = params.self_signed(&key).map_err(why)?;
    let chain = vec![CertificateDer::from(cert.der().to_vec())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    tls::certified_key_unchecked(chain, key)
        .map_err(|e| format!("TLS-ALPN-01 certificate for {name}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_are_served_only_while_pending() {
        let challenges = Arc::new(Challenges::default());
        {
            let _http = Pending::http(&challenges, "tok", "tok.thumb");
            let _alpn = Pending::alpn(&challenges, "a.example", &[7; 32]).unwrap();
            assert_eq!(challenges.http("tok").as_deref(), Some("tok.thumb"));
            assert!(challenges.alpn("a.example").is_some());
            assert!(challenges.alpn("b.example").is_none());
        }
        assert!(challenges.http("tok").is_none());
        assert!(challenges.alpn("a.example").is_none());
    }

    #[test]
    fn the_alpn_certificate_carries_the_acme_identifier() {
        use x509_parser::prelude::{FromDer, X509Certificate};
        let key = alpn_certificate("a.example", &[9; 32]).unwrap();
        let (_, cert) = X509Certificate::from_der(key.cert[0].as_ref()).unwrap();
        // id-pe-acmeIdentifier, 1.3.6.1.5.5.7.1.31, critical.
        let ext = cert
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .unwrap();
        assert!(ext.critical);
        assert!(ext.value.ends_with(&[9; 32]));
    }
}
