//! The balancer's dashboard (admin listener `/`) in real headless Chromium: it lists the backends
//! with their health, follows traffic and a replica's death live (no reload), stays readable with
//! 50 backends, logs no console error and loads nothing but its own admin endpoints.

use std::time::Duration;

use e2e::browser::{stack, step, Browser};
use e2e::{bounded, free_port, wait_until_async, Balancer};
use fantoccini::Locator;
use serde_json::Value;

/// `[(address, health)]` as the page currently shows them.
async fn rows(browser: &Browser) -> Vec<(String, String)> {
    let v = browser
        .eval(
            "return [...document.querySelectorAll('#backends tbody tr[data-backend]')]
                .map(r => [r.dataset.backend, r.dataset.health]);",
        )
        .await;
    v.as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    (
                        r[0].as_str().unwrap_or_default().to_string(),
                        r[1].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn wait_for_rows(
    browser: &Browser,
    within: Duration,
    want: impl Fn(&[(String, String)]) -> bool,
) -> bool {
    wait_until_async(within, || async { want(&rows(browser).await) }).await
}

async fn cell(browser: &Browser, address: &str, column: usize) -> String {
    let css = format!("#backends tr[data-backend='{address}'] td:nth-child({column})");
    browser.text(&css).await
}

/// `GET /` on the admin listener: 200, HTML, `Cache-Control: no-cache`.
async fn assert_admin_root_is_the_uncached_page(origin: &str) {
    let resp = e2e::http::get(&format!("{origin}/"))
        .await
        .expect("GET admin /");
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(resp.header("cache-control"), Some("no-cache"));
}

/// 30 requests through the balancer show up in the page's totals, per-backend requests, shares and
/// latencies, and in the upstreams table, without a reload (the page is marked to tell a reload).
async fn traffic_shows_up_without_a_reload(
    browser: &Browser,
    balancer: &Balancer,
    addrs: &[String],
) {
    browser
        .eval("window.__sameDocument = true; return null;")
        .await;
    let client = e2e::http::Client::new();
    for _ in 0..30 {
        let r = client
            .get(&balancer.url("/count"))
            .await
            .expect("GET /count");
        assert_eq!(r.status, 200);
    }
    let counted = wait_until_async(Duration::from_secs(10), || async {
        browser
            .text("#t-requests")
            .await
            .replace(',', "")
            .parse::<u64>()
            .unwrap_or(0)
            >= 30
    })
    .await;
    assert!(
        counted,
        "requests total did not reach 30: {}",
        browser.text("#t-requests").await
    );
    for a in addrs {
        assert_eq!(cell(browser, a, 4).await, "10", "requests of {a}");
        assert!(cell(browser, a, 6).await.contains("33.3%"), "share of {a}");
        for col in [9, 10] {
            let lat = cell(browser, a, col).await;
            assert!(
                lat.ends_with(" ms") || lat.ends_with(" s"),
                "latency of {a}: {lat:?}"
            );
        }
    }
    let upstreams = browser.text("#upstreams tbody").await;
    for a in addrs {
        assert!(
            upstreams.contains(a.as_str()),
            "upstream {a} missing: {upstreams}"
        );
    }
    assert!(
        !upstreams.contains("never"),
        "every upstream resolved: {upstreams}"
    );
    assert!(browser.text("#live-text").await.starts_with("Live"));
    browser.screenshot("dashboard").await;
}

/// The page turns `victim`'s row unhealthy by itself within 5 s, with a reason, the others still healthy,
/// in the same document.
async fn a_dead_replica_is_shown_unhealthy_without_a_reload(browser: &Browser, victim: &str) {
    let marked = wait_for_rows(browser, Duration::from_secs(5), |rows| {
        rows.iter().any(|(r, h)| r == victim && h == "unhealthy")
            && rows.iter().filter(|(_, h)| h == "healthy").count() == 2
    })
    .await;
    assert!(
        marked,
        "{victim} not shown unhealthy: {:?}",
        rows(browser).await
    );
    assert_eq!(
        browser.eval("return window.__sameDocument === true").await,
        Value::Bool(true),
        "the page must update without a reload"
    );
    let reason = browser
        .text(&format!("#backends tr[data-backend='{victim}'] .reason"))
        .await;
    assert!(!reason.is_empty(), "an unhealthy backend says why");
    assert_eq!(browser.text("#t-healthy").await, "2 / 3");
    browser.screenshot("dashboard-unhealthy").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_backends_live_and_a_dead_replica_without_reload() {
    bounded("dashboard walk", async {
        let mut stack = stack().await;
        let browser = Browser::start().await;
        let origin = stack.admin_origin();
        assert_admin_root_is_the_uncached_page(&origin).await;

        browser.goto(&format!("{origin}/")).await;
        let addrs: Vec<String> = stack.apps.iter().map(|a| a.addr().to_string()).collect();
        let all_healthy = wait_for_rows(&browser, Duration::from_secs(10), |rows| {
            rows.len() == 3
                && addrs
                    .iter()
                    .all(|a| rows.iter().any(|(r, h)| r == a && h == "healthy"))
        })
        .await;
        assert!(
            all_healthy,
            "dashboard should list 3 healthy backends: {:?}",
            rows(&browser).await
        );
        assert_eq!(browser.text("#t-healthy").await, "3 / 3");

        // Traffic through the balancer shows up in totals, shares and latency without a reload.
        traffic_shows_up_without_a_reload(&browser, &stack.balancer, &addrs).await;

        // Kill one replica: the page turns its row unhealthy by itself, within a few seconds.
        let victim = addrs[1].clone();
        stack.apps[1].kill();
        a_dead_replica_is_shown_unhealthy_without_a_reload(&browser, &victim).await;

        browser.assert_no_console_errors("dashboard", &[]).await;
        browser.assert_only_origin("dashboard", &origin).await;
        browser.close().await;
    })
    .await;
}

/// `count` loopback addresses on distinct free ports (free_port() may hand out the same unbound port
/// twice).
fn distinct_free_addresses(count: usize) -> Vec<String> {
    let mut ports = std::collections::BTreeSet::new();
    while ports.len() < count {
        ports.insert(free_port());
    }
    ports.iter().map(|p| format!("127.0.0.1:{p}")).collect()
}

/// Readable: no sideways scrolling of the page itself, and the table scrolls inside its card with the
/// header row kept in view; on a phone-sized window too.
async fn assert_readable_on_a_desktop_and_a_phone(browser: &Browser) {
    let fits = browser
        .eval("return document.documentElement.scrollWidth <= window.innerWidth")
        .await;
    assert_eq!(fits, Value::Bool(true), "the page is wider than the window");
    let header_sticky = browser
        .eval("return getComputedStyle(document.querySelector('#backends th')).position")
        .await;
    assert_eq!(header_sticky, Value::from("sticky"));
    let head = step(
        "finding the backends header",
        browser.client.find(Locator::Css("#backends thead")),
    )
    .await;
    assert!(step("header displayed", head.is_displayed()).await);
    browser.screenshot("dashboard-50").await;

    // And on a phone-sized window.
    step("resizing", browser.client.set_window_size(390, 844)).await;
    let fits = browser
        .eval("return document.documentElement.scrollWidth <= window.innerWidth")
        .await;
    assert_eq!(
        fits,
        Value::Bool(true),
        "the page overflows a phone-sized window"
    );
    browser.screenshot("dashboard-phone").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_stays_readable_with_fifty_backends() {
    bounded("dashboard with 50 backends", async {
        // Nothing listens on these ports: 50 backends, all failing their first health check (pending).
        let upstreams = distinct_free_addresses(50);
        let mut balancer = Balancer::builder()
            .upstreams(&upstreams.join(","))
            .arg("--health-interval")
            .arg("200ms")
            .start()
            .await;
        let browser = Browser::start().await;
        let origin = format!("http://{}", balancer.admin_addr());
        browser.goto(&format!("{origin}/")).await;
        let listed = wait_for_rows(&browser, Duration::from_secs(10), |rows| {
            rows.len() == 50 && rows.iter().all(|(_, h)| h == "pending")
        })
        .await;
        assert!(
            listed,
            "50 pending rows expected: {} rows",
            rows(&browser).await.len()
        );
        let note = browser.text("#backends-note").await;
        assert!(
            note.contains("50 pending"),
            "the count of pending backends: {note}"
        );
        assert_readable_on_a_desktop_and_a_phone(&browser).await;

        browser
            .assert_no_console_errors("dashboard (50)", &[])
            .await;
        browser.assert_only_origin("dashboard (50)", &origin).await;

        // The balancer goes away: the page says so instead of showing stale numbers as live.
        balancer.kill();
        let down = wait_until_async(Duration::from_secs(10), || async {
            browser
                .eval(
                    "return document.getElementById('live').dataset.state === 'down'
                        && document.getElementById('banner').offsetHeight > 0",
                )
                .await
                == Value::Bool(true)
        })
        .await;
        assert!(
            down,
            "the dashboard should show that the admin listener is unreachable"
        );
        assert_eq!(browser.text("#live-text").await, "Disconnected");
        assert_eq!(
            rows(&browser).await.len(),
            50,
            "the last data stays on screen"
        );
        browser.close().await;
    })
    .await;
}

/// The number of points the page has drawn in a chart, and its `all` line's points attribute.
async fn chart(browser: &Browser, id: &str) -> (u64, String) {
    let v = browser
        .eval(&format!(
            "const c = document.getElementById('{id}');
             const l = c.querySelector('polyline');
             return [Number(c.dataset.points || 0), l ? l.getAttribute('points') : ''];"
        ))
        .await;
    (
        v[0].as_u64().unwrap_or(0),
        v[1].as_str().unwrap_or_default().to_string(),
    )
}

/// Under load the rate chart gets points and its line moves from one poll to the next, the current
/// rate shows, the other charts have points, and the rate chart has one line per backend plus overall.
async fn charts_fill_and_move_under_load(browser: &Browser) {
    let drawn = wait_until_async(Duration::from_secs(15), || async {
        chart(browser, "c-rate").await.0 >= 12
    })
    .await;
    assert!(
        drawn,
        "the rate chart has too few points: {:?}",
        chart(browser, "c-rate").await
    );
    let before = chart(browser, "c-rate").await.1;
    let moved = wait_until_async(Duration::from_secs(5), || async {
        chart(browser, "c-rate").await.1 != before
    })
    .await;
    assert!(moved, "the rate chart did not move under load");
    let rate_now = browser.text("#c-rate h3 span").await;
    assert!(
        rate_now != "\u{2013}" && rate_now != "0.0",
        "current rate {rate_now:?}"
    );
    for id in ["c-p99", "c-errors", "c-retries", "c-limited"] {
        assert!(chart(browser, id).await.0 > 0, "{id} has no points");
    }
    let per_backend_lines = browser
        .eval("return document.querySelectorAll('#c-rate polyline').length")
        .await;
    assert_eq!(
        per_backend_lines,
        Value::from(4),
        "overall + one line per backend"
    );
    browser.screenshot("dashboard-charts").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_charts_move_under_load_and_events_are_listed() {
    bounded("dashboard charts", async {
        let mut stack = e2e::Stack::builder(3)
            .balancer_args(&[
                "--health-interval",
                "200ms",
                "--balance",
                "least-request",
                "--rate-limit",
                "5000/s",
            ])
            .start()
            .await;
        let browser = Browser::start().await;
        let origin = stack.admin_origin();
        browser.goto(&format!("{origin}/")).await;
        let addrs: Vec<String> = stack.apps.iter().map(|a| a.addr().to_string()).collect();
        assert!(
            wait_for_rows(&browser, Duration::from_secs(10), |rows| rows.len() == 3).await,
            "rows: {:?}",
            rows(&browser).await
        );
        let limits = browser.text("#limits").await;
        assert!(limits.contains("balance least-request"), "{limits}");
        assert!(limits.contains("rate limit 5000/s"), "{limits}");

        let load = e2e::load::Load::start(
            &stack.balancer.url("/count"),
            4,
            Duration::from_millis(5),
            Duration::from_secs(60),
        );
        charts_fill_and_move_under_load(&browser).await;

        // A replica dies: the event list says so, with a time.
        let victim = addrs[2].clone();
        stack.apps[2].kill();
        let listed = wait_until_async(Duration::from_secs(10), || async {
            let events = browser.text("#events").await;
            events.contains(&victim) && events.contains("out")
        })
        .await;
        assert!(
            listed,
            "no event for {victim}: {}",
            browser.text("#events").await
        );
        let report = load.stop().await;
        assert!(report.ok() > 0, "{}", report.outcomes());
        browser
            .assert_no_console_errors("dashboard charts", &[])
            .await;
        browser
            .assert_only_origin("dashboard charts", &origin)
            .await;
        browser.close().await;
    })
    .await;
}
