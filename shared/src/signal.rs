//! The signal to stop, for both binaries: SIGTERM (what `docker stop`, Compose and systemd send)
//! or SIGINT (Ctrl-C). Each binary then drains in its own way; this only says when and why.

/// Resolves when SIGTERM or SIGINT arrives; returns the signal's name for the log. When a handler
/// cannot be installed the other one still works; with neither, it waits forever (nothing could
/// ever ask for a graceful stop, and a forced kill still works).
pub async fn stop_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = term.recv() => "SIGTERM",
                name = ctrl_c() => name,
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the process");
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
        std::future::pending::<()>().await;
    }
    "SIGINT"
}
