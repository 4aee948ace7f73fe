//! Sticky's unit tests and proptests: tags map back to their backend, anything else is no pin.

use super::*;
use crate::runtime::metrics::Metrics;

fn backends(n: u16) -> Arc<[Arc<Backend>]> {
    let m = Metrics::new();
    (0..n)
        .map(|i| {
            let addr = format!("10.0.0.{}:5000", i + 1).parse().unwrap();
            Arc::new(Backend::new(addr, "app:5000", &m, 1).unwrap())
        })
        .collect::<Vec<_>>()
        .into()
}

fn sticky() -> Sticky {
    Sticky::new(&StickyCookie {
        name: "lb".into(),
        secret: None,
    })
}

fn cookie_header(value: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::COOKIE, HeaderValue::from_str(value).unwrap());
    h
}

/// The cookie value a response of `backends[i]` sets, from a request without the cookie.
fn issued(s: &Sticky, backends: &Arc<[Arc<Backend>]>, i: usize, secure: bool) -> String {
    let pin = s.pin(backends, &HeaderMap::new());
    assert_eq!(pin.target(), None);
    let mut out = HeaderMap::new();
    pin.stamp(&backends[i], &mut out, secure);
    out.get(header::SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned()
}

fn value_of(set_cookie: &str) -> &str {
    let pair = set_cookie.split(';').next().unwrap();
    pair.strip_prefix("lb=").unwrap()
}

#[test]
fn a_cookie_from_a_response_pins_to_its_backend_and_is_not_set_again() {
    let s = sticky();
    let set = backends(3);
    for i in 0..3 {
        let line = issued(&s, &set, i, false);
        let value = value_of(&line);
        assert_eq!(value.len(), 32);
        assert!(value.bytes().all(|b| b.is_ascii_hexdigit()), "{line}");
        assert!(!line.contains("10.0.0") && !line.contains("5000"), "{line}");
        assert_eq!(
            &line[2 + 1 + 32..],
            "; Path=/; HttpOnly; SameSite=Lax",
            "{line}"
        );
        let pin = s.pin(&set, &cookie_header(&format!("x=1; lb={value}")));
        assert_eq!(pin.target(), Some(i));
        let mut out = HeaderMap::new();
        pin.stamp(&set[i], &mut out, false);
        assert!(out.is_empty(), "the same backend: no Set-Cookie");
        // Served elsewhere (a retry, a drained pin): the cookie is replaced.
        pin.stamp(&set[(i + 1) % 3], &mut out, true);
        let replaced = out.get(header::SET_COOKIE).unwrap().to_str().unwrap();
        assert_ne!(value_of(replaced), value);
        assert!(replaced.ends_with("; Secure"));
    }
}

#[test]
fn forged_and_stale_cookies_pin_nothing() {
    let s = sticky();
    let set = backends(2);
    let stale = value_of(&issued(&s, &set, 1, false)).to_owned();
    let fewer: Arc<[Arc<Backend>]> = Arc::from(vec![set[0].clone()]);
    assert_eq!(
        s.pin(&fewer, &cookie_header(&format!("lb={stale}")))
            .target(),
        None
    );
    for forged in [
        "lb=",
        "lb=zz",
        "lb=00000000000000000000000000000000",
        "lb=10.0.0.1:5000",
    ] {
        assert_eq!(
            s.pin(&set, &cookie_header(forged)).target(),
            None,
            "{forged}"
        );
    }
}

#[test]
fn tags_are_computed_once_per_backend_set() {
    let s = sticky();
    let set = backends(2);
    let first = s.table_for(&set);
    assert!(
        Arc::ptr_eq(&first, &s.table_for(&set)),
        "same set: same table"
    );
    let other = backends(2);
    let rebuilt = s.table_for(&other);
    assert!(!Arc::ptr_eq(&first, &rebuilt));
    // Same addresses, same key: the same tags, so a rotation swap keeps every pin.
    assert_eq!(first.entries[1].tag, rebuilt.entries[1].tag);
}

#[test]
fn a_shared_secret_makes_the_same_tags_in_every_process() {
    let with = |secret: &str| {
        Sticky::new(&StickyCookie {
            name: "lb".into(),
            secret: Some(secret.into()),
        })
    };
    let set = backends(1);
    let a = with("a-long-shared-secret").table_for(&set).entries[0].tag;
    let b = with("a-long-shared-secret").table_for(&set).entries[0].tag;
    let c = with("another-shared-secret").table_for(&set).entries[0].tag;
    assert_eq!(a, b);
    assert_ne!(a, c);
    let settings = StickyCookie {
        name: "lb".into(),
        secret: Some("a-long-shared-secret".into()),
    };
    assert!(!format!("{settings:?}").contains("shared"), "never logged");
}

proptest::proptest! {
    /// Any bytes as Cookie headers: never a panic, and a pin only to the backend whose tag the
    /// bytes carry; a valid cookie among any junk maps back to its backend.
    #[test]
    fn forged_cookies_never_panic_and_valid_ones_map_back(
        junk in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..80), 0..4),
        pick in 0usize..5,
        before in "[a-z]{0,6}=[ -~&&[^;]]{0,10}",
    ) {
        let s = sticky();
        let set = backends(5);
        let mut headers = HeaderMap::new();
        for bytes in &junk {
            if let Ok(v) = HeaderValue::from_bytes(bytes) {
                headers.append(header::COOKIE, v);
            }
        }
        if let Some(i) = s.pin(&set, &headers).target() {
            let tag = format!("{:032x}", s.table_for(&set).entries[i].tag);
            let all: Vec<u8> = junk.concat();
            proptest::prop_assert!(all.to_ascii_lowercase().windows(32).any(|w| w == tag.as_bytes()));
        }
        let value = value_of(&issued(&s, &set, pick, false)).to_owned();
        let mut valid = HeaderMap::new();
        valid.insert(header::COOKIE, HeaderValue::from_str(&format!("{before}; lb={value}")).unwrap());
        proptest::prop_assert_eq!(s.pin(&set, &valid).target(), Some(pick));
    }
}
