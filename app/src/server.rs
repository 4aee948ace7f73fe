//! The accept loop: HTTP/1.1 and HTTP/2 (prior knowledge) on one listener, with graceful
//! shutdown.
//!
//! On the shutdown signal the listener is closed at once (new connections are refused).
//! Then, for the shutdown delay (`SHUTDOWN_DELAY`, 0 by default), open connections keep
//! being served but each HTTP/1 response closes its connection and /health answers 503:
//! a balancer with pooled keep-alive connections would otherwise send a request down an
//! idle connection at the very moment we close it, and could not safely retry it. After
//! the delay every connection is told to finish its current request and close — idle
//! keep-alive connections close immediately, HTTP/2 gets GOAWAY — and we wait for that,
//! bounded by the drain timeout.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::routes::App;

/// A client that has not finished sending request headers after this long is dropped.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How the drain ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Drained {
    /// Every connection finished.
    Clean,
    /// The drain timeout expired with connections still open; they are cut.
    TimedOut,
}

/// Serves until `shutdown` resolves, then drains for at most `drain_timeout`.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    shutdown_delay: Duration,
    drain_timeout: Duration,
    shutdown: impl Future<Output = &'static str>,
) -> Drained {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);

    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Usually EMFILE: back off instead of spinning on the error.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!(error = %e, "set_nodelay failed");
                }
                let app = app.clone();
                let service = service_fn(move |req| app.clone().handle(req));
                let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            signal = &mut shutdown => {
                tracing::info!(signal, "shutting down: no new connections, draining in-flight requests");
                break;
            }
        }
    }
    drop(listener);

    if !shutdown_delay.is_zero() {
        app.begin_stopping();
        tracing::info!(
            ?shutdown_delay,
            "serving open connections with `Connection: close` before draining"
        );
        let deadline = tokio::time::Instant::now() + shutdown_delay;
        // Nothing left to protect once every connection has closed.
        while graceful.count() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    match tokio::time::timeout(drain_timeout, graceful.shutdown()).await {
        Ok(()) => {
            tracing::info!("all connections drained");
            Drained::Clean
        }
        Err(_) => {
            tracing::warn!(
                ?drain_timeout,
                "drain timeout expired; closing remaining connections"
            );
            Drained::TimedOut
        }
    }
}
