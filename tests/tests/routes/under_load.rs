//! Reloads under a steady load of `/count` through the balancer: a group changed live (a replica
//! added, its balance changed, a replica removed, its health settings changed) and a route moved
//! between groups fail no request, and Redis rises by exactly the number of successful responses.

use std::time::Duration;

use e2e::load::Load;
use e2e::routes::{addrs, balancer_for, sighup, upstream, wait_status, ConfigFile};
use e2e::{App, Balancer, RedisServer, COUNTER_KEY};

use crate::fixture::{post_new_content, RELOAD_BOUND};

const WORKERS: usize = 8;
const PACE: Duration = Duration::from_millis(2);

/// The `web` group of `servers` (with `extra` settings), the `api` group, and `/` to `to`.
fn file(web: &[&App], extra: &[&str], api: &[&App], to: &str) -> String {
    upstream("web", &addrs(web), extra)
        + &upstream("api", &addrs(api), &[])
        + &format!("[[route]]\nname = \"main\"\nupstream = \"{to}\"\n")
}

/// Stops the load and checks it: nothing failed, and Redis rose by exactly the successes.
async fn check(load: Load, redis: &RedisServer, before: i64, b: &Balancer, what: &str) {
    let report = load.stop().await;
    let delta = redis.get_i64(COUNTER_KEY).await - before;
    println!(
        "{what}: sent {} in {:?}, ok {}, failed {}, counter delta {delta}, outcomes {}, served by {}",
        report.sent(),
        report.elapsed,
        report.ok(),
        report.failed(),
        report.outcomes(),
        report.served_by()
    );
    if report.failed() > 0 {
        let log = b.log();
        let notable: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("502"))
            .take(20)
            .collect();
        println!("{what}: balancer log:\n{}", notable.join("\n"));
    }
    assert_eq!(
        report.failed(),
        0,
        "{what}: requests failed: {:?}",
        report.failures().iter().take(10).collect::<Vec<_>>()
    );
    assert_eq!(
        delta,
        report.ok() as i64,
        "{what}: Redis rose by the successes"
    );
}

/// POSTs `text` as the new file and waits until `/status` shows it in force.
async fn reload(b: &Balancer, config: &ConfigFile, text: &str) {
    let (written, r) = post_new_content(b, config, text).await;
    assert_eq!(r.json()["result"], "ok", "{}", r.text());
    let sha = e2e::routes::sha256_hex(&written);
    wait_status(b, "reloaded", RELOAD_BOUND, |s| {
        s["config"]["sha256"] == sha.as_str()
    })
    .await;
}

/// One round of changes to the `web` group under `load`, from `[web-1, web-2]` back to it: web-3
/// added, its balance and health settings changed, web-1 removed (and then given no request),
/// then the first file again.
async fn change_the_group(
    b: &Balancer,
    config: &ConfigFile,
    load: &Load,
    web: &[App],
    api: &[&App],
) {
    let (w1, w2, w3) = (&web[0], &web[1], &web[2]);
    // A replica added: it is checked before the swap and gets traffic.
    reload(b, config, &file(&[w1, w2, w3], &[], api, "web")).await;
    let since = std::time::Instant::now();
    let joined = load.wait_served_by(w3.name(), since, RELOAD_BOUND).await;
    assert!(joined.is_some(), "web-3 got no traffic after it was added");
    // Its balance and health settings changed.
    let least = ["balance = \"least-request\""];
    reload(b, config, &file(&[w1, w2, w3], &least, api, "web")).await;
    let tuned = [
        "balance = \"least-request\"",
        "max_fails = 3",
        "fail_timeout = \"5s\"",
    ];
    reload(b, config, &file(&[w1, w2, w3], &tuned, api, "web")).await;
    // A replica removed: its in-flight requests finish, new ones go to the others.
    reload(b, config, &file(&[w2, w3], &tuned, api, "web")).await;
    // Its in-flight requests (milliseconds each) are done well within this; then none start.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let last = load.last_served(w1.name());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        load.last_served(w1.name()),
        last,
        "web-1 served after its removal"
    );
    // And back to where it began.
    reload(b, config, &file(&[w1, w2], &[], api, "web")).await;
    let since = std::time::Instant::now();
    assert!(load
        .wait_served_by(w1.name(), since, RELOAD_BOUND)
        .await
        .is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_changed_under_load_fails_nothing_and_counts_exactly() {
    e2e::bounded("group changed under load", async {
        let redis = RedisServer::start().await;
        let web = e2e::routes::replicas(&redis, "web", 3).await;
        let api = e2e::routes::replicas(&redis, "api", 1).await;
        let (w1, w2) = (&web[0], &web[1]);
        let api: Vec<&App> = api.iter().collect();
        let config = ConfigFile::plain(&file(&[w1, w2], &[], &api, "web"));
        let b = balancer_for(&config).start().await;
        let before = redis.get_i64(COUNTER_KEY).await;
        let load = Load::start(&b.url("/count"), WORKERS, PACE, Duration::from_secs(90));
        load.wait_until_each_serves(&web[..2]).await;

        // Several rounds: each reload is quick, a race one round misses a later one may hit.
        for _ in 0..3 {
            change_the_group(&b, &config, &load, &web, &api).await;
        }
        check(load, &redis, before, &b, "group changed under load").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_moved_between_groups_under_load_fails_nothing_and_counts_exactly() {
    e2e::bounded("route moved under load", async {
        let redis = RedisServer::start().await;
        let web = e2e::routes::replicas(&redis, "web", 2).await;
        let api = e2e::routes::replicas(&redis, "api", 2).await;
        let web: Vec<&App> = web.iter().collect();
        let api_refs: Vec<&App> = api.iter().collect();
        let config = ConfigFile::plain(&file(&web, &[], &api_refs, "web"));
        let mut b = balancer_for(&config).start().await;
        let before = redis.get_i64(COUNTER_KEY).await;
        let load = Load::start(&b.url("/count"), WORKERS, PACE, Duration::from_secs(90));
        for round in 0..3 {
            for (to, replica) in [("api", "api-1"), ("web", "web-1")] {
                // SIGHUP on even rounds, the file's poll otherwise.
                config.write_in_place(&file(&web, &[], &api_refs, to));
                if round % 2 == 0 {
                    sighup(&mut b);
                }
                let since = std::time::Instant::now();
                let moved = load.wait_served_by(replica, since, RELOAD_BOUND).await;
                assert!(moved.is_some(), "round {round}: / did not move to {to}");
            }
        }
        check(load, &redis, before, &b, "route moved under load").await;
    })
    .await;
}
