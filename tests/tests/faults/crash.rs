//! Fault: a replica crashes (SIGKILL) under load, and comes back.
//!
//! What was in flight on the killed replica may fail (the proxy cannot know whether the app counted it, so
//! it must not retry it); everything else must succeed, because a refused connect is retried on the next
//! replica. The counter may rise by the in-flight requests the replica finished before dying, never by more
//! than successes plus failures (a retry that counted a visit twice would break that). Restarted on a new
//! port the balancer knows of (a spare upstream, refused until then), the replica rejoins within
//! `--health-interval` plus one `--resolve-interval`.

use std::time::{Duration, Instant};

use e2e::balancer_status::backend_status;
use e2e::load::{Load, LoadReport, Outcome};
use e2e::{Stack, COUNTER_KEY};

const WORKERS: usize = 8;
const PACE: Duration = Duration::from_millis(2);
const HEALTH_INTERVAL: Duration = Duration::from_millis(300);
const RESOLVE_INTERVAL: Duration = Duration::from_millis(300);
/// Allowance for scheduling on a loaded 2-core machine; the bound is about order, not speed.
const SLACK: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_replica_fails_only_its_in_flight_requests_and_rejoins() {
    e2e::bounded("crash test", crash("http1")).await;
}

/// The same with HTTP/2 to the replicas: the killed replica's connection dies with its streams.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_replica_over_h2c_fails_only_its_in_flight_requests_and_rejoins() {
    e2e::bounded("crash test (h2c)", crash("h2c")).await;
}

/// What the client and the balancer saw in flight on the victim at the moment it was killed.
struct Kill {
    at: Instant,
    client_in_flight: usize,
    balancer_in_flight: Option<i64>,
}

async fn crash(protocol: &str) {
    // A fourth upstream the balancer knows of from the start, where nothing listens until the crashed
    // replica is started again there (as a scheduler would place it on a new port). Held bound until then:
    // other tests' many short connections would otherwise take it as their ephemeral port.
    let (spare, reservation) = e2e::net::reserved_port();
    let mut stack = stack_with_a_spare_upstream(protocol, spare).await;
    let before = stack.redis.get_i64(COUNTER_KEY).await;
    let load = Load::start(
        &stack.balancer.url("/count"),
        WORKERS,
        PACE,
        Duration::from_secs(60),
    );
    load.wait_until_each_serves(&stack.apps).await;

    let victim = 1;
    let port = stack.apps[victim].addr().port();
    let name = stack.apps[victim].name().to_string();
    let kill = kill_and_wait_for_the_survivors(&mut stack, &load, victim).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    drop(reservation);
    stack.apps[victim] = e2e::App::builder(&stack.redis)
        .port(spare)
        .name(&name)
        .start()
        .await;
    let ready_at = Instant::now();
    let rejoined = load
        .wait_served_by(&name, ready_at, Duration::from_secs(10))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let report = load.stop().await;
    let delta = stack.redis.get_i64(COUNTER_KEY).await - before;

    let Some(rejoined) = rejoined else {
        panic!("{name} restarted on port {spare} (was {port}) but got no traffic within 10 s");
    };
    let rejoin = rejoined.saturating_duration_since(ready_at);
    assert_only_the_in_flight_failed_and_no_visit_was_lost_or_doubled(
        &report, &kill, delta, rejoin,
    );
    assert!(
        rejoin <= HEALTH_INTERVAL + RESOLVE_INTERVAL + SLACK,
        "{name} rejoined {rejoin:?} after it was ready; expected within health interval + one resolve"
    );
}

/// Three replicas and `spare`, a fourth upstream where nothing listens yet.
async fn stack_with_a_spare_upstream(protocol: &str, spare: u16) -> Stack {
    Stack::start_with_spares(
        3,
        &[spare],
        &[
            "--upstream-protocol",
            protocol,
            "--health-interval",
            "300ms",
            "--resolve-interval",
            "300ms",
            // Long enough that only an active health check pass can bring the replica back in time.
            "--fail-timeout",
            "10s",
            "--connect-timeout",
            "500ms",
        ],
    )
    .await
}

/// SIGKILLs replica `victim` under load, noting what was in flight, and waits until traffic reached
/// both survivors after the kill.
async fn kill_and_wait_for_the_survivors(stack: &mut Stack, load: &Load, victim: usize) -> Kill {
    let balancer_in_flight = backend_status(&stack.balancer, stack.apps[victim].addr())
        .await
        .and_then(|b| b.get("in_flight").and_then(|v| v.as_i64()));
    let client_in_flight = load.in_flight();
    let at = Instant::now();
    stack.apps[victim].kill();

    // Traffic must move to the survivors: wait until both answered after the kill.
    for survivor in (0..stack.apps.len()).filter(|&i| i != victim) {
        let moved = load
            .wait_served_by(stack.apps[survivor].name(), at, Duration::from_secs(5))
            .await;
        assert!(
            moved.is_some(),
            "no traffic reached {} after the crash",
            stack.apps[survivor].name()
        );
    }
    Kill {
        at,
        client_in_flight,
        balancer_in_flight,
    }
}

/// At most the requests in flight at the kill failed, each with a clean 502, and the counter rose by
/// at least the successes and at most successes plus failures.
fn assert_only_the_in_flight_failed_and_no_visit_was_lost_or_doubled(
    report: &LoadReport,
    kill: &Kill,
    delta: i64,
    rejoin: Duration,
) {
    let client_in_flight = kill.client_in_flight;
    let failed_after_kill = report
        .failures()
        .iter()
        .filter(|s| s.started > kill.at)
        .count();
    eprintln!(
        "crash: sent {} in {:?}, ok {}, failed {} ({failed_after_kill} of them sent after the kill), \
         in flight at the kill: {client_in_flight} (client side, all replicas), {:?} \
         (balancer /status, victim), counter delta {delta}, rejoin on a new port {rejoin:?} after ready, \
         outcomes {}",
        report.sent(),
        report.elapsed,
        report.ok(),
        report.failed(),
        kill.balancer_in_flight,
        report.outcomes()
    );
    // Until the first failure comes back the balancer cannot know the replica is gone: a request it
    // sent on the victim's connection in that window (the client may have started it just after
    // `kill.at`: SIGKILL and the kernel's reset take a moment) may fail like one already in flight.
    // Seen once in 5 runs over h2c: 2 failures, 1 in flight, both started within 25 us of the kill.
    let noticed = report.failures().iter().map(|s| s.finished).min();
    let sent_before_noticed = report
        .failures()
        .iter()
        .filter(|s| s.started > kill.at && noticed.is_some_and(|n| s.started < n))
        .count();
    let allowed = client_in_flight + sent_before_noticed;
    assert!(
        report.failed() <= allowed,
        "{} requests failed, more than the {client_in_flight} in flight when the replica died and the \
         {sent_before_noticed} sent before its first failure came back: {:?}",
        report.failed(),
        report.failures().iter().take(10).collect::<Vec<_>>()
    );
    for failure in report.failures() {
        assert_eq!(
            failure.outcome,
            Outcome::Status(502),
            "a request to the crashed replica must get a clean 502 from the balancer, not {:?}",
            failure.outcome
        );
    }
    assert!(
        delta >= report.ok() as i64,
        "counter delta {delta} is below the {} successful responses: a visit was lost",
        report.ok()
    );
    assert!(
        delta <= (report.ok() + report.failed()) as i64,
        "counter delta {delta} exceeds successes + failures ({}): a visit was counted twice",
        report.ok() + report.failed()
    );
}
