//! `--max-connections N`: at most N client connections open at once. The accept loop keeps
//! running past the limit; each connection beyond it is answered `503 Service Unavailable` with
//! `Connection: close` and closed, so clients see a clean refusal instead of a hang or a reset,
//! and service resumes as soon as connections close. The count and the limit are metrics
//! (`balancer_connections`, `balancer_max_connections`, `balancer_connections_refused_total`).

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What a refused connection reads.
pub const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: text/plain; charset=utf-8\r\ncontent-length: 46\r\nconnection: close\r\n\r\n\
503 Service Unavailable: too many connections\n";

/// How long a refused connection is given to take its answer.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(2);

/// The open-connection count against the limit, shared by the accept loop and the connections.
#[derive(Clone)]
pub struct ConnectionLimit {
    max: i64,
    open: Gauge,
    refused: Counter,
}

/// One open connection's place under the limit, given back when dropped.
pub struct Permit(Gauge);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl ConnectionLimit {
    /// `open` and `max_gauge` are the metrics; `max_gauge` is set here.
    pub fn new(max: u64, open: Gauge, max_gauge: &Gauge, refused: Counter) -> Self {
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        max_gauge.set(max);
        ConnectionLimit { max, open, refused }
    }

    /// A place for one more connection, unless the limit is reached.
    pub fn try_acquire(&self) -> Option<Permit> {
        if self.open.inc() >= self.max {
            self.open.dec();
            self.refused.inc();
            return None;
        }
        Some(Permit(self.open.clone()))
    }

    #[cfg(test)]
    fn open(&self) -> i64 {
        self.open.get()
    }
}

/// Answers a connection over the limit with [`REFUSAL`] and closes it, in a task of its own.
/// What the client sent is read and dropped before closing, so the close is not a reset that
/// could destroy the answer before the client reads it.
pub fn refuse(mut stream: TcpStream) {
    tokio::spawn(async move {
        let _ = tokio::time::timeout(REFUSAL_TIMEOUT, async {
            stream.write_all(REFUSAL).await?;
            stream.shutdown().await?;
            let mut sink = [0u8; 1024];
            while stream.read(&mut sink).await? > 0 {}
            Ok::<(), std::io::Error>(())
        })
        .await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_holds_and_places_come_back() {
        let (open, max, refused) = (Gauge::default(), Gauge::default(), Counter::default());
        let limit = ConnectionLimit::new(2, open.clone(), &max, refused.clone());
        assert_eq!(max.get(), 2);
        let a = limit.try_acquire().unwrap();
        let _b = limit.try_acquire().unwrap();
        assert!(limit.try_acquire().is_none());
        assert_eq!((limit.open(), refused.get()), (2, 1));
        drop(a);
        assert_eq!(limit.open(), 1);
        assert!(limit.try_acquire().is_some());
    }

    #[test]
    fn the_refusal_is_a_well_formed_http_answer() {
        let text = std::str::from_utf8(REFUSAL).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains("connection: close"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
    }
}
