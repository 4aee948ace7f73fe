//! `--rate-limit RATE` / `--rate-burst N` / `--rate-limit-clients`: a token bucket per client
//! address. Over the limit a request is answered `429 Too Many Requests` with `Retry-After` and
//! never forwarded.
//!
//! The arithmetic is governor's GCRA (one 64-bit "theoretical arrival time" per client, the
//! token bucket's equivalent). governor's own keyed stores (a `DashMap` or `HashMap`) grow with
//! every address ever seen and offer only `retain_recent` to shrink, so a flood of spoofed or
//! many distinct sources would grow the table without bound. Here governor runs on
//! [`BoundedStore`], a [`StateStore`] of our own: a fixed number of shards, each a map plus its
//! keys in insertion order, holding at most `--rate-limit-clients` entries in all; a new client
//! past the bound evicts the oldest entry of its shard. An evicted client starts again with a
//! full bucket, which only ever lets it through sooner, never refuses it wrongly.

use shared::sync::lock;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, MonotonicClock};
use governor::nanos::Nanos;
use governor::state::StateStore;
use governor::{Quota, RateLimiter};

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

/// Shards of the client table: enough that two workers rarely meet on one lock.
const SHARDS: usize = 16;

/// One shard: the clients' GCRA states and their keys in insertion order.
#[derive(Default)]
struct Shard {
    states: HashMap<IpAddr, u64>,
    order: VecDeque<IpAddr>,
}

/// governor's state store with a bound on the number of clients (see the module doc).
pub struct BoundedStore {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
    hasher: RandomState,
}

impl BoundedStore {
    pub fn new(capacity: usize) -> Self {
        BoundedStore {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            hasher: RandomState::new(),
        }
    }

    fn shard(&self, key: &IpAddr) -> std::sync::MutexGuard<'_, Shard> {
        let i = usize::try_from(self.hasher.hash_one(key) % SHARDS as u64).unwrap_or(0);
        lock(&self.shards[i])
    }

    /// No client is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Clients currently remembered.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).states.len()).sum()
    }

    /// The most clients remembered at once.
    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.per_shard * SHARDS
    }
}

/// The store as governor holds it, shared with the [`Limiter`] that reports its size (governor
/// gives no access to a limiter's store once built).
pub struct SharedStore(Arc<BoundedStore>);

impl StateStore for SharedStore {
    type Key = IpAddr;

    fn measure_and_replace<T, F, E>(&self, key: &IpAddr, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        self.0.measure_and_replace(key, f)
    }
}

impl BoundedStore {
    fn measure_and_replace<T, F, E>(&self, key: &IpAddr, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let mut shard = self.shard(key);
        let prev = shard.states.get(key).map(|t| Nanos::from(*t));
        let (out, next) = f(prev)?;
        if prev.is_none() {
            if shard.states.len() >= self.per_shard {
                if let Some(oldest) = shard.order.pop_front() {
                    shard.states.remove(&oldest);
                }
            }
            shard.order.push_back(*key);
        }
        shard.states.insert(*key, next.as_u64());
        Ok(out)
    }
}

/// The limiter the proxy asks once per request.
pub struct Limiter {
    inner: RateLimiter<IpAddr, SharedStore, MonotonicClock>,
    store: Arc<BoundedStore>,
}

impl Limiter {
    /// `burst` defaults to one `per`'s worth of the rate, at least 1.
    pub fn new(rate: Rate, burst: Option<u32>, clients: usize) -> Self {
        let burst = burst.and_then(NonZeroU32::new).unwrap_or(rate.count);
        let period = rate.per / rate.count.get();
        // A period of zero cannot happen (count <= u32::MAX, per >= 1 s); fall back to 1 ns.
        let quota = Quota::with_period(period.max(Duration::from_nanos(1)))
            .unwrap_or_else(|| Quota::per_second(rate.count))
            .allow_burst(burst);
        let store = Arc::new(BoundedStore::new(clients));
        Limiter {
            inner: RateLimiter::new(quota, SharedStore(store.clone()), MonotonicClock),
            store,
        }
    }

    /// `Ok` when `client` may go on; otherwise the whole seconds to wait (at least 1), for
    /// `Retry-After`.
    pub fn check(&self, client: IpAddr) -> Result<(), u64> {
        match self.inner.check_key(&client) {
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

    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.store.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let l = Limiter::new(parse_rate("1/m").unwrap(), Some(3), 100);
        for _ in 0..3 {
            assert_eq!(l.check(ip(1)), Ok(()));
        }
        let wait = l.check(ip(1)).unwrap_err();
        assert!((1..=60).contains(&wait), "{wait}");
        assert_eq!(l.check(ip(2)), Ok(()));
    }

    #[test]
    fn the_table_stays_within_its_bound_evicting_the_oldest() {
        let l = Limiter::new(parse_rate("1/h").unwrap(), Some(1), 64);
        assert!(l.capacity() >= 64 && l.capacity() < 64 + SHARDS);
        for n in 0..10_000 {
            let _ = l.check(ip(n));
        }
        assert!(
            l.clients() <= l.capacity(),
            "{} > {}",
            l.clients(),
            l.capacity()
        );
        // The newest client is still remembered (refused again), the first was forgotten.
        assert!(l.check(ip(9_999)).is_err());
        assert_eq!(l.check(ip(0)), Ok(()));
    }
}
