//! The header rules against their oracles: the one-pass scan against lookups, the strip against
//! a plain reading of RFC 9110's hop-by-hop list, on random header sets (proptest).

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

/// The values of every `Connection` header, as the oracles read them.
fn connection_values(h: &HeaderMap) -> Vec<&str> {
    h.get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect()
}

/// After stripping `before` into `after`: no header `hop` calls hop-by-hop is left, and every
/// other header keeps all of its values, in order (nothing else is touched).
fn only_hop_by_hop_went(
    before: &HeaderMap,
    after: &HeaderMap,
    hop: impl Fn(&HeaderName) -> bool,
) -> Result<(), TestCaseError> {
    for name in after.keys() {
        prop_assert!(!hop(name), "{name} leaked");
    }
    for name in before.keys() {
        if !hop(name) {
            let a: Vec<_> = before.get_all(name).iter().collect();
            let b: Vec<_> = after.get_all(name).iter().collect();
            prop_assert_eq!(a, b);
        }
    }
    Ok(())
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
        let connection = connection_values(&before);
        let te: Vec<&[u8]> = before.get_all(header::TE).iter().map(HeaderValue::as_bytes).collect();
        let found = scan(&h);
        if found.hop_by_hop {
            strip_found_hop_by_hop(&mut h, found.connection);
        }
        only_hop_by_hop_went(&before, &h, |name| {
            is_hop_by_hop_in_request(name, &connection, &te)
        })?;
    }

    #[test]
    fn no_hop_by_hop_header_survives(
        pairs in proptest::collection::vec((header_name(), header_value()), 0..16)
    ) {
        let mut h = header_map(&pairs);
        let before = h.clone();
        let connection = connection_values(&before);
        strip_hop_by_hop(&mut h);
        only_hop_by_hop_went(&before, &h, |name| is_hop_by_hop(name, &connection))?;
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
