//! A `[[route]]`'s `forward_auth = { url, copy_headers, timeout }`: the URL plain `http://` with a
//! host, each copied header a name a header rule could set (no hop-by-hop, framing or forwarding
//! header), none twice and none the route's `request_headers` also sets or removes (the two would
//! fight over it), the timeout within its range (3s when left out); each refused at its place.

use http::HeaderName;

use super::schema::RouteTable;
use super::source::Source;
use super::LoadError;
use crate::policy::forward_auth::{
    parse_timeout, parse_url, ForwardAuth, DEFAULT_TIMEOUT, MAX_COPY_HEADERS,
};
use crate::policy::header_rules::rule_name;

/// The route's forward authentication, or `None` without `forward_auth`.
pub(super) fn route_forward_auth(
    src: &Source,
    route: &RouteTable,
) -> Result<Option<ForwardAuth>, LoadError> {
    let Some(table) = &route.forward_auth else {
        return Ok(None);
    };
    let t = table.get_ref();
    let url = parse_url(t.url.get_ref()).map_err(|why| src.error(&t.url.span(), why))?;
    let timeout = match &t.timeout {
        Some(raw) => parse_timeout(raw.get_ref()).map_err(|why| src.error(&raw.span(), why))?,
        None => DEFAULT_TIMEOUT,
    };
    let ruled = rule_names(route);
    let mut copy: Vec<HeaderName> = Vec::with_capacity(t.copy_headers.len());
    for entry in &t.copy_headers {
        let name = rule_name(entry.get_ref()).map_err(|why| {
            let why = why.replace("a rule cannot set or remove it", "it cannot be copied");
            src.error(&entry.span(), why)
        })?;
        let why = if copy.contains(&name) {
            format!(
                "`{}` is in `copy_headers` twice (names ignore case)",
                entry.get_ref()
            )
        } else if ruled.contains(&name) {
            format!(
                "`{}` is also in this route's `request_headers`: copy it or set it, not both",
                entry.get_ref()
            )
        } else if copy.len() == MAX_COPY_HEADERS {
            format!("`copy_headers` lists at most {MAX_COPY_HEADERS} headers")
        } else {
            copy.push(name);
            continue;
        };
        return Err(src.error(&entry.span(), why));
    }
    Ok(Some(ForwardAuth::new(url, copy, timeout)))
}

/// The names the route's `request_headers` sets or removes (already checked or refused there).
fn rule_names(route: &RouteTable) -> Vec<HeaderName> {
    let Some(rules) = &route.request_headers else {
        return Vec::new();
    };
    let rules = rules.get_ref();
    let set = rules.set.keys();
    set.chain(rules.remove.iter())
        .filter_map(|name| HeaderName::from_bytes(name.get_ref().as_bytes()).ok())
        .collect()
}
