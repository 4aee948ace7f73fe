//! A `[[route]]`'s compression keys: `compress = ["zstd", "br", "gzip"]` (known codings, none
//! twice; `[]` is off), `compress_min_size` (bytes or a size, `0` to `1GiB`), `compress_level =
//! { zstd = 3, br = 4, gzip = 5 }` (each within its codec's range), each refused at its place.
//! A route without `compress` takes `--compress` (`[server] compress`), if given.

use toml::Spanned;

use super::schema::{RouteTable, Value};
use super::source::Source;
use super::LoadError;
use crate::policy::compress::{Codec, Compress};
use crate::routes::RouteSpec;

/// The largest `compress_min_size`.
const MAX_MIN_SIZE: u64 = 1 << 30;

/// The route's compression, or `None` when its `compress` is off or absent.
pub(super) fn route_compress(
    src: &Source,
    route: &RouteTable,
) -> Result<Option<Compress>, LoadError> {
    let Some(list) = &route.compress else {
        let stray = route
            .compress_min_size
            .as_ref()
            .map(Spanned::span)
            .or(route.compress_level.as_ref().map(Spanned::span));
        return match stray {
            Some(span) => Err(src.error(
                &span,
                "`compress_min_size` and `compress_level` need `compress = [...]` on the route",
            )),
            None => Ok(None),
        };
    };
    let mut codecs: Vec<Codec> = Vec::new();
    for name in list.get_ref() {
        let codec = Codec::parse(name.get_ref()).ok_or_else(|| {
            let why = format!("unknown coding {:?}: zstd, br or gzip", name.get_ref());
            src.error(&name.span(), why)
        })?;
        if codecs.contains(&codec) {
            let why = format!(
                "coding {:?} is already in this route's `compress`",
                name.get_ref()
            );
            return Err(src.error(&name.span(), why));
        }
        codecs.push(codec);
    }
    if codecs.is_empty() {
        return Ok(None);
    }
    let mut compress = Compress::new(codecs);
    if let Some(size) = &route.compress_min_size {
        compress.min_size = min_size(size.get_ref()).map_err(|why| src.error(&size.span(), why))?;
    }
    if let Some(levels) = &route.compress_level {
        let l = levels.get_ref();
        for (codec, level) in [
            (Codec::Zstd, &l.zstd),
            (Codec::Br, &l.br),
            (Codec::Gzip, &l.gzip),
        ] {
            let Some(level) = level else { continue };
            let range = codec.level_range();
            let value = i32::try_from(*level.get_ref())
                .ok()
                .filter(|v| range.contains(v))
                .ok_or_else(|| {
                    let why = format!(
                        "{} level {} must be between {} and {}",
                        codec.token(),
                        level.get_ref(),
                        range.start(),
                        range.end()
                    );
                    src.error(&level.span(), why)
                })?;
            compress.levels[codec as usize] = value;
        }
    }
    Ok(Some(compress))
}

/// `compress_min_size`: an integer of bytes or a size (`"4KiB"`).
fn min_size(value: &Value) -> Result<u64, String> {
    let bytes = match value {
        Value::Integer(n) => u64::try_from(*n).map_err(|_| format!("{n} is not a size"))?,
        Value::Text(text) => shared::size::parse_size(text)?,
        other => return Err(format!("a size (bytes or \"4KiB\"), not {}", other.kind())),
    };
    if bytes > MAX_MIN_SIZE {
        return Err(format!("{bytes} must be between 0 and 1GiB"));
    }
    Ok(bytes)
}

/// `--compress` for every route that has no `compress` key of its own.
pub(super) fn apply_default(
    tables: &[Spanned<RouteTable>],
    specs: &mut [RouteSpec],
    default: Option<Compress>,
) {
    let Some(default) = default else { return };
    for (table, spec) in tables.iter().zip(specs) {
        if table.get_ref().compress.is_none() {
            spec.policy.compress = Some(default.clone());
        }
    }
}
