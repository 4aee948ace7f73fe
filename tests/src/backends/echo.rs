//! The echo backend: answers every request with what it received, as JSON.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use super::{listen, local_addr, serve, TestBackend};

/// Echoes the request as JSON: method, uri, version, every header (in order) and the body length.
/// Answers `/health` with 200. `/slow?ms=N` waits N ms first. Responses carry hop-by-hop headers
/// the balancer must strip, plus `X-Backend` naming this backend.
pub async fn echo_backend() -> TestBackend {
    echo_backend_on([127, 0, 0, 1], 0).await
}

pub async fn echo_backend_on(ip: [u8; 4], port: u16) -> TestBackend {
    let listener = listen(ip, port).await;
    let addr = local_addr(&listener);
    serve(listener, move |stream, counter| async move {
        let service = service_fn(move |req: Request<Incoming>| {
            let counter = counter.clone();
            async move { Ok::<_, Infallible>(echo(req, addr, &counter).await) }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service)
            .await;
    })
}

async fn echo(req: Request<Incoming>, me: SocketAddr, hits: &AtomicUsize) -> Response<Full<Bytes>> {
    if req.uri().path() == "/health" {
        return Response::new(Full::new(Bytes::from_static(b"ok")));
    }
    hits.fetch_add(1, Ordering::SeqCst);
    if req.uri().path() == "/slow" {
        let ms: u64 = req
            .uri()
            .query()
            .and_then(|q| q.strip_prefix("ms="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let (parts, body) = req.into_parts();
    let headers = super::recording::header_pairs(&parts.headers);
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            let mut r = Response::new(Full::new(Bytes::from(format!("body error: {e}"))));
            *r.status_mut() = StatusCode::BAD_REQUEST;
            return r;
        }
    };
    let json = serde_json::json!({
        "method": parts.method.as_str(),
        "uri": parts.uri.to_string(),
        "version": format!("{:?}", parts.version),
        "headers": headers,
        "body_len": body.len(),
    });
    let mut resp = Response::new(Full::new(Bytes::from(json.to_string())));
    let h = resp.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    h.insert(
        "x-backend",
        HeaderValue::from_str(&me.to_string()).unwrap_or(HeaderValue::from_static("?")),
    );
    h.insert("connection", HeaderValue::from_static("x-hop-resp"));
    h.insert("x-hop-resp", HeaderValue::from_static("secret"));
    h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
    h.insert(
        "proxy-authenticate",
        HeaderValue::from_static("Basic realm=x"),
    );
    h.insert("upgrade", HeaderValue::from_static("h2c"));
    h.insert("x-end-to-end", HeaderValue::from_static("kept"));
    resp
}

/// Headers the echo backend received, lower-cased name → values in order.
pub fn echoed(json: &serde_json::Value, name: &str) -> Vec<String> {
    json["headers"]
        .as_array()
        .map(|hs| {
            hs.iter()
                .filter(|h| h[0] == name)
                .filter_map(|h| h[1].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
