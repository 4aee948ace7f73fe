//! The traffic rules' settings: the body limit, the per-client rate limit and whose
//! `X-Forwarded-For` names the client. [`TrafficConfig::rules`] builds the shared rules.

use shared::size::parse_size;

use crate::traffic::rate_limit::{parse_rate, Limiter, Rate};
use crate::traffic::trusted_proxies::{parse_trusted_proxies, TrustedProxies};
use crate::traffic::TrafficRules;

/// What a client may send.
#[derive(Debug, Clone, clap::Args)]
pub struct TrafficConfig {
    /// Largest request body accepted (larger gets 413).
    #[arg(long, env = "BALANCER_MAX_BODY", default_value = "16MiB", value_parser = parse_size)]
    pub max_body: u64,

    /// Requests per client address, e.g. `50/s` or `3000/m` (off when unset); over it: 429.
    #[arg(long, env = "BALANCER_RATE_LIMIT", value_parser = parse_rate)]
    pub rate_limit: Option<Rate>,

    /// Requests a client may send at once above the rate (default: one second's worth, at least 1).
    #[arg(long, env = "BALANCER_RATE_BURST", value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_burst: Option<u32>,

    /// Client addresses the rate limiter remembers; past it the oldest entries are dropped.
    #[arg(long, env = "BALANCER_RATE_LIMIT_CLIENTS", default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub rate_limit_clients: u64,

    /// Proxies (CIDR list) whose `X-Forwarded-For` is believed: the client is the last address
    /// in it that is not one of them. Empty: the socket's peer is the client.
    #[arg(long, env = "BALANCER_TRUSTED_PROXIES", default_value = "", value_parser = parse_trusted_proxies)]
    pub trusted_proxies: TrustedProxies,
}

impl TrafficConfig {
    /// The rules every worker applies.
    pub fn rules(&self) -> TrafficRules {
        TrafficRules {
            limiter: self.rate_limit.map(|rate| {
                let clients = usize::try_from(self.rate_limit_clients).unwrap_or(usize::MAX);
                Limiter::new(rate, self.rate_burst, clients)
            }),
            trusted: self.trusted_proxies.clone(),
        }
    }
}
