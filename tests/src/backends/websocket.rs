//! The WebSocket backend: echoes every message back.

use std::sync::atomic::Ordering;

use futures_util::{SinkExt, StreamExt};

use super::{listen, serve, TestBackend};

/// A WebSocket server that echoes every text and binary message; a hit is one handshake.
pub async fn websocket_backend() -> TestBackend {
    serve(listen([127, 0, 0, 1], 0).await, |stream, hits| async move {
        let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
            return;
        };
        hits.fetch_add(1, Ordering::SeqCst);
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_close() {
                break;
            }
            if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                break;
            }
        }
    })
}
