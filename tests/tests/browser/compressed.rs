//! The app's pages in real Chromium through a balancer that compresses (issue 26). Chromium sends
//! `Accept-Encoding: gzip, deflate, br, zstd`; the page itself says what arrived: each entry of
//! the Navigation and Resource Timing APIs carries the `contentEncoding` it was delivered with and
//! its `encodedBodySize` (bytes on the wire) against its `decodedBodySize`.
//!
//! The whole walk of [`super::pages`] (home, the live count against Redis, reloads, About, the
//! 404) through `--compress zstd,br,gzip`, every page arriving as zstd (the server's first choice,
//! which Chromium accepts); then a balancer offering only `br`, then only `gzip`, in front of the
//! same replicas: each page and the stylesheet arrive in that coding and render the same.

use e2e::browser::{stack_builder, Browser};
use e2e::{bounded, Balancer};
use serde_json::Value;

use super::pages::walk_pages;

/// What the page's own timing entry says about how it arrived.
#[derive(Debug)]
struct Arrived {
    coding: String,
    encoded: u64,
    decoded: u64,
}

/// The timing entry of the page (`navigation`) or of the resource at `path` (any query).
async fn arrived(browser: &Browser, path: Option<&str>) -> Arrived {
    let script = match path {
        None => "const e = performance.getEntriesByType('navigation')[0];".to_owned(),
        Some(p) => format!(
            "const e = performance.getEntriesByType('resource').find(r => new URL(r.name).pathname === '{p}');"
        ),
    } + "return e ? [e.contentEncoding, e.encodedBodySize, e.decodedBodySize] : null;";
    let got = browser.eval(&script).await;
    let what = path.unwrap_or("the page");
    let Value::Array(v) = &got else {
        panic!("{what}: no timing entry ({got})");
    };
    let coding = v[0].as_str().unwrap_or_else(|| {
        panic!("{what}: this Chromium gives no PerformanceResourceTiming.contentEncoding ({got})")
    });
    Arrived {
        coding: coding.to_owned(),
        encoded: v[1].as_u64().unwrap_or(0),
        decoded: v[2].as_u64().unwrap_or(0),
    }
}

/// The page open now (and, when given, its stylesheet) arrived in `coding`, fewer bytes on the
/// wire than decoded.
async fn assert_arrived(browser: &Browser, page: &str, coding: &str, stylesheet: bool) {
    let mut entries = vec![(page, arrived(browser, None).await)];
    if stylesheet {
        let css = "/static/style.css";
        entries.push((css, arrived(browser, Some(css)).await));
    }
    for (what, got) in entries {
        assert_eq!(got.coding, coding, "{what}: {got:?}");
        assert!(
            got.decoded > 1024 && got.encoded > 0 && got.encoded < got.decoded,
            "{what} arrived compressed: {got:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_arrives_compressed_in_chromium_and_renders() {
    bounded("browser walk through a compressing balancer", async {
        let stack = stack_builder()
            .balancer_args(&["--compress", "zstd,br,gzip"])
            .start()
            .await;
        let browser = Browser::start().await;
        let origin = stack.balancer_origin();
        // A fresh origin: the first load of `/` and its stylesheet come over the wire.
        browser.goto(&format!("{origin}/")).await;
        assert_arrived(&browser, "/", "zstd", true).await;
        walk_pages(&browser, &stack, &origin, "compressed-").await;
        browser.goto(&format!("{origin}/about")).await;
        assert_arrived(&browser, "/about", "zstd", false).await;

        for coding in ["br", "gzip"] {
            let b = Balancer::builder()
                .backends(&stack.replica_addrs())
                .args(&["--compress", coding])
                .start()
                .await;
            browser.goto(&b.url("/")).await;
            let h1 = browser.text("h1").await;
            assert!(h1.starts_with("Welcome to"), "{coding}: heading {h1:?}");
            assert_arrived(&browser, "/", coding, true).await;
            browser.goto(&b.url("/count")).await;
            let shown = browser.text(".count-line .count").await;
            let shown: i64 = shown.trim().replace(',', "").parse().unwrap_or(-1);
            assert_eq!(shown, stack.redis.get_i64("visits").await, "{coding}");
            assert_arrived(&browser, "/count", coding, false).await;
            browser.assert_no_console_errors(coding, &[]).await;
        }
        browser.close().await;
    })
    .await;
}
