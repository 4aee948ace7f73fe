use super::*;
use proptest::prelude::*;

fn auth(copy: &[&str]) -> ForwardAuth {
    let url = parse_url("http://auth.internal:9091/api/verify?rd=x").unwrap();
    let names = copy
        .iter()
        .map(|n| HeaderName::from_bytes(n.as_bytes()).unwrap())
        .collect();
    ForwardAuth::new(url, names, DEFAULT_TIMEOUT)
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        map.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    map
}

fn ask(auth: &ForwardAuth, client: &HeaderMap, trusted_peer: bool) -> Request<()> {
    let host = client.get(header::HOST).cloned();
    auth.request(&Original {
        method: &Method::POST,
        target: "/app/page?q=1",
        headers: client,
        host: host.as_ref(),
        proto: &HeaderValue::from_static("https"),
        client_ip: &HeaderValue::from_static("192.0.2.7"),
        trusted_peer,
        request_id: &HeaderValue::from_static("req-1"),
    })
}

fn values<'a>(req: &'a Request<()>, name: &str) -> Vec<&'a str> {
    req.headers()
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect()
}

#[test]
fn the_auth_request_says_what_the_client_asked() {
    let client = headers(&[
        ("host", "app.example"),
        ("cookie", "session=abc"),
        ("cookie", "theme=dark"),
        ("authorization", "Bearer t0ken"),
        ("accept", "text/html"),
        ("content-length", "5"),
        ("transfer-encoding", "chunked"),
        ("connection", "keep-alive, x-private"),
        ("x-private", "hop"),
        ("expect", "100-continue"),
        ("x-forwarded-uri", "/forged"),
        ("x-forwarded-method", "GET"),
        ("x-forwarded-host", "evil.example"),
        ("x-real-ip", "10.9.9.9"),
        ("x-forwarded-for", "10.9.9.9"),
        ("x-request-id", "client-chosen"),
    ]);
    let req = ask(&auth(&[]), &client, false);
    assert_eq!(req.method(), Method::GET);
    assert_eq!(req.uri(), "http://auth.internal:9091/api/verify?rd=x");
    assert_eq!(values(&req, "host"), ["auth.internal:9091"]);
    assert_eq!(values(&req, "cookie"), ["session=abc", "theme=dark"]);
    assert_eq!(values(&req, "authorization"), ["Bearer t0ken"]);
    assert_eq!(values(&req, "accept"), ["text/html"]);
    assert_eq!(values(&req, "x-forwarded-method"), ["POST"]);
    assert_eq!(values(&req, "x-forwarded-proto"), ["https"]);
    assert_eq!(values(&req, "x-forwarded-host"), ["app.example"]);
    assert_eq!(values(&req, "x-forwarded-uri"), ["/app/page?q=1"]);
    assert_eq!(values(&req, "x-forwarded-for"), ["192.0.2.7"]);
    assert_eq!(values(&req, "x-real-ip"), ["192.0.2.7"]);
    assert_eq!(values(&req, "x-request-id"), ["req-1"]);
    for gone in [
        "content-length",
        "transfer-encoding",
        "connection",
        "x-private",
        "expect",
    ] {
        assert!(values(&req, gone).is_empty(), "{gone} was passed on");
    }
}

#[test]
fn a_trusted_proxys_chain_is_kept_a_clients_claim_is_not() {
    let client = headers(&[("x-forwarded-for", "198.51.100.1, 10.0.0.2")]);
    let trusted = ask(&auth(&[]), &client, true);
    assert_eq!(
        values(&trusted, "x-forwarded-for"),
        ["198.51.100.1, 10.0.0.2, 192.0.2.7"]
    );
    let direct = ask(&auth(&[]), &client, false);
    assert_eq!(values(&direct, "x-forwarded-for"), ["192.0.2.7"]);
    let none = ask(&auth(&[]), &HeaderMap::new(), false);
    assert!(values(&none, "x-forwarded-host").is_empty(), "no Host sent");
}

#[test]
fn only_2xx_allows() {
    for code in [200, 202, 204, 299] {
        assert!(ForwardAuth::allows(StatusCode::from_u16(code).unwrap()));
    }
    for code in [301, 302, 304, 401, 403, 404, 500, 503] {
        assert!(!ForwardAuth::allows(StatusCode::from_u16(code).unwrap()));
    }
}

#[test]
fn copied_headers_replace_what_the_client_sent() {
    let auth = auth(&["Remote-User", "Remote-Groups", "Remote-Email"]);
    let answer = headers(&[
        ("remote-user", "alice"),
        ("remote-groups", "admins"),
        ("remote-groups", "dev"),
        ("set-cookie", "not=copied"),
    ]);
    let granted = auth.granted(&answer);
    assert_eq!(granted.len(), 3);
    let mut upstream = headers(&[
        ("remote-user", "mallory"),
        ("remote-email", "forged@example.com"),
        ("accept", "*/*"),
    ]);
    auth.apply(&granted, &mut upstream);
    let got = |name: &str| -> Vec<&str> {
        upstream
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    };
    assert_eq!(got("remote-user"), ["alice"]);
    assert_eq!(got("remote-groups"), ["admins", "dev"]);
    assert!(got("remote-email").is_empty(), "a forged header survived");
    assert!(got("set-cookie").is_empty());
    assert_eq!(got("accept"), ["*/*"]);
}

#[test]
fn a_denial_keeps_its_headers_but_not_its_framing() {
    let mut answer = headers(&[
        (
            "location",
            "https://auth.example/?rd=https%3A%2F%2Fapp.example%2F",
        ),
        ("set-cookie", "a=1; HttpOnly"),
        ("set-cookie", "b=2"),
        ("content-length", "12"),
        ("transfer-encoding", "chunked"),
        ("connection", "close, x-hop"),
        ("x-hop", "1"),
        ("www-authenticate", "Bearer"),
    ]);
    denial_headers(&mut answer);
    assert_eq!(answer.get_all("set-cookie").iter().count(), 2);
    assert!(answer.contains_key("location"));
    assert!(answer.contains_key("www-authenticate"));
    for gone in ["content-length", "transfer-encoding", "connection", "x-hop"] {
        assert!(!answer.contains_key(gone), "{gone}");
    }
}

#[test]
fn urls_are_plain_http_with_a_host() {
    assert!(parse_url("http://auth:9091/verify").is_ok());
    assert!(parse_url("http://127.0.0.1/").is_ok());
    assert!(parse_url("http://[::1]:9091/api/authz/forward-auth").is_ok());
    for (bad, words) in [
        ("https://auth/verify", "http://"),
        ("auth:9091/verify", "http://"),
        ("/verify", "http://"),
        ("http:///verify", "not a URL"),
        ("http://user:pw@auth/verify", "credentials"),
        ("http://auth/verify#x", "fragment"),
        ("http://auth /x", "not a URL"),
        ("", "not a URL"),
    ] {
        let err = parse_url(bad).unwrap_err();
        assert!(err.contains(words), "{bad}: {err}");
    }
}

#[test]
fn timeouts_have_a_range() {
    assert_eq!(parse_timeout("500ms").unwrap(), Duration::from_millis(500));
    assert_eq!(parse_timeout("1m").unwrap(), MAX_TIMEOUT);
    assert_eq!(parse_timeout("10ms").unwrap(), MIN_TIMEOUT);
    for bad in ["0s", "9ms", "61s", "5", "soon", "1.5s"] {
        assert!(parse_timeout(bad).is_err(), "{bad}");
    }
}

proptest! {
    /// Whatever a client sends, the auth request carries exactly one of each forwarding header,
    /// with the balancer's values, and never the framing.
    #[test]
    fn client_headers_never_forge_the_forwarding_ones(
        pairs in prop::collection::vec(
            (prop::sample::select(vec![
                "x-forwarded-for", "x-forwarded-uri", "x-forwarded-method", "x-forwarded-proto",
                "x-forwarded-host", "x-real-ip", "host", "content-length", "connection",
                "cookie", "x-other",
            ]), "[ -~]{0,20}"),
            0..12,
        )
    ) {
        let mut client = HeaderMap::new();
        for (name, value) in &pairs {
            if let Ok(v) = HeaderValue::from_str(value) {
                client.append(*name, v);
            }
        }
        let req = ask(&auth(&["x-other"]), &client, false);
        prop_assert_eq!(values(&req, "x-forwarded-uri"), ["/app/page?q=1"]);
        prop_assert_eq!(values(&req, "x-forwarded-method"), ["POST"]);
        prop_assert_eq!(values(&req, "x-forwarded-proto"), ["https"]);
        prop_assert_eq!(values(&req, "x-forwarded-for"), ["192.0.2.7"]);
        prop_assert_eq!(values(&req, "host"), ["auth.internal:9091"]);
        prop_assert!(values(&req, "content-length").is_empty());
        prop_assert!(values(&req, "connection").is_empty());
        prop_assert!(values(&req, "x-forwarded-host").len() <= 1);
    }
}
