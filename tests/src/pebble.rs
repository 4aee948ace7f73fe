//! Let's Encrypt's ACME test server, `pebble` (Debian package `pebble`), on loopback, for the
//! balancer's automatic HTTPS tests: a real ACME server that really validates the challenges.
//!
//! [`Pebble::start`] runs `pebble-challtestsrv` as the DNS server answering every name with
//! 127.0.0.1 (A only), and `pebble` with a generated configuration: its own TLS certificate from a
//! throwaway [`TestCa`] (the balancer trusts it through `--acme-ca`), and its `httpPort`/`tlsPort`
//! set to the balancer's plain and TLS ports, so HTTP-01 and TLS-ALPN-01 are validated against the
//! balancer itself. `PEBBLE_VA_NOSLEEP=1` removes pebble's random validation delay;
//! `PEBBLE_VA_ALWAYS_VALID` is never set; authorization reuse and nonce rejection are off unless
//! a test asks for them ([`PebbleOptions`]). Both processes are killed on drop. [`KeptConnection`]
//! is the HTTPS client side: a keep-alive connection by server name, verified against pebble's root.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};

use crate::process::Process;
use crate::tls::TestCa;

/// How long pebble may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// What a test may change about pebble.
#[derive(Debug, Clone, Default)]
pub struct PebbleOptions {
    /// `PEBBLE_WFE_NONCEREJECT`: the percentage of good nonces refused with `badNonce` (0 here).
    pub nonce_reject_percent: u8,
    /// The address the DNS answers every name with (127.0.0.1 when unset).
    pub dns_answer: Option<String>,
}

/// A running pebble and its DNS server.
pub struct Pebble {
    pub process: Process,
    _dns: Process,
    pub ca: TestCa,
    /// The ACME directory, `https://localhost:PORT/dir`.
    pub directory: String,
    /// Pebble's management API (`/roots/0`, `/intermediates/0`).
    pub management: SocketAddr,
}

fn is_listening(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

impl Pebble {
    /// Starts pebble validating HTTP-01 against `http_port` and TLS-ALPN-01 against `tls_port`
    /// (the balancer's `--listen` and `--tls-listen` ports on 127.0.0.1).
    pub fn start(http_port: u16, tls_port: u16, options: &PebbleOptions) -> Result<Pebble> {
        for bin in ["pebble", "pebble-challtestsrv"] {
            if !Command::new("sh")
                .args(["-c", &format!("command -v {bin}")])
                .output()
                .is_ok_and(|o| o.status.success())
            {
                bail!("`{bin}` is not installed (Debian package `pebble`, installed by .ci/run)");
            }
        }
        let ca = TestCa::new();
        let (cert, key) = ca.write("pebble", &ca.valid("pebble"));
        let (listen, management, dns, dns_admin) = (
            loopback(crate::free_port()),
            loopback(crate::free_port()),
            loopback(crate::free_port()),
            loopback(crate::free_port()),
        );
        let mut dns_cmd = Command::new("pebble-challtestsrv");
        dns_cmd.args([
            "-dns01",
            &dns.to_string(),
            "-management",
            &dns_admin.to_string(),
        ]);
        dns_cmd.args(["-http01", "", "-https01", "", "-tlsalpn01", ""]);
        let answer = options.dns_answer.as_deref().unwrap_or("127.0.0.1");
        dns_cmd.args(["-defaultIPv4", answer, "-defaultIPv6", ""]);
        let mut dns_process = Process::spawn("pebble-challtestsrv", dns_cmd)?;
        dns_process.wait_ready("its management port", START_TIMEOUT, || {
            is_listening(dns_admin)
        })?;
        let config = serde_json::json!({ "pebble": {
            "listenAddress": listen.to_string(),
            "managementListenAddress": management.to_string(),
            "certificate": cert.display().to_string(),
            "privateKey": key.display().to_string(),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        let config_path: PathBuf = ca.dir().join("pebble-config.json");
        std::fs::write(&config_path, config.to_string()).context("writing pebble's config")?;
        let mut cmd = Command::new("pebble");
        cmd.args(["-config", &config_path.display().to_string()]);
        cmd.args(["-dnsserver", &dns.to_string()]);
        cmd.env("PEBBLE_VA_NOSLEEP", "1")
            .env_remove("PEBBLE_VA_ALWAYS_VALID")
            .env("PEBBLE_AUTHZREUSE", "0")
            .env(
                "PEBBLE_WFE_NONCEREJECT",
                options.nonce_reject_percent.to_string(),
            );
        let mut process = Process::spawn("pebble", cmd)?;
        process.wait_ready("its ACME and management ports", START_TIMEOUT, || {
            is_listening(listen) && is_listening(management)
        })?;
        Ok(Pebble {
            process,
            _dns: dns_process,
            ca,
            directory: format!("https://localhost:{}/dir", listen.port()),
            management,
        })
    }

    /// The path of pebble's own TLS root, for the balancer's `--acme-ca`.
    pub fn acme_ca(&self) -> PathBuf {
        self.ca.ca_path()
    }

    /// Fetches pebble's issuing root (`/roots/0` of the management API, a fresh one at every
    /// start of pebble) and writes it to the test directory; returns its path, for `curl --cacert`.
    pub async fn issuing_root(&self) -> Result<PathBuf> {
        let url = format!("https://localhost:{}/roots/0", self.management.port());
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--fail", "--cacert"])
            .arg(self.ca.ca_path())
            .arg(&url);
        let out = crate::tls::run_bounded(cmd, b"").await;
        if !out.status.success() {
            bail!("GET {url}: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        let path = self.ca.dir().join("pebble-root.pem");
        std::fs::write(&path, &out.stdout).context("writing pebble's root")?;
        Ok(path)
    }
}

/// A client configuration trusting only the PEM root at `root` (pebble's issuing root), offering
/// HTTP/1.1, without resumption (every handshake sees the certificate served at that moment).
pub fn root_client_config(root: &std::path::Path) -> Result<Arc<rustls::ClientConfig>> {
    use rustls::pki_types::pem::PemObject;
    let der = rustls::pki_types::CertificateDer::from_pem_file(root)
        .with_context(|| format!("reading {}", root.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der).context("the root into the store")?;
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

/// An open HTTP/1.1 keep-alive connection over TLS with SNI `name`, and the leaf it was given.
pub struct KeptConnection {
    send: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    pub leaf: Vec<u8>,
    name: String,
}

impl KeptConnection {
    /// Connects to `addr` as `name` (the handshake must verify against `config`'s roots).
    pub async fn open(
        addr: SocketAddr,
        name: &str,
        config: Arc<rustls::ClientConfig>,
    ) -> Result<KeptConnection> {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .context("connect")?;
        let server_name = rustls::pki_types::ServerName::try_from(name.to_owned())?;
        let tls = tokio::time::timeout(
            crate::tls::CLIENT_TIMEOUT,
            tokio_rustls::TlsConnector::from(config).connect(server_name, tcp),
        )
        .await
        .context("handshake timed out")?
        .context("TLS handshake")?;
        let leaf = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.to_vec())
            .unwrap_or_default();
        let (send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await?;
        tokio::spawn(conn);
        Ok(KeptConnection {
            send,
            leaf,
            name: name.to_owned(),
        })
    }

    /// `GET path` on this connection; the status.
    pub async fn get(&mut self, path: &str) -> Result<u16> {
        let req = http::Request::get(path)
            .header(http::header::HOST, &self.name)
            .body(Empty::<Bytes>::new())?;
        let resp = tokio::time::timeout(crate::tls::CLIENT_TIMEOUT, self.send.send_request(req))
            .await
            .context("no answer in time")??;
        let status = resp.status().as_u16();
        resp.into_body().collect().await?;
        Ok(status)
    }
}
