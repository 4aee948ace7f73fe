//! The serving balancer's side of a handover: it answers on `--handover PATH`, sends its
//! listening sockets to the one new balancer that asks first (same uid only), and once that one
//! serves on them, lets go: [`serve`] returns the new balancer's pid and the caller stops accepting
//! and drains, as on SIGTERM. A handover that fails halfway (the new balancer dies, or never says
//! it serves) leaves this balancer serving as before, with one log line.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UnixListener;
use tokio::sync::mpsc;

use super::fds;
use super::protocol::{Message, Name};

/// How long a new balancer may take from receiving the sockets to serving on them (it builds its
/// groups and workers meanwhile; this balancer serves on, so only a dead one waits this long).
const SERVING_TIMEOUT: Duration = Duration::from_secs(60);
/// Each other step of the conversation.
const STEP_TIMEOUT: Duration = Duration::from_secs(5);

/// Duplicates of the listening sockets, sent to whoever takes over.
pub struct Offered {
    listeners: Vec<(Name, OwnedFd)>,
    /// A handover is under way: another asker is refused.
    busy: AtomicBool,
}

impl Offered {
    pub fn new(listeners: Vec<(Name, OwnedFd)>) -> Arc<Offered> {
        Arc::new(Offered {
            listeners,
            busy: AtomicBool::new(false),
        })
    }
}

/// Answers handover requests on `listener` until one succeeds; returns the new balancer's pid
/// then, with `released` already sent (the caller must stop accepting now).
pub async fn serve(listener: UnixListener, offered: Arc<Offered>) -> u32 {
    let (done, mut completed) = mpsc::channel::<(u32, UnixStream)>(1);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted.and_then(|(s, _)| s.into_std()) {
                    Ok(stream) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "handover: cannot accept");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (offered, done) = (offered.clone(), done.clone());
                tokio::task::spawn_blocking(move || {
                    if let Some(taken) = converse(stream, &offered) {
                        let _ = done.blocking_send(taken);
                    }
                });
            }
            Some((pid, stream)) = completed.recv() => {
                // Told before this balancer has quite stopped accepting: both serve the same
                // sockets for that instant, which loses nothing.
                let _ = tokio::task::spawn_blocking(move || fds::send(&stream, &Message::Released, &[])).await;
                return pid;
            }
        }
    }
}

/// One asker: `Some((pid, stream))` once it serves on the sockets sent to it; `None` when it was
/// refused or failed (logged).
fn converse(stream: UnixStream, offered: &Offered) -> Option<(u32, UnixStream)> {
    let setup = stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_write_timeout(Some(STEP_TIMEOUT)))
        .and_then(|()| stream.set_read_timeout(Some(STEP_TIMEOUT)));
    if let Err(e) = setup {
        tracing::warn!(error = %e, "handover: cannot set up the connection");
        return None;
    }
    let pid = match fds::same_uid_peer(&stream) {
        Ok(pid) => pid,
        Err(e) => {
            tracing::warn!(error = %e, "handover refused");
            let _ = fds::send(&stream, &Message::Refused(e.to_string()), &[]);
            return None;
        }
    };
    match fds::recv(&stream) {
        Ok((Message::Take, _)) => {}
        Ok((other, _)) => {
            tracing::warn!(pid, message = ?other, "handover: unexpected first message, ignored");
            return None;
        }
        Err(e) => {
            tracing::warn!(pid, error = %e, "handover: no request, ignored");
            return None;
        }
    }
    if offered.busy.swap(true, Ordering::AcqRel) {
        tracing::warn!(
            pid,
            "handover refused: another balancer is already taking over"
        );
        let reason = "another balancer is already taking over".to_owned();
        let _ = fds::send(&stream, &Message::Refused(reason), &[]);
        return None;
    }
    match give(&stream, offered) {
        Ok(()) => {
            tracing::info!(
                pid,
                "handover: the new balancer serves on our listeners; letting go"
            );
            Some((pid, stream))
        }
        Err(e) => {
            offered.busy.store(false, Ordering::Release);
            tracing::warn!(pid, error = %e, "handover failed halfway; still serving");
            None
        }
    }
}

/// Sends the listeners and waits for `serving`.
fn give(stream: &UnixStream, offered: &Offered) -> Result<(), String> {
    let names = offered.listeners.iter().map(|(n, _)| *n).collect();
    let fds: Vec<_> = offered.listeners.iter().map(|(_, fd)| fd.as_fd()).collect();
    fds::send(stream, &Message::Listeners(names), &fds)
        .map_err(|e| format!("cannot send the listeners: {e}"))?;
    stream
        .set_read_timeout(Some(SERVING_TIMEOUT))
        .map_err(|e| e.to_string())?;
    match fds::recv(stream) {
        Ok((Message::Serving, _)) => Ok(()),
        Ok((other, _)) => Err(format!("expected `serving`, got {other:?}")),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Err(format!(
            "the new balancer did not serve within {SERVING_TIMEOUT:?}"
        )),
        Err(e) => Err(format!("the new balancer went away before serving: {e}")),
    }
}
