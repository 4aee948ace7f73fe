//! Sticky sessions through the real proxy without a socket: the cookie set on the first answer
//! pins the next requests, and a pinned backend that refuses the connection is retried
//! elsewhere, whose answer replaces the cookie.

use super::*;
use crate::backends::sticky::StickyCookie;

const THREE: &[Script] = &[
    Script::Answer(200, "a"),
    Script::Answer(200, "b"),
    Script::Answer(200, "c"),
];

fn get(cookie: Option<&str>) -> Request<Full<Bytes>> {
    let mut req = Request::get("/")
        .header("host", "example.com")
        .body(empty())
        .unwrap();
    if let Some(cookie) = cookie {
        req.headers_mut().insert("cookie", cookie.parse().unwrap());
    }
    req
}

/// The `lb=<tag>` pair of a `Set-Cookie`, if any.
fn pair(headers: &HeaderMap) -> Option<String> {
    let line = headers.get("set-cookie")?.to_str().ok()?;
    line.split(';').next().map(str::to_owned)
}

#[tokio::test]
async fn a_refused_pinned_backend_is_retried_elsewhere_and_the_cookie_replaced() {
    let sticky = StickyCookie {
        name: "lb".into(),
        secret: None,
    };
    let route = route("default", None, "/", &[("default", 1)], false);
    let groups: [(&str, &[Script]); 1] = [("default", THREE)];
    let h = routed_with(&groups, &[route], 1 << 20, no_rules(), Some(sticky)).await;
    let (status, headers, pinned) = send(&h, get(None)).await;
    assert_eq!(status, StatusCode::OK);
    let cookie = pair(&headers).expect("the first answer sets the cookie");
    for _ in 0..3 {
        let (_, headers, body) = send(&h, get(Some(&cookie))).await;
        assert_eq!(body, pinned);
        assert_eq!(pair(&headers), None);
    }
    let index = usize::from(pinned.as_bytes()[0] - b'a');
    shared::sync::lock(&h.upstream.scripts).insert(h.backends[index], Script::Refuse);
    let (status, headers, body) = send(&h, get(Some(&cookie))).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(body, pinned, "retried on another backend");
    assert_eq!(h.metrics.retries.get(), 1);
    let replaced = pair(&headers).expect("the retry's answer replaces the cookie");
    assert_ne!(replaced, cookie);
    let (_, headers, again) = send(&h, get(Some(&replaced))).await;
    assert_eq!(
        (again, pair(&headers)),
        (body, None),
        "pinned to the new one"
    );
}
