//! Per-route policies with real processes (issue 26): `respond` and `redirect` without an
//! upstream, `allow`/`deny` on the client address (through a trusted proxy's `X-Forwarded-For`
//! too), header rules reaching a recording backend and the client, `basic_auth` against a users
//! file made by Debian's `htpasswd -B`, and the configurations `check-config` refuses with their
//! positions. Each test writes its config file, starts a `balancer --config` and talks to it.

mod forward_auth;
mod rate_limit;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use e2e::backends::RecordingBackend;
use e2e::http::{request, Resp};
use e2e::Balancer;
use http::Method;

const T: Duration = Duration::from_secs(20);

/// Request headers as (name, value).
type Headers<'a> = [(&'a str, &'a str)];

/// A config file with `text` in a fresh directory (kept while the directory lives).
fn config_file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("balancer.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// `[[upstream]] app` on `backend`, then `routes`.
fn with_app(backend: &RecordingBackend, routes: &str) -> String {
    format!(
        "[[upstream]]\nname = \"app\"\nservers = [\"{}\"]\n\n{routes}",
        backend.addr
    )
}

/// A balancer on `path` with `args`, once `probe` (a path on an upstream route) answers 200.
async fn balancer(path: &Path, args: &[&str], probe: &str) -> Balancer {
    let config = path.to_str().unwrap();
    let b = Balancer::builder()
        .args(&["--config", config])
        .args(args)
        .start()
        .await;
    let url = b.url(probe);
    let up = e2e::wait_until_async(T, || async { get(&url, &[]).await.status == 200 }).await;
    assert!(up, "{probe} never answered 200");
    b
}

async fn get(url: &str, headers: &[(&str, &str)]) -> Resp {
    match request(Method::GET, url, headers, bytes::Bytes::new()).await {
        Ok(resp) => resp,
        Err(e) => panic!("GET {url}: {e}"),
    }
}

/// `balancer check-config PATH`: exit code and stderr.
fn check_config(path: &Path) -> (Option<i32>, String) {
    let out = Command::new(e2e::bin_path("balancer"))
        .arg("check-config")
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `htpasswd -B` (Debian's apache2-utils) adding `user` with `password` to `file`.
fn htpasswd(file: &Path, user: &str, password: &str, extra: &[&str]) {
    let mut cmd = Command::new("htpasswd");
    cmd.arg("-b");
    if !file.exists() {
        cmd.arg("-c");
    }
    let out = cmd
        .args(extra)
        .arg(file)
        .arg(user)
        .arg(password)
        .output()
        .expect("htpasswd (apt-get install apache2-utils)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn basic(user_pass: &str) -> String {
    let out = Command::new("base64")
        .arg("-w0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(user_pass.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    format!("Basic {}", String::from_utf8(out.stdout).unwrap())
}

#[tokio::test]
async fn respond_and_redirect_answer_without_the_upstream() {
    let backend = RecordingBackend::start().await;
    let routes = "[[route]]\npath = \"/\"\nupstream = \"app\"\n\n\
        [[route]]\npath = \"/down\"\nrespond = { status = 503, body = \"back soon\\n\" }\n\
        response_headers = { set = { \"Retry-After\" = \"120\" } }\n\n\
        [[route]]\npath = \"/old\"\nredirect = { to = \"https://new.example{path}\", code = 301 }\n\n\
        [[route]]\npath = \"/here\"\nredirect = { to = \"http://{host}/there\", code = 307 }\n";
    let (_dir, path) = config_file(&with_app(&backend, routes));
    let b = balancer(&path, &[], "/").await;
    let before = backend.count();

    let down = get(&b.url("/down/page"), &[]).await;
    assert_eq!(down.status, 503);
    assert_eq!(down.text(), "back soon\n");
    assert_eq!(down.header("retry-after"), Some("120"));
    assert_eq!(
        down.header("content-type"),
        Some("text/plain; charset=utf-8")
    );

    let old = get(&b.url("/old/a/b?x=1&y=2"), &[]).await;
    assert_eq!(old.status, 301);
    assert_eq!(
        old.header("location"),
        Some("https://new.example/old/a/b?x=1&y=2")
    );
    let here = get(&b.url("/here"), &[("host", "site.example:8080")]).await;
    assert_eq!(here.status, 307);
    assert_eq!(
        here.header("location"),
        Some("http://site.example:8080/there")
    );
    assert!(
        here.header("x-request-id").is_some(),
        "still the balancer's answer"
    );
    assert_eq!(backend.count(), before, "no request reached the upstream");
}

#[tokio::test]
async fn allow_and_deny_judge_the_client_trusted_proxies_decide() {
    let backend = RecordingBackend::start().await;
    let routes = "[[route]]\npath = \"/\"\nupstream = \"app\"\n\n\
        [[route]]\npath = \"/admin\"\nupstream = \"app\"\n\
        allow = [\"198.51.100.0/24\", \"2001:db8::/32\"]\ndeny = [\"198.51.100.66\"]\n\n\
        [[route]]\npath = \"/public\"\nupstream = \"app\"\ndeny = [\"203.0.113.0/24\"]\n";
    let (_dir, path) = config_file(&with_app(&backend, routes));
    let behind = balancer(&path, &["--trusted-proxies", "127.0.0.1"], "/").await;
    let xff = |ip: &'static str| [("x-forwarded-for", ip)];

    let cases: [(&str, &Headers, u16); 8] = [
        ("/admin", &xff("198.51.100.7"), 200),
        ("/admin", &xff("2001:db8::1"), 200),
        ("/admin", &xff("198.51.100.66"), 403),
        ("/admin", &xff("192.0.2.1"), 403),
        ("/admin", &[], 403),
        (
            "/admin",
            &[("x-forwarded-for", "198.51.100.7, 192.0.2.1")],
            403,
        ),
        ("/public/x", &xff("203.0.113.9"), 403),
        ("/public/x", &xff("192.0.2.1"), 200),
    ];
    for (target, headers, status) in cases {
        let resp = get(&behind.url(target), headers).await;
        assert_eq!(resp.status, status, "{target} {headers:?}: {}", resp.text());
        if status == 403 {
            assert!(resp.text().starts_with("403 Forbidden"), "{}", resp.text());
        }
    }
    // Without --trusted-proxies, X-Forwarded-For is the client's claim: the peer is judged.
    let direct = balancer(&path, &[], "/").await;
    let resp = get(&direct.url("/admin"), &xff("198.51.100.7")).await;
    assert_eq!(resp.status, 403);
    let resp = get(&direct.url("/public/x"), &xff("203.0.113.9")).await;
    assert_eq!(resp.status, 200);
}

#[tokio::test]
async fn header_rules_reach_the_backend_and_the_client() {
    let backend = RecordingBackend::start().await;
    let routes = "[[route]]\npath = \"/\"\nupstream = \"app\"\n\
        request_headers = { set = { \"X-Tenant\" = \"blue\", \"User-Agent\" = \"balancer-test\" }, remove = [\"Cookie\", \"X-Debug\"] }\n\
        response_headers = { set = { \"X-Frame-Options\" = \"DENY\" }, remove = [\"X-Served-By\"] }\n";
    let (_dir, path) = config_file(&with_app(&backend, routes));
    let b = balancer(&path, &[], "/").await;
    let headers = [
        ("x-tenant", "red"),
        ("cookie", "session=secret"),
        ("x-debug", "1"),
        ("x-kept", "yes"),
    ];
    let resp = get(&b.url("/page"), &headers).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("x-frame-options"), Some("DENY"));
    assert_eq!(resp.header("x-served-by"), None);
    let seen = backend.seen();
    let last = seen.iter().rev().find(|s| s.target == "/page").unwrap();
    assert_eq!(last.header_values("x-tenant"), ["blue"]);
    assert_eq!(last.header_values("user-agent"), ["balancer-test"]);
    assert!(last.header_values("cookie").is_empty());
    assert!(last.header_values("x-debug").is_empty());
    assert_eq!(last.header_values("x-kept"), ["yes"]);
    assert_eq!(last.header_values("x-forwarded-for"), ["127.0.0.1"]);
}

#[tokio::test]
async fn basic_auth_with_a_users_file_from_htpasswd() {
    let backend = RecordingBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    htpasswd(&users, "alice", "wonder land", &["-B"]);
    htpasswd(&users, "bob", "builder", &["-B", "-C", "6"]);
    let routes = "[[route]]\npath = \"/\"\nupstream = \"app\"\n\n\
        [[route]]\npath = \"/private\"\nupstream = \"app\"\n\
        basic_auth = { realm = \"Staff only\", users_file = \"users\" }\n";
    let path = dir.path().join("balancer.toml");
    std::fs::write(&path, with_app(&backend, routes)).unwrap();
    let mut b = balancer(&path, &["--access-log", "combined"], "/").await;
    let url = b.url("/private/doc");

    let alice = basic("alice:wonder land");
    let ok = get(&url, &[("authorization", &alice)]).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    let bob = basic("bob:builder");
    assert_eq!(get(&url, &[("authorization", &bob)]).await.status, 200);

    let wrong = basic("alice:wonderland");
    let unknown = basic("mallory:wonder land");
    let refused: [&[(&str, &str)]; 7] = [
        &[],
        &[("authorization", &wrong)],
        &[("authorization", &unknown)],
        &[("authorization", "Basic !!!not base64")],
        &[("authorization", "Basic")],
        &[("authorization", "Bearer abc.def")],
        &[("authorization", "Basic YWxpY2U=")],
    ];
    for headers in refused {
        let resp = get(&url, headers).await;
        assert_eq!(resp.status, 401, "{headers:?}");
        assert_eq!(
            resp.header("www-authenticate"),
            Some("Basic realm=\"Staff only\"")
        );
        assert_eq!(resp.text(), "401 Unauthorized\n");
    }
    let seen = backend.seen();
    assert!(seen.iter().filter(|s| s.target == "/private/doc").count() == 2);
    // The access log is written in batches: wait for the lines, then look for the secrets.
    let logged =
        e2e::wait_until(T, || b.process().log().matches("/private/doc").count() >= 9).await;
    let log = b.process().log();
    assert!(logged, "the access log has the requests: {log}");
    assert!(
        !log.contains(&alice[6..]) && !log.contains("wonder land"),
        "credentials logged"
    );

    // The users file is read with the configuration: a new file and a SIGHUP (the config file
    // itself unchanged) put carol in and alice out.
    std::fs::remove_file(&users).unwrap();
    htpasswd(&users, "carol", "c", &["-B"]);
    let hup = Command::new("kill")
        .args(["-HUP", &b.process().pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let carol = basic("carol:c");
    let reloaded = e2e::wait_until_async(T, || async {
        get(&url, &[("authorization", &carol)]).await.status == 200
    })
    .await;
    assert!(reloaded, "carol never let in after the reload");
    assert_eq!(get(&url, &[("authorization", &alice)]).await.status, 401);
}

/// (config after the `app` group, words of the error, its line:column).
const REFUSED: &[(&str, &str, &str)] = &[
    (
        "[[route]]\nupstream = \"app\"\nrequest_headers = { set = { \"Connection\" = \"close\" } }\n",
        "hop-by-hop",
        ":7:29:",
    ),
    (
        "[[route]]\nupstream = \"app\"\nresponse_headers = { set = { \"Content-Length\" = \"0\" } }\n",
        "framing",
        ":7:30:",
    ),
    (
        "[[route]]\nupstream = \"app\"\nrequest_headers = { remove = [\"X-Real-IP\"] }\n",
        "forwarding",
        ":7:31:",
    ),
    (
        "[[route]]\nupstream = \"app\"\nallow = [\"10.0.0.0/8\", \"10.0.0.0/99\"]\n",
        "prefix length",
        ":7:24:",
    ),
    (
        "[[route]]\nredirect = { to = \"https://e.com{path}\", code = 303 }\n",
        "301, 302, 307 or 308",
        ":6:49:",
    ),
    (
        "[[route]]\nupstream = \"app\"\nrespond = { status = 503 }\n",
        "takes no `upstream`",
        ":7:11:",
    ),
];

#[tokio::test]
async fn check_config_refuses_bad_policies_at_their_position() {
    let backend = RecordingBackend::start().await;
    for (routes, words, at) in REFUSED {
        let (_dir, path) = config_file(&with_app(&backend, routes));
        let (code, stderr) = check_config(&path);
        assert_eq!(code, Some(2), "{routes}: {stderr}");
        let expected = format!("{}{at}", path.display());
        assert!(stderr.starts_with(&expected), "{routes}: {stderr}");
        assert!(stderr.contains(words), "{routes}: {stderr}");
    }
    // An MD5 entry (`htpasswd -m`) among bcrypt ones: refused at its line of the users file.
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    htpasswd(&users, "alice", "a", &["-B"]);
    htpasswd(&users, "bob", "b", &["-m"]);
    let path = dir.path().join("balancer.toml");
    let routes =
        "[[route]]\nupstream = \"app\"\nbasic_auth = { realm = \"r\", users_file = \"users\" }\n";
    std::fs::write(&path, with_app(&backend, routes)).unwrap();
    let (code, stderr) = check_config(&path);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.starts_with(&format!("{}:2:1: user `bob`", users.display())),
        "{stderr}"
    );
    assert!(stderr.contains("MD5"), "{stderr}");
    // Replaced by a bcrypt entry, the same file is accepted.
    std::fs::remove_file(&users).unwrap();
    htpasswd(&users, "alice", "a", &["-B"]);
    htpasswd(&users, "bob", "b", &["-B"]);
    let (code, stderr) = check_config(&path);
    assert_eq!(code, Some(0), "{stderr}");
}
