//! Minimal loopback probes used to wait for readiness and to read the counter: one HTTP/1.1
//! `GET` on a fresh connection, and one Redis command over RESP.
//!
//! Hand-written on `std::net` on purpose: the xtask must observe the stack from outside with no
//! shared code (and no extra client crates) between the probe and the thing it checks. The response
//! is read by the end-to-end tests' [`RawResponse`] parser, the one rule for "a status line, a head,
//! a body" in the workspace.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use e2e::raw::RawResponse;

/// Status code and body of one HTTP response.
#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    pub body: Vec<u8>,
}

/// `GET path` on a fresh connection with `Connection: close`, bounded by `timeout` per step.
pub fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<HttpReply> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: xtask-probe\r\nConnection: close\r\n\r\n"
    )
    .with_context(|| format!("sending GET {path} to {addr}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .with_context(|| format!("reading the answer to GET {path} from {addr}"))?;
    parse_http_reply(&raw).with_context(|| format!("answer to GET {path} from {addr}"))
}

fn parse_http_reply(raw: &[u8]) -> Result<HttpReply> {
    let response = RawResponse::parse(raw).map_err(anyhow::Error::msg)?;
    Ok(HttpReply {
        status: response.status,
        body: response.body,
    })
}

/// A Redis reply, as far as the probes need it.
#[derive(Debug, PartialEq)]
pub enum RedisReply {
    Status(String),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
}

/// Sends one command to the Redis at `addr` and returns its reply; an error reply is an `Err`.
pub fn redis_command(addr: SocketAddr, args: &[&str], timeout: Duration) -> Result<RedisReply> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("connecting to redis at {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut request = format!("*{}\r\n", args.len());
    for arg in args {
        request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    stream.write_all(request.as_bytes())?;
    let mut reader = BufReader::new(stream);
    read_reply(&mut reader).with_context(|| format!("redis {} at {addr}", args.join(" ")))
}

fn read_reply(reader: &mut impl BufRead) -> Result<RedisReply> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let line = line.trim_end_matches(['\r', '\n']);
    let (kind, rest) = line.split_at(line.len().min(1));
    match kind {
        "+" => Ok(RedisReply::Status(rest.to_string())),
        "-" => bail!("redis error: {rest}"),
        ":" => Ok(RedisReply::Integer(rest.parse().context("integer reply")?)),
        "$" => {
            let len: i64 = rest.parse().context("bulk length")?;
            if len < 0 {
                return Ok(RedisReply::Bulk(None));
            }
            let mut data = vec![0; len as usize + 2];
            reader.read_exact(&mut data)?;
            data.truncate(len as usize);
            Ok(RedisReply::Bulk(Some(data)))
        }
        _ => bail!("unexpected redis reply {line:?}"),
    }
}

/// The integer stored at `key` (0 when the key does not exist yet).
pub fn redis_get_i64(addr: SocketAddr, key: &str) -> Result<i64> {
    match redis_command(addr, &["GET", key], Duration::from_secs(2))? {
        RedisReply::Bulk(None) => Ok(0),
        RedisReply::Bulk(Some(bytes)) => std::str::from_utf8(&bytes)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .with_context(|| format!("redis key {key:?} does not hold an integer")),
        other => bail!("unexpected reply to GET {key}: {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_and_body() {
        let reply =
            parse_http_reply(b"HTTP/1.1 503 Service Unavailable\r\nA: b\r\n\r\ndown").unwrap();
        assert_eq!(reply.status, 503);
        assert_eq!(reply.body, b"down");
        assert!(parse_http_reply(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(parse_http_reply(b"SSH-2.0\r\n\r\n").is_err());
    }

    #[test]
    fn parses_redis_replies() {
        let mut r = &b"+PONG\r\n"[..];
        assert_eq!(
            read_reply(&mut r).unwrap(),
            RedisReply::Status("PONG".into())
        );
        let mut r = &b"$2\r\n42\r\n"[..];
        assert_eq!(
            read_reply(&mut r).unwrap(),
            RedisReply::Bulk(Some(b"42".to_vec()))
        );
        let mut r = &b"$-1\r\n"[..];
        assert_eq!(read_reply(&mut r).unwrap(), RedisReply::Bulk(None));
        let mut r = &b":7\r\n"[..];
        assert_eq!(read_reply(&mut r).unwrap(), RedisReply::Integer(7));
        let mut r = &b"-ERR nope\r\n"[..];
        assert!(read_reply(&mut r).is_err());
    }
}
