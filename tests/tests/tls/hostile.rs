//! Hostile clients on the TLS port: garbage and plaintext HTTP, a handshake trickled one byte at a
//! time, 2,000 idle TLS connections, a flood of new handshakes, a ClientHello with a huge SNI or
//! thousands of extensions. Each ends in a close (never a hang, never a panic) and normal HTTPS
//! requests keep being served.

use std::time::{Duration, Instant};

use e2e::backends::echo_backend;
use e2e::hostile::panicked;
use e2e::raw::send as raw;
use e2e::resources::{raise_nofile, rss_kib};
use e2e::tls::{client_hello, handshake, https_get, real_client_hello, TestCa, TlsFront};
use tokio::io::AsyncWriteExt;

const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(1);

async fn front(ca: &TestCa) -> (e2e::backends::TestBackend, TlsFront) {
    let echo = echo_backend().await;
    let front = TlsFront::start(
        ca,
        &echo.addr.to_string(),
        &["--header-read-timeout", "1s", "--workers", "2"],
    )
    .await;
    (echo, front)
}

async fn assert_serving(front: &TlsFront, ca: &TestCa, after: &str) {
    let r = https_get(front.tls, "/about", ca.client_config(&[b"h2"])).await;
    match r {
        Ok(r) => assert_eq!(r.status, 200, "after {after}"),
        Err(e) => panic!("HTTPS request failed after {after}: {e:#}"),
    }
}

#[tokio::test]
async fn garbage_plaintext_and_odd_hellos_are_closed_quickly() {
    let ca = TestCa::new();
    let (_echo, mut front) = front(&ca).await;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "garbage",
            (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect(),
        ),
        (
            "plaintext HTTP",
            b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
        ),
        ("huge SNI", client_hello(&"a".repeat(60_000), 0)),
        ("10,000 extensions", client_hello("localhost", 10_000)),
        ("NUL-filled SNI", client_hello(&"\0".repeat(300), 5)),
    ];
    for (what, bytes) in cases {
        let reply = raw(front.tls, &bytes, Duration::from_secs(5)).await;
        eprintln!(
            "tls hostile: {what}: {} bytes back, closed {} after {:?}",
            reply.bytes.len(),
            reply.closed,
            reply.elapsed
        );
        assert!(reply.closed, "{what}: left open");
        // Closed by the server's verdict, not by the handshake timeout.
        assert!(
            reply.elapsed < HEADER_READ_TIMEOUT,
            "{what}: took {:?}",
            reply.elapsed
        );
        assert!(
            !String::from_utf8_lossy(&reply.bytes).contains("200 OK"),
            "{what}"
        );
        assert_serving(&front, &ca, what).await;
    }
    let failed = front
        .metric("balancer_tls_handshakes_total{outcome=\"failed\"")
        .await;
    assert!(failed >= 5.0, "failed handshakes counted: {failed}");
    assert!(!panicked(&front.balancer.process().log()));
}

#[tokio::test]
async fn a_trickled_handshake_is_cut_at_the_header_read_timeout() {
    let ca = TestCa::new();
    let (_echo, front) = front(&ca).await;
    let hello = real_client_hello(&ca);
    let mut stream = tokio::net::TcpStream::connect(front.tls).await.unwrap();
    let began = Instant::now();
    let mut cut = None;
    for byte in &hello {
        if stream.write_all(&[*byte]).await.is_err() {
            cut = Some(began.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A write may still succeed just after the close; the read sees it.
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut stream, &mut buf),
    )
    .await;
    let closed_after = cut.unwrap_or_else(|| began.elapsed());
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "not closed: {read:?}"
    );
    eprintln!(
        "tls hostile: trickled ClientHello ({} bytes) cut after {closed_after:?}",
        hello.len()
    );
    assert!(
        closed_after >= HEADER_READ_TIMEOUT - Duration::from_millis(100),
        "{closed_after:?}"
    );
    assert!(closed_after < HEADER_READ_TIMEOUT * 3, "{closed_after:?}");
    assert!(
        e2e::wait_until_async(Duration::from_secs(5), || async {
            front
                .metric("balancer_tls_handshakes_total{outcome=\"timeout\"")
                .await
                >= 1.0
        })
        .await
    );
    assert_serving(&front, &ca, "a trickled handshake").await;
}

#[tokio::test]
async fn two_thousand_idle_tls_connections_stay_bounded_and_requests_are_served() {
    const IDLE: usize = 2000;
    let ca = TestCa::new();
    let echo = echo_backend().await;
    // A long header timeout: these connections are meant to stay.
    let mut front = TlsFront::start(
        &ca,
        &echo.addr.to_string(),
        &["--header-read-timeout", "60s"],
    )
    .await;
    assert!(
        raise_nofile(IDLE as u64 + 1024) >= IDLE as u64 + 256,
        "open-file limit too low"
    );
    let pid = front.balancer.process().pid();
    assert_serving(&front, &ca, "start").await;
    let before = rss_kib(pid).expect("RSS");
    let config = ca.client_config(&[b"http/1.1"]);
    let began = Instant::now();
    let mut idle = Vec::with_capacity(IDLE);
    for i in 0..IDLE {
        match handshake(front.tls, config.clone()).await {
            Ok(s) => idle.push(s),
            Err(e) => panic!("idle TLS connection {i} of {IDLE}: {e:#}"),
        }
    }
    let opened = began.elapsed();
    let normal = Instant::now();
    assert_serving(&front, &ca, "2,000 idle TLS connections").await;
    let normal = normal.elapsed();
    let during = rss_kib(pid).expect("RSS");
    let grew = during.saturating_sub(before);
    eprintln!(
        "tls hostile: {IDLE} idle TLS connections (handshakes done) in {opened:?}: RSS {before} KiB -> {during} KiB \
         (+{grew} KiB, {} B per connection); an HTTPS request meanwhile took {normal:?}",
        grew * 1024 / IDLE as u64
    );
    // Measured 10,874-10,956 B per connection (handshake done: rustls state and buffers) in four runs at
    // abc4bce/faa1c2c (same balancer code) on the 2-core test machine under load; the bound is about 5x that.
    const MAX_KIB_EACH: u64 = 54;
    assert!(
        grew < IDLE as u64 * MAX_KIB_EACH,
        "RSS grew by {grew} KiB for {IDLE} idle TLS connections, over {MAX_KIB_EACH} KiB each"
    );
    drop(idle);
    assert_serving(&front, &ca, "closing the idle connections").await;
}

#[tokio::test]
async fn a_handshake_flood_leaves_it_serving() {
    const FLOODERS: usize = 16;
    const FLOOD: Duration = Duration::from_secs(3);
    let ca = TestCa::new();
    let (_echo, mut front) = front(&ca).await;
    let pid = front.balancer.process().pid();
    let cpu_before = e2e::resources::cpu_seconds(pid).expect("CPU time");
    let began = Instant::now();
    let config = ca.client_config(&[b"h2"]);
    let flooders: Vec<_> = (0..FLOODERS)
        .map(|_| {
            let (config, addr) = (config.clone(), front.tls);
            tokio::spawn(async move {
                let mut done = 0usize;
                while began.elapsed() < FLOOD {
                    // Handshake, then drop at once: the costly part for the server, nothing else.
                    if handshake(addr, config.clone()).await.is_ok() {
                        done += 1;
                    }
                }
                done
            })
        })
        .collect();
    // Mid-flood, a normal request is still answered.
    tokio::time::sleep(FLOOD / 2).await;
    assert_serving(&front, &ca, "half a handshake flood").await;
    let mut handshakes = 0;
    for f in flooders {
        handshakes += f.await.unwrap();
    }
    let cpu = e2e::resources::cpu_seconds(pid).expect("CPU time") - cpu_before;
    let wall = began.elapsed().as_secs_f64();
    eprintln!(
        "tls hostile: flood of {handshakes} full handshakes in {wall:.1} s from {FLOODERS} clients: \
         balancer CPU {cpu:.2} s ({:.0} us per handshake)",
        cpu * 1e6 / handshakes.max(1) as f64
    );
    assert!(handshakes > 0);
    // CPU bounded: two workers cannot use more than two cores (plus the logging thread).
    assert!(cpu <= wall * 3.0, "{cpu} s of CPU in {wall} s");
    assert_serving(&front, &ca, "a handshake flood").await;
    assert!(!panicked(&front.balancer.process().log()));
}

#[tokio::test]
async fn a_client_silent_after_its_handshake_is_closed_at_the_header_read_timeout() {
    let ca = TestCa::new();
    let (_echo, front) = front(&ca).await;
    let mut tls = handshake(front.tls, ca.client_config(&[b"http/1.1"]))
        .await
        .expect("handshake");
    let began = Instant::now();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut tls, &mut buf),
    )
    .await;
    let closed_after = began.elapsed();
    eprintln!("tls hostile: silent client after its handshake closed after {closed_after:?}");
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "not closed: {read:?}"
    );
    assert!(closed_after >= HEADER_READ_TIMEOUT - Duration::from_millis(100));
    assert!(closed_after < HEADER_READ_TIMEOUT * 3, "{closed_after:?}");
    assert_serving(&front, &ca, "a silent client").await;
}
