//! A route's policies applied to its requests: the gate before any upstream (`rate_limit` → 429,
//! `allow`/`deny` → 403, `basic_auth` → 401, `forward_auth` → the auth service's refusal or a 503,
//! then `respond`/`redirect`, in that order, so a fixed answer can be protected too and a password
//! guesser is limited before any bcrypt work) and the header rules (`request_headers` on the request the backends get,
//! `response_headers` on every response of the route, the balancer's own included).
//!
//! Owned apart from `proxy/mod.rs` so the request path of a route without policies stays one
//! branch ([`guarded`]), and the rules themselves stay pure in `policy`; only the bcrypt
//! verification leaves the event loop (`spawn_blocking`), as it costs milliseconds.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Body;

use super::response_body::ResponseBody;
use super::{ClientInfo, Proxy};
use crate::policy::answer::{Answer, Redirect, Respond};
use crate::policy::basic_auth::BasicAuth;
use crate::policy::forward_auth::{denial_headers, ForwardAuth, Original};
use crate::policy::RoutePolicy;
use crate::runtime::metrics::class_index;
use crate::upstream::Release;

/// Whether the route has anything to check before its upstream (one branch per request).
#[inline]
pub(super) fn guarded(policy: &RoutePolicy) -> bool {
    policy.access.is_some()
        || policy.basic_auth.is_some()
        || policy.answer.is_some()
        || policy.forward_auth.is_some()
        || policy.rate_limit.is_some()
}

/// What the gate decided.
pub(super) enum Gate<B: Body, L: Release> {
    /// On to the backends, with the headers `forward_auth` granted, if it was asked.
    Pass(Option<http::HeaderMap>),
    /// The balancer's (or the auth service's) answer; no upstream is asked.
    Answer(Response<ResponseBody<B, L>>),
}

impl<U> Proxy<U> {
    /// The answer to a request the route's policies stop (403, 401, the auth service's refusal,
    /// a fixed answer or a redirect), or [`Gate::Pass`] to forward it. `host` is the request's
    /// Host as sent, `id` its request ID.
    pub(super) async fn gate<R, B: Body, L: Release>(
        &self,
        policy: &RoutePolicy,
        req: &Request<R>,
        client: &ClientInfo,
        host: Option<&HeaderValue>,
        id: &HeaderValue,
    ) -> Gate<B, L> {
        if let Some(answer) = self.stop(policy, req, client).await {
            return Gate::Answer(answer);
        }
        let mut granted = None;
        if let Some(auth) = &policy.forward_auth {
            match self.forward_auth(auth, req, client, host, id).await {
                Ok(headers) => granted = Some(headers),
                Err(answer) => return Gate::Answer(answer),
            }
        }
        match &policy.answer {
            None => Gate::Pass(granted),
            Some(Answer::Respond(respond)) => Gate::Answer(self.respond(respond)),
            Some(Answer::Redirect(redirect)) => Gate::Answer(self.redirect(redirect, req, host)),
        }
    }

    /// `allow`/`deny` and `basic_auth`: the 403 or 401 of a request they refuse.
    async fn stop<R, B: Body, L: Release>(
        &self,
        policy: &RoutePolicy,
        req: &Request<R>,
        client: &ClientInfo,
    ) -> Option<Response<ResponseBody<B, L>>> {
        // The client as `--trusted-proxies` decides: a trusted proxy's X-Forwarded-For.
        let who = || self.rules.client(client.peer, req.headers());
        if let Some(limit) = &policy.rate_limit {
            if let Err(retry_after) = limit.check(who()) {
                return Some(self.route_rate_limited(&limit.route, retry_after));
            }
        }
        if let Some(access) = &policy.access {
            if !access.permits(who()) {
                let text = "403 Forbidden: this address may not use this route\n";
                return Some(self.local(StatusCode::FORBIDDEN, text));
            }
        }
        if let Some(auth) = &policy.basic_auth {
            if !authorized(auth, req.headers().get(header::AUTHORIZATION)).await {
                let mut resp = self.local(StatusCode::UNAUTHORIZED, "401 Unauthorized\n");
                resp.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, auth.challenge.clone());
                return Some(resp);
            }
        }
        None
    }

    /// `forward_auth`: the headers a 2xx of the auth service grants, or its refusal as it is,
    /// or a 503 when it gave no usable answer in time.
    async fn forward_auth<R, B: Body, L: Release>(
        &self,
        auth: &ForwardAuth,
        req: &Request<R>,
        client: &ClientInfo,
        host: Option<&HeaderValue>,
        id: &HeaderValue,
    ) -> Result<http::HeaderMap, Response<ResponseBody<B, L>>> {
        let authority = match host {
            None => req
                .uri()
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok()),
            Some(_) => None,
        };
        let original = Original {
            method: req.method(),
            target: req.uri().path_and_query().map_or("/", |p| p.as_str()),
            headers: req.headers(),
            host: host.or(authority.as_ref()),
            proto: &client.proto,
            client_ip: &client.ip,
            trusted_peer: self.rules.trusted.trusts(client.peer),
            request_id: id,
        };
        let answer = match self.auth.ask(auth, auth.request(&original)).await {
            Ok(answer) => answer,
            Err(failed) => {
                tracing::warn!(url = %auth.url, error = %failed.0, "forward auth: no usable answer");
                let text = "503 Service Unavailable: the authentication service did not answer\n";
                return Err(self.local(StatusCode::SERVICE_UNAVAILABLE, text));
            }
        };
        if ForwardAuth::allows(answer.status()) {
            return Ok(auth.granted(answer.headers()));
        }
        let (mut parts, body) = answer.into_parts();
        denial_headers(&mut parts.headers);
        self.metrics.local[class_index(parts.status.as_u16())].inc();
        Err(Response::from_parts(parts, ResponseBody::Fixed(Some(body))))
    }

    /// The 429 of a client over its route's `rate_limit`: the global limiter's answer and
    /// count, and the route's own count (a label lookup paid only by a refused request).
    fn route_rate_limited<B: Body, L: Release>(
        &self,
        route: &str,
        retry_after: u64,
    ) -> Response<ResponseBody<B, L>> {
        self.metrics.routes.rate_limited_on(route).inc();
        self.metrics.traffic.rate_limited.inc();
        let text = "429 Too Many Requests: over this route's rate_limit\n";
        let mut resp = self.local(StatusCode::TOO_MANY_REQUESTS, text);
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        resp
    }

    /// `respond = { status, body }`.
    fn respond<B: Body, L: Release>(&self, respond: &Respond) -> Response<ResponseBody<B, L>> {
        self.metrics.local[class_index(respond.status.as_u16())].inc();
        let mut resp = Response::new(ResponseBody::Fixed(Some(respond.body.clone())));
        *resp.status_mut() = respond.status;
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, respond.content_type.clone());
        resp
    }

    /// `redirect = { to, code }`: the template filled with this request's path and host.
    fn redirect<R, B: Body, L: Release>(
        &self,
        redirect: &Redirect,
        req: &Request<R>,
        host: Option<&HeaderValue>,
    ) -> Response<ResponseBody<B, L>> {
        let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let Some(location) = redirect.location(target, host.map(HeaderValue::as_bytes)) else {
            let text = "400 Bad Request: no Host to redirect to\n";
            return self.local(StatusCode::BAD_REQUEST, text);
        };
        self.metrics.local[class_index(redirect.code.as_u16())].inc();
        let mut resp = Response::new(ResponseBody::Fixed(None::<Bytes>));
        *resp.status_mut() = redirect.code;
        resp.headers_mut().insert(header::LOCATION, location);
        resp
    }
}

/// Whether `authorization` names a user of `auth` with their password; the bcrypt half runs on
/// the blocking pool (a failed join is a refusal).
async fn authorized(auth: &BasicAuth, authorization: Option<&HeaderValue>) -> bool {
    let Some(pending) = auth.lookup(authorization) else {
        return false;
    };
    tokio::task::spawn_blocking(move || pending.finish())
        .await
        .unwrap_or(false)
}
