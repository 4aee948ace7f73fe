//! The external programs the benches and the stack drive, and the kernel files they read: one
//! module per tool, each owning its command line and the parsing of its output.
//!
//! [`locate`] (finding `redis-server`, `nginx`, `oha` and their versions), [`oha`] (the load
//! generator), [`callgrind`] (valgrind's instruction counts), [`openssl`] (`s_time` handshakes),
//! [`docker`] (the engine and Compose CLI), [`cgroup`] (a container's CPU and memory) and
//! [`procstats`] (a process's CPU, peak RSS and connections from `/proc`).
//!
//! The bottom of the crate: these modules use no other module of xtask, so every folder above
//! may use them and none of them can form an import cycle.

pub mod callgrind;
pub mod cgroup;
pub mod docker;
pub mod locate;
pub mod oha;
pub mod openssl;
pub mod procstats;
