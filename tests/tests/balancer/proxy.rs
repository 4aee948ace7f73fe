//! Balancer behaviour against purpose-built backends: header rules, bodies, request-target handling,
//! limits, WebSocket tunnelling, HTTP/2 clients, admin endpoints, configuration errors and graceful
//! shutdown. Failing and moving backends (504, 502, safe retries, late DNS) are in
//! `proxy_failing_backends.rs`. Every case runs the real `balancer` binary.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use e2e::backends::{echo_backend, echoed, websocket_backend};
use e2e::balancer_status::{backend_entry, status};
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

async fn raw_request(b: &Balancer, req: &str) -> RawResponse {
    let bytes = raw::exchange(b.addr(), req.as_bytes(), Duration::from_secs(10)).await;
    RawResponse::parse(&bytes).unwrap_or_else(|why| {
        panic!(
            "no HTTP response to {req:?} ({why}): {:?}",
            String::from_utf8_lossy(&bytes)
        )
    })
}

#[tokio::test]
async fn header_rules_hold_in_both_directions() {
    let echo = echo_backend().await;
    let b = balancer_for(&[echo.addr], &[]).await;
    let resp = raw_request(
        &b,
        "GET /hdr?x=1 HTTP/1.1\r\n\
         Host: shop.example:8080\r\n\
         Connection: close, X-Secret-Hop\r\n\
         X-Secret-Hop: must-not-pass\r\n\
         Keep-Alive: timeout=5\r\n\
         Proxy-Connection: keep-alive\r\n\
         Proxy-Authorization: Basic Zm9vOmJhcg==\r\n\
         TE: trailers\r\n\
         Trailer: X-Checksum\r\n\
         Upgrade: h2c\r\n\
         X-Forwarded-For: 203.0.113.7\r\n\
         X-Real-IP: 6.6.6.6\r\n\
         X-Forwarded-Proto: https\r\n\
         X-Custom: kept\r\n\r\n",
    )
    .await;
    assert_eq!(resp.status, 200);
    let got = resp.json();
    assert_eq!(got["uri"], "/hdr?x=1");
    for hop in [
        "connection",
        "x-secret-hop",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "te",
        "trailer",
        "upgrade",
        "transfer-encoding",
    ] {
        assert!(
            echoed(&got, hop).is_empty(),
            "{hop} reached the backend: {got}"
        );
    }
    assert_eq!(echoed(&got, "host"), ["shop.example:8080"]);
    assert_eq!(echoed(&got, "x-forwarded-for"), ["203.0.113.7, 127.0.0.1"]);
    assert_eq!(echoed(&got, "x-real-ip"), ["127.0.0.1"]);
    assert_eq!(echoed(&got, "x-forwarded-proto"), ["http"]);
    assert_eq!(echoed(&got, "x-forwarded-host"), ["shop.example:8080"]);
    assert_eq!(echoed(&got, "x-custom"), ["kept"]);

    // Response direction: the backend's hop-by-hop headers stop at the balancer.
    for hop in ["x-hop-resp", "keep-alive", "proxy-authenticate", "upgrade"] {
        assert!(resp.header(hop).is_none(), "{hop} reached the client");
    }
    assert_ne!(resp.header("connection"), Some("x-hop-resp"));
    assert_eq!(resp.header("x-end-to-end"), Some("kept"));
    assert_eq!(
        resp.header("x-backend"),
        Some(echo.addr.to_string().as_str())
    );
}

#[tokio::test]
async fn bodies_stream_through_both_ways() {
    let echo = echo_backend().await;
    let b = balancer_for(&[echo.addr], &[]).await;
    // A chunked upload of 300 KiB: no Content-Length, so the balancer must stream it.
    let mut req = String::from(
        "POST /upload HTTP/1.1\r\nHost: t\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    let chunk = "a".repeat(1024);
    for _ in 0..300 {
        req.push_str(&format!("400\r\n{chunk}\r\n"));
    }
    req.push_str("0\r\n\r\n");
    let resp = raw_request(&b, &req).await;
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    assert_eq!(resp.json()["body_len"], 300 * 1024);

    let big = vec![b'z'; 200_000];
    let r = e2e::http::request(Method::PUT, &b.url("/put"), &[], big)
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["body_len"], 200_000);
    assert_eq!(r.json()["method"], "PUT");
}

#[tokio::test]
async fn absolute_form_and_connect_never_reach_the_named_host() {
    let echo = echo_backend().await;
    let decoy = echo_backend().await;
    let b = balancer_for(&[echo.addr], &[]).await;

    let resp = raw_request(
        &b,
        &format!(
            "GET http://{}/secret?x=1 HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            decoy.addr, decoy.addr
        ),
    )
    .await;
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("x-backend"),
        Some(echo.addr.to_string().as_str())
    );
    assert_eq!(
        resp.json()["uri"],
        "/secret?x=1",
        "forwarded in origin form"
    );

    let resp = raw_request(
        &b,
        "GET http://elsewhere.example/ HTTP/1.1\r\nHost: elsewhere.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("x-backend"),
        Some(echo.addr.to_string().as_str())
    );

    let resp = raw_request(
        &b,
        &format!("CONNECT {0} HTTP/1.1\r\nHost: {0}\r\n\r\n", decoy.addr),
    )
    .await;
    assert_eq!(resp.status, 405);
    assert_eq!(
        decoy.hits(),
        0,
        "the decoy named in the request line was contacted"
    );
    assert_eq!(echo.hits(), 2, "CONNECT must not be forwarded at all");
}

#[tokio::test]
async fn limits_oversized_headers_bodies_and_slow_headers() {
    let echo = echo_backend().await;
    let b = balancer_for(
        &[echo.addr],
        &["--max-body", "64KiB", "--header-read-timeout", "1s"],
    )
    .await;

    let huge = "x".repeat(100 * 1024);
    let resp = raw_request(
        &b,
        &format!("GET / HTTP/1.1\r\nHost: t\r\nX-Huge: {huge}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(resp.status, 431);

    // Declared too large: refused up front, before the body is sent.
    let resp = raw_request(
        &b,
        "POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(resp.status, 413);

    // Chunked, no declared length: capped while streaming.
    let mut req = String::from(
        "POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
    );
    let chunk = "b".repeat(4096);
    for _ in 0..40 {
        req.push_str(&format!("1000\r\n{chunk}\r\n"));
    }
    req.push_str("0\r\n\r\n");
    let resp = raw_request(&b, &req).await;
    assert_eq!(resp.status, 413);

    // Exactly at the limit passes.
    let r = e2e::http::request(Method::POST, &b.url("/ok"), &[], vec![1u8; 64 * 1024])
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["body_len"], 64 * 1024);

    // A client that never finishes its headers is cut off after --header-read-timeout.
    let hits_before = echo.hits();
    let started = Instant::now();
    let bytes = raw::exchange(
        b.addr(),
        b"GET /slow-client HTTP/1.1\r\nHost: t\r\nX-Half: ",
        Duration::from_secs(8),
    )
    .await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "slow client kept for {took:?}: {:?}",
        String::from_utf8_lossy(&bytes)
    );
    assert!(
        took >= Duration::from_millis(900),
        "cut too early: {took:?}"
    );
    assert!(matches!(raw::status_of(&bytes), None | Some(408)));
    assert_eq!(echo.hits(), hits_before);

    // A connection that never sends a byte is closed by the same timeout (idle-connection abuse).
    let started = Instant::now();
    let bytes = raw::exchange(b.addr(), b"", Duration::from_secs(8)).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "silent connection kept for {:?}",
        started.elapsed()
    );
    assert!(matches!(raw::status_of(&bytes), None | Some(408)));

    // And the balancer still serves normally.
    assert_eq!(e2e::http::get(&b.url("/after")).await.unwrap().status, 200);
}

#[tokio::test]
async fn websocket_upgrade_is_tunnelled() {
    websocket_through(&[]).await;
}

/// With HTTP/2 to the replicas, an upgrade still goes over HTTP/1.1: this backend speaks nothing
/// else (its h2c health probes fail, so it stays pending, and a lone pending backend still gets
/// the traffic).
#[tokio::test]
async fn websocket_upgrade_goes_over_http1_with_h2c() {
    websocket_through(&["--upstream-protocol", "h2c"]).await;
}

async fn websocket_through(args: &[&str]) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let ws = websocket_backend().await;
    let b = balancer_for(&[ws.addr], args).await;
    let stream = tokio::net::TcpStream::connect(b.addr()).await.unwrap();
    let (mut socket, resp) = tokio::time::timeout(
        T,
        tokio_tungstenite::client_async(format!("ws://{}/ws", b.addr()), stream),
    )
    .await
    .expect("handshake in time")
    .expect("handshake through the balancer");
    assert_eq!(resp.status(), 101);
    for text in ["hello", "through", "the balancer"] {
        socket.send(Message::text(text)).await.unwrap();
        let echoed = tokio::time::timeout(T, socket.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(echoed.into_text().unwrap().as_str(), text);
    }
    socket
        .send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    let echoed = tokio::time::timeout(T, socket.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(echoed.into_data().as_ref(), &[0u8, 1, 2, 255]);
    socket.close(None).await.unwrap();
    assert_eq!(ws.hits(), 1);
}

#[tokio::test]
async fn http2_prior_knowledge_clients_are_served() {
    use http_body_util::{BodyExt, Empty};
    let echo = echo_backend().await;
    let b = balancer_for(&[echo.addr], &[]).await;
    let stream = tokio::net::TcpStream::connect(b.addr()).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("http://h2.example:81/two?x=2")
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = tokio::time::timeout(T, sender.send_request(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let got: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(got["uri"], "/two?x=2");
    assert_eq!(got["version"], "HTTP/1.1", "backends get HTTP/1.1");
    assert_eq!(echoed(&got, "host"), ["h2.example:81"]);
}

#[tokio::test]
async fn admin_endpoints_report_and_stay_off_the_public_port() {
    let echo = echo_backend().await;
    let dead = format!("127.0.0.1:{}", dead_port());
    let b = Balancer::builder()
        .upstreams(&format!("{},{dead}", echo.addr))
        .arg("--health-interval")
        .arg("200ms")
        .start()
        .await;
    for _ in 0..4 {
        assert_eq!(e2e::http::get(&b.url("/x")).await.unwrap().status, 200);
    }
    // The public port proxies /status and /metrics to the backends like any other path.
    let r = e2e::http::get(&b.url("/status")).await.unwrap();
    assert_eq!(r.header("x-backend"), Some(echo.addr.to_string().as_str()));
    let r = e2e::http::get(&b.url("/metrics")).await.unwrap();
    assert_eq!(r.header("x-backend"), Some(echo.addr.to_string().as_str()));

    admin_status_reports_the_live_and_the_dead_backend(&b, &echo.addr.to_string(), &dead).await;
    admin_metrics_name_every_series(&b, &echo.addr.to_string(), &dead).await;
    healthcheck_subcommand_answers_by_the_admin_listener(&b);
}

/// `/status` on the admin port, once the dead backend's check failed: the live one healthy and active
/// with its requests counted, the dead one pending with its reason, both upstreams resolved.
async fn admin_status_reports_the_live_and_the_dead_backend(b: &Balancer, live: &str, dead: &str) {
    let admin_status = b.admin_url("/status");
    assert!(
        e2e::wait_until_async(T, || async {
            let st = status(&admin_status).await;
            st["backends"]
                .as_array()
                .is_some_and(|bs| bs.iter().any(|e| e["healthy"] == false))
        })
        .await
    );
    let st = status(&b.admin_url("/status")).await;
    let good = backend_entry(&st, live);
    assert_eq!(good["healthy"], true);
    assert!(good["requests_total"].as_u64().unwrap() >= 6);
    assert_eq!(good["in_flight"], 0);
    let bad = backend_entry(&st, dead);
    assert_eq!(bad["healthy"], false);
    assert!(
        bad["reason"].as_str().unwrap().contains("health check"),
        "{st}"
    );
    assert!(bad["last_error"]["message"].is_string());
    // It never passed a check: pending, never active.
    assert_eq!(bad["state"], "pending", "{st}");
    assert_eq!(good["state"], "active", "{st}");
    assert_eq!(st["pending_backends"], 1, "{st}");
    assert_eq!(st["upstreams"].as_array().unwrap().len(), 2);
    assert!(st["upstreams"][0]["last_resolved_unix_ms"].is_u64());
    assert_eq!(st["upstreams"][0]["last_outcome"], "resolved", "{st}");
}

/// `/metrics` on the admin port: per-backend request classes, latency, retries, health, in-flight,
/// and the backend counts.
async fn admin_metrics_name_every_series(b: &Balancer, live: &str, dead: &str) {
    let m = e2e::http::get(&b.admin_url("/metrics")).await.unwrap();
    assert_eq!(m.status, 200);
    let text = m.text();
    let needles = [
        format!("balancer_requests_total{{backend=\"{live}\",class=\"2xx\"}}"),
        "balancer_upstream_latency_seconds_bucket".to_string(),
        "balancer_retries_total".to_string(),
        format!("balancer_backend_healthy{{backend=\"{live}\"}} 1"),
        format!("balancer_backend_healthy{{backend=\"{dead}\"}} 0"),
        "balancer_backend_in_flight".to_string(),
        "balancer_backends 2".to_string(),
        "balancer_backends_pending 1".to_string(),
    ];
    for needle in &needles {
        assert!(
            text.contains(needle.as_str()),
            "missing {needle} in:\n{text}"
        );
    }
}

/// `balancer healthcheck`: 0 against a live admin listener, non-zero where nothing listens.
fn healthcheck_subcommand_answers_by_the_admin_listener(b: &Balancer) {
    let ok = std::process::Command::new(e2e::bin_path("balancer"))
        .arg("healthcheck")
        .env("BALANCER_ADMIN_LISTEN", b.admin_addr().to_string())
        .status()
        .unwrap();
    assert!(ok.success());
    let bad = std::process::Command::new(e2e::bin_path("balancer"))
        .args(["healthcheck", "--admin-listen"])
        .arg(format!("0.0.0.0:{}", dead_port()))
        .status()
        .unwrap();
    assert!(!bad.success());
}

#[tokio::test]
async fn bad_configuration_exits_2_with_one_line_naming_the_flag() {
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (&["--max-fails", "lots"], &[], "--max-fails"),
        (&["--resolve-interval", "soon"], &[], "--resolve-interval"),
        (&[], &[("BALANCER_MAX_BODY", "16 parsecs")], "--max-body"),
        (&[], &[("BALANCER_UPSTREAMS", "app")], "--upstreams"),
        (&[], &[("BALANCER_LISTEN", "nowhere")], "--listen"),
        (&["--workers", "0"], &[], "--workers"),
        (&["--log-format", "xml"], &[], "--log-format"),
        (&["--health-path", "health"], &[], "--health-path"),
        (&["--balance", "random"], &[], "--balance"),
        (&[], &[("BALANCER_SLOW_START", "soon")], "--slow-start"),
        (&["--max-5xx", "lots"], &[], "--max-5xx"),
        (&[], &[("BALANCER_RATE_LIMIT", "50/day")], "--rate-limit"),
        (&["--rate-burst", "0"], &[], "--rate-burst"),
        (
            &[],
            &[("BALANCER_TRUSTED_PROXIES", "10.0.0.0/99")],
            "--trusted-proxies",
        ),
        (&["--rate-limit-clients", "0"], &[], "--rate-limit-clients"),
        (
            &[],
            &[("BALANCER_MAX_CONNECTIONS", "lots")],
            "--max-connections",
        ),
        (&[], &[("BALANCER_ADMIN_TOKEN", "short")], "--admin-token"),
        (
            &["--keep-alive-timeout", "forever"],
            &[],
            "--keep-alive-timeout",
        ),
        (
            &["--upstreams", "127.0.0.1:9"],
            &[("BALANCER_HANDOVER", "/nonexistent/dir/handover.sock")],
            "--handover",
        ),
    ];
    for (args, envs, flag) in cases {
        let out = std::process::Command::new(e2e::bin_path("balancer"))
            .args(*args)
            .envs(envs.iter().copied())
            .env(
                "BALANCER_ADMIN_LISTEN",
                format!("127.0.0.1:{}", dead_port()),
            )
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} {envs:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(flag), "{flag} not named: {stderr}");
    }
}

#[tokio::test]
async fn graceful_shutdown_finishes_the_request_in_flight() {
    let echo = echo_backend().await;
    let mut b = balancer_for(&[echo.addr], &[]).await;
    let url = b.url("/slow?ms=1500");
    let in_flight = tokio::spawn(async move { e2e::http::get(&url).await });
    let admin = b.admin_url("/status");
    assert!(
        e2e::wait_until_async(T, || async {
            status(&admin).await["backends"][0]["in_flight"] == 1
        })
        .await
    );
    let signalled = Instant::now();
    b.sigterm();
    // New connections are refused soon after the signal...
    let addr = b.addr();
    assert!(
        e2e::wait_until_async(Duration::from_secs(5), || async {
            tokio::net::TcpStream::connect(addr).await.is_err()
        })
        .await,
        "still accepting after SIGTERM"
    );
    // ...while the request already in flight completes normally.
    let r = in_flight.await.unwrap().unwrap();
    assert_eq!(r.status, 200);
    let exit = b.wait_exit(Duration::from_secs(10)).await.expect("exited");
    assert_eq!(exit.code(), Some(0));
    assert!(
        signalled.elapsed() >= Duration::from_millis(1000),
        "did not wait for the request"
    );
}
