//! Real headless Chromium (one test binary, one module per concern): every page through both front doors
//! ([`pages`]), the balancer's dashboard ([`dashboard`]), the count page over HTTPS ([`https`]) and the
//! pages compressed by the balancer, each coding ([`compressed`]). Each
//! drives a browser, so `.config/nextest.toml` runs them in test group `heavy`.

mod compressed;
mod dashboard;
mod https;
mod pages;
