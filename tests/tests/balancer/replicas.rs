//! The balancer in front of real `app` replicas and a real Redis: exact round-robin shares, a
//! replica killed and restarted, and the visit counter staying exact through the proxy.

use std::collections::HashMap;
use std::time::Duration;

use e2e::{App, Balancer, RedisServer};

const T: Duration = Duration::from_secs(20);

async fn served_by(b: &Balancer, path: &str, n: usize) -> HashMap<String, usize> {
    let mut shares = HashMap::new();
    for _ in 0..n {
        let r = e2e::http::get(&b.url(path))
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        let who = r
            .header("x-served-by")
            .unwrap_or_else(|| panic!("no X-Served-By on {path}"))
            .to_owned();
        *shares.entry(who).or_default() += 1;
    }
    shares
}

async fn healthy_count(b: &Balancer) -> usize {
    match e2e::http::get(&b.admin_url("/status")).await {
        Ok(r) => r.json()["healthy_backends"].as_u64().unwrap_or(0) as usize,
        Err(_) => 0,
    }
}

/// Redis, three replicas and a balancer (default flags) that reports all three healthy.
async fn three_replicas() -> (RedisServer, [App; 3], Balancer) {
    let redis = RedisServer::start().await;
    let apps = [
        App::start(&redis).await,
        App::start(&redis).await,
        App::start(&redis).await,
    ];
    let b = Balancer::builder()
        .apps(&[&apps[0], &apps[1], &apps[2]])
        .start()
        .await;
    assert!(e2e::wait_until_async(T, || async { healthy_count(&b).await == 3 }).await);
    (redis, apps, b)
}

#[tokio::test]
async fn round_robin_gives_each_replica_exactly_a_third() {
    let (_redis, apps, b) = three_replicas().await;
    let shares = served_by(&b, "/about", 30).await;
    assert_eq!(shares.len(), 3, "{shares:?}");
    for app in &apps {
        assert_eq!(shares.get(app.name()), Some(&10), "{shares:?}");
    }
}

#[tokio::test]
async fn killed_replica_loses_its_traffic_and_gets_it_back_after_restart() {
    let redis = RedisServer::start().await;
    let a = App::start(&redis).await;
    let mut victim = App::start(&redis).await;
    let c = App::start(&redis).await;
    let b = Balancer::builder()
        .apps(&[&a, &victim, &c])
        .arg("--health-interval")
        .arg("200ms")
        .start()
        .await;
    assert!(e2e::wait_until_async(T, || async { healthy_count(&b).await == 3 }).await);

    let port = victim.addr().port();
    let name = victim.name().to_owned();
    victim.kill();
    // Even before any check notices, requests succeed: a refused connect is retried elsewhere.
    let shares = served_by(&b, "/about", 12).await;
    assert!(!shares.contains_key(&name), "{shares:?}");
    assert!(e2e::wait_until_async(T, || async { healthy_count(&b).await == 2 }).await);
    let shares = served_by(&b, "/about", 20).await;
    assert_eq!(shares.get(a.name()), Some(&10), "{shares:?}");
    assert_eq!(shares.get(c.name()), Some(&10), "{shares:?}");

    // Back on the same port: the active check brings it back into an exact rotation.
    let _victim = App::builder(&redis).port(port).name(&name).start().await;
    assert!(e2e::wait_until_async(T, || async { healthy_count(&b).await == 3 }).await);
    let shares = served_by(&b, "/about", 30).await;
    assert_eq!(shares.get(name.as_str()), Some(&10), "{shares:?}");
    assert_eq!(shares.get(a.name()), Some(&10), "{shares:?}");
}

#[tokio::test]
async fn every_successful_count_through_the_balancer_is_counted_exactly_once() {
    let (redis, _apps, b) = three_replicas().await;
    let before = redis.get_i64("visits").await;

    // 8 keep-alive clients, 25 requests each, concurrently.
    let client = e2e::http::Client::new();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let client = client.clone();
        let url = b.url("/count");
        tasks.push(tokio::spawn(async move {
            let mut ok = 0i64;
            let mut seen = Vec::new();
            for _ in 0..25 {
                if let Ok(r) = client.get(&url).await {
                    if r.status == 200 {
                        ok += 1;
                        seen.push(r.header("x-served-by").unwrap_or("").to_owned());
                    }
                }
            }
            (ok, seen)
        }));
    }
    let mut successes = 0;
    let mut replicas = std::collections::HashSet::new();
    for t in tasks {
        let (ok, seen) = tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .expect("load finished in time")
            .expect("load task");
        successes += ok;
        replicas.extend(seen);
    }
    assert_eq!(
        successes, 200,
        "every request succeeds with 3 healthy replicas"
    );
    assert_eq!(replicas.len(), 3, "all replicas served: {replicas:?}");
    let after = redis.get_i64("visits").await;
    assert_eq!(
        after - before,
        successes,
        "Redis rose by exactly the successes"
    );
}
