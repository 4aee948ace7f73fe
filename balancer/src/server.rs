//! The public listener: accept loop and per-connection HTTP serving.
//!
//! HTTP/1.1 and HTTP/2 with prior knowledge (hyper-util's auto builder), `--header-read-timeout`
//! for clients that trickle headers, 431 for oversized headers (hyper answers it when the header
//! block outgrows the read buffer), TCP_NODELAY on every accepted socket. Every connection is
//! watched by the graceful-shutdown tracker so SIGTERM can drain it.

use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::proxy::{ClientInfo, Proxy};

/// Largest request head (request line + headers) accepted; beyond it clients get 431.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

pub fn http_builder(header_read_timeout: Duration) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .max_buf_size(MAX_HEADER_BYTES)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(MAX_HEADER_BYTES).unwrap_or(u32::MAX))
        .max_concurrent_streams(256);
    builder
}

/// Accepts until `shutdown` resolves; returns without waiting for the connections (the caller
/// drains them through `graceful`).
pub async fn serve(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    graceful: &GracefulShutdown,
    header_read_timeout: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let client = Arc::new(ClientInfo::new(peer));
        let proxy = proxy.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            // hyper's header timer starts with the first byte, and the HTTP/1-or-2 detection
            // before it has no timer at all: a connection that never sends anything would be
            // kept forever. Give it --header-read-timeout to start talking.
            // (`peek`, unlike `readable`, cannot report a spurious readiness.)
            let mut first = [0u8; 1];
            match tokio::time::timeout(header_read_timeout, stream.peek(&mut first)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return,
            }
            let service = service_fn(move |req| proxy.clone().handle(req, client.clone()));
            let conn = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned();
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%peer, error = %e, "client connection ended with an error");
            }
        });
    }
}
