//! `--rate-limit RATE` / `--rate-burst N` / `--rate-limit-clients`: a token bucket per client
//! address. Over the limit a request is answered `429 Too Many Requests` with `Retry-After` and
//! never forwarded.
//!
//! The arithmetic is governor's GCRA (one 64-bit "theoretical arrival time" per client, the
//! token bucket's equivalent). governor's own keyed stores (a `DashMap` or `HashMap`) grow with
//! every address ever seen and offer only `retain_recent` to shrink, so a flood of spoofed or
//! many distinct sources would grow the table without bound. Here governor runs on
//! [`ClientTable`] (`client_table`), a [`StateStore`] of our own holding at most
//! `--rate-limit-clients` entries with an eviction that keeps frequent clients, keyed by
//! [`ClientKey`] (`client_key`: IPv4 per address, IPv6 per `--rate-limit-ipv6-prefix` network).
//! The same limiter serves `--rate-limit` and each route's `rate_limit` (one table per route).

use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, MonotonicClock};
use governor::nanos::Nanos;
use governor::state::StateStore;
use governor::{Quota, RateLimiter};

use super::client_key::{ClientKey, ClientKeying};
use super::client_table::ClientTable;

/// A parsed `--rate-limit`: `count` requests per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: NonZeroU32,
    pub per: Duration,
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "s",
            60 => "m",
            _ => "h",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

/// `50/s`, `3000/m` or `100/h`.
pub fn parse_rate(raw: &str) -> Result<Rate, String> {
    let usage = || format!("`{raw}` is not a rate like 50/s, 3000/m or 100/h");
    let (count, unit) = raw.trim().split_once('/').ok_or_else(usage)?;
    let count: u32 = count.trim().parse().map_err(|_| usage())?;
    let count =
        NonZeroU32::new(count).ok_or_else(|| format!("`{raw}`: the count must be at least 1"))?;
    let per = match unit.trim() {
        "s" => Duration::from_secs(1),
        "m" => Duration::from_secs(60),
        "h" => Duration::from_secs(3600),
        _ => return Err(usage()),
    };
    Ok(Rate { count, per })
}

/// The store as governor holds it, shared with the [`Limiter`] that reports its size (governor
/// gives no access to a limiter's store once built).
pub struct SharedTable(Arc<ClientTable>);

impl StateStore for SharedTable {
    type Key = ClientKey;

    fn measure_and_replace<T, F, E>(&self, key: &ClientKey, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        self.0.measure_and_replace(key, f)
    }
}

/// The limiter the proxy asks once per request.
pub struct Limiter {
    inner: RateLimiter<ClientKey, SharedTable, MonotonicClock>,
    store: Arc<ClientTable>,
    keying: ClientKeying,
}

impl Limiter {
    /// `burst` defaults to one `per`'s worth of the rate, at least 1; `clients` bounds the
    /// table, `keying` says who is one client.
    pub fn new(rate: Rate, burst: Option<u32>, clients: usize, keying: ClientKeying) -> Self {
        let burst = burst.and_then(NonZeroU32::new).unwrap_or(rate.count);
        let period = rate.per / rate.count.get();
        // A period of zero cannot happen (count <= u32::MAX, per >= 1 s); fall back to 1 ns.
        let quota = Quota::with_period(period.max(Duration::from_nanos(1)))
            .unwrap_or_else(|| Quota::per_second(rate.count))
            .allow_burst(burst);
        let store = Arc::new(ClientTable::new(clients));
        Limiter {
            inner: RateLimiter::new(quota, SharedTable(store.clone()), MonotonicClock),
            store,
            keying,
        }
    }

    /// `Ok` when `client` may go on; otherwise the whole seconds to wait (at least 1), for
    /// `Retry-After`.
    pub fn check(&self, client: IpAddr) -> Result<(), u64> {
        match self.inner.check_key(&self.keying.key(client)) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.inner.clock().now());
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                Err(secs.max(1))
            }
        }
    }

    pub fn clients(&self) -> usize {
        self.store.len()
    }

    /// The most clients remembered at once (about `--rate-limit-clients`).
    pub fn capacity(&self) -> usize {
        self.store.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::client_table::SHARDS;

    fn keying() -> ClientKeying {
        ClientKeying::default()
    }

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(std::net::Ipv4Addr::from(0x7f00_0000 + n))
    }

    #[test]
    fn rates_parse_and_bad_ones_are_refused() {
        assert_eq!(parse_rate("50/s").unwrap().count.get(), 50);
        assert_eq!(parse_rate("3000/m").unwrap().per, Duration::from_secs(60));
        assert_eq!(parse_rate("100/h").unwrap().to_string(), "100/h");
        for bad in [
            "",
            "50",
            "0/s",
            "-1/s",
            "50/d",
            "x/s",
            "50/",
            "99999999999/s",
        ] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_client_over_its_burst_waits_and_another_is_unaffected() {
        let l = Limiter::new(parse_rate("1/m").unwrap(), Some(3), 100, keying());
        for _ in 0..3 {
            assert_eq!(l.check(ip(1)), Ok(()));
        }
        let wait = l.check(ip(1)).unwrap_err();
        assert!((1..=60).contains(&wait), "{wait}");
        assert_eq!(l.check(ip(2)), Ok(()));
    }

    #[test]
    fn the_table_stays_within_its_bound() {
        let l = Limiter::new(parse_rate("1/h").unwrap(), Some(1), 64, keying());
        assert!(l.capacity() >= 64 && l.capacity() < 64 + SHARDS);
        for n in 0..10_000 {
            let _ = l.check(ip(n));
        }
        assert!(l.clients() <= l.capacity() + SHARDS, "{}", l.clients());
    }

    #[test]
    fn a_scan_of_200000_one_off_addresses_does_not_reset_a_busy_client() {
        let l = Limiter::new(parse_rate("1/h").unwrap(), Some(3), 1_000, keying());
        let busy = IpAddr::from(std::net::Ipv4Addr::new(10, 0, 0, 1));
        for _ in 0..3 {
            assert_eq!(l.check(busy), Ok(()));
        }
        assert!(l.check(busy).is_err());
        for n in 0..200_000 {
            let _ = l.check(ip(0x0100_0000 + n));
        }
        assert!(
            l.check(busy).is_err(),
            "the scan gave the busy client a new budget"
        );
        assert!(l.clients() <= l.capacity() + SHARDS);
    }

    #[test]
    fn a_thousand_addresses_of_one_64_share_one_budget() {
        let l = Limiter::new(parse_rate("1/h").unwrap(), Some(10), 1_000, keying());
        let in_64 = |n: u16| IpAddr::from([0x2001, 0xdb8, 7, 7, n, 0, 0, n]);
        let passed = (0..1_000u16).filter(|&n| l.check(in_64(n)).is_ok()).count();
        assert_eq!(passed, 10, "the /64 got more than one burst");
        assert_eq!(l.clients(), 1);
        // The next /64 has its own budget; so does each address with a /128 prefix.
        assert_eq!(
            l.check(IpAddr::from([0x2001, 0xdb8, 7, 8, 0, 0, 0, 1])),
            Ok(())
        );
        let per_address = Limiter::new(
            parse_rate("1/h").unwrap(),
            Some(1),
            1_000,
            ClientKeying::new(128),
        );
        assert!((0..100u16).all(|n| per_address.check(in_64(n)).is_ok()));
    }
}
