//! Rules on who may send how much: the per-client rate limit and which proxies' `X-Forwarded-For`
//! names the client. Pure policy with its own state; uses nothing else of the crate.

pub mod rate_limit;
pub mod trusted_proxies;
