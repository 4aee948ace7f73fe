//! A route's policies applied to its requests: the gate before any upstream (`rate_limit` → 429,
//! `allow`/`deny` → 403, `basic_auth` → 401, then `respond`/`redirect`, in that order, so a fixed
//! answer can be protected too and a password guesser is limited before any bcrypt work) and the header rules (`request_headers` on the request the backends get,
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
use crate::policy::RoutePolicy;
use crate::runtime::metrics::class_index;
use crate::upstream::Release;

/// Whether the route has anything to check before its upstream (one branch per request).
#[inline]
pub(super) fn guarded(policy: &RoutePolicy) -> bool {
    policy.access.is_some()
        || policy.basic_auth.is_some()
        || policy.answer.is_some()
        || policy.rate_limit.is_some()
}

impl<U> Proxy<U> {
    /// The balancer's own answer to a request the route's policies stop (403, 401, a fixed
    /// answer or a redirect), or `None` to forward it. `host` is the request's Host as sent.
    pub(super) async fn gate<R, B: Body, L: Release>(
        &self,
        policy: &RoutePolicy,
        req: &Request<R>,
        client: &ClientInfo,
        host: Option<&HeaderValue>,
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
        match &policy.answer {
            None => None,
            Some(Answer::Respond(respond)) => Some(self.respond(respond)),
            Some(Answer::Redirect(redirect)) => Some(self.redirect(redirect, req, host)),
        }
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
