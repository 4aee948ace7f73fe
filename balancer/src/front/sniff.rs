//! Telling HTTP/1 from HTTP/2 (prior knowledge) on a fresh plain connection by peeking at the
//! client's first bytes, without consuming them, bounded by `--header-read-timeout`.
//!
//! Owned apart from `front::server` because it is a small pure-ish rule with its own tests: the
//! accept loop only asks which protocol a connection speaks.

use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

/// How HTTP/2 clients with prior knowledge open a connection (RFC 9113, section 3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How often a client whose first bytes are only the start of [`H2_PREFACE`] is looked at again.
const SNIFF_RETRY: Duration = Duration::from_millis(5);

#[derive(Debug, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    Http2,
}

/// Waits for the client's first bytes and tells HTTP/1 from HTTP/2 by looking at them without
/// consuming them; `None` when the client closed or sent nothing within `timeout`.
///
/// hyper-util's automatic builder does this by reading the bytes and handing them back through a
/// wrapper, which makes hyper's first read start at an offset and double every HTTP/1 read
/// buffer to 16 KiB: 2 MiB more at 256 connections. Peeking leaves the socket as it was, so the
/// chosen protocol reads it from the start. It also bounds the time before the first byte, which
/// hyper's header timer (it starts with the first byte) does not.
pub async fn sniff(stream: &TcpStream, timeout: Duration) -> Option<Protocol> {
    let deadline = Instant::now() + timeout;
    let mut first = [0u8; H2_PREFACE.len()];
    loop {
        let n = tokio::time::timeout_at(deadline, stream.peek(&mut first))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        if first[..n] != H2_PREFACE[..n] {
            return Some(Protocol::Http1);
        }
        if n == H2_PREFACE.len() {
            return Some(Protocol::Http2);
        }
        // Only the start of the preface so far. The socket stays readable with those bytes in
        // it, so waiting for readiness would spin: look again shortly (HTTP/2 clients send the
        // preface in one write, so this is rare).
        // (The bytes stay there even after the client closed: only the deadline ends this.)
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep_until(deadline.min(Instant::now() + SNIFF_RETRY)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    async fn sniffed(chunks: &[&[u8]], timeout: Duration) -> Option<Protocol> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let chunks: Vec<Vec<u8>> = chunks.iter().map(|c| c.to_vec()).collect();
        let client = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let mut s = TcpStream::connect(addr).await.unwrap();
            for chunk in chunks {
                s.write_all(&chunk).await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // Keep the connection open until the server has decided.
            tokio::time::sleep(Duration::from_millis(300)).await;
        });
        let (server, _) = listener.accept().await.unwrap();
        let protocol = sniff(&server, timeout).await;
        client.abort();
        protocol
    }

    #[tokio::test]
    async fn http1_is_recognised_from_its_first_byte() {
        let got = sniffed(&[b"GET / HTTP/1.1\r\n"], Duration::from_secs(1)).await;
        assert_eq!(got, Some(Protocol::Http1));
    }

    #[tokio::test]
    async fn a_post_is_http1_even_though_it_starts_like_the_preface() {
        let got = sniffed(&[b"P", b"OST / HTTP/1.1\r\n"], Duration::from_secs(1)).await;
        assert_eq!(got, Some(Protocol::Http1));
    }

    #[tokio::test]
    async fn the_h2_preface_is_recognised_even_when_split() {
        let got = sniffed(
            &[&H2_PREFACE[..5], &H2_PREFACE[5..]],
            Duration::from_secs(1),
        )
        .await;
        assert_eq!(got, Some(Protocol::Http2));
    }

    #[tokio::test]
    async fn a_client_that_stops_inside_the_preface_is_dropped_at_the_timeout() {
        let started = std::time::Instant::now();
        let got = sniffed(&[&H2_PREFACE[..5]], Duration::from_millis(150)).await;
        assert_eq!(got, None);
        assert!(started.elapsed() < Duration::from_millis(290));
    }

    #[tokio::test]
    async fn a_silent_client_is_dropped_at_the_timeout() {
        let got = sniffed(&[], Duration::from_millis(100)).await;
        assert_eq!(got, None);
    }
}
