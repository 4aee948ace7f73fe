//! A weighted split: 90/10 between two real groups of app replicas over 10,000 requests from
//! keep-alive clients in parallel.

use std::time::Instant;

use e2e::load::{tagged_load, Budget};
use e2e::routes::{balancer_for, metric, route_entry, status, ConfigFile};

use crate::fixture::Groups;

const REQUESTS: usize = 10_000;
const CONCURRENCY: usize = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_90_10_split_is_within_two_points_over_10000_requests() {
    e2e::bounded("weighted split", async {
        let groups = Groups::start().await;
        let toml = groups.upstreams()
            + r#"
[[route]]
name = "canary"
path = "/"
upstreams = [{ name = "web", weight = 90 }, { name = "api", weight = 10 }]
"#;
        let file = ConfigFile::plain(&toml);
        let b = balancer_for(&file).start().await;
        let began = Instant::now();
        let samples = tagged_load(
            &b.url("/about"),
            CONCURRENCY,
            "x-served-by",
            Budget::Requests(REQUESTS),
        )
        .await;
        let elapsed = began.elapsed();
        let failed = samples.iter().filter(|s| s.status != Some(200)).count();
        let to_api = samples
            .iter()
            .filter(|s| s.tag.as_deref().is_some_and(|t| t.starts_with("api-")))
            .count();
        let to_web = samples
            .iter()
            .filter(|s| s.tag.as_deref().is_some_and(|t| t.starts_with("web-")))
            .count();
        let share = to_api as f64 / REQUESTS as f64 * 100.0;
        println!(
            "weighted split: {REQUESTS} requests in {elapsed:?}: web {to_web}, api {to_api} \
             ({share:.2} %), {failed} failed"
        );
        assert_eq!(samples.len(), REQUESTS);
        assert_eq!(failed, 0, "every request succeeds");
        assert_eq!(
            to_web + to_api,
            REQUESTS,
            "every response came from one of the groups"
        );
        assert!(
            (share - 10.0).abs() <= 2.0,
            "api's share {share:.2} % is not within 2 points of 10 %"
        );
        // Both replicas of web had their share of web's 90 %.
        for app in &groups.web {
            let n = samples
                .iter()
                .filter(|s| s.tag.as_deref() == Some(app.name()))
                .count();
            assert!(
                n > to_web / 4,
                "{} served only {n} of web's {to_web}",
                app.name()
            );
        }
        let s = status(&b).await;
        assert_eq!(route_entry(&s, "canary")["requests"], REQUESTS as u64);
        let upstreams = &route_entry(&s, "canary")["upstreams"];
        assert_eq!(
            upstreams,
            &serde_json::json!([{"name": "web", "weight": 90}, {"name": "api", "weight": 10}])
        );
        let counted = metric(&b, r#"balancer_route_requests_total{route="canary"}"#).await;
        assert_eq!(counted, REQUESTS as f64);
    })
    .await;
}
