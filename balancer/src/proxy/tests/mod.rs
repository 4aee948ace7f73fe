//! The proxy's rules without a socket: in-memory requests through a real [`Proxy`] and a real
//! [`UpstreamGroup`], against an in-process [`Upstream`] whose backends follow a script (answer,
//! refuse the connection, break after sending, time out). Each test runs in milliseconds; the
//! same rules are checked end to end over TCP by the `e2e` crate.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Body, Frame};

use super::{ClientInfo, Proxy};
use crate::access_log::{AccessLog, Format};
use crate::backends::discovery::UpstreamName;
use crate::backends::group::{GroupSettings, UpstreamGroup};
use crate::backends::health::HealthPolicy;
use crate::backends::probe::{HealthCheck, Probe};
use crate::backends::selection::Balance;
use crate::routes::matcher::{HostPattern, PathPrefix, Rule};
use crate::routes::table::RouteTable;
use crate::routes::{RouteSpec, TargetSpec};
use crate::runtime::metrics::Metrics;
use crate::traffic::rate_limit::{parse_rate, Limiter};
use crate::traffic::trusted_proxies::parse_trusted_proxies;
use crate::traffic::TrafficRules;
use crate::upstream::{
    BoxError, Endpoint, SendError, SendResult, Upstream, UpstreamProtocol, UpstreamSettings,
};

/// What a scripted backend does with every request it gets.
#[derive(Clone, Copy)]
enum Script {
    /// Reads the whole body, then answers with this status and text.
    Answer(u16, &'static str),
    /// Refuses the connection: the request comes back unsent.
    Refuse,
    /// Takes the request, then the exchange breaks: it may have been processed.
    Break,
    /// Takes the request and sends no response head within the upstream timeout.
    TimeOut,
}

/// A request as a backend received it.
struct Seen {
    backend: SocketAddr,
    method: Method,
    uri: String,
    version: Version,
    headers: HeaderMap,
    body: Bytes,
}

/// The in-process upstream: one [`Script`] per backend address, and every request a backend got.
#[derive(Clone, Default)]
struct Scripted {
    scripts: Arc<Mutex<HashMap<SocketAddr, Script>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Scripted {
    fn seen(&self) -> std::sync::MutexGuard<'_, Vec<Seen>> {
        shared::sync::lock(&self.seen)
    }
}

impl<B> Upstream<B> for Scripted
where
    B: Body<Data = Bytes, Error: Into<BoxError>> + Send + Unpin + 'static,
{
    type Body = Full<Bytes>;
    type Lease = ();

    async fn send(
        &self,
        endpoint: &Arc<Endpoint>,
        request: Request<crate::upstream::request_body::RequestBody<B>>,
        _now: Instant,
    ) -> SendResult<Full<Bytes>, (), B> {
        let backend = endpoint.addr;
        let script = shared::sync::lock(&self.scripts).get(&backend).copied();
        let (status, text) = match script {
            Some(Script::Answer(status, text)) => (status, text),
            Some(Script::Refuse) | None => {
                return Err(SendError::NotSent {
                    request: Box::new(request),
                    error: format!("connect to {backend}: connection refused"),
                })
            }
            Some(Script::Break) => return Err(SendError::Failed("connection reset".into())),
            Some(Script::TimeOut) => return Err(SendError::TimedOut),
        };
        let (parts, body) = request.into_parts();
        let body = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) => return Err(SendError::Failed(Box::new(e))),
        };
        self.seen().push(Seen {
            backend,
            method: parts.method,
            uri: parts.uri.to_string(),
            version: parts.version,
            headers: parts.headers,
            body,
        });
        let mut resp = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
        *resp.status_mut() =
            StatusCode::from_u16(status).map_err(|e| SendError::Failed(e.into()))?;
        Ok((resp, ()))
    }
}

/// A proxy in front of one scripted backend per entry of `scripts`, all healthy, with
/// `--max-body` `max_body` and the given traffic rules.
struct Harness {
    proxy: Arc<Proxy<Scripted>>,
    upstream: Scripted,
    backends: Vec<SocketAddr>,
    metrics: Arc<Metrics>,
}

async fn harness(scripts: &[Script], max_body: u64, rules: TrafficRules) -> Harness {
    let route = route("default", None, "/", &[("default", 1)], false);
    routed(&[("default", scripts)], &[route], max_body, rules).await
}

/// A route to `targets` (group name, weight).
fn route(
    name: &str,
    host: Option<&str>,
    path: &str,
    targets: &[(&str, u32)],
    strip_prefix: bool,
) -> RouteSpec {
    RouteSpec {
        name: name.into(),
        rule: Rule {
            host: host.map_or(HostPattern::Any, |h| HostPattern::parse(h).unwrap()),
            path: PathPrefix::parse(path).unwrap(),
        },
        targets: targets
            .iter()
            .map(|&(g, weight)| TargetSpec {
                upstream: g.into(),
                weight,
            })
            .collect(),
        strip_prefix,
        policy: Default::default(),
    }
}

/// A proxy with `routes` over `groups`, each a name and one scripted backend per script (the
/// backends numbered on from 127.0.0.1:10001 across the groups), all healthy.
async fn routed(
    groups: &[(&str, &[Script])],
    routes: &[RouteSpec],
    max_body: u64,
    rules: TrafficRules,
) -> Harness {
    routed_with(groups, routes, max_body, rules, None).await
}

/// [`routed`] with every group's `sticky` set to `sticky`.
async fn routed_with(
    groups: &[(&str, &[Script])],
    routes: &[RouteSpec],
    max_body: u64,
    rules: TrafficRules,
    sticky: Option<crate::backends::sticky::StickyCookie>,
) -> Harness {
    let upstream = Scripted::default();
    let metrics = Arc::new(Metrics::new());
    let mut backends = Vec::new();
    let mut built = Vec::new();
    for (name, scripts) in groups {
        let first = 10_001 + backends.len() as u16;
        let addrs: Vec<SocketAddr> = (0..scripts.len())
            .map(|i| SocketAddr::from(([127, 0, 0, 1], first + i as u16)))
            .collect();
        shared::sync::lock(&upstream.scripts)
            .extend(addrs.iter().copied().zip(scripts.iter().copied()));
        let pools = vec![upstream.clone()];
        let settings = GroupSettings {
            sticky: sticky.clone(),
            ..settings(&addrs)
        };
        let group = UpstreamGroup::with_pools((*name).into(), settings, metrics.clone(), pools);
        // Numeric names resolve without a network; every backend then passes a probe.
        group.discovery.resolve_all().await;
        for backend in group.backends.snapshot().iter() {
            backend.health.record_probe(Ok(()));
        }
        backends.extend(addrs);
        built.push(group);
    }
    let table = RouteTable::new(routes, &built, &metrics.routes).unwrap();
    let log = match AccessLog::start(Format::Off) {
        Ok((log, _guard)) => log.worker(),
        Err(e) => panic!("access log: {e}"),
    };
    let proxy = Proxy::new(
        Arc::new(arc_swap::ArcSwap::from_pointee(table)),
        0,
        max_body,
        metrics.clone(),
        log,
        Arc::new(rules),
    );
    Harness {
        proxy: Arc::new(proxy),
        upstream,
        backends,
        metrics,
    }
}

fn settings(backends: &[SocketAddr]) -> GroupSettings {
    let connect_timeout = Duration::from_secs(1);
    GroupSettings {
        names: backends
            .iter()
            .map(|a| UpstreamName {
                host: a.ip().to_string(),
                port: a.port(),
            })
            .collect(),
        resolve_interval: Duration::from_secs(60),
        probe: Probe {
            check: HealthCheck::Http,
            path: Arc::from("/health"),
            interval: Duration::from_secs(60),
            connect_timeout,
            protocol: UpstreamProtocol::Http1,
        },
        policy: HealthPolicy {
            max_fails: 1,
            fail_timeout: Duration::from_secs(10),
        },
        balance: Balance::RoundRobin,
        slow_start: Duration::ZERO,
        max_5xx: 0,
        connections: UpstreamSettings {
            connect_timeout,
            upstream_timeout: Duration::from_secs(1),
            max_idle: 4,
            protocol: UpstreamProtocol::Http1,
            keep_alive: Duration::from_secs(60),
            stray_quarantine: Duration::from_secs(60),
        },
        sticky: None,
    }
}

fn no_rules() -> TrafficRules {
    TrafficRules {
        limiter: None,
        trusted: parse_trusted_proxies("").unwrap_or_else(|e| panic!("{e}")),
    }
}

const CLIENT: &str = "192.0.2.7:40000";

/// Sends `req` from [`CLIENT`] and returns the status, headers and body text of the answer.
async fn send<B>(h: &Harness, req: Request<B>) -> (StatusCode, HeaderMap, String)
where
    B: Body<Data = Bytes, Error: Into<BoxError>> + Send + Unpin + 'static,
{
    let client = Arc::new(ClientInfo::new(CLIENT.parse().unwrap()));
    let Ok(resp) = h.proxy.clone().handle(req, client).await;
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

fn get(path: &str) -> http::request::Builder {
    Request::get(path).header("host", "example.test")
}

fn empty() -> Full<Bytes> {
    Full::new(Bytes::new())
}

#[tokio::test]
async fn a_request_reaches_a_backend_with_forwarding_headers_and_an_id() {
    let h = harness(&[Script::Answer(200, "hello")], 1 << 20, no_rules()).await;
    let req = get("/count?x=1")
        .header("x-forwarded-for", "203.0.113.9")
        .body(empty())
        .unwrap();
    let (status, headers, body) = send(&h, req).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hello"));
    let id = headers
        .get("x-request-id")
        .expect("the answer carries an ID");
    let seen = h.upstream.seen();
    let s = &seen[0];
    assert_eq!(
        (s.method.clone(), s.uri.as_str()),
        (Method::GET, "/count?x=1")
    );
    assert_eq!(s.version, Version::HTTP_11);
    assert_eq!(s.headers["host"], "example.test");
    assert_eq!(s.headers["x-forwarded-for"], "203.0.113.9, 192.0.2.7");
    assert_eq!(s.headers["x-forwarded-proto"], "http");
    assert_eq!(s.headers["x-forwarded-host"], "example.test");
    assert_eq!(
        &s.headers["x-request-id"], id,
        "the backend sees the same ID"
    );
}

#[tokio::test]
async fn a_valid_client_request_id_is_kept_an_invalid_one_replaced() {
    let h = harness(&[Script::Answer(200, "ok")], 1 << 20, no_rules()).await;
    let kept = get("/")
        .header("x-request-id", "abc-123")
        .body(empty())
        .unwrap();
    assert_eq!(send(&h, kept).await.1["x-request-id"], "abc-123");
    let bad = get("/")
        .header("x-request-id", "a b")
        .body(empty())
        .unwrap();
    let replaced = send(&h, bad).await.1;
    assert_ne!(replaced["x-request-id"], "a b");
    assert!(!replaced["x-request-id"].is_empty());
}

#[tokio::test]
async fn host_rules_refuse_before_any_backend_is_involved() {
    let h = harness(&[Script::Answer(200, "ok")], 1 << 20, no_rules()).await;
    let none = Request::get("/").body(empty()).unwrap();
    let two = Request::get("/")
        .header("host", "a.test")
        .header("host", "b.test")
        .body(empty())
        .unwrap();
    let bad = Request::get("/")
        .header("host", "a.test/evil")
        .body(empty())
        .unwrap();
    for (req, text) in [
        (none, "exactly one Host"),
        (two, "exactly one Host"),
        (bad, "invalid Host"),
    ] {
        let (status, headers, body) = send(&h, req).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body.contains(text), "{body}");
        assert!(
            headers.contains_key("x-request-id"),
            "refusals carry an ID too"
        );
    }
    assert!(
        h.upstream.seen().is_empty(),
        "no backend saw a refused request"
    );
}

#[tokio::test]
async fn http2_authority_becomes_the_host_and_http10_gets_the_upstream_name() {
    let h = harness(&[Script::Answer(200, "ok")], 1 << 20, no_rules()).await;
    let h2 = Request::get("http://app.test:8080/p")
        .version(Version::HTTP_2)
        .body(empty())
        .unwrap();
    assert_eq!(send(&h, h2).await.0, StatusCode::OK);
    let h10 = Request::get("/old")
        .version(Version::HTTP_10)
        .body(empty())
        .unwrap();
    assert_eq!(send(&h, h10).await.0, StatusCode::OK);
    let seen = h.upstream.seen();
    assert_eq!(seen[0].uri, "/p", "backends get origin-form");
    assert_eq!(seen[0].headers["host"], "app.test:8080");
    assert_eq!(seen[1].headers["host"], h.backends[0].to_string().as_str());
}

#[tokio::test]
async fn connect_is_refused_with_allow() {
    let h = harness(&[Script::Answer(200, "ok")], 1 << 20, no_rules()).await;
    let req = Request::connect("example.test:443")
        .header("host", "example.test:443")
        .body(empty())
        .unwrap();
    let (status, headers, _) = send(&h, req).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(headers["allow"].to_str().unwrap().contains("GET"));
}

#[tokio::test]
async fn hop_by_hop_headers_never_reach_the_backend() {
    let h = harness(&[Script::Answer(200, "ok")], 1 << 20, no_rules()).await;
    let req = get("/")
        .header("connection", "x-secret, keep-alive")
        .header("x-secret", "1")
        .header("keep-alive", "timeout=5")
        .header("te", "gzip")
        .header("x-kept", "2")
        .body(empty())
        .unwrap();
    assert_eq!(send(&h, req).await.0, StatusCode::OK);
    let seen = h.upstream.seen();
    for gone in ["connection", "x-secret", "keep-alive", "te"] {
        assert!(!seen[0].headers.contains_key(gone), "{gone} was forwarded");
    }
    assert_eq!(seen[0].headers["x-kept"], "2");
}

#[tokio::test]
async fn a_declared_body_over_the_limit_is_413_before_sending() {
    let h = harness(&[Script::Answer(200, "ok")], 8, no_rules()).await;
    let req = Request::post("/")
        .header("host", "example.test")
        .body(Full::new(Bytes::from_static(b"nine bytes")))
        .unwrap();
    let (status, _, body) = send(&h, req).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(h.upstream.seen().is_empty());
}

/// A body of unknown length, in chunks.
fn chunked(
    chunks: &'static [&'static [u8]],
) -> impl Body<Data = Bytes, Error: Into<BoxError>> + Unpin {
    let frames = chunks
        .iter()
        .map(|c| Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from_static(c))));
    StreamBody::new(futures_util::stream::iter(frames))
}

#[tokio::test]
async fn a_streamed_body_over_the_limit_is_413_and_the_backend_not_blamed() {
    let h = harness(&[Script::Answer(200, "ok")], 8, no_rules()).await;
    let req = Request::post("/")
        .header("host", "example.test")
        .body(chunked(&[b"12345", b"67890"]))
        .unwrap();
    let (status, _, body) = send(&h, req).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    let within = Request::post("/")
        .header("host", "example.test")
        .body(chunked(&[b"1234", b"5678"]))
        .unwrap();
    assert_eq!(
        send(&h, within).await.0,
        StatusCode::OK,
        "the backend is still in"
    );
    assert_eq!(&h.upstream.seen()[0].body[..], b"12345678");
}

/// The first backend fails with `first`; the second would answer "second". Returns the
/// client's status and body, the backends that received the request, and the retries counted.
async fn first_fails(first: Script) -> (StatusCode, String, Vec<SocketAddr>, u64) {
    let h = harness(&[first, Script::Answer(200, "second")], 1 << 20, no_rules()).await;
    let (status, _, body) = send(&h, get("/").body(empty()).unwrap()).await;
    let reached = h.upstream.seen().iter().map(|s| s.backend).collect();
    (status, body, reached, h.metrics.retries.get())
}

#[tokio::test]
async fn a_request_that_never_left_is_retried_on_the_next_backend() {
    let (status, body, reached, retries) = first_fails(Script::Refuse).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "second"));
    assert_eq!(reached, [SocketAddr::from(([127, 0, 0, 1], 10_002))]);
    assert_eq!(retries, 1);
}

#[tokio::test]
async fn a_request_that_may_have_been_processed_is_never_retried() {
    for (first, answer) in [
        (
            Script::Break,
            (StatusCode::BAD_GATEWAY, "502 Bad Gateway\n"),
        ),
        (
            Script::TimeOut,
            (StatusCode::GATEWAY_TIMEOUT, "504 Gateway Timeout\n"),
        ),
    ] {
        let (status, body, reached, retries) = first_fails(first).await;
        assert_eq!((status, body.as_str()), answer);
        assert!(reached.is_empty(), "no second attempt after {answer:?}");
        assert_eq!(retries, 0);
    }
}

#[tokio::test]
async fn every_backend_refusing_is_502_and_none_known_is_503() {
    let h = harness(&[Script::Refuse, Script::Refuse], 1 << 20, no_rules()).await;
    let (status, _, body) = send(&h, get("/").body(empty()).unwrap()).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::BAD_GATEWAY, "502 Bad Gateway\n")
    );
    let empty_group = harness(&[], 1 << 20, no_rules()).await;
    let (status, headers, body) = send(&empty_group, get("/").body(empty()).unwrap()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
}

#[tokio::test]
async fn a_client_over_the_rate_limit_gets_429_with_retry_after() {
    let rate = parse_rate("1/m").unwrap_or_else(|e| panic!("{e}"));
    let rules = TrafficRules {
        limiter: Some(Limiter::new(rate, Some(1), 16, Default::default())),
        ..no_rules()
    };
    let h = harness(&[Script::Answer(200, "ok")], 1 << 20, rules).await;
    assert_eq!(
        send(&h, get("/").body(empty()).unwrap()).await.0,
        StatusCode::OK
    );
    let (status, headers, body) = send(&h, get("/").body(empty()).unwrap()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    assert_eq!(
        h.upstream.seen().len(),
        1,
        "the limited request was not forwarded"
    );
    assert_eq!(h.metrics.traffic.rate_limited.get(), 1);
}

mod policies;
mod routing;
mod sticky;
