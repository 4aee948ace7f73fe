//! Host and path routing to two real groups of app replicas and a recording backend: exact host,
//! wildcard host, fall-through to host-less routes, whole-segment paths, strip_prefix, 404 for a
//! request no route takes, and what `/status` and `/metrics` say about it.

use e2e::backends::RecordingBackend;
use e2e::routes::{
    balancer_for, get_host, group_backends, metric, route_entry, served_by, sha256_hex, status,
    upstream, ConfigFile,
};
use e2e::Balancer;

use crate::fixture::Groups;

/// The routes: see the table in [`hosts_and_paths_pick_the_most_specific_route`].
const ROUTES: &str = r#"
[[route]]
name = "default"
upstream = "web"

[[route]]
name = "api"
path = "/api"
upstream = "api"
strip_prefix = true

[[route]]
name = "wild"
host = "*.example.com"
upstream = "api"

[[route]]
name = "shop"
host = "shop.example.com"
path = "/"
upstream = "web"

[[route]]
name = "shop-rec"
host = "shop.example.com"
path = "/rec"
upstream = "rec"
strip_prefix = true

[[route]]
name = "special"
host = "only.example.org"
path = "/special"
upstream = "rec"

[[route]]
name = "raw"
path = "/raw"
upstream = "rec"
"#;

/// Redis, the two app groups, a recording backend as group `rec`, and a balancer on [`ROUTES`].
async fn routed() -> (Groups, RecordingBackend, ConfigFile, Balancer) {
    let groups = Groups::start().await;
    let rec = RecordingBackend::start().await;
    let toml = groups.upstreams() + &upstream("rec", &[rec.addr], &[]) + ROUTES;
    let file = ConfigFile::plain(&toml);
    let b = balancer_for(&file).start().await;
    (groups, rec, file, b)
}

/// The group a served-by name belongs to (`web-2` → `web`, `recorder` → `rec`, `-` → `-`).
fn group_of(served_by: &str) -> &str {
    match served_by {
        "recorder" => "rec",
        "-" => "-",
        name => name.rsplit_once('-').map_or(name, |(g, _)| g),
    }
}

#[tokio::test]
async fn hosts_and_paths_pick_the_most_specific_route() {
    e2e::bounded("routing", async {
        let (_groups, rec, _file, b) = routed().await;
        let local = b.addr().to_string();
        // (Host, path, group that must answer, status it must answer with).
        let cases: &[(&str, &str, &str, u16)] = &[
            (&local, "/about", "web", 200),
            (&local, "/api/about", "api", 200),
            (&local, "/api", "api", 200),
            (&local, "/api/", "api", 200),
            // Whole segments: /apix is not under /api (the app has no /apix: its 404).
            (&local, "/apix", "web", 404),
            (&local, "/apix/about", "web", 404),
            ("x.example.com", "/about", "api", 200),
            ("a.b.example.com", "/about", "api", 200),
            // The wildcard does not match the bare domain: the host-less route takes it.
            ("example.com", "/about", "web", 200),
            // Exact beats wildcard, whatever the case and port.
            ("shop.example.com", "/about", "web", 200),
            ("SHOP.Example.COM:8080", "/about", "web", 200),
            // The host decides first: shop's `/` takes /api, the host-less /api does not.
            ("shop.example.com", "/api/about", "web", 404),
            ("shop.example.com", "/rec/x", "rec", 200),
            // A host whose only route's path does not match falls through to the host-less ones.
            ("only.example.org", "/about", "web", 200),
            ("only.example.org", "/special/x", "rec", 200),
            (&local, "/raw/y", "rec", 200),
        ];
        let mut wrong = Vec::new();
        for (host, path, group, code) in cases {
            let r = get_host(&b, host, path).await;
            let got = group_of(&served_by(&r)).to_string();
            if got != *group || r.status != *code {
                wrong.push(format!(
                    "{host}{path}: want {group} {code}, got {got} {}",
                    r.status
                ));
            }
        }
        assert!(wrong.is_empty(), "misrouted:\n{}", wrong.join("\n"));
        let targets: Vec<String> = rec.seen().iter().map(|s| s.target.clone()).collect();
        assert_eq!(
            targets,
            ["/x", "/special/x", "/raw/y"],
            "what the recording backend saw (strip_prefix only on shop-rec)"
        );
    })
    .await;
}

#[tokio::test]
async fn strip_prefix_takes_the_route_path_off_and_keeps_the_query() {
    e2e::bounded("strip_prefix", async {
        let (_groups, rec, _file, b) = routed().await;
        for path in [
            "/rec",
            "/rec/",
            "/rec/a/b?q=1&r=/rec",
            "/rec?x=y",
            "/rec//z",
        ] {
            let r = get_host(&b, "shop.example.com", path).await;
            assert_eq!(served_by(&r), "recorder", "{path}");
        }
        let targets: Vec<String> = rec.seen().iter().map(|s| s.target.clone()).collect();
        assert_eq!(
            targets,
            ["/", "/", "/a/b?q=1&r=/rec", "/?x=y", "//z"],
            "the paths the backend saw"
        );
        let seen = rec.seen();
        assert_eq!(
            seen[2].header_values("host"),
            ["shop.example.com"],
            "the Host header is forwarded as sent"
        );
    })
    .await;
}

#[tokio::test]
async fn a_request_no_route_takes_gets_a_short_404_from_the_balancer_and_is_counted() {
    e2e::bounded("no route", async {
        let groups = Groups::start().await;
        let toml = groups.upstreams()
            + r#"
[[route]]
name = "site"
host = "site.example.com"
upstream = "web"

[[route]]
name = "api"
path = "/api"
upstream = "api"
"#;
        let file = ConfigFile::plain(&toml);
        let b = balancer_for(&file).start().await;
        let before = metric(&b, "balancer_route_not_found_total").await;
        let misses = [
            ("other.example.com", "/"),
            ("other.example.com", "/apix"),
            ("site.example.org", "/about"),
            ("example.com", "/ap"),
        ];
        for (host, path) in misses {
            let r = get_host(&b, host, path).await;
            assert_eq!(r.status, 404, "{host}{path}: {}", r.text());
            assert_eq!(
                served_by(&r),
                "-",
                "{host}{path}: the balancer answers itself"
            );
            assert!(
                !r.body.is_empty() && r.body.len() < 200,
                "{host}{path}: a short body, got {:?}",
                r.text()
            );
        }
        let hits = [
            ("site.example.com", "/about", "web-"),
            ("other", "/api/x", "api-"),
        ];
        for (host, path, who) in hits {
            let r = get_host(&b, host, path).await;
            assert!(
                served_by(&r).starts_with(who),
                "{host}{path}: {}",
                served_by(&r)
            );
        }
        let after = metric(&b, "balancer_route_not_found_total").await;
        assert_eq!(
            after - before,
            misses.len() as f64,
            "balancer_route_not_found_total"
        );
    })
    .await;
}

#[tokio::test]
async fn status_and_metrics_show_the_config_routes_groups_and_requests_per_route() {
    e2e::bounded("status", async {
        let (groups, _rec, file, b) = routed().await;
        let local = b.addr().to_string();
        for _ in 0..3 {
            assert_eq!(get_host(&b, &local, "/api/about").await.status, 200);
        }
        assert_eq!(get_host(&b, &local, "/about").await.status, 200);
        let s = status(&b).await;
        let config = &s["config"];
        assert_eq!(config["path"], file.path_str(), "{config}");
        assert_eq!(config["sha256"], sha256_hex(&file.content()), "{config}");
        assert!(!config["loaded_at"].is_null(), "{config}");
        assert!(config["last_reload"].is_null(), "no reload yet: {config}");

        let api = route_entry(&s, "api");
        assert_eq!(api["path"], "/api", "{api}");
        assert!(api["host"].is_null(), "{api}");
        assert_eq!(api["strip_prefix"], true, "{api}");
        assert_eq!(
            api["upstreams"],
            serde_json::json!([{"name": "api", "weight": 1}])
        );
        assert_eq!(api["requests"], 3, "{api}");
        let wild = route_entry(&s, "wild");
        assert_eq!(wild["host"], "*.example.com", "{wild}");
        assert_eq!(wild["path"], "/", "{wild}");
        assert_eq!(wild["strip_prefix"], false, "{wild}");
        assert_eq!(route_entry(&s, "default")["requests"], 1);
        assert_eq!(s["routes"].as_array().map(Vec::len), Some(7));

        // In any order.
        let web: std::collections::BTreeSet<String> = group_backends(&s, "web")
            .iter()
            .map(|b| b["address"].as_str().unwrap_or("?").to_string())
            .collect();
        let want: std::collections::BTreeSet<String> =
            groups.web.iter().map(|a| a.addr().to_string()).collect();
        assert_eq!(web, want, "the web group's backends");
        assert_eq!(group_backends(&s, "api").len(), 1);
        assert_eq!(group_backends(&s, "rec").len(), 1);

        let api_requests = metric(&b, r#"balancer_route_requests_total{route="api"}"#).await;
        assert_eq!(api_requests, 3.0, "balancer_route_requests_total for api");
        let default = metric(&b, r#"balancer_route_requests_total{route="default"}"#).await;
        assert_eq!(default, 1.0, "balancer_route_requests_total for default");
    })
    .await;
}
