//! HTTPS on the balancer's front door, with real clients: curl (HTTP/2 by ALPN and HTTP/1.1),
//! `openssl s_client` (versions, resumption, chain), a Rust TLS client; `X-Forwarded-Proto`,
//! `--redirect-http`, `--hsts`, and every start-up error. Rotation and hostile clients are in
//! `rotation.rs` and `hostile.rs`.

use e2e::backends::{echo_backend, echoed};
use e2e::net::dead_port;
use e2e::tls::{curl, https_get, s_client, text, TestCa, TlsFront};

#[tokio::test]
async fn curl_gets_h2_and_http1_and_the_backend_sees_https() {
    let echo = echo_backend().await;
    let ca = TestCa::new();
    let front = TlsFront::start(&ca, &echo.addr.to_string(), &[]).await;
    for (flag, version) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let out = curl(
            &ca,
            front.tls,
            &[
                flag,
                "-H",
                "X-Forwarded-Proto: http",
                "-w",
                "\n%{http_version} %{http_code}",
                &front.https_url("/hdr"),
            ],
        )
        .await;
        let all = text(&out);
        assert!(out.status.success(), "curl {flag}: {all}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let (body, tail) = stdout.rsplit_once('\n').expect("curl -w line");
        assert_eq!(tail, format!("{version} 200"), "curl {flag}: {all}");
        let json: serde_json::Value = serde_json::from_str(body).expect("echo JSON");
        // The client's claim is replaced by what the listener knows.
        assert_eq!(echoed(&json, "x-forwarded-proto"), ["https"], "{json}");
    }
    // The plain listener still says http.
    let plain = e2e::http::get(&front.balancer.url("/hdr")).await.unwrap();
    assert_eq!(echoed(&plain.json(), "x-forwarded-proto"), ["http"]);
    assert!(
        front
            .metric("balancer_tls_handshakes_total{outcome=\"ok\",version=\"TLSv1.3\",alpn=\"h2\"")
            .await
            >= 1.0
    );
    assert!(
        front
            .metric("balancer_tls_certificate_expiry_seconds")
            .await
            > 86_400.0 * 19.0
    );
}

#[tokio::test]
async fn openssl_sees_tls13_and_12_never_11_or_10_and_resumes() {
    let echo = echo_backend().await;
    let ca = TestCa::new();
    let front = TlsFront::start(&ca, &echo.addr.to_string(), &[]).await;
    let request = b"GET /about HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    for (flag, proto) in [("-tls1_3", "TLSv1.3"), ("-tls1_2", "TLSv1.2")] {
        let out = s_client(&ca, front.tls, &[flag, "-showcerts", "-ign_eof"], request).await;
        let all = text(&out);
        assert!(
            all.contains(&format!("Protocol  : {proto}")) || all.contains(&format!("New, {proto}")),
            "{flag}: {all}"
        );
        assert!(all.contains("Verify return code: 0 (ok)"), "{flag}: {all}");
        assert!(all.contains("HTTP/1.1 200"), "{flag}: no response: {all}");
        // The chain as configured: the leaf, then the CA.
        assert_eq!(
            all.matches("-----BEGIN CERTIFICATE-----").count(),
            2,
            "{all}"
        );
    }
    for flag in ["-tls1_1", "-tls1"] {
        // SECLEVEL=0 so the refusal is the server's, not this OpenSSL's own policy.
        let out = s_client(
            &ca,
            front.tls,
            &[flag, "-cipher", "DEFAULT@SECLEVEL=0"],
            b"",
        )
        .await;
        let all = text(&out);
        assert!(!out.status.success(), "{flag} accepted: {all}");
        // The server answers with an alert (rustls: handshake_failure) and no session.
        assert!(
            all.contains("Cipher is (NONE)") && all.contains("alert"),
            "{flag}: {all}"
        );
    }
    for flag in ["-tls1_3", "-tls1_2"] {
        let session = ca.dir().join(format!("session{flag}"));
        let session = session.display().to_string();
        let first = s_client(
            &ca,
            front.tls,
            &[flag, "-ign_eof", "-sess_out", &session],
            request,
        )
        .await;
        assert!(
            text(&first).contains("New, TLSv1."),
            "{flag}: {}",
            text(&first)
        );
        let second = s_client(
            &ca,
            front.tls,
            &[flag, "-ign_eof", "-sess_in", &session],
            request,
        )
        .await;
        assert!(
            text(&second).contains("Reused, TLSv1."),
            "{flag} not resumed: {}",
            text(&second)
        );
    }
    // s_client offers no ALPN: the resumed handshakes are counted with alpn="none".
    for version in ["TLSv1.3", "TLSv1.2"] {
        let series = format!(
            "balancer_tls_handshakes_total{{outcome=\"ok\",version=\"{version}\",alpn=\"none\",kind=\"resumed\"}}"
        );
        assert!(front.metric(&series).await >= 1.0, "{series}");
    }
}

#[tokio::test]
async fn redirect_http_sends_308_to_the_tls_port_and_hsts_is_on_tls_only() {
    let echo = echo_backend().await;
    let ca = TestCa::new();
    let front = TlsFront::start(
        &ca,
        &echo.addr.to_string(),
        &["--redirect-http", "--hsts", "365d"],
    )
    .await;
    let plain = e2e::http::get(&front.balancer.url("/count?x=1"))
        .await
        .unwrap();
    assert_eq!(plain.status, 308);
    let location = format!("https://127.0.0.1:{}/count?x=1", front.tls.port());
    assert_eq!(plain.header("location"), Some(location.as_str()));
    assert!(plain.header("strict-transport-security").is_none());
    let config = ca.client_config(&[b"h2", b"http/1.1"]);
    let tls = https_get(front.tls, "/hdr", config).await.unwrap();
    assert_eq!(tls.status, 200);
    assert_eq!(tls.headers["strict-transport-security"], "max-age=31536000");
    // curl follows the redirect onto HTTPS.
    let out = curl(
        &ca,
        front.tls,
        &[
            "-L",
            "-o",
            "/dev/null",
            "-w",
            "%{url_effective} %{http_code}",
            &format!("http://localhost:{}/about", front.balancer.addr().port()),
        ],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout,
        format!("{} 200", front.https_url("/about")),
        "{}",
        text(&out)
    );
}

/// A balancer started with `env`; its exit status and stderr.
fn start_failing(env: &[(&str, String)]) -> (Option<i32>, String) {
    e2e::services::balancer_start_failing(&[], env)
}

#[tokio::test]
async fn each_start_up_error_exits_2_with_one_line_naming_the_flag() {
    let ca = TestCa::new();
    let (cert, key) = ca.write("good", &ca.valid("good"));
    let (_, other_key) = ca.write("other", &ca.valid("other"));
    let (expired, expired_key) = ca.write("expired", &ca.issue("expired", -10, -1));
    let garbage = ca.dir().join("garbage.pem");
    std::fs::write(&garbage, "not PEM at all\n").unwrap();
    let p = |path: &std::path::Path| path.display().to_string();
    let listen = format!("127.0.0.1:{}", dead_port());
    let cases: Vec<(String, String, &str, &str)> = vec![
        (
            p(&ca.dir().join("missing.pem")),
            p(&key),
            "--tls-cert",
            "cannot read",
        ),
        (p(ca.dir()), p(&key), "--tls-cert", "cannot read"),
        (p(&garbage), p(&key), "--tls-cert", "PEM"),
        (
            p(&cert),
            p(&ca.dir().join("missing.key")),
            "--tls-key",
            "cannot read",
        ),
        (p(&cert), p(&garbage), "--tls-key", "PEM"),
        (p(&cert), p(&other_key), "--tls-key", "does not match"),
        (p(&expired), p(&expired_key), "--tls-cert", "expired"),
    ];
    for (cert, key, flag, why) in cases {
        let (code, stderr) = start_failing(&[
            ("BALANCER_TLS_LISTEN", listen.clone()),
            ("BALANCER_TLS_CERT", cert.clone()),
            ("BALANCER_TLS_KEY", key.clone()),
        ]);
        assert_eq!(code, Some(2), "{cert} {key}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(
            stderr.contains(flag) && stderr.contains(why),
            "{flag}/{why}: {stderr}"
        );
    }
    // Flags that need each other.
    for (env, flag) in [
        (
            vec![
                ("BALANCER_TLS_LISTEN", listen.clone()),
                ("BALANCER_TLS_CERT", p(&cert)),
            ],
            "--tls-key",
        ),
        (
            vec![("BALANCER_REDIRECT_HTTP", "true".to_string())],
            "--tls-listen",
        ),
        (vec![("BALANCER_HSTS", "1d".to_string())], "--tls-listen"),
    ] {
        let (code, stderr) = start_failing(&env);
        assert_eq!(code, Some(2), "{env:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(flag), "{flag} not named: {stderr}");
    }
}
