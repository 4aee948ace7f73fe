//! The recording backend: keeps every request that reaches it, so a test can prove what was forwarded.

use shared::sync::lock;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::task::JoinHandle;

use super::{accept_loop, listen, local_addr};

/// What reached the [`RecordingBackend`].
#[derive(Debug, Clone)]
pub struct Seen {
    /// `HTTP/1.1` or `HTTP/2.0`: how the request arrived.
    pub version: String,
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Whether the whole body arrived (false when the stream broke midway).
    pub complete: bool,
}

impl Seen {
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Every header as (name, value) text, in order.
pub(super) fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// What a request names as its target, the same over both protocols: HTTP/1.1's request target as
/// sent, HTTP/2's `:path` (its URI is absolute, built from `:scheme` and `:authority`).
fn target(parts: &http::request::Parts) -> String {
    if parts.version == http::Version::HTTP_2 {
        parts
            .uri
            .path_and_query()
            .map_or_else(|| "/".to_string(), |p| p.to_string())
    } else {
        parts.uri.to_string()
    }
}

/// The headers a request carried, the same over both protocols: HTTP/2's `:authority` is listed as
/// the `host` it stands for, first, as an HTTP/1.1 request lists its Host.
fn seen_headers(parts: &http::request::Parts) -> Vec<(String, String)> {
    let mut headers = header_pairs(&parts.headers);
    if parts.version == http::Version::HTTP_2 && !parts.headers.contains_key(http::header::HOST) {
        if let Some(authority) = parts.uri.authority() {
            headers.insert(0, ("host".to_string(), authority.to_string()));
        }
    }
    headers
}

/// A backend (HTTP/1.1, or HTTP/2 with prior knowledge for `--upstream-protocol h2c`) that records
/// every request except health probes (`/health`) and answers 200 with `X-Served-By: recorder`.
pub struct RecordingBackend {
    pub addr: std::net::SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

impl RecordingBackend {
    pub async fn start() -> RecordingBackend {
        let listener = listen([127, 0, 0, 1], 0).await;
        let addr = local_addr(&listener);
        let seen: Arc<Mutex<Vec<Seen>>> = Default::default();
        let record = seen.clone();
        let task = accept_loop(listener, move |stream| {
            let record = record.clone();
            async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let record = record.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let (body, complete) = match body.collect().await {
                            Ok(b) => (b.to_bytes().to_vec(), true),
                            Err(_) => (Vec::new(), false),
                        };
                        if parts.uri.path() != "/health" {
                            lock(&record).push(Seen {
                                version: format!("{:?}", parts.version),
                                method: parts.method.to_string(),
                                target: target(&parts),
                                headers: seen_headers(&parts),
                                body,
                                complete,
                            });
                        }
                        hyper::Response::builder()
                            .header("x-served-by", "recorder")
                            .body(Full::new(Bytes::from_static(b"recorded\n")))
                    }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            }
        });
        RecordingBackend { addr, seen, task }
    }

    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.seen).clone()
    }

    pub fn count(&self) -> usize {
        lock(&self.seen).len()
    }
}

impl Drop for RecordingBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}
