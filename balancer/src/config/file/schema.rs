//! The file's shape as serde reads it: `[server]`, `[[upstream]]` and `[[route]]`, every value
//! with its place in the file (`toml::Spanned`), unknown keys refused (`deny_unknown_fields`).
//!
//! `[server]` and `[[upstream]]` are open tables of settings ([`Settings`]): their keys are the
//! flags' long names, checked against clap's own arguments (see `server`), not listed here a
//! second time. `[[route]]` has its own fixed keys ([`RouteTable`]).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileTables {
    #[serde(default)]
    pub server: Option<Spanned<Settings>>,
    #[serde(default)]
    pub upstream: Vec<Spanned<Settings>>,
    #[serde(default)]
    pub route: Vec<Spanned<RouteTable>>,
}

/// One `[[route]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RouteTable {
    pub name: Option<Spanned<String>>,
    pub host: Option<Spanned<String>>,
    pub path: Option<Spanned<String>>,
    pub upstream: Option<Spanned<String>>,
    pub upstreams: Option<Spanned<Vec<Spanned<TargetTable>>>>,
    #[serde(default, alias = "strip-prefix")]
    pub strip_prefix: bool,
    // --- per-route policies, read by `policy` ---
    pub allow: Option<Spanned<Vec<Spanned<String>>>>,
    pub deny: Option<Spanned<Vec<Spanned<String>>>>,
    pub basic_auth: Option<Spanned<BasicAuthTable>>,
    pub respond: Option<Spanned<RespondTable>>,
    pub redirect: Option<Spanned<RedirectTable>>,
    pub request_headers: Option<Spanned<HeaderRulesTable>>,
    pub response_headers: Option<Spanned<HeaderRulesTable>>,
    /// `compress = ["zstd", "br", "gzip"]` and its settings (see `compress`).
    pub compress: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(alias = "compress-min-size")]
    pub compress_min_size: Option<Spanned<Value>>,
    #[serde(alias = "compress-level")]
    pub compress_level: Option<Spanned<LevelTable>>,
    /// `forward_auth = { url, copy_headers, timeout }` (see `forward_auth`).
    pub forward_auth: Option<Spanned<ForwardAuthTable>>,
    /// `rate_limit = "100/s"` and `rate_burst = N` (see `rate_limit`).
    #[serde(alias = "rate-limit")]
    pub rate_limit: Option<Spanned<String>>,
    #[serde(alias = "rate-burst")]
    pub rate_burst: Option<Spanned<i64>>,
}

/// `compress_level = { zstd = 3, br = 4, gzip = 5 }`: each codec's level, its default when left out.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LevelTable {
    pub zstd: Option<Spanned<i64>>,
    pub br: Option<Spanned<i64>>,
    pub gzip: Option<Spanned<i64>>,
}

/// One `{ name = "app", weight = 90 }` of a route's `upstreams`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TargetTable {
    pub name: Spanned<String>,
    /// 1 when left out.
    pub weight: Option<Spanned<i64>>,
}

/// A table of settings, in the file's order.
#[derive(Debug, Default)]
pub(super) struct Settings(pub Vec<(Spanned<String>, Spanned<Value>)>);

/// A setting's value as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Value {
    Text(String),
    Integer(i128),
    Bool(bool),
    /// An array of strings, each with its place.
    List(Vec<Spanned<String>>),
    /// What no setting takes: a float, a date.
    Other(&'static str),
    /// An inline table (`sticky = { cookie = "lb" }`), its values in the file's order; read by
    /// the keys that take one, refused by every flag.
    Table(Vec<(String, Spanned<Value>)>),
}

impl<'de> Deserialize<'de> for Settings {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = Settings;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of settings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Settings, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    let value = map.next_value::<Spanned<Value>>()?;
                    entries.push((key, value));
                }
                entries.sort_by_key(|(key, _)| key.span().start);
                Ok(Settings(entries))
            }
        }
        deserializer.deserialize_map(Entries)
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, an integer, a boolean or an array of strings")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Text(v.to_owned()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Integer(i128::from(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Integer(i128::from(v)))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Value, E> {
        Ok(Value::Other("a float"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<String>>()? {
            items.push(item);
        }
        Ok(Value::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if key.starts_with("$__toml_private") {
                // A date: toml hands it over as a one-key map.
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                return Ok(Value::Other("a table or a date"));
            }
            entries.push((key, map.next_value::<Spanned<Value>>()?));
        }
        entries.sort_by_key(|(_, value)| value.span().start);
        Ok(Value::Table(entries))
    }
}

impl Value {
    /// What the value is, for an error.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Text(_) => "a string",
            Value::Integer(_) => "an integer",
            Value::Bool(_) => "a boolean",
            Value::List(_) => "an array",
            Value::Other(kind) => kind,
            Value::Table(_) => "a table or a date",
        }
    }
}

// --- the per-route policies' tables (read by `policy`) ---

/// `basic_auth = { realm = "...", users_file = "PATH" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BasicAuthTable {
    pub realm: Spanned<String>,
    pub users_file: Spanned<String>,
}

/// `respond = { status = 503, body = "...", content_type = "..." }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RespondTable {
    pub status: Spanned<i64>,
    #[serde(default)]
    pub body: String,
    pub content_type: Option<Spanned<String>>,
}

/// `redirect = { to = "https://example.com{path}", code = 308 }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RedirectTable {
    pub to: Spanned<String>,
    pub code: Option<Spanned<i64>>,
}

/// `request_headers` / `response_headers`: `{ set = { name = value }, remove = [name] }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HeaderRulesTable {
    #[serde(default)]
    pub set: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    pub remove: Vec<Spanned<String>>,
}

/// `forward_auth = { url = "http://auth:9091/verify", copy_headers = [...], timeout = "3s" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ForwardAuthTable {
    pub url: Spanned<String>,
    #[serde(default)]
    pub copy_headers: Vec<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
}
