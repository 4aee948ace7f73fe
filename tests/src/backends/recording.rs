//! The recording backend: keeps every request that reaches it, so a test can prove what was forwarded.

use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::task::JoinHandle;

use super::{accept_loop, listen, local_addr};

/// What reached the [`RecordingBackend`].
#[derive(Debug, Clone)]
pub struct Seen {
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

/// An HTTP/1.1 backend that records every request except health probes (`/health`) and answers 200 with
/// `X-Served-By: recorder`.
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
                                method: parts.method.to_string(),
                                target: parts.uri.to_string(),
                                headers: header_pairs(&parts.headers),
                                body,
                                complete,
                            });
                        }
                        hyper::Response::builder()
                            .header("x-served-by", "recorder")
                            .body(Full::new(Bytes::from_static(b"recorded\n")))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
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

/// A poisoned lock still holds the data a test wants to see.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
