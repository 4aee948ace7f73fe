//! `balancer`: an HTTP reverse proxy and load balancer in front of a service's replicas, replacing
//! NGINX. A library with a thin binary (`main.rs`), so tests, benches and examples use its parts.
//!
//! One request flows top to bottom; each folder uses only the ones below it (checked by
//! `tests/layout/check_layout.py` against `ARCHITECTURE.md`):
//!
//! - [`start`]: wiring only, from a loaded configuration to running listeners.
//! - [`listeners`] and [`handover`]: where the listening sockets come from (bound, or taken over
//!   from the balancer serving at `--handover PATH`, which then drains).
//! - [`live`]: the configuration in force (running groups, the route table) and its reloads.
//! - [`config`]: flags, `BALANCER_*` variables and the `--config` file, grouped by concern.
//! - [`front`] and [`admin`]: the public listeners (plain, TLS, redirect) and the admin listener.
//! - [`acme`]: automatic HTTPS, certificates obtained and renewed over ACME for the TLS listener.
//! - [`proxy`]: one request in, one response out, over any [`upstream::Upstream`].
//! - [`routes`]: which upstream group a request goes to, by host and path (weighted splits).
//! - [`policy`]: what a route asks beyond its group (compression, access, headers, fixed answers).
//! - [`backends`]: one upstream group's backend set: discovery, health, probing, outlier
//!   ejection, selection.
//! - [`upstream`]: the connections to one backend (pooled HTTP/1.1, h2c) and the one connect.
//! - [`traffic`], [`access_log`], [`runtime`]: traffic rules, the access log, and the clock,
//!   drain and metrics everything runs on.

// One exception, with its SAFETY reasoning: taking the descriptors systemd passes
// (`listeners::systemd`).
#![deny(unsafe_code)]

pub mod access_log;
pub mod acme;
pub mod admin;
pub mod backends;
pub mod config;
pub mod front;
pub mod handover;
pub mod listeners;
pub mod live;
pub mod policy;
pub mod proxy;
pub mod routes;
pub mod runtime;
pub mod start;
pub mod traffic;
pub mod upstream;
