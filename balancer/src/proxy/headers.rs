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
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hv(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).unwrap()
    }

    #[test]
    fn strips_fixed_and_connection_named_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, hv("close, X-Secret, keep-alive"));
        h.insert("x-secret", hv("1"));
        h.insert("keep-alive", hv("timeout=5"));
        h.insert(header::TRANSFER_ENCODING, hv("chunked"));
        h.insert(header::PROXY_AUTHORIZATION, hv("Basic abc"));
        h.insert(header::HOST, hv("example"));
        h.insert("x-kept", hv("yes"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 2);
        assert_eq!(h["host"], "example");
        assert_eq!(h["x-kept"], "yes");
    }

    /// `(TE values, another header's "name: value")` and whether TE survives a request's stripping.
    #[test]
    fn a_request_keeps_a_lone_te_trailers_and_nothing_else_of_te() {
        let cases: [(&[&str], &str, bool); 7] = [
            (&["trailers"], "x-a: 1", true),
            (&["trailers"], "keep-alive: 5", true),
            (&["trailers"], "connection: te", true),
            (&["gzip"], "x-a: 1", false),
            (&["Trailers"], "x-a: 1", false),
            (&["trailers, gzip"], "x-a: 1", false),
            (&["trailers", "trailers"], "x-a: 1", false),
        ];
        for (values, other, kept) in cases {
            let mut h: HeaderMap = values.iter().map(|v| (header::TE, hv(v))).collect();
            let (n, v) = other.split_once(": ").unwrap();
            h.append(HeaderName::from_bytes(n.as_bytes()).unwrap(), hv(v));
            let found = scan(&h);
            if found.hop_by_hop {
                strip_found_hop_by_hop(&mut h, found.connection);
            }
            assert_eq!(
                (found.te_trailers(), h.contains_key(header::TE)),
                (kept, kept),
                "{values:?}"
            );
            strip_hop_by_hop(&mut h);
            assert!(!h.contains_key(header::TE), "a response never keeps one");
        }
    }

    #[test]
    fn only_a_single_request_id_is_the_clients() {
        let id = HeaderName::from_static("x-request-id");
        let mut h = HeaderMap::new();
        assert_eq!(scan(&h).single_request_id(), None);
        h.append(&id, hv("one"));
        assert_eq!(scan(&h).single_request_id(), Some(&hv("one")));
        h.append(&id, hv("two"));
        assert_eq!(scan(&h).single_request_id(), None, "two are nobody's");
    }

    #[test]
    fn forwarding_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, hv("shop.example:8080"));
        h.append(&X_FORWARDED_FOR, hv("10.0.0.1"));
        h.append(&X_FORWARDED_FOR, hv(" 10.0.0.2 "));
        h.insert(&X_REAL_IP, hv("6.6.6.6"));
        add_forwarding(&mut h, &hv("127.0.0.1"), &hv("http"));
        assert_eq!(h[&X_FORWARDED_FOR], "10.0.0.1, 10.0.0.2, 127.0.0.1");
        assert_eq!(h.get_all(&X_FORWARDED_FOR).iter().count(), 1);
        assert_eq!(h[&X_REAL_IP], "127.0.0.1");
        assert_eq!(h[&X_FORWARDED_PROTO], "http");
        assert_eq!(h[&X_FORWARDED_HOST], "shop.example:8080");
        assert_eq!(h[header::HOST], "shop.example:8080");
    }

    /// The Host values the balancer forwards (and copies into X-Forwarded-Host): the rule lives in
    /// `shared::host`, these are the cases the proxy's contract names.
    #[test]
    fn host_validation() {
        use shared::host::is_valid_host;
        for good in [
            "example",
            "shop.example:8080",
            "127.0.0.1:5000",
            "[::1]:80",
            "a-b.example",
        ] {
            assert!(is_valid_host(good.as_bytes()), "{good} rejected");
        }
        for bad in [
            "",
            "a b.example",
            "user@example",
            "user:pw@example",
            "a/b",
            "ex:port",
            "[::1",
            ":80",
            "a:99999",
            "a:1:2",
        ] {
            assert!(!is_valid_host(bad.as_bytes()), "{bad} accepted");
        }
    }

    #[test]
    fn upgrade_detection() {
        let mut h = HeaderMap::new();
        h.insert(header::UPGRADE, hv("websocket"));
        assert!(upgrade_protocol(&h).is_none());
        h.insert(header::CONNECTION, hv("keep-alive, Upgrade"));
        assert_eq!(upgrade_protocol(&h).unwrap(), "websocket");
    }

    fn header_name() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("connection".to_string()),
            Just("keep-alive".to_string()),
            Just("proxy-connection".to_string()),
            Just("te".to_string()),
            Just("trailer".to_string()),
            Just("transfer-encoding".to_string()),
            Just("upgrade".to_string()),
            Just("proxy-authorization".to_string()),
            Just("proxy-authenticate".to_string()),
            Just("x-forwarded-for".to_string()),
            Just("host".to_string()),
            Just("x-request-id".to_string()),
            "x-[a-z]{1,8}",
            "[a-z][a-z0-9-]{0,12}",
        ]
    }

    fn header_value() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("trailers".to_string()),
            Just("Trailers".to_string()),
            "trailers, (gzip|deflate)",
            "[ -~]{0,24}",
            "(x-[a-z]{1,8}|close|keep-alive|upgrade)(, ?(x-[a-z]{1,8}|te|trailer))*",
            "([0-9]{1,3}\\.){3}[0-9]{1,3}",
        ]
    }

    fn header_map(pairs: &[(String, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(n.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                h.append(n, v);
            }
        }
        h
    }

    proptest! {
        /// The text match finds exactly the names of the list.
        #[test]
        fn the_fixed_names_match_the_list(name in header_name()) {
            if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
                prop_assert_eq!(is_fixed_hop_by_hop(&name), fixed_hop_by_hop().contains(&&name));
            }
        }

        /// The one-pass scan finds exactly what the hashed lookups it replaces find.
        #[test]
        fn the_scan_agrees_with_lookups(
            pairs in proptest::collection::vec((header_name(), header_value()), 0..16)
        ) {
            let h = header_map(&pairs);
            let found = scan(&h);
            let id = &HeaderName::from_static("x-request-id");
            prop_assert_eq!(found.hosts, h.get_all(header::HOST).iter().count());
            prop_assert_eq!(found.host.as_ref(), h.get(header::HOST));
            prop_assert_eq!(found.request_ids, h.get_all(id).iter().count());
            prop_assert_eq!(found.request_id.as_ref(), h.get(id));
            prop_assert_eq!(found.forwarded_for, h.contains_key(&X_FORWARDED_FOR));
            prop_assert_eq!(found.connection, h.contains_key(header::CONNECTION));
            let te: Vec<&[u8]> = h.get_all(header::TE).iter().map(HeaderValue::as_bytes).collect();
            let lone_trailers = te == [b"trailers".as_slice()];
            prop_assert_eq!(found.te_trailers(), lone_trailers);
            let any_fixed = fixed_hop_by_hop()
                .iter()
                .any(|n| h.contains_key(*n) && !(*n == header::TE && lone_trailers));
            prop_assert_eq!(found.hop_by_hop, any_fixed);
        }

        /// A request as `forward::prepare` strips it (scan, then the removals when the scan found
        /// a hop-by-hop header): nothing hop-by-hop is left but a lone `TE: trailers`, and nothing
        /// else is touched.
        #[test]
        fn a_request_keeps_only_a_lone_te_trailers(
            pairs in proptest::collection::vec((header_name(), header_value()), 0..16)
        ) {
            let mut h = header_map(&pairs);
            let before = h.clone();
            let connection: Vec<&str> = before
                .get_all(header::CONNECTION)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            let te: Vec<&[u8]> = before.get_all(header::TE).iter().map(HeaderValue::as_bytes).collect();
            let found = scan(&h);
            if found.hop_by_hop {
                strip_found_hop_by_hop(&mut h, found.connection);
            }
            for name in h.keys() {
                prop_assert!(!is_hop_by_hop_in_request(name, &connection, &te), "{name} leaked");
            }
            for name in before.keys() {
                if !is_hop_by_hop_in_request(name, &connection, &te) {
                    let a: Vec<_> = before.get_all(name).iter().collect();
                    let b: Vec<_> = h.get_all(name).iter().collect();
                    prop_assert_eq!(a, b);
                }
            }
        }

        #[test]
        fn no_hop_by_hop_header_survives(
            pairs in proptest::collection::vec((header_name(), header_value()), 0..16)
        ) {
            let mut h = header_map(&pairs);
            let before = h.clone();
            let connection: Vec<&str> = before
                .get_all(header::CONNECTION)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            strip_hop_by_hop(&mut h);
            for name in h.keys() {
                prop_assert!(!is_hop_by_hop(name, &connection), "{name} leaked");
            }
            // Nothing else is touched: every end-to-end header keeps all of its values, in order.
            for name in before.keys() {
                if !is_hop_by_hop(name, &connection) {
                    let a: Vec<_> = before.get_all(name).iter().collect();
                    let b: Vec<_> = h.get_all(name).iter().collect();
                    prop_assert_eq!(a, b);
                }
            }
        }

        #[test]
        fn forwarded_for_ends_with_the_peer(
            earlier in proptest::collection::vec("([0-9]{1,3}\\.){3}[0-9]{1,3}|[0-9a-f:]{2,20}|unknown", 0..4),
            peer in "([0-9]{1,3}\\.){3}[0-9]{1,3}|::1|2001:db8::[0-9a-f]{1,4}",
            host in proptest::option::of("[a-z0-9.-]{1,20}(:[0-9]{1,5})?"),
            proto in prop_oneof![Just("http"), Just("https")],
            forged_proto in proptest::collection::vec("https?|wss?|[a-z]{1,6}", 0..3),
        ) {
            let mut h = HeaderMap::new();
            for e in &earlier {
                h.append(&X_FORWARDED_FOR, hv(e));
            }
            for f in &forged_proto {
                h.append(&X_FORWARDED_PROTO, hv(f));
            }
            if let Some(host) = &host {
                h.insert(header::HOST, hv(host));
            }
            add_forwarding(&mut h, &hv(&peer), &hv(proto));
            // The listener decides the scheme; whatever the client claimed is gone.
            let want = hv(proto);
            let protos: Vec<_> = h.get_all(&X_FORWARDED_PROTO).iter().collect();
            prop_assert_eq!(protos, vec![&want]);
            let xff: Vec<_> = h.get_all(&X_FORWARDED_FOR).iter().collect();
            prop_assert_eq!(xff.len(), 1);
            let parts: Vec<String> = xff[0].to_str().unwrap().split(", ").map(str::to_owned).collect();
            let mut expected = earlier.clone();
            expected.push(peer.clone());
            prop_assert_eq!(parts, expected);
            prop_assert_eq!(h[&X_REAL_IP].to_str().unwrap(), peer.as_str());
            prop_assert_eq!(h.get(&X_FORWARDED_HOST).map(|v| v.to_str().unwrap().to_owned()), host.clone());
            prop_assert_eq!(h.get(header::HOST).map(|v| v.to_str().unwrap().to_owned()), host);
        }
    }
}
