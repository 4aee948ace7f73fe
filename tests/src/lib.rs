//! End-to-end test harness: real `redis-server`, `app` and `balancer` processes.
//!
//! Every test in `tests/tests/` runs the real binaries, never mocks. This crate owns the plumbing they share:
//! building the binaries once ([`bin_path`]), picking free ports, starting processes and waiting for them by
//! polling (never by a fixed sleep), and killing everything on drop, even when the test panics. A process whose
//! test failed prints the tail of its log, so a red run says why.

pub mod bins;
pub mod http;
pub mod net;
pub mod nginx_config;
pub mod process;
pub mod raw;
pub mod redis_server;
pub mod services;
pub mod wait;

pub use bins::bin_path;
pub use net::free_port;
pub use process::Process;
pub use redis_server::RedisServer;
pub use services::{App, AppBuilder, Balancer, BalancerBuilder};
pub use wait::{wait_until, wait_until_async};
