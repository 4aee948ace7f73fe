//! The one way the balancer opens a TCP connection to a backend: bounded by `--connect-timeout`,
//! with TCP_NODELAY (a proxied request is one small write the backend should see at once), and an
//! error that names the address and says which of the two went wrong. Used by the HTTP/1.1 pool,
//! the h2c pool and the active health probe alike.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

/// Connects to `addr` within `timeout`; the error is the line recorded as the backend's last error.
pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, String> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| format!("connect to {addr} timed out after {timeout:?}"))?
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    // Best effort: a socket that refuses the option still carries requests.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refused_connection_names_the_address() {
        // Bind then drop: the port is free and nothing listens on it.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap();
        let e = connect(addr, Duration::from_secs(2)).await.unwrap_err();
        assert!(e.starts_with(&format!("connect to {addr}: ")), "{e}");
    }

    #[tokio::test]
    async fn a_listener_is_reached_with_nodelay() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let s = connect(l.local_addr().unwrap(), Duration::from_secs(2))
            .await
            .unwrap();
        assert!(s.nodelay().unwrap());
    }
}
