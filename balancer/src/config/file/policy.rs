//! A `[[route]]`'s policy keys into its [`RoutePolicy`]: `allow`, `deny`, `basic_auth`,
//! `respond`, `redirect`, `request_headers`, `response_headers`, each checked by its policy's own
//! parser and refused at its line and column. `basic_auth`'s users file is read here, at every
//! load, so it changes with a reload of the configuration; its errors name the users file's line.

use std::ops::Range;
use std::path::PathBuf;

use toml::Spanned;

use super::schema::{BasicAuthTable, HeaderRulesTable, RouteTable};
use super::source::Source;
use super::LoadError;
use crate::policy::access::{parse_cidr, Access};
use crate::policy::answer::{Answer, Redirect, Respond};
use crate::policy::basic_auth::{challenge, BasicAuth, MAX_USERS_FILE};
use crate::policy::header_rules::{rule_name, rule_value, HeaderRules};
use crate::policy::RoutePolicy;
use crate::traffic::trusted_proxies::Cidr;

/// The code of a `redirect` without one: permanent, method kept.
const DEFAULT_REDIRECT_CODE: i64 = 308;

/// The route's policies, each checked; the default when it names none.
pub(super) fn route_policy(src: &Source, route: &RouteTable) -> Result<RoutePolicy, LoadError> {
    let access = match (&route.allow, &route.deny) {
        (None, None) => None,
        (allow, deny) => Some(Access::new(
            networks(src, allow.as_ref())?,
            networks(src, deny.as_ref())?,
        )),
    };
    let basic_auth = match &route.basic_auth {
        Some(table) => Some(basic_auth(src, table.get_ref())?),
        None => None,
    };
    let answer = match (&route.respond, &route.redirect) {
        (Some(_), Some(redirect)) => {
            let why = "a route has `respond` or `redirect`, not both";
            return Err(src.error(&redirect.span(), why));
        }
        (Some(respond), None) => {
            let r = respond.get_ref();
            let content_type = r.content_type.as_ref().map(|c| c.get_ref().as_str());
            let answer =
                Respond::new(*r.status.get_ref(), &r.body, content_type).map_err(|why| {
                    let at = match (&r.content_type, why.starts_with("status")) {
                        (Some(ct), false) => ct.span(),
                        _ => r.status.span(),
                    };
                    src.error(&at, why)
                })?;
            Some(Answer::Respond(answer))
        }
        (None, Some(redirect)) => {
            let r = redirect.get_ref();
            let code = r
                .code
                .as_ref()
                .map_or(DEFAULT_REDIRECT_CODE, |c| *c.get_ref());
            let answer = Redirect::new(r.to.get_ref(), code).map_err(|why| {
                let at = match (&r.code, why.starts_with("code")) {
                    (Some(c), true) => c.span(),
                    _ => r.to.span(),
                };
                src.error(&at, why)
            })?;
            Some(Answer::Redirect(answer))
        }
        (None, None) => None,
    };
    if let (Some(_), Some(rules)) = (&answer, &route.request_headers) {
        let why =
            "`request_headers` does nothing on a route that answers itself (`respond`, `redirect`)";
        return Err(src.error(&rules.span(), why));
    }
    Ok(RoutePolicy {
        access,
        basic_auth,
        answer,
        request_headers: header_rules(src, route.request_headers.as_ref())?,
        response_headers: header_rules(src, route.response_headers.as_ref())?,
        // Filled in by `route` (`compress`, `compress_min_size`, `compress_level`).
        compress: None,
        forward_auth: super::forward_auth::route_forward_auth(src, route)?,
        // Filled in by `rate_limit::apply` (`rate_limit`, `rate_burst`).
        rate_limit: None,
    })
}

/// Where a route's `respond` or `redirect` is written, when it has one (it then takes no
/// `upstream`).
pub(super) fn answer_place(route: &RouteTable) -> Option<Range<usize>> {
    let respond = route.respond.as_ref().map(Spanned::span);
    respond.or_else(|| route.redirect.as_ref().map(Spanned::span))
}

fn networks(
    src: &Source,
    list: Option<&Spanned<Vec<Spanned<String>>>>,
) -> Result<Vec<Cidr>, LoadError> {
    let Some(list) = list else {
        return Ok(Vec::new());
    };
    list.get_ref()
        .iter()
        .map(|entry| parse_cidr(entry.get_ref()).map_err(|why| src.error(&entry.span(), why)))
        .collect()
}

fn basic_auth(src: &Source, table: &BasicAuthTable) -> Result<BasicAuth, LoadError> {
    let challenge =
        challenge(table.realm.get_ref()).map_err(|why| src.error(&table.realm.span(), why))?;
    let path = users_path(src, table.users_file.get_ref());
    let text = read_users(&path).map_err(|why| src.error(&table.users_file.span(), why))?;
    BasicAuth::new(challenge, &text).map_err(|e| match e.line {
        0 => LoadError::file(&path, None, e.why),
        line => LoadError::file(&path, Some((line, 1)), e.why),
    })
}

/// `users_file` as written, relative to the config file's folder.
fn users_path(src: &Source, raw: &str) -> PathBuf {
    let path = PathBuf::from(raw);
    match src.path.parent() {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path,
    }
}

fn read_users(path: &std::path::Path) -> Result<String, String> {
    use std::io::Read;
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read `{shown}`: {e}"))?;
    let mut text = String::new();
    file.take(MAX_USERS_FILE + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read `{shown}` as text: {e}"))?;
    if text.len() as u64 > MAX_USERS_FILE {
        return Err(format!("`{shown}` is larger than 1 MiB"));
    }
    Ok(text)
}

fn header_rules(
    src: &Source,
    table: Option<&Spanned<HeaderRulesTable>>,
) -> Result<Option<HeaderRules>, LoadError> {
    let Some(table) = table else {
        return Ok(None);
    };
    let rules = table.get_ref();
    let mut set = Vec::with_capacity(rules.set.len());
    for (name, value) in &rules.set {
        let header = rule_name(name.get_ref()).map_err(|why| src.error(&name.span(), why))?;
        if set.iter().any(|(n, _)| *n == header) {
            let why = format!("`{}` is set twice (names ignore case)", name.get_ref());
            return Err(src.error(&name.span(), why));
        }
        let value = rule_value(value.get_ref()).map_err(|why| src.error(&value.span(), why))?;
        set.push((header, value));
    }
    let mut remove = Vec::with_capacity(rules.remove.len());
    for name in &rules.remove {
        remove.push(rule_name(name.get_ref()).map_err(|why| src.error(&name.span(), why))?);
    }
    Ok(Some(HeaderRules::new(set, remove)))
}
