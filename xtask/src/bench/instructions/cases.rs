//! What `cargo xtask bench --instructions` measures: the cases (a path over plain HTTP, or with
//! `--tls` the HTTPS cases) and what each needs beyond the plain run.
//!
//! With `--tls` both doors get the same ECDSA P-256 pair ([`TlsFiles`](crate::bench::tls_files))
//! on an HTTPS listener (`--tls-listen`; NGINX's `ssl http2` listener from
//! [`with_tls`](crate::stack::nginx::with_tls)), and callgrind counts instructions per
//! keep-alive `/count` over HTTP/1.1+TLS and over HTTP/2+TLS (oha) and per full handshake
//! (`openssl s_time -new`: a new connection, a full handshake and one `GET` of the static path
//! each). Counting, unlike handshakes/s or CPU seconds on this shared
//! machine, gives the same figure run after run, so it judges an A/B (the crypto provider, an h2
//! setting) by a number.

use std::net::SocketAddr;
use std::path::Path;

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
