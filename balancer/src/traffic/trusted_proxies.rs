//! `--trusted-proxies CIDR,...`: who the client is when the balancer sits behind another proxy.
//!
//! By default the client is the socket's peer. When the peer is a trusted proxy, its
//! `X-Forwarded-For` is believed, read from the right: each trusted address in it is another
//! proxy of ours, and the first one that is not trusted is the client (the last untrusted entry).
//! Entries to its left were written by the client itself and are never believed. An entry that is
//! no address stops the walk at the hop that wrote it. Pure: parsing and the walk, tested here.

use std::fmt;
use std::net::IpAddr;

use http::header::{HeaderMap, HeaderName};

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// One network: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => mask_eq(
                u128::from(u32::from(net)),
                u128::from(u32::from(ip)),
                32,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask_eq(u128::from(net), u128::from(ip), 128, self.prefix)
            }
            _ => false,
        }
    }
}

fn mask_eq(a: u128, b: u128, bits: u8, prefix: u8) -> bool {
    let shift = u32::from(bits - prefix);
    a.checked_shr(shift).unwrap_or(0) == b.checked_shr(shift).unwrap_or(0)
}

/// The parsed `--trusted-proxies` list (empty: trust nobody).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(pub Vec<Cidr>);

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|c| format!("{}/{}", c.addr, c.prefix))
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// `10.0.0.0/8,192.168.1.7,fd00::/8`: networks or single addresses, comma-separated.
pub fn parse_trusted_proxies(raw: &str) -> Result<TrustedProxies, String> {
    let mut out = Vec::new();
    for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (addr, prefix) = match entry.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (entry, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{entry}` is not an address or CIDR"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{entry}` has no valid prefix length (0 to {max})"))?,
        };
        out.push(Cidr {
            addr: addr.to_canonical(),
            prefix,
        });
    }
    Ok(TrustedProxies(out))
}

impl TrustedProxies {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    /// The client of a request that arrived from `peer` with `headers`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.trusts(client) {
            return client;
        }
        // All X-Forwarded-For fields, as one list, from the right.
        let fields: Vec<&str> = headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        for entry in fields.iter().rev().flat_map(|f| f.rsplit(',')) {
            let Ok(ip) = entry.trim().parse::<IpAddr>() else {
                return client;
            };
            client = ip.to_canonical();
            if !self.trusts(client) {
                return client;
            }
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(X_FORWARDED_FOR, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn parses_networks_and_single_addresses() {
        let t = parse_trusted_proxies("10.0.0.0/8, 192.168.1.7,fd00::/8").unwrap();
        assert!(t.trusts(ip("10.200.3.4")));
        assert!(!t.trusts(ip("11.0.0.1")));
        assert!(t.trusts(ip("192.168.1.7")));
        assert!(!t.trusts(ip("192.168.1.8")));
        assert!(t.trusts(ip("fd12::1")));
        assert!(t.trusts(ip("::ffff:10.1.1.1")), "mapped IPv4 is IPv4");
        assert!(parse_trusted_proxies("").unwrap().is_empty());
        assert!(parse_trusted_proxies("0.0.0.0/0")
            .unwrap()
            .trusts(ip("8.8.8.8")));
        for bad in [
            "10.0.0.0/33",
            "fd00::/129",
            "nope",
            "10.0.0.0/x",
            "1.2.3.4/",
        ] {
            assert!(parse_trusted_proxies(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_client_is_the_last_untrusted_entry() {
        let t = parse_trusted_proxies("10.0.0.0/8").unwrap();
        let h = xff(&["6.6.6.6, 1.2.3.4", "10.0.0.9"]);
        assert_eq!(t.client(ip("10.0.0.1"), &h), ip("1.2.3.4"));
        // An untrusted peer's header is ignored.
        assert_eq!(t.client(ip("5.5.5.5"), &h), ip("5.5.5.5"));
        // No header: the trusted peer is the client.
        assert_eq!(t.client(ip("10.0.0.1"), &HeaderMap::new()), ip("10.0.0.1"));
        // All trusted: the leftmost.
        assert_eq!(
            t.client(ip("10.0.0.1"), &xff(&["10.1.1.1"])),
            ip("10.1.1.1")
        );
        // Garbage stops the walk at the hop that wrote it.
        assert_eq!(
            t.client(ip("10.0.0.1"), &xff(&["junk, 10.0.0.5"])),
            ip("10.0.0.5")
        );
    }

    #[test]
    fn nobody_trusted_means_the_peer() {
        let t = TrustedProxies::default();
        assert_eq!(t.client(ip("10.0.0.1"), &xff(&["1.2.3.4"])), ip("10.0.0.1"));
    }
}
