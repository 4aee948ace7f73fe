//! A checked request on its way to a route: the rate limit and the request rules, the route its
//! host and path take (a counted 404 when none does), the route's policies, and the request
//! prepared for the route's groups.
//!
//! [`Proxy::admit`] does all of it synchronously and says what comes next: an answer of the
//! balancer's own, the route's gate (access control, a fixed answer: async, so boxed by the
//! caller and paid only by routes that have them), or a prepared request ready for the backends.
//! Keeping the common path free of an extra future level is measured: the first version, an
//! `async fn` between `forward` and `try_backends`, cost +2.5 % instructions per request on the
//! flag-only balancer (docs/PERFORMANCE.md, "Routes and the config file").

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, StatusCode};
use hyper::body::Body;

use super::check::check;
use super::forward::{self, Prepared, Served};
use super::gate::{self, Gate};
use super::response_body::compress;
use super::{headers, ClientInfo, Forwarded, Proxy, ProxyResponse};
use crate::policy::compress::{Codec, Compress};
use crate::routes::table::{Route, RouteTable};
use crate::upstream::Upstream;

/// What [`Proxy::admit`] decided.
pub(super) enum Admitted<'t, U: Upstream<B>, B> {
    /// The balancer answers (429, a refused request, no route).
    Answered(Forwarded<U, B>),
    /// The route's gate decides first (`allow`/`deny`, `basic_auth`, `forward_auth`, `respond`,
    /// `redirect`).
    Guarded(&'t Route<U>, Request<B>, headers::Scan),
    /// Ready for the route's groups.
    Ready(&'t Route<U>, Ready<'t, B>),
}

/// A request prepared for a route's groups, with the coding its response gets, if any.
pub(super) struct Ready<'t, B> {
    pub(super) prepared: Prepared<B>,
    pub(super) coding: Option<(&'t Compress, Codec)>,
}

impl<U> Proxy<U> {
    /// The rate limit, the request rules and the route; see the module doc.
    pub(super) fn admit<'t, B>(
        &self,
        mut req: Request<B>,
        client: &ClientInfo,
        id: &HeaderValue,
        mut found: headers::Scan,
        table: &'t RouteTable<U>,
    ) -> Admitted<'t, U, B>
    where
        U: Upstream<B>,
        B: Body<Data = Bytes> + Send + 'static,
    {
        if let Err(retry_after) = self.rules.rate_check(client.peer, req.headers()) {
            return Admitted::Answered(Forwarded::local(self.rate_limited(retry_after)));
        }
        if let Err(refused) = check(&mut req, &mut found, self.max_body) {
            return Admitted::Answered(Forwarded::local(self.refuse(refused)));
        }
        // Without a host rule the Host header is never looked at (the flag-only balancer).
        let host = match (&found.host, table.needs_host()) {
            (Some(host), true) => Some(host.as_bytes()),
            _ => None,
        };
        let Some(route) = table.find(host, req.uri().path()) else {
            self.metrics.routes.not_found.inc();
            let text = "404 Not Found: no route for this host and path\n";
            return Admitted::Answered(Forwarded::local(self.local(StatusCode::NOT_FOUND, text)));
        };
        route.requests.inc();
        if gate::guarded(&route.spec.policy) {
            return Admitted::Guarded(route, req, found);
        }
        Admitted::Ready(route, self.ready(route, req, client, id, found))
    }

    /// The request rewritten for the route's backends: its prefix stripped when the route says
    /// so, its header rules applied, the coding its response gets chosen.
    fn ready<'t, B: Body>(
        &self,
        route: &'t Route<U>,
        req: Request<B>,
        client: &ClientInfo,
        id: &HeaderValue,
        found: headers::Scan,
    ) -> Ready<'t, B> {
        let policy = &route.spec.policy;
        // `compress`: the coding this client gets, if any (one branch on a route without it).
        let coding = policy.compress.as_ref().and_then(|c| {
            let accept = req.headers().get(header::ACCEPT_ENCODING);
            let head = req.method() == http::Method::HEAD;
            Some((c, c.choose(head, accept.map(HeaderValue::as_bytes))?))
        });
        let strip = route.spec.strip_prefix.then_some(&route.spec.rule.path);
        let mut prepared = forward::prepare(req, client, id, found, self.max_body, strip);
        if let Some(rules) = &policy.request_headers {
            rules.apply(prepared.headers_mut());
        }
        Ready { prepared, coding }
    }

    /// A route with a gate: its answer, or the request on to the backends like any other.
    pub(super) async fn guarded<B>(
        &self,
        route: &Route<U>,
        req: Request<B>,
        client: &ClientInfo,
        id: &HeaderValue,
        found: headers::Scan,
    ) -> Forwarded<U, B>
    where
        U: Upstream<B>,
        B: Body<Data = Bytes> + Send + 'static,
    {
        let policy = &route.spec.policy;
        let granted = match self
            .gate(policy, &req, client, found.host.as_ref(), id)
            .await
        {
            Gate::Answer(response) => return self.finish(route, None, response, None),
            Gate::Pass(granted) => granted,
        };
        let mut ready = self.ready(route, req, client, id, found);
        if let (Some(auth), Some(granted)) = (&policy.forward_auth, &granted) {
            // After the client's headers were prepared: those named in `copy_headers` go first.
            auth.apply(granted, ready.prepared.headers_mut());
        }
        let (response, served) = self.try_backends(route, ready.prepared).await;
        self.finish(route, ready.coding, response, served)
    }

    /// The route's answer to the client: its response header rules and coding applied, its name
    /// kept for the access line.
    pub(super) fn finish<B>(
        &self,
        route: &Route<U>,
        coding: Option<(&Compress, Codec)>,
        mut response: ProxyResponse<U, B>,
        served: Option<Served>,
    ) -> Forwarded<U, B>
    where
        U: Upstream<B>,
    {
        if let Some(rules) = &route.spec.policy.response_headers {
            rules.apply(response.headers_mut());
        }
        if let Some((settings, codec)) = coding {
            response = compress::wrap(response, codec, settings, &self.metrics.compression);
        }
        Forwarded {
            response,
            served,
            // Only the access line needs it: no reference count taken otherwise.
            route: self
                .access_log
                .enabled()
                .then(|| Arc::clone(&route.spec.name)),
        }
    }
}
