//! Sticky sessions (`sticky = { cookie = "NAME" }`, issue 26) with real processes: one group of
//! three named replicas (`tests/src/backends/replica.rs`, which say who answered over HTTP and
//! over WebSocket) behind a balancer on a config file. A Socket.IO-style sequence (long-poll
//! GETs and POSTs, then the WebSocket upgrade) stays on one replica; requests without the cookie
//! spread; a forged cookie is an ordinary request; a drained or stopped pinned replica moves the
//! client and replaces the cookie; the cookie's attributes (and `Secure` over TLS only), no
//! address in it; bad `sticky` tables exit 2 with `PATH:LINE:COL`.

use std::collections::BTreeSet;
use std::time::Duration;

use futures_util::StreamExt;
use http::Method;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use e2e::backends::{named_replica, TestBackend};
use e2e::http::Resp;
use e2e::routes::{
    balancer_for, group_backends, run_balancer, served_by, upstream, wait_status, ConfigFile,
    ADMIN_TOKEN,
};
use e2e::Balancer;

/// Bound on a state change (a drain, a stop seen by the 100 ms probes) showing in routing.
const BOUND: Duration = Duration::from_secs(15);

/// Three replicas `r-1..3`, and the config file of one sticky group `app` over them.
async fn replicas() -> (Vec<TestBackend>, ConfigFile) {
    let mut replicas = Vec::new();
    for i in 1..=3 {
        replicas.push(named_replica(&format!("r-{i}")).await);
    }
    let addrs: Vec<_> = replicas.iter().map(|r| r.addr).collect();
    let toml = upstream("app", &addrs, &["sticky = { cookie = \"io\" }"])
        + "[[route]]\npath = \"/\"\nupstream = \"app\"\n";
    (replicas, ConfigFile::plain(&toml))
}

/// The balancer on `file`, once all three replicas are healthy.
async fn started(builder: e2e::BalancerBuilder) -> Balancer {
    let b = builder.start().await;
    wait_status(&b, "three healthy replicas", BOUND, |s| {
        let backends = group_backends(s, "app");
        backends.len() == 3 && backends.iter().all(|x| x["healthy"] == true)
    })
    .await;
    b
}

/// A request on a fresh connection with `Cookie: cookie` when given.
async fn send(b: &Balancer, method: Method, path: &str, cookie: Option<&str>) -> Resp {
    let headers: Vec<(&str, &str)> = cookie.iter().map(|c| ("cookie", *c)).collect();
    let body = if method == Method::POST { "40" } else { "" };
    let url = b.url(path);
    match e2e::http::request(method.clone(), &url, &headers, body).await {
        Ok(r) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    }
}

/// The `io=<value>` pair of a response's `Set-Cookie`, after checking its attributes.
fn issued(resp: &Resp, secure: bool, replicas: &[TestBackend]) -> String {
    let line = resp
        .header("set-cookie")
        .unwrap_or_else(|| panic!("no Set-Cookie from {}", served_by(resp)));
    let (pair, attributes) = line.split_once("; ").unwrap_or((line, ""));
    let value = pair.strip_prefix("io=").unwrap_or_else(|| panic!("{line}"));
    assert!(
        value.len() == 32 && value.bytes().all(|c| c.is_ascii_hexdigit()),
        "an opaque 128-bit tag: {line}"
    );
    let want = if secure {
        "Path=/; HttpOnly; SameSite=Lax; Secure"
    } else {
        "Path=/; HttpOnly; SameSite=Lax"
    };
    assert_eq!(attributes, want, "{line}");
    assert!(!line.contains("127.0.0.1"), "{line}");
    for r in replicas {
        assert!(!line.contains(&r.addr.to_string()), "{line}");
    }
    pair.to_owned()
}

/// The WebSocket handshake to `/socket.io/?transport=websocket` with `cookie`; the replica's
/// name (its first message) and the 101's `Set-Cookie`, if any.
async fn websocket(b: &Balancer, cookie: &str) -> (String, Option<String>) {
    let url = format!("ws://{}/socket.io/?EIO=4&transport=websocket", b.addr());
    let mut req = url.into_client_request().expect("a WebSocket request");
    req.headers_mut()
        .insert("cookie", cookie.parse().expect("a cookie header"));
    let stream = tokio::net::TcpStream::connect(b.addr())
        .await
        .expect("connect to the balancer");
    let (mut socket, resp) =
        tokio::time::timeout(BOUND, tokio_tungstenite::client_async(req, stream))
            .await
            .expect("handshake in time")
            .expect("handshake through the balancer");
    assert_eq!(resp.status(), 101);
    let set = resp
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let first = tokio::time::timeout(BOUND, socket.next())
        .await
        .expect("the replica's name in time")
        .expect("a message")
        .expect("a message, not an error");
    let name = first.into_text().expect("text").to_string();
    let _ = socket.close(None).await;
    (name, set)
}

#[tokio::test]
async fn a_long_poll_sequence_and_its_websocket_stay_on_one_replica_of_three() {
    let (replicas, file) = replicas().await;
    let b = started(balancer_for(&file)).await;
    let status = e2e::routes::status(&b).await;
    assert_eq!(
        status["groups"][0]["sticky_cookie"], "io",
        "{}",
        status["groups"]
    );

    // The handshake: no cookie yet, so an ordinary pick, and the cookie set.
    let open = send(&b, Method::GET, "/socket.io/?EIO=4&transport=polling", None).await;
    assert_eq!(open.status, 200);
    let pinned = served_by(&open);
    let cookie = issued(&open, false, &replicas);
    for round in 0..4 {
        let method = if round % 2 == 0 {
            Method::POST
        } else {
            Method::GET
        };
        let poll = send(
            &b,
            method,
            "/socket.io/?EIO=4&transport=polling",
            Some(&cookie),
        )
        .await;
        assert_eq!(
            (poll.status, served_by(&poll)),
            (200, pinned.clone()),
            "round {round}"
        );
        assert_eq!(
            poll.header("set-cookie"),
            None,
            "the cookie is not set again"
        );
    }
    // Among other cookies too, and the upgrade follows it.
    let among = format!("theme=dark; {cookie}; other=1");
    let (name, set) = websocket(&b, &among).await;
    assert_eq!(
        name, pinned,
        "the WebSocket lands on the long-poll's replica"
    );
    assert_eq!(set, None);

    // Without the cookie, fresh connections spread over all three.
    let mut seen = BTreeSet::new();
    for _ in 0..9 {
        let r = send(&b, Method::GET, "/", None).await;
        issued(&r, false, &replicas);
        seen.insert(served_by(&r));
    }
    assert_eq!(seen.len(), 3, "{seen:?}");

    // A forged cookie (well-formed, unknown) is an ordinary request that gets a real cookie.
    let forged = "io=0123456789abcdef0123456789abcdef";
    let r = send(&b, Method::GET, "/", Some(forged)).await;
    assert_eq!(r.status, 200);
    let fresh = issued(&r, false, &replicas);
    assert_ne!(fresh, forged);
    let again = send(&b, Method::GET, "/", Some(&fresh)).await;
    assert_eq!(served_by(&again), served_by(&r), "the new cookie pins");
    for junk in ["io=", "io=zz", "io=\"\"; io", "io=127.0.0.1:80"] {
        let r = send(&b, Method::GET, "/", Some(junk)).await;
        assert_eq!(r.status, 200, "{junk}");
        issued(&r, false, &replicas);
    }
}

#[tokio::test]
async fn a_drained_or_stopped_pinned_replica_moves_the_client_and_replaces_the_cookie() {
    let (replicas, file) = replicas().await;
    let b = started(balancer_for(&file)).await;
    let first = send(&b, Method::GET, "/", None).await;
    let (pinned, cookie) = (served_by(&first), issued(&first, false, &replicas));

    // Drained through the admin API: the next request goes elsewhere, with a new cookie.
    let victim = replicas[replicas_index(&pinned)].addr;
    let path = format!("/backends/{victim}/drain");
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let drained = e2e::http::request(
        Method::POST,
        &b.admin_url(&path),
        &[("authorization", &auth)],
        "",
    )
    .await
    .expect("POST drain");
    assert_eq!(drained.status, 200, "{}", drained.text());
    let moved = send(&b, Method::GET, "/", Some(&cookie)).await;
    let now = served_by(&moved);
    assert_ne!(now, pinned, "a drained replica gets no pinned request");
    let cookie = issued(&moved, false, &replicas);
    for _ in 0..3 {
        let r = send(&b, Method::GET, "/", Some(&cookie)).await;
        assert_eq!(served_by(&r), now, "pinned to the new replica");
        assert_eq!(r.header("set-cookie"), None);
    }

    // Stopped: once the probes see it, the client moves again and gets a new cookie.
    replicas[replicas_index(&now)].stop();
    let last = std::sync::Mutex::new(None);
    let moved = e2e::wait_until_async(BOUND, || async {
        let r = send(&b, Method::GET, "/", Some(&cookie)).await;
        let elsewhere = r.status == 200 && served_by(&r) != now;
        *shared::sync::lock(&last) = Some(r);
        elsewhere
    })
    .await;
    let r = shared::sync::lock(&last)
        .take()
        .expect("at least one request");
    assert!(
        moved,
        "still on the stopped {now}: {} {}",
        r.status,
        served_by(&r)
    );
    assert_ne!(served_by(&r), pinned, "the drained one stays out");
    let replaced = issued(&r, false, &replicas);
    assert_ne!(replaced, cookie);
}

/// `r-N` is `replicas[N - 1]`.
fn replicas_index(name: &str) -> usize {
    name.strip_prefix("r-")
        .and_then(|n| n.parse::<usize>().ok())
        .and_then(|n| n.checked_sub(1))
        .unwrap_or_else(|| panic!("not a replica name: {name}"))
}

#[tokio::test]
async fn the_cookie_is_secure_over_tls_only() {
    let (replicas, file) = replicas().await;
    let ca = e2e::tls::TestCa::new();
    let (cert, key) = ca.write("served", &ca.valid("localhost"));
    let tls = std::net::SocketAddr::from(([127, 0, 0, 1], e2e::free_port()));
    let builder = balancer_for(&file)
        .env("BALANCER_TLS_LISTEN", &tls.to_string())
        .env("BALANCER_TLS_CERT", &cert.display().to_string())
        .env("BALANCER_TLS_KEY", &key.display().to_string());
    let b = started(builder).await;
    let reply = e2e::tls::https_get(tls, "/", ca.client_config(&[b"http/1.1"]))
        .await
        .expect("GET over TLS");
    assert_eq!(reply.status, 200);
    let line = reply
        .headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("a Set-Cookie over TLS");
    assert!(
        line.ends_with("; Path=/; HttpOnly; SameSite=Lax; Secure"),
        "{line}"
    );
    let plain = send(&b, Method::GET, "/", None).await;
    issued(&plain, false, &replicas);
}

#[tokio::test]
async fn a_bad_sticky_table_exits_2_at_its_line_and_column() {
    let base = "[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:5000\"]\n";
    let route = "[[route]]\nupstream = \"app\"\n";
    for (sticky, col, words) in [
        ("sticky = { cookie = \"\" }", 21, "sticky `cookie` is empty"),
        (
            "sticky = { cookie = \"a;b\" }",
            21,
            "which a cookie name cannot hold",
        ),
        (
            "sticky = { name = \"io\" }",
            19,
            "`sticky` has no key `name`",
        ),
    ] {
        let file = ConfigFile::plain(&format!("{base}{sticky}\n{route}"));
        let path = file.path_str();
        let check = run_balancer(&["check-config", &path], &[]).await;
        let start = run_balancer(&["--config", &path], &[]).await;
        for out in [check, start] {
            let text = String::from_utf8_lossy(&out.stderr).to_string();
            assert_eq!(out.status.code(), Some(2), "{sticky}: {text}");
            let want = format!("{path}:4:{col}: ");
            assert!(
                text.contains(&want) && text.contains(words),
                "{sticky}: want {want}{words}, got {text}"
            );
        }
    }
}
