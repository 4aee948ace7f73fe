//! The rate limiter's client table: governor's state store (one 64-bit GCRA state per
//! [`ClientKey`]) bounded to `--rate-limit-clients` entries, with an eviction that keeps the
//! frequent clients.
//!
//! governor's own keyed stores grow with every address ever seen. The first bound here evicted
//! by insertion order, so a scan of one-off (or spoofed) addresses pushed out the busiest
//! clients, each coming back with a full bucket. Each shard is now a `quick_cache` table, whose
//! eviction is S3-FIFO: a new client enters a small probation queue and is evicted from there
//! unless it comes back; one seen again is promoted to the main queue, which a stream of
//! one-off addresses never reaches (they leave through probation), and a ghost list of the
//! recently evicted lets a returning client straight in. An evicted client starts again with a
//! full bucket, which only ever lets it through sooner, never refuses it wrongly.

use shared::sync::lock;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, MutexGuard};

use governor::nanos::Nanos;
use governor::state::StateStore;
use quick_cache::unsync::Cache;

use super::client_key::ClientKey;

/// Shards of the table: enough that two workers rarely meet on one lock.
pub const SHARDS: usize = 16;

/// The bounded table (see the module doc).
pub struct ClientTable {
    shards: Box<[Mutex<Cache<ClientKey, u64>>]>,
    per_shard: usize,
    hasher: RandomState,
}

impl ClientTable {
    /// A table of about `capacity` clients in all (at least one per shard).
    pub fn new(capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(SHARDS).max(1);
        ClientTable {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(Cache::new(per_shard)))
                .collect(),
            per_shard,
            hasher: RandomState::new(),
        }
    }

    fn shard(&self, key: &ClientKey) -> MutexGuard<'_, Cache<ClientKey, u64>> {
        let i = usize::try_from(self.hasher.hash_one(key) % SHARDS as u64).unwrap_or(0);
        lock(&self.shards[i])
    }

    /// Clients currently remembered.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }

    /// No client is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most clients remembered at once.
    pub fn capacity(&self) -> usize {
        self.per_shard * SHARDS
    }
}

impl StateStore for ClientTable {
    type Key = ClientKey;

    fn measure_and_replace<T, F, E>(&self, key: &ClientKey, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let mut shard = self.shard(key);
        if let Some(mut state) = shard.get_mut(key) {
            let (out, next) = f(Some(Nanos::from(*state)))?;
            *state = next.as_u64();
            return Ok(out);
        }
        let (out, next) = f(None)?;
        shard.insert(*key, next.as_u64());
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::client_key::ClientKeying;
    use proptest::prelude::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn key(n: u32) -> ClientKey {
        ClientKeying::default().key(IpAddr::V4(Ipv4Addr::from(n)))
    }

    /// Writes `value` for `k` through the store's own entry point.
    fn put(t: &ClientTable, k: ClientKey, value: u64) {
        let _ = t.measure_and_replace(&k, |_| Ok::<_, ()>(((), Nanos::from(value))));
    }

    fn get(t: &ClientTable, k: ClientKey) -> Option<u64> {
        t.measure_and_replace(&k, |prev| Ok::<_, ()>((prev, prev.unwrap_or_default())))
            .ok()
            .flatten()
            .map(|n| n.as_u64())
    }

    #[test]
    fn a_scan_of_one_off_addresses_keeps_a_frequent_client() {
        let t = ClientTable::new(1_000);
        let busy = key(0x0a00_0001);
        for i in 0..8 {
            put(&t, busy, 1_000 + i);
        }
        for n in 0..200_000u32 {
            put(&t, key(0xc000_0000 + n), 1);
            assert!(t.len() <= t.capacity() + SHARDS, "{}", t.len());
        }
        assert_eq!(
            get(&t, busy),
            Some(1_007),
            "the busy client was evicted by the scan"
        );
    }

    #[test]
    fn one_off_addresses_fill_the_table_to_its_bound_and_no_further() {
        let t = ClientTable::new(20_000);
        for n in 0..100_000u32 {
            put(&t, key(0x7f01_0000 + n), 1);
        }
        // What the e2e test `the_client_table_stays_within_its_bound_for_100_000_addresses`
        // expects of `balancer_rate_limit_clients`.
        assert!((19_000..=20_016).contains(&t.len()), "{}", t.len());
    }

    proptest! {
        /// Whatever the access pattern, the table never holds much more than its capacity
        /// (quick_cache's capacity is approximate by one entry per shard) and a value read back
        /// is the last one written.
        #[test]
        fn bounded_and_last_write_wins(
            capacity in 1usize..200,
            ops in prop::collection::vec((0u32..500, any::<u32>()), 1..2_000),
        ) {
            let t = ClientTable::new(capacity);
            let mut last = std::collections::HashMap::new();
            for (k, v) in ops {
                put(&t, key(k), u64::from(v));
                last.insert(k, u64::from(v));
                prop_assert!(t.len() <= t.capacity() + SHARDS);
            }
            for (k, v) in last {
                if let Some(read) = get(&t, key(k)) {
                    prop_assert_eq!(read, v);
                }
            }
        }
    }
}
