//! Draining on the stop signal (`shared::signal`: SIGTERM or SIGINT) or after a handover
//! (`handover`): one drain for both.
//!
//! The balancer stops accepting, lets in-flight requests finish for at most
//! `--shutdown-timeout` (30 s by default; Docker kills after 10 s unless the compose file sets
//! `stop_grace_period`), and exits 0. [`Drain`] is how the listeners tell their connections to
//! finish and learn when they have. An HTTP/1.1 connection gets a lame-duck window first
//! ([`DrainWatch::serve_lame_duck`]): a response it sends meanwhile says `Connection: close`
//! ([`DrainWatch::closing`]), so a client that keeps sending moves to a new connection cleanly
//! instead of racing a close with its next request.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// The open connections of a listener, and the signal that tells them to finish.
///
/// Every connection task holds a [`DrainWatch`]; [`Drain::drain`] tells them all to finish the
/// request they are serving and close, then waits until the last one has gone. (hyper-util's
/// `GracefulShutdown` does the same for the connection types it knows, but not for hyper's
/// upgradeable HTTP/1 connection, which WebSocket tunnelling needs.)
pub struct Drain {
    draining: watch::Sender<bool>,
    closing: Arc<AtomicBool>,
}

/// One connection's end of a [`Drain`].
pub struct DrainWatch {
    draining: watch::Receiver<bool>,
    closing: Arc<AtomicBool>,
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
            closing: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn watcher(&self) -> DrainWatch {
        DrainWatch {
            draining: self.draining.subscribe(),
            closing: self.closing.clone(),
        }
    }

    /// Connections still open.
    pub fn connections(&self) -> usize {
        self.draining.receiver_count()
    }

    /// Tells every connection to finish, and returns once all have closed.
    pub async fn drain(&self) {
        self.closing.store(true, Ordering::Relaxed);
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

    /// Like [`serve`](Self::serve), with `graceful` called only after `window` once draining has
    /// started (or never, if the connection ends first, e.g. after a `Connection: close`).
    pub async fn serve_lame_duck<C: Future>(
        mut self,
        conn: C,
        graceful: impl FnOnce(Pin<&mut C>),
        window: Duration,
    ) -> C::Output {
        let mut conn = std::pin::pin!(conn);
        tokio::select! {
            output = conn.as_mut() => return output,
            _ = self.draining.wait_for(|draining| *draining) => {}
        }
        tokio::select! {
            output = conn.as_mut() => return output,
            () = tokio::time::sleep(window) => {}
        }
        graceful(conn.as_mut());
        conn.await
    }

    /// True once draining has started: the connection's responses say `Connection: close`.
    pub fn closing(&self) -> Arc<AtomicBool> {
        self.closing.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_lame_duck_connection_is_told_to_finish_only_after_its_window() {
        let drain = Drain::new();
        let watch = drain.watcher();
        let closing = watch.closing();
        let told = Arc::new(AtomicBool::new(false));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let served = {
            let told = told.clone();
            tokio::spawn(watch.serve_lame_duck(
                async move {
                    let _ = rx.await;
                },
                move |_| told.store(true, Ordering::SeqCst),
                Duration::from_millis(200),
            ))
        };
        let draining = tokio::spawn(async move { drain.drain().await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(closing.load(Ordering::SeqCst), "responses now say close");
        assert!(!told.load(Ordering::SeqCst), "told within the window");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(told.load(Ordering::SeqCst), "not told after the window");
        let _ = tx.send(());
        served.await.unwrap();
        draining.await.unwrap();
    }
}
