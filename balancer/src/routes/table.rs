//! The route table in force: the routes of one configuration, bound to running upstream groups,
//! and [`LiveRoutes`], the cell every worker reads it from and a reload swaps whole.
//!
//! A request loads the table once (one `Arc` taken from the [`ArcSwap`]) and keeps it to the end,
//! so a reload never changes a request's route halfway: requests in flight finish on the table
//! they started with, and a group left out of the new table lives until its last one ends.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use prometheus_client::metrics::counter::Counter;

use super::matcher::{Duplicate, Matcher, Rule};
use super::split::Split;
use super::RouteSpec;
use crate::backends::group::UpstreamGroup;
use crate::runtime::metrics::RouteMetrics;
use crate::upstream::UpstreamPool;

/// The table every worker reads per request; a reload stores a new one.
pub type LiveRoutes<U = UpstreamPool> = ArcSwap<RouteTable<U>>;

/// One configuration's routes; see the module doc.
pub struct RouteTable<U = UpstreamPool> {
    matcher: Matcher,
    routes: Box<[Route<U>]>,
    /// Every group of the configuration, in the file's order (also those no route uses yet).
    groups: Box<[Arc<UpstreamGroup<U>>]>,
}

/// One route bound to its groups.
pub struct Route<U = UpstreamPool> {
    pub spec: RouteSpec,
    /// `balancer_route_requests_total{route}`.
    pub requests: Counter,
    /// The groups, in the file's order, with their weights.
    pub groups: Box<[(Arc<UpstreamGroup<U>>, u32)]>,
    /// `Some` when the route splits over more than one group.
    split: Option<Split>,
}

/// Why a table could not be built from specs that `config` already validated (so only a bug or
/// a stale group map gets here; the reload reports it like any invalid file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableError {
    Duplicate { first: Arc<str>, second: Arc<str> },
    UnknownGroup { route: Arc<str>, group: Arc<str> },
    Split { route: Arc<str>, why: String },
}

impl std::fmt::Display for TableError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TableError::Duplicate { first, second } => {
                write!(
                    f,
                    "routes `{first}` and `{second}` have the same host and path"
                )
            }
            TableError::UnknownGroup { route, group } => {
                write!(f, "route `{route}` names no [[upstream]] `{group}`")
            }
            TableError::Split { route, why } => write!(f, "route `{route}`: {why}"),
        }
    }
}

impl<U> RouteTable<U> {
    /// The table of `specs`, each route bound to its groups among `groups` (by name).
    pub fn new(
        specs: &[RouteSpec],
        groups: &[Arc<UpstreamGroup<U>>],
        metrics: &RouteMetrics,
    ) -> Result<Self, TableError> {
        let by_name: HashMap<Arc<str>, Arc<UpstreamGroup<U>>> =
            groups.iter().map(|g| (g.name.clone(), g.clone())).collect();
        let rules: Vec<Rule> = specs.iter().map(|s| s.rule.clone()).collect();
        let matcher =
            Matcher::new(&rules).map_err(|Duplicate { first, second }| TableError::Duplicate {
                first: specs[first].name.clone(),
                second: specs[second].name.clone(),
            })?;
        let routes = specs
            .iter()
            .map(|spec| Route::bind(spec, &by_name, metrics))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RouteTable {
            matcher,
            routes: routes.into_boxed_slice(),
            groups: groups.into(),
        })
    }

    /// Every group of the configuration, in the file's order.
    pub fn groups(&self) -> &[Arc<UpstreamGroup<U>>] {
        &self.groups
    }

    /// The route a request for `host` (as sent, maybe with a port) and `path` takes.
    pub fn find(&self, host: Option<&[u8]>, path: &str) -> Option<&Route<U>> {
        self.matcher
            .find(host, path)
            .and_then(|index| self.routes.get(index))
    }

    /// Whether any route names a host (otherwise the Host header is never read for routing).
    pub fn needs_host(&self) -> bool {
        self.matcher.needs_host()
    }

    /// The routes in the file's order.
    pub fn routes(&self) -> &[Route<U>] {
        &self.routes
    }

    /// `next`'s routes (a reload's) take over this table's rate-limit state where a route of
    /// the same name keeps the same `rate_limit` settings (`RouteRateLimit::keep_state`).
    pub fn keep_rate_limits(&self, next: &mut [RouteSpec]) {
        for spec in next {
            let Some(limit) = &mut spec.policy.rate_limit else {
                continue;
            };
            let old = self.routes.iter().find(|r| r.spec.name == spec.name);
            if let Some(previous) = old.and_then(|r| r.spec.policy.rate_limit.as_ref()) {
                limit.keep_state(previous);
            }
        }
    }
}

impl<U> Route<U> {
    fn bind(
        spec: &RouteSpec,
        groups: &HashMap<Arc<str>, Arc<UpstreamGroup<U>>>,
        metrics: &RouteMetrics,
    ) -> Result<Self, TableError> {
        let bound = spec
            .targets
            .iter()
            .map(|t| match groups.get(&t.upstream) {
                Some(group) => Ok((group.clone(), t.weight)),
                None => Err(TableError::UnknownGroup {
                    route: spec.name.clone(),
                    group: t.upstream.clone(),
                }),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let split = if bound.len() > 1 {
            let weights: Vec<u32> = bound.iter().map(|&(_, w)| w).collect();
            let split = Split::new(&weights).map_err(|why| TableError::Split {
                route: spec.name.clone(),
                why,
            })?;
            Some(split)
        } else {
            None
        };
        // A route that answers itself (`respond`, `redirect`) has no group.
        if bound.is_empty() && spec.policy.answer.is_none() {
            return Err(TableError::Split {
                route: spec.name.clone(),
                why: "no upstream".into(),
            });
        }
        Ok(Route {
            spec: spec.clone(),
            requests: metrics.for_route(&spec.name),
            groups: bound.into_boxed_slice(),
            split,
        })
    }

    /// The group this request goes to first (the split's next pick), then the route's other
    /// groups in the file's order, for when the first has no backend to offer.
    pub fn groups_in_order(&self) -> impl Iterator<Item = &Arc<UpstreamGroup<U>>> {
        let first = self.split.as_ref().map_or(0, Split::pick);
        let rest = (0..self.groups.len()).filter(move |&i| i != first);
        std::iter::once(first)
            .chain(rest)
            .filter_map(|i| self.groups.get(i).map(|(g, _)| g))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::matcher::{HostPattern, PathPrefix};
    use crate::routes::TargetSpec;
    use crate::runtime::metrics::Metrics;

    fn spec(name: &str, path: &str, targets: &[(&str, u32)]) -> RouteSpec {
        RouteSpec {
            name: name.into(),
            rule: Rule {
                host: HostPattern::Any,
                path: PathPrefix::parse(path).unwrap(),
            },
            targets: targets
                .iter()
                .map(|&(g, w)| TargetSpec {
                    upstream: g.into(),
                    weight: w,
                })
                .collect(),
            strip_prefix: false,
            policy: Default::default(),
        }
    }

    /// Groups that are only names: the table never sends anything.
    fn groups(names: &[&str]) -> Vec<Arc<UpstreamGroup<()>>> {
        let metrics = Arc::new(Metrics::new());
        let settings = crate::backends::group::tests::settings(1);
        names
            .iter()
            .map(|&n| {
                UpstreamGroup::with_pools(n.into(), settings.clone(), metrics.clone(), vec![()])
            })
            .collect()
    }

    #[test]
    fn a_split_route_starts_with_its_pick_and_offers_the_rest() {
        let metrics = RouteMetrics::default();
        let specs = [spec("web", "/", &[("app", 3), ("next", 1)])];
        let table = RouteTable::new(&specs, &groups(&["app", "next"]), &metrics).unwrap();
        let route = table.find(None, "/x").unwrap();
        let firsts: Vec<String> = (0..4)
            .map(|_| route.groups_in_order().next().unwrap().name.to_string())
            .collect();
        assert_eq!(firsts.iter().filter(|n| *n == "next").count(), 1);
        let order: Vec<_> = route.groups_in_order().map(|g| g.name.clone()).collect();
        assert_eq!(order.len(), 2, "both groups offered once");
    }

    #[test]
    fn unknown_groups_and_duplicates_are_refused() {
        let metrics = RouteMetrics::default();
        let g = groups(&["app"]);
        let unknown = RouteTable::new(&[spec("a", "/", &[("nope", 1)])], &g, &metrics);
        assert!(matches!(unknown, Err(TableError::UnknownGroup { .. })));
        let dup = [
            spec("a", "/x", &[("app", 1)]),
            spec("b", "/x", &[("app", 1)]),
        ];
        let err = RouteTable::new(&dup, &g, &metrics).err().unwrap();
        assert_eq!(
            err.to_string(),
            "routes `a` and `b` have the same host and path"
        );
    }
}
