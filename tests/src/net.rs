//! Free loopback ports for the processes a test starts.

use std::net::TcpListener;

/// A port that was free on 127.0.0.1 a moment ago. The kernel hands out ephemeral ports in sequence, so the
/// window in which another process could take it is small; the processes started with it fail loudly if so.
pub fn free_port() -> u16 {
    match try_free_port() {
        Ok(port) => port,
        Err(e) => panic!("cannot bind an ephemeral port on 127.0.0.1: {e}"),
    }
}

/// [`free_port`] for callers that report errors rather than fail a test.
pub fn try_free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A port with nothing listening on it (bound, then released): an upstream that refuses connections.
pub fn dead_port() -> u16 {
    free_port()
}
