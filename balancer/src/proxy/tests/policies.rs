//! A route's policies through the real proxy without a socket: a fixed answer from a route
//! without groups, 403 on the client `--trusted-proxies` decides, 401 and its challenge, the
//! header rules on what the backend gets and on every response of the route (a 502 too), a
//! route's own rate limit (429, counted per route) beside an unlimited route.

use super::*;
use crate::policy::access::{parse_cidr, Access};
use crate::policy::answer::{Answer, Redirect, Respond};
use crate::policy::basic_auth::{challenge, BasicAuth};
use crate::policy::header_rules::{rule_name, rule_value, HeaderRules};

const OK: &[Script] = &[Script::Answer(200, "app")];

fn rules(set: &[(&str, &str)], remove: &[&str]) -> Option<HeaderRules> {
    let set = set
        .iter()
        .map(|(n, v)| (rule_name(n).unwrap(), rule_value(v).unwrap()))
        .collect();
    let remove = remove.iter().map(|n| rule_name(n).unwrap()).collect();
    Some(HeaderRules::new(set, remove))
}

#[tokio::test]
async fn fixed_answers_need_no_group_and_reach_no_backend() {
    let mut down = route("down", None, "/down", &[], false);
    let respond = Respond::new(503, "later\n", None).unwrap();
    down.policy.answer = Some(Answer::Respond(respond));
    down.policy.response_headers = rules(&[("Retry-After", "60")], &[]);
    let mut old = route("old", None, "/old", &[], false);
    let redirect = Redirect::new("https://{host}/new{path}", 302).unwrap();
    old.policy.answer = Some(Answer::Redirect(redirect));
    let app = route("app", None, "/", &[("app", 1)], false);
    let h = routed(&[("app", OK)], &[down, old, app], 1 << 20, no_rules()).await;

    let (status, headers, body) = send(&h, get("/down/x").body(empty()).unwrap()).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "later\n")
    );
    assert_eq!(headers["retry-after"], "60");
    assert!(headers.contains_key("x-request-id"));
    let (status, headers, _) = send(&h, get("/old/a?b").body(empty()).unwrap()).await;
    assert_eq!(status, StatusCode::FOUND);
    assert_eq!(headers["location"], "https://example.test/new/old/a?b");
    let no_host = Request::get("/old").version(Version::HTTP_10).body(empty());
    let (status, _, _) = send(&h, no_host.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no Host for {{host}}");
    assert!(h.upstream.seen().is_empty());
    assert_eq!(h.metrics.routes.for_route("down").get(), 1);
}

#[tokio::test]
async fn access_judges_the_client_trusted_proxies_name() {
    let mut admin = route("admin", None, "/", &[("app", 1)], false);
    let allow = vec![parse_cidr("198.51.100.0/24").unwrap()];
    admin.policy.access = Some(Access::new(allow, vec![]));
    let trusted = TrafficRules {
        trusted: parse_trusted_proxies("192.0.2.0/24").unwrap(),
        ..no_rules()
    };
    let h = routed(&[("app", OK)], &[admin], 1 << 20, trusted).await;
    let from = |xff: &str| {
        get("/")
            .header("x-forwarded-for", xff)
            .body(empty())
            .unwrap()
    };
    assert_eq!(send(&h, from("198.51.100.9")).await.0, StatusCode::OK);
    let (status, _, body) = send(&h, from("203.0.113.1")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _, _) = send(&h, get("/").body(empty()).unwrap()).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "the proxy itself is not allowed"
    );
    assert_eq!(h.upstream.seen().len(), 1);
}

#[tokio::test]
async fn basic_auth_challenges_and_lets_the_right_user_through() {
    let hash = bcrypt::hash("pw", 4).unwrap();
    let auth = BasicAuth::new(challenge("Staff").unwrap(), &format!("alice:{hash}\n")).unwrap();
    let mut private = route("private", None, "/", &[("app", 1)], false);
    private.policy.basic_auth = Some(auth);
    let h = routed(&[("app", OK)], &[private], 1 << 20, no_rules()).await;
    let with = |value: &str| get("/").header("authorization", value).body(empty());
    // "alice:pw" and "alice:no" in base64.
    let (status, _, body) = send(&h, with("Basic YWxpY2U6cHc=").unwrap()).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "app"));
    for value in ["Basic YWxpY2U6bm8=", "Basic %%%", "Negotiate x"] {
        let (status, headers, _) = send(&h, with(value).unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{value}");
        assert_eq!(headers["www-authenticate"], "Basic realm=\"Staff\"");
    }
    assert_eq!(h.upstream.seen().len(), 1);
}

#[tokio::test]
async fn header_rules_rewrite_the_request_and_every_response() {
    let mut app = route("app", None, "/", &[("app", 1)], false);
    app.policy.request_headers = rules(&[("X-Tenant", "blue")], &["Cookie"]);
    app.policy.response_headers = rules(&[("X-Frame-Options", "DENY")], &[]);
    let groups: [(&str, &[Script]); 1] = [("app", &[Script::Answer(200, "ok"), Script::Break])];
    let h = routed(&groups, &[app], 1 << 20, no_rules()).await;
    let req = || {
        get("/")
            .header("x-tenant", "red")
            .header("cookie", "s=1")
            .body(empty())
            .unwrap()
    };
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let (status, headers, _) = send(&h, req()).await;
        assert_eq!(headers["x-frame-options"], "DENY", "{status}");
        statuses.push(status);
    }
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::BAD_GATEWAY]);
    for seen in h.upstream.seen().iter() {
        assert_eq!(seen.headers["x-tenant"], "blue");
        assert!(!seen.headers.contains_key("cookie"));
        assert_eq!(seen.headers["x-forwarded-for"], "192.0.2.7");
    }
}

#[tokio::test]
async fn a_route_over_its_rate_limit_answers_429_and_another_route_is_unlimited() {
    use crate::policy::rate_limit::RouteRateLimit;
    let rate = parse_rate("1/h").unwrap();
    let mut api = route("api", None, "/api", &[("app", 1)], false);
    let keying = Default::default();
    api.policy.rate_limit = Some(RouteRateLimit::new("api".into(), rate, Some(2), 16, keying));
    let app = route("app", None, "/", &[("app", 1)], false);
    let h = routed(&[("app", OK)], &[api, app], 1 << 20, no_rules()).await;
    for _ in 0..2 {
        assert_eq!(
            send(&h, get("/api").body(empty()).unwrap()).await.0,
            StatusCode::OK
        );
    }
    let (status, headers, body) = send(&h, get("/api/x").body(empty()).unwrap()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(body.starts_with("429 Too Many Requests"), "{body}");
    let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=3600).contains(&wait), "Retry-After {wait}");
    assert!(headers.contains_key("x-request-id"));
    for _ in 0..5 {
        assert_eq!(
            send(&h, get("/other").body(empty()).unwrap()).await.0,
            StatusCode::OK
        );
    }
    assert_eq!(
        h.upstream.seen().len(),
        7,
        "the refused request was forwarded"
    );
    assert_eq!(h.metrics.traffic.rate_limited.get(), 1);
    assert_eq!(h.metrics.routes.rate_limited_on("api").get(), 1);
    assert_eq!(h.metrics.routes.rate_limited_on("app").get(), 0);
}
