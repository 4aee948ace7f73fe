//! Response compression (`compress = ["zstd", "br", "gzip"]` on a route, `--compress` without a
//! file): which coding a client gets ([`negotiate`], RFC 9110 §12.5.3 `Accept-Encoding`) and
//! whether a response is worth encoding at all ([`Compress::applies`]). Pure: the streaming
//! encoder is `proxy::response_body::compress`.

use http::header::{self, HeaderMap};
use http::StatusCode;

/// A content coding the balancer can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    Zstd,
    Br,
    Gzip,
}

impl Codec {
    pub const ALL: [Codec; 3] = [Codec::Zstd, Codec::Br, Codec::Gzip];

    /// Its `Content-Encoding` token (also its name in the configuration).
    pub fn token(self) -> &'static str {
        match self {
            Codec::Zstd => "zstd",
            Codec::Br => "br",
            Codec::Gzip => "gzip",
        }
    }

    /// The codec a configuration names (`zstd`, `br`, `gzip`).
    pub fn parse(name: &str) -> Option<Codec> {
        Codec::ALL.into_iter().find(|c| c.token() == name)
    }

    /// The level chosen by measurement (docs/CONFIG.md, "Compression": the app's 2 KiB `/` page
    /// and a 106 KiB JSON body, bytes and CPU per response at each level):
    /// - zstd 3: JSON 14,142 B in 0.22 ms; level 1 saves 17 % CPU for 1 % more bytes, level 5
    ///   costs 3.7x the CPU for 5 % fewer bytes.
    /// - br 5: JSON 12,158 B in 2.0 ms, 14 % under zstd 3; level 4 (1.2 ms) is 19 % larger than
    ///   5 and no smaller than zstd 3 at 5x its CPU, level 6 costs 10 % more for 4 % fewer bytes.
    /// - gzip 5: JSON 14,388 B in 1.5 ms; level 6 costs 2x the CPU for 7 % fewer bytes, level 1
    ///   is 28 % larger.
    pub fn default_level(self) -> i32 {
        match self {
            Codec::Zstd => 3,
            Codec::Br => 5,
            Codec::Gzip => 5,
        }
    }

    /// The levels a configuration may ask for.
    pub fn level_range(self) -> std::ops::RangeInclusive<i32> {
        match self {
            Codec::Zstd => 1..=19,
            Codec::Br => 0..=11,
            Codec::Gzip => 1..=9,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The smallest response compressed by default (`compress_min_size`).
pub const DEFAULT_MIN_SIZE: u64 = 1024;

/// A route's compression: the codecs in the server's order of preference, the smallest body
/// worth it, each codec's level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compress {
    /// At least one, no duplicates, most preferred first.
    pub codecs: Vec<Codec>,
    /// Bodies of a known length below this stay as they are.
    pub min_size: u64,
    /// Indexed by [`Codec`] (zstd, br, gzip).
    pub levels: [i32; 3],
}

impl Compress {
    /// `codecs` with the default minimum size and levels.
    pub fn new(codecs: Vec<Codec>) -> Self {
        Compress {
            codecs,
            min_size: DEFAULT_MIN_SIZE,
            levels: Codec::ALL.map(Codec::default_level),
        }
    }

    pub fn level(&self, codec: Codec) -> i32 {
        self.levels[codec.index()]
    }

    /// The coding for a request whose `Accept-Encoding` is `accept` (`None` when it sent none),
    /// or `None` when its response goes out as the backend sent it.
    pub fn choose(&self, head: bool, accept: Option<&[u8]>) -> Option<Codec> {
        match (head, accept) {
            (false, Some(accept)) => negotiate(accept, &self.codecs),
            _ => None,
        }
    }

    /// Whether a response with this status and these headers is encoded: not already encoded,
    /// a compressible type, not too small, not a range, not `no-transform`, no 1xx/204/304.
    pub fn applies(&self, status: StatusCode, headers: &HeaderMap) -> bool {
        if status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
            || status == StatusCode::PARTIAL_CONTENT
            || headers.contains_key(header::CONTENT_RANGE)
        {
            return false;
        }
        let identity = headers
            .get_all(header::CONTENT_ENCODING)
            .iter()
            .all(|v| v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"identity"));
        let typed = headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|t| compressible(t.as_bytes()));
        let no_transform = headers
            .get_all(header::CACHE_CONTROL)
            .iter()
            .any(|v| has_token(v.as_bytes(), b"no-transform"));
        let big_enough = match headers.get(header::CONTENT_LENGTH) {
            None => true,
            Some(len) => std::str::from_utf8(len.as_bytes())
                .ok()
                .and_then(|l| l.trim().parse::<u64>().ok())
                .is_some_and(|l| l >= self.min_size),
        };
        identity && typed && !no_transform && big_enough
    }
}

/// Whether the list `value` (comma-separated, parameters after `=` ignored) names `token`.
fn has_token(value: &[u8], token: &[u8]) -> bool {
    value.split(|&b| b == b',').any(|item| {
        let name = item.split(|&b| b == b'=').next().unwrap_or(item);
        name.trim_ascii().eq_ignore_ascii_case(token)
    })
}

/// A media type worth compressing: `text/*`, JSON, JavaScript, CSS, SVG, XML, and any
/// `+json` / `+xml` suffix. Images, video, archives and fonts are already compressed.
pub fn compressible(content_type: &[u8]) -> bool {
    let essence = content_type
        .split(|&b| b == b';')
        .next()
        .unwrap_or(content_type)
        .trim_ascii();
    let Ok(essence) = std::str::from_utf8(essence) else {
        return false;
    };
    let essence = essence.to_ascii_lowercase();
    let Some((kind, sub)) = essence.split_once('/') else {
        return false;
    };
    match kind {
        "text" => true,
        "application" => {
            matches!(
                sub,
                "json"
                    | "javascript"
                    | "x-javascript"
                    | "ecmascript"
                    | "xml"
                    | "xhtml+xml"
                    | "wasm"
                    | "manifest+json"
            ) || sub.ends_with("+json")
                || sub.ends_with("+xml")
        }
        "image" => sub == "svg+xml",
        _ => false,
    }
}

/// A weight in thousandths (`q=0.5` is 500), RFC 9110 §12.4.2: `0` to `0.###` or `1` to `1.000`.
pub fn parse_q(raw: &[u8]) -> Option<u16> {
    let (int, frac) = match raw.iter().position(|&b| b == b'.') {
        Some(dot) => (&raw[..dot], &raw[dot + 1..]),
        None => (raw, &[][..]),
    };
    if int.len() != 1 || frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for i in 0..3 {
        let digit = frac.get(i).map_or(0, |d| u16::from(d - b'0'));
        thousandths = thousandths * 10 + digit;
    }
    match int[0] {
        b'0' => Some(thousandths),
        b'1' if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// What `Accept-Encoding` says of each coding: the weight given, if any.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Weights {
    /// Indexed by [`Codec`]; `x-gzip` counts as `gzip`.
    pub codecs: [Option<u16>; 3],
    pub identity: Option<u16>,
    pub star: Option<u16>,
}

/// Reads an `Accept-Encoding` value in one pass: `token [; q=W] [, ...]`, case-insensitive; an
/// entry with a malformed weight is ignored; a coding named twice keeps its higher weight.
pub fn weights(accept: &[u8]) -> Weights {
    let mut w = Weights::default();
    for entry in accept.split(|&b| b == b',') {
        let mut parts = entry.split(|&b| b == b';');
        let name = parts.next().unwrap_or(entry).trim_ascii();
        if name.is_empty() {
            continue;
        }
        let mut q = Some(1000);
        for param in parts {
            let param = param.trim_ascii();
            if let Some(value) = param.strip_prefix(b"q=").or(param.strip_prefix(b"Q=")) {
                q = parse_q(value.trim_ascii());
            }
        }
        let Some(q) = q else { continue };
        let slot = if name.eq_ignore_ascii_case(b"identity") {
            &mut w.identity
        } else if name == b"*" {
            &mut w.star
        } else if name.eq_ignore_ascii_case(b"x-gzip") {
            &mut w.codecs[Codec::Gzip.index()]
        } else {
            match Codec::ALL
                .into_iter()
                .find(|c| name.eq_ignore_ascii_case(c.token().as_bytes()))
            {
                Some(c) => &mut w.codecs[c.index()],
                None => continue,
            }
        };
        *slot = Some(slot.map_or(q, |old| old.max(q)));
    }
    w
}

/// The coding a client gets, among `offered` (the server's preference order): the one with the
/// highest weight the client gives it (named, else `*`'s), ties to the server's order; none with
/// weight 0; none when the client prefers `identity` (named with a higher weight) to all of them.
pub fn negotiate(accept: &[u8], offered: &[Codec]) -> Option<Codec> {
    let w = weights(accept);
    let mut best: Option<(Codec, u16)> = None;
    for &codec in offered {
        let q = w.codecs[codec.index()].or(w.star).unwrap_or(0);
        if q > 0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((codec, q));
        }
    }
    let (codec, q) = best?;
    match w.identity {
        Some(identity) if identity > q => None,
        _ => Some(codec),
    }
}

#[cfg(test)]
mod tests;
