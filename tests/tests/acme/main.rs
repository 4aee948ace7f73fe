//! Automatic HTTPS (ACME) against Debian's `pebble` on loopback, with real validation of the
//! challenges by pebble against the balancer's own ports ([`e2e::pebble`]).

mod failures;
mod flags;
mod issuance;
mod pebble_runs;
