//! Replacing a running balancer with no failed request (`--handover PATH`): the listening sockets
//! themselves move from the serving process to the new one over a Unix socket (`SCM_RIGHTS`), so
//! no connection in the kernel's accept queue is lost, and the old one drains as on SIGTERM.
//!
//! [`protocol`] is the conversation, [`fds`] the sockets riding on it and the uid check,
//! [`taker`] the new balancer's side, [`giver`] the serving one's, [`socket_file`] the file at
//! PATH. Where listeners come from (bound, handed over, systemd) is `listeners`.

pub mod fds;
pub mod giver;
pub mod protocol;
pub mod socket_file;
pub mod taker;

use std::path::PathBuf;
use std::sync::Arc;

/// Finishes the handover this balancer received (if any), then answers at `path` until a newer
/// balancer takes over; returns that one's pid (the caller stops accepting), or never.
pub async fn serve(
    path: PathBuf,
    taking: Option<taker::Taking>,
    offered: Arc<giver::Offered>,
) -> u32 {
    if let Some(taking) = taking {
        if let Err(e) = tokio::task::spawn_blocking(move || taking.finish()).await {
            tracing::warn!(error = %e, "handover: cannot finish taking over");
        }
    }
    let (listener, _file) = match bind(&path) {
        Ok(bound) => bound,
        Err(e) => {
            tracing::error!(
                path = %path.display(),
                error = %e,
                "handover: cannot listen; this balancer cannot be handed over"
            );
            return std::future::pending().await;
        }
    };
    // `_file` lives until the handover: dropped then (or at exit), it removes PATH if it is
    // still this balancer's.
    giver::serve(listener, offered).await
}

fn bind(
    path: &std::path::Path,
) -> std::io::Result<(tokio::net::UnixListener, socket_file::SocketFile)> {
    let (listener, file) = socket_file::SocketFile::bind(path)?;
    listener.set_nonblocking(true)?;
    Ok((tokio::net::UnixListener::from_std(listener)?, file))
}
