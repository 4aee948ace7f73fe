//! Which certificate a TLS handshake presents when the listener has more than the `--tls-cert`
//! pair: certificates obtained over ACME, by server name (SNI), and the TLS-ALPN-01 challenge
//! certificates a certificate authority asks for with ALPN `acme-tls/1`.
//!
//! The front door only knows the [`NamedCerts`] trait; `crate::acme` implements it, so the
//! listener does not depend on the ACME client. The order: an `acme-tls/1` hello gets the
//! challenge certificate of its name or nothing (never a real certificate, RFC 8737); otherwise
//! an ACME certificate for the exact name, else the `--tls-cert` pair, else any ACME certificate
//! (a client without SNI); none at all fails the handshake.

use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The ALPN protocol of TLS-ALPN-01 (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Certificates by name, kept up to date by their owner.
pub trait NamedCerts: Send + Sync + std::fmt::Debug {
    /// The TLS-ALPN-01 challenge certificate for `name`, while its validation is in progress.
    fn challenge(&self, name: &str) -> Option<Arc<CertifiedKey>>;
    /// The certificate for `name`, or for any name when `None`.
    fn certificate(&self, name: Option<&str>) -> Option<Arc<CertifiedKey>>;
    /// Each name's served certificate's expiry (Unix seconds), for the expiry gauge.
    fn expiries(&self) -> Vec<(String, i64)>;
}

/// The listener's certificate resolver over the `--tls-cert` pair and the named certificates.
#[derive(Debug)]
pub struct Resolver {
    /// The `--tls-cert` pair's store (`front::tls::CertStore`).
    pub files: Option<Arc<dyn ResolvesServerCert>>,
    pub named: Option<Arc<dyn NamedCerts>>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let Some(named) = &self.named else {
            // No ACME: the `--tls-cert` pair, as before, with no per-handshake work added.
            return self.files.as_ref()?.resolve(hello);
        };
        let name = hello.server_name().map(str::to_ascii_lowercase);
        let is_challenge = hello
            .alpn()
            .is_some_and(|mut offered| offered.any(|p| p == ACME_TLS_ALPN));
        if is_challenge {
            return named.challenge(name.as_deref()?);
        }
        if let Some(key) = name.as_deref().and_then(|n| named.certificate(Some(n))) {
            return Some(key);
        }
        if let Some(files) = &self.files {
            return files.resolve(hello);
        }
        named.certificate(None)
    }
}
