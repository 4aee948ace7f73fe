//! Every page of the app in real headless Chromium, through both front doors: the Rust balancer
//! and NGINX (configured from the project's `nginx.conf`), each in front of 3 replicas and one Redis.
//!
//! What a visitor does: open `/`, click through to the live count, reload and watch it rise by
//! exactly one (checked against Redis too), see the replicas take turns, open About, hit a
//! made-up path. Every page must log no console error and load nothing from outside the stack.

use std::collections::BTreeSet;

use e2e::browser::{stack, step, Browser, GITHUB_URL, LINKEDIN_URL};
use e2e::nginx::Nginx;
use e2e::{bounded, Stack};
use fantoccini::Locator;

/// The number in "This page has been visited N times."
async fn visits_shown(browser: &Browser) -> i64 {
    let text = browser.text(".count-line .count").await;
    text.trim()
        .replace(',', "")
        .parse()
        .unwrap_or_else(|e| panic!("count page shows {text:?}, not a number: {e}"))
}

async fn served_by(browser: &Browser) -> String {
    browser.text(".served .replica").await.trim().to_string()
}

/// Walks home → count → reloads → about → 404 at `origin`; returns the replicas seen on /count.
pub(super) async fn walk_pages(
    browser: &Browser,
    stack: &Stack,
    origin: &str,
    shots: &str,
) -> Vec<String> {
    let first = home_then_the_live_count(browser, stack, origin, shots).await;
    let seen = each_reload_counts_one_visit(browser, stack, first).await;
    about_shows_the_configured_links(browser, origin, shots).await;
    a_made_up_path_gets_the_styled_404(browser, origin, shots).await;
    seen
}

/// Home, and the button to the live count: the count page shows what Redis holds. Returns that count.
async fn home_then_the_live_count(
    browser: &Browser,
    stack: &Stack,
    origin: &str,
    shots: &str,
) -> i64 {
    browser.goto(&format!("{origin}/")).await;
    let h1 = browser.text("h1").await;
    assert!(h1.starts_with("Welcome to"), "home page heading: {h1:?}");
    browser.assert_no_console_errors("/", &[]).await;
    browser.assert_only_origin("/", origin).await;
    browser.screenshot(&format!("{shots}home")).await;

    let button = step(
        "finding the live-count button",
        browser
            .client
            .find(Locator::Css(".actions a.pill[href='/count']")),
    )
    .await;
    let label = step("reading the button", button.text()).await;
    assert!(
        label.to_lowercase().contains("count"),
        "button label {label:?}"
    );
    step("clicking the live-count button", button.click()).await;
    browser.wait_for_path("/count").await;
    let first = visits_shown(browser).await;
    assert!(first >= 1, "first visit shows {first}");
    assert_eq!(
        stack.redis.get_i64("visits").await,
        first,
        "the page shows what Redis holds"
    );
    browser.assert_no_console_errors("/count", &[]).await;
    browser.assert_only_origin("/count", origin).await;
    browser.screenshot(&format!("{shots}count")).await;
    first
}

/// Each reload is one visit: the number rises by exactly one, whoever serves it (a replica of `stack`).
/// Returns the replicas that served, in order.
async fn each_reload_counts_one_visit(browser: &Browser, stack: &Stack, first: i64) -> Vec<String> {
    let replicas: BTreeSet<String> = stack.apps.iter().map(|a| a.name().to_string()).collect();
    let mut seen = vec![served_by(browser).await];
    let mut shown = first;
    for _ in 0..4 {
        step("reloading /count", browser.client.refresh()).await;
        browser.wait_for_path("/count").await;
        let now = visits_shown(browser).await;
        assert_eq!(now, shown + 1, "a reload must count exactly one visit");
        shown = now;
        seen.push(served_by(browser).await);
    }
    assert_eq!(stack.redis.get_i64("visits").await, shown);
    for name in &seen {
        assert!(
            replicas.contains(name),
            "served by unknown replica {name:?}"
        );
    }
    browser
        .assert_no_console_errors("/count after reloads", &[])
        .await;
    seen
}

/// About: the stack, and the GitHub and LinkedIn links the replicas were configured with, icons shown.
async fn about_shows_the_configured_links(browser: &Browser, origin: &str, shots: &str) {
    step(
        "clicking About in the navigation",
        step(
            "finding the About link",
            browser.client.find(Locator::Css("nav a[href='/about']")),
        )
        .await
        .click(),
    )
    .await;
    browser.wait_for_path("/about").await;
    for (label, url) in [("GitHub", GITHUB_URL), ("LinkedIn", LINKEDIN_URL)] {
        let link = step(
            &format!("finding the {label} link"),
            browser
                .client
                .find(Locator::Css(&format!("a.icon-link[aria-label='{label}']"))),
        )
        .await;
        let href = step("reading href", link.attr("href")).await;
        assert_eq!(href.as_deref(), Some(url), "{label} link");
        let svg = step(
            &format!("finding the {label} icon"),
            link.find(Locator::Css("svg")),
        )
        .await;
        assert!(
            step("icon displayed", svg.is_displayed()).await,
            "{label} icon hidden"
        );
    }
    browser.assert_no_console_errors("/about", &[]).await;
    browser.assert_only_origin("/about", origin).await;
    // The icons sit below the fold at 1280x900: a taller window shows the whole page.
    step("resizing", browser.client.set_window_size(1280, 1200)).await;
    browser.screenshot(&format!("{shots}about")).await;
    step("resizing back", browser.client.set_window_size(1280, 900)).await;
}

/// A made-up path: the styled 404 page (the app's stylesheet applied), not a bare error; its 404 is the
/// only console error.
async fn a_made_up_path_gets_the_styled_404(browser: &Browser, origin: &str, shots: &str) {
    let missing = "/no-such-page-4af1";
    browser.goto(&format!("{origin}{missing}")).await;
    let eyebrow = browser.text(".hero .eyebrow").await;
    assert!(eyebrow.contains("404"), "404 page eyebrow: {eyebrow:?}");
    let background = browser
        .eval("return getComputedStyle(document.body).backgroundImage")
        .await;
    assert!(
        background
            .as_str()
            .unwrap_or_default()
            .contains("linear-gradient"),
        "404 page is not styled: body background {background}"
    );
    let home = step(
        "finding the 404 page's Home button",
        browser
            .client
            .find(Locator::Css(".actions a.pill[href='/']")),
    )
    .await;
    assert!(step("Home button displayed", home.is_displayed()).await);
    // The only console error is the 404 status of the page itself, and it must be there: that
    // proves the console capture the other pages rely on actually works.
    let severe: Vec<String> = browser
        .console()
        .await
        .into_iter()
        .filter(|e| e["level"] == "SEVERE")
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        severe
            .iter()
            .any(|m| m.contains(missing) && m.contains("404")),
        "the browser log should report the 404 of {missing}: {severe:?}"
    );
    assert!(
        severe.iter().all(|m| m.contains(missing)),
        "{missing}: unexpected console errors: {severe:?}"
    );
    browser.assert_only_origin(missing, origin).await;
    browser.screenshot(&format!("{shots}404")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_through_the_balancer() {
    bounded("browser walk through the balancer", async {
        let stack = stack().await;
        let browser = Browser::start().await;
        let origin = stack.balancer_origin();
        let seen = walk_pages(&browser, &stack, &origin, "").await;
        // Strict round-robin moves /count to another replica on every reload; allow one repeat in
        // case Chromium fetches a subresource (favicon, revalidated stylesheet) in between.
        let changes = seen.windows(2).filter(|w| w[0] != w[1]).count();
        let distinct: BTreeSet<&String> = seen.iter().collect();
        assert!(
            changes >= 2 && distinct.len() >= 2,
            "served-by should change across reloads through the balancer: {seen:?}"
        );
        browser.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_through_nginx() {
    bounded("browser walk through NGINX", async {
        let stack = stack().await;
        let nginx = Nginx::start(&stack.replica_addrs()).await;
        let browser = Browser::start().await;
        let seen = walk_pages(&browser, &stack, &nginx.origin(), "nginx-").await;
        let distinct: BTreeSet<&String> = seen.iter().collect();
        // NGINX round-robins per worker process, so the order is not strict; the replicas still
        // all share one counter, which walk_pages checked on every reload.
        assert!(!distinct.is_empty());
        browser.close().await;
    })
    .await;
}
