//! The container health probe both images run (`app healthcheck`, `balancer healthcheck`).
//!
//! The images ship without curl, so each binary checks itself: one blocking `GET` to its own
//! listener (on loopback when it listens on a wildcard address), success only on a `200` status
//! line within the timeout. Blocking std I/O on purpose: the probe runs once and exits, no runtime.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The longest status line read before giving up on the answer.
const MAX_HEAD: usize = 8192;

/// Where to reach a local listener: its port, on loopback when it listens on a wildcard address.
pub fn target(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// `GET path` on `addr`; `Ok(())` only on a 200 status line within `timeout`, otherwise a
/// one-line reason.
pub fn check(addr: SocketAddr, path: &str, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let late = || format!("no answer from http://{addr}{path} within {timeout:?}");
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: healthcheck\r\nConnection: close\r\n\r\n"
    );
    stream
        .set_write_timeout(Some(timeout))
        .and_then(|()| stream.write_all(request.as_bytes()))
        .map_err(|e| format!("cannot send to {addr}: {e}"))?;
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < MAX_HEAD {
        let left = deadline
            .checked_duration_since(Instant::now())
            .ok_or_else(late)?;
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .map_err(|e| format!("cannot read from {addr}: {e}"))?;
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            Err(e) if is_timeout(&e) => return Err(late()),
            Err(e) => return Err(format!("cannot read from {addr}: {e}")),
        };
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    judge_status_line(&head, addr, path)
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// Reads the first line of an answer: `HTTP/x 200` is healthy, anything else says why not.
fn judge_status_line(head: &[u8], addr: SocketAddr, path: &str) -> Result<(), String> {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line).trim().to_owned();
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some(version), Some("200")) if version.starts_with("HTTP/") => Ok(()),
        (Some(version), Some(_)) if version.starts_with("HTTP/") => {
            Err(format!("{path} answered {line:?}"))
        }
        _ => Err(format!("not an HTTP answer from {addr}: {line:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn wildcard_listen_goes_to_loopback() {
        let t = |s: &str| target(s.parse().unwrap()).to_string();
        assert_eq!(t("0.0.0.0:5000"), "127.0.0.1:5000");
        assert_eq!(t("[::]:80"), "[::1]:80");
        assert_eq!(t("10.1.2.3:81"), "10.1.2.3:81");
    }

    #[test]
    fn status_lines() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert!(judge_status_line(b"HTTP/1.1 200 OK\r\n", a, "/health").is_ok());
        let e = judge_status_line(b"HTTP/1.1 503 Service Unavailable\r\n", a, "/health");
        assert!(e.unwrap_err().contains("503"));
        assert!(judge_status_line(b"SSH-2.0-x\r\n", a, "/")
            .unwrap_err()
            .contains("not an HTTP answer"));
        assert!(judge_status_line(b"", a, "/").is_err());
    }

    /// A real listener on loopback: one that answers 200, one that never answers.
    #[test]
    fn against_a_real_socket() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                .unwrap();
        });
        assert_eq!(check(addr, "/health", Duration::from_secs(3)), Ok(()));
        server.join().unwrap();

        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = silent.local_addr().unwrap();
        let started = Instant::now();
        let err = check(addr, "/health", Duration::from_millis(200)).unwrap_err();
        assert!(err.contains("within"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
