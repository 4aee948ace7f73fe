//! A checked request on its way to the backends and back: rewritten for them ([`prepare`]), tried
//! on the group's backends in selection order until one answers (a retry only when the request
//! provably never left), and the answer relayed: streamed, upgraded to a tunnel after a 101, or
//! turned into the balancer's own 413/400/502/504 when the exchange broke.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::body::Body;

use super::response_body::ResponseBody;
use super::{describe, headers, plain, upgrade, ClientInfo, Proxy, ProxyResponse};
use crate::backends::backend::{Backend, InFlight};
use crate::backends::group::UpstreamGroup;
use crate::backends::health::HealthPolicy;
use crate::routes::matcher::PathPrefix;
use crate::routes::table::Route;
use crate::runtime::clock::now_ms;
use crate::runtime::metrics::class_index;
use crate::upstream::request_body::{BodyHandle, RequestBody, RequestBodyOutcome};
use crate::upstream::{BoxError, SendError, Upstream, UpstreamProtocol};

use super::request_id::X_REQUEST_ID;

/// A checked request rewritten for the backends, with what the retry loop and the relay need.
pub(super) struct Prepared<B> {
    request: Request<RequestBody<B>>,
    body_handle: BodyHandle,
    /// The client named no host: each backend gets its upstream name as Host.
    host_missing: bool,
    /// The client's side of a requested upgrade (`Connection: upgrade` on HTTP/1.1).
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    /// A lone `TE: trailers` was kept: only an HTTP/2 backend may see it.
    te_trailers: bool,
}

/// The backend a request went to, for the access log.
pub(super) struct Served {
    pub(super) backend: Arc<Backend>,
    /// From sending the request to the response head; `None` when the exchange broke.
    pub(super) upstream_time: Option<Duration>,
}

/// How one attempt on one backend ended.
enum Attempt<R: Body, L: crate::upstream::Release, B> {
    /// A response head arrived, this long after the request was sent.
    Answered(Response<R>, L, InFlight, Duration),
    /// The request never reached the backend; here it is back for the next one.
    NotSent(Request<RequestBody<B>>),
    /// The exchange broke or timed out; this is the client's answer.
    Failed(Response<ResponseBody<R, L>>),
}

/// Rewrites a checked request for the backends: hop-by-hop headers out, forwarding headers in,
/// an upgrade kept only when asked for, an origin-form HTTP/1.1 request with a limited body, the
/// route's prefix taken off when it says `strip_prefix` (`strip`). `found` is the request's
/// [`headers::scan`], with the Host check settled.
pub(super) fn prepare<B: Body>(
    mut req: Request<B>,
    client: &ClientInfo,
    id: &HeaderValue,
    found: headers::Scan,
    max_body: u64,
    strip: Option<&PathPrefix>,
) -> Prepared<B> {
    let upgrade_to = if found.connection && req.version() == Version::HTTP_11 {
        headers::upgrade_protocol(req.headers())
    } else {
        None
    };
    let client_upgrade = upgrade_to.as_ref().map(|_| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    let te_trailers = found.te_trailers();
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
    if let Some(prefix) = strip {
        parts.uri = stripped(&parts.uri, prefix);
    }
    parts.version = Version::HTTP_11;
    let (body, body_handle) = RequestBody::new(body, max_body);
    Prepared {
        request: Request::from_parts(parts, body),
        body_handle,
        host_missing,
        client_upgrade,
        te_trailers,
    }
}

impl<B> Prepared<B> {
    /// The headers the backends get, for a route's `request_headers` (see `gate`).
    pub(super) fn headers_mut(&mut self) -> &mut http::HeaderMap {
        self.request.headers_mut()
    }
}

/// `uri` (origin-form) with `prefix` taken off its path, the query kept: `/api/x?q` → `/x?q`.
fn stripped(uri: &Uri, prefix: &PathPrefix) -> Uri {
    let rest = prefix.strip(uri.path());
    let target = match uri.query() {
        Some(query) => format!("{rest}?{query}"),
        None => rest.to_owned(),
    };
    // The rest of a valid path and its valid query form a valid target.
    PathAndQuery::try_from(target).map_or_else(|_| uri.clone(), Uri::from)
}

impl<U> Proxy<U> {
    /// Picks the route's group (a split's next pick; the next group when that one knows no
    /// backend) and tries its backends in selection order until one answers; moves on only when
    /// the request provably never reached the last one.
    pub(super) async fn try_backends<B>(
        &self,
        route: &Route<U>,
        prepared: Prepared<B>,
    ) -> (ProxyResponse<U, B>, Option<Served>)
    where
        U: Upstream<B>,
        B: Body<Data = Bytes> + Send + 'static,
    {
        let Prepared {
            mut request,
            body_handle,
            host_missing,
            client_upgrade,
            te_trailers,
        } = prepared;
        let now = now_ms();
        let chosen = route
            .groups_in_order()
            .map(|group| (group, group.attempts_for(now, request.headers())))
            .find(|(_, (attempts, _))| !attempts.is_empty());
        let Some((group, (attempts, pin))) = chosen else {
            let text = "503 Service Unavailable: no backend is known yet\n";
            return (self.local(StatusCode::SERVICE_UNAVAILABLE, text), None);
        };
        // TE is hop-by-hop on HTTP/1.1 (an upgrade always goes over HTTP/1.1).
        let http1 = group.settings().connections.protocol == UpstreamProtocol::Http1;
        if te_trailers && (http1 || client_upgrade.is_some()) {
            request.headers_mut().remove(header::TE);
        }
        // `Secure` on a sticky cookie: the client came over TLS (the balancer set this header).
        let secure = pin.is_some()
            && request
                .headers()
                .get(&headers::X_FORWARDED_PROTO)
                .is_some_and(|p| p.as_bytes() == b"https");
        for (tried, backend) in attempts.enumerate() {
            if host_missing {
                request
                    .headers_mut()
                    .insert(header::HOST, backend.host_header.clone());
            }
            if tried > 0 {
                self.metrics.retries.inc();
            }
            match self.attempt(group, &backend, request, &body_handle).await {
                Attempt::Answered(mut resp, lease, in_flight, head_after) => {
                    if let Some(pin) = &pin {
                        pin.stamp(&backend, resp.headers_mut(), secure);
                    }
                    let resp = self.relay(resp, in_flight, lease, client_upgrade, group.policy());
                    return (resp, Some(Served::by(backend, Some(head_after))));
                }
                Attempt::NotSent(unsent) => request = unsent,
                Attempt::Failed(resp) => return (resp, Some(Served::by(backend, None))),
            }
        }
        (
            self.local(StatusCode::BAD_GATEWAY, "502 Bad Gateway\n"),
            None,
        )
    }

    /// Sends the request to one backend and waits for its response head.
    async fn attempt<B>(
        &self,
        group: &UpstreamGroup<U>,
        backend: &Arc<Backend>,
        request: Request<RequestBody<B>>,
        body_handle: &BodyHandle,
    ) -> Attempt<U::Body, U::Lease, B>
    where
        U: Upstream<B>,
    {
        let in_flight = InFlight::start(backend.clone());
        backend.requests_total.fetch_add(1, Ordering::Relaxed);
        let sent = Instant::now();
        let policy = group.policy();
        let upstream = group.pool(self.worker);
        // `--upstream-timeout` is the upstream's: see `upstream::http1`.
        match upstream.send(&backend.endpoint, request, sent).await {
            Ok((resp, lease)) => {
                let head_after = sent.elapsed();
                backend.metrics.latency.observe(head_after.as_secs_f64());
                backend.metrics.by_class[class_index(resp.status().as_u16())].inc();
                group.record_status(backend, resp.status().as_u16());
                Attempt::Answered(resp, lease, in_flight, head_after)
            }
            Err(SendError::NotSent { request, error }) => {
                // Never reached the backend: safe to try the next one.
                backend.record_failure(&policy, &error);
                tracing::warn!(backend = %backend.addr, %error, retry = true, "upstream request failed");
                Attempt::NotSent(*request)
            }
            Err(SendError::Failed(e)) => {
                Attempt::Failed(self.failed(backend, e, body_handle, in_flight, &policy))
            }
            Err(SendError::TimedOut) => {
                backend.record_failure(&policy, "no response head within --upstream-timeout");
                let status = StatusCode::GATEWAY_TIMEOUT;
                backend.metrics.by_class[class_index(status.as_u16())].inc();
                Attempt::Failed(plain(status, "504 Gateway Timeout\n"))
            }
        }
    }

    /// The answer to an exchange that broke after the request may have left: the client's own
    /// body is to blame (413, 400), or the backend is (502, counted as its failure).
    fn failed<R: Body, L: crate::upstream::Release>(
        &self,
        backend: &Backend,
        e: BoxError,
        body_handle: &BodyHandle,
        in_flight: InFlight,
        policy: &HealthPolicy,
    ) -> Response<ResponseBody<R, L>> {
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
        let what = describe(&*e);
        backend.record_failure(policy, &what);
        tracing::warn!(backend = %backend.addr, error = %what, retry = false, "upstream request failed");
        drop(in_flight);
        let status = StatusCode::BAD_GATEWAY;
        backend.metrics.by_class[class_index(status.as_u16())].inc();
        plain(status, "502 Bad Gateway\n")
    }

    /// The backend's response to the client: hop-by-hop headers out, the body streamed with the
    /// lease released at its end, or a tunnel after a 101 both sides asked for.
    fn relay<R: Body, L: crate::upstream::Release>(
        &self,
        mut resp: Response<R>,
        in_flight: InFlight,
        lease: L,
        client_upgrade: Option<hyper::upgrade::OnUpgrade>,
        policy: HealthPolicy,
    ) -> Response<ResponseBody<R, L>> {
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
                        .record_failure(&policy, "unexpected 101 response");
                    return plain(StatusCode::BAD_GATEWAY, "502 Bad Gateway\n");
                }
            }
        }
        Response::from_parts(
            parts,
            ResponseBody::Upstream {
                inner: body,
                in_flight,
                policy,
                lease: Some(lease),
                finished: false,
            },
        )
    }
}

impl Served {
    fn by(backend: Arc<Backend>, upstream_time: Option<Duration>) -> Self {
        Served {
            backend,
            upstream_time,
        }
    }
}
