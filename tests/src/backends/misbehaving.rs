//! Backends that fail the way real ones do: one that wedges after it joined (accepts, never answers), one
//! that breaks its response (closes at once, or mid-body).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{listen, serve, TestBackend};

/// A replica that wedges after it joined: it answers health probes (`GET /health`, 200) until its first
/// real request arrives; from then on it accepts connections, reads from them and never answers anything,
/// probes included, and holds each socket open even after the peer's EOF: what a replica that hangs in
/// service looks like from outside. (A balancer admits a backend only after a passing probe, so one that
/// hangs from the start never gets a request.)
pub struct HungBackend {
    pub addr: std::net::SocketAddr,
    accepted: Arc<AtomicUsize>,
    wedged: Arc<AtomicBool>,
    backend: TestBackend,
}

impl HungBackend {
    pub async fn start() -> HungBackend {
        let accepted = Arc::new(AtomicUsize::new(0));
        let wedged = Arc::new(AtomicBool::new(false));
        let (count, wedge) = (accepted.clone(), wedged.clone());
        let backend = serve(listen([127, 0, 0, 1], 0).await, move |mut stream, hits| {
            count.fetch_add(1, Ordering::SeqCst);
            let wedge = wedge.clone();
            async move {
                let mut buf = [0u8; 4096];
                let mut first = true;
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let probe = buf[..n].starts_with(b"GET /health ");
                    if first && probe && !wedge.load(Ordering::SeqCst) {
                        let _ = stream.write_all(HEALTHY).await;
                        return;
                    }
                    // Only real requests count as hits; the first one wedges it for good.
                    if first && !probe {
                        wedge.store(true, Ordering::SeqCst);
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
            wedged,
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

    /// Whether a real request has wedged it.
    pub fn wedged(&self) -> bool {
        self.wedged.load(Ordering::SeqCst)
    }
}

const HEALTHY: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";

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
                let _ = stream.write_all(HEALTHY).await;
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
