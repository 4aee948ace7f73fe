//! Draining on the stop signal (`shared::signal`: SIGTERM or SIGINT).
//!
//! The balancer stops accepting, lets in-flight requests finish for at most
//! `--shutdown-timeout` (30 s by default; Docker kills after 10 s unless the compose file sets
//! `stop_grace_period`), and exits 0. [`Drain`] is how the listeners tell their connections to
//! finish and learn when they have.

use std::future::Future;
use std::pin::Pin;

use tokio::sync::watch;

/// The open connections of a listener, and the signal that tells them to finish.
///
/// Every connection task holds a [`DrainWatch`]; [`Drain::drain`] tells them all to finish the
/// request they are serving and close, then waits until the last one has gone. (hyper-util's
/// `GracefulShutdown` does the same for the connection types it knows, but not for hyper's
/// upgradeable HTTP/1 connection, which WebSocket tunnelling needs.)
pub struct Drain {
    draining: watch::Sender<bool>,
}

/// One connection's end of a [`Drain`].
pub struct DrainWatch {
    draining: watch::Receiver<bool>,
}

impl Default for Drain {
    fn default() -> Self {
        Self::new()
    }
}

impl Drain {
    pub fn new() -> Self {
        Drain {
            draining: watch::Sender::new(false),
        }
    }

    pub fn watcher(&self) -> DrainWatch {
        DrainWatch {
            draining: self.draining.subscribe(),
        }
    }

    /// Connections still open.
    pub fn connections(&self) -> usize {
        self.draining.receiver_count()
    }

    /// Tells every connection to finish, and returns once all have closed.
    pub async fn drain(&self) {
        self.draining.send_replace(true);
        self.draining.closed().await;
    }
}

impl DrainWatch {
    /// Drives `conn` to its end. When draining starts, `graceful` is called on it once (hyper then
    /// finishes the request in flight and closes instead of reading another), and the connection
    /// is driven on until it has done so.
    pub async fn serve<C: Future>(
        mut self,
        conn: C,
        graceful: impl FnOnce(Pin<&mut C>),
    ) -> C::Output {
        let mut conn = std::pin::pin!(conn);
        tokio::select! {
            output = conn.as_mut() => return output,
            _ = self.draining.wait_for(|draining| *draining) => {}
        }
        graceful(conn.as_mut());
        conn.await
    }
}
