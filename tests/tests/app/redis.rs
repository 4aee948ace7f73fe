//! `app` and Redis together: exact counting under concurrency, and resilience when Redis
//! stops, dies, hangs or is down at startup (503 within 1 s, recovery within 2 s, no restart).

use std::time::{Duration, Instant};

use e2e::http::{get, get_or_panic, Resp};
use e2e::page::visits_shown;
use e2e::{wait_until_async, App, RedisServer};

const T: Duration = Duration::from_secs(60);
/// The contract: while Redis is unreachable, Redis-backed routes answer 503 within this.
const UNAVAILABLE_WITHIN: Duration = Duration::from_secs(1);
/// The contract: after Redis is back, the app recovers by itself within this.
const RECOVERS_WITHIN: Duration = Duration::from_secs(2);

/// GETs `url` and returns the response with how long it took.
async fn timed(url: &str) -> (Resp, Duration) {
    let started = Instant::now();
    let resp = get_or_panic(url).await;
    (resp, started.elapsed())
}

/// Asserts that every Redis-backed route answers 503 quickly and the rest still work.
async fn assert_degraded(app: &App) {
    let (count, took) = timed(&app.url("/count")).await;
    assert_eq!(
        count.status,
        503,
        "/count while Redis is down: {}",
        count.text()
    );
    assert!(
        took < UNAVAILABLE_WITHIN,
        "/count took {took:?} while Redis was down"
    );
    assert_eq!(count.header("x-served-by"), Some(app.name()));
    let page = count.text();
    assert!(page.contains("/static/style.css"), "the 503 page is styled");
    assert!(page.contains("Redis"), "the 503 page says why");

    let (health, took) = timed(&app.url("/health")).await;
    assert_eq!(health.status, 503);
    assert!(took < UNAVAILABLE_WITHIN, "/health took {took:?}");
    let json = health.json();
    assert_eq!(json["status"], "degraded");
    assert_eq!(json["redis"], "down");
    assert_eq!(json["replica"], app.name());

    let (visits, took) = timed(&app.url("/api/visits")).await;
    assert_eq!(visits.status, 503);
    assert!(took < UNAVAILABLE_WITHIN, "/api/visits took {took:?}");

    for path in ["/", "/about", "/static/style.css"] {
        let (resp, took) = timed(&app.url(path)).await;
        assert_eq!(resp.status, 200, "{path} must not depend on Redis");
        assert!(took < UNAVAILABLE_WITHIN, "{path} took {took:?}");
    }
}

/// Waits for `/count` to succeed again and asserts it happened within the contract.
async fn assert_recovers(app: &App, since: Instant) -> i64 {
    let url = app.url("/count");
    let recovered = wait_until_async(RECOVERS_WITHIN + Duration::from_secs(3), || async {
        matches!(get(&url).await, Ok(resp) if resp.status == 200)
    })
    .await;
    let took = since.elapsed();
    assert!(recovered, "app did not recover; log:\n{}", app.log());
    assert!(took <= RECOVERS_WITHIN, "recovery took {took:?}");
    let health = get_or_panic(&app.url("/health")).await;
    assert_eq!(health.status, 200, "{}", health.text());
    assert_eq!(health.json()["redis"], "up");
    let visits = get_or_panic(&app.url("/api/visits")).await;
    assert_eq!(visits.status, 200);
    visits.json()["visits"]
        .as_i64()
        .expect("visits is a number")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_concurrent_counts_raise_the_counter_by_exactly_1000() {
    tokio::time::timeout(T, async {
        let redis = RedisServer::start().await;
        redis.set_i64("visits", 100).await;
        // This test is about exactness, not latency: on a loaded 2-core CI machine running a
        // debug build, 1,000 simultaneous requests can queue longer than the default 500 ms
        // Redis timeout, which would (correctly) answer 503. The outage tests own that timeout.
        let app = App::builder(&redis)
            .env("REDIS_TIMEOUT", "10s")
            .start()
            .await;
        let url = app.url("/count");
        let tasks: Vec<_> = (0..1000)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move { get(&url).await })
            })
            .collect();
        let mut seen = Vec::with_capacity(1000);
        for task in tasks {
            let resp = match task.await {
                Ok(Ok(resp)) => resp,
                Ok(Err(e)) => panic!("a /count request failed: {e}"),
                Err(e) => panic!("a request task failed: {e}"),
            };
            assert_eq!(resp.status, 200, "{}", resp.text());
            seen.push(visits_shown(&resp.text()));
        }
        // Each INCR returned a distinct value: together exactly 101..=1100.
        seen.sort_unstable();
        let expected: Vec<i64> = (101..=1100).collect();
        assert!(seen == expected, "visit numbers are not exactly 101..=1100");
        assert_eq!(redis.get_i64("visits").await, 1100);
        assert_eq!(
            get_or_panic(&app.url("/api/visits")).await.json(),
            serde_json::json!({"visits": 1100})
        );
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn redis_stopped_and_restarted_while_the_app_runs() {
    tokio::time::timeout(T, async {
        let mut redis = RedisServer::start().await;
        let app = App::start(&redis).await;
        for _ in 0..3 {
            assert_eq!(get_or_panic(&app.url("/count")).await.status, 200);
        }
        redis.stop().await;
        assert_degraded(&app).await;
        // Still degraded on a second round: no request hangs on a dead connection.
        assert_degraded(&app).await;

        redis.start_again().await;
        let since = Instant::now();
        // The AOF kept the 3 visits; the 503s counted nothing; the recovery probe counted one.
        let visits = assert_recovers(&app, since).await;
        assert_eq!(visits, 4);

        let metrics = get_or_panic(&app.url("/metrics")).await.text();
        assert!(metrics.contains("app_http_requests_total{route=\"/count\",status=\"503\"}"));
        assert!(
            !metrics.contains("app_redis_errors_total 0\n"),
            "Redis errors are counted"
        );
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn redis_killed_then_restarted() {
    tokio::time::timeout(T, async {
        let mut redis = RedisServer::start().await;
        let app = App::start(&redis).await;
        assert_eq!(get_or_panic(&app.url("/count")).await.status, 200);
        redis.kill();
        assert_degraded(&app).await;
        redis.start_again().await;
        assert_recovers(&app, Instant::now()).await;
    })
    .await
    .expect("test timed out");
}

/// Resumes a SIGSTOPped process even when the test fails.
struct Frozen(u32);

impl Frozen {
    fn freeze(pid: u32) -> Frozen {
        assert!(pid > 0, "no pid");
        // SAFETY: kill(2) on the redis-server this test started and has not reaped.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGSTOP) };
        Frozen(pid)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { libc::kill(self.0 as libc::pid_t, libc::SIGCONT) };
    }
}

#[tokio::test]
async fn hung_redis_answers_503_within_a_second_and_recovers() {
    tokio::time::timeout(T, async {
        let redis = RedisServer::start().await;
        let app = App::start(&redis).await;
        assert_eq!(get_or_panic(&app.url("/count")).await.status, 200);
        let frozen = Frozen::freeze(redis.pid());
        // A hung Redis accepts TCP but never answers: only timeouts save us here.
        assert_degraded(&app).await;
        drop(frozen);
        assert_recovers(&app, Instant::now()).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn app_started_while_redis_is_down_serves_pages_then_recovers() {
    tokio::time::timeout(T, async {
        let mut redis = RedisServer::start().await;
        redis.set_i64("visits", 10).await;
        redis.stop().await;
        let app = App::start(&redis).await;
        assert_degraded(&app).await;
        let home = get_or_panic(&app.url("/")).await;
        assert!(home.text().contains("Welcome to Visit Counter"));
        assert!(get_or_panic(&app.url("/about"))
            .await
            .text()
            .contains("Redis"));

        redis.start_again().await;
        let visits = assert_recovers(&app, Instant::now()).await;
        assert_eq!(visits, 11, "the persisted count plus the recovery visit");
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn redis_url_wins_over_host_and_port() {
    tokio::time::timeout(T, async {
        let redis = RedisServer::start().await;
        // REDIS_HOST/REDIS_PORT point nowhere useful; REDIS_URL points at the real server, db 3.
        let app = App::builder(&redis)
            .env("REDIS_HOST", "127.0.0.1")
            .env("REDIS_PORT", &e2e::free_port().to_string())
            .env(
                "REDIS_URL",
                &format!("redis://127.0.0.1:{}/3", redis.port()),
            )
            .start()
            .await;
        let url = app.url("/count");
        let counted = wait_until_async(Duration::from_secs(5), || async {
            matches!(get(&url).await, Ok(resp) if resp.status == 200)
        })
        .await;
        assert!(counted, "REDIS_URL was not used; log:\n{}", app.log());
        let db3 =
            redis::Client::open(format!("redis://127.0.0.1:{}/3", redis.port())).expect("db 3 url");
        let mut conn = db3
            .get_multiplexed_async_connection()
            .await
            .expect("redis connection");
        let value: Option<i64> = redis::cmd("GET")
            .arg("visits")
            .query_async(&mut conn)
            .await
            .expect("GET");
        assert_eq!(value, Some(1), "the count went to database 3 of REDIS_URL");
        assert_eq!(redis.get_i64("visits").await, 0, "database 0 untouched");
    })
    .await
    .expect("test timed out");
}
