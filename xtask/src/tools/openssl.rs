//! `openssl s_time`: TLS handshakes against a door, one client per call. Each connection makes
//! a handshake (`-new`: a full one every time; `-reuse`: resuming one session) and one
//! `GET path`; the summary line gives the count. Used by the TLS bench (handshakes/s) and the
//! instructions bench (instructions per full handshake).

use std::net::SocketAddr;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};

/// The connections one `openssl s_time` client completes on `addr` in `secs` seconds, in `mode`
/// (`-new` or `-reuse`), each fetching `path` once.
pub fn s_time(addr: SocketAddr, mode: &str, path: &str, secs: u64) -> Result<u64> {
    let out = Command::new("openssl")
        .args(["s_time", "-connect", &addr.to_string(), mode])
        .args(["-time", &secs.to_string(), "-www", path])
        .stdin(Stdio::null())
        .output()
        .context("running openssl s_time")?;
    let text = String::from_utf8_lossy(&out.stdout);
    s_time_connections(&text)
        .with_context(|| format!("openssl s_time {mode} printed no count: {text}"))
}

/// The connection count of `s_time`'s summary line (`N connections in T real seconds`).
pub fn s_time_connections(text: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.contains("connections in") && l.contains("real seconds"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s_time_summaries_are_read() {
        let out = "Collecting connection statistics for 1 seconds\n\
                   tttt\n\n812 connections in 0.53s; 1532.08 connections/user sec, bytes read 0\n\
                   812 connections in 2 real seconds, 0 bytes read per connection\n";
        assert_eq!(s_time_connections(out), Some(812));
        assert_eq!(s_time_connections("no summary\n"), None);
    }
}
