//! HTTPS against the balancer: a test certificate authority and the pairs it signs (rcgen, ECDSA
//! P-256), a Rust TLS client that reports which certificate and protocol each handshake gave, and
//! the `curl` and `openssl s_client` runs the TLS tests make.
//!
//! Chains are written leaf first, then the CA, the way certbot's `fullchain.pem` is.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

/// Bound on one `curl` or `openssl` run.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(15);

/// A certificate authority made for one test, and a directory for the files it writes.
pub struct TestCa {
    key: KeyPair,
    cert: rcgen::Certificate,
    dir: tempfile::TempDir,
}

/// One signed pair, as PEM, plus the leaf in DER to compare with what a handshake presented.
#[derive(Clone)]
pub struct Leaf {
    pub chain_pem: String,
    pub key_pem: String,
    pub der: Vec<u8>,
}

fn validity(params: &mut CertificateParams, from_days: i64, to_days: i64) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now + time::Duration::days(from_days);
    params.not_after = now + time::Duration::days(to_days);
}

impl TestCa {
    pub fn new() -> TestCa {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "e2e test CA");
        validity(&mut params, -1, 30);
        let cert = params.self_signed(&key).expect("CA certificate");
        let dir = tempfile::Builder::new()
            .prefix("e2e-tls-")
            .tempdir()
            .expect("temp dir");
        std::fs::write(dir.path().join("ca.pem"), cert.pem()).expect("writing ca.pem");
        TestCa { key, cert, dir }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The CA certificate, for `curl --cacert` and `openssl -CAfile`.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A pair for `localhost` and `127.0.0.1`, valid from `from_days` to `to_days` from now.
    pub fn issue(&self, cn: &str, from_days: i64, to_days: i64) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, cn);
        validity(&mut params, from_days, to_days);
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("signing");
        Leaf {
            chain_pem: format!("{}{}", cert.pem(), self.cert.pem()),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }

    /// A valid pair for `cn`.
    pub fn valid(&self, cn: &str) -> Leaf {
        self.issue(cn, -1, 20)
    }

    /// Writes `leaf` as `<name>.crt` and `<name>.key` in the test's directory.
    pub fn write(&self, name: &str, leaf: &Leaf) -> (PathBuf, PathBuf) {
        let cert = self.dir.path().join(format!("{name}.crt"));
        let key = self.dir.path().join(format!("{name}.key"));
        write_pair(&cert, &key, &leaf.chain_pem, &leaf.key_pem);
        (cert, key)
    }

    /// A client configuration trusting this CA, offering `alpn`, without resumption: every
    /// handshake is a full one and sees the certificate served at that moment (a resumed session
    /// reports the certificate of the session it resumes).
    pub fn client_config(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(self.cert.der().to_vec()))
            .expect("CA into the root store");
        let mut config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        config.resumption = rustls::client::Resumption::disabled();
        Arc::new(config)
    }
}

impl Default for TestCa {
    fn default() -> Self {
        TestCa::new()
    }
}

/// Overwrites both files in place (as `cp` does: same inode, new contents).
pub fn write_pair(cert: &Path, key: &Path, cert_pem: &str, key_pem: &str) {
    std::fs::write(cert, cert_pem).unwrap_or_else(|e| panic!("writing {}: {e}", cert.display()));
    std::fs::write(key, key_pem).unwrap_or_else(|e| panic!("writing {}: {e}", key.display()));
}

/// What one HTTPS request over a fresh connection gave.
#[derive(Debug)]
pub struct HttpsReply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
    /// The leaf certificate the handshake presented (DER).
    pub leaf: Vec<u8>,
    pub alpn: Option<Vec<u8>>,
}

/// `GET path` on a new TLS connection to `addr` (SNI `localhost`), HTTP/2 or HTTP/1.1 as ALPN
/// chose, bounded by [`CLIENT_TIMEOUT`].
pub async fn https_get(
    addr: SocketAddr,
    path: &str,
    config: Arc<rustls::ClientConfig>,
) -> Result<HttpsReply> {
    tokio::time::timeout(CLIENT_TIMEOUT, https_get_unbounded(addr, path, config))
        .await
        .map_err(|_| anyhow!("no answer within {CLIENT_TIMEOUT:?}"))?
}

async fn https_get_unbounded(
    addr: SocketAddr,
    path: &str,
    config: Arc<rustls::ClientConfig>,
) -> Result<HttpsReply> {
    let tcp = TcpStream::connect(addr).await.context("connect")?;
    let name = ServerName::try_from("localhost").context("server name")?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .context("TLS handshake")?;
    let (_, conn) = tls.get_ref();
    let leaf = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .unwrap_or_default();
    let alpn = conn.alpn_protocol().map(<[u8]>::to_vec);
    let req = http::Request::get(format!("https://localhost{path}"))
        .header(http::header::HOST, format!("localhost:{}", addr.port()))
        .body(Empty::<Bytes>::new())?;
    let io = TokioIo::new(tls);
    let resp = if alpn.as_deref() == Some(b"h2") {
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
        tokio::spawn(conn);
        let (mut parts, body) = req.into_parts();
        parts.headers.remove(http::header::HOST);
        send.send_request(http::Request::from_parts(parts, body))
            .await?
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(conn);
        let (mut parts, body) = req.into_parts();
        parts.uri = http::Uri::try_from(path)?;
        send.send_request(http::Request::from_parts(parts, body))
            .await?
    };
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok(HttpsReply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        leaf,
        alpn,
    })
}

/// Runs `cmd` with `input` on stdin, killed after [`CLIENT_TIMEOUT`]; async, so servers running
/// on the test's own event loop (the test backends) keep answering meanwhile.
pub async fn run_bounded(cmd: Command, input: &[u8]) -> Output {
    let program = cmd.get_program().to_os_string();
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program:?}: {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        use tokio::io::AsyncWriteExt;
        let _ = stdin.write_all(input).await;
    }
    match tokio::time::timeout(CLIENT_TIMEOUT, child.wait_with_output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => panic!("waiting for {program:?}: {e}"),
        Err(_) => panic!("{program:?} did not finish within {CLIENT_TIMEOUT:?}"),
    }
}

/// `curl` with the test CA trusted, `--resolve localhost:PORT:127.0.0.1`, and `args`.
pub async fn curl(ca: &TestCa, addr: SocketAddr, args: &[&str]) -> Output {
    let mut cmd = Command::new("curl");
    cmd.args(["--silent", "--show-error", "--max-time", "10", "--cacert"])
        .arg(ca.ca_path())
        .arg("--resolve")
        .arg(format!("localhost:{}:{}", addr.port(), addr.ip()))
        .args(args);
    run_bounded(cmd, b"").await
}

/// `openssl s_client -connect addr -servername localhost -CAfile ca` plus `args`, with `input`.
pub async fn s_client(ca: &TestCa, addr: SocketAddr, args: &[&str], input: &[u8]) -> Output {
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect", &addr.to_string()])
        .args(["-servername", "localhost", "-CAfile"])
        .arg(ca.ca_path())
        .args(args);
    run_bounded(cmd, input).await
}

/// Both of a command's outputs, for assertions and failure messages.
pub fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The base64 SHA-256 of `leaf`'s public key, for Chromium's `--ignore-certificate-errors-spki-list`
/// (computed with the `openssl` CLI).
pub async fn spki_sha256_base64(cert_pem_path: &Path) -> String {
    let script = format!(
        "openssl x509 -in '{}' -pubkey -noout | openssl pkey -pubin -outform der \
         | openssl dgst -sha256 -binary | base64",
        cert_pem_path.display()
    );
    let mut sh = Command::new("sh");
    sh.args(["-c", &script]);
    let out = run_bounded(sh, b"").await;
    assert!(out.status.success(), "spki hash: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A balancer with `--tls-listen`, serving a pair of the test CA from files it may rewrite.
pub struct TlsFront {
    pub balancer: crate::Balancer,
    pub tls: SocketAddr,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFront {
    /// Starts a balancer in front of `upstreams` with a fresh `valid("first")` pair and `args`.
    pub async fn start(ca: &TestCa, upstreams: &str, args: &[&str]) -> TlsFront {
        let (cert, key) = ca.write("served", &ca.valid("first"));
        let tls = SocketAddr::from(([127, 0, 0, 1], crate::free_port()));
        let balancer = crate::Balancer::builder()
            .upstreams(upstreams)
            .env("BALANCER_TLS_LISTEN", &tls.to_string())
            .env("BALANCER_TLS_CERT", &cert.display().to_string())
            .env("BALANCER_TLS_KEY", &key.display().to_string())
            .args(args)
            .start()
            .await;
        TlsFront {
            balancer,
            tls,
            cert,
            key,
        }
    }

    pub fn https_url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.tls.port())
    }

    /// A counter or gauge from the admin `/metrics` whose line starts with `series` (summed over
    /// the matching lines), 0 when absent.
    pub async fn metric(&self, series: &str) -> f64 {
        let Ok(resp) = crate::http::get(&self.balancer.admin_url("/metrics")).await else {
            return 0.0;
        };
        resp.text()
            .lines()
            .filter(|l| l.starts_with(series))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

/// A finished handshake on a new connection, kept open (for idle-connection and keep-alive tests).
pub async fn handshake(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await.context("connect")?;
    let name = ServerName::try_from("localhost").context("server name")?;
    let tls = tokio::time::timeout(
        CLIENT_TIMEOUT,
        tokio_rustls::TlsConnector::from(config).connect(name, tcp),
    )
    .await
    .map_err(|_| anyhow!("handshake not done within {CLIENT_TIMEOUT:?}"))?
    .context("TLS handshake")?;
    Ok(tls)
}

/// An HTTP/2 connection over TLS (ALPN `h2`), for requests that must share one connection.
pub async fn h2_connection(
    addr: SocketAddr,
    ca: &TestCa,
) -> Result<hyper::client::conn::http2::SendRequest<Empty<Bytes>>> {
    let tls = handshake(addr, ca.client_config(&[b"h2"])).await?;
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await?;
    tokio::spawn(conn);
    Ok(send)
}

/// `GET path` on an open HTTP/2 connection; the status.
pub async fn h2_get(
    send: &mut hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    port: u16,
    path: &str,
) -> Result<u16> {
    let req =
        http::Request::get(format!("https://localhost:{port}{path}")).body(Empty::<Bytes>::new())?;
    let resp = tokio::time::timeout(CLIENT_TIMEOUT, send.send_request(req))
        .await
        .map_err(|_| anyhow!("no answer within {CLIENT_TIMEOUT:?}"))??;
    let status = resp.status().as_u16();
    resp.into_body().collect().await?;
    Ok(status)
}

fn push_u16(out: &mut Vec<u8>, v: usize) {
    out.extend_from_slice(&u16::try_from(v).unwrap_or(u16::MAX).to_be_bytes());
}

/// A hand-made TLS ClientHello (offering TLS 1.3's AES-128-GCM suite) whose SNI is `sni` and
/// which carries `extra` empty extensions of unknown types, split into records as TLS requires.
pub fn client_hello(sni: &str, extra: usize) -> Vec<u8> {
    let mut ext = Vec::new();
    let name = sni.as_bytes();
    let mut server_name = Vec::new();
    push_u16(&mut server_name, name.len() + 3);
    server_name.push(0);
    push_u16(&mut server_name, name.len());
    server_name.extend_from_slice(name);
    push_u16(&mut ext, 0x0000);
    push_u16(&mut ext, server_name.len());
    ext.extend_from_slice(&server_name);
    for i in 0..extra {
        push_u16(&mut ext, 0x1000 + i);
        push_u16(&mut ext, 0);
    }
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[7u8; 32]);
    body.push(0);
    body.extend_from_slice(&[0x00, 0x02, 0x13, 0x01, 0x01, 0x00]);
    push_u16(&mut body, ext.len());
    body.extend_from_slice(&ext);
    let mut handshake = vec![0x01];
    handshake.extend_from_slice(&u32::try_from(body.len()).unwrap_or(0).to_be_bytes()[1..]);
    handshake.extend_from_slice(&body);
    let mut records = Vec::new();
    for chunk in handshake.chunks(16_384) {
        records.extend_from_slice(&[0x16, 0x03, 0x01]);
        push_u16(&mut records, chunk.len());
        records.extend_from_slice(chunk);
    }
    records
}

/// The first flight a real rustls client sends (a valid ClientHello), for trickling.
pub fn real_client_hello(ca: &TestCa) -> Vec<u8> {
    let name = ServerName::try_from("localhost").expect("server name");
    let mut conn =
        rustls::ClientConnection::new(ca.client_config(&[b"h2"]), name).expect("client connection");
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).expect("ClientHello into a Vec");
    }
    out
}
