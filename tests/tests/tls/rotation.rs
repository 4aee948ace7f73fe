//! Certificate rotation under HTTPS load: for 10 s clients open a new TLS connection per `/count`
//! while the pair is replaced twice, once with a good pair and once with a broken one. Nothing
//! fails, the counter moves by exactly the successes, new handshakes present the new certificate
//! within 3 s (polling is every 2 s), the broken pair is refused and reported while the good one
//! keeps serving, an HTTP/2 connection opened before the first replacement keeps working after
//! both, and SIGHUP reloads on demand.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::balancer_status::status;
use e2e::tls::{h2_connection, h2_get, https_get, write_pair, TestCa};
use e2e::{Stack, COUNTER_KEY};

const LOAD: Duration = Duration::from_secs(10);
const CLIENTS: usize = 4;
/// New pairs must be served within this long of being written.
const PICKUP: Duration = Duration::from_secs(3);

/// Tallies of the load: successes, failures (with the first few errors), the last leaf seen.
#[derive(Default)]
struct Tally {
    ok: AtomicUsize,
    failed: AtomicUsize,
    errors: Mutex<Vec<String>>,
    last_leaf: Mutex<Vec<u8>>,
}

fn start_load(
    tls: std::net::SocketAddr,
    ca: &TestCa,
    tally: Arc<Tally>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let config = ca.client_config(&[b"h2", b"http/1.1"]);
    let began = Instant::now();
    (0..CLIENTS)
        .map(|_| {
            let (config, tally) = (config.clone(), tally.clone());
            tokio::spawn(async move {
                while began.elapsed() < LOAD {
                    match https_get(tls, "/count", config.clone()).await {
                        Ok(r) if r.status == 200 => {
                            tally.ok.fetch_add(1, Ordering::Relaxed);
                            *tally.last_leaf.lock().unwrap() = r.leaf;
                        }
                        Ok(r) => fail(&tally, format!("status {}", r.status)),
                        Err(e) => fail(&tally, format!("{e:#}")),
                    }
                }
            })
        })
        .collect()
}

fn fail(tally: &Tally, why: String) {
    tally.failed.fetch_add(1, Ordering::Relaxed);
    let mut errors = tally.errors.lock().unwrap();
    if errors.len() < 5 {
        errors.push(why);
    }
}

/// Two replicas behind a balancer serving HTTPS on `tls` from the pair at `cert`/`key`, warmed up.
async fn stack_serving_https(tls: std::net::SocketAddr, cert: &Path, key: &Path) -> Stack {
    let (c, k, t) = (
        cert.display().to_string(),
        key.display().to_string(),
        tls.to_string(),
    );
    Stack::builder(2)
        .balancer_args(&["--tls-listen", &t, "--tls-cert", &c, "--tls-key", &k])
        .warm_up()
        .start()
        .await
}

/// The load had no failure, the counter rose by exactly its successes, and its last handshakes
/// presented `leaf`.
fn assert_nothing_failed_and_each_success_counted_once(tally: &Tally, delta: i64, leaf: &[u8]) {
    let (ok, failed) = (
        tally.ok.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed),
    );
    eprintln!("tls rotation: {ok} HTTPS requests on new connections in {LOAD:?}, {failed} failed, counter delta {delta}");
    assert_eq!(failed, 0, "failures: {:?}", tally.errors.lock().unwrap());
    assert_eq!(delta, ok as i64, "counter delta vs successes");
    assert_eq!(
        *tally.last_leaf.lock().unwrap(),
        leaf,
        "the last handshakes saw the wrong pair"
    );
}

/// Waits until a new handshake presents `leaf`; how long that took.
async fn wait_served(tls: std::net::SocketAddr, ca: &TestCa, leaf: &[u8]) -> Option<Duration> {
    let began = Instant::now();
    let config = ca.client_config(&[b"http/1.1"]);
    let seen = e2e::wait_until_async(PICKUP + Duration::from_secs(2), || {
        let config = config.clone();
        async move {
            https_get(tls, "/about", config)
                .await
                .is_ok_and(|r| r.leaf == leaf)
        }
    })
    .await;
    seen.then(|| began.elapsed())
}

#[tokio::test]
async fn rotation_under_https_load_drops_nothing() {
    let ca = TestCa::new();
    let (cert, key) = ca.write("served", &ca.valid("first"));
    let tls = std::net::SocketAddr::from(([127, 0, 0, 1], e2e::free_port()));
    let mut stack = stack_serving_https(tls, &cert, &key).await;
    let admin = stack.admin_origin();
    let mut kept = h2_connection(tls, &ca).await.expect("HTTP/2 connection");
    assert_eq!(h2_get(&mut kept, tls.port(), "/about").await.unwrap(), 200);
    let before = stack.redis.get_i64(COUNTER_KEY).await;
    let tally = Arc::new(Tally::default());
    let clients = start_load(tls, &ca, tally.clone());

    tokio::time::sleep(Duration::from_secs(2)).await;
    let second = ca.valid("second");
    write_pair(&cert, &key, &second.chain_pem, &second.key_pem);
    let pickup = wait_served(tls, &ca, &second.der).await;
    eprintln!("tls rotation: the new pair served {pickup:?} after it was written");
    assert!(
        pickup.is_some_and(|p| p <= PICKUP + Duration::from_millis(500)),
        "new pair not served in time"
    );

    // Broken: a good certificate with a key that is not its own.
    let refused = |s: &serde_json::Value| s["tls"]["last_reload"]["outcome"] == "refused";
    let third = ca.valid("third");
    write_pair(&cert, &key, &third.chain_pem, &second.key_pem);
    let reported = e2e::wait_until_async(PICKUP, || async {
        refused(&status(&format!("{admin}/status")).await)
    })
    .await;
    assert!(reported, "the broken pair was not reported as refused");
    assert!(
        wait_served(tls, &ca, &second.der).await.is_some(),
        "the good pair stopped serving"
    );

    for c in clients {
        c.await.unwrap();
    }
    let delta = stack.redis.get_i64(COUNTER_KEY).await - before;
    assert_nothing_failed_and_each_success_counted_once(&tally, delta, &second.der);
    // The connection opened before both replacements still works.
    assert_eq!(h2_get(&mut kept, tls.port(), "/about").await.unwrap(), 200);

    let s = status(&format!("{admin}/status")).await;
    assert_eq!(s["tls"]["certificate"]["subject"], "CN=second", "{s}");
    assert!(
        s["tls"]["last_reload"]["error"]
            .as_str()
            .unwrap_or("")
            .contains("--tls-key"),
        "{s}"
    );
    // SIGHUP reloads at once, files changed or not: the (again good) pair is loaded.
    write_pair(&cert, &key, &third.chain_pem, &third.key_pem);
    stack.balancer.process().signal(libc::SIGHUP);
    assert!(
        wait_served(tls, &ca, &third.der).await.is_some(),
        "SIGHUP did not load the fixed pair"
    );
    let metrics = e2e::http::get(&format!("{admin}/metrics"))
        .await
        .unwrap()
        .text();
    assert!(
        metrics.contains("balancer_tls_reloads_total{outcome=\"refused\"}"),
        "{metrics}"
    );
}
