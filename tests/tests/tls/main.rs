//! HTTPS on the balancer's front door (one test binary, one module per concern): real clients
//! ([`front_door`]), hostile TLS clients ([`hostile`]) and certificate rotation under load ([`rotation`]).
//! `hostile` and `rotation` load the machine, so `.config/nextest.toml` runs them in test group `heavy`.

mod front_door;
mod hostile;
mod rotation;
