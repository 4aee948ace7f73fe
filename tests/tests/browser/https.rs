//! Headless Chromium over HTTPS: it trusts the test certificate's key, loads the home page `/` and
//! the count page `/count` through the balancer's TLS listener (the count it shows is Redis's
//! counter), and reports HTTP/2 as the protocol
//! (`performance.getEntries()[0].nextHopProtocol`); the admin dashboard (plain HTTP on the admin
//! listener, which never serves TLS) shows the certificate card. Screenshots of each go to
//! `target/screenshots/https-*.png`.

use e2e::browser::{stack_builder, Browser};
use e2e::tls::{spki_sha256_base64, TestCa};
use e2e::{bounded, wait_until_async, COUNTER_KEY};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_loads_the_pages_over_https_with_h2() {
    bounded("chromium over HTTPS", async {
        let ca = TestCa::new();
        let (cert, key) = ca.write("served", &ca.valid("localhost"));
        let tls = std::net::SocketAddr::from(([127, 0, 0, 1], e2e::free_port()));
        let (c, k, t) = (cert.display().to_string(), key.display().to_string(), tls.to_string());
        let stack = stack_builder()
            .balancer_args(&["--tls-listen", &t, "--tls-cert", &c, "--tls-key", &k])
            .start()
            .await;
        // Trust exactly this certificate's key (what --ignore-certificate-errors-spki-list is for).
        let spki = spki_sha256_base64(&cert).await;
        let browser = Browser::start_with(&[format!("--ignore-certificate-errors-spki-list={spki}")]).await;
        for path in ["/", "/count"] {
            let url = format!("https://127.0.0.1:{}{path}", tls.port());
            browser.goto(&url).await;
            let protocol = browser
                .eval("return performance.getEntries()[0].nextHopProtocol;")
                .await;
            let scheme = browser.eval("return location.protocol;").await;
            eprintln!("chromium over HTTPS: {url}: nextHopProtocol {protocol}, location.protocol {scheme}");
            assert_eq!(protocol, "h2", "{url}");
            assert_eq!(scheme, "https:", "{url}");
            if path == "/count" {
                let shown = visits_shown(&browser).await;
                let counter = stack.redis.get_i64(COUNTER_KEY).await;
                assert_eq!(shown, counter, "{url}: the count page shows {shown}, Redis holds {counter}");
            } else {
                assert!(browser.text("body").await.contains("visit"), "{url}: no home page");
            }
            browser.assert_no_console_errors(&url, &[]).await;
            let name = if path == "/" { "https-index" } else { "https-count" };
            eprintln!("screenshot: {}", browser.screenshot(name).await.display());
        }
        let dashboard = format!("{}/", stack.admin_origin());
        browser.goto(&dashboard).await;
        let shown = wait_until_async(std::time::Duration::from_secs(10), || async {
            browser.text("#tls-subject").await.contains("CN=localhost")
        })
        .await;
        assert!(shown, "the dashboard shows no TLS certificate");
        let days = browser.text("#tls-days").await;
        assert!(days.contains("days left"), "{days}");
        let warning = browser.eval("return document.getElementById('tls-days').dataset.warning;").await;
        assert_eq!(warning, "false", "a 20-day certificate is not a warning");
        browser.eval("document.getElementById('tls').scrollIntoView(); return true;").await;
        eprintln!("dashboard TLS card: {days}; screenshot: {}", browser.screenshot("https-dashboard").await.display());
        browser.close().await;
    })
    .await;
}

/// The number in the count page's "This page has been visited N times.".
async fn visits_shown(browser: &Browser) -> i64 {
    let text = browser.text(".count-line .count").await;
    text.trim()
        .replace(',', "")
        .parse()
        .unwrap_or_else(|e| panic!("the count page shows {text:?}, not a number: {e}"))
}
