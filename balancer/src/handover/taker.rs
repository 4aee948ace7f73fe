//! The new balancer's side of a handover: it asks the balancer serving at `--handover PATH` for
//! its listening sockets, and once it serves on them tells it so ([`Taking::finish`]).

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::fds;
use super::protocol::{Message, Name};

/// Each step of the conversation; the serving balancer answers at once.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// What asking at PATH gave.
pub enum Asked {
    /// Nothing answers there (no file, a stale one, or the balancer there went away before
    /// sending its sockets): bind as usual.
    Nobody,
    /// The sockets, and the conversation to finish once serving on them.
    Taking(Taking),
}

/// A handover under way: the sockets received, the old balancer waiting for `serving`.
pub struct Taking {
    stream: UnixStream,
    pub listeners: Vec<(Name, OwnedFd)>,
    /// The old balancer's.
    pub pid: u32,
}

/// Asks the balancer at `path` for its listeners. `Err` is the one line to exit 2 with: it
/// refused (another balancer is taking over, or another uid), or PATH cannot be reached.
pub fn ask(path: &Path) -> Result<Asked, String> {
    let flag = format!("--handover {}", path.display());
    let stream = match UnixStream::connect(path) {
        Ok(stream) => stream,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(Asked::Nobody)
        }
        Err(e) => return Err(format!("{flag}: cannot connect: {e}")),
    };
    let pid = fds::same_uid_peer(&stream).map_err(|e| format!("{flag}: refused: {e}"))?;
    let listeners = match request(&stream) {
        Ok(Ok(listeners)) => listeners,
        Ok(Err(reason)) => {
            return Err(format!(
                "{flag}: the balancer there (pid {pid}) refused: {reason}"
            ))
        }
        Err(e) => {
            tracing::warn!(
                pid,
                error = %e,
                "handover failed before the listeners came; binding them instead"
            );
            return Ok(Asked::Nobody);
        }
    };
    Ok(Asked::Taking(Taking {
        stream,
        listeners,
        pid,
    }))
}

/// `take`, and the answer: the listeners, or the reason for a refusal.
fn request(stream: &UnixStream) -> std::io::Result<Result<Vec<(Name, OwnedFd)>, String>> {
    stream.set_read_timeout(Some(STEP_TIMEOUT))?;
    stream.set_write_timeout(Some(STEP_TIMEOUT))?;
    fds::send(stream, &Message::Take, &[])?;
    match fds::recv(stream)? {
        (Message::Listeners(names), fds) if names.len() == fds.len() => {
            Ok(Ok(names.into_iter().zip(fds).collect()))
        }
        (Message::Refused(reason), _) => Ok(Err(reason)),
        (other, fds) => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("unexpected answer {other:?} with {} sockets", fds.len()),
        )),
    }
}

impl Taking {
    /// Tells the old balancer this one serves, and waits until it has let go (logged either
    /// way: if it does not answer, both serve the same sockets, which loses nothing).
    pub fn finish(self) {
        let pid = self.pid;
        let confirmed =
            fds::send(&self.stream, &Message::Serving, &[]).and_then(|()| fds::recv(&self.stream));
        match confirmed {
            Ok((Message::Released, _)) => {
                tracing::info!(
                    pid,
                    "handover: took over the listeners; the old balancer drains"
                )
            }
            Ok((other, _)) => tracing::warn!(
                pid,
                message = ?other,
                "handover: the old balancer did not confirm it let go; serving anyway"
            ),
            Err(e) => tracing::warn!(
                pid,
                error = %e,
                "handover: the old balancer did not confirm it let go; serving anyway"
            ),
        }
    }
}
