//! Routing through the real proxy without a socket: host and path choose the group, the prefix
//! is stripped when the route says so, no route is a counted 404, a split spreads exactly and
//! spills to the next group when its pick knows no backend.

use super::*;

const API: &[Script] = &[Script::Answer(200, "api")];
const WEB: &[Script] = &[Script::Answer(200, "web")];
const NEXT: &[Script] = &[Script::Answer(200, "next")];

fn get_host(host: &str, path: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .header("host", host)
        .body(empty())
        .unwrap()
}

async fn body_of(h: &Harness, host: &str, path: &str) -> (StatusCode, String) {
    let (status, _, body) = send(h, get_host(host, path)).await;
    (status, body)
}

#[tokio::test]
async fn host_and_path_choose_the_group_and_no_route_is_a_counted_404() {
    let routes = [
        route("api", Some("api.example.com"), "/", &[("api", 1)], false),
        route("web-api", None, "/api", &[("api", 1)], true),
        route("wild", Some("*.example.com"), "/", &[("next", 1)], false),
        route("web", Some("example.com"), "/", &[("web", 1)], false),
    ];
    let groups: [(&str, &[Script]); 3] = [("api", API), ("web", WEB), ("next", NEXT)];
    let h = routed(&groups, &routes, 1 << 20, no_rules()).await;
    let ok = |text: &str| (StatusCode::OK, text.to_owned());
    assert_eq!(body_of(&h, "API.example.com:8443", "/x").await, ok("api"));
    assert_eq!(body_of(&h, "example.com", "/").await, ok("web"));
    assert_eq!(body_of(&h, "a.b.example.com", "/").await, ok("next"));
    // No exact or wildcard route takes /api on example.com's own paths... but `web` has `/`:
    // the exact host wins before any host-less route.
    assert_eq!(body_of(&h, "example.com", "/api/count").await, ok("web"));
    // Another host falls through to the host-less /api, whole segments only.
    assert_eq!(body_of(&h, "other.test", "/api/count?n=1").await, ok("api"));
    let (status, body) = body_of(&h, "other.test", "/apix").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(h.metrics.routes.not_found.get(), 1);
    let seen = h.upstream.seen();
    let stripped = seen.iter().find(|s| s.uri.starts_with("/count")).unwrap();
    assert_eq!(stripped.uri, "/count?n=1", "strip_prefix keeps the query");
    assert_eq!(
        stripped.headers["host"], "other.test",
        "the Host is the client's"
    );
    drop(seen);
    let web_api = h.metrics.routes.for_route("web-api").get();
    assert_eq!(web_api, 1);
}

#[tokio::test]
async fn a_split_is_exact_per_cycle_and_spills_when_its_pick_has_no_backend() {
    let routes = [route("web", None, "/", &[("web", 3), ("next", 1)], false)];
    let groups: [(&str, &[Script]); 2] = [("web", WEB), ("next", NEXT)];
    let h = routed(&groups, &routes, 1 << 20, no_rules()).await;
    let mut next = 0;
    for _ in 0..400 {
        let (status, body) = body_of(&h, "example.test", "/").await;
        assert_eq!(status, StatusCode::OK);
        next += usize::from(body == "next");
    }
    assert_eq!(next, 100, "one in four, exactly");
    // Empty `next` (its only backend gone): the requests it would have had go to `web`.
    let empty = routed(&[("web", WEB), ("next", &[])], &routes, 1 << 20, no_rules()).await;
    for _ in 0..8 {
        assert_eq!(
            body_of(&empty, "x.test", "/").await,
            (StatusCode::OK, "web".into())
        );
    }
}

#[tokio::test]
async fn a_request_keeps_the_table_it_started_with() {
    let routes = [route("web", None, "/", &[("web", 1)], false)];
    let h = routed(&[("web", WEB)], &routes, 1 << 20, no_rules()).await;
    let before = h.proxy.routes.load_full();
    // A reload stores a table without `/`: new requests get 404, the held one still routes.
    let none = RouteTable::new(
        &[route("x", None, "/x", &[("web", 1)], false)],
        before.groups(),
        &h.metrics.routes,
    )
    .unwrap();
    h.proxy.routes.store(Arc::new(none));
    assert!(before.find(None, "/").is_some());
    assert_eq!(body_of(&h, "a.test", "/").await.0, StatusCode::NOT_FOUND);
}
