//! The exchange with a route's forward-auth service (`policy::forward_auth` says what to ask and
//! what the answer means): one worker's pooled HTTP/1.1 client to the auth services (hyper-util's,
//! which resolves the URL's host name and keeps connections alive per host), the route's
//! `timeout` on the whole exchange (connecting, the answer's head and its body), and the answer's
//! body read whole but bounded ([`MAX_ANSWER_BODY`]), since a refusal is relayed as it is.
//!
//! Apart from `upstream`, whose pools know only fixed backend addresses and stream bodies through;
//! an auth answer is small, read whole, and its service is named by a URL.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::describe;
use crate::policy::forward_auth::{ForwardAuth, MAX_ANSWER_BODY};

/// Idle keep-alive connections to an auth service are closed after this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle connections kept per auth service, per worker.
const MAX_IDLE: usize = 32;

/// One worker's client to the auth services (connections are opened, driven and reused by the
/// worker that asks).
pub(super) struct AuthClient {
    client: Client<HttpConnector, Empty<Bytes>>,
}

/// Why no usable answer came: the text of the warning logged (never the request's headers).
pub(super) struct AuthFailed(pub(super) String);

impl AuthClient {
    pub(super) fn new() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(IDLE_TIMEOUT)
            .pool_max_idle_per_host(MAX_IDLE)
            .pool_timer(TokioTimer::new())
            .build(connector);
        AuthClient { client }
    }

    /// Sends `request` (built by [`ForwardAuth::request`]) and reads the answer, within `auth`'s
    /// timeout; an informational answer (1xx) is no answer.
    pub(super) async fn ask(
        &self,
        auth: &ForwardAuth,
        request: Request<()>,
    ) -> Result<Response<Bytes>, AuthFailed> {
        let exchange = async {
            let answer = self
                .client
                .request(request.map(|()| Empty::new()))
                .await
                .map_err(|e| AuthFailed(describe(&e)))?;
            if answer.status().is_informational() {
                let status = answer.status();
                return Err(AuthFailed(format!("answered {status}")));
            }
            let (parts, body) = answer.into_parts();
            let body = Limited::new(body, MAX_ANSWER_BODY)
                .collect()
                .await
                .map_err(|e| AuthFailed(format!("answer body: {e}")))?
                .to_bytes();
            Ok(Response::from_parts(parts, body))
        };
        match tokio::time::timeout(auth.timeout, exchange).await {
            Ok(answered) => answered,
            Err(_) => Err(AuthFailed(format!(
                "no answer within {}",
                shared::duration::format(&auth.timeout)
            ))),
        }
    }
}
