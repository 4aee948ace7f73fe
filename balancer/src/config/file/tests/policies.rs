//! The per-route policy keys: each refused at its line and column, the users file at its own
//! line, a route that answers itself without `upstream`, the policies in the specs.

use super::*;
use crate::policy::answer::Answer;

/// (file after the `app` group, line and column, words of the message).
const CASES: &[(&str, (usize, usize), &str)] = &[
    ("[[route]]\nupstream = \"app\"\nallow = [\"10.0.0.0/8\", \"nope\"]\n", (6, 24), "`nope` is not an address or CIDR"),
    ("[[route]]\nupstream = \"app\"\ndeny = [\"10.0.0.0/40\"]\n", (6, 9), "no valid prefix length"),
    ("[[route]]\nupstream = \"app\"\nrequest_headers = { set = { \"Connection\" = \"close\" } }\n", (6, 29), "hop-by-hop, framing or forwarding header"),
    ("[[route]]\nupstream = \"app\"\nrequest_headers = { remove = [\"X-Forwarded-For\"] }\n", (6, 31), "forwarding header"),
    ("[[route]]\nupstream = \"app\"\nresponse_headers = { set = { \"Transfer-Encoding\" = \"chunked\" } }\n", (6, 30), "framing"),
    ("[[route]]\nupstream = \"app\"\nresponse_headers = { set = { \"X-A\" = \"a\\r\\nX-B: b\" } }\n", (6, 38), "line break"),
    ("[[route]]\nupstream = \"app\"\nresponse_headers = { set = { \"X-A\" = \"a\", \"x-a\" = \"b\" } }\n", (6, 43), "set twice"),
    ("[[route]]\nupstream = \"app\"\nresponse_headers = { add = {} }\n", (6, 22), "unknown field `add`"),
    ("[[route]]\nrespond = { status = 99 }\n", (5, 22), "between 200 and 599"),
    ("[[route]]\nrespond = { status = 503, content_type = \"a\\nb\" }\n", (5, 42), "content_type"),
    ("[[route]]\nredirect = { to = \"https://e.com{path}\", code = 303 }\n", (5, 49), "301, 302, 307 or 308"),
    ("[[route]]\nredirect = { to = \"e.com{path}\" }\n", (5, 19), "absolute URL"),
    ("[[route]]\nredirect = { to = \"/x{query}\" }\n", (5, 19), "not `{query}`"),
    ("[[route]]\nrespond = { status = 503 }\nredirect = { to = \"/x\" }\n", (6, 12), "`respond` or `redirect`, not both"),
    ("[[route]]\nupstream = \"app\"\nrespond = { status = 503 }\n", (6, 11), "takes no `upstream`"),
    ("[[route]]\nrespond = { status = 503 }\nrequest_headers = { remove = [\"Cookie\"] }\n", (6, 19), "does nothing on a route that answers itself"),
    ("[[route]]\nupstream = \"app\"\nbasic_auth = { realm = \"a\\\"b\", users_file = \"u\" }\n", (6, 24), "realm"),
    ("[[route]]\nupstream = \"app\"\nbasic_auth = { realm = \"r\", users_file = \"/nonexistent/users\" }\n", (6, 42), "cannot read"),
    ("[[route]]\nupstream = \"app\"\nbasic_auth = { realm = \"r\" }\n", (6, 14), "missing field `users_file`"),
];

#[test]
fn every_bad_policy_is_refused_at_its_line_and_column() {
    assert_refused_at(
        CASES
            .iter()
            .map(|&(case, at, words)| (format!("{APP}{case}"), at, words)),
    );
}

#[test]
fn a_users_file_is_refused_at_its_own_line() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    let good = bcrypt::hash("pw", 4).unwrap();
    std::fs::write(&users, format!("alice:{good}\n# md5\nbob:$apr1$x$y\n")).unwrap();
    let text = format!(
        "{APP}[[route]]\nupstream = \"app\"\nbasic_auth = {{ realm = \"r\", users_file = \"{}\" }}\n",
        users.display()
    );
    let err = load_text(&text, &[]).unwrap_err();
    assert_eq!(err.position(), Some((3, 1)), "{err}");
    let line = err.to_string();
    assert!(
        line.starts_with(&format!("{}:3:1: ", users.display())),
        "{line}"
    );
    assert!(line.contains("MD5"), "{line}");
}

#[test]
fn policies_reach_the_spec_and_a_fixed_answer_needs_no_upstream() {
    let (dir, path) = write("");
    let good = bcrypt::hash("pw", 4).unwrap();
    std::fs::write(dir.path().join("users"), format!("alice:{good}\n")).unwrap();
    let text = format!(
        "{APP}[[route]]\npath = \"/down\"\nrespond = {{ status = 503, body = \"later\" }}\n\
         [[route]]\npath = \"/old\"\nredirect = {{ to = \"https://new.example{{path}}\" }}\n\
         [[route]]\nupstream = \"app\"\nallow = [\"10.0.0.0/8\"]\n\
         basic_auth = {{ realm = \"r\", users_file = \"users\" }}\n\
         request_headers = {{ set = {{ \"X-A\" = \"1\" }}, remove = [\"X-B\"] }}\n"
    );
    std::fs::write(&path, text).unwrap();
    let args: Vec<OsString> = vec!["balancer".into(), "--config".into(), path.into()];
    let loaded = load(&args).unwrap();
    let [down, old, main] = &loaded.routes[..] else {
        panic!("three routes")
    };
    assert!(down.targets.is_empty() && old.targets.is_empty());
    assert!(matches!(down.policy.answer, Some(Answer::Respond(ref r)) if r.status == 503));
    assert!(matches!(old.policy.answer, Some(Answer::Redirect(ref r)) if r.code == 308));
    assert!(main.policy.access.is_some() && main.policy.request_headers.is_some());
    assert_eq!(main.policy.basic_auth.as_ref().map(|a| a.users()), Some(1));
    assert!(main.policy.answer.is_none() && main.policy.response_headers.is_none());
}
