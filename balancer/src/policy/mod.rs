//! Per-route policies: what a `[[route]]` of the config file asks of its requests and responses
//! beyond choosing an upstream group (issue 26: compression, access control, header rules,
//! redirects and fixed answers). Each policy is a module of its own, pure where it can be, with
//! its settings as plain data in [`RoutePolicy`]; `config` fills them in from the file and the
//! proxy applies them on the route's requests.
//!
//! A route without policies (every flag-only route) holds the default, which the proxy checks
//! with one branch per policy, so the request path of a route without them stays as it was.

pub mod compress;

/// Every policy of one route; the default is none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoutePolicy {
    /// `compress = [...]` (or `--compress`): encode the responses its clients accept encoded.
    pub compress: Option<compress::Compress>,
}
