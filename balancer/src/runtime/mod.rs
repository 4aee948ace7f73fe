//! What every part runs on: the clock, the drain every listener shares on shutdown, the metrics
//! registry and its handles, and the lazily re-armed deadline both HTTP/1 sides use. Uses nothing
//! else of the crate.

pub mod clock;
pub mod metrics;
pub mod shutdown;
pub mod wait_clock;
