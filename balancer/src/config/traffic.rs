//! The traffic rules' settings: the body limit, the per-client rate limit and whose
//! `X-Forwarded-For` names the client. [`TrafficConfig::rules`] builds the shared rules.

use shared::setting::{plain, Within};
use shared::{count, size};

use crate::traffic::client_key::{ClientKeying, DEFAULT_IPV6_PREFIX, IPV6_PREFIX_RANGE};
use crate::traffic::rate_limit::{parse_rate, Limiter, Rate};
use crate::traffic::trusted_proxies::{parse_trusted_proxies, TrustedProxies};
use crate::traffic::TrafficRules;

/// What a client may send.
#[derive(Debug, Clone, clap::Args)]
pub struct TrafficConfig {
    /// Largest request body accepted (larger gets 413).
    #[arg(long, env = "BALANCER_MAX_BODY", default_value = "16MiB", value_parser = size::within(0, size::TIB),
          value_name = "SIZE", help_heading = "Timeouts and limits")]
    pub max_body: u64,

    /// Requests per client address, e.g. `50/s`, `3000/m` or `100/h` (off when unset); over it:
    /// 429 with Retry-After, never forwarded.
    #[arg(long, env = "BALANCER_RATE_LIMIT", value_name = "COUNT/UNIT", value_parser = plain(parse_rate_limit))]
    pub rate_limit: Option<Rate>,

    /// Requests a client may send at once: the bucket's size (default: the rate's count, so 3000
    /// for `3000/m`).
    #[arg(long, env = "BALANCER_RATE_BURST", value_name = "COUNT", value_parser = count::within(1u32, MAX_BURST))]
    pub rate_burst: Option<u32>,

    /// Clients each rate limiter remembers (the global one, each route's); past it the least
    /// frequent are dropped (S3-FIFO).
    #[arg(long, env = "BALANCER_RATE_LIMIT_CLIENTS", value_name = "COUNT", default_value_t = 100_000, value_parser = count::within(1u64, 100_000_000))]
    pub rate_limit_clients: u64,

    /// Proxies (CIDR list) whose `X-Forwarded-For` is believed: the client is the last address
    /// in it that is not one of them (e.g. `10.0.0.0/8,192.168.0.0/16`). Unset: the socket's peer
    /// is the client.
    #[arg(long, env = "BALANCER_TRUSTED_PROXIES", value_name = "CIDR,...", default_value = "", hide_default_value = true,
          value_parser = parse_trusted_proxies)]
    pub trusted_proxies: TrustedProxies,

    /// IPv6 clients of the rate limiter are counted by this network prefix (one /64 is usually
    /// one host or line); IPv4 is per address. 128: every IPv6 address on its own.
    #[arg(long, env = "BALANCER_RATE_LIMIT_IPV6_PREFIX", value_name = "BITS", default_value_t = DEFAULT_IPV6_PREFIX,
          value_parser = count::within(*IPV6_PREFIX_RANGE.start(), *IPV6_PREFIX_RANGE.end()))]
    pub rate_limit_ipv6_prefix: u16,
}

/// The largest `--rate-burst` (and route `rate_burst`).
pub(crate) const MAX_BURST: u32 = 1_000_000;

/// The range of `--rate-limit`'s count, per second, minute or hour. With `--rate-burst` bounded
/// as well, governor's arithmetic (the burst times the period, in 64-bit nanoseconds) stays far
/// from overflowing: `1/h` with a burst of 4294967295 once panicked in `Limiter::new`.
fn rate_count() -> Within<u32> {
    count::within(1, 1_000_000)
}

/// `--rate-limit`: [`parse_rate`]'s syntax, its count within [`rate_count`].
pub(crate) fn parse_rate_limit(raw: &str) -> Result<Rate, String> {
    let rate = parse_rate(raw)?;
    rate_count()
        .bound(rate.count.get())
        .map_err(|why| format!("the count {why}"))?;
    Ok(rate)
}

impl TrafficConfig {
    /// `--rate-limit-clients`: the size of each client table (the global one, each route's).
    pub fn clients(&self) -> usize {
        usize::try_from(self.rate_limit_clients).unwrap_or(usize::MAX)
    }

    /// `--rate-limit-ipv6-prefix`: who one client is.
    pub fn keying(&self) -> ClientKeying {
        ClientKeying::new(self.rate_limit_ipv6_prefix)
    }

    /// The rules every worker applies.
    pub fn rules(&self) -> TrafficRules {
        TrafficRules {
            limiter: self
                .rate_limit
                .map(|rate| Limiter::new(rate, self.rate_burst, self.clients(), self.keying())),
            trusted: self.trusted_proxies.clone(),
        }
    }
}
