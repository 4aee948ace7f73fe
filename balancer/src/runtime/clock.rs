//! The process clock for cheap atomic timestamps: milliseconds since start, comparable across
//! threads and storable in an `AtomicU64` (health windows, ejections, slow start, deadlines).

use std::sync::OnceLock;
use std::time::Instant;

/// Milliseconds since the process started, used for cheap atomic timestamps.
pub fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}
