//! Request IDs: the `X-Request-Id` every proxied request carries.
//!
//! A client's ID is kept when it is exactly one header of 1 to 128 visible ASCII characters
//! (`!` to `~`), so it can be logged and forwarded without escaping surprises; anything else
//! (empty, too long, spaces, control or non-ASCII bytes, or several of them) is replaced, never
//! forwarded. A generated ID is 128 random bits in lowercase hex (32 characters). The ID goes to
//! the backend, back to the client and into the access log line. Pure: no I/O, unit- and
//! property-tested here.

use http::header::{HeaderMap, HeaderName, HeaderValue};

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

/// The request's ID: the client's when it is one valid value, otherwise a generated one that
/// replaces whatever the client sent. The headers then hold exactly the returned value.
pub fn ensure(headers: &mut HeaderMap) -> HeaderValue {
    let mut values = headers.get_all(&X_REQUEST_ID).iter();
    if let (Some(only), None) = (values.next(), values.next()) {
        if is_valid(only.as_bytes()) {
            return only.clone();
        }
    }
    let id = generate();
    headers.insert(X_REQUEST_ID, id.clone());
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_client_id_is_kept() {
        let mut h = HeaderMap::new();
        h.insert(X_REQUEST_ID, HeaderValue::from_static("abc-123_{}~!"));
        assert_eq!(ensure(&mut h), "abc-123_{}~!");
        assert_eq!(h.get_all(&X_REQUEST_ID).iter().count(), 1);
        let max = "x".repeat(MAX_LEN);
        h.insert(X_REQUEST_ID, HeaderValue::from_str(&max).unwrap());
        assert_eq!(ensure(&mut h), max.as_str());
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
            let id = ensure(&mut h);
            assert_ne!(id.as_bytes(), raw);
            assert_eq!(h[X_REQUEST_ID], id);
            assert_eq!(id.len(), 32);
            assert!(id.as_bytes().iter().all(u8::is_ascii_hexdigit));
        }
        let mut none = HeaderMap::new();
        let a = ensure(&mut none);
        let b = ensure(&mut HeaderMap::new());
        assert_ne!(a, b, "random, not a constant");
        assert_eq!(none[X_REQUEST_ID], a);
    }

    #[test]
    fn two_client_ids_are_replaced_by_one() {
        let mut h = HeaderMap::new();
        h.append(X_REQUEST_ID, HeaderValue::from_static("one"));
        h.append(X_REQUEST_ID, HeaderValue::from_static("two"));
        let id = ensure(&mut h);
        assert_eq!(h.get_all(&X_REQUEST_ID).iter().count(), 1);
        assert_ne!(id, "one");
        assert_ne!(id, "two");
    }

    proptest::proptest! {
        /// Whatever the client sends, exactly one valid ID leaves, and it is the client's exactly
        /// when the client's was valid.
        #[test]
        fn one_valid_id_leaves(raw in proptest::collection::vec(0x20u8..0x7f, 0..200)) {
            let Ok(value) = HeaderValue::from_bytes(&raw) else { return Ok(()) };
            let mut h = HeaderMap::new();
            h.insert(X_REQUEST_ID, value);
            let id = ensure(&mut h);
            proptest::prop_assert!(is_valid(id.as_bytes()));
            proptest::prop_assert_eq!(h.get_all(&X_REQUEST_ID).iter().count(), 1);
            proptest::prop_assert_eq!(id.as_bytes() == raw.as_slice(), is_valid(&raw));
        }
    }
}
