//! Fault: a rolling restart under steady load.
//!
//! Each of three replicas in turn gets SIGTERM (it stops accepting and drains), is started again on the
//! same port, and must be back in the rotation before the next one goes. Through all of it, a steady load of
//! `/count` requests through the balancer must see zero failures, and Redis must rise by exactly the number
//! of successful responses: the balancer retries only what was never sent, the app finishes what it
//! accepted, so nothing is lost and nothing is counted twice.

use std::time::{Duration, Instant};

use e2e::load::Load;
use e2e::stack::REPLICA_SHUTDOWN_DELAY;
use e2e::{Stack, COUNTER_KEY};

const WORKERS: usize = 8;
const PACE: Duration = Duration::from_millis(2);
const HEALTH_INTERVAL: Duration = Duration::from_millis(300);
const RESOLVE_INTERVAL: Duration = Duration::from_millis(300);
const ROUNDS: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_under_load_fails_nothing_and_counts_each_visit_once() {
    e2e::bounded("rolling restart test", rolling_restart("http1")).await;
}

/// The same with HTTP/2 to the replicas: a replica's graceful stop is a GOAWAY, and the requests
/// it did not take must move on without a failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_over_h2c_fails_nothing_and_counts_each_visit_once() {
    e2e::bounded("rolling restart test (h2c)", rolling_restart("h2c")).await;
}

async fn rolling_restart(protocol: &str) {
    let mut stack = Stack::start(
        3,
        &[
            "--upstream-protocol",
            protocol,
            "--health-interval",
            "300ms",
            "--resolve-interval",
            "300ms",
            "--fail-timeout",
            "2s",
            "--connect-timeout",
            "500ms",
        ],
    )
    .await;
    let before = stack.redis.get_i64(COUNTER_KEY).await;
    let load = Load::start(
        &stack.balancer.url("/count"),
        WORKERS,
        PACE,
        Duration::from_secs(60),
    );
    load.wait_until_each_serves(&stack.apps).await;

    // Several full rounds: the restart window is short, so one round can miss a race a later one hits.
    let replicas = stack.apps.len();
    for i in (0..ROUNDS).flat_map(|_| 0..replicas) {
        restart_and_wait_until_it_rejoins(&mut stack, &load, i).await;
    }
    // Keep the load on a little after the last restart, so the restored rotation is exercised too.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let report = load.stop().await;
    let delta = stack.redis.get_i64(COUNTER_KEY).await - before;
    eprintln!(
        "rolling restart: sent {} in {:?}, ok {}, failed {}, counter delta {delta}, outcomes {}, served by {}",
        report.sent(),
        report.elapsed,
        report.ok(),
        report.failed(),
        report.outcomes(),
        report.served_by()
    );
    if report.failed() > 0 {
        print_the_balancer_log_around_failures(&stack);
    }
    assert_eq!(
        report.failed(),
        0,
        "requests failed during the rolling restart: {:?}",
        report.failures().iter().take(10).collect::<Vec<_>>()
    );
    assert_eq!(
        delta,
        report.ok() as i64,
        "counter delta must equal the successful /count responses"
    );
}

/// SIGTERMs replica `i` (it drains and must exit cleanly within 15 s), starts it again on the same port and
/// waits until the load reaches it again, within one health interval and one resolve interval (+2 s).
async fn restart_and_wait_until_it_rejoins(stack: &mut Stack, load: &Load, i: usize) {
    let port = stack.apps[i].addr().port();
    let name = stack.apps[i].name().to_string();
    let term_at = Instant::now();
    stack.apps[i].sigterm();
    let exit = stack.apps[i].wait_exit(Duration::from_secs(15)).await;
    let drained = term_at.elapsed();
    match exit {
        Some(status) => assert!(
            status.success(),
            "{name} exited with {status} after SIGTERM"
        ),
        None => panic!("{name} did not exit within 15 s of SIGTERM"),
    }
    stack.apps[i] = e2e::App::builder(&stack.redis)
        .port(port)
        .name(&name)
        .env("SHUTDOWN_DELAY", REPLICA_SHUTDOWN_DELAY)
        .start()
        .await;
    let ready_at = Instant::now();
    let rejoined = load
        .wait_served_by(&name, ready_at, Duration::from_secs(10))
        .await;
    let Some(rejoined) = rejoined else {
        panic!("{name} restarted on port {port} but got no traffic within 10 s");
    };
    eprintln!(
        "rolling restart: {name}: drained and exited in {drained:?}, down (SIGTERM to ready) {:?}, \
         rejoined {:?} after ready",
        ready_at - term_at,
        rejoined.saturating_duration_since(ready_at)
    );
    assert!(
        rejoined.saturating_duration_since(ready_at)
            <= HEALTH_INTERVAL + RESOLVE_INTERVAL + Duration::from_secs(2),
        "{name} took too long to rejoin"
    );
}

/// The balancer's log lines that may explain a failure (502s, warnings, errors), at most 20.
fn print_the_balancer_log_around_failures(stack: &Stack) {
    let log = stack.balancer.log();
    let notable: Vec<&str> = log
        .lines()
        .filter(|l| !l.contains("status=200"))
        .filter(|l| l.contains("502") || l.contains("WARN") || l.contains("ERROR"))
        .take(20)
        .collect();
    eprintln!(
        "rolling restart: balancer log around the failures:\n{}",
        notable.join("\n")
    );
}
