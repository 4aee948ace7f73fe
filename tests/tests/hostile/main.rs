//! Hostile input sent raw over TCP (one test binary, one module per target): to the app's own port
//! ([`app`]), to the balancer's public port ([`balancer`]) and its framing and size limits
//! ([`balancer_framing`]). Hostile TLS clients are in the `tls` suite.

mod app;
mod balancer;
mod balancer_framing;
