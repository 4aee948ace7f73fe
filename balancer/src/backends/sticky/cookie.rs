//! The sticky cookie on the wire: its name's rule (an RFC 6265 token), finding its value among
//! a request's `Cookie` headers (HTTP/2 may split them), and the `Set-Cookie` value a response
//! gets. Pure text handling, so forged or malformed input is just "no cookie".

use http::header::{self, HeaderMap, HeaderValue};

/// The longest cookie name the configuration takes.
pub const MAX_NAME: usize = 64;

/// The cookie's value: a 128-bit tag as 32 lowercase hex digits.
pub const VALUE_LEN: usize = 32;

/// Checks a configured cookie name: 1 to [`MAX_NAME`] characters of an RFC 6265 token
/// (visible ASCII, none of `()<>@,;:\"/[]?={}`).
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("sticky `cookie` is empty: name the cookie, e.g. \"lb\"".into());
    }
    if name.len() > MAX_NAME {
        return Err(format!(
            "sticky `cookie` is {} characters long; at most {MAX_NAME}",
            name.len()
        ));
    }
    let separator = |c: u8| b"()<>@,;:\\\"/[]?={} \t".contains(&c);
    if let Some(bad) = name
        .bytes()
        .find(|&c| !c.is_ascii_graphic() || separator(c))
    {
        return Err(format!(
            "sticky `cookie` `{}` has {:?}, which a cookie name cannot hold (letters, digits and !#$%&'*+-.^_`|~ only)",
            name.escape_default(),
            char::from(bad)
        ));
    }
    Ok(())
}

/// Every value of cookie `name` in the request's `Cookie` headers, in order.
pub fn values<'h>(headers: &'h HeaderMap, name: &'h str) -> impl Iterator<Item = &'h [u8]> + 'h {
    headers
        .get_all(header::COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
        .filter_map(move |pair| {
            let pair = pair.trim_ascii();
            let eq = pair.iter().position(|&b| b == b'=')?;
            let (key, value) = (&pair[..eq], &pair[eq + 1..]);
            (key.trim_ascii() == name.as_bytes()).then(|| unquote(value.trim_ascii()))
        })
}

/// A cookie value without its optional double quotes.
fn unquote(value: &[u8]) -> &[u8] {
    match value {
        [b'"', inner @ .., b'"'] => inner,
        _ => value,
    }
}

/// The tag a cookie value names, if it is 32 hex digits.
pub fn parse_tag(value: &[u8]) -> Option<u128> {
    if value.len() != VALUE_LEN {
        return None;
    }
    let text = std::str::from_utf8(value).ok()?;
    if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u128::from_str_radix(text, 16).ok()
}

/// `NAME=<tag>; Path=/; HttpOnly; SameSite=Lax`, with `; Secure` for a client over TLS.
pub fn set_cookie(name: &str, tag: u128, secure: bool) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!("{name}={tag:032x}; Path=/; HttpOnly; SameSite=Lax{secure}");
    HeaderValue::from_str(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::COOKIE, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn names_are_tokens() {
        for good in ["lb", "SERVERID", "a-b_c.d", "x!#$%&'*+^`|~1"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "a b", "a;b", "a=b", "é", "a\"b", "a,b", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn finds_the_value_across_split_headers() {
        let h = headers(&["a=1; lbx=2", " other=3 ;lb=\"abc\"", "lb=def"]);
        let found: Vec<&[u8]> = values(&h, "lb").collect();
        assert_eq!(found, [b"abc".as_slice(), b"def".as_slice()]);
        assert_eq!(values(&headers(&["lb"]), "lb").count(), 0);
    }

    #[test]
    fn tags_are_32_hex_digits() {
        let tag = 0x0123_4567_89ab_cdef_0011_2233_4455_6677_u128;
        let text = format!("{tag:032x}");
        assert_eq!(parse_tag(text.as_bytes()), Some(tag));
        assert_eq!(parse_tag(text.to_uppercase().as_bytes()), Some(tag));
        assert_eq!(parse_tag(&text.as_bytes()[1..]), None);
        assert_eq!(parse_tag(b"+123456789abcdef0123456789abcdef"), None);
        assert_eq!(parse_tag("é".repeat(16).as_bytes()), None);
    }

    #[test]
    fn set_cookie_attributes() {
        let plain = set_cookie("lb", 1, false).unwrap();
        assert_eq!(
            plain,
            "lb=00000000000000000000000000000001; Path=/; HttpOnly; SameSite=Lax"
        );
        let tls = set_cookie("lb", 1, true).unwrap();
        assert!(tls.to_str().unwrap().ends_with("; SameSite=Lax; Secure"));
    }
}
