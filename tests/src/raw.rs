//! Raw bytes over TCP, for requests no well-behaved client would send (malformed, smuggling, trickling),
//! and the reading of what came back: status lines, heads, bodies.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What a raw exchange produced.
#[derive(Debug)]
pub struct RawReply {
    pub bytes: Vec<u8>,
    pub elapsed: Duration,
    /// The server closed (or reset) the connection, rather than the wait running out.
    pub closed: bool,
}

impl RawReply {
    /// Status of the first response, None when the server closed without answering.
    pub fn status(&self) -> Option<u16> {
        status_of(&self.bytes)
    }

    /// Status of every response in the stream (pipelined requests get several).
    pub fn statuses(&self) -> Vec<u16> {
        let text = String::from_utf8_lossy(&self.bytes);
        text.split("\r\n")
            .filter(|line| line.starts_with("HTTP/1."))
            .filter_map(|line| line.split_whitespace().nth(1)?.parse().ok())
            .collect()
    }

    /// "400", "closed" etc., for reports.
    pub fn verdict(&self) -> String {
        match self.statuses().as_slice() {
            [] if self.closed => "closed, no response".to_string(),
            [] => "no response, left open".to_string(),
            [one] => one.to_string(),
            many => format!("{many:?}"),
        }
    }

    /// A clear 4xx, or a close without a response.
    pub fn rejected(&self) -> bool {
        match self.status() {
            None => self.closed && self.bytes.is_empty(),
            Some(code) => (400..500).contains(&code),
        }
    }
}

/// Sends `bytes` on a fresh connection and reads until the server closes (a reset counts as a close) or
/// `wait` passes.
pub async fn send(addr: SocketAddr, bytes: &[u8], wait: Duration) -> RawReply {
    let began = Instant::now();
    let mut stream = match tokio::time::timeout(wait, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => panic!("connect to {addr}: {e}"),
        Err(_) => panic!("connect to {addr}: timed out"),
    };
    // The server may close before reading everything (e.g. on a bad request line): not an error here.
    let _ = stream.write_all(bytes).await;
    let (bytes, closed) = read_to_close(&mut stream, began + wait).await;
    RawReply {
        bytes,
        elapsed: began.elapsed(),
        closed,
    }
}

/// Sends `bytes` from the local address `source` (any 127.x.y.z on Linux loopback, to be many
/// clients) on a fresh connection and reads until close or `wait`; `Err` when it cannot connect.
pub async fn exchange_from(
    source: std::net::IpAddr,
    addr: SocketAddr,
    bytes: &[u8],
    wait: Duration,
) -> std::io::Result<Vec<u8>> {
    let began = Instant::now();
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    let mut stream = tokio::time::timeout(wait, socket.connect(addr))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    let _ = stream.write_all(bytes).await;
    Ok(read_to_close(&mut stream, began + wait).await.0)
}

/// Like [`send`], returning only the bytes read.
pub async fn exchange(addr: SocketAddr, bytes: &[u8], timeout: Duration) -> Vec<u8> {
    send(addr, bytes, timeout).await.bytes
}

/// Reads until close, reset, or `deadline`.
pub async fn read_until_close(stream: &mut TcpStream, deadline: Instant) -> Vec<u8> {
    read_to_close(stream, deadline).await.0
}

/// Reads until close or reset (true) or `deadline` (false).
async fn read_to_close(stream: &mut TcpStream, deadline: Instant) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (out, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (out, false),
        }
    }
}

/// Reads one response with a `Content-Length` body from a connection that stays open (keep-alive);
/// `Err` when the server closes first or `deadline` passes.
pub async fn read_one_response(
    stream: &mut TcpStream,
    deadline: Instant,
) -> Result<RawResponse, String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if let Ok(response) = RawResponse::parse(&out) {
            let length = response
                .header("content-length")
                .and_then(|l| l.parse().ok());
            if length.is_some_and(|l: usize| response.body.len() >= l) {
                return Ok(response);
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Err(format!("closed after {} bytes", out.len())),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return Err(format!("no whole response in time: {} bytes", out.len())),
        }
    }
}

/// The status code of the first response in `bytes`, if it starts with an HTTP status line.
pub fn status_of(bytes: &[u8]) -> Option<u16> {
    let line = bytes.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split_whitespace();
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    parts.next()?.parse().ok()
}

/// A raw HTTP/1.x response split into status, lower-cased headers and body.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The response at the start of `bytes`; `Err` says what is missing (no complete head, no HTTP/1.x
    /// status line, no status code).
    pub fn parse(bytes: &[u8]) -> Result<RawResponse, String> {
        let end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or("no complete response head")?;
        let head = std::str::from_utf8(&bytes[..end]).map_err(|_| "response head is not UTF-8")?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let mut parts = status_line.split_whitespace();
        if !parts.next().unwrap_or_default().starts_with("HTTP/1.") {
            return Err(format!("unexpected status line {status_line:?}"));
        }
        let status = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("no status code in {status_line:?}"))?;
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        Ok(RawResponse {
            status,
            headers,
            body: bytes[end + 4..].to_vec(),
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_headers_and_body() {
        let reply =
            RawResponse::parse(b"HTTP/1.1 503 Service Unavailable\r\nA-B: c\r\n\r\ndown").unwrap();
        assert_eq!(reply.status, 503);
        assert_eq!(reply.header("a-b"), Some("c"));
        assert_eq!(reply.body, b"down");
        assert!(RawResponse::parse(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(RawResponse::parse(b"SSH-2.0\r\n\r\n").is_err());
    }
}
