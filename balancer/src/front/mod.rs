//! The public listeners: the accept loop and the workers (one event loop per thread), HTTP/1 and
//! HTTP/2 on plain TCP or TLS, the header-read timeout, the connection limit, the HTTP-to-HTTPS
//! redirect, and the live certificate with its reload.
//!
//! May use `proxy` (each request is handed to it) and `runtime`.

pub mod acme_http;
pub mod connection_limit;
pub mod head_timeout;
pub mod redirect;
pub mod server;
pub mod sni;
pub mod sniff;
pub mod tls;
pub mod tls_reload;
