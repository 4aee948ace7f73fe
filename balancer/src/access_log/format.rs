//! The access log's line formats: what one request looks like as a `combined` line or a JSON
//! object, and the escaping that keeps whatever a client sent inside its field.
//!
//! Owns [`Format`], [`AccessEntry`], [`MAX_FIELD`], the two line writers and the byte pushers
//! they share (escapes, numbers, seconds). Everything here appends to a caller's `Vec<u8>` and
//! allocates nothing of its own, so a worker formats straight into its batch buffer; the
//! timestamp arrives already rendered (see `time.rs`), so nothing here reads a clock.
//!
//! Escaping: in `combined`, `"`, `\`, control bytes and bytes outside ASCII are written as
//! `\xHH` (NGINX's default), and the `key=value` fields escape spaces too; in `json` strings are
//! JSON escaped and a byte that is not valid UTF-8 becomes `\u00HH`. Each field is cut at
//! [`MAX_FIELD`] bytes so one line stays bounded.

use std::time::Duration;

/// `--access-log`: which line each request writes, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// No access log (the default, like Traefik and Caddy).
    Off,
    /// NGINX `combined`, then ` rid=... backend=... upstream_time=... request_time=... route=...`.
    Combined,
    /// One JSON object per line, keys named after NGINX's variables.
    Json,
}

/// Longest part of any one field that is logged (user agent, referer, target, request ID).
pub const MAX_FIELD: usize = 4096;

/// One request as the access log sees it; every field is borrowed from the request path.
#[derive(Debug, Clone, Copy)]
pub struct AccessEntry<'a> {
    pub remote_addr: &'a str,
    pub method: &'a str,
    /// The request target as received (`/path?query`).
    pub target: &'a str,
    pub version: http::Version,
    pub status: u16,
    /// Response body size when known (Content-Length); `-` / `null` otherwise.
    pub body_bytes: Option<u64>,
    pub referer: Option<&'a [u8]>,
    pub user_agent: Option<&'a [u8]>,
    pub request_id: Option<&'a [u8]>,
    /// The backend that answered (`host:port`), if any did.
    pub backend: Option<&'a str>,
    /// Time the backend took to answer, if one was asked.
    pub upstream_time: Option<Duration>,
    /// Time from the request's arrival to the response head.
    pub request_time: Duration,
    /// The route the request took (its name in the config file), if one did.
    pub route: Option<&'a str>,
}

/// `$remote_addr - - [$time_local] "$request" $status $body_bytes_sent "$http_referer"
/// "$http_user_agent" rid=... backend=... upstream_time=... request_time=... route=...`
pub(super) fn format_combined(out: &mut Vec<u8>, e: &AccessEntry<'_>, time: &[u8]) {
    push_clf(out, e.remote_addr.as_bytes());
    out.extend_from_slice(b" - - [");
    out.extend_from_slice(time);
    out.extend_from_slice(b"] \"");
    push_clf(out, e.method.as_bytes());
    out.push(b' ');
    push_clf(out, e.target.as_bytes());
    out.push(b' ');
    out.extend_from_slice(version_str(e.version).as_bytes());
    out.extend_from_slice(b"\" ");
    push_u64(out, u64::from(e.status));
    out.push(b' ');
    push_or_dash(out, e.body_bytes, push_u64);
    out.extend_from_slice(b" \"");
    push_or_dash(out, e.referer, push_clf);
    out.extend_from_slice(b"\" \"");
    push_or_dash(out, e.user_agent, push_clf);
    out.extend_from_slice(b"\" rid=");
    push_or_dash(out, e.request_id, push_token);
    out.extend_from_slice(b" backend=");
    push_or_dash(out, e.backend.map(str::as_bytes), push_token);
    out.extend_from_slice(b" upstream_time=");
    push_or_dash(out, e.upstream_time, push_seconds);
    out.extend_from_slice(b" request_time=");
    push_seconds(out, e.request_time);
    out.extend_from_slice(b" route=");
    push_or_dash(out, e.route.map(str::as_bytes), push_token);
    out.push(b'\n');
}

/// One JSON object; strings JSON-escaped, unknown values `null`.
pub(super) fn format_json(out: &mut Vec<u8>, e: &AccessEntry<'_>, time: &[u8]) {
    out.extend_from_slice(b"{\"time_iso8601\":\"");
    out.extend_from_slice(time);
    out.extend_from_slice(b"\",\"remote_addr\":");
    push_json_str(out, e.remote_addr.as_bytes());
    out.extend_from_slice(b",\"request_method\":");
    push_json_str(out, e.method.as_bytes());
    out.extend_from_slice(b",\"request_uri\":");
    push_json_str(out, e.target.as_bytes());
    out.extend_from_slice(b",\"server_protocol\":\"");
    out.extend_from_slice(version_str(e.version).as_bytes());
    out.extend_from_slice(b"\",\"status\":");
    push_u64(out, u64::from(e.status));
    out.extend_from_slice(b",\"body_bytes_sent\":");
    push_or_null(out, e.body_bytes, push_u64);
    out.extend_from_slice(b",\"http_referer\":");
    push_or_null(out, e.referer, push_json_str);
    out.extend_from_slice(b",\"http_user_agent\":");
    push_or_null(out, e.user_agent, push_json_str);
    out.extend_from_slice(b",\"request_id\":");
    push_or_null(out, e.request_id, push_json_str);
    out.extend_from_slice(b",\"backend\":");
    push_or_null(out, e.backend.map(str::as_bytes), push_json_str);
    out.extend_from_slice(b",\"upstream_response_time\":");
    push_or_null(out, e.upstream_time, push_seconds);
    out.extend_from_slice(b",\"request_time\":");
    push_seconds(out, e.request_time);
    out.extend_from_slice(b",\"route\":");
    push_or_null(out, e.route.map(str::as_bytes), push_json_str);
    out.extend_from_slice(b"}\n");
}

fn version_str(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

fn push_or_dash<T>(out: &mut Vec<u8>, value: Option<T>, push: fn(&mut Vec<u8>, T)) {
    match value {
        Some(v) => push(out, v),
        None => out.push(b'-'),
    }
}

fn push_or_null<T>(out: &mut Vec<u8>, value: Option<T>, push: fn(&mut Vec<u8>, T)) {
    match value {
        Some(v) => push(out, v),
        None => out.extend_from_slice(b"null"),
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn push_hex_escape(out: &mut Vec<u8>, prefix: &[u8], b: u8) {
    out.extend_from_slice(prefix);
    out.push(HEX[usize::from(b >> 4)]);
    out.push(HEX[usize::from(b & 0xf)]);
}

/// NGINX's default escaping: `"`, `\`, control bytes and non-ASCII bytes become `\xHH`.
fn push_clf(out: &mut Vec<u8>, raw: &[u8]) {
    let raw = &raw[..raw.len().min(MAX_FIELD)];
    let mut start = 0;
    for (i, &b) in raw.iter().enumerate() {
        if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            out.extend_from_slice(&raw[start..i]);
            push_hex_escape(out, b"\\x", b);
            start = i + 1;
        }
    }
    out.extend_from_slice(&raw[start..]);
}

/// A `key=value` value: [`push_clf`], and spaces too, so the value ends at the next space.
fn push_token(out: &mut Vec<u8>, raw: &[u8]) {
    let raw = &raw[..raw.len().min(MAX_FIELD)];
    let mut start = 0;
    for (i, &b) in raw.iter().enumerate() {
        if b == b' ' {
            push_clf(out, &raw[start..i]);
            push_hex_escape(out, b"\\x", b);
            start = i + 1;
        }
    }
    push_clf(out, &raw[start..]);
}

/// A JSON string. Valid UTF-8 passes through (escaped where JSON requires it); a byte that is
/// not valid UTF-8 is written as the code point of the same value (`\u00HH`), so the line stays
/// valid JSON whatever a header held.
fn push_json_str(out: &mut Vec<u8>, raw: &[u8]) {
    let raw = &raw[..raw.len().min(MAX_FIELD)];
    out.push(b'"');
    for chunk in raw.utf8_chunks() {
        let valid = chunk.valid().as_bytes();
        let mut start = 0;
        for (i, &b) in valid.iter().enumerate() {
            let escape: &[u8] = match b {
                b'"' => b"\\\"",
                b'\\' => b"\\\\",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                b'\t' => b"\\t",
                0..=0x1f | 0x7f => b"",
                _ => continue,
            };
            out.extend_from_slice(&valid[start..i]);
            if escape.is_empty() {
                push_hex_escape(out, b"\\u00", b);
            } else {
                out.extend_from_slice(escape);
            }
            start = i + 1;
        }
        out.extend_from_slice(&valid[start..]);
        for &b in chunk.invalid() {
            push_hex_escape(out, b"\\u00", b);
        }
    }
    out.push(b'"');
}

pub(super) fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        // n % 10 < 10, so the cast cannot truncate.
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Seconds with millisecond resolution, as NGINX writes `$request_time`: `0.004`.
fn push_seconds(out: &mut Vec<u8>, d: Duration) {
    push_u64(out, d.as_secs());
    let ms = d.subsec_millis();
    // ms < 1000, so each digit is < 10.
    out.extend_from_slice(&[
        b'.',
        b'0' + (ms / 100) as u8,
        b'0' + (ms / 10 % 10) as u8,
        b'0' + (ms % 10) as u8,
    ]);
}

/// A typical entry and NGINX's `combined` pattern, for these tests and the writer's in `mod.rs`.
#[cfg(test)]
pub(super) mod fixtures {
    use super::AccessEntry;
    use std::time::Duration;

    pub fn entry() -> AccessEntry<'static> {
        AccessEntry {
            remote_addr: "192.0.2.7",
            method: "GET",
            target: "/static/style.css?v=1",
            version: http::Version::HTTP_11,
            status: 200,
            body_bytes: Some(1234),
            referer: Some(b"http://localhost:5000/"),
            user_agent: Some(b"oha/1.4.5"),
            request_id: None,
            backend: Some("172.18.0.3:5000"),
            upstream_time: Some(Duration::from_micros(4_321)),
            request_time: Duration::from_micros(5_678),
            route: Some("default"),
        }
    }

    /// NGINX's `log_format combined`, then the fields this balancer adds.
    pub fn nginx_combined() -> regex::Regex {
        regex::Regex::new(concat!(
            r#"^(?P<addr>\S+) - - \[(?P<time>\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4})\] "#,
            r#""(?P<request>[^"]*)" (?P<status>\d{3}) (?P<bytes>\d+|-) "#,
            r#""(?P<referer>[^"]*)" "(?P<ua>[^"]*)" "#,
            r#"rid=(?P<rid>\S+) backend=(?P<backend>\S+) "#,
            r#"upstream_time=(?P<up>\d+\.\d{3}|-) request_time=(?P<rt>\d+\.\d{3}) "#,
            r#"route=(?P<route>\S+)\n$"#,
        ))
        .unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{entry, nginx_combined};
    use super::*;

    fn combined(e: &AccessEntry<'_>) -> String {
        let mut out = Vec::new();
        format_combined(&mut out, e, b"02/Dec/2026:04:20:58 +0000");
        String::from_utf8(out).unwrap()
    }

    fn json(e: &AccessEntry<'_>) -> serde_json::Value {
        let mut out = Vec::new();
        format_json(&mut out, e, b"2026-12-02T04:20:58+00:00");
        let text = std::str::from_utf8(&out).unwrap();
        assert_eq!(text.matches('\n').count(), 1, "one line: {text:?}");
        assert!(text.ends_with('\n'));
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn combined_matches_the_nginx_format() {
        let line = combined(&entry());
        assert_eq!(
            line,
            "192.0.2.7 - - [02/Dec/2026:04:20:58 +0000] \"GET /static/style.css?v=1 HTTP/1.1\" \
             200 1234 \"http://localhost:5000/\" \"oha/1.4.5\" rid=- backend=172.18.0.3:5000 \
             upstream_time=0.004 request_time=0.005 route=default\n"
        );
        let caps = nginx_combined().captures(&line).unwrap();
        assert_eq!(&caps["request"], "GET /static/style.css?v=1 HTTP/1.1");
        let local = AccessEntry {
            body_bytes: None,
            referer: None,
            user_agent: None,
            request_id: Some(b"0190a4c1-7d3e-7c2b-9f00-5b1e2d3c4a5f"),
            backend: None,
            upstream_time: None,
            status: 503,
            version: http::Version::HTTP_2,
            ..entry()
        };
        let line = combined(&local);
        let caps = nginx_combined().captures(&line).unwrap();
        assert_eq!(&caps["bytes"], "-");
        assert_eq!(&caps["ua"], "-");
        assert_eq!(&caps["rid"], "0190a4c1-7d3e-7c2b-9f00-5b1e2d3c4a5f");
        assert_eq!(&caps["backend"], "-");
        assert_eq!(&caps["up"], "-");
        assert_eq!(&caps["request"], "GET /static/style.css?v=1 HTTP/2.0");
    }

    #[test]
    fn json_parses_with_every_field() {
        let v = json(&entry());
        assert_eq!(v["time_iso8601"], "2026-12-02T04:20:58+00:00");
        assert_eq!(v["remote_addr"], "192.0.2.7");
        assert_eq!(v["request_method"], "GET");
        assert_eq!(v["request_uri"], "/static/style.css?v=1");
        assert_eq!(v["server_protocol"], "HTTP/1.1");
        assert_eq!(v["status"], 200);
        assert_eq!(v["body_bytes_sent"], 1234);
        assert_eq!(v["http_referer"], "http://localhost:5000/");
        assert_eq!(v["http_user_agent"], "oha/1.4.5");
        assert!(v["request_id"].is_null());
        assert_eq!(v["backend"], "172.18.0.3:5000");
        assert_eq!(v["upstream_response_time"], 0.004);
        assert_eq!(v["request_time"], 0.005);
        assert_eq!(v["route"], "default");
        let local = json(&AccessEntry {
            backend: None,
            upstream_time: None,
            body_bytes: None,
            ..entry()
        });
        assert!(local["backend"].is_null() && local["upstream_response_time"].is_null());
        assert!(local["body_bytes_sent"].is_null());
    }

    /// Quotes, backslashes, CR/LF and other control or non-ASCII bytes in a header or the path
    /// cannot end a field, start a new line, or break the JSON.
    #[test]
    fn hostile_bytes_cannot_forge_lines() {
        let ua: &[u8] =
            b"evil\" 200 \"x\r\n127.0.0.1 - - [forged] \\ \x1b[31m \x7f caf\xc3\xa9 \xff";
        let target = "/a\"b\\c";
        let e = AccessEntry {
            user_agent: Some(ua),
            referer: Some(b"\n"),
            request_id: Some(b"id with spaces\""),
            target,
            ..entry()
        };
        let line = combined(&e);
        assert_eq!(line.matches('\n').count(), 1, "{line:?}");
        let caps = nginx_combined().captures(&line).unwrap();
        assert_eq!(
            &caps["ua"],
            r"evil\x22 200 \x22x\x0D\x0A127.0.0.1 - - [forged] \x5C \x1B[31m \x7F caf\xC3\xA9 \xFF"
        );
        assert_eq!(&caps["referer"], r"\x0A");
        assert_eq!(&caps["rid"], r"id\x20with\x20spaces\x22");
        assert_eq!(&caps["request"], r"GET /a\x22b\x5Cc HTTP/1.1");

        let v = json(&e);
        let mut expected_ua = String::from_utf8_lossy(&ua[..ua.len() - 1]).into_owned();
        expected_ua.push('\u{ff}');
        assert_eq!(v["http_user_agent"], expected_ua.as_str());
        assert_eq!(v["http_referer"], "\n");
        assert_eq!(v["request_uri"], target);
    }

    #[test]
    fn fields_are_cut_so_a_line_stays_bounded() {
        let long = vec![b'a'; 3 * MAX_FIELD];
        let line = combined(&AccessEntry {
            user_agent: Some(&long),
            ..entry()
        });
        let caps = nginx_combined().captures(&line).unwrap();
        assert_eq!(caps["ua"].len(), MAX_FIELD);
    }
}
