//! Request IDs: the `X-Request-Id` every proxied request carries.
//!
//! A client's ID is kept when it is exactly one header of 1 to 128 visible ASCII characters
//! (`!` to `~`), so it can be logged and forwarded without escaping surprises; anything else
//! (empty, too long, spaces, control or non-ASCII bytes, or several of them) is replaced, never
//! forwarded. A generated ID is 128 random bits in lowercase hex (32 characters). The ID goes to
//! the backend, back to the client and into the access log line. Pure: no I/O, unit- and
//! property-tested here.

use http::header::{HeaderName, HeaderValue};

/// The header, as NGINX's `$request_id` users and Heroku/Envoy name it.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client ID kept.
pub const MAX_LEN: usize = 128;

/// True for 1 to [`MAX_LEN`] visible ASCII characters.
pub fn is_valid(id: &[u8]) -> bool {
    !id.is_empty() && id.len() <= MAX_LEN && id.iter().all(|b| (0x21..=0x7e).contains(b))
}

/// A fresh ID: 128 random bits as 32 lowercase hex digits.
pub fn generate() -> HeaderValue {
    let bits: u128 = rand::random();
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        let nibble = (bits >> (124 - 4 * i)) & 0xf;
        *byte = b"0123456789abcdef"[nibble as usize];
    }
    // Hex digits are always a valid header value.
    HeaderValue::from_bytes(&out).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// The request's ID: `client`'s (the client's `X-Request-Id` when it sent exactly one) when it is
/// valid, otherwise a fresh one. The caller puts it on the request it forwards, replacing whatever
/// the client sent (one insert, after the hop-by-hop headers are gone, so a client cannot name it
/// in `Connection` to drop it).
pub fn of(client: Option<&HeaderValue>) -> HeaderValue {
    match client {
        Some(id) if is_valid(id.as_bytes()) => id.clone(),
        _ => generate(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::HeaderMap;

    /// The ID of a request with these headers: the proxy passes the client's value when there is
    /// exactly one (`headers::Scan::single_request_id`).
    fn id_of(h: &HeaderMap) -> HeaderValue {
        let mut values = h.get_all(&X_REQUEST_ID).iter();
        match (values.next(), values.next()) {
            (Some(only), None) => of(Some(only)),
            _ => of(None),
        }
    }

    #[test]
    fn a_valid_client_id_is_kept() {
        let mut h = HeaderMap::new();
        h.insert(X_REQUEST_ID, HeaderValue::from_static("abc-123_{}~!"));
        assert_eq!(id_of(&h), "abc-123_{}~!");
        let max = "x".repeat(MAX_LEN);
        h.insert(X_REQUEST_ID, HeaderValue::from_str(&max).unwrap());
        assert_eq!(id_of(&h), max.as_str());
    }

    #[test]
    fn malformed_or_missing_ids_are_replaced_by_32_hex_digits() {
        let too_long = "x".repeat(MAX_LEN + 1);
        let bad: [&[u8]; 5] = [
            b"",
            b"has space",
            b"tab\there",
            "caf\u{e9}".as_bytes(),
            too_long.as_bytes(),
        ];
        for raw in bad {
            let mut h = HeaderMap::new();
            h.insert(X_REQUEST_ID, HeaderValue::from_bytes(raw).unwrap());
            let id = id_of(&h);
            assert_ne!(id.as_bytes(), raw);
            assert_eq!(id.len(), 32);
            assert!(id.as_bytes().iter().all(u8::is_ascii_hexdigit));
        }
        let none = HeaderMap::new();
        let (a, b) = (id_of(&none), id_of(&none));
        assert_ne!(a, b, "random, not a constant");
        assert_eq!(a.len(), 32);
    }

    #[test]
    fn two_client_ids_are_replaced_by_one() {
        let mut h = HeaderMap::new();
        h.append(X_REQUEST_ID, HeaderValue::from_static("one"));
        h.append(X_REQUEST_ID, HeaderValue::from_static("two"));
        let id = id_of(&h);
        assert!(is_valid(id.as_bytes()));
        assert_ne!(id, "one");
        assert_ne!(id, "two");
    }

    proptest::proptest! {
        /// Whatever the client sends, the ID is valid, and it is the client's exactly when the
        /// client's was valid.
        #[test]
        fn one_valid_id_leaves(raw in proptest::collection::vec(0x20u8..0x7f, 0..200)) {
            let Ok(value) = HeaderValue::from_bytes(&raw) else { return Ok(()) };
            let id = of(Some(&value));
            proptest::prop_assert!(is_valid(id.as_bytes()));
            proptest::prop_assert_eq!(id.as_bytes() == raw.as_slice(), is_valid(&raw));
        }
    }
}
