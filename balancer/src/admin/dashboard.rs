//! The operator's dashboard: one self-contained HTML page on the admin listener's `/`.
//!
//! The page is a static asset compiled into the binary; it renders nothing on the server and
//! polls `/status` (backends, upstream names; with `--config` also the routes, the groups and the
//! file's hash and last reload) and `/metrics` (latency histogram) from the browser
//! every second, so it costs the proxy nothing while nobody looks at it. It loads nothing from
//! anywhere else, and its Content-Security-Policy holds it to that.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;

/// The page: markup, style and script in one file, see `balancer/assets/dashboard.html`.
pub const PAGE: &str = include_str!("../../assets/dashboard.html");

/// Same-origin fetches only; inline style and script because the page is one file; the favicon is
/// a `data:` URL.
const CSP: &str = "default-src 'none'; connect-src 'self'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// The dashboard response. `no-cache` rather than `no-store`: a browser may keep the page but
/// must revalidate it, so an upgraded balancer's page is never stale.
pub fn response() -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(PAGE.as_bytes())));
    *resp.status_mut() = StatusCode::OK;
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_is_html_and_self_contained() {
        let resp = response();
        assert_eq!(
            resp.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        assert_eq!(resp.headers()[header::CACHE_CONTROL], "no-cache");
        assert!(PAGE.starts_with("<!doctype html>"));
        // Nothing fetched from another origin: no absolute URLs in src/href, no @import.
        for needle in [
            "src=\"http",
            "href=\"http",
            "src=\"//",
            "href=\"//",
            "@import",
        ] {
            assert!(!PAGE.contains(needle), "dashboard references {needle}");
        }
        assert!(
            PAGE.contains("fetch(path"),
            "dashboard must poll the admin endpoints"
        );
        assert!(PAGE.contains("\"/status\""));
    }

    /// The config file's parts of `/status` (issue 25) are shown, and each card stays hidden while
    /// its field is absent, so the page still works with a balancer that has no config file.
    #[test]
    fn page_shows_routes_groups_and_config_when_present() {
        for needle in [
            "status.routes",
            "status.config",
            "Array.isArray(g.backends)",
            "last_reload",
            "restart_needed",
        ] {
            assert!(PAGE.contains(needle), "dashboard does not read {needle}");
        }
        for card in [
            "id=\"config\" hidden",
            "id=\"routes-card\" hidden",
            "id=\"groups-card\" hidden",
        ] {
            assert!(PAGE.contains(card), "{card}: hidden until /status has it");
        }
    }
}
