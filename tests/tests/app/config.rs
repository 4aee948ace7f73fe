//! `app` configuration and the `app healthcheck` subcommand: bad values exit 2 with one
//! line naming the variable; flags mirror the environment; the health probe's exit codes.

use std::process::{Output, Stdio};
use std::time::Duration;

use e2e::services::SCRUBBED_ENV;
use e2e::{bin_path, free_port, App, RedisServer};

const T: Duration = Duration::from_secs(60);

/// Runs `app` with exactly these variables and arguments, bounded in time (killed on timeout).
async fn run_app(env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(bin_path("app"));
    for var in SCRUBBED_ENV {
        cmd.env_remove(var);
    }
    // A listener that could never start, in case validation wrongly lets the server run.
    cmd.env("APP_LISTEN", format!("127.0.0.1:{}", free_port()))
        .envs(env.iter().copied())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().expect("spawn app");
    match tokio::time::timeout(Duration::from_secs(10), child.wait_with_output()).await {
        Ok(output) => output.expect("wait for app"),
        Err(_) => panic!("app {args:?} with {env:?} did not exit within 10 s"),
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn bad_values_exit_2_with_one_line_naming_the_variable() {
    tokio::time::timeout(T, async {
        let cases: &[(&str, &str, &str)] = &[
            ("REDIS_PORT", "abc", "REDIS_PORT"),
            ("REDIS_PORT", "0", "REDIS_PORT"),
            ("REDIS_PORT", "70000", "REDIS_PORT"),
            ("REDIS_HOST", "", "REDIS_HOST"),
            ("REDIS_URL", "http://not-redis", "REDIS_URL"),
            ("REDIS_URL", "redis://:pw@host:99999/0", "REDIS_URL"),
            ("APP_LISTEN", "nowhere", "APP_LISTEN"),
            ("APP_LISTEN", "127.0.0.1:99999", "APP_LISTEN"),
            ("GITHUB_URL", "javascript:alert(1)", "GITHUB_URL"),
            ("LINKEDIN_URL", "not a url", "LINKEDIN_URL"),
            ("DRAIN_TIMEOUT", "forever", "DRAIN_TIMEOUT"),
            ("REDIS_TIMEOUT", "0s", "REDIS_TIMEOUT"),
            ("REPLICA_NAME", "bad\nname", "REPLICA_NAME"),
            ("TEMPLATES_DIR", "/definitely/not/here", "TEMPLATES_DIR"),
        ];
        for (var, value, named) in cases {
            let output = run_app(&[(var, value)], &[]).await;
            let err = stderr(&output);
            assert_eq!(output.status.code(), Some(2), "{var}={value:?}: {err}");
            assert_eq!(
                err.trim_end().lines().count(),
                1,
                "{var}={value:?}: not one line: {err}"
            );
            assert!(
                err.contains(named),
                "{var}={value:?}: does not name {named}: {err}"
            );
            assert!(!err.contains("panicked"), "{err}");
            assert!(!err.contains(":pw@"), "the password leaked: {err}");
        }
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn bad_flags_exit_2_with_one_line_too() {
    tokio::time::timeout(T, async {
        let output = run_app(&[], &["--redis-port", "nope"]).await;
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(
            err.contains("REDIS_PORT") && err.contains("--redis-port"),
            "{err}"
        );

        let output = run_app(&[], &["--no-such-flag"]).await;
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains("--no-such-flag"), "{err}");

        let help = run_app(&[], &["--help"]).await;
        assert_eq!(help.status.code(), Some(0));
        let text = String::from_utf8_lossy(&help.stdout);
        for var in [
            "REDIS_HOST",
            "REDIS_PORT",
            "REDIS_URL",
            "APP_LISTEN",
            "APP_NAME",
            "REPLICA_NAME",
            "COUNTER_KEY",
            "GITHUB_URL",
            "LINKEDIN_URL",
            "DRAIN_TIMEOUT",
            "TEMPLATES_DIR",
        ] {
            assert!(text.contains(var), "--help does not mention {var}");
        }
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn flags_mirror_the_environment() {
    tokio::time::timeout(T, async {
        let redis = RedisServer::start().await;
        // The harness sets the variables; flags given as well take precedence.
        let app = App::builder(&redis)
            .env("APP_NAME", "From Env")
            .arg("--app-name")
            .arg("From Flag")
            .arg("--counter-key")
            .arg("flag-key")
            .start()
            .await;
        let home = e2e::http::get(&app.url("/")).await.expect("GET /");
        assert!(
            home.text().contains("Welcome to From Flag"),
            "{}",
            home.text()
        );
        let count = e2e::http::get(&app.url("/count"))
            .await
            .expect("GET /count");
        assert_eq!(count.status, 200);
        assert_eq!(redis.get_i64("flag-key").await, 1);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn healthcheck_exit_codes_follow_health() {
    tokio::time::timeout(T, async {
        let mut redis = RedisServer::start().await;
        let app = App::start(&redis).await;
        let listen = app.addr().to_string();
        let wildcard = format!("0.0.0.0:{}", app.addr().port());

        // Healthy: exit 0, for the exact address and for a wildcard listen address.
        for addr in [listen.as_str(), wildcard.as_str()] {
            let output = run_app(&[("APP_LISTEN", addr)], &["healthcheck"]).await;
            assert_eq!(
                output.status.code(),
                Some(0),
                "APP_LISTEN={addr}: {}",
                stderr(&output)
            );
        }
        let output = run_app(&[], &["healthcheck", "--app-listen", &listen]).await;
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));

        // Redis down: /health answers 503, so the probe fails.
        redis.stop().await;
        let output = run_app(&[("APP_LISTEN", &listen)], &["healthcheck"]).await;
        assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
        assert!(stderr(&output).contains("503"), "{}", stderr(&output));

        // Nothing listening: fails at once.
        let nobody = format!("127.0.0.1:{}", free_port());
        let output = run_app(&[("APP_LISTEN", &nobody)], &["healthcheck"]).await;
        assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));

        // A bad APP_LISTEN is a configuration error.
        let output = run_app(&[("APP_LISTEN", "nope")], &["healthcheck"]).await;
        assert_eq!(output.status.code(), Some(2));
        assert!(stderr(&output).contains("APP_LISTEN"));

        // Something that accepts but never answers: the probe gives up within its timeout.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let silent_addr = silent.local_addr().expect("addr").to_string();
        let started = std::time::Instant::now();
        let output = run_app(
            &[("APP_LISTEN", &silent_addr)],
            &["healthcheck", "--timeout", "500ms"],
        )
        .await;
        assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(silent);
    })
    .await
    .expect("test timed out");
}
