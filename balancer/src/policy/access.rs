//! A route's `allow` and `deny` lists: which client addresses may use it. The client is the one
//! `--trusted-proxies` decides (the proxy's `ClientInfo.peer`), so a request through a trusted
//! proxy is judged by the address in its `X-Forwarded-For`, and anyone else by the socket's peer.
//! Owned here, apart from the proxy, so that the rule (deny wins; a non-empty `allow` lets only
//! its networks through) is one pure function, checked against its statement (proptest).

use std::net::IpAddr;

use crate::traffic::trusted_proxies::{parse_trusted_proxies, Cidr};

/// `allow = [...]`, `deny = [...]`; a refused client gets a 403.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    allow: Vec<Cidr>,
    deny: Vec<Cidr>,
}

/// One entry of `allow` or `deny`: `10.0.0.0/8`, `192.168.1.7`, `fd00::/8`.
pub fn parse_cidr(entry: &str) -> Result<Cidr, String> {
    if entry.contains(',') {
        return Err(format!(
            "`{entry}`: one network per entry (write [\"a\", \"b\"], not \"a,b\")"
        ));
    }
    let parsed = parse_trusted_proxies(entry)?;
    match parsed.0.as_slice() {
        [one] => Ok(*one),
        _ => Err(format!("`{entry}` is not an address or CIDR")),
    }
}

impl Access {
    pub fn new(allow: Vec<Cidr>, deny: Vec<Cidr>) -> Access {
        Access { allow, deny }
    }

    /// Whether `client` may use the route: not in `deny`, and in `allow` when it lists any.
    pub fn permits(&self, client: IpAddr) -> bool {
        if self.deny.iter().any(|c| c.contains(client)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|c| c.contains(client))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn access(allow: &[&str], deny: &[&str]) -> Access {
        let parse = |l: &[&str]| l.iter().map(|e| parse_cidr(e).unwrap()).collect();
        Access::new(parse(allow), parse(deny))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn deny_wins_and_allow_narrows() {
        let a = access(&["10.0.0.0/8"], &["10.1.0.0/16"]);
        assert!(a.permits(ip("10.2.3.4")));
        assert!(!a.permits(ip("10.1.3.4")), "deny wins over allow");
        assert!(!a.permits(ip("192.168.0.1")), "not in allow");
        let only_deny = access(&[], &["192.168.0.0/24", "::1"]);
        assert!(only_deny.permits(ip("192.168.1.1")));
        assert!(!only_deny.permits(ip("192.168.0.9")));
        assert!(!only_deny.permits(ip("::1")));
        assert!(Access::default().permits(ip("1.2.3.4")));
    }

    #[test]
    fn mapped_ipv4_is_judged_as_ipv4() {
        let a = access(&["127.0.0.1"], &[]);
        assert!(a.permits(ip("::ffff:127.0.0.1")));
    }

    #[test]
    fn entries_are_one_network_each() {
        assert!(parse_cidr("10.0.0.0/8,1.2.3.4").is_err());
        assert!(parse_cidr("").is_err());
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("example.com").is_err());
        assert!(parse_cidr(" 10.0.0.1 ").is_ok());
    }

    proptest! {
        /// The rule as stated: deny wins; otherwise allow empty, or some allow entry matches.
        /// Networks are /24s of 10.0.x.0, clients 10.0.y.z, so matches are frequent.
        #[test]
        fn permits_is_the_stated_rule(
            allow in prop::collection::vec(0u8..8, 0..4),
            deny in prop::collection::vec(0u8..8, 0..4),
            y in 0u8..8,
            z in any::<u8>(),
        ) {
            let net = |n: &u8| parse_cidr(&format!("10.0.{n}.0/24")).unwrap();
            let a = Access::new(allow.iter().map(net).collect(), deny.iter().map(net).collect());
            let expected = !deny.contains(&y) && (allow.is_empty() || allow.contains(&y));
            prop_assert_eq!(a.permits(IpAddr::from([10, 0, y, z])), expected);
        }
    }
}
