//! The admin listener: `/metrics` (Prometheus text), `/status` (JSON, [`status`]), the dashboard,
//! and the token-guarded calls: the drain of [`drain`] and `POST /config/reload` ([`reload`]).
//!
//! Served only on `--admin-listen`, never on the public port, so operators can keep it on
//! loopback or an internal network. Health gauges are refreshed at scrape time because passive
//! marks expire by the clock, without an event to update them.

pub mod dashboard;
pub mod drain;
pub mod reload;
pub mod status;

use std::convert::Infallible;
use std::sync::Arc;

use crate::runtime::shutdown::Drain;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::front::tls::CertStore;
use crate::routes::table::LiveRoutes;
use crate::runtime::metrics::Metrics;
use crate::traffic::TrafficRules;
pub use status::Limits;

pub struct Admin {
    /// The routes and groups in force: what `/status` shows and the drain calls act on.
    pub routes: Arc<LiveRoutes>,
    /// The config file and its last reload (`None` without `--config`).
    pub config: Option<Arc<reload::ConfigStatus>>,
    /// Where `POST /config/reload` sends its request (`None` without `--config`).
    pub reload: Option<reload::ReloadSender>,
    pub metrics: Arc<Metrics>,
    pub started: std::time::Instant,
    pub limits: Limits,
    pub rules: Arc<TrafficRules>,
    /// `--admin-token` (`BALANCER_ADMIN_TOKEN`) for the POST calls.
    pub token: Option<String>,
    /// The served certificate, when `--tls-listen` is set.
    pub tls: Option<Arc<CertStore>>,
    /// The ACME names' certificates, with `--acme-domain`.
    pub acme: Option<Arc<crate::acme::certs::AcmeCerts>>,
}

impl Admin {
    /// The drain API's answer to a request under `/backends/`.
    fn drain(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        let table = self.routes.load_full();
        let backends: Vec<_> = table
            .groups()
            .iter()
            .flat_map(|g| g.backends.snapshot().iter().cloned().collect::<Vec<_>>())
            .collect();
        answer(drain::respond(
            req.method(),
            req.uri().path(),
            req.headers().get(header::AUTHORIZATION),
            self.token.as_deref(),
            &backends,
        ))
    }

    async fn respond(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        if req.uri().path().starts_with("/backends/") {
            return self.drain(req);
        }
        if req.uri().path() == "/config/reload" {
            return answer(
                reload::respond(
                    req.method(),
                    req.headers().get(header::AUTHORIZATION),
                    self.token.as_deref(),
                    self.reload.as_ref(),
                )
                .await,
            );
        }
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return text(
                StatusCode::METHOD_NOT_ALLOWED,
                "405 Method Not Allowed\n".into(),
            );
        }
        match req.uri().path() {
            "/metrics" => {
                self.refresh_gauges();
                match self.metrics.encode() {
                    Ok(body) => with_type(
                        StatusCode::OK,
                        body,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    ),
                    Err(_) => text(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "encoding failed\n".into(),
                    ),
                }
            }
            "/status" => match serde_json::to_string_pretty(&self.status()) {
                Ok(body) => with_type(StatusCode::OK, body, "application/json"),
                Err(_) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "encoding failed\n".into(),
                ),
            },
            "/" => crate::admin::dashboard::response(),
            _ => text(StatusCode::NOT_FOUND, "404 Not Found\n".into()),
        }
    }
}

fn with_type(
    status: StatusCode,
    body: String,
    content_type: &'static str,
) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    with_type(status, body, "text/plain; charset=utf-8")
}

/// A mutating call's answer, with the Bearer challenge on a 401.
fn answer(a: drain::Answer) -> Response<Full<Bytes>> {
    let mut resp = with_type(a.status, a.body, a.content_type);
    if a.challenge {
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    resp
}

pub async fn serve(
    listener: TcpListener,
    admin: Arc<Admin>,
    drain: &Drain,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            biased;
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let admin = admin.clone();
        let service = service_fn(move |req: Request<Incoming>| {
            let admin = admin.clone();
            async move { Ok::<_, Infallible>(admin.respond(&req).await) }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(std::time::Duration::from_secs(10))
            .serve_connection(TokioIo::new(stream), service);
        let watch = drain.watcher();
        tokio::spawn(async move {
            let _ = watch.serve(conn, |c| c.graceful_shutdown()).await;
        });
    }
}

/// `balancer healthcheck`: exit 0 only if the admin listener answers `GET /status` with 200
/// within 3 s (the images ship without curl, so the binary checks itself).
pub fn healthcheck(admin_listen: std::net::SocketAddr) -> i32 {
    let addr = shared::healthcheck::target(admin_listen);
    match shared::healthcheck::check(addr, "/status", HEALTHCHECK_TIMEOUT) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("balancer healthcheck: admin listener {addr} did not answer: {e}");
            1
        }
    }
}

const HEALTHCHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);
