//! TLS on the front door: loading and checking a certificate/key pair, the rustls server
//! configuration, the live certificate every handshake uses, and the TLS metrics.
//!
//! rustls with the aws-lc-rs provider (rustls' default; see docs/PERFORMANCE.md for why): TLS 1.2
//! and 1.3 only, the provider's default cipher suites, ALPN `h2` then `http/1.1`, resumption by
//! both tickets (stateless, keys rotated every 6 h by rustls) and a bounded session-ID cache.
//!
//! The pair lives in a [`CertStore`] that is the configuration's certificate resolver, so a
//! reload ([`CertStore::install`], driven by `tls_reload`) changes what the next handshake
//! presents without touching the configuration, the ticket keys or any open connection.
//! A pair is checked before it is installed: PEM that parses, a key that matches the leaf's
//! public key, a leaf that is valid now. At start a bad pair ends the process (exit 2, one line
//! naming the flag); at a reload it is refused and the old pair keeps serving.

use shared::sync::{lock, read_lock, write_lock};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, ServerSessionMemoryCache};
use rustls::sign::CertifiedKey;
use rustls::{HandshakeKind, ProtocolVersion, ServerConfig};
use serde::Serialize;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::front::sni::{self, NamedCerts};

/// TLS sessions remembered for session-ID resumption (TLS 1.2 clients without tickets, and TLS 1.3
/// stateful resumption); about 200 bytes each, shared by all workers. Tickets need no memory.
pub const SESSION_CACHE_ENTRIES: usize = 8192;

/// What is wrong with a certificate/key pair; the flag it is reported under is [`PairError::flag`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PairError {
    CertUnreadable(String),
    CertInvalid(String),
    KeyUnreadable(String),
    KeyInvalid(String),
    Mismatch,
    Expired(String),
    NotYetValid(String),
}

impl PairError {
    /// The flag the reason belongs to.
    pub fn flag(&self) -> &'static str {
        match self {
            PairError::KeyUnreadable(_) | PairError::KeyInvalid(_) | PairError::Mismatch => {
                "--tls-key"
            }
            _ => "--tls-cert",
        }
    }
}

impl std::fmt::Display for PairError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PairError::CertUnreadable(why) => write!(f, "cannot read the certificate: {why}"),
            PairError::CertInvalid(why) => write!(f, "not a usable PEM certificate chain: {why}"),
            PairError::KeyUnreadable(why) => write!(f, "cannot read the private key: {why}"),
            PairError::KeyInvalid(why) => write!(f, "not a usable PEM private key: {why}"),
            PairError::Mismatch => {
                f.write_str("the private key does not match the certificate's public key")
            }
            PairError::Expired(when) => write!(f, "the certificate expired on {when}"),
            PairError::NotYetValid(when) => write!(f, "the certificate is not valid before {when}"),
        }
    }
}

/// What the admin status and the dashboard show about the certificate being served.
#[derive(Debug, Clone, Serialize)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    /// Unix seconds.
    pub not_after: i64,
    pub not_after_text: String,
    /// Certificates in the chain, leaf first.
    pub chain_length: usize,
}

/// A checked pair, ready to serve.
pub struct Pair {
    pub key: Arc<CertifiedKey>,
    pub info: CertInfo,
}

/// Where the pair comes from.
#[derive(Debug, Clone)]
pub struct PairFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Parses the PEM chain (leaf first).
fn parse_chain(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, PairError> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PairError::CertInvalid(e.to_string()))?;
    if chain.is_empty() {
        return Err(PairError::CertInvalid("no CERTIFICATE section".into()));
    }
    Ok(chain)
}

/// Reads the leaf's subject, issuer and validity, and refuses a leaf not valid at `now`.
fn leaf_info(chain: &[CertificateDer<'static>], now: SystemTime) -> Result<CertInfo, PairError> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, leaf) = X509Certificate::from_der(chain[0].as_ref())
        .map_err(|e| PairError::CertInvalid(format!("leaf certificate: {e}")))?;
    let validity = leaf.validity();
    let now = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let not_after = validity.not_after.timestamp();
    let not_after_text = validity.not_after.to_string();
    if now > not_after {
        return Err(PairError::Expired(not_after_text));
    }
    if now < validity.not_before.timestamp() {
        return Err(PairError::NotYetValid(validity.not_before.to_string()));
    }
    Ok(CertInfo {
        subject: leaf.subject().to_string(),
        issuer: leaf.issuer().to_string(),
        not_after,
        not_after_text,
        chain_length: chain.len(),
    })
}

/// Loads and checks the pair at `files` (see the module doc), as of `now`.
pub fn load_pair(files: &PairFiles, now: SystemTime) -> Result<Pair, PairError> {
    let cert_pem = read(&files.cert).map_err(PairError::CertUnreadable)?;
    let chain = parse_chain(&cert_pem)?;
    let info = leaf_info(&chain, now)?;
    let key_pem = read(&files.key).map_err(PairError::KeyUnreadable)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| PairError::KeyInvalid(e.to_string()))?;
    let key = CertifiedKey::from_der(chain, key, &crypto::provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => PairError::Mismatch,
        other => PairError::KeyInvalid(other.to_string()),
    })?;
    Ok(Pair {
        key: Arc::new(key),
        info,
    })
}

/// A pair from DER, checked with the listener's crypto provider (the key matches the leaf).
pub fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<CertifiedKey, rustls::Error> {
    CertifiedKey::from_der(chain, key, &crypto::provider())
}

/// A pair from DER whose leaf is not checked (the TLS-ALPN-01 certificate carries a critical
/// extension the checker does not know); the key is still loaded by the provider.
pub fn certified_key_unchecked(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<CertifiedKey, rustls::Error> {
    let key = crypto::provider().key_provider.load_private_key(key)?;
    Ok(CertifiedKey::new(chain, key))
}

/// The last reload attempt, for the status page.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadRecord {
    /// Unix seconds.
    pub at: u64,
    /// "ok" or "refused".
    pub outcome: &'static str,
    pub error: Option<String>,
}

/// The pair handshakes use now, swapped whole by a reload.
#[derive(Debug)]
pub struct CertStore {
    current: RwLock<Arc<CertifiedKey>>,
    info: RwLock<CertInfo>,
    last_reload: Mutex<Option<ReloadRecord>>,
    pub files: PairFiles,
}

impl std::fmt::Debug for Pair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pair").field("info", &self.info).finish()
    }
}

impl CertStore {
    pub fn new(pair: Pair, files: PairFiles) -> Self {
        CertStore {
            current: RwLock::new(pair.key),
            info: RwLock::new(pair.info),
            last_reload: Mutex::new(None),
            files,
        }
    }

    /// Serves `pair` from the next handshake on.
    pub fn install(&self, pair: Pair) {
        *write_lock(&self.current) = pair.key;
        *write_lock(&self.info) = pair.info;
    }

    pub fn info(&self) -> CertInfo {
        read_lock(&self.info).clone()
    }

    pub fn record_reload(&self, record: ReloadRecord) {
        *lock(&self.last_reload) = Some(record);
    }

    pub fn last_reload(&self) -> Option<ReloadRecord> {
        lock(&self.last_reload).clone()
    }

    /// Seconds until the served certificate expires (negative once it has).
    pub fn expires_in(&self, now: SystemTime) -> i64 {
        let now = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        read_lock(&self.info).not_after - now
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(read_lock(&self.current).clone())
    }
}

/// The crypto provider: aws-lc-rs (the default), or ring with the `ring` cargo feature, which
/// exists only for the A/B measurement in docs/PERFORMANCE.md ("aws-lc-rs or ring").
#[cfg(not(feature = "ring"))]
mod crypto {
    pub use rustls::crypto::aws_lc_rs::{default_provider as provider, Ticketer};
}
#[cfg(feature = "ring")]
mod crypto {
    pub use rustls::crypto::ring::{default_provider as provider, Ticketer};
}

/// The rustls configuration of the TLS listener, presenting what `resolver` picks; with
/// `acme_alpn` it also accepts ALPN `acme-tls/1` (TLS-ALPN-01 validation, `front::sni`).
pub fn server_config(
    resolver: Arc<dyn ResolvesServerCert>,
    acme_alpn: bool,
) -> Result<ServerConfig, rustls::Error> {
    let provider = Arc::new(crypto::provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    if acme_alpn {
        config.alpn_protocols.push(sni::ACME_TLS_ALPN.to_vec());
    }
    config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES);
    config.ticketer = crypto::Ticketer::new()?;
    Ok(config)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HandshakeLabels {
    /// "ok", "failed" (a TLS error: not TLS, bad or unsupported ClientHello), "closed" (the
    /// connection went away mid-handshake) or "timeout" (`--header-read-timeout`).
    pub outcome: &'static str,
    /// "TLSv1.3", "TLSv1.2" or "none".
    pub version: &'static str,
    /// "h2", "http/1.1" or "none".
    pub alpn: &'static str,
    /// "full", "resumed" or "none".
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// "ok" or "refused".
    pub outcome: &'static str,
}

/// `balancer_tls_handshakes_total`, `balancer_tls_reloads_total` and
/// `balancer_tls_certificate_expiry_seconds`.
#[derive(Clone)]
pub struct TlsMetrics {
    pub handshakes: Family<HandshakeLabels, Counter>,
    pub reloads: Family<ReloadLabels, Counter>,
}

impl TlsMetrics {
    pub fn register(
        registry: &mut Registry,
        store: Option<Arc<CertStore>>,
        named: Option<Arc<dyn NamedCerts>>,
    ) -> Self {
        let metrics = TlsMetrics {
            handshakes: Family::default(),
            reloads: Family::default(),
        };
        registry.register(
            "tls_handshakes",
            "TLS handshakes on --tls-listen, by outcome, version, ALPN protocol and kind",
            metrics.handshakes.clone(),
        );
        registry.register(
            "tls_reloads",
            "Certificate reloads (SIGHUP or changed files), by outcome",
            metrics.reloads.clone(),
        );
        registry.register_collector(Box::new(ExpiryGauge { store, named }));
        metrics
    }
}

/// `balancer_tls_certificate_expiry_seconds{name}`, computed at each scrape: `name` is the ACME
/// name, or `tls-cert` for the `--tls-cert` pair.
#[derive(Debug)]
struct ExpiryGauge {
    store: Option<Arc<CertStore>>,
    named: Option<Arc<dyn NamedCerts>>,
}

impl prometheus_client::collector::Collector for ExpiryGauge {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::gauge::ConstGauge;
        let now = SystemTime::now();
        let mut series: Vec<(String, i64)> = Vec::new();
        if let Some(store) = &self.store {
            series.push(("tls-cert".into(), store.expires_in(now)));
        }
        if let Some(named) = &self.named {
            let now = unix_seconds(now);
            series.extend(named.expiries().into_iter().map(|(n, at)| (n, at - now)));
        }
        let mut metric = encoder.encode_descriptor(
            "tls_certificate_expiry_seconds",
            "Seconds until the served certificate expires, by name (tls-cert: the --tls-cert pair)",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (name, left) in series {
            let labels = [("name", name)];
            ConstGauge::new(left).encode(metric.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// Unix seconds of `at` (0 before the epoch).
pub fn unix_seconds(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Waits, for at most `timeout`, until the client has sent something after the handshake; false
/// when it sent nothing in time (or the connection broke). Like the plain listener's sniffing:
/// an idle HTTP/1.1 connection then holds no HTTP read buffer (hyper allocates 8 KiB on its
/// first read), and a client that never sends a request is closed at the header timeout.
/// Data rustls already decrypted (a request that came with the client's Finished) counts.
pub async fn wait_for_request(tls: &mut TlsStream<TcpStream>, timeout: Duration) -> bool {
    let (tcp, conn) = tls.get_mut();
    match conn.process_new_packets() {
        Ok(state) if state.plaintext_bytes_to_read() > 0 || state.peer_has_closed() => return true,
        Ok(_) => {}
        Err(_) => return false,
    }
    matches!(
        tokio::time::timeout(timeout, tcp.readable()).await,
        Ok(Ok(()))
    )
}

/// The negotiated HTTP protocol of a TLS connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alpn {
    H2,
    Http1,
}

/// The TLS listener's per-connection side: the acceptor, the `Strict-Transport-Security` value,
/// the metrics.
pub struct TlsDoor {
    pub acceptor: TlsAcceptor,
    pub hsts: Option<http::HeaderValue>,
    pub metrics: TlsMetrics,
}

impl TlsDoor {
    pub fn new(config: ServerConfig, hsts: Option<Duration>, metrics: TlsMetrics) -> Self {
        let hsts = hsts.and_then(|max_age| {
            http::HeaderValue::from_str(&format!("max-age={}", max_age.as_secs())).ok()
        });
        TlsDoor {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            hsts,
            metrics,
        }
    }

    /// The handshake, bounded by `timeout`; counted by outcome. `None` when it failed.
    pub async fn accept(
        &self,
        stream: TcpStream,
        timeout: Duration,
    ) -> Option<(TlsStream<TcpStream>, Alpn)> {
        let none = HandshakeLabels {
            outcome: "failed",
            version: "none",
            alpn: "none",
            kind: "none",
        };
        let tls = match tokio::time::timeout(timeout, self.acceptor.accept(stream)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "TLS handshake failed");
                // rustls' verdicts come as InvalidData; anything else is the connection going
                // away (often a client that left right after its Finished, before the tickets).
                let outcome = if e.kind() == std::io::ErrorKind::InvalidData {
                    "failed"
                } else {
                    "closed"
                };
                let labels = HandshakeLabels { outcome, ..none };
                self.metrics.handshakes.get_or_create(&labels).inc();
                return None;
            }
            Err(_) => {
                let timeout = HandshakeLabels {
                    outcome: "timeout",
                    ..none
                };
                self.metrics.handshakes.get_or_create(&timeout).inc();
                return None;
            }
        };
        let (_, conn) = tls.get_ref();
        if conn.alpn_protocol() == Some(sni::ACME_TLS_ALPN) {
            // A TLS-ALPN-01 validation: the handshake was the answer; no HTTP follows.
            let labels = HandshakeLabels {
                outcome: "ok",
                alpn: "acme-tls/1",
                ..none
            };
            self.metrics.handshakes.get_or_create(&labels).inc();
            return None;
        }
        let alpn = match conn.alpn_protocol() {
            Some(b"h2") => Alpn::H2,
            _ => Alpn::Http1,
        };
        let labels = HandshakeLabels {
            outcome: "ok",
            version: match conn.protocol_version() {
                Some(ProtocolVersion::TLSv1_3) => "TLSv1.3",
                Some(ProtocolVersion::TLSv1_2) => "TLSv1.2",
                _ => "none",
            },
            alpn: match conn.alpn_protocol() {
                Some(b"h2") => "h2",
                Some(b"http/1.1") => "http/1.1",
                _ => "none",
            },
            kind: match conn.handshake_kind() {
                Some(HandshakeKind::Resumed) => "resumed",
                Some(_) => "full",
                None => "none",
            },
        };
        self.metrics.handshakes.get_or_create(&labels).inc();
        Some((tls, alpn))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed pair for `localhost`, valid over `years` (from, to), as PEM strings.
    fn pair_pem(from: i32, to: i32) -> (String, String) {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.not_before = rcgen::date_time_ymd(from, 1, 1);
        params.not_after = rcgen::date_time_ymd(to, 1, 1);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "unit test");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn write_pair(dir: &Path, cert: &str, key: &str) -> PairFiles {
        let files = PairFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        std::fs::write(&files.cert, cert).unwrap();
        std::fs::write(&files.key, key).unwrap();
        files
    }

    #[test]
    fn a_good_pair_loads_with_its_subject_and_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair_pem(2020, 2090);
        let pair = load_pair(&write_pair(dir.path(), &cert, &key), SystemTime::now()).unwrap();
        assert_eq!(pair.info.subject, "CN=unit test");
        assert_eq!(pair.info.chain_length, 1);
        let store = CertStore::new(pair, write_pair(dir.path(), &cert, &key));
        let left = store.expires_in(SystemTime::now());
        assert!(left > 60 * 365 * 86_400, "{left}");
    }

    #[test]
    fn each_broken_pair_is_refused_under_its_flag() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let (cert, key) = pair_pem(2020, 2090);
        let (_, other_key) = pair_pem(2020, 2090);
        let (old_cert, old_key) = pair_pem(2000, 2001);
        let (new_cert, new_key) = pair_pem(2080, 2090);
        let cases: Vec<(String, String, &str, &str)> = vec![
            (cert.clone(), other_key, "--tls-key", "does not match"),
            (old_cert, old_key, "--tls-cert", "expired"),
            (new_cert, new_key, "--tls-cert", "not valid before"),
            (
                "garbage".into(),
                key.clone(),
                "--tls-cert",
                "no CERTIFICATE",
            ),
            (
                cert.clone(),
                "garbage".into(),
                "--tls-key",
                "usable PEM private key",
            ),
        ];
        for (c, k, flag, why) in cases {
            let e = load_pair(&write_pair(dir.path(), &c, &k), now).unwrap_err();
            assert_eq!(e.flag(), flag, "{e}");
            assert!(e.to_string().contains(why), "{e}");
        }
        let missing = PairFiles {
            cert: dir.path().join("nope.pem"),
            key: dir.path().join("key.pem"),
        };
        let e = load_pair(&missing, now).unwrap_err();
        assert!(matches!(e, PairError::CertUnreadable(_)), "{e}");
        let missing_key = PairFiles {
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("nope.pem"),
        };
        let e = load_pair(&missing_key, now).unwrap_err();
        assert_eq!(e.flag(), "--tls-key");
    }

    #[test]
    fn the_configuration_offers_h2_first_and_resumption() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair_pem(2020, 2090);
        let files = write_pair(dir.path(), &cert, &key);
        let store = Arc::new(CertStore::new(
            load_pair(&files, SystemTime::now()).unwrap(),
            files,
        ));
        let config = server_config(store, false).unwrap();
        assert_eq!(config.alpn_protocols[0], b"h2");
        assert!(config.ticketer.enabled());
    }
}
