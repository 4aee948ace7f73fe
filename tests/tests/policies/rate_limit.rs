//! Rate limits per route with a real balancer and backend: `rate_limit = "5/s"` with
//! `rate_burst = 5` answers 429 (with `Retry-After`, counted in the metrics) after the burst
//! while another route stays unlimited; clients named by a trusted proxy's `X-Forwarded-For` get
//! a budget each, IPv6 addresses of one /64 share one; the budget survives a reload that keeps
//! the route's settings; `rate_limit = "abc"` exits 2 with its position.

use e2e::routes::{metric, post_reload, run_balancer, ADMIN_TOKEN};
use futures_util::future::join_all;

use super::{balancer, check_config, config_file, get, with_app, RecordingBackend, T};

#[tokio::test]
async fn a_limited_route_answers_429_after_its_burst_and_another_is_unlimited() {
    let backend = RecordingBackend::start().await;
    let routes = "[[route]]\npath = \"/\"\nupstream = \"app\"\n\n\
        [[route]]\nname = \"limited\"\npath = \"/limited\"\nupstream = \"app\"\n\
        rate_limit = \"5/s\"\nrate_burst = 5\n";
    let (_dir, path) = config_file(&with_app(&backend, routes));
    let b = balancer(&path, &[], "/").await;

    // 20 at once: the burst of 5 passes (and at most the few tokens refilled meanwhile).
    let url = b.url("/limited/x");
    let answers = join_all((0..20).map(|_| get(&url, &[]))).await;
    let ok = answers.iter().filter(|r| r.status == 200).count();
    let refused: Vec<_> = answers.iter().filter(|r| r.status == 429).collect();
    assert_eq!(ok + refused.len(), 20, "only 200 and 429 expected");
    assert!((5..=12).contains(&ok), "{ok} passed: the burst is 5");
    let first = refused.first().expect("no 429 after the burst");
    assert!(
        first.text().starts_with("429 Too Many Requests"),
        "{}",
        first.text()
    );
    let wait: u64 = first.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(wait, 1, "Retry-After of a 5/s limit");
    let counted = metric(&b, "balancer_route_rate_limited_total{route=\"limited\"}").await;
    assert_eq!(counted, refused.len() as f64);
    assert_eq!(metric(&b, "balancer_rate_limited_total").await, counted);

    // The other route has no limit: 40 at once all pass.
    let url = b.url("/other");
    let answers = join_all((0..40).map(|_| get(&url, &[]))).await;
    assert!(
        answers.iter().all(|r| r.status == 200),
        "the unlimited route refused"
    );

    // The bucket refills: within a few seconds the limited route answers again.
    let url = b.url("/limited/x");
    let back = e2e::wait_until_async(T, || async { get(&url, &[]).await.status == 200 }).await;
    assert!(back, "the limited route never let the client in again");
}

#[tokio::test]
async fn clients_behind_a_trusted_proxy_have_a_budget_each_and_a_64_shares_one() {
    let backend = RecordingBackend::start().await;
    let routes = "[[route]]\npath = \"/\"\nupstream = \"app\"\n\n\
        [[route]]\nname = \"api\"\npath = \"/api\"\nupstream = \"app\"\n\
        rate_limit = \"1/h\"\nrate_burst = 2\n";
    let (_dir, path) = config_file(&with_app(&backend, routes));
    let args = [
        "--trusted-proxies",
        "127.0.0.1",
        "--admin-token",
        ADMIN_TOKEN,
    ];
    let b = balancer(&path, &args, "/").await;
    let url = b.url("/api");
    let status = |ip: &'static str| {
        let url = url.clone();
        async move { get(&url, &[("x-forwarded-for", ip)]).await.status }
    };

    assert_eq!(status("198.51.100.1").await, 200);
    assert_eq!(status("198.51.100.1").await, 200);
    assert_eq!(status("198.51.100.1").await, 429, "over the burst of 2");
    // Another client, named by the trusted proxy, has its own budget.
    assert_eq!(status("198.51.100.2").await, 200);
    assert_eq!(status("198.51.100.2").await, 200);
    assert_eq!(status("198.51.100.2").await, 429);

    // Two addresses of one IPv6 /64 are one client; the next /64 is another.
    assert_eq!(status("2001:db8:5:6::1").await, 200);
    assert_eq!(status("2001:db8:5:6:ffff::2").await, 200);
    assert_eq!(
        status("2001:db8:5:6:abcd::3").await,
        429,
        "the /64 shares one budget"
    );
    assert_eq!(status("2001:db8:5:7::1").await, 200);

    // A reload of a changed file that keeps the route's settings keeps its table: still
    // refused. One that changes them starts a fresh table.
    let (file, balancer) = (&path, &b);
    let reload = move |text: String| {
        std::fs::write(file, text).unwrap();
        async move {
            let r = post_reload(balancer, Some(ADMIN_TOKEN)).await;
            assert_eq!(r.json()["result"], "ok", "{}", r.text());
        }
    };
    reload(with_app(&backend, &format!("# reloaded\n{routes}"))).await;
    assert_eq!(
        status("198.51.100.1").await,
        429,
        "the reload reset the budget"
    );
    reload(with_app(
        &backend,
        &routes.replace("rate_burst = 2", "rate_burst = 3"),
    ))
    .await;
    assert_eq!(
        status("198.51.100.1").await,
        200,
        "a new burst keeps the old table"
    );
    // The route without a limit lets them all through.
    let open = get(&b.url("/x"), &[("x-forwarded-for", "198.51.100.1")]).await;
    assert_eq!(open.status, 200);
}

#[tokio::test]
async fn a_bad_rate_limit_exits_2_with_its_position() {
    let backend = RecordingBackend::start().await;
    let routes = "[[route]]\npath = \"/\"\nupstream = \"app\"\nrate_limit = \"abc\"\n";
    let (_dir, path) = config_file(&with_app(&backend, routes));
    // `rate_limit` is on line 8, its value at column 14.
    let expected = format!("{}:8:14: rate_limit: `abc` is not a rate", path.display());
    let (code, stderr) = check_config(&path);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.starts_with(&expected), "{stderr}");
    let out = run_balancer(&["--config", path.to_str().unwrap()], &[]).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&expected), "{stderr}");
}
