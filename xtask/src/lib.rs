//! The parts of the xtask that other workspace members reuse: the browser tests render NGINX's
//! configuration exactly as `cargo xtask up` and `cargo xtask bench` do.

pub mod nginx_config;
