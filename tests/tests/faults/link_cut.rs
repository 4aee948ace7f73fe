//! Fault: a replica on its own test host whose network link is cut.
//!
//! The third replica runs in a network namespace this test creates, reached over a veth pair in a private
//! /30 (traffic to it never leaves the machine); it reaches Redis through a relay on the host end. Cutting
//! the link (the namespace end goes down) makes packets vanish, so new connects time out instead of being
//! refused. The balancer must take the replica out within `--health-interval` + `--connect-timeout`, retry
//! connect timeouts on another replica (never sent, so safe), and fail at most the requests already sent
//! to it (one per client at most, each a 504 after `--upstream-timeout`). When the link comes back the
//! replica rejoins. Where namespaces cannot be made (not root, no `ip`), the test fails saying so, or skips
//! with a SKIP line when `E2E_ALLOW_SKIP=1` ([`e2e::skip::or_fail`]).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use e2e::balancer_status::wait_health;
use e2e::load::{Load, LoadReport, Outcome};
use e2e::netns::{ns_port, Netns, Relay};
use e2e::{Balancer, COUNTER_KEY};

const WORKERS: usize = 8;
const PACE: Duration = Duration::from_millis(2);
const HEALTH_INTERVAL: Duration = Duration::from_millis(300);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
const SLACK: Duration = Duration::from_secs(1);
const NS_REPLICA: &str = "replica-netns";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_behind_a_cut_link_is_taken_out_within_connect_timeout() {
    e2e::bounded("link cut test", link_cut("http1")).await;
}

/// The same with HTTP/2 to the replicas: a stream caught in the cut ends by the upstream timeout or
/// by the connection's PING keep-alive, whichever comes first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_h2c_a_replica_behind_a_cut_link_is_taken_out_within_connect_timeout() {
    e2e::bounded("link cut test (h2c)", link_cut("h2c")).await;
}

async fn link_cut(protocol: &str) {
    let Some(netns) = the_namespace() else {
        return;
    };
    let redis = e2e::RedisServer::start().await;
    let relay = Relay::start(
        SocketAddr::new(netns.host_ip.into(), 0),
        SocketAddr::from(([127, 0, 0, 1], redis.port())),
    )
    .await;
    let app1 = e2e::App::builder(&redis).name("replica-1").start().await;
    let app2 = e2e::App::builder(&redis).name("replica-2").start().await;

    let (ns_app, ns_addr) = start_the_replica_in_the_namespace(&netns, &relay).await;

    let upstreams = format!("{},{},{ns_addr}", app1.addr(), app2.addr());
    let balancer = balancer_with_the_bounds_timeouts(&upstreams, protocol).await;
    let before = redis.get_i64(COUNTER_KEY).await;
    let load = Load::start(
        &balancer.url("/count"),
        WORKERS,
        PACE,
        Duration::from_secs(40),
    );
    let warm = load
        .wait_served_by(NS_REPLICA, load.started, Duration::from_secs(10))
        .await;
    assert!(
        warm.is_some(),
        "the replica in the namespace got no traffic before the cut"
    );

    let (cut_at, out_after, restore_at) =
        cut_then_restore_the_link(&netns, &balancer, ns_addr).await;
    let rejoined = load
        .wait_served_by(NS_REPLICA, restore_at, Duration::from_secs(10))
        .await;
    let report = load.stop().await;
    let delta = redis.get_i64(COUNTER_KEY).await - before;
    let rejoin = rejoined.map(|t| t.saturating_duration_since(restore_at));
    eprintln!(
        "link cut: sent {} in {:?}, ok {}, failed {}, counter delta {delta}, taken out {out_after:?} after \
         the cut, rejoined {rejoin:?} after the link came back, outcomes {}, served by {}",
        report.sent(),
        report.elapsed,
        report.ok(),
        report.failed(),
        report.outcomes(),
        report.served_by()
    );

    let Some(out_after) = out_after else {
        panic!("the balancer never marked the cut-off replica unhealthy");
    };
    assert!(
        out_after <= HEALTH_INTERVAL + CONNECT_TIMEOUT + SLACK,
        "the cut-off replica was taken out {out_after:?} after the cut"
    );
    assert!(
        report.failed() <= WORKERS,
        "{} requests failed; at most one per client ({WORKERS}) may be caught in the cut link",
        report.failed()
    );
    assert_failures_are_clean_and_inside_the_cut_window(&report, cut_at, out_after);
    assert!(delta >= report.ok() as i64, "a visit was lost");
    assert!(
        delta <= (report.ok() + report.failed()) as i64,
        "a visit was counted twice"
    );
    assert!(
        rejoin.is_some(),
        "the replica did not rejoin after the link came back"
    );
    drop(ns_app);
}

/// The test's network namespace. Where it cannot be made the test fails saying why, or, with
/// `E2E_ALLOW_SKIP=1`, prints SKIP and gets `None`.
fn the_namespace() -> Option<Netns> {
    match Netns::create("cut") {
        Ok(ns) => Some(ns),
        Err(why) => {
            e2e::skip::or_fail(&format!(
                "cannot make a network namespace: {why}; install iproute2 (ip) and run as root"
            ));
            None
        }
    }
}

/// Starts the third replica inside `netns`, reaching Redis through `relay`, and waits until it answers.
async fn start_the_replica_in_the_namespace(
    netns: &Netns,
    relay: &Relay,
) -> (e2e::Process, SocketAddr) {
    let ns_addr = netns.ns_addr(ns_port());
    let mut cmd = netns.command(&e2e::bin_path("app"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .env("REDIS_HOST", netns.host_ip.to_string())
        .env("REDIS_PORT", relay.addr.port().to_string())
        .env("APP_LISTEN", ns_addr.to_string())
        .env("REPLICA_NAME", NS_REPLICA);
    let mut ns_app = match e2e::Process::spawn(NS_REPLICA, cmd) {
        Ok(p) => p,
        Err(e) => panic!("cannot start the replica in namespace {}: {e}", netns.name),
    };
    let about = format!("http://{ns_addr}/about");
    let ready = e2e::wait_until_async(Duration::from_secs(20), || async {
        e2e::http::get(&about).await.is_ok()
    })
    .await;
    ns_app.assert_running();
    assert!(
        ready,
        "the replica in the namespace did not answer on {ns_addr}"
    );
    (ns_app, ns_addr)
}

/// Every failure is a clean 502/504 of a request in flight at the cut or sent before the balancer had
/// taken the replica out.
fn assert_failures_are_clean_and_inside_the_cut_window(
    report: &LoadReport,
    cut_at: Instant,
    out_after: Duration,
) {
    for s in report.failures() {
        assert!(
            matches!(s.outcome, Outcome::Status(504) | Outcome::Status(502)),
            "a request caught in the cut link must get a clean 502/504, not {:?}",
            s.outcome
        );
        assert!(
            // In flight at the cut, or sent before the balancer had taken the replica out.
            s.finished >= cut_at && s.started <= cut_at + out_after + SLACK,
            "a request failed outside the window between the cut and the replica being taken out: {s:?}"
        );
    }
}

/// The balancer in front of `upstreams`, with the intervals and timeouts this test's bounds are built on
/// (`HEALTH_INTERVAL`, `CONNECT_TIMEOUT`, `UPSTREAM_TIMEOUT`).
async fn balancer_with_the_bounds_timeouts(upstreams: &str, protocol: &str) -> Balancer {
    Balancer::builder()
        .upstreams(upstreams)
        .args(&[
            "--health-interval",
            "300ms",
            "--connect-timeout",
            "500ms",
            "--upstream-timeout",
            "2s",
            "--resolve-interval",
            "300ms",
            "--fail-timeout",
            "10s",
            "--upstream-protocol",
            protocol,
        ])
        .start()
        .await
}

/// Cuts the namespace's link, waits until the balancer marks `ns_addr` unhealthy (at most 10 s) and past
/// the upstream timeout, then restores the link. Returns when it was cut, how long until the replica was
/// out (None: never), and when it was restored.
async fn cut_then_restore_the_link(
    netns: &Netns,
    balancer: &Balancer,
    ns_addr: SocketAddr,
) -> (Instant, Option<Duration>, Instant) {
    let cut_at = Instant::now();
    if let Err(e) = netns.cut() {
        panic!("cannot cut the link: {e}");
    }
    let out_after = wait_health(balancer, ns_addr, false, Duration::from_secs(10)).await;
    // Past the upstream timeout, so whatever was sent into the cut link has ended.
    tokio::time::sleep(UPSTREAM_TIMEOUT + Duration::from_millis(500)).await;
    let restore_at = Instant::now();
    if let Err(e) = netns.restore() {
        panic!("cannot restore the link: {e}");
    }
    (cut_at, out_after, restore_at)
}
