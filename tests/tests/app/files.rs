//! `app` files on disk against a real Redis: static files with ETag, Cache-Control and 304, path
//! traversal kept inside the static folder, and `--templates-dir` loading templates from disk and picking
//! up edits. Routes, pages and headers are in `routes.rs`.

use std::time::Duration;

use e2e::http::{get_or_panic, request_or_panic, Resp};
use e2e::{App, RedisServer};
use http::Method;

const T: Duration = Duration::from_secs(30);

fn served_by(resp: &Resp) -> &str {
    resp.header("x-served-by").unwrap_or_default()
}

#[tokio::test]
async fn static_files_have_etag_cache_control_and_304() {
    tokio::time::timeout(T, async {
        let redis = RedisServer::start().await;
        let app = App::start(&redis).await;
        let css = get_or_panic(&app.url("/static/style.css")).await;
        assert_eq!(css.status, 200);
        assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
        assert!(
            css.text().contains("linear-gradient"),
            "the gradient stylesheet"
        );
        let cache = css.header("cache-control").expect("Cache-Control");
        assert!(cache.contains("max-age="), "{cache}");
        let etag = css.header("etag").expect("ETag").to_string();
        assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");

        let again = get_or_panic(&app.url("/static/style.css")).await;
        assert_eq!(again.header("etag"), Some(etag.as_str()), "ETag is stable");

        let weak = format!("\"other\", W/{etag}");
        for tag in [etag.as_str(), weak.as_str(), "*"] {
            let resp = request_or_panic(
                Method::GET,
                &app.url("/static/style.css"),
                &[("if-none-match", tag)],
            )
            .await;
            assert_eq!(resp.status, 304, "If-None-Match: {tag}");
            assert!(resp.body.is_empty());
            assert_eq!(resp.header("etag"), Some(etag.as_str()));
            assert_eq!(served_by(&resp), app.name());
        }
        let stale = request_or_panic(
            Method::GET,
            &app.url("/static/style.css"),
            &[("if-none-match", "\"stale\"")],
        )
        .await;
        assert_eq!(stale.status, 200);
        assert_eq!(stale.body, css.body);

        let icon = get_or_panic(&app.url("/static/favicon.svg")).await;
        assert_eq!(icon.status, 200);
        assert_eq!(icon.header("content-type"), Some("image/svg+xml"));
        assert!(icon.header("etag").is_some());
        assert_ne!(icon.header("etag"), Some(etag.as_str()));
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn static_path_traversal_is_404() {
    tokio::time::timeout(T, async {
        let redis = RedisServer::start().await;
        let app = App::start(&redis).await;
        // Raw requests: an HTTP client library would normalise these paths away.
        for path in [
            "/static/../Cargo.toml",
            "/static/../../etc/passwd",
            "/static/%2e%2e/Cargo.toml",
            "/static/..%2fCargo.toml",
            "/static/./style.css",
            "/static//style.css",
            "/static/style.css/",
            "/static/%2e%2e%2fapp%2fbuild.rs",
            "/static/..\\Cargo.toml",
        ] {
            let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
            let answer =
                e2e::raw::exchange(app.addr(), req.as_bytes(), Duration::from_secs(5)).await;
            let status = e2e::raw::status_of(&answer);
            assert!(
                matches!(status, Some(404) | Some(400)),
                "{path}: {status:?}"
            );
            let text = String::from_utf8_lossy(&answer);
            assert!(
                !text.contains("[workspace]") && !text.contains("root:x:"),
                "{path} leaked a file"
            );
        }
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn templates_dir_loads_templates_from_disk_and_picks_up_edits() {
    tokio::time::timeout(T, async {
        let redis = RedisServer::start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let source = e2e::bins::workspace_root().join("templates");
        copy_dir(&source, dir.path());
        let index = dir.path().join("index.html");
        let original = std::fs::read_to_string(&index).expect("index.html");
        std::fs::write(&index, original.replace("Welcome to", "Hello from disk,")).expect("write");

        let app = App::builder(&redis)
            .env("TEMPLATES_DIR", dir.path().to_str().expect("utf-8 path"))
            .start()
            .await;
        assert!(get_or_panic(&app.url("/"))
            .await
            .text()
            .contains("Hello from disk, Visit Counter"));

        // Edits show without a restart.
        std::fs::write(&index, original.replace("Welcome to", "Edited live,")).expect("write");
        assert!(get_or_panic(&app.url("/"))
            .await
            .text()
            .contains("Edited live, Visit Counter"));
    })
    .await
    .expect("test timed out");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    for entry in std::fs::read_dir(from).expect("read templates") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            std::fs::create_dir_all(&target).expect("mkdir");
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}
