//! Fault: a replica that wedges in service: it passed its health check and joined the rotation, then stops
//! answering anything (requests and probes alike) while still accepting connections.
//!
//! Two real replicas and one such backend behind the balancer (`--upstream-timeout 2s`). A replica that hangs
//! from the start never joins (the balancer admits a backend only after a passing probe), so this one answers
//! probes until its first request arrives and wedges then, as a replica that deadlocks under load. What goes to the
//! hung one must come back as 504 once the timeout passes, never as a hang or a retry (the request was sent,
//! so the balancer cannot know it was not counted); the balancer takes the backend out; the other replicas'
//! latency stays bounded meanwhile; and after it is out, nothing fails. A 504 never reached Redis, so the
//! counter rises by exactly the successes.

use std::time::{Duration, Instant};

use e2e::backends::HungBackend;
use e2e::balancer_status::wait_health;
use e2e::load::{quantile, Load, LoadReport, Outcome, Sample};
use e2e::{Balancer, COUNTER_KEY};

const WORKERS: usize = 8;
const PACE: Duration = Duration::from_millis(2);
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// The regression bound on the healthy replicas' p99 while the hung one is in the rotation: measured
/// 3.6-7.7 ms in four runs at abc4bce/faa1c2c (same app and balancer code) on the 2-core test machine under load,
/// 26.6 ms in docs/RELIABILITY.md; about 5x the highest figure. (Reaching `UPSTREAM_TIMEOUT` would mean the hung backend held the others up.)
const P99_BOUND: Duration = Duration::from_millis(130);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_replica_gets_504_is_taken_out_and_others_keep_serving() {
    e2e::bounded("hung replica test", hung()).await;
}

async fn hung() {
    let redis = e2e::RedisServer::start().await;
    let app1 = e2e::App::builder(&redis).name("replica-1").start().await;
    let app2 = e2e::App::builder(&redis).name("replica-2").start().await;
    let hung = HungBackend::start().await;
    let balancer = Balancer::builder()
        .upstreams(&format!("{},{},{}", app1.addr(), app2.addr(), hung.addr))
        .args(&[
            "--upstream-timeout",
            "2s",
            "--health-interval",
            "300ms",
            "--resolve-interval",
            "300ms",
            "--fail-timeout",
            "10s",
            "--connect-timeout",
            "500ms",
        ])
        .start()
        .await;
    // It joins first (its probes pass until a request wedges it), so it takes its share of the load.
    let joined = wait_health(&balancer, hung.addr, true, Duration::from_secs(10)).await;
    assert!(
        joined.is_some(),
        "the hung backend never joined before it wedged"
    );
    let before = redis.get_i64(COUNTER_KEY).await;

    let load = Load::start(
        &balancer.url("/count"),
        WORKERS,
        PACE,
        Duration::from_secs(30),
    );
    let out_after = wait_health(&balancer, hung.addr, false, Duration::from_secs(10)).await;
    let out_at = Instant::now();
    // Run on past the point where anything sent to the hung backend has timed out, then check that the
    // rotation without it serves cleanly.
    tokio::time::sleep(UPSTREAM_TIMEOUT + Duration::from_secs(2)).await;
    let report = load.stop().await;
    let delta = redis.get_i64(COUNTER_KEY).await - before;

    let p99 = print_the_run(&report, delta, out_after, &hung);
    assert!(
        hung.wedged(),
        "no request reached the backend, so it never wedged"
    );
    let Some(out_after) = out_after else {
        panic!("the balancer's /status never marked the hung backend unhealthy");
    };
    assert!(
        out_after <= UPSTREAM_TIMEOUT + Duration::from_secs(2),
        "the hung backend was taken out only after {out_after:?}"
    );
    assert!(
        !timeouts(&report).is_empty(),
        "nothing was answered 504: the hung backend got no request, so the test proved nothing"
    );
    assert_every_failure_is_a_504_at_the_timeout_and_none_came_after(&report, out_at);
    assert!(
        p99 < UPSTREAM_TIMEOUT,
        "p99 of the healthy replicas' responses ({p99:?}) reached the upstream timeout: the hung backend \
         held the others up"
    );
    assert!(
        p99 < P99_BOUND,
        "p99 of the healthy replicas' responses ({p99:?}) is over {P99_BOUND:?} (measured 3.6-26.6 ms)"
    );
    assert_eq!(
        delta,
        report.ok() as i64,
        "a 504 must not have counted a visit"
    );
    drop((app1, app2));
}

/// The requests answered 504 (what the hung backend got, once the timeout passed).
fn timeouts(report: &LoadReport) -> Vec<&Sample> {
    report
        .samples
        .iter()
        .filter(|s| s.outcome == Outcome::Status(504))
        .collect()
}

/// Prints the run (504s and their latency range, the healthy replicas' p50/p99, when the backend was taken
/// out); returns the healthy replicas' p99.
fn print_the_run(
    report: &LoadReport,
    delta: i64,
    out_after: Option<Duration>,
    hung: &HungBackend,
) -> Duration {
    let ok_latencies: Vec<Duration> = report
        .samples
        .iter()
        .filter(|s| s.ok())
        .map(|s| s.latency())
        .collect();
    let p50 = quantile(ok_latencies.clone(), 0.50);
    let p99 = quantile(ok_latencies, 0.99);
    let timeouts = timeouts(report);
    let slowest_504 = timeouts
        .iter()
        .map(|s| s.latency())
        .max()
        .unwrap_or_default();
    let fastest_504 = timeouts
        .iter()
        .map(|s| s.latency())
        .min()
        .unwrap_or_default();
    eprintln!(
        "hung replica: sent {} in {:?}, ok {}, 504 {} (latency {fastest_504:?}..{slowest_504:?}), other \
         failures {}, counter delta {delta}, taken out after {out_after:?}, ok p50 {p50:?} p99 {p99:?}, \
         connections accepted by the hung backend {}, outcomes {}",
        report.sent(),
        report.elapsed,
        report.ok(),
        timeouts.len(),
        report.failed() - timeouts.len(),
        hung.accepted(),
        report.outcomes()
    );
    p99
}

/// Every failure is a 504 that came no sooner than `--upstream-timeout`, and none was started after the
/// backend was taken out (`out_at`).
fn assert_every_failure_is_a_504_at_the_timeout_and_none_came_after(
    report: &LoadReport,
    out_at: Instant,
) {
    for s in &report.failures() {
        assert_eq!(
            s.outcome,
            Outcome::Status(504),
            "a request failed other than with 504: {s:?}"
        );
        assert!(
            s.latency() >= UPSTREAM_TIMEOUT - Duration::from_millis(50),
            "a 504 came before --upstream-timeout: {s:?}"
        );
    }
    // Anything started after the backend was out must not have gone there.
    let late: Vec<_> = report
        .failures()
        .into_iter()
        .filter(|s| s.started > out_at)
        .collect();
    assert!(
        late.is_empty(),
        "requests failed after the hung backend was taken out: {late:?}"
    );
}
