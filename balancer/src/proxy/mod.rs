//! The proxy itself: one client request in, one response out.
//!
//! Checks the request ([`check()`]), finds its route in the live [`RouteTable`] (by host and
//! path; no route is a 404 of the balancer's own), rewrites it for the backends ([`headers`],
//! [`request_id`], the route's `strip_prefix`), picks backends through the route's upstream group
//! (round-robin or least-request, slow start; a weighted split first picks the group),
//! forwards over an [`Upstream`] (the real one: per-backend keep-alive pools), streams bodies both
//! ways ([`response_body`], [`upgrade`]), retries on the next backend only when the request
//! provably never left (`SendError::NotSent`), and turns failures into short plain 4xx/5xx answers
//! that leak nothing internal.
//!
//! [`Proxy`] is generic over the [`Upstream`] it sends to and [`Proxy::handle`] over the client's
//! body, so the unit tests (`tests.rs`) drive every rule with in-memory requests against an
//! in-process upstream, without a socket. The real path (hyper's `Incoming`, TCP) is the same code
//! monomorphised, with no cost per request.

pub mod check;
mod forward;
mod forward_auth;
mod gate;
pub mod headers;
pub mod request_id;
pub mod response_body;
mod route;
#[cfg(test)]
mod tests;
pub mod upgrade;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode};
use hyper::body::Body;

use crate::access_log::{AccessEntry, WorkerLog};
use crate::routes::table::{LiveRoutes, RouteTable};
use crate::runtime::metrics::{class_index, Metrics};
use crate::traffic::TrafficRules;
use crate::upstream::{Upstream, UpstreamPool};
use check::{Refused, ALLOWED_METHODS};
use forward::Served;
use request_id::X_REQUEST_ID;
use response_body::ResponseBody;
use route::Admitted;

/// What a client gets back: the backend's body or one of the balancer's own answers.
pub type ProxyResponse<U, B> =
    Response<ResponseBody<<U as Upstream<B>>::Body, <U as Upstream<B>>::Lease>>;

/// A request's answer, with what its access line names: the backend that answered and the
/// route it took, if any.
struct Forwarded<U: Upstream<B>, B> {
    response: ProxyResponse<U, B>,
    served: Option<Served>,
    route: Option<Arc<str>>,
}

impl<U: Upstream<B>, B> Forwarded<U, B> {
    /// An answer of the balancer's own, before any route.
    fn local(response: ProxyResponse<U, B>) -> Self {
        Forwarded {
            response,
            served: None,
            route: None,
        }
    }
}

/// One worker's proxy. The route table and its groups (rotations, cursors, ejections), the
/// traffic rules and the metrics are shared by all workers; each group's connections are per
/// worker, and this proxy uses worker `worker`'s.
pub struct Proxy<U = UpstreamPool> {
    routes: Arc<LiveRoutes<U>>,
    worker: usize,
    /// `--max-body`.
    max_body: u64,
    metrics: Arc<Metrics>,
    access_log: WorkerLog,
    rules: Arc<TrafficRules>,
    /// This worker's client to the routes' `forward_auth` services.
    auth: forward_auth::AuthClient,
}

/// What the proxy knows about a client connection, computed once per connection.
pub struct ClientInfo {
    pub ip: HeaderValue,
    /// `X-Forwarded-Proto`: how the client reached the balancer, never what it claims.
    pub proto: HeaderValue,
    /// The client's address, for the rate limiter (see `--trusted-proxies`).
    pub peer: std::net::IpAddr,
}

impl ClientInfo {
    /// A plain HTTP client.
    pub fn new(peer: std::net::SocketAddr) -> Self {
        let peer = peer.ip().to_canonical();
        let ip = HeaderValue::from_str(&peer.to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        ClientInfo {
            ip,
            peer,
            proto: HeaderValue::from_static("http"),
        }
    }

    /// A client on the TLS listener.
    pub fn over_tls(peer: std::net::SocketAddr) -> Self {
        ClientInfo {
            proto: HeaderValue::from_static("https"),
            ..ClientInfo::new(peer)
        }
    }
}

/// A short plain-text answer of the balancer's own.
fn plain<B: Body, L: crate::upstream::Release>(
    status: StatusCode,
    text: &'static str,
) -> Response<ResponseBody<B, L>> {
    let mut resp = Response::new(ResponseBody::fixed(text));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Full chain of an error's messages, for `last_error` and logs (error path only).
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

impl<U> Proxy<U> {
    /// Worker `worker`'s proxy to the groups of `routes`; `max_body` is `--max-body`.
    pub fn new(
        routes: Arc<LiveRoutes<U>>,
        worker: usize,
        max_body: u64,
        metrics: Arc<Metrics>,
        access_log: WorkerLog,
        rules: Arc<TrafficRules>,
    ) -> Self {
        Proxy {
            routes,
            worker,
            max_body,
            metrics,
            access_log,
            rules,
            auth: forward_auth::AuthClient::new(),
        }
    }

    /// An answer of the balancer's own, counted by class.
    fn local<B: Body, L: crate::upstream::Release>(
        &self,
        status: StatusCode,
        text: &'static str,
    ) -> Response<ResponseBody<B, L>> {
        self.metrics.local[class_index(status.as_u16())].inc();
        plain(status, text)
    }

    /// One request through the proxy, with its access log line when `--access-log` is on.
    pub async fn handle<B>(
        self: Arc<Self>,
        req: Request<B>,
        client: Arc<ClientInfo>,
    ) -> Result<ProxyResponse<U, B>, Infallible>
    where
        U: Upstream<B>,
        B: Body<Data = Bytes> + Send + 'static,
    {
        // With the access log off (the default), skip the clock reads and the copies of method,
        // path and headers that only the log line needs.
        if !self.access_log.enabled() {
            return Ok(self.forward(req, &client).await.response);
        }
        let start = Instant::now();
        let method = req.method().clone();
        let path = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let version = req.version();
        let referer = req.headers().get(header::REFERER).cloned();
        let user_agent = req.headers().get(header::USER_AGENT).cloned();
        let Forwarded {
            response: resp,
            served,
            route,
        } = self.forward(req, &client).await;
        let elapsed = start.elapsed();
        let request_id = resp.headers().get(&X_REQUEST_ID).cloned();
        self.access_log.log(&AccessEntry {
            remote_addr: client.ip.to_str().unwrap_or("-"),
            method: method.as_str(),
            target: path.as_str(),
            version,
            status: resp.status().as_u16(),
            body_bytes: resp.body().size_hint().exact(),
            referer: referer.as_ref().map(HeaderValue::as_bytes),
            user_agent: user_agent.as_ref().map(HeaderValue::as_bytes),
            request_id: request_id.as_ref().map(HeaderValue::as_bytes),
            backend: served.as_ref().map(|s| s.backend.label.as_str()),
            upstream_time: served.as_ref().and_then(|s| s.upstream_time),
            request_time: elapsed,
            route: route.as_deref(),
        });
        Ok(resp)
    }

    /// One request through the proxy: give it its ID, check it, route it, prepare it for a
    /// backend, try the backends in turn, relay the answer with the ID. Everything before the
    /// backends is synchronous ([`Proxy::admit`]), so a plain route's request awaits only
    /// [`Proxy::try_backends`] here, one future deep; a route with access rules or a fixed answer
    /// takes its boxed detour ([`Proxy::guarded`]).
    async fn forward<B>(&self, req: Request<B>, client: &ClientInfo) -> Forwarded<U, B>
    where
        U: Upstream<B>,
        B: Body<Data = Bytes> + Send + 'static,
    {
        let found = headers::scan(req.headers());
        let id = request_id::of(found.single_request_id());
        // Loaded once and held to the end: a reload never moves a request halfway.
        let table: Arc<RouteTable<U>> = self.routes.load_full();
        let mut forwarded = match self.admit(req, client, &id, found, &table) {
            Admitted::Answered(forwarded) => forwarded,
            Admitted::Guarded(route, req, found) => {
                Box::pin(self.guarded(route, req, client, &id, found)).await
            }
            Admitted::Ready(route, ready) => {
                let (response, served) = self.try_backends(route, ready.prepared).await;
                self.finish(route, ready.coding, response, served)
            }
        };
        forwarded.response.headers_mut().insert(X_REQUEST_ID, id);
        forwarded
    }

    /// The 429 of a client over `--rate-limit`; the request is never forwarded.
    fn rate_limited<B: Body, L: crate::upstream::Release>(
        &self,
        retry_after: u64,
    ) -> Response<ResponseBody<B, L>> {
        self.metrics.traffic.rate_limited.inc();
        let mut resp = self.local(
            StatusCode::TOO_MANY_REQUESTS,
            "429 Too Many Requests: over --rate-limit\n",
        );
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        resp
    }

    /// The balancer's own answer to a request [`check`] refused.
    fn refuse<B: Body, L: crate::upstream::Release>(
        &self,
        Refused(status, text): Refused,
    ) -> Response<ResponseBody<B, L>> {
        let mut resp = self.local(status, text);
        if status == StatusCode::METHOD_NOT_ALLOWED {
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(ALLOWED_METHODS));
        }
        resp
    }
}
