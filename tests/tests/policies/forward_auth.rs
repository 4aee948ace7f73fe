//! `forward_auth` against a real auth service started in the test (`e2e::backends::AuthBackend`,
//! deciding like Authelia would): a 2xx lets the request through with the copied headers (a
//! client's forged ones gone), a 302 login redirect and a 401 come back to the client as they are,
//! a slow or absent service (or one answering over 64 KiB) is a 503 within the route's `timeout`,
//! a reload points the route at another service, the access log never holds a credential, and
//! `check-config` refuses a bad URL at its position.

use std::time::{Duration, Instant};

use e2e::backends::{AuthBackend, AuthReply, RecordingBackend, Seen};
use e2e::http::{request, Resp};
use http::Method;

use super::{balancer, check_config, config_file, get, with_app, T};

/// The bearer token the auth service accepts; it must never reach the access log.
const SECRET: &str = "s3cret-t0ken-value";
const TOKEN: &str = "Bearer s3cret-t0ken-value";

fn first<'a>(asked: &'a Seen, name: &str) -> &'a str {
    asked.header_values(name).first().copied().unwrap_or("")
}

/// Authelia's rules in small: a known token or session cookie is alice; a wrong token is a 401;
/// no credential at all is a 302 to the login portal with the page to come back to.
fn decide(asked: &Seen) -> AuthReply {
    let uri = first(asked, "x-forwarded-uri");
    if uri.starts_with("/private/slow") {
        return AuthReply {
            delay: Duration::from_secs(5),
            ..AuthReply::status(200)
        };
    }
    if uri.starts_with("/private/huge") {
        // A refusal whose body is over the balancer's 64 KiB bound.
        return AuthReply {
            body: "x".repeat(100 << 10),
            ..AuthReply::status(401)
        };
    }
    let token = asked.header_values("authorization");
    let session = asked
        .header_values("cookie")
        .iter()
        .any(|c| c.contains("session=good"));
    if token == [TOKEN] || session {
        return AuthReply::status(200)
            .header("remote-user", "alice")
            .header("remote-groups", "admins")
            .header("remote-groups", "dev")
            .header("remote-email", "alice@example.com");
    }
    if !token.is_empty() {
        return AuthReply {
            body: "bad token\n".into(),
            ..AuthReply::status(401)
                .header("www-authenticate", "Bearer realm=\"app\"")
                .header("content-type", "text/plain")
        };
    }
    let back = format!("http://{}{uri}", first(asked, "x-forwarded-host"));
    AuthReply {
        body: "login first\n".into(),
        ..AuthReply::status(302)
            .header("location", format!("https://login.example/?rd={back}"))
            .header("set-cookie", "flow=abc; HttpOnly")
            .header("set-cookie", "csrf=xyz; Path=/")
    }
}

/// `/` to the app, `/private` behind the auth service at `url`.
fn routes(url: &str) -> String {
    format!(
        "[[route]]\npath = \"/\"\nupstream = \"app\"\n\n\
         [[route]]\npath = \"/private\"\nupstream = \"app\"\n\
         forward_auth = {{ url = \"{url}\", copy_headers = [\"Remote-User\", \"Remote-Groups\"], timeout = \"500ms\" }}\n"
    )
}

async fn send(method: Method, url: &str, headers: &[(&str, &str)], body: &'static str) -> Resp {
    match request(method.clone(), url, headers, body).await {
        Ok(resp) => resp,
        Err(e) => panic!("{method} {url}: {e}"),
    }
}

fn all<'a>(resp: &'a Resp, name: &str) -> Vec<&'a str> {
    resp.headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap_or("?"))
        .collect()
}

#[tokio::test]
async fn forward_auth_lets_in_redirects_and_refuses_as_the_service_says() {
    let auth = AuthBackend::start(decide).await;
    let backend = RecordingBackend::start().await;
    // `localhost`: the auth service's host is a name the balancer resolves.
    let url = format!(
        "http://localhost:{}/api/verify?x=1",
        auth.backend.addr.port()
    );
    let (_dir, path) = config_file(&with_app(&backend, &routes(&url)));
    let mut b = balancer(&path, &["--access-log", "combined"], "/").await;
    let page = b.url("/private/doc?a=1");
    let host = page
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or("")
        .to_owned();

    let_in_with_the_copied_headers(&auth, &backend, &page, &host).await;
    refused_as_the_service_says(&backend, &page, &host).await;

    // A service slower than `timeout` (500ms): a 503 well before its answer (5s).
    let start = Instant::now();
    let slow = get(&b.url("/private/slow"), &[("authorization", TOKEN)]).await;
    let took = start.elapsed();
    assert_eq!(slow.status, 503, "{}", slow.text());
    assert!(
        slow.text().starts_with("503 Service Unavailable"),
        "{}",
        slow.text()
    );
    assert!(took < Duration::from_millis(2500), "took {took:?}");
    assert!(took >= Duration::from_millis(450), "took {took:?}");

    // A refusal too large to relay whole: a 503 too, not a truncated page.
    let huge = get(&b.url("/private/huge"), &[]).await;
    assert_eq!(huge.status, 503, "{} bytes", huge.body.len());

    // The access log has the lines, and no credential.
    let logged = e2e::wait_until(T, || b.process().log().matches("/private/").count() >= 5).await;
    let log = b.process().log();
    assert!(logged, "the access log has the requests: {log}");
    assert!(!log.contains(SECRET), "a credential was logged: {log}");
}

/// Allowed: the copied headers replace the client's forged ones; the body goes to the app only,
/// the auth service gets the request described in `X-Forwarded-*`.
async fn let_in_with_the_copied_headers(
    auth: &AuthBackend,
    backend: &RecordingBackend,
    page: &str,
    host: &str,
) {
    let forged = [
        ("authorization", TOKEN),
        ("remote-user", "mallory"),
        ("remote-email", "forged@example.com"),
        ("x-forwarded-uri", "/elsewhere"),
    ];
    let ok = send(Method::POST, page, &forged, "payload").await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    let seen = backend.seen();
    let up = seen
        .iter()
        .rev()
        .find(|s| s.target == "/private/doc?a=1")
        .unwrap();
    assert_eq!(up.header_values("remote-user"), ["alice"]);
    assert_eq!(up.header_values("remote-groups"), ["admins", "dev"]);
    assert_eq!(
        up.header_values("remote-email"),
        ["forged@example.com"],
        "not copied"
    );
    assert_eq!(up.header_values("authorization"), [TOKEN]);
    assert_eq!(up.body, b"payload");
    let asked = auth.asked();
    let last = asked.last().unwrap();
    assert_eq!(
        (last.method.as_str(), last.target.as_str()),
        ("GET", "/api/verify?x=1")
    );
    assert!(last.body.is_empty(), "the auth service got a body");
    assert_eq!(last.header_values("x-forwarded-method"), ["POST"]);
    assert_eq!(last.header_values("x-forwarded-uri"), ["/private/doc?a=1"]);
    assert_eq!(last.header_values("x-forwarded-host"), [host]);
    assert_eq!(last.header_values("x-forwarded-proto"), ["http"]);
    assert_eq!(last.header_values("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(last.header_values("authorization"), [TOKEN]);
    assert!(last.header_values("content-length").is_empty());
    let cookie = get(page, &[("cookie", "theme=dark; session=good")]).await;
    assert_eq!(cookie.status, 200);
}

/// A 302 login redirect and a 401 come back as the service wrote them; the app is not asked.
async fn refused_as_the_service_says(backend: &RecordingBackend, page: &str, host: &str) {
    // No credential: the login redirect, as the service wrote it; the app is not asked.
    let before = backend.count();
    let login = get(page, &[]).await;
    assert_eq!(login.status, 302);
    let back = format!("https://login.example/?rd=http://{host}/private/doc?a=1");
    assert_eq!(login.header("location"), Some(back.as_str()));
    assert_eq!(
        all(&login, "set-cookie"),
        ["flow=abc; HttpOnly", "csrf=xyz; Path=/"]
    );
    assert_eq!(login.text(), "login first\n");
    assert!(login.header("x-request-id").is_some());
    // A wrong token: the 401 with its body and challenge.
    let refused = get(page, &[("authorization", "Bearer wrong")]).await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.text(), "bad token\n");
    assert_eq!(
        refused.header("www-authenticate"),
        Some("Bearer realm=\"app\"")
    );
    assert_eq!(backend.count(), before, "a refused request reached the app");
}

#[tokio::test]
async fn forward_auth_down_is_a_503_until_a_reload_names_a_live_service() {
    let backend = RecordingBackend::start().await;
    // Bound then dropped: nothing listens on this port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap();
    let (_dir, path) = config_file(&with_app(
        &backend,
        &routes(&format!("http://{closed}/verify")),
    ));
    let mut b = balancer(&path, &[], "/").await;
    let page = b.url("/private/doc");
    let before = backend.count();
    let start = Instant::now();
    let down = get(&page, &[("authorization", TOKEN)]).await;
    assert_eq!(down.status, 503, "{}", down.text());
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(backend.count(), before, "let through without an answer");

    // The route's policy is rebuilt with the configuration: a live service after a SIGHUP.
    let auth = AuthBackend::start(decide).await;
    let text = with_app(&backend, &routes(&auth.url("/verify")));
    std::fs::write(&path, text).unwrap();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &b.process().pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let reloaded = e2e::wait_until_async(T, || async {
        get(&page, &[("authorization", TOKEN)]).await.status == 200
    })
    .await;
    assert!(reloaded, "never let in after the reload");
    assert_eq!(get(&page, &[]).await.status, 302);
}

#[tokio::test]
async fn check_config_refuses_a_bad_forward_auth_at_its_position() {
    let backend = RecordingBackend::start().await;
    let cases = [
        (
            "forward_auth = { url = \"https://auth:9091/verify\" }",
            ":7:24:",
            "http://",
        ),
        (
            "forward_auth = { url = \"http://auth:9091/verify\", timeout = \"5m\" }",
            ":7:61:",
            "between 10ms and 1m",
        ),
        (
            "forward_auth = { url = \"http://auth:9091/\", copy_headers = [\"Host\"] }",
            ":7:61:",
            "cannot be copied",
        ),
    ];
    for (line, at, words) in cases {
        let routes = format!("[[route]]\nupstream = \"app\"\n{line}\n");
        let (_dir, path) = config_file(&with_app(&backend, &routes));
        let (code, stderr) = check_config(&path);
        assert_eq!(code, Some(2), "{line}: {stderr}");
        let expected = format!("{}{at}", path.display());
        assert!(stderr.starts_with(&expected), "{line}: {stderr}");
        assert!(stderr.contains(words), "{line}: {stderr}");
    }
    let good =
        "[[route]]\nupstream = \"app\"\nforward_auth = { url = \"http://auth:9091/verify\" }\n";
    let (_dir, path) = config_file(&with_app(&backend, good));
    let (code, stderr) = check_config(&path);
    assert_eq!(code, Some(0), "{stderr}");
}
