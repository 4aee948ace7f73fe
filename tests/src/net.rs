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

/// A port bound on 127.0.0.1 but not listening, held until the returned socket is dropped: connections to it
/// are refused meanwhile, and neither another test's [`free_port`] nor an outgoing connection's ephemeral port
/// can take it (the kernel skips bound ports), so a process started on it after the drop gets it.
pub fn reserved_port() -> (u16, tokio::net::TcpSocket) {
    let reserve = || -> std::io::Result<(u16, tokio::net::TcpSocket)> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))?;
        Ok((socket.local_addr()?.port(), socket))
    };
    match reserve() {
        Ok(reserved) => reserved,
        Err(e) => panic!("cannot reserve a port on 127.0.0.1: {e}"),
    }
}
