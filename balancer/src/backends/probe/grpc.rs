//! `--health-check grpc`: the standard gRPC health check (`grpc.health.v1.Health/Check`, the
//! whole server: `service` empty) as one unary call over h2c, its few bytes encoded by hand.
//!
//! The request is a gRPC message of length 0 (an empty `HealthCheckRequest` encodes to nothing);
//! the answer passes when the call ends with `grpc-status: 0` and its `HealthCheckResponse` says
//! `SERVING` (field 1, a varint: the bytes `08 01`). Anything else fails the probe, with a reason
//! that names what was wrong.

use bytes::Bytes;
use http::{header, HeaderMap, Request, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use crate::backends::backend::Backend;

const PATH: &str = "/grpc.health.v1.Health/Check";
/// Not compressed (0), length 0, no bytes: `HealthCheckRequest { service: "" }`.
const REQUEST: [u8; 5] = [0; 5];
/// `HealthCheckResponse.ServingStatus.SERVING`.
const SERVING: u64 = 1;

/// One `Health/Check` call on a fresh h2c connection.
pub(super) async fn check(backend: &Backend, io: TokioIo<TcpStream>) -> Result<(), String> {
    let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
        .await
        .map_err(|e| format!("h2c handshake: {e}"))?;
    let conn = tokio::spawn(conn);
    let host = backend.host_header.to_str().unwrap_or("localhost");
    let req = Request::post(format!("http://{host}{PATH}"))
        .version(Version::HTTP_2)
        .header(header::CONTENT_TYPE, "application/grpc")
        .header(header::TE, "trailers")
        .header(header::USER_AGENT, "balancer-health-check")
        .body(Full::new(Bytes::from_static(&REQUEST)))
        .map_err(|e| format!("request: {e}"))?;
    let result = async {
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("h2c response: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("status {}", resp.status().as_u16()));
        }
        let (head, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| format!("grpc response body: {e}"))?;
        let trailers = body.trailers().cloned();
        verdict(&head.headers, trailers.as_ref(), &body.to_bytes())
    }
    .await;
    conn.abort();
    result
}

/// Whether a finished call passes: `grpc-status` 0 (in the trailers, or in the head of a
/// trailers-only answer) and a `SERVING` response.
fn verdict(head: &HeaderMap, trailers: Option<&HeaderMap>, body: &[u8]) -> Result<(), String> {
    let ending = trailers
        .filter(|t| t.contains_key("grpc-status"))
        .unwrap_or(head);
    let Some(code) = ending.get("grpc-status") else {
        return Err("grpc: no grpc-status".into());
    };
    if code != "0" {
        let code = String::from_utf8_lossy(code.as_bytes());
        return match ending.get("grpc-message") {
            Some(m) => Err(format!(
                "grpc-status {code}: {}",
                String::from_utf8_lossy(m.as_bytes())
            )),
            None => Err(format!("grpc-status {code}")),
        };
    }
    match serving_status(message(body)?)? {
        SERVING => Ok(()),
        other => Err(format!("grpc health: {}", status_name(other))),
    }
}

fn status_name(status: u64) -> String {
    match status {
        0 => "UNKNOWN".into(),
        1 => "SERVING".into(),
        2 => "NOT_SERVING".into(),
        3 => "SERVICE_UNKNOWN".into(),
        other => format!("status {other}"),
    }
}

/// The one message of a unary answer, after its 5-byte header (not compressed: the probe asks for
/// no compression).
fn message(body: &[u8]) -> Result<&[u8], String> {
    let [flag, a, b, c, d, rest @ ..] = body else {
        return Err(format!("grpc: a {}-byte answer has no message", body.len()));
    };
    if *flag != 0 {
        return Err("grpc: compressed message".into());
    }
    let len = u32::from_be_bytes([*a, *b, *c, *d]) as usize;
    if rest.len() != len {
        return Err(format!(
            "grpc: message of {len} bytes, {} received",
            rest.len()
        ));
    }
    Ok(rest)
}

/// `HealthCheckResponse.status` (field 1, a varint) of a protobuf message; absent is 0
/// (`UNKNOWN`), other fields are skipped.
fn serving_status(mut msg: &[u8]) -> Result<u64, String> {
    let mut status = 0;
    while !msg.is_empty() {
        let key = varint(&mut msg)?;
        match (key >> 3, key & 7) {
            (1, 0) => status = varint(&mut msg)?,
            (_, 0) => {
                varint(&mut msg)?;
            }
            (_, 1) => skip(&mut msg, 8)?,
            (_, 2) => {
                let len = varint(&mut msg)?;
                skip(&mut msg, len)?;
            }
            (_, 5) => skip(&mut msg, 4)?,
            (field, wire) => {
                return Err(format!(
                    "grpc: bad protobuf (field {field}, wire type {wire})"
                ))
            }
        }
    }
    Ok(status)
}

fn varint(buf: &mut &[u8]) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = buf
            .split_first()
            .ok_or("grpc: bad protobuf (truncated varint)")?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("grpc: bad protobuf (varint too long)".into())
}

fn skip(buf: &mut &[u8], len: u64) -> Result<(), String> {
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    *buf = buf
        .get(len..)
        .ok_or("grpc: bad protobuf (truncated field)")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(n, v)| {
                (
                    http::HeaderName::from_static(n),
                    HeaderValue::from_static(v),
                )
            })
            .collect()
    }

    #[test]
    fn serving_passes_anything_else_names_why() {
        let head = map(&[("content-type", "application/grpc")]);
        let ok = map(&[("grpc-status", "0")]);
        let serving = [0, 0, 0, 0, 2, 0x08, 0x01];
        assert_eq!(verdict(&head, Some(&ok), &serving), Ok(()));
        let not_serving = [0, 0, 0, 0, 2, 0x08, 0x02];
        assert_eq!(
            verdict(&head, Some(&ok), &not_serving).unwrap_err(),
            "grpc health: NOT_SERVING"
        );
        // An empty message is the default: UNKNOWN.
        assert_eq!(
            verdict(&head, Some(&ok), &[0; 5]).unwrap_err(),
            "grpc health: UNKNOWN"
        );
        // A trailers-only answer ends in its head.
        let unimplemented = map(&[("grpc-status", "12"), ("grpc-message", "no health")]);
        assert_eq!(
            verdict(&unimplemented, None, &[]).unwrap_err(),
            "grpc-status 12: no health"
        );
        let failed = map(&[("grpc-status", "14")]);
        assert_eq!(
            verdict(&head, Some(&failed), &serving).unwrap_err(),
            "grpc-status 14"
        );
        assert_eq!(
            verdict(&head, None, &serving).unwrap_err(),
            "grpc: no grpc-status"
        );
        assert!(verdict(&head, Some(&ok), &[0, 0, 0, 0, 3, 0x08, 0x01]).is_err());
        assert!(verdict(&head, Some(&ok), &[1, 0, 0, 0, 2, 0x08, 0x01]).is_err());
    }

    #[test]
    fn other_fields_are_skipped() {
        // field 2 (string "ab"), field 3 varint 300, field 4 fixed64, field 5 fixed32, then status.
        let msg = [
            0x12, 2, b'a', b'b', 0x18, 0xac, 0x02, 0x21, 1, 2, 3, 4, 5, 6, 7, 8, 0x2d, 1, 2, 3, 4,
            0x08, 0x01,
        ];
        assert_eq!(serving_status(&msg), Ok(SERVING));
        assert!(serving_status(&[0x08]).is_err());
        assert!(serving_status(&[0x12, 5, 1]).is_err());
        assert!(
            serving_status(&[0x0b]).is_err(),
            "wire type 3 is not handled"
        );
        assert!(serving_status(&[0xff; 11]).is_err());
    }
}
