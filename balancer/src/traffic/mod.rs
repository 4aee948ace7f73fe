//! Rules on who may send how much: the per-client rate limit (who one client is, its bounded
//! table) and which proxies' `X-Forwarded-For` names the client. Pure policy with its own state; uses nothing else of the crate.

pub mod client_key;
pub mod client_table;
pub mod rate_limit;
pub mod trusted_proxies;

use std::net::IpAddr;

use http::HeaderMap;

use rate_limit::Limiter;
use trusted_proxies::TrustedProxies;

/// The traffic rules every worker applies, shared.
pub struct TrafficRules {
    /// `--rate-limit` (`None`: off).
    pub limiter: Option<Limiter>,
    /// `--trusted-proxies`: who the client is, for the rate limit.
    pub trusted: TrustedProxies,
}

impl TrafficRules {
    /// `--rate-limit`: `Err(seconds to wait)` when the client at `peer` (or the one named by a
    /// trusted proxy's `X-Forwarded-For`) is over it.
    pub fn rate_check(&self, peer: IpAddr, headers: &HeaderMap) -> Result<(), u64> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter.check(self.client(peer, headers))
    }

    /// The client as `--trusted-proxies` decides: `peer`, or the address a trusted proxy's
    /// `X-Forwarded-For` names.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if self.trusted.is_empty() {
            peer
        } else {
            self.trusted.client(peer, headers)
        }
    }
}
