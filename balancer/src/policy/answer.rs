//! A route's fixed answer, given by the balancer without any upstream: `respond` (a status and a
//! body, e.g. a maintenance page) or `redirect` (a 301/302/307/308 to a `Location` built from a
//! template). Owned here so that the rules of the template (`{path}`, `{host}`, nothing else) and
//! of the codes are checked once at load and the request path only fills in the pieces (pure).

use bytes::Bytes;
use http::header::HeaderValue;
use http::StatusCode;

/// What the route answers instead of forwarding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `respond = { status, body, content_type }`.
    Respond(Respond),
    /// `redirect = { to, code }`.
    Redirect(Redirect),
}

/// A fixed status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Respond {
    pub status: StatusCode,
    pub body: Bytes,
    pub content_type: HeaderValue,
}

/// A redirect: the code and the `Location` template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    pub code: StatusCode,
    pieces: Vec<Piece>,
}

/// One piece of a `Location` template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    /// The request's path and query, as sent.
    Path,
    /// The request's Host, as sent (with its port, if any).
    Host,
}

/// The codes a `redirect` may use.
pub const REDIRECT_CODES: [u16; 4] = [301, 302, 307, 308];

/// The content type of a `respond` body when none is given.
pub const DEFAULT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

impl Respond {
    /// `status` (200 to 599), `body` and an optional `content_type` (a valid header value).
    pub fn new(status: i64, body: &str, content_type: Option<&str>) -> Result<Respond, String> {
        let status = u16::try_from(status)
            .ok()
            .filter(|s| (200..=599).contains(s))
            .and_then(|s| StatusCode::from_u16(s).ok())
            .ok_or_else(|| format!("status {status} must be between 200 and 599"))?;
        let content_type = HeaderValue::from_str(content_type.unwrap_or(DEFAULT_CONTENT_TYPE))
            .map_err(|_| "content_type must be visible text without line breaks".to_string())?;
        Ok(Respond {
            status,
            body: Bytes::copy_from_slice(body.as_bytes()),
            content_type,
        })
    }
}

impl Redirect {
    /// `to` is an absolute URL (`http://` or `https://` and a host) or an absolute path, with
    /// `{path}` and `{host}` as the only placeholders; `code` is one of [`REDIRECT_CODES`].
    pub fn new(to: &str, code: i64) -> Result<Redirect, String> {
        let code = u16::try_from(code)
            .ok()
            .filter(|c| REDIRECT_CODES.contains(c))
            .and_then(|c| StatusCode::from_u16(c).ok())
            .ok_or_else(|| format!("code {code} must be 301, 302, 307 or 308"))?;
        if let Some(bad) = to.chars().find(|c| !c.is_ascii_graphic()) {
            return Err(format!(
                "`to` may hold only visible ASCII (no spaces, no line breaks; percent-encode the rest), not {bad:?}"
            ));
        }
        let after_scheme = to
            .strip_prefix("https://")
            .or_else(|| to.strip_prefix("http://"));
        let absolute = match after_scheme {
            Some(rest) => !rest.is_empty() && !rest.starts_with('/'),
            None => to.starts_with('/') && !to.starts_with("//"),
        };
        if !absolute {
            return Err(format!(
                "`to` must be an absolute URL (https://host/...) or an absolute path (/...), not `{to}`"
            ));
        }
        Ok(Redirect {
            code,
            pieces: pieces(to)?,
        })
    }

    /// The `Location` for a request to `path_and_query` with `host` (`None`: the request named
    /// none, and the template needs it).
    pub fn location(&self, path_and_query: &str, host: Option<&[u8]>) -> Option<HeaderValue> {
        let mut out = Vec::with_capacity(64);
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.extend_from_slice(text.as_bytes()),
                Piece::Path => out.extend_from_slice(path_and_query.as_bytes()),
                Piece::Host => out.extend_from_slice(host?),
            }
        }
        HeaderValue::from_bytes(&out).ok()
    }
}

/// `https://{host}{path}` → text, host, path; any other `{...}` (or a lone brace) refused.
fn pieces(to: &str) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut rest = to;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return Err("`to` has a `}` without its `{`".into());
        }
        if open > 0 {
            out.push(Piece::Text(rest[..open].to_owned()));
        }
        let Some(len) = rest[open..].find('}') else {
            return Err("`to` has a `{` without its `}`".into());
        };
        out.push(match &rest[open..open + len + 1] {
            "{path}" => Piece::Path,
            "{host}" => Piece::Host,
            other => return Err(format!("`to` knows {{path}} and {{host}}, not `{other}`")),
        });
        rest = &rest[open + len + 1..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest.to_owned()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn redirects_fill_path_and_host() {
        let r = Redirect::new("https://example.com{path}", 301).unwrap();
        assert_eq!(
            r.location("/a?b=1", None).unwrap(),
            "https://example.com/a?b=1"
        );
        let r = Redirect::new("https://{host}{path}", 308).unwrap();
        assert_eq!(
            r.location("/x", Some(b"h:8080")).unwrap(),
            "https://h:8080/x"
        );
        assert_eq!(r.location("/x", None), None, "no Host to fill in");
        let r = Redirect::new("/moved", 302).unwrap();
        assert_eq!(r.location("/x", None).unwrap(), "/moved");
    }

    #[test]
    fn bad_redirects_are_refused() {
        for (to, code) in [
            ("https://e.com", 303),
            ("https://e.com", 200),
            ("e.com/x", 301),
            ("//e.com/x", 301),
            ("https://", 301),
            ("https:///x", 301),
            ("ftp://e.com", 301),
            ("/a b", 301),
            ("/a\r\nX: y", 301),
            ("/{query}", 301),
            ("/{path", 301),
            ("/path}", 301),
        ] {
            assert!(Redirect::new(to, code).is_err(), "{to} {code}");
        }
    }

    #[test]
    fn respond_checks_status_and_type() {
        let r = Respond::new(503, "down\n", None).unwrap();
        assert_eq!(r.status, 503);
        assert_eq!(r.content_type, DEFAULT_CONTENT_TYPE);
        assert!(Respond::new(101, "", None).is_err());
        assert!(Respond::new(600, "", None).is_err());
        assert!(Respond::new(-1, "", None).is_err());
        assert!(Respond::new(200, "", Some("text/html\r\nX: y")).is_err());
    }

    proptest! {
        /// Any template of visible text and placeholders gives a valid Location, whose text
        /// is the template with the pieces put in.
        #[test]
        fn templates_substitute_as_written(
            parts in prop::collection::vec(prop_oneof![
                "[a-zA-Z0-9/._~-]{0,8}".prop_map(Some),
                Just(None),
            ], 0..6),
            path in "/[a-z0-9/?=&]{0,12}",
        ) {
            let mut to = String::from("https://example.com");
            let mut expected = to.clone();
            for part in &parts {
                match part {
                    Some(text) => { to.push_str(text); expected.push_str(text); }
                    None => { to.push_str("{path}"); expected.push_str(&path); }
                }
            }
            let r = Redirect::new(&to, 307).unwrap();
            let location = r.location(&path, None).unwrap();
            prop_assert_eq!(location.to_str().unwrap(), expected);
        }
    }
}
