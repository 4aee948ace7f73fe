//! A real headless Chromium driven over WebDriver (chromedriver + fantoccini), for the browser tests,
//! with the checks every page must pass (no console errors, nothing loaded from outside the stack).
//!
//! Chromium is a grandchild (chromedriver starts it), so killing chromedriver alone would orphan
//! it: [`Browser`]'s drop also kills every process whose command line names its own, freshly made
//! `--user-data-dir`, which identifies exactly the browser this test started and nothing else.

use shared::sync::lock;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use http::Method;
use serde_json::{json, Value};

use crate::{free_port, wait_until_async, Process};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
pub const GITHUB_URL: &str = "https://github.com/example-owner";
pub const LINKEDIN_URL: &str = "https://www.linkedin.com/in/example-owner";

/// Bound on each browser step (a WebDriver call, a page load).
pub const STEP_TIMEOUT: Duration = Duration::from_secs(20);

/// Exactly the flags the issue names, plus a fixed window size so screenshots are comparable.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
];

/// Awaits one WebDriver step: bounded, and any error fails the test naming the step.
pub async fn step<T, E: std::fmt::Debug>(
    what: &str,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> T {
    match tokio::time::timeout(STEP_TIMEOUT, fut).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => panic!("{what}: {e:?}"),
        Err(_) => panic!("{what}: no answer within {STEP_TIMEOUT:?}"),
    }
}

fn require(path: &str, package: &str) {
    if !Path::new(path).exists() {
        panic!("{path} not found: install the Debian package `{package}` (apt-get install -y {package})");
    }
}

/// A headless Chromium session; chromedriver and the browser die with it.
pub struct Browser {
    pub client: Client,
    driver: Process,
    driver_addr: SocketAddr,
    profile: tempfile::TempDir,
}

impl Browser {
    pub async fn start() -> Browser {
        Browser::start_with(&[]).await
    }

    /// Like [`Browser::start`], with extra Chromium flags (e.g. the HTTPS tests' trusted key).
    pub async fn start_with(extra_flags: &[String]) -> Browser {
        require(CHROMIUM, "chromium");
        require(CHROMEDRIVER, "chromium-driver");
        let port = free_port();
        let mut cmd = Command::new(CHROMEDRIVER);
        cmd.arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1");
        let mut driver = Process::spawn(format!("chromedriver-{port}"), cmd)
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}"));
        let driver_url = format!("http://127.0.0.1:{port}");
        let driver_addr = SocketAddr::from(([127, 0, 0, 1], port));
        let last = std::sync::Mutex::new(String::new());
        let ready = wait_until_async(STEP_TIMEOUT, || async {
            match driver_call(driver_addr, Method::GET, "/status", "").await {
                Ok((200, v)) if v["value"]["ready"] == json!(true) => true,
                Ok((status, v)) => {
                    *lock(&last) = format!("{status} {v}");
                    false
                }
                Err(e) => {
                    *lock(&last) = e;
                    false
                }
            }
        })
        .await;
        driver.assert_running();
        assert!(
            ready,
            "chromedriver did not become ready on {driver_url}: {}",
            lock(&last)
        );

        let profile = tempfile::Builder::new()
            .prefix("e2e-chromium-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a Chromium profile directory: {e}"));
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| f.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.push("--window-size=1280,900".into());
        args.extend(extra_flags.iter().cloned());
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": CHROMIUM, "args": args }),
        );
        caps.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
        let mut builder =
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
        builder.capabilities(caps);
        let client = step("opening a Chromium session", builder.connect(&driver_url)).await;
        Browser {
            client,
            driver,
            driver_addr,
            profile,
        }
    }

    /// Browser console entries since the last call (chromedriver's log endpoint drains them).
    pub async fn console(&self) -> Vec<Value> {
        let id = step("reading the session id", self.client.session_id())
            .await
            .unwrap_or_else(|| panic!("WebDriver session has no id"));
        let path = format!("/session/{id}/se/log");
        let (status, body) = step(
            "reading the browser log",
            driver_call(
                self.driver_addr,
                Method::POST,
                &path,
                r#"{"type":"browser"}"#,
            ),
        )
        .await;
        assert_eq!(status, 200, "browser log: {body}");
        body["value"].as_array().cloned().unwrap_or_default()
    }

    /// Fails on any console entry at SEVERE (errors, failed loads, CSP violations), except
    /// messages containing one of `expected` (e.g. the 404 a made-up path must produce).
    pub async fn assert_no_console_errors(&self, page: &str, expected: &[&str]) {
        let errors: Vec<String> = self
            .console()
            .await
            .into_iter()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .filter(|m| !expected.iter().any(|x| m.contains(x)))
            .collect();
        assert!(
            errors.is_empty(),
            "{page}: console errors in the browser: {errors:#?}"
        );
    }

    /// Every resource the page loaded (and the page itself) came from `origin`.
    pub async fn assert_only_origin(&self, page: &str, origin: &str) {
        let urls = self
            .eval(
                "return [location.href].concat(performance.getEntriesByType('resource').map(e => e.name));",
            )
            .await;
        let urls: Vec<String> = urls
            .as_array()
            .unwrap_or_else(|| panic!("{page}: resource list is not an array: {urls}"))
            .iter()
            .map(|u| u.as_str().unwrap_or_default().to_string())
            .collect();
        let prefix = format!("{origin}/");
        let outside: Vec<&String> = urls.iter().filter(|u| !u.starts_with(&prefix)).collect();
        assert!(
            outside.is_empty(),
            "{page}: loaded from outside {origin}: {outside:?} (all: {urls:?})"
        );
    }

    pub async fn goto(&self, url: &str) {
        step(&format!("opening {url}"), self.client.goto(url)).await;
    }

    pub async fn eval(&self, script: &str) -> Value {
        step(
            &format!("running `{script}`"),
            self.client.execute(script, vec![]),
        )
        .await
    }

    pub async fn text(&self, css: &str) -> String {
        let el = step(
            &format!("finding `{css}`"),
            self.client.wait().for_element(Locator::Css(css)),
        )
        .await;
        step(&format!("reading `{css}`"), el.text()).await
    }

    pub async fn path(&self) -> String {
        step("reading the URL", self.client.current_url())
            .await
            .path()
            .to_string()
    }

    /// Waits until the page at `path` has loaded.
    pub async fn wait_for_path(&self, path: &str) {
        let ok = wait_until_async(STEP_TIMEOUT, || async {
            let (Ok(url), Ok(state)) = (
                self.client.current_url().await,
                self.client
                    .execute("return document.readyState", vec![])
                    .await,
            ) else {
                return false;
            };
            url.path() == path && state == "complete"
        })
        .await;
        assert!(ok, "the browser did not arrive at {path}");
    }

    /// A PNG of the viewport, under target/screenshots/.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = step("taking a screenshot", self.client.screenshot()).await;
        let dir = screenshots_dir();
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }

    /// Ends the WebDriver session (closes Chromium) before the drop kills what is left.
    pub async fn close(self) {
        let Browser { client, .. } = &self;
        let _ = tokio::time::timeout(Duration::from_secs(10), client.clone().close()).await;
    }

    fn kill_browser_processes(&self) {
        let marker = format!("--user-data-dir={}", self.profile.path().display());
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return;
        };
        for entry in entries.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            if cmdline
                .split(|&b| b == 0)
                .any(|arg| arg == marker.as_bytes())
            {
                // SAFETY: plain kill(2) on a process that carries our own profile directory.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.driver.kill();
        self.kill_browser_processes();
    }
}

/// One WebDriver call outside fantoccini (readiness, the browser log). chromedriver answers only
/// origin-form request targets, which the harness's absolute-URL client does not send.
async fn driver_call(
    addr: SocketAddr,
    method: Method,
    path: &str,
    body: &str,
) -> Result<(u16, Value), String> {
    use http_body_util::{BodyExt, Full};
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, addr.to_string())
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(bytes::Bytes::from(body.to_owned())))
        .map_err(|e| e.to_string())?;
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        let json = serde_json::from_slice(&bytes).map_err(|e| format!("{path}: {e}"))?;
        Ok((status, json))
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| format!("{path}: no answer from chromedriver within 10s"))?
}

/// Where screenshots go: `$CARGO_TARGET_DIR/screenshots`, else the workspace's `target/screenshots`.
pub fn screenshots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::bins::workspace_root().join("target"));
    target.join("screenshots")
}

/// The stack the browser tests look at: Redis, 3 replicas configured with the owner's GitHub and
/// LinkedIn URLs, and the balancer health-checking them every 200 ms. Not warmed up, so the dashboard's
/// request counts are the test's own.
pub async fn stack() -> crate::Stack {
    stack_builder().start().await
}

/// [`stack`]'s builder, for tests that add balancer flags (e.g. `--tls-listen`).
pub fn stack_builder() -> crate::stack::StackBuilder {
    crate::Stack::builder(3)
        .app_env("GITHUB_URL", GITHUB_URL)
        .app_env("LINKEDIN_URL", LINKEDIN_URL)
        .balancer_args(&["--health-interval", "200ms"])
}
