//! Header rules for both directions, in one place.
//!
//! Hop-by-hop headers describe one connection, not the message, so a proxy must never pass them on
//! (RFC 9110 §7.6.1): the fixed list below plus every header named in `Connection`. Requests also
//! gain the `X-Forwarded-*` and `X-Real-IP` headers that tell the backend who the client is. These
//! are pure functions on a `HeaderMap` so property tests can hammer them.
//!
//! One exception on requests: a lone `TE: trailers` survives the stripping, because HTTP/2 allows
//! it (RFC 9113 §8.2.2) and gRPC needs it. It is still hop-by-hop for HTTP/1.1: the proxy removes
//! it from a request bound for an HTTP/1.1 connection ([`Scan::te_trailers`] says when to look).

use http::header::{self, Entry, HeaderMap, HeaderName, HeaderValue};

pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Headers that are always connection-scoped.
pub fn fixed_hop_by_hop() -> [&'static HeaderName; 9] {
    [
        &header::CONNECTION,
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &header::TE,
        &header::TRAILER,
        &header::TRANSFER_ENCODING,
        &header::UPGRADE,
        &header::PROXY_AUTHORIZATION,
        &header::PROXY_AUTHENTICATE,
    ]
}

/// True for the names in [`fixed_hop_by_hop`]: one match on the name's text (a length switch,
/// then at most one comparison) instead of nine `HeaderName` comparisons per header.
pub fn is_fixed_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "proxy-authorization"
            | "proxy-authenticate"
    )
}

/// What one pass over a message's headers found. Each `HeaderMap` lookup hashes the name it looks
/// for; comparing the names present against a few known ones does not, so the proxy scans a
/// request once and answers its checks and rewrites from here.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scan {
    /// `Connection` is present: the headers it names must go, and it may ask for an upgrade.
    pub connection: bool,
    /// Some hop-by-hop header is present (`Connection` or one of [`fixed_hop_by_hop`]), a lone
    /// `TE: trailers` aside.
    pub hop_by_hop: bool,
    /// What `TE` the request carries: a lone `TE: trailers` is kept for HTTP/2 backends.
    pub te: Te,
    /// `X-Forwarded-For` is present.
    pub forwarded_for: bool,
    /// How many `Host` values, and the first.
    pub hosts: usize,
    pub host: Option<HeaderValue>,
    /// How many `X-Request-Id` values, and the first.
    pub request_ids: usize,
    pub request_id: Option<HeaderValue>,
}

/// The `TE` values of a request, as far as the proxy cares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Te {
    #[default]
    Absent,
    /// Exactly one `TE` value, exactly `trailers`: kept for an HTTP/2 backend.
    Trailers,
    /// Any other value, or more than one: hop-by-hop, stripped.
    Other,
}

impl Te {
    /// The state after one more `TE` value (a byte comparison, no lookup).
    fn and(self, value: &HeaderValue) -> Te {
        if self == Te::Absent && value.as_bytes() == b"trailers" {
            Te::Trailers
        } else {
            Te::Other
        }
    }
}

impl Scan {
    /// The request carries a lone `TE: trailers`, which survives the stripping: a request bound
    /// for an HTTP/1.1 connection must lose it.
    pub fn te_trailers(&self) -> bool {
        self.te == Te::Trailers
    }

    /// The client's `X-Request-Id` when it sent exactly one.
    pub fn single_request_id(&self) -> Option<&HeaderValue> {
        self.request_id.as_ref().filter(|_| self.request_ids == 1)
    }
}

/// Scans `headers` once (see [`Scan`]).
pub fn scan(headers: &HeaderMap) -> Scan {
    let mut found = Scan::default();
    for (name, value) in headers {
        match name.as_str() {
            "host" => {
                found.hosts += 1;
                found.host.get_or_insert_with(|| value.clone());
            }
            "x-request-id" => {
                found.request_ids += 1;
                found.request_id.get_or_insert_with(|| value.clone());
            }
            "x-forwarded-for" => found.forwarded_for = true,
            "connection" => (found.connection, found.hop_by_hop) = (true, true),
            "te" => {
                found.te = found.te.and(value);
                found.hop_by_hop |= found.te == Te::Other;
            }
            _ => found.hop_by_hop |= is_fixed_hop_by_hop(name),
        }
    }
    found
}

/// Removes every hop-by-hop header, including the ones the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none of them: one pass over the names present (comparing standard
    // header names is cheap) spares them hashed lookups and removals in each direction.
    let (mut connection, mut any) = (false, false);
    for name in headers.keys() {
        if is_fixed_hop_by_hop(name) {
            any = true;
            connection |= name == header::CONNECTION;
        }
    }
    if any {
        strip_found(headers, connection, false);
    }
}

/// The removals of a request's hop-by-hop headers, once a [`scan`] found one: those of
/// [`strip_hop_by_hop`], except a lone `TE: trailers` (see the module doc).
pub fn strip_found_hop_by_hop(headers: &mut HeaderMap, connection: bool) {
    strip_found(headers, connection, true);
}

fn strip_found(headers: &mut HeaderMap, connection: bool, keep_te_trailers: bool) {
    if connection {
        // Collected first because removing while iterating the same map is impossible; this path
        // runs only when a Connection header is present.
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
            .collect();
        for name in named {
            // TE is in the fixed list: decided below.
            if !(keep_te_trailers && name == header::TE) {
                headers.remove(name);
            }
        }
    }
    for name in fixed_hop_by_hop() {
        if !(keep_te_trailers && name == header::TE) {
            headers.remove(name);
        } else if let Entry::Occupied(te) = headers.entry(name) {
            // One lookup, as the removal was: gone unless it is a lone `trailers`.
            let mut values = te.iter();
            if !matches!((values.next(), values.next()), (Some(v), None) if v == "trailers") {
                te.remove();
            }
        }
    }
}

#[cfg(test)]
/// True if `name` must not cross the proxy in a request, given the `Connection` and `TE` values
/// of the same request: [`is_hop_by_hop`], except a lone `TE: trailers`.
pub fn is_hop_by_hop_in_request(
    name: &HeaderName,
    connection_values: &[&str],
    te_values: &[&[u8]],
) -> bool {
    let lone_trailers = te_values == [b"trailers".as_slice()];
    !(name == header::TE && lone_trailers) && is_hop_by_hop(name, connection_values)
}

#[cfg(test)]
/// True if `name` must not cross the proxy, given the `Connection` header of the same message.
pub fn is_hop_by_hop(name: &HeaderName, connection_values: &[&str]) -> bool {
    fixed_hop_by_hop().contains(&name)
        || connection_values
            .iter()
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(name.as_str()))
}

/// [`add_forwarding_found`] with its own lookups: the form the property tests state the rule on.
#[cfg(test)]
pub fn add_forwarding(headers: &mut HeaderMap, client_ip: &HeaderValue, proto: &HeaderValue) {
    let host = headers.get(header::HOST).cloned();
    let forwarded_for = headers.contains_key(&X_FORWARDED_FOR);
    add_forwarding_found(headers, client_ip, proto, host, forwarded_for);
}

/// Adds the client-identifying headers to a request bound for a backend, given what a [`scan`]
/// found: the `Host` value and whether an `X-Forwarded-For` is present.
///
/// `client_ip` is the peer address rendered once per connection. Any `X-Forwarded-For` the client
/// sent is kept and the peer appended (the NGINX `$proxy_add_x_forwarded_for` rule); the others are
/// overwritten because this proxy is the edge and the client's own claims about them are not
/// trustworthy.
pub fn add_forwarding_found(
    headers: &mut HeaderMap,
    client_ip: &HeaderValue,
    proto: &HeaderValue,
    host: Option<HeaderValue>,
    forwarded_for: bool,
) {
    if forwarded_for {
        append_forwarded_for(headers, client_ip);
    } else {
        headers.insert(X_FORWARDED_FOR.clone(), client_ip.clone());
    }
    headers.insert(X_REAL_IP.clone(), client_ip.clone());
    headers.insert(X_FORWARDED_PROTO.clone(), proto.clone());
    match host {
        Some(host) => {
            headers.insert(X_FORWARDED_HOST.clone(), host);
        }
        None => {
            headers.remove(&X_FORWARDED_HOST);
        }
    }
}

/// Joins the client's `X-Forwarded-For` values and the peer into one value.
fn append_forwarded_for(headers: &mut HeaderMap, client_ip: &HeaderValue) {
    let existing = headers.get_all(&X_FORWARDED_FOR).iter();
    let mut joined: Vec<u8> = Vec::with_capacity(64);
    for value in existing {
        let v = trim_ascii(value.as_bytes());
        if v.is_empty() {
            continue;
        }
        if !joined.is_empty() {
            joined.extend_from_slice(b", ");
        }
        joined.extend_from_slice(v);
    }
    if !joined.is_empty() {
        joined.extend_from_slice(b", ");
    }
    joined.extend_from_slice(client_ip.as_bytes());
    // The parts were valid header values joined by ", ", so this cannot fail; fall back to the peer
    // alone rather than panic if it ever did.
    let value = HeaderValue::from_bytes(&joined).unwrap_or_else(|_| client_ip.clone());
    headers.insert(X_FORWARDED_FOR.clone(), value);
}

fn trim_ascii(mut b: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = b {
        if first.is_ascii_whitespace() {
            b = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = b {
        if last.is_ascii_whitespace() {
            b = rest;
        } else {
            break;
        }
    }
    b
}

/// The protocol named by an HTTP/1.1 upgrade request (`Connection: upgrade` + `Upgrade: x`).
pub fn upgrade_protocol(headers: &HeaderMap) -> Option<HeaderValue> {
    let wants_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    if !wants_upgrade {
        return None;
    }
    headers.get(header::UPGRADE).cloned()
}

/// Restores the two headers an upgrade needs after `strip_hop_by_hop` removed them.
pub fn set_upgrade(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, protocol);
}

#[cfg(test)]
mod tests;
