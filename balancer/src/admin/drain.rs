//! The admin API's drain: `POST /backends/{addr}/drain` and `POST /backends/{addr}/undrain`.
//!
//! A drained backend gets no new requests (not even retries) while its in-flight ones finish;
//! `/status` shows it `draining`; undrain puts it back. Mutating calls need
//! `Authorization: Bearer $BALANCER_ADMIN_TOKEN`: with no token configured they answer `403`
//! (the admin port is reachable from every container of the Compose network, so an open
//! mutating API would let any of them take the service down), with a wrong or missing one `401`.
//! The token is checked before the address, so a caller without it learns nothing about which
//! addresses exist. An address that is no backend is `404`.

use http::header::HeaderValue;
use http::{Method, StatusCode};

use std::sync::Arc;

use crate::backends::backend::Backend;

/// The answer to a mutating admin call: status, a one-line body and its type.
pub struct Answer {
    pub status: StatusCode,
    pub body: String,
    pub content_type: &'static str,
    /// Whether to ask for credentials (`WWW-Authenticate: Bearer`).
    pub challenge: bool,
}

impl Answer {
    /// A plain-text answer.
    pub fn text(status: StatusCode, body: impl Into<String>) -> Answer {
        Answer {
            status,
            body: body.into(),
            content_type: "text/plain; charset=utf-8",
            challenge: status == StatusCode::UNAUTHORIZED,
        }
    }

    /// A JSON answer.
    pub fn json(status: StatusCode, body: String) -> Answer {
        Answer {
            content_type: "application/json",
            ..Answer::text(status, body)
        }
    }
}

fn answer(status: StatusCode, body: impl Into<String>) -> Answer {
    Answer::text(status, body)
}

/// What a path under `/backends/` asks: the address and drain (`true`) or undrain.
pub fn parse_path(path: &str) -> Option<(String, bool)> {
    let rest = path.strip_prefix("/backends/")?;
    let (addr, action) = rest.rsplit_once('/')?;
    let drain = match action {
        "drain" => true,
        "undrain" => false,
        _ => return None,
    };
    Some((percent_decode(addr)?, drain))
}

/// `%5B::1%5D:80` -> `[::1]:80`; `None` for a broken escape or non-UTF-8.
fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Compares in time independent of where the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `Ok` when `authorization` carries the configured token; otherwise the refusal.
pub fn authorize(authorization: Option<&HeaderValue>, token: Option<&str>) -> Result<(), Answer> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Err(answer(
            StatusCode::FORBIDDEN,
            "403 Forbidden: no BALANCER_ADMIN_TOKEN is configured, so the admin API is read-only\n",
        ));
    };
    let given = authorization
        .map(HeaderValue::as_bytes)
        .and_then(|v| v.strip_prefix(b"Bearer "));
    match given {
        Some(given) if same(given, token.as_bytes()) => Ok(()),
        _ => Err(answer(
            StatusCode::UNAUTHORIZED,
            "401 Unauthorized: Authorization: Bearer <BALANCER_ADMIN_TOKEN> required\n",
        )),
    }
}

/// Serves a request to a path under `/backends/`; `backends` are every group's (an address in
/// several groups is drained in all of them).
pub fn respond(
    method: &Method,
    path: &str,
    authorization: Option<&HeaderValue>,
    token: Option<&str>,
    backends: &[Arc<Backend>],
) -> Answer {
    let Some((addr, drain)) = parse_path(path) else {
        return answer(StatusCode::NOT_FOUND, "404 Not Found\n");
    };
    if method != Method::POST {
        return answer(
            StatusCode::METHOD_NOT_ALLOWED,
            "405 Method Not Allowed: use POST\n",
        );
    }
    if let Err(refused) = authorize(authorization, token) {
        return refused;
    }
    let matching: Vec<&Arc<Backend>> = backends.iter().filter(|b| b.label == addr).collect();
    let Some(&backend) = matching.first() else {
        return answer(
            StatusCode::NOT_FOUND,
            format!("404 Not Found: no backend {addr:?}\n"),
        );
    };
    let changed = matching
        .iter()
        .fold(false, |changed, b| b.set_drained(drain) | changed);
    let state = if drain { "draining" } else { "active" };
    if changed {
        tracing::info!(backend = %backend.addr, state, "admin API: backend {}", if drain { "drained" } else { "undrained" });
    }
    Answer::json(
        StatusCode::OK,
        format!(
            "{{\"address\":\"{}\",\"state\":\"{state}\",\"changed\":{changed},\"in_flight\":{}}}\n",
            backend.label,
            matching.iter().map(|b| b.in_flight()).sum::<i64>()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            parse_path("/backends/127.0.0.1:5001/drain"),
            Some(("127.0.0.1:5001".into(), true))
        );
        assert_eq!(
            parse_path("/backends/%5B::1%5D:80/undrain"),
            Some(("[::1]:80".into(), false))
        );
        assert_eq!(parse_path("/backends/1.2.3.4:5/stop"), None);
        assert_eq!(parse_path("/backends/%zz/drain"), None);
        assert_eq!(parse_path("/status"), None);
    }

    #[test]
    fn tokens() {
        let bearer = |v: &'static str| HeaderValue::from_static(v);
        let token = Some("0123456789abcdef");
        assert_eq!(
            authorize(None, None).unwrap_err().status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            authorize(Some(&bearer("Bearer x")), Some(""))
                .unwrap_err()
                .status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            authorize(None, token).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
        let wrong = authorize(Some(&bearer("Bearer 0123456789abcdeF")), token).unwrap_err();
        assert!(wrong.challenge);
        assert!(authorize(Some(&bearer("Basic 0123456789abcdef")), token).is_err());
        assert!(authorize(Some(&bearer("Bearer 0123456789abcdef")), token).is_ok());
    }
}
