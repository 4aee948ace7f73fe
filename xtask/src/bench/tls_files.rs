//! The certificate pair of the HTTPS benches (`--tls`, `--instructions --tls`): a fresh
//! development CA and ECDSA P-256 `localhost` certificate (`dev_cert`) that both doors serve,
//! and the balancer's flags for it. NGINX's side is [`with_tls`](crate::stack::nginx::with_tls).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::dev_cert;
use crate::stack::Balancer;

/// The pair both doors serve and the CA that trusts it.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

impl TlsFiles {
    /// A fresh pair (`dev_cert`) in `work/certs`.
    pub fn write(work: &Path) -> Result<Self> {
        let dir = dev_cert::write(&work.join("certs"), true)?;
        Ok(Self {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            ca: dir.join("ca.pem"),
        })
    }

    /// The balancer's flags for an HTTPS listener on `listen`.
    pub fn balancer_flags(&self, listen: SocketAddr) -> Vec<String> {
        Balancer::tls_flags(listen, &self.cert, &self.key)
    }
}
