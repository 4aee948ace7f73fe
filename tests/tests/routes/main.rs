//! The balancer's routes file (`--config`, issue 25) with real processes: two groups of real `app`
//! replicas (and a recording backend) behind one balancer, routed by host and path
//! ([`routing`]), a weighted split ([`weights`]), each way of reloading the file live
//! ([`reload`]), the reloads it refuses or cannot fully apply ([`reload_errors`]), groups changed
//! under load with an exact Redis count ([`under_load`]), `balancer check-config`
//! ([`check_config`]), and sticky sessions over three named replicas ([`sticky`]). [`fixture`] starts what they share.

mod check_config;
mod fixture;
mod reload;
mod reload_errors;
mod routing;
mod sticky;
mod under_load;
mod weights;
