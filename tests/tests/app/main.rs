//! The `app` on its own against a real Redis (one test binary, one module per concern): its configuration
//! and `healthcheck` subcommand ([`config`]), static files ([`files`]), counting and Redis outages
//! ([`redis`]), every route ([`routes`]) and graceful shutdown ([`shutdown`]). Hostile input to the app is
//! in the `hostile` suite.

mod config;
mod files;
mod redis;
mod routes;
mod shutdown;
