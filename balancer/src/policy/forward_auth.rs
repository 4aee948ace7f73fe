//! A route's `forward_auth = { url, copy_headers, timeout }`: each request is first asked about
//! to an authentication service (Authelia, authentik, oauth2-proxy, ...), the way Traefik's
//! forwardAuth, Caddy's `forward_auth` and NGINX's `auth_request` do. Owned here, pure: the
//! settings as plain data, the auth request built from the client's (a `GET` to `url`, no body,
//! the client's headers and `X-Forwarded-Method`, `-Proto`, `-Host`, `-Uri`, `-For`), and what the
//! answer means: a 2xx lets the request through with the `copy_headers` of the answer put on it
//! (those the client sent removed first, so a client cannot forge them), anything else goes back
//! to the client as it is. The exchange itself (a pooled client, the timeout, the bounded body)
//! is `proxy::forward_auth`'s.

use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Scheme, Uri};
use http::{Method, Request, StatusCode};

use super::header_rules::{reserved, HOP_BY_HOP};

/// `timeout` when the route names none (APISIX's forward-auth default is 3 s too).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);
/// The shortest `timeout`.
pub const MIN_TIMEOUT: Duration = Duration::from_millis(10);
/// The longest `timeout`: the client waits that long before its request even starts.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);
/// The largest auth answer body read (a login page or a JSON error); a larger one is a 503.
pub const MAX_ANSWER_BODY: usize = 64 << 10;
/// The most `copy_headers` a route may list.
pub const MAX_COPY_HEADERS: usize = 64;

pub static X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
pub static X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// One route's forward authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardAuth {
    /// The auth service: `http://`, a host, a path and query (absolute, as the client sends it).
    pub url: Uri,
    /// The URL's `host[:port]`, the auth request's Host.
    host: HeaderValue,
    /// The headers of a 2xx answer put on the request the backends get.
    pub copy_headers: Vec<HeaderName>,
    /// For the whole exchange: connecting, the answer's head and its body.
    pub timeout: Duration,
}

/// What the auth request is built from: the client's request as it arrived.
pub struct Original<'a> {
    pub method: &'a Method,
    /// Path and query, as sent.
    pub target: &'a str,
    pub headers: &'a HeaderMap,
    /// The Host the client named, if any.
    pub host: Option<&'a HeaderValue>,
    /// `http` or `https`: how the client reached the balancer.
    pub proto: &'a HeaderValue,
    /// The client's address, as text.
    pub client_ip: &'a HeaderValue,
    /// The peer is a trusted proxy (`--trusted-proxies`): its `X-Forwarded-For` chain is kept.
    pub trusted_peer: bool,
    /// The request's ID, for the auth service's logs.
    pub request_id: &'a HeaderValue,
}

/// `url`: `http://` (no TLS to the auth service), a host, no user or fragment.
pub fn parse_url(raw: &str) -> Result<Uri, String> {
    let uri: Uri = raw
        .parse()
        .map_err(|e| format!("`{raw}` is not a URL like http://auth:9091/verify ({e})"))?;
    if uri.scheme() != Some(&Scheme::HTTP) {
        return Err(format!(
            "`{raw}` must start with http:// (the auth service is asked over plain HTTP)"
        ));
    }
    let Some(authority) = uri.authority() else {
        return Err(format!("`{raw}` names no host"));
    };
    if authority.host().is_empty() {
        return Err(format!("`{raw}` names no host"));
    }
    if authority.as_str().contains('@') {
        return Err(format!(
            "`{raw}` has a user in it: credentials do not belong in the URL"
        ));
    }
    if raw.contains('#') {
        return Err(format!(
            "`{raw}` has a fragment (#...), which is never sent"
        ));
    }
    Ok(uri)
}

/// `timeout`: a duration from [`MIN_TIMEOUT`] to [`MAX_TIMEOUT`].
pub fn parse_timeout(raw: &str) -> Result<Duration, String> {
    let d = shared::duration::parse_duration(raw)?;
    if !(MIN_TIMEOUT..=MAX_TIMEOUT).contains(&d) {
        return Err(format!("timeout `{raw}` must be between 10ms and 1m"));
    }
    Ok(d)
}

impl ForwardAuth {
    /// The policy for a URL checked by [`parse_url`], names checked by
    /// `header_rules::rule_name` and a timeout checked by [`parse_timeout`].
    pub fn new(url: Uri, copy_headers: Vec<HeaderName>, timeout: Duration) -> ForwardAuth {
        let host = url
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            .unwrap_or_else(|| HeaderValue::from_static("localhost"));
        ForwardAuth {
            url,
            host,
            copy_headers,
            timeout,
        }
    }

    /// The request asked of the auth service about `original`: a `GET` of the URL without a
    /// body, with the client's headers (cookies, `Authorization`, ...) minus the hop-by-hop,
    /// framing and forwarding ones, and the `X-Forwarded-*` headers saying what was asked.
    pub fn request(&self, original: &Original<'_>) -> Request<()> {
        let mut headers = HeaderMap::with_capacity(original.headers.len() + 8);
        let named = connection_named(original.headers);
        for (name, value) in original.headers {
            let lower = name.as_str();
            if reserved(lower)
                || lower.starts_with("x-forwarded-")
                || *name == header::EXPECT
                || named.contains(name)
            {
                continue;
            }
            headers.append(name.clone(), value.clone());
        }
        headers.insert(header::HOST, self.host.clone());
        let method = HeaderValue::from_str(original.method.as_str())
            .unwrap_or_else(|_| HeaderValue::from_static("GET"));
        headers.insert(X_FORWARDED_METHOD.clone(), method);
        headers.insert(X_FORWARDED_PROTO.clone(), original.proto.clone());
        if let Some(host) = original.host {
            headers.insert(X_FORWARDED_HOST.clone(), host.clone());
        }
        let uri = HeaderValue::from_str(original.target)
            .unwrap_or_else(|_| HeaderValue::from_static("/"));
        headers.insert(X_FORWARDED_URI.clone(), uri);
        headers.insert(X_FORWARDED_FOR.clone(), forwarded_for(original));
        headers.insert(X_REAL_IP.clone(), original.client_ip.clone());
        headers.insert(X_REQUEST_ID.clone(), original.request_id.clone());
        let mut req = Request::new(());
        *req.uri_mut() = self.url.clone();
        *req.headers_mut() = headers;
        req
    }

    /// Whether an answer with `status` lets the request through (any 2xx).
    pub fn allows(status: StatusCode) -> bool {
        status.is_success()
    }

    /// The `copy_headers` an allowing answer carries, every value of each.
    pub fn granted(&self, answer: &HeaderMap) -> HeaderMap {
        let mut granted = HeaderMap::new();
        for name in &self.copy_headers {
            for value in answer.get_all(name) {
                granted.append(name.clone(), value.clone());
            }
        }
        granted
    }

    /// Puts `granted` on the request the backends get: every `copy_headers` name the client
    /// sent is removed first, whether the answer carried it or not.
    pub fn apply(&self, granted: &HeaderMap, onto: &mut HeaderMap) {
        for name in &self.copy_headers {
            onto.remove(name);
        }
        for (name, value) in granted {
            onto.append(name.clone(), value.clone());
        }
    }
}

/// The headers of a refusing answer as the client gets them: all of them (`Location`,
/// `Set-Cookie`, `WWW-Authenticate`, ...) but the hop-by-hop ones and the framing, which the
/// balancer writes for the body it relays.
pub fn denial_headers(answer: &mut HeaderMap) {
    let named = connection_named(answer);
    for name in named {
        answer.remove(name);
    }
    for name in HOP_BY_HOP {
        answer.remove(name);
    }
}

/// The auth request's `X-Forwarded-For`: a trusted proxy's chain with the peer appended, else
/// the peer alone (a client's own claim is not passed on as if it were its address).
fn forwarded_for(original: &Original<'_>) -> HeaderValue {
    if !original.trusted_peer {
        return original.client_ip.clone();
    }
    let mut joined: Vec<u8> = Vec::with_capacity(64);
    for value in original.headers.get_all(&X_FORWARDED_FOR) {
        let v = value.as_bytes().trim_ascii();
        if !v.is_empty() {
            joined.extend_from_slice(v);
            joined.extend_from_slice(b", ");
        }
    }
    joined.extend_from_slice(original.client_ip.as_bytes());
    HeaderValue::from_bytes(&joined).unwrap_or_else(|_| original.client_ip.clone())
}

/// The header names a message's `Connection` header lists (hop-by-hop for that message).
fn connection_named(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect()
}

#[cfg(test)]
mod tests;
