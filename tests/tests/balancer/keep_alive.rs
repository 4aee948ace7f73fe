//! `--keep-alive-timeout` apart from `--header-read-timeout`: an idle keep-alive connection
//! outlives the header timeout and is closed at the keep-alive timeout; a request head trickled
//! on a kept-alive connection is still cut at the header timeout; `0s` turns keep-alive off.
//! Raw sockets, so what is measured is exactly when the balancer closes.

use std::time::{Duration, Instant};

use e2e::backends::echo_backend;
use e2e::raw;
use e2e::Balancer;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(1);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(3);
const REQUEST: &[u8] = b"GET /ka HTTP/1.1\r\nHost: t\r\n\r\n";

async fn balancer(keep_alive: &str) -> (e2e::backends::TestBackend, Balancer) {
    let echo = echo_backend().await;
    let b = Balancer::builder()
        .backends(&[echo.addr])
        .args(&[
            "--header-read-timeout",
            "1s",
            "--keep-alive-timeout",
            keep_alive,
        ])
        .start()
        .await;
    (echo, b)
}

/// One request on `stream`, its response read whole (the connection stays open).
async fn request(stream: &mut TcpStream, what: &str) -> raw::RawResponse {
    if let Err(e) = stream.write_all(REQUEST).await {
        panic!("{what}: cannot send: {e}");
    }
    match raw::read_one_response(stream, Instant::now() + Duration::from_secs(10)).await {
        Ok(response) => response,
        Err(e) => panic!("{what}: {e}"),
    }
}

/// How long after now the server closes `stream` (bounded by `wait`).
async fn closed_after(stream: &mut TcpStream, wait: Duration) -> Duration {
    let began = Instant::now();
    let rest = raw::read_until_close(stream, began + wait).await;
    let took = began.elapsed();
    assert!(took < wait, "still open after {took:?}");
    assert!(
        rest.is_empty() || raw::status_of(&rest) == Some(408),
        "unexpected bytes before the close: {:?}",
        String::from_utf8_lossy(&rest)
    );
    took
}

#[tokio::test]
async fn an_idle_connection_outlives_the_header_timeout_and_closes_at_the_keep_alive_timeout() {
    let (_echo, b) = balancer("3s").await;
    let mut stream = TcpStream::connect(b.addr()).await.expect("connect");
    assert_eq!(request(&mut stream, "first request").await.status, 200);
    // Idle for twice the header timeout: the connection must still serve.
    tokio::time::sleep(2 * HEADER_READ_TIMEOUT).await;
    let second = request(
        &mut stream,
        "a request after 2 s idle (--header-read-timeout 1s)",
    )
    .await;
    assert_eq!(second.status, 200);
    let took = closed_after(&mut stream, KEEP_ALIVE_TIMEOUT * 3).await;
    eprintln!("idle keep-alive connection closed {took:?} after its last response");
    assert!(
        took >= KEEP_ALIVE_TIMEOUT - Duration::from_millis(100),
        "closed after {took:?}, before --keep-alive-timeout 3s"
    );
    assert!(
        took <= KEEP_ALIVE_TIMEOUT + Duration::from_millis(1500),
        "closed only after {took:?} (--keep-alive-timeout 3s)"
    );
}

#[tokio::test]
async fn a_head_trickled_on_a_kept_alive_connection_is_cut_at_the_header_timeout() {
    let (echo, b) = balancer("3s").await;
    let mut stream = TcpStream::connect(b.addr()).await.expect("connect");
    assert_eq!(request(&mut stream, "first request").await.status, 200);
    let hits = echo.hits();
    // Half a head, then nothing: the header timeout runs from this first byte.
    stream
        .write_all(b"GET /slow HTTP/1.1\r\nHost: t\r\n")
        .await
        .expect("send half a head");
    let took = closed_after(&mut stream, KEEP_ALIVE_TIMEOUT * 3).await;
    eprintln!("half a head on a kept-alive connection: closed after {took:?}");
    assert!(
        took >= HEADER_READ_TIMEOUT - Duration::from_millis(100),
        "cut after {took:?}, before --header-read-timeout 1s"
    );
    assert!(
        took < KEEP_ALIVE_TIMEOUT - Duration::from_millis(500),
        "cut after {took:?}: the keep-alive timeout, not the header timeout, applied"
    );
    assert_eq!(echo.hits(), hits, "the half request was forwarded");
}

#[tokio::test]
async fn keep_alive_timeout_zero_closes_after_each_response() {
    let (_echo, b) = balancer("0s").await;
    let mut stream = TcpStream::connect(b.addr()).await.expect("connect");
    let response = request(&mut stream, "the only request").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("connection"), Some("close"));
    let took = closed_after(&mut stream, Duration::from_secs(5)).await;
    assert!(took < HEADER_READ_TIMEOUT, "closed only after {took:?}");
}
