//! End-to-end test harness: real `redis-server`, `app` and `balancer` processes.
//!
//! Every test in `tests/tests/` runs the real binaries, never mocks. This crate owns everything they share,
//! written once: building the binaries once ([`bin_path`]), picking free ports, starting processes and
//! waiting for them by polling (never by a fixed sleep), and killing everything on drop, even when the test
//! panics. A process whose test failed prints the tail of its log, so a red run says why. `cargo xtask`
//! runs its local stack and benchmark on the same [`Process`] harness and NGINX configuration.
//!
//! By concern:
//! * processes: [`process`] (one child), [`services`] (`app`, `balancer`), [`redis_server`], [`nginx`],
//!   [`namespaced_balancer`], [`dnsmasq`] (a DNS server whose answers change), [`stack`] (Redis + replicas
//!   + balancer), [`routes`] (a balancer on a routes file, and its reloads), [`bins`], [`net`];
//! * talking to them: [`http`], [`raw`] (bytes over TCP), [`page`] (the count page),
//!   [`balancer_status`] (the admin `/status`), [`browser`] (headless Chromium), [`tls`] (a test CA,
//!   an HTTPS client, `curl` and `openssl s_client`), [`grpc`] (a real gRPC server and client,
//!   Python's grpcio);
//! * the far side of the balancer: [`backends`] (echo, recording, hung, breaking, WebSocket);
//! * faults and abuse: [`load`] (a recording load generator), [`netns`] (cutting a link),
//!   [`hostile`] (rejected-case checks), [`resources`] (RSS, open-file limit);
//! * time: [`wait`] (polling, test bounds).
//!
//! The modules that need the browser or WebSocket clients ([`browser`], [`backends`], and
//! [`netns`] and [`hostile`], which serve through `backends`) are behind the `e2e` feature, on by default;
//! `cargo xtask` depends on this crate without it, so it does not build fantoccini,
//! tokio-tungstenite and what they bring.

#[cfg(feature = "e2e")]
pub mod backends;
pub mod balancer_status;
pub mod bins;
#[cfg(feature = "e2e")]
pub mod browser;
pub mod dnsmasq;
pub mod grpc;
#[cfg(feature = "e2e")]
pub mod hostile;
pub mod http;
pub mod load;
pub mod namespaced_balancer;
pub mod net;
#[cfg(feature = "e2e")]
pub mod netns;
pub mod nginx;
pub mod nginx_config;
pub mod page;
pub mod pebble;
pub mod process;
pub mod raw;
pub mod redis_server;
pub mod resources;
pub mod routes;
pub mod services;
pub mod skip;
pub mod stack;
pub mod tls;
pub mod wait;

pub use bins::bin_path;
pub use net::free_port;
pub use process::Process;
pub use redis_server::RedisServer;
pub use services::{App, AppBuilder, Balancer, BalancerBuilder, COUNTER_KEY};
pub use stack::Stack;
pub use wait::{bounded, wait_until, wait_until_async, TEST_BOUND};
