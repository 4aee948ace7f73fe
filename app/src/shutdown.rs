//! Waiting for the signal to stop.
//!
//! SIGTERM (what `docker stop` and Compose send) and SIGINT (Ctrl-C) both start a
//! graceful shutdown; the server module then stops accepting and drains connections.

/// Resolves when SIGTERM or SIGINT arrives; returns the signal's name for the log.
pub async fn signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = ctrl_c() => "SIGINT",
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the server");
                ctrl_c().await
            }
        }
    }
    #[cfg(not(unix))]
    {
        ctrl_c().await
    }
}

async fn ctrl_c() -> &'static str {
    if let Err(e) = tokio::signal::ctrl_c().await {
        tracing::warn!(error = %e, "cannot listen for SIGINT");
        // Without a handler we can never be told to stop gracefully; wait forever.
        std::future::pending::<()>().await;
    }
    "SIGINT"
}
