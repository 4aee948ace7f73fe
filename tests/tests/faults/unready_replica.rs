//! Fault: a new replica that is not ready yet. Under load through the balancer, a third replica appears in
//! DNS (a scale-up) while it cannot reach Redis for its first 3 s: it listens, but its `/health` answers 503
//! and a visit it served would fail. The balancer must list it as `pending` and send it no request until its
//! health check passes (which it cannot before Redis is reachable), then give it its share. No request of the
//! load fails, and the counter rises by exactly the successes.
//!
//! The balancer runs in a mount namespace with its own `/etc/hosts`, so the replica really appears in name
//! resolution mid-test; its Redis is reached through a relay that starts 3 s after the replica did.
//!
//! And the cold start: with no backend ever healthy, pending ones are still tried, as marked-out ones are.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use e2e::balancer_status::{backend_entry, status};
use e2e::load::{quantile, Load, LoadReport};
use e2e::namespaced_balancer::NamespacedBalancer;
use e2e::netns::Relay;
use e2e::{App, AppBuilder, RedisServer, COUNTER_KEY};

/// How long the new replica cannot reach Redis.
const UNREADY: Duration = Duration::from_secs(3);
/// How long a wait for a state gives up after (not the regression check: see the bounds below).
const FOLLOW: Duration = Duration::from_secs(10);
/// Regression bound on how soon the new name is listed `pending` after the hosts change: measured
/// 254-284 ms in four runs at abc4bce/faa1c2c (same app and balancer code) on the 2-core test machine under load (258 ms in docs/RELIABILITY.md;
/// the resolve interval is 300 ms); about 5x that.
const LISTED_BOUND: Duration = Duration::from_millis(1500);
/// Regression bound on how soon it is `active`, and first served, once Redis is reachable: measured
/// 182-530 ms in the same runs (196-422 ms in docs/RELIABILITY.md: the app reconnects every 250 ms, checks
/// run every 300 ms); about 5x the higher figure.
const JOIN_BOUND: Duration = Duration::from_millis(2500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_replica_gets_no_request_before_its_health_check_passes() {
    e2e::bounded("unready replica test", unready("http1")).await;
}

/// The same with HTTP/2 to the replicas: the probe and the traffic both speak h2c.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_h2c_a_new_replica_gets_no_request_before_its_health_check_passes() {
    e2e::bounded("unready replica test (h2c)", unready("h2c")).await;
}

/// Cold start: when no backend has passed a check, the pending ones are tried (as when all are marked out),
/// so a balancer whose only replica cannot reach Redis still serves what needs no Redis instead of 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_backend_ever_healthy_the_pending_ones_are_tried() {
    e2e::bounded("cold start test", async {
        let app = AppBuilder::for_redis_port(e2e::net::dead_port())
            .name("lonely")
            .start()
            .await;
        let b = e2e::Balancer::builder()
            .upstreams(&app.addr().to_string())
            .args(&["--health-interval", "300ms"])
            .start()
            .await;
        let st = status(&b.admin_url("/status")).await;
        let entry = backend_entry(&st, &app.addr().to_string());
        assert_eq!(entry["state"], "pending", "its /health fails: {st}");
        assert_eq!(st["healthy_backends"], 0, "{st}");
        let about = e2e::http::get(&b.url("/about")).await.expect("GET /about");
        assert_eq!(
            about.status, 200,
            "a pending replica is tried when none is healthy"
        );
        assert_eq!(about.header("x-served-by"), Some("lonely"));
        // What needs Redis fails at the replica, not with the balancer's own 503.
        let count = e2e::http::get(&b.url("/count")).await.expect("GET /count");
        assert_eq!(
            count.header("x-served-by"),
            Some("lonely"),
            "status {}",
            count.status
        );
    })
    .await;
}

/// Two free ports, different: free_port() may hand out the same unbound port twice.
fn two_distinct_free_ports() -> (u16, u16) {
    let first = e2e::free_port();
    let second = std::iter::repeat_with(e2e::free_port)
        .find(|p| *p != first)
        .unwrap_or_default();
    (first, second)
}

fn hosts(names: &[&str]) -> String {
    let mut s = String::from("127.0.0.1 localhost\n");
    for n in names {
        s.push_str(&format!("127.0.0.1 {n}\n"));
    }
    s
}

async fn unready(protocol: &str) {
    let redis = RedisServer::start().await;
    let app1 = App::builder(&redis).name("replica-1").start().await;
    let app2 = App::builder(&redis).name("replica-2").start().await;
    // The third replica's port is known up front (the balancer is configured with its name); it starts
    // only once the load runs, and its Redis port is a relay that does not listen yet.
    let (port3, relay_port) = two_distinct_free_ports();
    let upstreams = format!(
        "replica-1:{},replica-2:{},replica-3:{port3}",
        app1.addr().port(),
        app2.addr().port()
    );
    let Some(b) = namespaced_balancer(&upstreams, protocol).await else {
        return;
    };
    b.set_hosts(&hosts(&["replica-1", "replica-2"]));
    for app in [&app1, &app2] {
        wait_state(&b, app.addr(), "active").await;
    }
    let before = redis.get_i64(COUNTER_KEY).await;
    let load = Load::start(
        &b.url("/count"),
        8,
        Duration::from_millis(2),
        Duration::from_secs(40),
    );

    // Scale-up: the replica starts and its name resolves now.
    let app3 = AppBuilder::for_redis_port(relay_port)
        .port(port3)
        .name("replica-3")
        .start()
        .await;
    let reachable_at = Instant::now() + UNREADY;
    b.set_hosts(&hosts(&["replica-1", "replica-2", "replica-3"]));
    let listed = wait_state(&b, app3.addr(), "pending").await;
    let looks = pending_until(&b, app3.addr(), reachable_at).await;
    let relay = Relay::start(
        SocketAddr::from(([127, 0, 0, 1], relay_port)),
        SocketAddr::from(([127, 0, 0, 1], redis.port())),
    )
    .await;
    let reachable = Instant::now();
    let joined = wait_state(&b, app3.addr(), "active").await;
    let first = load.wait_served_by("replica-3", reachable, FOLLOW).await;
    // Let it take its share for a while.
    let shared = wait_until_it_served_100(&b, app3.addr()).await;
    let report = load.stop().await;
    let delta = redis.get_i64(COUNTER_KEY).await - before;
    summary(
        &report,
        delta,
        listed,
        looks,
        joined,
        first.map(|t| t - reachable),
    );

    assert!(
        first.is_some(),
        "the replica never served after its health passed"
    );
    assert_joined_within_the_bounds(listed, joined, first.map(|t| t - reachable));
    assert!(shared, "the replica did not take its share after joining");
    assert_eq!(
        report.failed(),
        0,
        "a request failed: {:?}",
        report.failures().first()
    );
    assert_it_served_nothing_sent_before(&report, "replica-3", reachable);
    assert_eq!(
        delta,
        report.ok() as i64,
        "the counter must rise by exactly the successes"
    );
    drop(relay);
}

/// The balancer in its own mount namespace (its `/etc/hosts` set by the test), resolving and probing every
/// 300 ms; None where namespaces cannot be made and `E2E_ALLOW_SKIP=1` (else the test fails saying so).
async fn namespaced_balancer(upstreams: &str, protocol: &str) -> Option<NamespacedBalancer> {
    NamespacedBalancer::start(
        upstreams,
        &[
            "--resolve-interval",
            "300ms",
            "--health-interval",
            "300ms",
            "--upstream-protocol",
            protocol,
        ],
    )
    .await
}

/// Listed `pending` within [`LISTED_BOUND`] of the hosts change; `active` and first served within
/// [`JOIN_BOUND`] of Redis being reachable.
fn assert_joined_within_the_bounds(listed: Duration, joined: Duration, first: Option<Duration>) {
    assert!(
        listed <= LISTED_BOUND,
        "listed pending {listed:?} after the hosts change, over {LISTED_BOUND:?} (measured 0.25-0.28 s)"
    );
    assert!(
        joined <= JOIN_BOUND,
        "active {joined:?} after Redis became reachable, over {JOIN_BOUND:?} (measured 0.18-0.53 s)"
    );
    if let Some(first) = first {
        assert!(
            first <= JOIN_BOUND,
            "first request to it {first:?} after Redis became reachable, over {JOIN_BOUND:?} (measured 0.18-0.51 s)"
        );
    }
}

/// Polls `/status` until the backend at `addr` has served 100 requests (within `FOLLOW`).
async fn wait_until_it_served_100(b: &NamespacedBalancer, addr: SocketAddr) -> bool {
    let url = b.admin_url("/status");
    let addr = addr.to_string();
    e2e::wait_until_async(FOLLOW, || async {
        backend_entry(&status(&url).await, &addr)["requests_total"].as_u64() >= Some(100)
    })
    .await
}

/// No request sent before `reachable` (when the replica could first pass a health check) was served by
/// `replica`.
fn assert_it_served_nothing_sent_before(report: &LoadReport, replica: &str, reachable: Instant) {
    let early: Vec<_> = report
        .samples
        .iter()
        .filter(|s| s.served_by.as_deref() == Some(replica) && s.started < reachable)
        .collect();
    assert!(
        early.is_empty(),
        "the replica served requests sent before it could pass a health check: {:?}",
        early.first()
    );
}

/// Polls `/status` until the backend at `addr` is in `state`; returns how long it took.
async fn wait_state(b: &NamespacedBalancer, addr: SocketAddr, state: &str) -> Duration {
    let began = Instant::now();
    let url = b.admin_url("/status");
    let wanted = addr.to_string();
    let reached = e2e::wait_until_async(FOLLOW, || async {
        status(&url).await["backends"]
            .as_array()
            .is_some_and(|all| {
                all.iter()
                    .any(|e| e["address"] == wanted.as_str() && e["state"] == state)
            })
    })
    .await;
    assert!(
        reached,
        "{addr} not {state} within {FOLLOW:?}: {}\nlog:\n{}",
        status(&url).await,
        b.process.log_tail(30)
    );
    began.elapsed()
}

/// Until `until`, every look at `/status` must show the backend pending, unhealthy and without a request.
async fn pending_until(b: &NamespacedBalancer, addr: SocketAddr, until: Instant) -> usize {
    let url = b.admin_url("/status");
    let mut looks = 0;
    while Instant::now() < until {
        let st = status(&url).await;
        let e = backend_entry(&st, &addr.to_string());
        assert_eq!(e["state"], "pending", "{st}");
        assert_eq!(e["healthy"], false, "{st}");
        assert_eq!(
            e["requests_total"], 0,
            "a pending replica got a request: {st}"
        );
        assert!(
            e["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("pending")),
            "{st}"
        );
        looks += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        looks >= 5,
        "only {looks} looks at /status while it was pending"
    );
    looks
}

fn summary(
    report: &LoadReport,
    delta: i64,
    listed: Duration,
    looks: usize,
    joined: Duration,
    first: Option<Duration>,
) {
    let latencies: Vec<Duration> = report.samples.iter().map(|s| s.latency()).collect();
    eprintln!(
        "unready replica: sent {} in {:?}, ok {}, failed {}, counter delta {delta}, served by {}; \
         listed pending {listed:?} after the hosts change, pending on all {looks} looks over {UNREADY:?}, \
         active {joined:?} after Redis became reachable, first request to it {first:?} after that; \
         p50 {:?} p99 {:?}",
        report.sent(),
        report.elapsed,
        report.ok(),
        report.failed(),
        report.served_by(),
        quantile(latencies.clone(), 0.5),
        quantile(latencies, 0.99),
    );
}
