//! Fault: Redis goes away and comes back, under load through the balancer and three replicas.
//!
//! While Redis is away `/count` must answer 503 fast (under a second), never hang; within 2 s of Redis
//! returning it must answer 200 again with no app restart. After a clean stop (SIGTERM: Redis flushes its
//! AOF) no acknowledged visit may be lost; after SIGKILL, Redis restarted from its AOF (`appendfsync
//! everysec`) may lose only visits acknowledged in the last second before the kill.

use std::time::{Duration, Instant};

use e2e::load::{Load, LoadReport, Outcome};
use e2e::{Stack, COUNTER_KEY};

const WORKERS: usize = 4;
const PACE: Duration = Duration::from_millis(5);
/// The documented contracts: a 503 within 1 s while Redis is away, all 200 within 2 s of its return.
const FAST_503: Duration = Duration::from_secs(1);
const RECOVERY: Duration = Duration::from_secs(2);
/// The regression bounds, about 5x the highest figure measured in four runs at abc4bce/faa1c2c (same app and balancer code)
/// on the 2-core test machine under load: slowest 503 2.6-33.9 ms (28 ms in docs/RELIABILITY.md); all 200
/// again 14-26 ms after a clean restart (40 ms in docs/RELIABILITY.md); `/count` 200 again 27-117 ms after
/// a restart from SIGKILL (the AOF loaded).
const SLOWEST_503_BOUND: Duration = Duration::from_millis(170);
const CLEAN_RECOVERY_BOUND: Duration = Duration::from_millis(200);
const KILLED_RECOVERY_BOUND: Duration = Duration::from_millis(600);
const BALANCER_ARGS: &[&str] = &[
    "--health-interval",
    "300ms",
    "--resolve-interval",
    "300ms",
    "--fail-timeout",
    "1s",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_clean_restart_answers_503_fast_recovers_and_loses_nothing() {
    e2e::bounded("Redis clean restart test", clean_restart("http1")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_sigkill_restart_from_aof_loses_at_most_the_last_second() {
    e2e::bounded("Redis SIGKILL restart test", killed_restart("http1")).await;
}

/// The same with HTTP/2 to the replicas (`--upstream-protocol h2c`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_clean_restart_over_h2c_answers_503_fast_recovers_and_loses_nothing() {
    e2e::bounded("Redis clean restart test (h2c)", clean_restart("h2c")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_sigkill_restart_over_h2c_from_aof_loses_at_most_the_last_second() {
    e2e::bounded("Redis SIGKILL restart test (h2c)", killed_restart("h2c")).await;
}

/// The balancer's flags for `protocol` (`--upstream-protocol`).
fn balancer_args(protocol: &str) -> Vec<&str> {
    let mut args = BALANCER_ARGS.to_vec();
    args.extend(["--upstream-protocol", protocol]);
    args
}

/// Checks what happened while Redis was away (between `away` and `back`) and after: 503 fast while away,
/// all 200 from `back + RECOVERY` on. Returns (503s seen, slowest 503, recovery time).
fn check_outage(report: &LoadReport, away: Instant, back: Instant) -> (usize, Duration, Duration) {
    let mut unavailable = 0;
    let mut slowest = Duration::ZERO;
    for s in &report.samples {
        match &s.outcome {
            Outcome::Status(200) => {}
            Outcome::Status(503) => {
                unavailable += 1;
                slowest = slowest.max(s.latency());
                assert!(
                    s.latency() < FAST_503,
                    "a 503 took {:?} while Redis was away (must be under {FAST_503:?})",
                    s.latency()
                );
            }
            other => {
                panic!("while Redis restarted, a request ended with {other:?}, not 200 or 503")
            }
        }
        if s.finished < away {
            assert!(s.ok(), "a request failed before Redis went away: {s:?}");
        }
    }
    let recovery = report
        .samples
        .iter()
        .filter(|s| !s.ok())
        .map(|s| s.finished.saturating_duration_since(back))
        .max()
        .unwrap_or_default();
    assert!(
        unavailable > 0,
        "no request saw Redis away: the test proved nothing"
    );
    assert!(
        recovery <= RECOVERY,
        "/count still failed {recovery:?} after Redis was back (must recover within {RECOVERY:?})"
    );
    assert!(
        slowest <= SLOWEST_503_BOUND,
        "the slowest 503 took {slowest:?}, over {SLOWEST_503_BOUND:?} (measured 2.6-34 ms)"
    );
    assert!(
        recovery <= CLEAN_RECOVERY_BOUND,
        "/count still failed {recovery:?} after Redis was back, over {CLEAN_RECOVERY_BOUND:?} (measured 14-40 ms)"
    );
    (unavailable, slowest, recovery)
}

async fn clean_restart(protocol: &str) {
    let mut stack = Stack::start(3, &balancer_args(protocol)).await;
    let before = stack.redis.get_i64(COUNTER_KEY).await;
    let load = Load::start(
        &stack.balancer.url("/count"),
        WORKERS,
        PACE,
        Duration::from_secs(30),
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let away = Instant::now();
    stack.redis.stop().await;
    let stopped_in = away.elapsed();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // "Back" from the moment redis-server is started again: Redis's own start-up counts against recovery.
    let back = Instant::now();
    stack.redis.start_again().await;
    tokio::time::sleep(RECOVERY + Duration::from_secs(1)).await;
    let report = load.stop().await;
    let delta = stack.redis.get_i64(COUNTER_KEY).await - before;
    let (unavailable, slowest, recovery) = check_outage(&report, away, back);
    // A visit is ambiguous when its request was under way while Redis shut down: Redis may have executed
    // the INCR and flushed it to the AOF, then exited before the reply reached the app, which can only
    // answer 503. Those failures may have counted; no other failure may have.
    let gone = away + stopped_in;
    let ambiguous = report
        .samples
        .iter()
        .filter(|s| !s.ok() && s.started <= gone)
        .count();
    eprintln!(
        "redis clean restart: sent {} in {:?}, ok {}, 503 {unavailable} (slowest {slowest:?}), Redis stopped \
         in {stopped_in:?} and away {:?}, all 200 again {recovery:?} after redis-server was started again, counter delta {delta}, \
         {ambiguous} failures under way during the stop",
        report.sent(),
        report.elapsed,
        report.ok(),
        back - away,
    );
    assert!(
        delta >= report.ok() as i64,
        "after a clean stop, the counter ({delta}) lost acknowledged visits ({} ok)",
        report.ok()
    );
    assert!(
        delta <= (report.ok() + ambiguous) as i64,
        "counter delta {delta} exceeds successes {} plus the {ambiguous} failures under way during the stop",
        report.ok()
    );
}

async fn killed_restart(protocol: &str) {
    let mut stack = Stack::start(3, &balancer_args(protocol)).await;
    let load = Load::start(
        &stack.balancer.url("/count"),
        WORKERS,
        PACE,
        Duration::from_secs(30),
    );
    // Long enough for several AOF fsyncs to have happened under load before the crash.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let kill_at = Instant::now();
    stack.redis.kill();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // Stop the load before Redis is back, so the value it restarts with is read before any new visit.
    let report = load.stop().await;
    let back = Instant::now();
    stack.redis.start_again().await;
    let restored = stack.redis.get_i64(COUNTER_KEY).await;

    let acknowledged: Vec<(i64, Instant)> = report
        .samples
        .iter()
        .filter(|s| s.ok())
        .filter_map(|s| s.visits.map(|v| (v, s.finished)))
        .collect();
    let highest = acknowledged.iter().map(|(v, _)| *v).max().unwrap_or(0);
    let lost: Vec<&(i64, Instant)> = acknowledged.iter().filter(|(v, _)| *v > restored).collect();
    let oldest_lost = lost
        .iter()
        .map(|(_, at)| kill_at.saturating_duration_since(*at))
        .max()
        .unwrap_or_default();
    let unavailable = report
        .samples
        .iter()
        .filter(|s| s.outcome == Outcome::Status(503))
        .count();
    eprintln!(
        "redis SIGKILL: sent {}, ok {}, 503 {unavailable}, highest acknowledged count {highest}, restored \
         from AOF {restored}, lost {} (oldest acknowledged {oldest_lost:?} before the kill)",
        report.sent(),
        report.ok(),
        lost.len()
    );
    assert!(highest > 0, "no visit was acknowledged before the kill");
    assert!(
        oldest_lost <= Duration::from_secs(1),
        "Redis lost a visit acknowledged {oldest_lost:?} before the kill (appendfsync everysec allows 1 s)"
    );
    assert!(
        restored <= highest + WORKERS as i64,
        "Redis came back with {restored}, above the {highest} acknowledged plus what was in flight"
    );
    assert_only_200_or_a_fast_503(&report);
    serves_again_after_the_kill(&stack, back).await;
}

/// While Redis was killed every request got a 200 or a fast 503, nothing else.
fn assert_only_200_or_a_fast_503(report: &LoadReport) {
    let slowest = report
        .samples
        .iter()
        .filter(|s| s.outcome == Outcome::Status(503))
        .map(|s| s.latency())
        .max();
    eprintln!("redis SIGKILL: slowest 503 {slowest:?}");
    for s in &report.samples {
        match &s.outcome {
            Outcome::Status(200) | Outcome::Status(503) => {}
            other => {
                panic!("while Redis was killed, a request ended with {other:?}, not 200 or 503")
            }
        }
        if s.outcome == Outcome::Status(503) {
            assert!(s.latency() < FAST_503, "a 503 took {:?}", s.latency());
            assert!(
                s.latency() <= SLOWEST_503_BOUND,
                "a 503 took {:?}, over {SLOWEST_503_BOUND:?} (measured 2.6-34 ms)",
                s.latency()
            );
        }
    }
}

/// `/count` answers 200 again on its own once Redis is back (`back`: when it was started again), within
/// the contract and the regression bound.
async fn serves_again_after_the_kill(stack: &Stack, back: Instant) {
    let url = stack.balancer.url("/count");
    let recovered = e2e::wait_until_async(RECOVERY + Duration::from_secs(1), || async {
        e2e::http::get(&url).await.is_ok_and(|r| r.status == 200)
    })
    .await;
    let recovery = back.elapsed();
    assert!(
        recovered,
        "/count did not answer 200 after Redis came back from SIGKILL"
    );
    eprintln!(
        "redis SIGKILL: /count answered 200 {recovery:?} after redis-server was started again"
    );
    assert!(
        recovery <= KILLED_RECOVERY_BOUND,
        "/count answered 200 only {recovery:?} after Redis came back, over {KILLED_RECOVERY_BOUND:?} \
         (measured 27-117 ms)"
    );
}
