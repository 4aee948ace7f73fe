//! `[[upstream]]` tables into [`GroupSpec`]s: the name, the `servers` (each entry by
//! `--upstreams`' own rule), the group's flags layered over `[server]` (see `server`), and its
//! `sticky` cookie (see `sticky`).

use std::ops::Range;
use std::sync::Arc;

use toml::Spanned;

use super::schema::{Settings, Value};
use super::server::{Layers, Scope};
use super::source::Source;
use super::{valid_name, GroupSpec, LoadError};
use crate::backends::discovery::UpstreamName;
use crate::config::upstreams::parse_upstream;

/// Every group, in the file's order; names are unique.
pub(super) fn groups(
    layers: &Layers,
    src: &Source,
    server_args: &[std::ffi::OsString],
    tables: &[Spanned<Settings>],
) -> Result<Vec<GroupSpec>, LoadError> {
    let mut out: Vec<GroupSpec> = Vec::with_capacity(tables.len());
    let mut places: Vec<Range<usize>> = Vec::with_capacity(tables.len());
    for table in tables {
        let (group, place) = group(layers, src, server_args, table)?;
        if let Some(first) = out.iter().position(|g| g.name == group.name) {
            let line = src.line(&places[first]);
            let why = format!(
                "upstream group `{}` is already defined on line {line}",
                group.name
            );
            return Err(src.error(&place, why));
        }
        out.push(group);
        places.push(place);
    }
    Ok(out)
}

/// One group, and where its name is.
fn group(
    layers: &Layers,
    src: &Source,
    server_args: &[std::ffi::OsString],
    table: &Spanned<Settings>,
) -> Result<(GroupSpec, Range<usize>), LoadError> {
    let (mut name, mut servers, mut sticky, mut rest) = (None, None, None, Vec::new());
    for entry in &table.get_ref().0 {
        match entry.0.get_ref().as_str() {
            "name" => name = Some(&entry.1),
            "servers" => servers = Some(&entry.1),
            "sticky" => sticky = Some(&entry.1),
            _ => rest.push(entry),
        }
    }
    let name = name.ok_or_else(|| src.error(&table.span(), "an [[upstream]] needs a `name`"))?;
    let place = name.span();
    let name: Arc<str> = match name.get_ref() {
        Value::Text(text) => valid_name(src, &Spanned::new(place.clone(), text.clone()), "group")?,
        other => return Err(src.error(&place, format!("`name` is a string, not {}", other.kind()))),
    };
    let servers = servers.ok_or_else(|| {
        src.error(
            &table.span(),
            format!("upstream group `{name}` needs `servers = [\"host:port\", ...]`"),
        )
    })?;
    let names = parse_servers(src, servers)?;
    let args = layers.setting_args(src, rest.into_iter(), Scope::Upstream)?;
    let cli = layers
        .reparse(&[server_args, &args])
        .map_err(|e| src.error(&table.span(), shared::config_error::first_line(&e)))?;
    let mut settings = cli.config.group.group();
    settings.names = names;
    settings.sticky = sticky.map(|s| super::sticky::sticky(src, s)).transpose()?;
    Ok((GroupSpec { name, settings }, place))
}

/// `servers = ["app:5000", ...]`: at least one, each `host:port` as `--upstreams` takes it
/// (one per string); a repeated one counts once, as in `--upstreams`.
fn parse_servers(src: &Source, servers: &Spanned<Value>) -> Result<Vec<UpstreamName>, LoadError> {
    let items = match servers.get_ref() {
        Value::List(items) => items,
        other => {
            let why = format!(
                "`servers` is an array of \"host:port\" strings, not {}",
                other.kind()
            );
            return Err(src.error(&servers.span(), why));
        }
    };
    if items.is_empty() {
        return Err(src.error(
            &servers.span(),
            "`servers` is empty: name at least one \"host:port\"",
        ));
    }
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let entry = item.get_ref();
        let parsed = if entry.contains(',') {
            Err(format!("`{entry}`: one \"host:port\" per string"))
        } else {
            parse_upstream(entry.trim())
        };
        let name = parsed.map_err(|why| src.error(&item.span(), format!("bad server: {why}")))?;
        if !out.contains(&name) {
            out.push(name);
        }
    }
    Ok(out)
}
