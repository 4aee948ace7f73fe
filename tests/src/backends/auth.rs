//! The forward-auth service: a small real HTTP server standing in for Authelia or oauth2-proxy
//! behind a balancer's `forward_auth`. It records every request it is asked (the `X-Forwarded-*`
//! headers, cookies, `Authorization`) and answers what the test's `decide` says: a status, headers
//! (`Location`, `Set-Cookie`, `Remote-User`, ...), a body, after an optional delay.

use shared::sync::lock;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use super::recording::header_pairs;
use super::{listen, serve, Seen, TestBackend};

/// What the auth service answers one request.
#[derive(Debug, Clone, Default)]
pub struct AuthReply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    /// Waited before answering (to outlast the balancer's `timeout`).
    pub delay: Duration,
}

impl AuthReply {
    /// `status` with no header, no body and no delay.
    pub fn status(status: u16) -> AuthReply {
        AuthReply {
            status,
            ..AuthReply::default()
        }
    }

    /// The same with `name: value` added.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> AuthReply {
        self.headers.push((name, value.into()));
        self
    }
}

/// How the test decides each answer from the request asked.
pub type Decide = fn(&Seen) -> AuthReply;

/// A forward-auth service on a loopback port; stops when dropped.
pub struct AuthBackend {
    pub backend: TestBackend,
    asked: Arc<Mutex<Vec<Seen>>>,
}

impl AuthBackend {
    pub async fn start(decide: Decide) -> AuthBackend {
        let listener = listen([127, 0, 0, 1], 0).await;
        let asked: Arc<Mutex<Vec<Seen>>> = Default::default();
        let record = asked.clone();
        let backend = serve(listener, move |stream, counter| {
            let record = record.clone();
            async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let (record, counter) = (record.clone(), counter.clone());
                    async move {
                        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let seen = seen(req).await;
                        lock(&record).push(seen.clone());
                        let reply = decide(&seen);
                        if !reply.delay.is_zero() {
                            tokio::time::sleep(reply.delay).await;
                        }
                        Ok::<_, Infallible>(response(reply))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            }
        });
        AuthBackend { backend, asked }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.backend.addr)
    }

    /// Every request asked so far, in order.
    pub fn asked(&self) -> Vec<Seen> {
        lock(&self.asked).clone()
    }
}

async fn seen(req: Request<Incoming>) -> Seen {
    let (parts, body) = req.into_parts();
    let (body, complete) = match body.collect().await {
        Ok(b) => (b.to_bytes().to_vec(), true),
        Err(_) => (Vec::new(), false),
    };
    Seen {
        version: format!("{:?}", parts.version),
        method: parts.method.to_string(),
        target: parts.uri.to_string(),
        headers: header_pairs(&parts.headers),
        body,
        complete,
    }
}

fn response(reply: AuthReply) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(reply.body)));
    *resp.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in reply.headers {
        let name = HeaderName::from_bytes(name.as_bytes());
        if let (Ok(name), Ok(value)) = (name, HeaderValue::from_str(&value)) {
            resp.headers_mut().append(name, value);
        }
    }
    resp
}
