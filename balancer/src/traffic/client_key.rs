//! Who counts as one client for the rate limiter (`--rate-limit-ipv6-prefix`): an IPv4 address
//! is one client; an IPv6 address counts by its network prefix, a /64 by default, as one host or
//! one subscriber's line usually gets a whole /64 and can rotate through it at will (so keying by
//! the full address would never limit it). An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a
//! dual-stack socket reports) is the IPv4 client it maps. Pure.

use std::net::{IpAddr, Ipv6Addr};

/// The default `--rate-limit-ipv6-prefix`: one client per /64.
pub const DEFAULT_IPV6_PREFIX: u16 = 64;

/// The range of `--rate-limit-ipv6-prefix`: from a /32 (a whole provider allocation) to /128
/// (each address its own client).
pub const IPV6_PREFIX_RANGE: std::ops::RangeInclusive<u16> = 32..=128;

/// One client of the rate limiter: an IPv4 address, or an IPv6 address with the bits past the
/// prefix cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    /// The address (the network's first address for IPv6), for tests and logs.
    pub fn addr(self) -> IpAddr {
        self.0
    }
}

/// How addresses become [`ClientKey`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientKeying {
    ipv6_prefix: u16,
}

impl Default for ClientKeying {
    fn default() -> Self {
        ClientKeying {
            ipv6_prefix: DEFAULT_IPV6_PREFIX,
        }
    }
}

impl ClientKeying {
    /// IPv6 clients keyed by their first `ipv6_prefix` bits (clamped to
    /// [`IPV6_PREFIX_RANGE`]; the flag's parser refuses anything outside it).
    pub fn new(ipv6_prefix: u16) -> Self {
        ClientKeying {
            ipv6_prefix: ipv6_prefix.clamp(*IPV6_PREFIX_RANGE.start(), *IPV6_PREFIX_RANGE.end()),
        }
    }

    pub fn ipv6_prefix(self) -> u16 {
        self.ipv6_prefix
    }

    /// The client `ip` counts as.
    #[inline]
    pub fn key(self, ip: IpAddr) -> ClientKey {
        match ip {
            IpAddr::V4(_) => ClientKey(ip),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey(IpAddr::V4(v4)),
                None => ClientKey(IpAddr::V6(self.network(v6))),
            },
        }
    }

    fn network(self, v6: Ipv6Addr) -> Ipv6Addr {
        let bits = u128::from(v6);
        let mask = u128::MAX
            .checked_shl(128 - u32::from(self.ipv6_prefix))
            .unwrap_or(0);
        Ipv6Addr::from(bits & mask)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    fn v6(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_addresses_of_one_64_are_one_client_and_the_next_64_another() {
        let k = ClientKeying::default();
        let a = k.key(v6("2001:db8:1:2::1"));
        assert_eq!(a, k.key(v6("2001:db8:1:2:ffff:ffff:ffff:ffff")));
        assert_eq!(a.addr(), v6("2001:db8:1:2::"));
        assert_ne!(a, k.key(v6("2001:db8:1:3::1")));
    }

    #[test]
    fn ipv4_stays_per_address_and_mapped_ipv6_is_its_ipv4() {
        let k = ClientKeying::default();
        let v4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
        assert_eq!(k.key(v4).addr(), v4);
        assert_eq!(k.key(v6("::ffff:192.0.2.7")), k.key(v4));
        assert_ne!(k.key(v4), k.key(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 8))));
    }

    #[test]
    fn the_prefix_length_is_honoured_and_clamped() {
        let full = ClientKeying::new(128);
        assert_ne!(full.key(v6("2001:db8::1")), full.key(v6("2001:db8::2")));
        let wide = ClientKeying::new(32);
        assert_eq!(
            wide.key(v6("2001:db8:1::1")),
            wide.key(v6("2001:db8:ffff::1"))
        );
        assert_eq!(ClientKeying::new(0).ipv6_prefix(), 32);
        assert_eq!(ClientKeying::new(200).ipv6_prefix(), 128);
    }

    proptest! {
        /// Two IPv6 addresses are one client exactly when their first `prefix` bits agree.
        #[test]
        fn same_client_iff_same_prefix(a: u128, b: u128, prefix in 32u16..=128) {
            let k = ClientKeying::new(prefix);
            let (ia, ib) = (Ipv6Addr::from(a), Ipv6Addr::from(b));
            prop_assume!(ia.to_ipv4_mapped().is_none() && ib.to_ipv4_mapped().is_none());
            let shift = 128 - u32::from(prefix);
            let same = a.checked_shr(shift).unwrap_or(0) == b.checked_shr(shift).unwrap_or(0);
            prop_assert_eq!(k.key(IpAddr::V6(ia)) == k.key(IpAddr::V6(ib)), same);
        }

        /// An IPv4 address is its own client whatever the prefix, and keying is idempotent.
        #[test]
        fn ipv4_is_untouched_and_keys_are_fixed_points(v4: u32, v6bits: u128, prefix in 32u16..=128) {
            let k = ClientKeying::new(prefix);
            let ip = IpAddr::V4(Ipv4Addr::from(v4));
            prop_assert_eq!(k.key(ip).addr(), ip);
            let key = k.key(IpAddr::V6(Ipv6Addr::from(v6bits)));
            prop_assert_eq!(k.key(key.addr()), key);
        }
    }
}
