//! Routes: which upstream group a request goes to, by its host and path, as the config file
//! (`--config`) says; without a file, one route `/` to the `--upstreams` group.
//!
//! [`RouteSpec`] is a route as the configuration gives it (plain data, validated by `config`);
//! [`matcher`] finds a request's route (pure; proptest oracle), [`split`] spreads a route's
//! requests over its weighted groups, [`table`] binds the routes to running groups and holds the
//! table every worker reads and a reload swaps.

pub mod matcher;
pub mod split;
pub mod table;

use std::sync::Arc;

use matcher::Rule;

/// One `[[route]]` as the configuration gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// The route's label in metrics, logs and `/status`: the file's `name`, or `host` + `path`.
    pub name: Arc<str>,
    pub rule: Rule,
    /// `upstream = "app"` is one target of weight 1; `upstreams = [...]` a weighted split.
    pub targets: Vec<TargetSpec>,
    /// Take the route's path off before forwarding (`/api/x` → `/x`).
    pub strip_prefix: bool,
}

/// One upstream group of a route, with its share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSpec {
    pub upstream: Arc<str>,
    pub weight: u32,
}
