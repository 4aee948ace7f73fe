//! Request IDs end to end (issue 13): a valid client `X-Request-Id` is kept, a malformed one
//! replaced, a missing one generated; the ID reaches the app (its log line for the request), comes
//! back to the client and is in the balancer's access line, in both access-log formats (combined
//! read by a regex of NGINX's format, JSON by a JSON parser).

use std::time::Duration;

use e2e::{App, Balancer, RedisServer};
use http::Method;

const T: Duration = Duration::from_secs(20);

async fn get_with_id(b: &Balancer, id: Option<&str>) -> String {
    let headers: Vec<(&str, &str)> = id.iter().map(|v| ("x-request-id", *v)).collect();
    let r = e2e::http::request(Method::GET, &b.url("/about"), &headers, "")
        .await
        .expect("answer");
    assert_eq!(r.status, 200);
    r.header("x-request-id")
        .expect("no X-Request-Id returned")
        .to_string()
}

fn is_generated(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The cases, each: what the client sent and the ID that came back.
async fn exercise(b: &Balancer) -> Vec<(Option<String>, String)> {
    let long = "x".repeat(129);
    let sent: [Option<&str>; 4] = [
        Some("client-id-42_{ok}"),
        Some(long.as_str()),
        Some("caf\u{e9}"),
        None,
    ];
    let mut out = Vec::new();
    for id in sent {
        // A non-ASCII value cannot be a `str` header in the client: send it raw.
        let got = if id == Some("caf\u{e9}") {
            // A Latin-1 byte (0xE9), not UTF-8: sent raw, as a client could.
            let mut bytes =
                b"GET /about HTTP/1.1\r\nHost: ids.test\r\nConnection: close\r\nX-Request-Id: caf"
                    .to_vec();
            bytes.extend_from_slice(b"\xe9\r\n\r\n");
            let reply = e2e::raw::exchange(b.addr(), &bytes, T).await;
            let resp = e2e::raw::RawResponse::parse(&reply).expect("answer to a Latin-1 id");
            assert_eq!(resp.status, 200);
            resp.header("x-request-id")
                .expect("id returned")
                .to_string()
        } else {
            get_with_id(b, id).await
        };
        out.push((id.map(str::to_string), got));
    }
    out
}

fn check_ids(cases: &[(Option<String>, String)]) {
    assert_eq!(cases[0].1, "client-id-42_{ok}", "a valid id is kept");
    for (sent, got) in &cases[1..] {
        assert!(
            is_generated(got),
            "{sent:?} -> {got}: not replaced by a generated id"
        );
    }
    assert_ne!(cases[2].1, cases[3].1);
}

async fn stack(access_log: &str) -> (RedisServer, App, Balancer) {
    let redis = RedisServer::start().await;
    let app = App::builder(&redis)
        .env("RUST_LOG", "info,app=debug")
        .start()
        .await;
    let b = Balancer::builder()
        .apps(&[&app])
        .args(&["--access-log", access_log])
        .start()
        .await;
    (redis, app, b)
}

/// Waits until `log` has a line containing `needle`; returns that line.
async fn line_with(log: impl Fn() -> String, needle: &str) -> String {
    let mut found = None;
    e2e::wait_until(T, || {
        found = log()
            .lines()
            .find(|l| l.contains(needle))
            .map(str::to_string);
        found.is_some()
    })
    .await;
    found.unwrap_or_else(|| panic!("no line with {needle:?} in:\n{}", log()))
}

#[tokio::test]
async fn request_ids_in_the_json_access_log_and_the_app_log() {
    let (_redis, app, b) = stack("json").await;
    let cases = exercise(&b).await;
    check_ids(&cases);
    for (sent, id) in &cases {
        let line = line_with(|| b.log(), &format!("\"request_id\":\"{id}\"")).await;
        let v: serde_json::Value = serde_json::from_str(&line).expect("access line is JSON");
        assert_eq!(v["request_uri"], "/about");
        assert_eq!(v["status"], 200);
        assert_eq!(v["backend"], app.addr().to_string());
        let app_line = line_with(|| app.log(), &format!("request_id={id}")).await;
        assert!(app_line.contains("request served"), "{app_line}");
        if let Some(sent) = sent.as_ref().filter(|s| **s != *id) {
            assert!(
                !app.log().contains(sent.as_str()),
                "a malformed id reached the app"
            );
        }
    }
}

#[tokio::test]
async fn request_ids_in_the_combined_access_log() {
    let (_redis, app, b) = stack("combined").await;
    let cases = exercise(&b).await;
    check_ids(&cases);
    // NGINX combined, then the balancer's fields.
    let combined = regex::Regex::new(
        r#"^(\S+) - (\S+) \[([^\]]+)\] "(\S+) (\S+) (\S+)" (\d{3}) (\d+|-) "([^"]*)" "([^"]*)" rid=(\S+) backend=(\S+) upstream_time=(\S+) request_time=(\S+) route=(\S+)$"#,
    )
    .expect("regex");
    for (_, id) in &cases {
        let line = line_with(|| b.log(), &format!("rid={id} ")).await;
        let c = combined
            .captures(&line)
            .unwrap_or_else(|| panic!("not the combined format: {line}"));
        assert_eq!(&c[5], "/about");
        assert_eq!(&c[7], "200");
        assert_eq!(&c[11], id.as_str());
        assert_eq!(&c[12], app.addr().to_string());
        line_with(|| app.log(), &format!("request_id={id}")).await;
    }
}
