//! What `cargo xtask bench --instructions` measures: the cases (a path over plain HTTP, or with
//! `--tls` the HTTPS cases) and what each needs beyond the plain run.
//!
//! With `--tls` both doors get the same ECDSA P-256 pair (`dev_cert`) on an HTTPS listener
//! (`--tls-listen`; NGINX's `ssl http2` listener from `tls_bench::nginx_with_tls`), and callgrind
//! counts instructions per keep-alive `/count` over HTTP/1.1+TLS and over HTTP/2+TLS (oha) and
//! per full handshake (`openssl s_time -new`: a new connection, a full handshake and one `GET`
//! of the static path each). Counting, unlike handshakes/s or CPU seconds on this shared
//! machine, gives the same figure run after run, so it judges an A/B (the crypto provider, an h2
//! setting) by a number.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::bench::BenchArgs;

/// How one case talks to the door.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Kind {
    Plain,
    Http1Tls,
    Http2Tls,
    FullHandshake,
}

/// One measured case: its report label, the path it requests, how.
#[derive(Debug, Clone, Serialize)]
pub struct Case {
    pub label: String,
    pub path: String,
    pub kind: Kind,
}

impl Case {
    fn new(label: &str, path: &str, kind: Kind) -> Self {
        Self {
            label: label.to_string(),
            path: path.to_string(),
            kind,
        }
    }

    pub fn tls(&self) -> bool {
        self.kind != Kind::Plain
    }

    pub fn url(&self, addr: SocketAddr) -> String {
        let scheme = if self.tls() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}{}", addr.port(), self.path)
    }

    /// oha's connections and extra flags (`-p 8`: 8 streams per HTTP/2 connection, as in
    /// `bench --tls`).
    pub fn oha(&self, plain_connections: usize, ca: Option<&Path>) -> (usize, Vec<String>) {
        let mut extra = Vec::new();
        if let (true, Some(ca)) = (self.tls(), ca) {
            extra.extend(["--cacert".to_string(), ca.display().to_string()]);
        }
        if self.kind == Kind::Http2Tls {
            extra.extend(["--http2", "-p", "8"].map(String::from));
            return (8, extra);
        }
        (plain_connections, extra)
    }
}

/// The cases of one run: plain paths, or with `--tls` the HTTPS ones (quick: HTTP/2 only).
pub fn cases(args: &BenchArgs) -> Vec<Case> {
    if args.tls {
        let mut cases = vec![Case::new("h2+tls /count", "/count", Kind::Http2Tls)];
        if !args.quick {
            cases.insert(0, Case::new("h1+tls /count", "/count", Kind::Http1Tls));
            cases.push(Case::new(
                "full handshake",
                &args.static_path,
                Kind::FullHandshake,
            ));
        }
        return cases;
    }
    let mut cases = vec![Case::new(&args.static_path, &args.static_path, Kind::Plain)];
    if !args.quick {
        cases.push(Case::new("/count", "/count", Kind::Plain));
    }
    cases
}

/// The pair both doors serve and the CA that trusts it.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

impl TlsFiles {
    pub fn write(work: &Path) -> Result<Self> {
        let dir = crate::dev_cert::write(&work.join("certs"), true)?;
        Ok(Self {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            ca: dir.join("ca.pem"),
        })
    }

    /// The balancer's flags for an HTTPS listener on `listen`.
    pub fn balancer_flags(&self, listen: SocketAddr) -> Vec<String> {
        vec![
            "--tls-listen".into(),
            listen.to_string(),
            "--tls-cert".into(),
            self.cert.display().to_string(),
            "--tls-key".into(),
            self.key.display().to_string(),
        ]
    }
}

/// Full handshakes one `openssl s_time -new` client completes on `addr` in `secs` seconds, each
/// with one `GET path`.
pub fn full_handshakes(addr: SocketAddr, path: &str, secs: u64) -> Result<u64> {
    let out = Command::new("openssl")
        .args(["s_time", "-connect", &addr.to_string(), "-new"])
        .args(["-time", &secs.to_string(), "-www", path])
        .stdin(Stdio::null())
        .output()
        .context("running openssl s_time")?;
    let text = String::from_utf8_lossy(&out.stdout);
    crate::tls_bench::s_time_connections(&text)
        .with_context(|| format!("openssl s_time -new printed no count: {text}"))
}
