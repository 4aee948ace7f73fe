//! The proxy itself: one client request in, one response out.
//!
//! Picks backends in round-robin order, forwards over the per-backend keep-alive pools of
//! [`crate::upstream`] (bounded idle connections per backend), streams bodies both ways, retries on the
//! next backend only when the request provably never left (connect refused or timed out), and
//! turns failures into short plain 502/503/504 answers that leak nothing internal.

pub mod headers;
pub mod request_id;
pub mod response_body;
pub mod upgrade;

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use shared::host::{check_hosts, is_valid_host, HostProblem};

use crate::access_log::{AccessEntry, WorkerLog};
use crate::backends::backend::{Backend, InFlight, Pool};
use crate::backends::health::HealthPolicy;
use crate::backends::outlier::Ejector;
use crate::backends::selection::Selection;
use crate::proxy::response_body::ResponseBody;
use crate::runtime::clock::now_ms;
use crate::runtime::metrics::{class_index, Metrics};
use crate::traffic::rate_limit::Limiter;
use crate::traffic::trusted_proxies::TrustedProxies;
use crate::upstream::request_body::{BodyHandle, RequestBody, RequestBodyOutcome};
use crate::upstream::{Lease, SendError, UpstreamPool, UpstreamSettings};
use request_id::X_REQUEST_ID;

#[derive(Clone, Copy)]
pub struct ProxySettings {
    pub connect_timeout: Duration,
    pub upstream_timeout: Duration,
    pub max_body: u64,
    pub max_idle_per_backend: usize,
    pub policy: HealthPolicy,
    /// `--upstream-protocol`, and `--health-interval` for its keep-alive.
    pub upstream_protocol: crate::config::UpstreamProtocol,
    pub health_interval: Duration,
}

/// One worker's proxy. The rotation, its round-robin cursor and the metrics are shared by all
/// workers; the upstream connections are the worker's own.
pub struct Proxy {
    upstream: UpstreamPool,
    pool: Arc<Pool>,
    selection: Arc<Selection>,
    settings: ProxySettings,
    metrics: Arc<Metrics>,
    access_log: WorkerLog,
    rules: Arc<TrafficRules>,
}

/// The traffic rules every worker applies, shared: the per-client rate limit and 5xx ejection.
pub struct TrafficRules {
    /// `--rate-limit` (`None`: off).
    pub limiter: Option<Limiter>,
    /// `--trusted-proxies`: who the client is, for the rate limit.
    pub trusted: TrustedProxies,
    /// `--max-5xx` (0: off) and the one place ejections are decided.
    pub max_5xx: u32,
    pub ejector: Ejector,
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

/// The `Allow` header of the 405 answer to CONNECT.
const ALLOWED_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

/// A checked request rewritten for the backends, with what the retry loop and the relay need.
struct Prepared {
    request: Request<RequestBody>,
    body_handle: BodyHandle,
    /// The client named no host: each backend gets its upstream name as Host.
    host_missing: bool,
    /// The client's side of a requested upgrade (`Connection: upgrade` on HTTP/1.1).
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
}

/// How one attempt on one backend ended.
/// The backend a request went to, for the access log.
struct Served {
    backend: Arc<Backend>,
    /// From sending the request to the response head; `None` when the exchange broke.
    upstream_time: Option<Duration>,
}

enum Attempt {
    /// A response head arrived, this long after the request was sent.
    Answered(Response<Incoming>, Lease, InFlight, Duration),
    /// The request never reached the backend; here it is back for the next one.
    NotSent(Request<RequestBody>),
    /// The exchange broke or timed out; this is the client's answer.
    Failed(Response<ResponseBody>),
}

fn plain(status: StatusCode, text: &'static str) -> Response<ResponseBody> {
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

impl Proxy {
    pub fn new(
        pool: Arc<Pool>,
        selection: Arc<Selection>,
        metrics: Arc<Metrics>,
        settings: ProxySettings,
        worker: usize,
        access_log: WorkerLog,
        rules: Arc<TrafficRules>,
    ) -> Self {
        Proxy {
            upstream: UpstreamPool::new(
                UpstreamSettings {
                    connect_timeout: settings.connect_timeout,
                    upstream_timeout: settings.upstream_timeout,
                    max_idle: settings.max_idle_per_backend,
                    protocol: settings.upstream_protocol,
                    keep_alive: settings.health_interval,
                },
                worker,
                metrics.upstream.clone(),
            ),
            pool,
            selection,
            settings,
            metrics,
            access_log,
            rules,
        }
    }

    fn local(&self, status: StatusCode, text: &'static str) -> Response<ResponseBody> {
        self.metrics.local[class_index(status.as_u16())].inc();
        plain(status, text)
    }

    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        client: Arc<ClientInfo>,
    ) -> Result<Response<ResponseBody>, Infallible> {
        // With the access log off (the default), skip the clock reads and the copies of method,
        // path and headers that only the log line needs.
        if !self.access_log.enabled() {
            return Ok(self.forward(req, &client).await.0);
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
        let (resp, served) = self.forward(req, &client).await;
        let elapsed = start.elapsed();
        let request_id = resp.headers().get(&X_REQUEST_ID).cloned();
        self.access_log.log(&AccessEntry {
            remote_addr: client.ip.to_str().unwrap_or("-"),
            method: method.as_str(),
            target: path.as_str(),
            version,
            status: resp.status().as_u16(),
            body_bytes: hyper::body::Body::size_hint(resp.body()).exact(),
            referer: referer.as_ref().map(HeaderValue::as_bytes),
            user_agent: user_agent.as_ref().map(HeaderValue::as_bytes),
            request_id: request_id.as_ref().map(HeaderValue::as_bytes),
            backend: served.as_ref().map(|s| s.backend.label.as_str()),
            upstream_time: served.as_ref().and_then(|s| s.upstream_time),
            request_time: elapsed,
        });
        Ok(resp)
    }

    /// One request through the proxy: give it its ID, check it, prepare it for a backend, try the
    /// backends in turn, relay the answer with the ID. Returns the backend that answered, if any,
    /// for the access log.
    async fn forward(
        &self,
        mut req: Request<Incoming>,
        client: &ClientInfo,
    ) -> (Response<ResponseBody>, Option<Served>) {
        let mut found = headers::scan(req.headers());
        let id = request_id::of(found.single_request_id());
        let (mut resp, served) = if let Err(retry_after) = self.rate_check(&req, client) {
            (self.rate_limited(retry_after), None)
        } else {
            match check(&mut req, &mut found, self.settings.max_body) {
                Err(refused) => (self.refuse(refused), None),
                Ok(()) => {
                    self.try_backends(self.prepare(req, client, &id, found))
                        .await
                }
            }
        };
        resp.headers_mut().insert(X_REQUEST_ID, id);
        (resp, served)
    }

    /// `--rate-limit`: `Err(seconds to wait)` when this client is over it.
    fn rate_check<B>(&self, req: &Request<B>, client: &ClientInfo) -> Result<(), u64> {
        let Some(limiter) = &self.rules.limiter else {
            return Ok(());
        };
        let who = if self.rules.trusted.is_empty() {
            client.peer
        } else {
            self.rules.trusted.client(client.peer, req.headers())
        };
        limiter.check(who)
    }

    /// The 429 of a client over `--rate-limit`; the request is never forwarded.
    fn rate_limited(&self, retry_after: u64) -> Response<ResponseBody> {
        self.metrics.traffic.rate_limited.inc();
        let mut resp = self.local(
            StatusCode::TOO_MANY_REQUESTS,
            "429 Too Many Requests: over --rate-limit\n",
        );
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        resp
    }

    /// `--max-5xx`: counts a backend's answer in its streak and ejects it when the streak is
    /// long enough and the half cap allows.
    fn record_status(&self, backend: &Backend, status: u16) {
        let Some(streak) = backend.outlier.record(status, self.rules.max_5xx) else {
            return;
        };
        let now = now_ms();
        let until = now.saturating_add(
            u64::try_from(self.settings.policy.fail_timeout.as_millis()).unwrap_or(u64::MAX),
        );
        let all = self.pool.snapshot();
        let outliers = all.iter().map(|b| &b.outlier);
        if self
            .rules
            .ejector
            .try_eject(&backend.outlier, outliers, now, until)
        {
            self.metrics.traffic.ejections.inc();
            tracing::warn!(backend = %backend.addr, streak, fail_timeout = ?self.settings.policy.fail_timeout, "backend ejected after consecutive 5xx responses");
        } else {
            tracing::warn!(backend = %backend.addr, streak, "consecutive 5xx, but half of the backends are already ejected: kept");
        }
    }

    /// The balancer's own answer to a request [`check`] refused.
    fn refuse(&self, Refused(status, text): Refused) -> Response<ResponseBody> {
        let mut resp = self.local(status, text);
        if status == StatusCode::METHOD_NOT_ALLOWED {
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(ALLOWED_METHODS));
        }
        resp
    }

    /// Rewrites a checked request for the backends: hop-by-hop headers out, forwarding headers in,
    /// an upgrade kept only when asked for, an origin-form HTTP/1.1 request with a limited body.
    /// `found` is the request's [`headers::scan`], with the Host [`check`] settled.
    fn prepare(
        &self,
        mut req: Request<Incoming>,
        client: &ClientInfo,
        id: &HeaderValue,
        found: headers::Scan,
    ) -> Prepared {
        let upgrade_to = if found.connection && req.version() == Version::HTTP_11 {
            headers::upgrade_protocol(req.headers())
        } else {
            None
        };
        let client_upgrade = upgrade_to.as_ref().map(|_| hyper::upgrade::on(&mut req));
        let (mut parts, body) = req.into_parts();
        if found.hop_by_hop {
            headers::strip_found_hop_by_hop(&mut parts.headers, found.connection);
        }
        let (host, forwarded_for) = if found.connection {
            // `Connection` may have named Host or X-Forwarded-For: look again.
            let host = parts.headers.get(header::HOST).cloned();
            (host, parts.headers.contains_key(&headers::X_FORWARDED_FOR))
        } else {
            (found.host, found.forwarded_for)
        };
        // After the stripping: a client cannot name X-Request-Id in Connection to drop it.
        parts.headers.insert(X_REQUEST_ID, id.clone());
        // HTTP/1.0 without Host (or HTTP/2 without :authority): name the upstream instead.
        let host_missing = host.is_none();
        headers::add_forwarding_found(
            &mut parts.headers,
            &client.ip,
            &client.proto,
            host,
            forwarded_for,
        );
        if let Some(proto) = upgrade_to {
            headers::set_upgrade(&mut parts.headers, proto);
        }
        // Backends get origin-form; an absolute-form or HTTP/2 URI names no host they should see.
        if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
            let path = parts
                .uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/"));
            parts.uri = Uri::from(path);
        }
        parts.version = Version::HTTP_11;
        let (body, body_handle) = RequestBody::new(body, self.settings.max_body);
        Prepared {
            request: Request::from_parts(parts, body),
            body_handle,
            host_missing,
            client_upgrade,
        }
    }

    /// Tries the backends in selection order until one answers; moves on only when the request
    /// provably never reached the last one.
    async fn try_backends(&self, prepared: Prepared) -> (Response<ResponseBody>, Option<Served>) {
        let Prepared {
            mut request,
            body_handle,
            host_missing,
            client_upgrade,
        } = prepared;
        let attempts = self.selection.attempts(self.pool.snapshot(), now_ms());
        if attempts.is_empty() {
            let text = "503 Service Unavailable: no backend is known yet\n";
            return (self.local(StatusCode::SERVICE_UNAVAILABLE, text), None);
        }
        for (tried, backend) in attempts.enumerate() {
            if host_missing {
                request
                    .headers_mut()
                    .insert(header::HOST, backend.host_header.clone());
            }
            if tried > 0 {
                self.metrics.retries.inc();
            }
            match self.attempt(&backend, request, &body_handle).await {
                Attempt::Answered(resp, lease, in_flight, head_after) => {
                    let served = Served {
                        backend,
                        upstream_time: Some(head_after),
                    };
                    return (
                        self.relay(resp, in_flight, lease, client_upgrade),
                        Some(served),
                    );
                }
                Attempt::NotSent(unsent) => request = unsent,
                Attempt::Failed(resp) => {
                    let served = Served {
                        backend,
                        upstream_time: None,
                    };
                    return (resp, Some(served));
                }
            }
        }
        (
            self.local(StatusCode::BAD_GATEWAY, "502 Bad Gateway\n"),
            None,
        )
    }

    /// Sends the request to one backend and waits for its response head.
    async fn attempt(
        &self,
        backend: &Arc<Backend>,
        request: Request<RequestBody>,
        body_handle: &BodyHandle,
    ) -> Attempt {
        let in_flight = InFlight::start(backend.clone());
        backend.requests_total.fetch_add(1, Ordering::Relaxed);
        let sent = Instant::now();
        // `--upstream-timeout` is the pool's: see `upstream_pool::Exchange`.
        match self.upstream.send(&backend.endpoint, request, sent).await {
            Ok((resp, lease)) => {
                let head_after = sent.elapsed();
                backend.metrics.latency.observe(head_after.as_secs_f64());
                backend.metrics.by_class[class_index(resp.status().as_u16())].inc();
                self.record_status(backend, resp.status().as_u16());
                Attempt::Answered(resp, lease, in_flight, head_after)
            }
            Err(SendError::NotSent { request, error }) => {
                // Never reached the backend: safe to try the next one.
                backend.record_failure(&self.settings.policy, &error);
                tracing::warn!(backend = %backend.addr, %error, retry = true, "upstream request failed");
                Attempt::NotSent(*request)
            }
            Err(SendError::Failed(e)) => {
                Attempt::Failed(self.failed(backend, &e, body_handle, in_flight))
            }
            Err(SendError::TimedOut) => {
                backend.record_failure(
                    &self.settings.policy,
                    "no response head within --upstream-timeout",
                );
                let status = StatusCode::GATEWAY_TIMEOUT;
                backend.metrics.by_class[class_index(status.as_u16())].inc();
                Attempt::Failed(plain(status, "504 Gateway Timeout\n"))
            }
        }
    }

    /// The answer to an exchange that broke after the request may have left: the client's own
    /// body is to blame (413, 400), or the backend is (502, counted as its failure).
    fn failed(
        &self,
        backend: &Backend,
        e: &hyper::Error,
        body_handle: &BodyHandle,
        in_flight: InFlight,
    ) -> Response<ResponseBody> {
        match body_handle.outcome() {
            RequestBodyOutcome::TooLarge => {
                return self.local(StatusCode::PAYLOAD_TOO_LARGE, "413 Payload Too Large\n")
            }
            RequestBodyOutcome::ClientError => {
                return self.local(
                    StatusCode::BAD_REQUEST,
                    "400 Bad Request: request body broken\n",
                )
            }
            RequestBodyOutcome::Untouched | RequestBodyOutcome::Started => {}
        }
        let what = describe(e);
        backend.record_failure(&self.settings.policy, &what);
        tracing::warn!(backend = %backend.addr, error = %what, retry = false, "upstream request failed");
        drop(in_flight);
        let status = StatusCode::BAD_GATEWAY;
        backend.metrics.by_class[class_index(status.as_u16())].inc();
        plain(status, "502 Bad Gateway\n")
    }

    fn relay(
        &self,
        mut resp: Response<Incoming>,
        in_flight: InFlight,
        lease: Lease,
        client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    ) -> Response<ResponseBody> {
        let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
        let upstream_upgrade = switching.then(|| hyper::upgrade::on(&mut resp));
        let (mut parts, body) = resp.into_parts();
        let upgrade_to = switching
            .then(|| parts.headers.get(header::UPGRADE).cloned())
            .flatten();
        headers::strip_hop_by_hop(&mut parts.headers);
        if switching {
            match (client_upgrade, upstream_upgrade, upgrade_to) {
                (Some(client_side), Some(upstream_side), Some(proto)) => {
                    headers::set_upgrade(&mut parts.headers, proto);
                    // The socket now belongs to the tunnel, never back to the pool.
                    drop(lease);
                    drop(body);
                    upgrade::tunnel(client_side, upstream_side, in_flight);
                    return Response::from_parts(parts, ResponseBody::empty());
                }
                _ => {
                    // A 101 nobody asked for cannot be relayed meaningfully.
                    in_flight
                        .0
                        .record_failure(&self.settings.policy, "unexpected 101 response");
                    return plain(StatusCode::BAD_GATEWAY, "502 Bad Gateway\n");
                }
            }
        }
        Response::from_parts(
            parts,
            ResponseBody::Upstream {
                inner: body,
                in_flight,
                policy: self.settings.policy,
                lease: Some(lease),
                finished: false,
            },
        )
    }
}

/// Why a request was refused before any backend was involved: the status and the text of the
/// balancer's answer.
struct Refused(StatusCode, &'static str);

/// The request rules applied before any backend is involved: no CONNECT, one valid Host (an
/// HTTP/2 `:authority` becomes the Host, in the request and in `found`), an origin-form target,
/// a declared body within `max_body`.
fn check(
    req: &mut Request<Incoming>,
    found: &mut headers::Scan,
    max_body: u64,
) -> Result<(), Refused> {
    if req.method() == Method::CONNECT {
        return Err(Refused(
            StatusCode::METHOD_NOT_ALLOWED,
            "405 Method Not Allowed\n",
        ));
    }
    check_host(req, found)?;
    if req.uri().path_and_query().is_none() && req.uri().authority().is_some() {
        return Err(Refused(StatusCode::BAD_REQUEST, "400 Bad Request\n"));
    }
    if hyper::body::Body::size_hint(req.body())
        .exact()
        .is_some_and(|n| n > max_body)
    {
        return Err(Refused(
            StatusCode::PAYLOAD_TOO_LARGE,
            "413 Payload Too Large\n",
        ));
    }
    Ok(())
}

/// The Host is forwarded verbatim and copied into X-Forwarded-Host, so it must be a plain
/// `host[:port]`: anything else would hand the backend a value it may trust blindly.
fn check_host<B>(req: &mut Request<B>, found: &mut headers::Scan) -> Result<(), Refused> {
    match check_hosts(found.hosts, found.host.as_ref(), req.version()) {
        Ok(()) => {}
        Err(HostProblem::Missing | HostProblem::Repeated) => {
            return Err(Refused(
                StatusCode::BAD_REQUEST,
                "400 Bad Request: exactly one Host header is required\n",
            ))
        }
        Err(HostProblem::Invalid) => {
            return Err(Refused(
                StatusCode::BAD_REQUEST,
                "400 Bad Request: invalid Host header\n",
            ))
        }
    }
    if found.host.is_some() {
        return Ok(());
    }
    // HTTP/2 carries the host in :authority; HTTP/1.0 may have none at all.
    let Some(authority) = req.uri().authority() else {
        return Ok(());
    };
    if !is_valid_host(authority.as_str().as_bytes()) {
        return Err(Refused(
            StatusCode::BAD_REQUEST,
            "400 Bad Request: invalid :authority\n",
        ));
    }
    if let Ok(v) = HeaderValue::from_str(authority.as_str()) {
        req.headers_mut().insert(header::HOST, v.clone());
        found.hosts = 1;
        found.host = Some(v);
    }
    Ok(())
}
