//! `app` routes against a real Redis: every page and status, headers, escaping, Host rules,
//! 404/405/HEAD, metrics, HTTP/2 and the version. Static files and templates on disk are in
//! `files.rs`.

use std::time::Duration;

use bytes::Bytes;
use e2e::http::{get_or_panic, request_or_panic, Resp};
use e2e::page::visits_shown;
use e2e::{App, RedisServer};
use http::Method;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};

const T: Duration = Duration::from_secs(30);

fn served_by(resp: &Resp) -> &str {
    resp.header("x-served-by").unwrap_or_default()
}

/// The quote shown on a /count page.
fn quote_in(page: &str) -> String {
    let start = page.find("<blockquote").expect("a quote");
    let end = page[start..].find("</blockquote>").expect("quote end") + start;
    page[start..end].to_string()
}

#[tokio::test]
async fn home_page_names_the_app_and_links_count_and_about() {
    tokio::time::timeout(T, async {
        let redis = RedisServer::start().await;
        let app = App::start(&redis).await;
        let before = redis.get_i64("visits").await;
        let resp = get_or_panic(&app.url("/")).await;
        assert_eq!(resp.status, 200);
        assert_eq!(served_by(&resp), app.name());
        assert_eq!(
            resp.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        let body = resp.text();
        assert!(body.contains("Welcome to Visit Counter"), "{body}");
        assert!(body.contains("href=\"/count\""));
        assert!(body.contains("href=\"/about\""));
        assert!(body.contains("/static/style.css"));
        assert!(body.contains("class=\"card\""), "an explanatory card");
        // Nothing is loaded from outside: no external scripts, styles, fonts or images.
        for external in ["src=\"http", "<script", "@import", "fonts.googleapis"] {
            assert!(!body.contains(external), "page loads {external}");
        }
        assert_eq!(
            redis.get_i64("visits").await,
            before,
            "/ must not touch the counter"
        );
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn count_increments_exactly_once_and_shows_quote_and_replica() {
    tokio::time::timeout(T, async {
        let redis = RedisServer::start().await;
        redis.set_i64("visits", 41).await;
        let app = App::start(&redis).await;

        let resp = get_or_panic(&app.url("/count")).await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("cache-control"), Some("no-store"));
        let page = resp.text();
        assert_eq!(visits_shown(&page), 42);
        assert!(page.contains("This page has been visited <span class=\"count\">42</span> times."));
        assert!(page.contains(app.name()), "names the replica");
        assert!(page.contains(">Refresh<") && page.contains(">Home<"));
        assert_eq!(redis.get_i64("visits").await, 42);

        // The quote is picked at random from a list of at least 8.
        let mut quotes = std::collections::HashSet::new();
        for expected in 43..=82 {
            let page = get_or_panic(&app.url("/count")).await.text();
            assert_eq!(visits_shown(&page), expected);
            quotes.insert(quote_in(&page));
        }
        assert!(quotes.len() >= 3, "quotes do not vary: {quotes:?}");
        assert_eq!(redis.get_i64("visits").await, 82);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn counter_key_is_configurable() {
    tokio::time::timeout(T, async {
        let redis = RedisServer::start().await;
        let app = App::builder(&redis)
            .env("COUNTER_KEY", "hits:test")
            .start()
            .await;
        assert_eq!(
            visits_shown(&get_or_panic(&app.url("/count")).await.text()),
            1
        );
        assert_eq!(redis.get_i64("hits:test").await, 1);
        assert_eq!(redis.get_i64("visits").await, 0);
        assert_eq!(
            get_or_panic(&app.url("/api/visits")).await.json(),
            serde_json::json!({"visits": 1})
        );
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn about_lists_the_stack_with_inline_svg_links() {
    tokio::time::timeout(T, async {
        let redis = RedisServer::start().await;
        let app = App::builder(&redis)
            .env("GITHUB_URL", "https://github.com/example")
            .env("LINKEDIN_URL", "https://www.linkedin.com/in/example")
            .start()
            .await;
        let resp = get_or_panic(&app.url("/about")).await;
        assert_eq!(resp.status, 200);
        assert_eq!(served_by(&resp), app.name());
        let body = resp.text();
        for part in [
            "Rust",
            "hyper",
            "Redis",
            "balancer",
            "NGINX",
            "Docker Compose",
        ] {
            assert!(body.contains(part), "/about does not mention {part}");
        }
        // minijinja escapes `/` as `&#x2f;` inside attributes; browsers decode it back.
        let decoded = body.replace("&#x2f;", "/");
        assert!(decoded.contains("href=\"https://github.com/example\""));
        assert!(decoded.contains("href=\"https://www.linkedin.com/in/example\""));
        assert!(body.matches("<svg").count() >= 2, "inline SVG icons");
        assert!(!body.contains("<img"), "no external images");
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn health_and_api_visits_report_without_incrementing() {
    tokio::time::timeout(T, async {
        let redis = RedisServer::start().await;
        redis.set_i64("visits", 7).await;
        let app = App::start(&redis).await;
        let health = get_or_panic(&app.url("/health")).await;
        assert_eq!(health.status, 200);
        assert_eq!(health.header("content-type"), Some("application/json"));
        assert_eq!(
            health.json(),
            // Issue 12: /health also names the version (X-App-Version carries the same).
            serde_json::json!({
                "status": "ok", "redis": "up", "replica": app.name(),
                "version": health.header("x-app-version").unwrap_or("missing"),
            })
        );
        for _ in 0..3 {
            let visits = get_or_panic(&app.url("/api/visits")).await;
            assert_eq!(visits.status, 200);
            assert_eq!(served_by(&visits), app.name());
            assert_eq!(visits.json(), serde_json::json!({"visits": 7}));
        }
        assert_eq!(redis.get_i64("visits").await, 7);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn app_name_and_replica_name_are_html_escaped() {
    tokio::time::timeout(T, async {
        let redis = RedisServer::start().await;
        let app = App::builder(&redis)
            .env("APP_NAME", "<script>alert('x')</script>")
            // No `/` in the name: the harness uses it for the log file name.
            .name("<b>replica&1")
            .start()
            .await;
        for path in ["/", "/count", "/about", "/no-such-page"] {
            let body = get_or_panic(&app.url(path)).await.text();
            assert!(!body.contains("<script>"), "{path} contains a raw <script>");
            assert!(
                !body.contains("<b>replica"),
                "{path} contains raw replica markup"
            );
            assert!(
                body.contains("&lt;b&gt;replica&amp;1"),
                "{path} shows the replica as text"
            );
        }
        let home = get_or_panic(&app.url("/")).await.text();
        assert!(
            home.contains("Welcome to &lt;script&gt;alert(&#x27;x&#x27;)&lt;&#x2f;script&gt;"),
            "{home}"
        );
        // The header carries the name verbatim.
        assert_eq!(
            served_by(&get_or_panic(&app.url("/")).await),
            "<b>replica&1"
        );
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn unknown_paths_get_a_styled_404() {
    tokio::time::timeout(T, async {
        let redis = RedisServer::start().await;
        let app = App::start(&redis).await;
        for path in [
            "/nope",
            "/count/",
            "/about/x",
            "/static/",
            "/static/missing.css",
            "/api/visits/1",
        ] {
            let resp = get_or_panic(&app.url(path)).await;
            assert_eq!(resp.status, 404, "{path}");
            assert_eq!(served_by(&resp), app.name(), "{path}");
            let body = resp.text();
            assert!(
                body.contains("/static/style.css"),
                "{path}: 404 page is styled"
            );
            assert!(body.contains("Page not found"), "{path}");
        }
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn other_methods_get_405_with_allow_and_do_not_count() {
    tokio::time::timeout(T, async {
        let redis = RedisServer::start().await;
        let app = App::start(&redis).await;
        for method in [
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::PATCH,
            Method::OPTIONS,
        ] {
            for path in [
                "/",
                "/count",
                "/about",
                "/health",
                "/api/visits",
                "/metrics",
                "/static/style.css",
            ] {
                let resp = request_or_panic(method.clone(), &app.url(path), &[]).await;
                assert_eq!(resp.status, 405, "{method} {path}");
                assert_eq!(resp.header("allow"), Some("GET, HEAD"), "{method} {path}");
                assert_eq!(served_by(&resp), app.name());
            }
        }
        assert_eq!(redis.get_i64("visits").await, 0, "a 405 never increments");
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn head_has_get_headers_and_no_body() {
    tokio::time::timeout(T, async {
        let redis = RedisServer::start().await;
        let app = App::start(&redis).await;
        for path in ["/", "/about", "/static/style.css", "/nope"] {
            let got = get_or_panic(&app.url(path)).await;
            let head = request_or_panic(Method::HEAD, &app.url(path), &[]).await;
            assert_eq!(head.status, got.status, "{path}");
            assert!(head.body.is_empty(), "{path}: HEAD has a body");
            assert_eq!(served_by(&head), app.name());
            assert_eq!(
                head.header("content-type"),
                got.header("content-type"),
                "{path}"
            );
            assert_eq!(
                head.header("content-length"),
                Some(got.body.len().to_string().as_str()),
                "{path}"
            );
        }
        // HEAD /count answers like GET but does not count the probe as a visit.
        let head = request_or_panic(Method::HEAD, &app.url("/count"), &[]).await;
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty());
        assert_eq!(redis.get_i64("visits").await, 0);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn host_header_rules_are_enforced() {
    tokio::time::timeout(T, async {
        let redis = RedisServer::start().await;
        let app = App::start(&redis).await;
        let cases: &[(&str, &[u8], u16)] = &[
            (
                "HTTP/1.1 without Host",
                b"GET /count HTTP/1.1\r\nConnection: close\r\n\r\n",
                400,
            ),
            (
                "two Host headers",
                b"GET /count HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
                400,
            ),
            (
                "Host with a space",
                b"GET /count HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n",
                400,
            ),
            (
                "Host with userinfo",
                b"GET /count HTTP/1.1\r\nHost: u@a\r\nConnection: close\r\n\r\n",
                400,
            ),
            (
                "Host with a port",
                b"GET /about HTTP/1.1\r\nHost: a.example:8080\r\nConnection: close\r\n\r\n",
                200,
            ),
            ("HTTP/1.0 without Host", b"GET /about HTTP/1.0\r\n\r\n", 200),
            // Issue 10: the app and the balancer share one Host rule, the balancer's stricter one
            // (docs/CONFIG.md, "Host"): an empty Host and a non-numeric port were 200 here before.
            (
                "empty Host",
                b"GET /about HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n",
                400,
            ),
            (
                "Host with a non-numeric port",
                b"GET /about HTTP/1.1\r\nHost: a:junk\r\nConnection: close\r\n\r\n",
                400,
            ),
        ];
        for (case, bytes, expected) in cases {
            let answer = e2e::raw::exchange(app.addr(), bytes, Duration::from_secs(5)).await;
            assert_eq!(e2e::raw::status_of(&answer), Some(*expected), "{case}");
            let text = String::from_utf8_lossy(&answer).to_lowercase();
            assert!(text.contains("x-served-by:"), "{case}: no X-Served-By");
        }
        assert_eq!(
            redis.get_i64("visits").await,
            0,
            "rejected requests count nothing"
        );
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status() {
    tokio::time::timeout(T, async {
        let redis = RedisServer::start().await;
        let app = App::start(&redis).await;
        get_or_panic(&app.url("/count")).await;
        get_or_panic(&app.url("/count")).await;
        get_or_panic(&app.url("/missing")).await;
        request_or_panic(Method::POST, &app.url("/"), &[]).await;
        let resp = get_or_panic(&app.url("/metrics")).await;
        assert_eq!(resp.status, 200);
        assert!(resp
            .header("content-type")
            .unwrap_or_default()
            .contains("text"));
        let text = resp.text();
        for line in [
            "app_http_requests_total{route=\"/count\",status=\"200\"} 2",
            "app_http_requests_total{route=\"not_found\",status=\"404\"} 1",
            "app_http_requests_total{route=\"/\",status=\"405\"} 1",
            "app_http_request_duration_seconds_count{route=\"/count\"} 2",
            "app_redis_errors_total 0",
            "app_redis_up 1",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
        assert!(text.contains("app_http_request_duration_seconds_bucket{le="));
        assert!(text.trim_end().ends_with("# EOF"));
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn serves_http2_with_prior_knowledge() {
    tokio::time::timeout(T, async {
        let redis = RedisServer::start().await;
        let app = App::start(&redis).await;
        let stream = tokio::net::TcpStream::connect(app.addr())
            .await
            .expect("connect");
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .expect("h2 handshake");
        tokio::spawn(conn);
        for (path, status) in [("/", 200), ("/count", 200), ("/nope", 404)] {
            let req = http::Request::builder()
                .uri(format!("http://{}{path}", app.addr()))
                .body(Empty::<Bytes>::new())
                .expect("request");
            let resp = sender.send_request(req).await.expect("h2 response");
            assert_eq!(resp.version(), http::Version::HTTP_2);
            assert_eq!(resp.status().as_u16(), status, "{path}");
            assert_eq!(
                resp.headers()
                    .get("x-served-by")
                    .and_then(|v| v.to_str().ok()),
                Some(app.name())
            );
            let body = resp.into_body().collect().await.expect("body").to_bytes();
            assert!(!body.is_empty());
        }
        assert_eq!(redis.get_i64("visits").await, 1);
    })
    .await
    .expect("test timed out");
}

/// APP_VERSION is in /health, in X-App-Version on every response (pages, JSON, static files,
/// errors) and in the pages' footer; without it the crate version is.
#[tokio::test]
async fn app_version_is_visible_everywhere() {
    tokio::time::timeout(T, async {
        let redis = RedisServer::start().await;
        let app = App::builder(&redis)
            .env("APP_VERSION", "2.0.1-rollout")
            .start()
            .await;
        for path in [
            "/",
            "/count",
            "/about",
            "/health",
            "/api/visits",
            "/static/style.css",
            "/nope",
        ] {
            let resp = get_or_panic(&app.url(path)).await;
            assert_eq!(
                resp.header("x-app-version"),
                Some("2.0.1-rollout"),
                "{path}"
            );
        }
        let health: serde_json::Value =
            serde_json::from_str(&get_or_panic(&app.url("/health")).await.text())
                .expect("/health is JSON");
        assert_eq!(health["version"], "2.0.1-rollout", "{health}");
        for page in ["/", "/count", "/about"] {
            let body = get_or_panic(&app.url(page)).await.text();
            assert!(
                body.contains("version <code>2.0.1-rollout</code>"),
                "{page} footer: {body}"
            );
        }

        let default = App::start(&redis).await;
        let resp = get_or_panic(&default.url("/health")).await;
        let version = resp.header("x-app-version").unwrap_or_default().to_owned();
        let health: serde_json::Value = serde_json::from_str(&resp.text()).expect("JSON");
        assert!(!version.is_empty(), "a default version");
        assert_eq!(health["version"], version.as_str());
    })
    .await
    .expect("test timed out");
}
