//! The accept loop: HTTP/1.1 and HTTP/2 (prior knowledge) on one listener, with graceful
//! shutdown.
//!
//! On the shutdown signal, with a shutdown delay (`SHUTDOWN_DELAY`, 0 by default), the replica
//! first plays lame duck for that long: it keeps accepting and serving, but every HTTP/1 response
//! closes its connection and /health answers 503, so a balancer's health checks take the replica
//! out while everything it sends still gets an answer. Only then is the listener closed. Closing it
//! at once would be worse on both sides: a connection the kernel had already accepted for us is
//! reset with the balancer's request in it (which it must not retry), and an idle pooled connection
//! closed under a request has the same effect. After the delay every connection is told to finish
//! its current request and close (idle keep-alive connections close immediately, HTTP/2 gets
//! GOAWAY) and we wait for that, bounded by the drain timeout. Without a delay the listener closes
//! at once and the drain starts.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};

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

    let signal = loop {
        tokio::select! {
            accepted = listener.accept() => accept(accepted, &builder, &app, &graceful).await,
            signal = &mut shutdown => break signal,
        }
    };
    tracing::info!(signal, "shutting down");

    if !shutdown_delay.is_zero() {
        app.begin_stopping();
        tracing::info!(
            ?shutdown_delay,
            "lame duck: still serving, every response closing its connection and /health answering 503"
        );
        let lame_duck = tokio::time::sleep(shutdown_delay);
        tokio::pin!(lame_duck);
        loop {
            tokio::select! {
                accepted = listener.accept() => accept(accepted, &builder, &app, &graceful).await,
                () = &mut lame_duck => break,
            }
        }
    }
    drop(listener);
    tracing::info!("no new connections; draining in-flight requests");

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

/// Serves one accepted connection as a task of its own, watched by `graceful`.
async fn accept(
    accepted: std::io::Result<(TcpStream, SocketAddr)>,
    builder: &auto::Builder<TokioExecutor>,
    app: &Arc<App>,
    graceful: &GracefulShutdown,
) {
    let (stream, peer) = match accepted {
        Ok(pair) => pair,
        Err(e) => {
            // Usually EMFILE: back off instead of spinning on the error.
            tracing::warn!(error = %e, "accept failed");
            tokio::time::sleep(Duration::from_millis(50)).await;
            return;
        }
    };
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "set_nodelay failed");
    }
    let app = app.clone();
    let service = service_fn(move |req| app.clone().handle(req));
    let conn = builder
        .serve_connection(TokioIo::new(stream), service)
        .into_owned();
    let conn = graceful.watch(conn);
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(%peer, error = %e, "connection ended with an error");
        }
    });
}
