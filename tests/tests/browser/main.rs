//! Real headless Chromium (one test binary, one module per concern): every page through both front doors
//! ([`pages`]), the balancer's dashboard ([`dashboard`]) and the count page over HTTPS ([`https`]). Each
//! drives a browser, so `.config/nextest.toml` runs them in test group `heavy`.

mod dashboard;
mod https;
mod pages;
