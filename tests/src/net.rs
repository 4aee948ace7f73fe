//! Free loopback ports for the processes a test starts.

use std::net::TcpListener;

/// A port that was free on 127.0.0.1 a moment ago. The kernel hands out ephemeral ports in sequence, so the
/// window in which another process could take it is small; the processes started with it fail loudly if so.
pub fn free_port() -> u16 {
    match TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(addr) => addr.port(),
        Err(e) => panic!("cannot bind an ephemeral port on 127.0.0.1: {e}"),
    }
}

/// A port with nothing listening on it (bound, then released): an upstream that refuses connections.
pub fn dead_port() -> u16 {
    free_port()
}
