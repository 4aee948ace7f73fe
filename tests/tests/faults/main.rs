//! Faults under load through the balancer, real replicas and a real Redis (one test binary, one module per
//! fault): a replica killed ([`crash`]), wedged ([`hung_replica`]), cut off the network ([`link_cut`]) or
//! not ready yet ([`unready_replica`]); Redis restarted ([`redis_restart`]); a rolling restart
//! ([`rolling_restart`]). These put the machine under load, so `.config/nextest.toml` runs them one at a
//! time (test group `heavy`).

mod crash;
mod hung_replica;
mod link_cut;
mod redis_restart;
mod rolling_restart;
mod unready_replica;
