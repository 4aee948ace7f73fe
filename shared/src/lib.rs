//! Rules that `app`, `balancer` and `xtask` must agree on, written once.
//!
//! Each module owns one rule and is pure (no I/O) except `healthcheck`, the blocking probe both
//! images run as their Docker `HEALTHCHECK`. When two copies of a rule disagreed, the stricter one
//! was kept here (see docs/CONFIG.md, "Flags and variables").

#![forbid(unsafe_code)]

pub mod config_error;
pub mod count;
pub mod duration;
#[cfg(any(test, feature = "test-support"))]
pub mod extremes;
pub mod healthcheck;
pub mod host;
pub mod setting;
pub mod signal;
pub mod size;
pub mod sync;
