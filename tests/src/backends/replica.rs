//! The named replica: a backend that says who it is over HTTP and over WebSocket, for tests of
//! which replica a client lands on (sticky sessions). Every answer carries `X-Served-By: <name>`
//! (as the app's replicas do); a WebSocket upgrade is accepted and its first message is the name,
//! then every message is echoed. `/health` answers 200 and is not counted.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::{listen, serve, TestBackend};

/// A replica named `name` on a free loopback port; see the module doc.
pub async fn named_replica(name: &str) -> TestBackend {
    let name: Arc<str> = Arc::from(name);
    serve(listen([127, 0, 0, 1], 0).await, move |stream, hits| {
        let name = name.clone();
        async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let (name, hits) = (name.clone(), hits.clone());
                async move { Ok::<_, Infallible>(answer(req, &name, &hits)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        }
    })
}

fn answer(
    mut req: Request<Incoming>,
    name: &Arc<str>,
    hits: &AtomicUsize,
) -> Response<Full<Bytes>> {
    if req.uri().path() == "/health" {
        return Response::new(Full::new(Bytes::from_static(b"ok")));
    }
    hits.fetch_add(1, Ordering::SeqCst);
    let key = req.headers().get("sec-websocket-key").cloned();
    let mut resp = match key {
        Some(key) if req.headers().contains_key(header::UPGRADE) => {
            let upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(websocket(upgrade, name.clone()));
            let mut resp = Response::new(Full::new(Bytes::new()));
            *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            let h = resp.headers_mut();
            h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            let accept = derive_accept_key(key.as_bytes());
            if let Ok(accept) = HeaderValue::from_str(&accept) {
                h.insert("sec-websocket-accept", accept);
            }
            resp
        }
        _ => Response::new(Full::new(Bytes::from(name.to_string()))),
    };
    if let Ok(value) = HeaderValue::from_str(name) {
        resp.headers_mut().insert("x-served-by", value);
    }
    resp
}

/// The upgraded connection: the name first, then an echo of every text or binary message.
async fn websocket(upgrade: hyper::upgrade::OnUpgrade, name: Arc<str>) {
    let Ok(upgraded) = upgrade.await else { return };
    let mut ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
    if ws.send(Message::text(name.to_string())).await.is_err() {
        return;
    }
    while let Some(Ok(msg)) = ws.next().await {
        if msg.is_close() {
            break;
        }
        if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
            break;
        }
    }
}
