//! Upgrade tunnelling (WebSocket and any other HTTP/1.1 `Upgrade`).
//!
//! When the backend answers 101, both connections are taken over from hyper
//! (`hyper::upgrade::on` on each side) and bytes are copied both ways until either side closes.
//! The backend's in-flight mark lasts as long as the tunnel, and so does its count in
//! [`open_tunnels`], which a draining worker waits on (up to `--shutdown-timeout`): a tunnel is
//! not an HTTP connection its drain would see.

use std::sync::atomic::{AtomicUsize, Ordering};

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::backends::backend::InFlight;

/// Tunnels open in this process.
static OPEN: AtomicUsize = AtomicUsize::new(0);

/// Tunnels open in this process, right now.
pub fn open_tunnels() -> usize {
    OPEN.load(Ordering::Relaxed)
}

/// One tunnel's place in [`OPEN`], given back when the tunnel ends however it ends.
struct Open;

impl Open {
    fn new() -> Open {
        OPEN.fetch_add(1, Ordering::Relaxed);
        Open
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        OPEN.fetch_sub(1, Ordering::Relaxed);
    }
}

pub fn tunnel(client_side: OnUpgrade, upstream_side: OnUpgrade, in_flight: InFlight) {
    let open = Open::new();
    tokio::spawn(async move {
        let _open = open;
        let backend = in_flight.0.addr;
        let (client_io, upstream_io) = match tokio::try_join!(client_side, upstream_side) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(%backend, error = %e, "upgrade failed");
                return;
            }
        };
        let mut client_io = TokioIo::new(client_io);
        let mut upstream_io = TokioIo::new(upstream_io);
        match tokio::io::copy_bidirectional(&mut client_io, &mut upstream_io).await {
            Ok((up, down)) => {
                tracing::debug!(%backend, bytes_up = up, bytes_down = down, "tunnel closed")
            }
            Err(e) => tracing::debug!(%backend, error = %e, "tunnel ended with an error"),
        }
        drop(in_flight);
    });
}
