//! Graceful shutdown of `app`: on SIGTERM/SIGINT it stops accepting, finishes in-flight
//! requests (bounded by DRAIN_TIMEOUT), closes idle keep-alive connections and exits 0.
//!
//! A request is held in flight honestly: Redis itself is told to pause write commands
//! (`CLIENT PAUSE … WRITE`), so the app's real `INCR` waits inside Redis, exactly like a
//! slow Redis would make it wait. The app's own in-flight gauge on `/metrics` tells the
//! test when the request is inside the app.

use std::time::{Duration, Instant};

use e2e::http::get;
use e2e::{wait_until_async, App, RedisServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const T: Duration = Duration::from_secs(60);

async fn pause_writes(redis: &RedisServer, for_ms: u64) {
    let mut conn = redis
        .client()
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection");
    redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(for_ms)
        .arg("WRITE")
        .query_async::<()>(&mut conn)
        .await
        .expect("CLIENT PAUSE");
}

async fn unpause(redis: &RedisServer) {
    if let Ok(mut conn) = redis.client().get_multiplexed_async_connection().await {
        let _ = redis::cmd("CLIENT")
            .arg("UNPAUSE")
            .query_async::<()>(&mut conn)
            .await;
    }
}

/// Requests the app is handling right now, from its own gauge (minus the /metrics request asking).
async fn in_flight(app: &App) -> Option<i64> {
    let text = get(&app.url("/metrics")).await.ok()?.text();
    let line = text
        .lines()
        .find(|l| l.starts_with("app_http_requests_in_flight "))?;
    let value: i64 = line.rsplit(' ').next()?.parse().ok()?;
    Some(value - 1)
}

async fn wait_in_flight(app: &App, n: i64) {
    let reached = wait_until_async(Duration::from_secs(5), || async {
        in_flight(app).await == Some(n)
    })
    .await;
    assert!(
        reached,
        "the app never had {n} request(s) in flight; log:\n{}",
        app.log()
    );
}

async fn refuses_connections(addr: std::net::SocketAddr) -> bool {
    TcpStream::connect(addr).await.is_err()
}

#[tokio::test]
async fn sigterm_finishes_the_in_flight_request_and_exits_0() {
    tokio::time::timeout(T, async {
        let redis = RedisServer::start().await;
        redis.set_i64("visits", 5).await;
        // A generous Redis timeout so the paused INCR waits rather than failing.
        let mut app = App::builder(&redis)
            .env("REDIS_TIMEOUT", "10s")
            .start()
            .await;

        pause_writes(&redis, 2500).await;
        let url = app.url("/count");
        let held = tokio::spawn(async move { get(&url).await });
        wait_in_flight(&app, 1).await;

        let signalled = Instant::now();
        app.sigterm();
        // The listener closes at once while the request is still being served.
        let addr = app.addr();
        let closed = wait_until_async(Duration::from_secs(2), || refuses_connections(addr)).await;
        assert!(closed, "the app still accepts connections after SIGTERM");
        assert!(
            !held.is_finished(),
            "the held request finished before the listener closed"
        );
        assert!(
            app.process().try_exit().is_none(),
            "the app exited with a request in flight"
        );

        let resp = held
            .await
            .expect("task")
            .expect("the in-flight request failed");
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert!(resp
            .text()
            .contains("This page has been visited <span class=\"count\">6</span> times."));
        let status = app
            .wait_exit(Duration::from_secs(10))
            .await
            .expect("app did not exit");
        assert!(
            status.success(),
            "exit status {status}; log:\n{}",
            app.log()
        );
        assert!(signalled.elapsed() < Duration::from_secs(10));
        assert_eq!(redis.get_i64("visits").await, 6);
        assert!(app.log().contains("SIGTERM"), "the shutdown is logged");
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn sigint_also_shuts_down_gracefully() {
    tokio::time::timeout(T, async {
        let redis = RedisServer::start().await;
        let mut app = App::builder(&redis)
            .env("REDIS_TIMEOUT", "10s")
            .start()
            .await;
        pause_writes(&redis, 1500).await;
        let url = app.url("/count");
        let held = tokio::spawn(async move { get(&url).await });
        wait_in_flight(&app, 1).await;
        app.process().signal(libc::SIGINT);
        let resp = held
            .await
            .expect("task")
            .expect("the in-flight request failed");
        assert_eq!(resp.status, 200);
        let status = app
            .wait_exit(Duration::from_secs(10))
            .await
            .expect("app did not exit");
        assert!(status.success(), "exit status {status}");
        assert_eq!(redis.get_i64("visits").await, 1);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn drain_timeout_bounds_the_wait_for_stuck_requests() {
    tokio::time::timeout(T, async {
        let redis = RedisServer::start().await;
        let mut app = App::builder(&redis)
            .env("REDIS_TIMEOUT", "30s")
            .env("DRAIN_TIMEOUT", "500ms")
            .start()
            .await;
        pause_writes(&redis, 20_000).await;
        let url = app.url("/count");
        let held = tokio::spawn(async move { get(&url).await });
        wait_in_flight(&app, 1).await;

        let signalled = Instant::now();
        app.sigterm();
        let status = app
            .wait_exit(Duration::from_secs(10))
            .await
            .expect("app did not exit");
        let took = signalled.elapsed();
        unpause(&redis).await;
        assert!(status.success(), "exit status {status}");
        assert!(
            took >= Duration::from_millis(400),
            "exited after {took:?}: it did not wait for the drain"
        );
        assert!(
            took < Duration::from_secs(5),
            "exit took {took:?} with DRAIN_TIMEOUT=500ms"
        );
        assert!(
            held.await.expect("task").is_err(),
            "the stuck request was cut off"
        );
        assert!(app.log().contains("drain timeout"), "the cut is logged");
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn idle_keep_alive_connections_do_not_delay_shutdown() {
    tokio::time::timeout(T, async {
        let redis = RedisServer::start().await;
        let mut app = App::start(&redis).await;

        // A keep-alive connection that has finished one request and now sits idle.
        let mut stream = TcpStream::connect(app.addr()).await.expect("connect");
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
            .await
            .expect("write");
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&got).contains("\"status\":\"ok\"") {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(
                n > 0,
                "connection closed early: {}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
        }

        let signalled = Instant::now();
        app.sigterm();
        // The server closes the idle connection instead of waiting for DRAIN_TIMEOUT (10 s).
        let rest =
            e2e::raw::read_until_close(&mut stream, Instant::now() + Duration::from_secs(5)).await;
        assert!(
            rest.is_empty(),
            "unexpected bytes: {}",
            String::from_utf8_lossy(&rest)
        );
        let status = app
            .wait_exit(Duration::from_secs(5))
            .await
            .expect("app did not exit");
        assert!(status.success(), "exit status {status}");
        let took = signalled.elapsed();
        assert!(
            took < Duration::from_secs(3),
            "shutdown with an idle connection took {took:?}"
        );
    })
    .await
    .expect("test timed out");
}

/// Asks for /health on `stream` while the app is stopping: 503, "stopping", and the connection
/// closed after the response.
async fn assert_stopping_health(stream: &mut TcpStream) {
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .expect("write");
    let reply = e2e::raw::read_until_close(stream, Instant::now() + Duration::from_secs(5)).await;
    let reply = String::from_utf8_lossy(&reply).to_ascii_lowercase();
    assert!(
        reply.starts_with("http/1.1 503"),
        "health while stopping: {reply}"
    );
    assert!(
        reply.contains("connection: close"),
        "no Connection: close: {reply}"
    );
    assert!(reply.contains("\"status\":\"stopping\""), "{reply}");
}

/// With SHUTDOWN_DELAY, a replica behind a pooling balancer is not yanked away: for the whole delay it
/// keeps accepting and serving (a connection the kernel already accepted is never reset with a request
/// in it), every response closes its connection, and /health says 503 so health checks take the replica
/// out; only after the delay does it stop listening, close what is idle and exit.
#[tokio::test]
async fn shutdown_delay_keeps_serving_open_connections_with_connection_close() {
    tokio::time::timeout(T, async {
        const DELAY: Duration = Duration::from_secs(2);
        let redis = RedisServer::start().await;
        let mut app = App::builder(&redis)
            .env("SHUTDOWN_DELAY", "2s")
            .start()
            .await;

        // An idle keep-alive connection, opened before the signal.
        let mut stream = TcpStream::connect(app.addr()).await.expect("connect");
        let signalled = Instant::now();
        app.sigterm();
        let addr = app.addr();
        let stopping = wait_until_async(Duration::from_secs(2), || async move {
            get(&format!("http://{addr}/health"))
                .await
                .is_ok_and(|r| r.status == 503)
        })
        .await;
        assert!(stopping, "/health did not turn 503 after SIGTERM");

        // A connection opened during the delay is accepted and served, and told to close.
        let mut fresh = TcpStream::connect(addr)
            .await
            .expect("new connections must still be accepted during the delay");
        assert_stopping_health(&mut fresh).await;
        // So is the keep-alive connection opened before the signal.
        assert_stopping_health(&mut stream).await;

        let status = app
            .wait_exit(Duration::from_secs(10))
            .await
            .expect("app did not exit");
        assert!(status.success(), "exit status {status}");
        // The listener stays open for the whole delay, even with no connection left.
        let took = signalled.elapsed();
        assert!(
            took >= DELAY,
            "the app stopped after {took:?}, before SHUTDOWN_DELAY"
        );
        assert!(
            refuses_connections(addr).await,
            "the app still accepts connections after exiting"
        );
    })
    .await
    .expect("test timed out");
}
