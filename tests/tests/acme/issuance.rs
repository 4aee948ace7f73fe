//! Certificates from pebble with real validation: first issuance over TLS-ALPN-01 and over
//! HTTP-01 while plain HTTP keeps serving, the chain verified by curl and `openssl s_client`
//! against pebble's issuing root; a restart that serves the stored certificate and orders
//! nothing; forced renewals swapped in live under load (new connections, none failing) and under
//! an open keep-alive connection.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use e2e::backends::echo_backend;
use e2e::pebble::{root_client_config, KeptConnection, Pebble, PebbleOptions};
use e2e::routes::{metric, status};
use e2e::tls::{run_bounded, text};
use e2e::{wait_until_async, Balancer};

/// The name certified: pebble's DNS answers it with 127.0.0.1.
pub const NAME: &str = "shop.acme-e2e.test";
/// How long an order may take against pebble on loopback.
const ISSUANCE: Duration = Duration::from_secs(60);
const OK_ORDERS: &str = "balancer_acme_orders_total{result=\"ok\"}";

/// A balancer in front of `upstream` with its plain listener on `http_port`, its TLS listener on
/// `tls_port`, ordering `NAME` from `pebble` into `state`.
pub async fn acme_balancer(
    pebble: &Pebble,
    upstream: SocketAddr,
    (http_port, tls_port): (u16, u16),
    state: &Path,
    extra: &[&str],
) -> Balancer {
    let tls = format!("127.0.0.1:{tls_port}");
    let (ca, state) = (
        pebble.acme_ca().display().to_string(),
        state.display().to_string(),
    );
    Balancer::builder()
        .port(http_port)
        .backends(&[upstream])
        .args(&["--tls-listen", &tls, "--acme-domain", NAME])
        .args(&["--acme-email", "ops@acme-e2e.test"])
        // By its variable, so a test's `--acme-directory` wins.
        .env("BALANCER_ACME_DIRECTORY", &pebble.directory)
        .args(&["--acme-ca", &ca])
        .args(&["--acme-state", &state])
        .args(extra)
        .start()
        .await
}

/// Waits until `count` orders succeeded; fails with `/status` otherwise.
pub async fn wait_orders(balancer: &Balancer, count: f64) {
    let done = wait_until_async(ISSUANCE, || async {
        metric(balancer, OK_ORDERS).await >= count
    })
    .await;
    assert!(
        done,
        "{count} ACME orders not done within {ISSUANCE:?}: {}",
        status(balancer).await["acme"]
    );
}

/// curl over HTTPS as `NAME`, trusting only `root`: the status line and the issuer.
pub async fn curl_as_name(tls_port: u16, root: &Path) -> String {
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-sS", "--max-time", "10", "-o", "/dev/null", "--cacert"])
        .arg(root)
        .arg("--resolve")
        .arg(format!("{NAME}:{tls_port}:127.0.0.1"))
        .args(["-w", "%{http_code} %{ssl_verify_result}"])
        .arg(format!("https://{NAME}:{tls_port}/hdr"));
    text(&run_bounded(cmd, b"").await)
}

/// Issues over `challenge` and checks the chain with curl and openssl.
async fn first_issuance(challenge: &str) {
    let echo = echo_backend().await;
    let ports = (e2e::free_port(), e2e::free_port());
    let pebble = Pebble::start(ports.0, ports.1, &PebbleOptions::default()).expect("pebble");
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("acme");
    let extra = ["--acme-challenge", challenge];
    let began = std::time::Instant::now();
    let mut balancer = acme_balancer(&pebble, echo.addr, ports, &state, &extra).await;
    // Plain HTTP serves while the order runs.
    let plain = e2e::http::get(&balancer.url("/hdr"))
        .await
        .expect("plain HTTP");
    assert_eq!(plain.status, 200);
    wait_orders(&balancer, 1.0).await;
    eprintln!(
        "{challenge}: first certificate within {:?} of the start",
        began.elapsed()
    );
    let root = pebble.issuing_root().await.expect("pebble's root");
    let curl = curl_as_name(ports.1, &root).await;
    assert!(curl.starts_with("200 0"), "curl over HTTPS: {curl}");
    let mut cmd = std::process::Command::new("openssl");
    cmd.args(["s_client", "-connect", &format!("127.0.0.1:{}", ports.1)])
        .args(["-servername", NAME, "-verify_return_error", "-CAfile"])
        .arg(&root);
    let out = text(&run_bounded(cmd, b"").await);
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    assert!(
        out.contains("Pebble Intermediate"),
        "the chain has pebble's intermediate: {out}"
    );
    let acme = &status(&balancer).await["acme"][0];
    assert_eq!(acme["name"], NAME, "{acme}");
    assert!(
        acme["issuer"].as_str().unwrap_or("").contains("Pebble"),
        "{acme}"
    );
    assert_private(&state);
    let log = balancer.process().log();
    assert!(log.contains("ACME certificate obtained"), "{log}");
    assert!(!log.contains("PRIVATE KEY"), "a key in the log: {log}");
    if challenge == "tls-alpn-01" {
        // pebble's validation handshakes, answered with the challenge certificate.
        let metrics = e2e::http::get(&balancer.admin_url("/metrics"))
            .await
            .expect("metrics");
        let validations = metrics
            .text()
            .lines()
            .filter(|l| l.starts_with("balancer_tls_handshakes_total") && l.contains("acme-tls/1"))
            .count();
        assert!(
            validations >= 1,
            "no acme-tls/1 handshake: {}",
            metrics.text()
        );
    }
}

/// The state directory is 0700 and the key 0600.
fn assert_private(state: &Path) {
    let mode = |p: PathBuf| std::fs::metadata(&p).map(|m| m.permissions().mode() & 0o777);
    assert_eq!(mode(state.to_path_buf()).unwrap(), 0o700);
    assert_eq!(mode(state.join(format!("{NAME}.key"))).unwrap(), 0o600);
    assert_eq!(mode(state.join("account.json")).unwrap(), 0o600);
}

#[tokio::test]
async fn tls_alpn_01_issues_a_certificate_that_chains_to_pebbles_root() {
    first_issuance("tls-alpn-01").await;
}

#[tokio::test]
async fn http_01_issues_a_certificate_that_chains_to_pebbles_root() {
    first_issuance("http-01").await;
}

#[tokio::test]
async fn a_restart_serves_the_stored_certificate_and_places_no_order() {
    let echo = echo_backend().await;
    let ports = (e2e::free_port(), e2e::free_port());
    let pebble = Pebble::start(ports.0, ports.1, &PebbleOptions::default()).expect("pebble");
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("acme");
    let mut first = acme_balancer(&pebble, echo.addr, ports, &state, &[]).await;
    wait_orders(&first, 1.0).await;
    first.process().stop(Duration::from_secs(10));
    drop(first);
    let second = acme_balancer(&pebble, echo.addr, ports, &state, &[]).await;
    let root = pebble.issuing_root().await.expect("pebble's root");
    // HTTPS at once, from the stored pair.
    let curl = curl_as_name(ports.1, &root).await;
    assert!(
        curl.starts_with("200 0"),
        "curl over HTTPS after the restart: {curl}"
    );
    let scheduled = wait_until_async(Duration::from_secs(5), || async {
        !status(&second).await["acme"][0]["next_attempt"].is_null()
    })
    .await;
    let acme = status(&second).await["acme"][0].clone();
    assert!(scheduled, "no next attempt scheduled: {acme}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let next = acme["next_attempt"].as_i64().unwrap_or(0);
    assert!(
        next > now + 86_400,
        "renewal not due for a long while: {acme}"
    );
    assert_eq!(acme["orders"], 0, "{acme}");
    assert_eq!(metric(&second, "balancer_acme_orders_total").await, 0.0);
}

#[tokio::test]
async fn a_forced_renewal_is_served_live_and_an_open_connection_keeps_working() {
    let echo = echo_backend().await;
    let ports = (e2e::free_port(), e2e::free_port());
    let pebble = Pebble::start(ports.0, ports.1, &PebbleOptions::default()).expect("pebble");
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("acme");
    let first = acme_balancer(&pebble, echo.addr, ports, &state, &[]).await;
    wait_orders(&first, 1.0).await;
    drop(first);
    // Renewal due at once (longer than the lifetime): the hourly cap allows 3 orders.
    let extra = ["--acme-renew-before", "3650d"];
    let balancer = acme_balancer(&pebble, echo.addr, ports, &state, &extra).await;
    let root = pebble.issuing_root().await.expect("pebble's root");
    let config = root_client_config(&root).expect("client config");
    let tls = SocketAddr::from(([127, 0, 0, 1], ports.1));
    let mut kept = KeptConnection::open(tls, NAME, config.clone())
        .await
        .expect("HTTPS from the stored certificate");
    assert_eq!(kept.get("/hdr").await.expect("first request"), 200);
    let load = RenewalLoad::start(tls, config.clone());
    // A renewal swapped in after the connection was opened: new handshakes get a new leaf.
    let swapped = wait_until_async(ISSUANCE, || async {
        KeptConnection::open(tls, NAME, config.clone())
            .await
            .is_ok_and(|c| c.leaf != kept.leaf)
    })
    .await;
    assert!(
        swapped,
        "no renewed certificate served: {}",
        status(&balancer).await["acme"]
    );
    // Every renewal the hourly cap allows (3), under the load.
    wait_orders(&balancer, 3.0).await;
    let (ok, failed) = load.stop().await;
    assert!(ok > 0 && failed.is_empty(), "{ok} ok, failed: {failed:?}");
    eprintln!("3 renewals under load: {ok} requests on new connections, 0 failed");
    assert_eq!(kept.get("/hdr").await.expect("the open connection"), 200);
    assert_eq!(
        metric(&balancer, "balancer_acme_orders_total{result=\"failed\"}").await,
        0.0
    );
}

/// Clients opening a new HTTPS connection per request, as `NAME`, until stopped.
struct RenewalLoad {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<(usize, Vec<String>)>>,
}

impl RenewalLoad {
    fn start(tls: SocketAddr, config: Arc<rustls::ClientConfig>) -> RenewalLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..2)
            .map(|_| {
                let (stop, config) = (stop.clone(), config.clone());
                tokio::spawn(async move {
                    let (mut ok, mut failed) = (0, Vec::new());
                    while !stop.load(Ordering::Relaxed) {
                        let reply = match KeptConnection::open(tls, NAME, config.clone()).await {
                            Ok(mut c) => c.get("/hdr").await,
                            Err(e) => Err(e),
                        };
                        match reply {
                            Ok(200) => ok += 1,
                            other => failed.push(format!("{other:?}")),
                        }
                    }
                    (ok, failed)
                })
            })
            .collect();
        RenewalLoad { stop, tasks }
    }

    /// Stops the clients; the requests that succeeded and the failures.
    async fn stop(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let (mut ok, mut failed) = (0, Vec::new());
        for task in self.tasks {
            let (o, f) = task.await.expect("a load task");
            ok += o;
            failed.extend(f);
        }
        (ok, failed)
    }
}
