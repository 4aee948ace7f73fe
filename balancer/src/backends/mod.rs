//! The backend set of one upstream group: each backend's data and health state, discovery of the
//! addresses behind the upstream names, active probing, 5xx outlier ejection, and the choice of a
//! backend per request (round-robin or least-request, slow start).
//!
//! May use `upstream` (a backend's endpoint and its connections) and `runtime`; never `proxy`,
//! `front` or `admin`, which sit above it.

pub mod backend;
pub mod discovery;
pub mod group;
pub mod health;
pub mod lookup;
pub mod outlier;
pub mod probe;
pub mod selection;
pub mod sticky;
