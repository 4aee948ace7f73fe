//! `forward_auth` in the file: each bad value refused at its line and column, a good one in the
//! route's policy with its default timeout.

use std::time::Duration;

use super::*;

/// (file after the `app` group, line and column, words of the message).
const CASES: &[(&str, (usize, usize), &str)] = &[
    ("[[route]]\nupstream = \"app\"\nforward_auth = { url = \"https://auth/verify\" }\n", (6, 24), "http://"),
    ("[[route]]\nupstream = \"app\"\nforward_auth = { url = \"http://u:p@auth/verify\" }\n", (6, 24), "credentials"),
    ("[[route]]\nupstream = \"app\"\nforward_auth = { url = \"auth:9091\" }\n", (6, 24), "auth:9091"),
    ("[[route]]\nupstream = \"app\"\nforward_auth = { url = \"http://auth/\", timeout = \"2m\" }\n", (6, 50), "between 10ms and 1m"),
    ("[[route]]\nupstream = \"app\"\nforward_auth = { url = \"http://auth/\", timeout = \"5\" }\n", (6, 50), "needs a unit"),
    ("[[route]]\nupstream = \"app\"\nforward_auth = { url = \"http://auth/\", copy_headers = [\"Remote-User\", \"Content-Length\"] }\n", (6, 71), "cannot be copied"),
    ("[[route]]\nupstream = \"app\"\nforward_auth = { url = \"http://auth/\", copy_headers = [\"X-Forwarded-User\"] }\n", (6, 56), "forwarding"),
    ("[[route]]\nupstream = \"app\"\nforward_auth = { url = \"http://auth/\", copy_headers = [\"A\", \"a\"] }\n", (6, 61), "twice"),
    ("[[route]]\nupstream = \"app\"\nforward_auth = { url = \"http://auth/\", copy_headers = [\"Remote-User\"] }\nrequest_headers = { remove = [\"Remote-User\"] }\n", (6, 56), "copy it or set it"),
    ("[[route]]\nupstream = \"app\"\nforward_auth = { url = \"http://auth/\", copy = [] }\n", (6, 40), "unknown field `copy`"),
    ("[[route]]\nupstream = \"app\"\nforward_auth = { timeout = \"1s\" }\n", (6, 16), "missing field `url`"),
];

#[test]
fn every_bad_forward_auth_is_refused_at_its_line_and_column() {
    assert_refused_at(
        CASES
            .iter()
            .map(|&(case, at, words)| (format!("{APP}{case}"), at, words)),
    );
}

#[test]
fn forward_auth_reaches_the_spec() {
    let text = format!(
        "{APP}[[route]]\npath = \"/a\"\nupstream = \"app\"\n\
         forward_auth = {{ url = \"http://authelia:9091/api/authz/forward-auth\", copy_headers = [\"Remote-User\", \"Remote-Groups\"] }}\n\
         [[route]]\nupstream = \"app\"\nforward_auth = {{ url = \"http://127.0.0.1:9/\", timeout = \"250ms\" }}\n"
    );
    let loaded = load_text(&text, &[]).unwrap();
    let [a, b] = &loaded.routes[..] else {
        panic!("two routes")
    };
    let a = a.policy.forward_auth.as_ref().unwrap();
    assert_eq!(a.url, "http://authelia:9091/api/authz/forward-auth");
    assert_eq!(a.copy_headers, ["remote-user", "remote-groups"]);
    assert_eq!(a.timeout, crate::policy::forward_auth::DEFAULT_TIMEOUT);
    let b = b.policy.forward_auth.as_ref().unwrap();
    assert!(b.copy_headers.is_empty());
    assert_eq!(b.timeout, Duration::from_millis(250));
}
