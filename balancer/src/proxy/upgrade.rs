//! Upgrade tunnelling (WebSocket and any other HTTP/1.1 `Upgrade`).
//!
//! When the backend answers 101, both connections are taken over from hyper
//! (`hyper::upgrade::on` on each side) and bytes are copied both ways until either side closes.
//! The backend's in-flight mark lasts as long as the tunnel.

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::backends::backend::InFlight;

pub fn tunnel(client_side: OnUpgrade, upstream_side: OnUpgrade, in_flight: InFlight) {
    tokio::spawn(async move {
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
