//! Per-route policies: what a `[[route]]` of the config file asks of its requests and responses
//! beyond choosing an upstream group (issue 26: compression, access control, header rules,
//! redirects and fixed answers, rate limits). Each policy is a module of its own, pure where it can be, with
//! its settings as plain data in [`RoutePolicy`]; `config` fills them in from the file and the
//! proxy applies them on the route's requests.
//!
//! A route without policies (every flag-only route) holds the default, which the proxy checks
//! with one branch per policy, so the request path of a route without them stays as it was.

// Access control, header rules and fixed answers (`proxy::gate` applies them).
pub mod access;
pub mod answer;
pub mod basic_auth;
pub mod header_rules;
// Compression (`proxy::response_body::compress` applies it).
pub mod compress;
// Forward authentication (`proxy::gate` asks the auth service through `proxy::forward_auth`).
pub mod forward_auth;
// Rate limits per route (`proxy::gate` applies them).
pub mod rate_limit;

/// Every policy of one route; the default is none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoutePolicy {
    // --- access control, header rules and fixed answers (`proxy::gate`) ---
    /// `allow` / `deny`: a 403 for a client outside them.
    pub access: Option<access::Access>,
    /// `basic_auth`: a 401 without a user of the file and their password.
    pub basic_auth: Option<basic_auth::BasicAuth>,
    /// `respond` or `redirect`: the balancer answers, no upstream is asked.
    pub answer: Option<answer::Answer>,
    /// `request_headers`: on the request the backend gets.
    pub request_headers: Option<header_rules::HeaderRules>,
    /// `response_headers`: on every response of the route.
    pub response_headers: Option<header_rules::HeaderRules>,
    // Compression (`proxy::response_body::compress` applies it).
    /// `compress = [...]` (or `--compress`): encode the responses its clients accept encoded.
    pub compress: Option<compress::Compress>,
    // Forward authentication (`proxy::gate`).
    /// `forward_auth = { url, copy_headers, timeout }`: an auth service decides first.
    pub forward_auth: Option<forward_auth::ForwardAuth>,
    // Rate limits per route (`proxy::gate`).
    /// `rate_limit` / `rate_burst`: a 429 for a client over the route's own limit.
    pub rate_limit: Option<rate_limit::RouteRateLimit>,
}
