//! Backends that fail the way real ones do: one wedged (accepts, never answers), one that breaks its
//! response (closes at once, or mid-body).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{listen, serve, TestBackend};

/// A backend that accepts connections, reads from them and never answers, and holds each socket open
/// even after the peer's EOF: what a wedged replica looks like from outside.
pub struct HungBackend {
    pub addr: std::net::SocketAddr,
    accepted: Arc<AtomicUsize>,
    backend: TestBackend,
}

impl HungBackend {
    pub async fn start() -> HungBackend {
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let backend = serve(listen([127, 0, 0, 1], 0).await, move |mut stream, hits| {
            count.fetch_add(1, Ordering::SeqCst);
            async move {
                let mut buf = [0u8; 4096];
                let mut first = true;
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    // Health probes hang too, but only real requests count as hits.
                    if first && !buf[..n].starts_with(b"GET /health ") {
                        hits.fetch_add(1, Ordering::SeqCst);
                    }
                    first = false;
                }
                std::future::pending::<()>().await;
            }
        });
        HungBackend {
            addr: backend.addr,
            accepted,
            backend,
        }
    }

    /// Connections accepted so far (health probes included).
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Requests received (health probes excluded).
    pub fn hits(&self) -> usize {
        self.backend.hits()
    }
}

/// Reads each request head, then either closes at once (`partial_body == false`) or sends a
/// 200 head announcing 1000 bytes, 5 of them, and closes. Health probes get a 200.
pub async fn breaking_backend(partial_body: bool) -> TestBackend {
    serve(
        listen([127, 0, 0, 1], 0).await,
        move |mut stream, hits| async move {
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf).await {
                    Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
                    _ => return,
                }
            }
            if got.starts_with(b"GET /health ") {
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    )
                    .await;
                return;
            }
            hits.fetch_add(1, Ordering::SeqCst);
            if partial_body {
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nhello")
                    .await;
                let _ = stream.flush().await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            drop(stream);
        },
    )
}
