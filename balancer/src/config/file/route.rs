//! `[[route]]` tables into [`RouteSpec`]s: host and path checked by the matcher's own parsers,
//! each target a group the file defines, weights within the split's range, no two routes with
//! the same host and path (the matcher's own check) and no two with the same explicit name.

use std::ops::Range;
use std::sync::Arc;

use toml::Spanned;

use super::policy;
use super::schema::{RouteTable, TargetTable};
use super::source::Source;
use super::{valid_name, GroupSpec, LoadError};
use crate::policy::RoutePolicy;
use crate::routes::matcher::{Duplicate, HostPattern, Matcher, PathPrefix, Rule};
use crate::routes::split::{MAX_TARGETS, MAX_WEIGHT, MIN_WEIGHT};
use crate::routes::{RouteSpec, TargetSpec};

/// Every route, in the file's order (at least one).
pub(super) fn routes(
    src: &Source,
    tables: &[Spanned<RouteTable>],
    groups: &[GroupSpec],
) -> Result<Vec<RouteSpec>, LoadError> {
    if tables.is_empty() {
        let why =
            "the file has no [[route]]: add one, e.g. path = \"/\" and upstream = \"<group>\"";
        return Err(src.error(&(0..0), why));
    }
    let mut specs = Vec::with_capacity(tables.len());
    let mut places = Vec::with_capacity(tables.len());
    let mut named: Vec<(&str, Range<usize>)> = Vec::new();
    for table in tables {
        specs.push(route_spec(src, table, groups)?);
        places.push(place(table));
        if let Some(name) = &table.get_ref().name {
            if let Some((_, first)) = named.iter().find(|(n, _)| *n == name.get_ref()) {
                let why = format!(
                    "route name `{}` is already used on line {}",
                    name.get_ref(),
                    src.line(first)
                );
                return Err(src.error(&name.span(), why));
            }
            named.push((name.get_ref(), name.span()));
        }
    }
    let rules: Vec<Rule> = specs.iter().map(|s| s.rule.clone()).collect();
    if let Err(Duplicate { first, second }) = Matcher::new(&rules) {
        let why = format!(
            "route `{}` has the same host and path as route `{}` on line {}",
            specs[second].name,
            specs[first].name,
            src.line(&places[first])
        );
        return Err(src.error(&places[second], why));
    }
    Ok(specs)
}

/// Where a route's rule is written: its path, else its host, else its table.
fn place(table: &Spanned<RouteTable>) -> Range<usize> {
    let route = table.get_ref();
    let key = route.path.as_ref().or(route.host.as_ref());
    key.map_or_else(|| table.span(), Spanned::span)
}

fn route_spec(
    src: &Source,
    table: &Spanned<RouteTable>,
    groups: &[GroupSpec],
) -> Result<RouteSpec, LoadError> {
    let route = table.get_ref();
    let host = match &route.host {
        Some(host) => {
            HostPattern::parse(host.get_ref()).map_err(|why| src.error(&host.span(), why))?
        }
        None => HostPattern::Any,
    };
    let path = match &route.path {
        Some(path) => {
            PathPrefix::parse(path.get_ref()).map_err(|why| src.error(&path.span(), why))?
        }
        None => PathPrefix::parse("/").map_err(|why| src.error(&table.span(), why))?,
    };
    let name: Arc<str> = match &route.name {
        Some(name) => valid_name(src, name, "route")?,
        None => label(&host, &path).into(),
    };
    let policy = policy::route_policy(src, route)?;
    let targets = match (&route.upstream, &route.upstreams) {
        (Some(_), Some(list)) => {
            let why = "a route has `upstream` or `upstreams`, not both";
            return Err(src.error(&list.span(), why));
        }
        (None, None) if policy.answer.is_some() => Vec::new(),
        (Some(_), _) | (_, Some(_)) if policy.answer.is_some() => {
            let why = "a route with `respond` or `redirect` answers itself: it takes no `upstream`";
            let at = policy::answer_place(route).unwrap_or_else(|| table.span());
            return Err(src.error(&at, why));
        }
        (None, None) => {
            let why = "a route needs `upstream = \"<group>\"` or `upstreams = [{ name = \"<group>\", weight = <n> }, ...]`";
            return Err(src.error(&table.span(), why));
        }
        (Some(one), None) => vec![TargetSpec {
            upstream: known_group(src, one, groups)?,
            weight: 1,
        }],
        (None, Some(list)) => split(src, list, groups)?,
    };
    Ok(RouteSpec {
        name,
        rule: Rule { host, path },
        targets,
        strip_prefix: route.strip_prefix,
        policy: RoutePolicy {
            compress: super::compress::route_compress(src, route)?,
            ..policy
        },
    })
}

/// A route without a name is labelled by its host and path: `api.example.com/v1`, or `/api`.
fn label(host: &HostPattern, path: &PathPrefix) -> String {
    match host {
        HostPattern::Any => path.to_string(),
        host => format!("{host}{path}"),
    }
}

/// `upstreams = [{ name, weight }, ...]`: 1 to [`MAX_TARGETS`] distinct groups, each weight
/// within the split's range (1 when left out).
fn split(
    src: &Source,
    list: &Spanned<Vec<Spanned<TargetTable>>>,
    groups: &[GroupSpec],
) -> Result<Vec<TargetSpec>, LoadError> {
    let items = list.get_ref();
    if items.is_empty() || items.len() > MAX_TARGETS {
        let why = format!(
            "`upstreams` lists between 1 and {MAX_TARGETS} groups, not {}",
            items.len()
        );
        return Err(src.error(&list.span(), why));
    }
    let mut out: Vec<TargetSpec> = Vec::with_capacity(items.len());
    for item in items {
        let target = item.get_ref();
        let upstream = known_group(src, &target.name, groups)?;
        if out.iter().any(|t| t.upstream == upstream) {
            let why = format!("group `{upstream}` is already in this route's `upstreams`");
            return Err(src.error(&target.name.span(), why));
        }
        let weight = match &target.weight {
            None => MIN_WEIGHT,
            Some(w) => u32::try_from(*w.get_ref())
                .ok()
                .filter(|w| (MIN_WEIGHT..=MAX_WEIGHT).contains(w))
                .ok_or_else(|| src.error(&w.span(), weight_error(*w.get_ref())))?,
        };
        out.push(TargetSpec { upstream, weight });
    }
    Ok(out)
}

fn weight_error(weight: i64) -> String {
    let range = format!("weight {weight} must be between {MIN_WEIGHT} and {MAX_WEIGHT}");
    match weight {
        0 => format!("{range}: leave the group out instead"),
        _ => range,
    }
}

/// The group `name` refers to, which the file must define.
fn known_group(
    src: &Source,
    name: &Spanned<String>,
    groups: &[GroupSpec],
) -> Result<Arc<str>, LoadError> {
    if let Some(group) = groups.iter().find(|g| *g.name == **name.get_ref()) {
        return Ok(group.name.clone());
    }
    let defined: Vec<&str> = groups.iter().map(|g| &*g.name).collect();
    let why = match defined.is_empty() {
        true => format!(
            "no [[upstream]] is named `{}` (the file defines none)",
            name.get_ref()
        ),
        false => format!(
            "no [[upstream]] is named `{}` (defined: {})",
            name.get_ref(),
            defined.join(", ")
        ),
    };
    Err(src.error(&name.span(), why))
}
