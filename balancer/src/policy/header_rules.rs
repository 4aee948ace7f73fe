//! A route's header rules: `request_headers` (on the request a backend gets) and
//! `response_headers` (on the response the client gets), each `{ set = { name = value },
//! remove = [name] }`. Owned here so that what a rule may never touch is one list, checked at
//! load: hop-by-hop headers, the message's framing and the balancer's own forwarding headers,
//! so that no rule can smuggle a second framing, undo `--trusted-proxies` or forge a request ID.

use http::header::{HeaderMap, HeaderName, HeaderValue};

/// Hop-by-hop headers (RFC 9110 7.6.1) and the framing of a message (lowercase): the balancer
/// writes these itself for each hop.
pub const HOP_BY_HOP: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "proxy-authenticate",
    "proxy-authorization",
];

/// What the balancer itself writes from the connection (lowercase).
const FORWARDING: [&str; 7] = [
    "host",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-real-ip",
    "x-request-id",
];

/// Whether no rule may set or remove `lower` (a lowercase name): [`HOP_BY_HOP`] and the
/// forwarding headers the balancer writes.
pub fn reserved(lower: &str) -> bool {
    HOP_BY_HOP.contains(&lower) || FORWARDING.contains(&lower)
}

/// One side's rules: removals first, then the values set (replacing any the message had).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderRules {
    remove: Vec<HeaderName>,
    set: Vec<(HeaderName, HeaderValue)>,
}

/// A header name a rule may use: valid, not [`reserved`], no other `X-Forwarded-*`.
pub fn rule_name(raw: &str) -> Result<HeaderName, String> {
    let name = HeaderName::from_bytes(raw.as_bytes())
        .map_err(|_| format!("`{raw}` is not a valid header name"))?;
    let lower = name.as_str();
    if reserved(lower) || lower.starts_with("x-forwarded-") {
        return Err(format!(
            "`{raw}` is a hop-by-hop, framing or forwarding header the balancer manages itself; a rule cannot set or remove it"
        ));
    }
    Ok(name)
}

/// A header value a rule may set: visible text and spaces, no line break or control character.
pub fn rule_value(raw: &str) -> Result<HeaderValue, String> {
    if raw.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
        return Err("a header value cannot hold a line break or a control character".into());
    }
    HeaderValue::from_str(raw).map_err(|_| "not a valid header value".to_string())
}

impl HeaderRules {
    /// Rules made of names and values already checked by [`rule_name`] and [`rule_value`].
    pub fn new(set: Vec<(HeaderName, HeaderValue)>, remove: Vec<HeaderName>) -> HeaderRules {
        HeaderRules { remove, set }
    }

    /// Applies the rules to `headers`: every removed name gone, every set name with exactly
    /// its configured value.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reserved_names_are_refused_in_any_case() {
        for raw in [
            "Connection",
            "TRANSFER-ENCODING",
            "Content-Length",
            "Host",
            "X-Forwarded-For",
            "X-Forwarded-Port",
            "X-Real-IP",
            "X-Request-Id",
            "Upgrade",
            "TE",
            "Trailer",
        ] {
            assert!(rule_name(raw).is_err(), "{raw}");
        }
        assert!(rule_name("X-Frame-Options").is_ok());
        assert!(rule_name("bad name").is_err());
    }

    #[test]
    fn values_without_line_breaks_only() {
        assert!(rule_value("nosniff").is_ok());
        assert!(rule_value("a\tb c").is_ok());
        assert!(rule_value("a\r\nX-Evil: 1").is_err());
        assert!(rule_value("a\nb").is_err());
        assert!(rule_value("a\0b").is_err());
    }

    #[test]
    fn remove_then_set() {
        let rules = HeaderRules::new(
            vec![(rule_name("X-A").unwrap(), rule_value("new").unwrap())],
            vec![rule_name("X-B").unwrap(), rule_name("X-A").unwrap()],
        );
        let mut h = HeaderMap::new();
        h.append("x-a", HeaderValue::from_static("old1"));
        h.append("x-a", HeaderValue::from_static("old2"));
        h.insert("x-b", HeaderValue::from_static("gone"));
        h.insert("x-c", HeaderValue::from_static("kept"));
        rules.apply(&mut h);
        assert_eq!(h.get_all("x-a").iter().collect::<Vec<_>>(), ["new"]);
        assert!(!h.contains_key("x-b"));
        assert_eq!(h["x-c"], "kept");
    }

    proptest! {
        /// Whatever the message had, after the rules each set name has exactly its value, each
        /// removed (and not set) name is absent, and every other header is untouched.
        #[test]
        fn rules_hold_on_any_message(
            before in prop::collection::vec(("x-[a-d]", "[a-z]{0,4}"), 0..10),
            set in prop::collection::btree_map("x-[a-d]", "[a-z]{1,4}", 0..3),
            remove in prop::collection::btree_set("x-[a-d]", 0..3),
        ) {
            let mut h = HeaderMap::new();
            for (n, v) in &before {
                h.append(rule_name(n).unwrap(), rule_value(v).unwrap());
            }
            let rules = HeaderRules::new(
                set.iter().map(|(n, v)| (rule_name(n).unwrap(), rule_value(v).unwrap())).collect(),
                remove.iter().map(|n| rule_name(n).unwrap()).collect(),
            );
            rules.apply(&mut h);
            for name in ["x-a", "x-b", "x-c", "x-d"] {
                let got: Vec<&str> = h.get_all(name).iter().map(|v| v.to_str().unwrap()).collect();
                if let Some(v) = set.get(name) {
                    prop_assert_eq!(got, vec![v.as_str()]);
                } else if remove.contains(name) {
                    prop_assert!(got.is_empty());
                } else {
                    let was: Vec<&str> = before.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect();
                    prop_assert_eq!(got, was);
                }
            }
        }
    }
}
