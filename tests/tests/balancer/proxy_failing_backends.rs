//! Balancer behaviour when backends fail or move: a hanging backend gets 504, broken ones 502 and are
//! never retried once the request was sent, an unreachable one is retried safely (each request lands once),
//! and names that resolve late are picked up and followed. Request handling, WebSocket, admin endpoints,
//! configuration errors and shutdown are in `proxy.rs`. Every case runs the real `balancer`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use e2e::backends::{breaking_backend, echo_backend, echo_backend_on, HungBackend};
use e2e::balancer_status::{backend_entry, status, wait_health};
use e2e::namespaced_balancer::NamespacedBalancer;
use e2e::net::dead_port;
use e2e::raw::{self, RawResponse};
use e2e::Balancer;
use http::Method;

const T: Duration = Duration::from_secs(20);

/// A balancer in front of `backends`, started with `args`.
async fn balancer_for(backends: &[SocketAddr], args: &[&str]) -> Balancer {
    Balancer::builder()
        .backends(backends)
        .args(args)
        .start()
        .await
}

#[tokio::test]
async fn hanging_backend_gets_504_and_others_keep_serving() {
    let echo = echo_backend().await;
    let hang = HungBackend::start().await;
    let b = balancer_for(
        &[echo.addr, hang.addr],
        &["--upstream-timeout", "1s", "--health-interval", "1m"],
    )
    .await;
    // Its first probe passes (it wedges only at its first request), so it joins the rotation.
    assert!(wait_health(&b, hang.addr, true, T).await.is_some());

    // Get exactly one request stuck on the hung backend.
    let mut stuck = None;
    for (early_ok, i) in (0..2).enumerate() {
        let url = b.url(&format!("/first{i}"));
        let req = tokio::spawn(async move { e2e::http::get(&url).await });
        let hang_ref = &hang;
        let echo_ref = &echo;
        assert!(
            e2e::wait_until(T, || hang_ref.hits() == 1
                || echo_ref.hits() == early_ok + 1)
            .await
        );
        if hang.hits() == 1 {
            stuck = Some(req);
            break;
        }
        assert_eq!(req.await.unwrap().unwrap().status, 200);
    }
    let stuck = stuck.expect("round-robin sent one of two requests to the hung backend");

    // While it hangs, the next request (round-robin: the healthy backend) is served at once.
    let started = Instant::now();
    let r = e2e::http::get(&b.url("/meanwhile")).await.unwrap();
    assert_eq!(r.status, 200);
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "healthy backend slowed down"
    );

    let r = stuck.await.unwrap().unwrap();
    assert_eq!(r.status, 504);
    assert_eq!(r.text(), "504 Gateway Timeout\n");

    // It is now out: everything else goes to the healthy backend.
    for i in 0..6 {
        let r = e2e::http::get(&b.url(&format!("/after{i}"))).await.unwrap();
        assert_eq!(r.status, 200);
    }
    assert_eq!(hang.hits(), 1);

    let st = status(&b.admin_url("/status")).await;
    let entry = backend_entry(&st, &hang.addr.to_string());
    assert_eq!(entry["healthy"], false, "{st}");
    assert!(
        entry["reason"].as_str().unwrap_or("").contains("passive"),
        "{st}"
    );
    assert!(entry["last_error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("upstream-timeout"));
}

#[tokio::test]
async fn broken_backends_give_502_and_are_never_retried_once_sent() {
    let echo = echo_backend().await;
    let closer = breaking_backend(false).await;
    let b = balancer_for(&[echo.addr, closer.addr], &["--health-interval", "1m"]).await;
    // Its probes pass (only real requests break), so it is in the rotation.
    assert!(wait_health(&b, closer.addr, true, T).await.is_some());
    let mut ok = 0;
    let mut bad = 0;
    for i in 0..10 {
        let r = e2e::http::get(&b.url(&format!("/c{i}"))).await.unwrap();
        match r.status {
            200 => ok += 1,
            502 => {
                bad += 1;
                assert_eq!(r.text(), "502 Bad Gateway\n", "no internal detail leaks");
            }
            s => panic!("unexpected {s}"),
        }
    }
    assert_eq!(bad, 1, "only the request sent to the broken backend fails");
    assert_eq!(closer.hits(), 1, "a sent request is never sent again");
    assert_eq!(
        echo.hits(),
        ok,
        "each success reached the backend exactly once"
    );

    // A response cut mid-body reaches the client truncated (never padded), and is a failure.
    let partial = breaking_backend(true).await;
    let b2 = balancer_for(&[partial.addr], &[]).await;
    let bytes = raw::exchange(
        b2.addr(),
        b"GET /cut HTTP/1.1\r\nHost: t\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    let resp = RawResponse::parse(&bytes).expect("a response head");
    assert_eq!(resp.status, 200);
    assert!(
        resp.body.len() < 1000,
        "truncated body must not look complete"
    );
    let st = status(&b2.admin_url("/status")).await;
    let entry = backend_entry(&st, &partial.addr.to_string());
    assert!(
        entry["last_error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("body"),
        "{st}"
    );
}

#[tokio::test]
async fn unreachable_backend_is_retried_safely_and_each_request_lands_once() {
    let echo = echo_backend().await;
    let doomed = echo_backend().await;
    let b = Balancer::builder()
        .upstreams(&format!("{},{}", doomed.addr, echo.addr))
        .arg("--health-interval")
        .arg("1m")
        .arg("--max-fails")
        .arg("3")
        .start()
        .await;
    // It passes its first health check; then it stops listening (connections are refused).
    assert!(wait_health(&b, doomed.addr, true, T).await.is_some());
    doomed.stop();
    let doomed_addr = doomed.addr;
    assert!(
        e2e::wait_until_async(T, || async {
            tokio::net::TcpStream::connect(doomed_addr).await.is_err()
        })
        .await
    );
    for i in 0..10 {
        let r = e2e::http::request(Method::POST, &b.url(&format!("/p{i}")), &[], "payload")
            .await
            .unwrap();
        assert_eq!(
            r.status, 200,
            "connect refused must be retried on the next backend"
        );
        assert_eq!(r.json()["body_len"], 7, "the body survives the retry");
    }
    assert_eq!(echo.hits(), 10);
    let metrics = e2e::http::get(&b.admin_url("/metrics"))
        .await
        .unwrap()
        .text();
    let retries: f64 = metrics
        .lines()
        .find(|l| l.starts_with("balancer_retries_total "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no retries metric:\n{metrics}"));
    assert!(retries >= 1.0);

    assert_eq!(doomed.hits(), 0);

    // With only unreachable backends: 502 after trying each once.
    let dead = format!("127.0.0.1:{}", dead_port());
    let b2 = Balancer::builder().upstreams(&dead).start().await;
    let r = e2e::http::get(&b2.url("/")).await.unwrap();
    assert_eq!(r.status, 502);
}

#[tokio::test]
async fn names_that_resolve_late_are_picked_up_and_followed() {
    let echo = echo_backend().await;
    let port = echo.addr.port();
    // The same port on a second loopback address, for when the name moves.
    let echo2 = echo_backend_on([127, 0, 0, 2], port).await;
    let Some(b) = NamespacedBalancer::start(
        &format!("lateapp:{port}"),
        &["--resolve-interval", "200ms", "--health-interval", "200ms"],
    )
    .await
    else {
        return;
    };
    // Started although the name does not resolve; answers 503 meanwhile.
    let r = e2e::http::get(&b.url("/early")).await.unwrap();
    assert_eq!(r.status, 503);
    let st = status(&b.admin_url("/status")).await;
    assert!(
        st["upstreams"][0]["last_resolved_unix_ms"].is_null(),
        "{st}"
    );
    assert!(st["upstreams"][0]["last_error"].is_string(), "{st}");

    b.set_hosts("127.0.0.1 localhost\n127.0.0.1 lateapp\n");
    let url = b.url("/late");
    assert!(
        e2e::wait_until_async(Duration::from_secs(5), || async {
            e2e::http::get(&url)
                .await
                .map(|r| r.status == 200)
                .unwrap_or(false)
        })
        .await,
        "name never picked up; log:\n{}",
        b.process.log()
    );
    let st = status(&b.admin_url("/status")).await;
    assert!(st["upstreams"][0]["last_resolved_unix_ms"].is_u64(), "{st}");
    assert_eq!(st["backends"][0]["address"], echo.addr.to_string());

    // The name now points elsewhere: the old address leaves, the new one takes the traffic.
    b.set_hosts("127.0.0.1 localhost\n127.0.0.2 lateapp\n");
    let new = echo2.addr.to_string();
    assert!(
        e2e::wait_until_async(Duration::from_secs(5), || async {
            e2e::http::get(&url)
                .await
                .map(|r| r.header("x-backend") == Some(new.as_str()))
                .unwrap_or(false)
        })
        .await
    );
    let before = echo.hits();
    for _ in 0..5 {
        let r = e2e::http::get(&url).await.unwrap();
        assert_eq!(r.header("x-backend"), Some(new.as_str()));
    }
    assert_eq!(
        echo.hits(),
        before,
        "a vanished address gets no new requests"
    );
}
