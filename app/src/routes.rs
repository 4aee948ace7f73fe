//! Routing and request handlers.
//!
//! A `match` on the path is the whole router: the site has a handful of routes and this
//! keeps them readable without a framework. Every response passes through `App::handle`,
//! which adds `X-Served-By`, strips bodies from HEAD answers, records metrics and logs the
//! request (at debug) in a span carrying its `X-Request-Id`.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{
    ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG,
    IF_NONE_MATCH, X_CONTENT_TYPE_OPTIONS,
};
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body_util::Full;
use shared::host::HostProblem;
use tracing::Instrument;

use crate::config::Config;
use crate::counter::Counter;
use crate::metrics::Metrics;
use crate::pages::Pages;
use crate::static_files::{self, StaticFiles};

pub type Body = Full<Bytes>;

const X_SERVED_BY: HeaderName = HeaderName::from_static("x-served-by");
const X_APP_VERSION: HeaderName = HeaderName::from_static("x-app-version");
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const HTML: HeaderValue = HeaderValue::from_static("text/html; charset=utf-8");
const JSON: HeaderValue = HeaderValue::from_static("application/json");
const OPENMETRICS: HeaderValue =
    HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8");
const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
const NO_CACHE: HeaderValue = HeaderValue::from_static("no-cache");
const NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");
// Pages load nothing but our own stylesheet and favicon; inline SVG needs no exception.
const CSP: HeaderValue = HeaderValue::from_static(
    "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
);
const ALLOWED: HeaderValue = HeaderValue::from_static("GET, HEAD");

/// The span every log line of one request is written in: it carries the `X-Request-Id` the
/// balancer forwarded (a visible-ASCII value the balancer checked; anything else is not shown),
/// so the app's lines and the balancer's access line of a request can be joined. No span when
/// there is no ID (a direct request), so nothing is spent on it.
fn request_span<B>(req: &Request<B>) -> tracing::Span {
    match req.headers().get(X_REQUEST_ID).map(HeaderValue::to_str) {
        Some(Ok(id)) => tracing::info_span!("request", request_id = %id),
        _ => tracing::Span::none(),
    }
}

/// The routes, as metric labels from a fixed set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Home,
    Count,
    About,
    Health,
    Visits,
    Metrics,
    Static,
    NotFound,
    BadRequest,
}

impl Route {
    fn label(self) -> &'static str {
        match self {
            Route::Home => "/",
            Route::Count => "/count",
            Route::About => "/about",
            Route::Health => "/health",
            Route::Visits => "/api/visits",
            Route::Metrics => "/metrics",
            Route::Static => "/static",
            Route::NotFound => "not_found",
            Route::BadRequest => "bad_request",
        }
    }
}

/// Everything a request handler needs, shared by all connections.
pub struct App {
    config: Config,
    pages: Pages,
    counter: Counter,
    metrics: Metrics,
    statics: StaticFiles,
    /// Set on SIGTERM: /health answers 503 and every HTTP/1 response closes its connection, so
    /// balancers move away before the idle connections are closed under them.
    stopping: AtomicBool,
}

impl App {
    pub fn new(
        config: Config,
        pages: Pages,
        counter: Counter,
        metrics: Metrics,
        statics: StaticFiles,
    ) -> Self {
        App {
            config,
            pages,
            counter,
            metrics,
            statics,
            stopping: AtomicBool::new(false),
        }
    }

    /// Enters the shutdown delay: see `stopping`.
    pub fn begin_stopping(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// Answers one request; never fails, never panics on client input.
    pub async fn handle<B>(self: Arc<Self>, req: Request<B>) -> Result<Response<Body>, Infallible> {
        let started = Instant::now();
        let _in_flight = self.metrics.in_flight();
        let method = req.method().clone();
        let http1 = req.version() < Version::HTTP_2;
        let span = request_span(&req);
        let (route, mut response) = self.route(&req).instrument(span.clone()).await;
        span.in_scope(|| {
            tracing::debug!(%method, path = req.uri().path(), status = response.status().as_u16(), "request served");
        });
        if http1 && self.is_stopping() {
            // HTTP/2 has GOAWAY for this; HTTP/1 only has `Connection: close`.
            response
                .headers_mut()
                .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        }

        if method == Method::HEAD && response.status() != StatusCode::NOT_MODIFIED {
            // Same headers as GET, including the length the body would have had.
            let len = hyper::body::Body::size_hint(response.body())
                .exact()
                .unwrap_or(0);
            response
                .headers_mut()
                .insert(CONTENT_LENGTH, HeaderValue::from(len));
            *response.body_mut() = Full::new(Bytes::new());
        }
        let headers = response.headers_mut();
        headers.insert(X_SERVED_BY, self.config.served_by.clone());
        headers.insert(X_APP_VERSION, self.config.version_header.clone());
        self.metrics
            .observe(route.label(), response.status().as_u16(), started.elapsed());
        Ok(response)
    }

    async fn route<B>(&self, req: &Request<B>) -> (Route, Response<Body>) {
        if let Some(detail) = host_problem(req) {
            let response = self.error_page(StatusCode::BAD_REQUEST, "Bad request", detail);
            return (Route::BadRequest, response);
        }
        let path = req.uri().path();
        let route = match path {
            "/" => Route::Home,
            "/count" => Route::Count,
            "/about" => Route::About,
            "/health" => Route::Health,
            "/api/visits" => Route::Visits,
            "/metrics" => Route::Metrics,
            _ => match path.strip_prefix("/static/") {
                Some(name) if self.statics.get(name).is_some() => Route::Static,
                _ => Route::NotFound,
            },
        };
        let method = req.method();
        if route != Route::NotFound && method != Method::GET && method != Method::HEAD {
            return (route, self.method_not_allowed());
        }
        let response = match route {
            Route::Home => self.html(StatusCode::OK, self.pages.home(), NO_CACHE),
            Route::About => self.html(StatusCode::OK, self.pages.about(), NO_CACHE),
            Route::Count => self.count(method == Method::HEAD).await,
            Route::Health => self.health().await,
            Route::Visits => self.visits().await,
            Route::Metrics => self.metrics(),
            Route::Static => self.static_file(req),
            Route::NotFound | Route::BadRequest => {
                self.html(StatusCode::NOT_FOUND, self.pages.not_found(), NO_CACHE)
            }
        };
        (route, response)
    }

    fn html(
        &self,
        status: StatusCode,
        page: Result<Bytes, minijinja::Error>,
        cache: HeaderValue,
    ) -> Response<Body> {
        match page {
            Ok(body) => {
                let mut response = Response::new(Full::new(body));
                *response.status_mut() = status;
                let headers = response.headers_mut();
                headers.insert(CONTENT_TYPE, HTML);
                headers.insert(CACHE_CONTROL, cache);
                headers.insert(X_CONTENT_TYPE_OPTIONS, NOSNIFF);
                headers.insert(CONTENT_SECURITY_POLICY, CSP);
                response
            }
            Err(e) => {
                tracing::error!(error = %e, "template rendering failed");
                plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "500 Internal Server Error: a page template failed to render\n",
                )
            }
        }
    }

    fn error_page(&self, status: StatusCode, title: &str, detail: &str) -> Response<Body> {
        self.html(
            status,
            self.pages.error(status.as_u16(), title, detail),
            NO_STORE,
        )
    }

    fn method_not_allowed(&self) -> Response<Body> {
        let mut response = self.error_page(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method not allowed",
            "This address only answers GET and HEAD.",
        );
        response.headers_mut().insert(ALLOW, ALLOWED);
        response
    }

    fn redis_down_page(&self) -> Response<Body> {
        self.error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "The counter is resting",
            "We cannot reach Redis right now, so this visit could not be counted. Try again in a moment.",
        )
    }

    /// `/count`: one INCR per GET. HEAD reads the total instead, so monitors probing with
    /// HEAD do not inflate the count.
    async fn count(&self, head: bool) -> Response<Body> {
        let result = if head {
            self.counter.current().await
        } else {
            self.counter.increment().await
        };
        match result {
            Ok(visits) => self.html(StatusCode::OK, self.pages.count(visits), NO_STORE),
            Err(e) => {
                // The Redis probe logs outages once; per-request lines would flood the log.
                tracing::debug!(error = %e, "/count failed");
                self.redis_down_page()
            }
        }
    }

    async fn health(&self) -> Response<Body> {
        let replica = self.config.replica_name.as_str();
        let version = self.config.version.as_str();
        if self.is_stopping() {
            return json(
                StatusCode::SERVICE_UNAVAILABLE,
                &serde_json::json!({"status": "stopping", "replica": replica, "version": version}),
            );
        }
        match self.counter.ping().await {
            Ok(()) => json(
                StatusCode::OK,
                &serde_json::json!({
                    "status": "ok", "redis": "up", "replica": replica, "version": version
                }),
            ),
            Err(e) => json(
                StatusCode::SERVICE_UNAVAILABLE,
                &serde_json::json!({
                    "status": "degraded", "redis": "down", "replica": replica,
                    "version": version, "error": e.to_string()
                }),
            ),
        }
    }

    async fn visits(&self) -> Response<Body> {
        match self.counter.current().await {
            Ok(visits) => json(StatusCode::OK, &serde_json::json!({ "visits": visits })),
            Err(e) => json(
                StatusCode::SERVICE_UNAVAILABLE,
                &serde_json::json!({ "error": "redis unavailable", "detail": e.to_string() }),
            ),
        }
    }

    fn metrics(&self) -> Response<Body> {
        match self.metrics.render() {
            Ok(text) => {
                let mut response = Response::new(Full::new(Bytes::from(text)));
                response.headers_mut().insert(CONTENT_TYPE, OPENMETRICS);
                response.headers_mut().insert(CACHE_CONTROL, NO_STORE);
                response
            }
            Err(e) => {
                tracing::error!(error = %e, "encoding metrics failed");
                plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "metrics encoding failed\n",
                )
            }
        }
    }

    fn static_file<B>(&self, req: &Request<B>) -> Response<Body> {
        let name = req
            .uri()
            .path()
            .strip_prefix("/static/")
            .unwrap_or_default();
        let Some(file) = self.statics.get(name) else {
            return self.html(StatusCode::NOT_FOUND, self.pages.not_found(), NO_CACHE);
        };
        let not_modified = req
            .headers()
            .get(IF_NONE_MATCH)
            .is_some_and(|tag| file.matches(tag));
        let mut response = if not_modified {
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            response
        } else {
            let mut response = Response::new(Full::new(file.body.clone()));
            response
                .headers_mut()
                .insert(CONTENT_TYPE, file.content_type.clone());
            response
                .headers_mut()
                .insert(X_CONTENT_TYPE_OPTIONS, NOSNIFF);
            response
        };
        response.headers_mut().insert(ETAG, file.etag.clone());
        response
            .headers_mut()
            .insert(CACHE_CONTROL, static_files::CACHE_CONTROL);
        response
    }
}

/// Why a request's Host headers are refused (400), by the rule both binaries share
/// (`shared::host`): HTTP/1.1 needs exactly one `host[:port]`, no request may carry several,
/// and an empty Host or a non-numeric port is refused.
fn host_problem<B>(req: &Request<B>) -> Option<&'static str> {
    let problem = shared::host::check_host_headers(req.headers(), req.version()).err()?;
    Some(match problem {
        HostProblem::Missing => "An HTTP/1.1 request must name its Host.",
        HostProblem::Repeated => "The request must name exactly one Host.",
        HostProblem::Invalid => "The Host must be a host name or address with an optional port.",
    })
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, JSON);
    response.headers_mut().insert(CACHE_CONTROL, NO_STORE);
    response
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(version: Version, hosts: &[&'static str]) -> Request<()> {
        let mut req = Request::new(());
        *req.version_mut() = version;
        for host in hosts {
            req.headers_mut()
                .append(http::header::HOST, HeaderValue::from_static(host));
        }
        req
    }

    #[test]
    fn host_rule_is_the_shared_one() {
        let ok = |v, hosts: &[&'static str]| host_problem(&request(v, hosts)).is_none();
        assert!(ok(Version::HTTP_11, &["a.example:8080"]));
        assert!(ok(Version::HTTP_10, &[]));
        assert!(ok(Version::HTTP_2, &[]));
        assert!(!ok(Version::HTTP_11, &[]));
        assert!(!ok(Version::HTTP_11, &["a", "b"]));
        // Stricter than the app's old rule: empty and non-numeric ports are refused now.
        assert!(!ok(Version::HTTP_11, &[""]));
        assert!(!ok(Version::HTTP_11, &["a:junk"]));
        assert!(!ok(Version::HTTP_11, &["u@a"]));
    }
}
