//! Shutdown signals: SIGTERM (what `docker stop` sends) or SIGINT (Ctrl-C).
//!
//! The balancer then stops accepting, lets in-flight requests finish for at most
//! `--shutdown-timeout` (30 s by default; Docker kills after 10 s unless the compose file sets
//! `stop_grace_period`), and exits 0.

pub async fn signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received, draining"),
                _ = int.recv() => tracing::info!("SIGINT received, draining"),
            }
        }
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(error = %e, "cannot install signal handlers; falling back to Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
