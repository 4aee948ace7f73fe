//! A route's `rate_limit = "100/s"` / `rate_burst = N`: the same token bucket per client as
//! `--rate-limit` / `--rate-burst` (`traffic::rate_limit`), with a client table of the route's
//! own, applied on top of the global limit. Over it the route answers 429 with `Retry-After`.
//!
//! The settings are plain data, compared as such; the table is shared state behind an `Arc`.
//! A reload keeps a route's table when the route (by name) keeps the same settings
//! ([`RouteRateLimit::keep_state`]), so a reload does not hand every client a fresh budget; a
//! changed rate or burst starts a new table, as the old budgets meant another limit.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use crate::traffic::client_key::ClientKeying;
use crate::traffic::rate_limit::{Limiter, Rate};

/// A route's rate limit: its settings and its client table.
#[derive(Clone)]
pub struct RouteRateLimit {
    /// The route's name, for `balancer_route_rate_limited_total{route}`.
    pub route: Arc<str>,
    pub rate: Rate,
    /// `rate_burst` (default: the rate's count).
    pub burst: Option<u32>,
    /// `--rate-limit-clients` and `--rate-limit-ipv6-prefix` when the table was made.
    clients: usize,
    keying: ClientKeying,
    limiter: Arc<Limiter>,
}

impl RouteRateLimit {
    /// A fresh table for `rate` and `burst`, bounded and keyed as the flags say.
    pub fn new(
        route: Arc<str>,
        rate: Rate,
        burst: Option<u32>,
        clients: usize,
        keying: ClientKeying,
    ) -> Self {
        RouteRateLimit {
            route,
            rate,
            burst,
            clients,
            keying,
            limiter: Arc::new(Limiter::new(rate, burst, clients, keying)),
        }
    }

    /// `Ok`, or the whole seconds `client` must wait (for `Retry-After`).
    #[inline]
    pub fn check(&self, client: IpAddr) -> Result<(), u64> {
        self.limiter.check(client)
    }

    /// Takes over `previous`'s table when the settings are the same (see the module doc).
    pub fn keep_state(&mut self, previous: &RouteRateLimit) {
        if self == previous {
            self.limiter = previous.limiter.clone();
        }
    }

    /// Whether this and `other` share one table.
    pub fn same_table(&self, other: &RouteRateLimit) -> bool {
        Arc::ptr_eq(&self.limiter, &other.limiter)
    }

    /// Clients the route's table remembers.
    pub fn clients(&self) -> usize {
        self.limiter.clients()
    }
}

/// Equal settings (the tables themselves are not compared).
impl PartialEq for RouteRateLimit {
    fn eq(&self, other: &Self) -> bool {
        (self.rate, self.burst, self.clients, self.keying)
            == (other.rate, other.burst, other.clients, other.keying)
    }
}

impl Eq for RouteRateLimit {}

impl fmt::Debug for RouteRateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteRateLimit")
            .field("route", &self.route)
            .field("rate", &self.rate.to_string())
            .field("burst", &self.burst)
            .field("clients", &self.clients)
            .field("ipv6_prefix", &self.keying.ipv6_prefix())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::rate_limit::parse_rate;

    fn limit(rate: &str, burst: Option<u32>) -> RouteRateLimit {
        let rate = parse_rate(rate).unwrap();
        RouteRateLimit::new("api".into(), rate, burst, 100, ClientKeying::default())
    }

    #[test]
    fn the_table_is_kept_only_for_the_same_settings() {
        let client = IpAddr::from([192, 0, 2, 1]);
        let old = limit("1/h", Some(1));
        assert_eq!(old.check(client), Ok(()));
        let mut same = limit("1/h", Some(1));
        same.keep_state(&old);
        assert!(same.same_table(&old));
        assert!(same.check(client).is_err(), "the budget was reset");
        let mut other = limit("1/h", Some(2));
        other.keep_state(&old);
        assert!(!other.same_table(&old));
        assert_eq!(other.check(client), Ok(()));
    }
}
