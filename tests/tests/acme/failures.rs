//! ACME failing: a challenge pebble cannot validate (its DNS sends it elsewhere), a directory
//! that does not answer, and pebble refusing nonces (`badNonce`). Plain HTTP keeps serving, the
//! failure is counted and shown on `/status` with the next attempt backed off, and a refused
//! nonce is retried within the order.

use std::time::Duration;

use e2e::backends::echo_backend;
use e2e::net::dead_port;
use e2e::pebble::{Pebble, PebbleOptions};
use e2e::routes::{metric, status};
use e2e::wait_until_async;

use crate::issuance::{acme_balancer, curl_as_name, wait_orders};

const FAILED: &str = "balancer_acme_orders_total{result=\"failed\"}";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The balancer counted one failed order, plain HTTP serves, and `/status` shows `why` with the
/// next attempt at least the first backoff (1 min) away.
async fn assert_failed_and_backed_off(balancer: &e2e::Balancer, why: &str) {
    let failed = wait_until_async(Duration::from_secs(60), || async {
        metric(balancer, FAILED).await >= 1.0
    })
    .await;
    let acme = status(balancer).await["acme"][0].clone();
    assert!(failed, "no failed order: {acme}");
    let error = acme["last_error"].as_str().unwrap_or("");
    assert!(error.contains(why), "last_error lacks {why:?}: {acme}");
    assert!(acme["issuer"].is_null(), "{acme}");
    let next = acme["next_attempt"].as_i64().unwrap_or(0);
    assert!(next >= now() + 50, "next attempt backed off: {acme}");
    let plain = e2e::http::get(&balancer.url("/hdr"))
        .await
        .expect("plain HTTP");
    assert_eq!(plain.status, 200);
    assert_eq!(
        metric(balancer, FAILED).await,
        1.0,
        "one attempt, then the backoff"
    );
}

#[tokio::test]
async fn a_challenge_pebble_cannot_validate_fails_the_order_and_backs_off() {
    let echo = echo_backend().await;
    let ports = (e2e::free_port(), e2e::free_port());
    // The name resolves to an address nothing listens on.
    let options = PebbleOptions {
        dns_answer: Some("127.0.0.2".into()),
        ..PebbleOptions::default()
    };
    let pebble = Pebble::start(ports.0, ports.1, &options).expect("pebble");
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("acme");
    let balancer = acme_balancer(&pebble, echo.addr, ports, &state, &[]).await;
    assert_failed_and_backed_off(&balancer, "Failed to connect to 127.0.0.2").await;
}

#[tokio::test]
async fn an_unreachable_directory_keeps_plain_http_serving_and_backs_off() {
    let echo = echo_backend().await;
    let ports = (e2e::free_port(), e2e::free_port());
    let pebble = Pebble::start(ports.0, ports.1, &PebbleOptions::default()).expect("pebble");
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("acme");
    let directory = format!("https://localhost:{}/dir", dead_port());
    let extra = ["--acme-directory", directory.as_str()];
    let balancer = acme_balancer(&pebble, echo.addr, ports, &state, &extra).await;
    assert_failed_and_backed_off(&balancer, "creating an ACME account").await;
}

#[tokio::test]
async fn refused_nonces_are_retried_and_the_certificate_still_comes() {
    let echo = echo_backend().await;
    let ports = (e2e::free_port(), e2e::free_port());
    let options = PebbleOptions {
        nonce_reject_percent: 10,
        ..PebbleOptions::default()
    };
    let pebble = Pebble::start(ports.0, ports.1, &options).expect("pebble");
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("acme");
    let balancer = acme_balancer(&pebble, echo.addr, ports, &state, &[]).await;
    wait_orders(&balancer, 1.0).await;
    let root = pebble.issuing_root().await.expect("pebble's root");
    let curl = curl_as_name(ports.1, &root).await;
    assert!(curl.starts_with("200 0"), "curl over HTTPS: {curl}");
}
