//! `/static/…`: the stylesheet and the favicon.
//!
//! The files are embedded at build time (or read once from `TEMPLATES_DIR/static` at
//! startup), and everything a response needs — body as `Bytes`, `ETag`, content type —
//! is computed once, so serving one costs a refcount and a few header copies. Lookup is
//! an exact match on a fixed list of names: `..`, encoded slashes and anything else
//! simply are not in the list, so there is no path to traverse.

use std::hash::{Hash, Hasher};
use std::path::Path;

use bytes::Bytes;
use http::HeaderValue;

const EMBEDDED: &[(&str, &str, &[u8])] = &[
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../../templates/static/style.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../../templates/static/favicon.svg"),
    ),
];

/// Browsers may keep a copy for a day; pages link `?v={version}` so a new build is fetched at once.
pub const CACHE_CONTROL: HeaderValue = HeaderValue::from_static("public, max-age=86400");

/// One servable file with its precomputed headers.
pub struct StaticFile {
    pub body: Bytes,
    pub content_type: HeaderValue,
    pub etag: HeaderValue,
    /// The quoted ETag without quotes, to compare against `If-None-Match` cheaply.
    etag_text: String,
}

impl StaticFile {
    fn new(contents: Vec<u8>, content_type: &'static str) -> Self {
        let mut hasher = std::hash::DefaultHasher::new();
        contents.hash(&mut hasher);
        let etag_text = format!("{:016x}-{:x}", hasher.finish(), contents.len());
        let etag = HeaderValue::from_str(&format!("\"{etag_text}\""))
            .unwrap_or_else(|_| HeaderValue::from_static("\"0\""));
        StaticFile {
            body: Bytes::from(contents),
            content_type: HeaderValue::from_static(content_type),
            etag,
            etag_text,
        }
    }

    /// True when an `If-None-Match` header value names this file's current version.
    pub fn matches(&self, if_none_match: &HeaderValue) -> bool {
        let Ok(list) = if_none_match.to_str() else {
            return false;
        };
        list.split(',').map(str::trim).any(|tag| {
            // Weak comparison is what RFC 9110 asks for If-None-Match.
            let tag = tag.strip_prefix("W/").unwrap_or(tag);
            tag == "*" || tag.trim_matches('"') == self.etag_text
        })
    }
}

/// The fixed set of static files.
pub struct StaticFiles {
    files: Vec<(&'static str, StaticFile)>,
    /// Short content hash of the stylesheet, for cache-busting links.
    pub version: String,
}

impl StaticFiles {
    /// Embedded copies, or the same names read from `dir/static` when TEMPLATES_DIR is set.
    pub fn load(dir: Option<&Path>) -> Result<Self, String> {
        let mut files = Vec::with_capacity(EMBEDDED.len());
        for (name, content_type, embedded) in EMBEDDED {
            let contents = match dir {
                Some(dir) => {
                    let path = dir.join("static").join(name);
                    std::fs::read(&path)
                        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
                }
                None => embedded.to_vec(),
            };
            files.push((*name, StaticFile::new(contents, content_type)));
        }
        let version = files
            .first()
            .map(|(_, file)| file.etag_text.chars().take(10).collect())
            .unwrap_or_default();
        Ok(StaticFiles { files, version })
    }

    /// Looks up the part of the path after `/static/`.
    pub fn get(&self, name: &str) -> Option<&StaticFile> {
        self.files
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, file)| file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_names_resolve() {
        let files = StaticFiles::load(None).unwrap();
        assert!(files.get("style.css").is_some());
        assert!(files.get("favicon.svg").is_some());
        for bad in [
            "../Cargo.toml",
            "..%2fstyle.css",
            "style.css/",
            "",
            "./style.css",
        ] {
            assert!(files.get(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn etag_matching() {
        let files = StaticFiles::load(None).unwrap();
        let css = files.get("style.css").unwrap();
        assert!(css.matches(&css.etag));
        let weak =
            HeaderValue::from_str(&format!("\"x\", W/{}", css.etag.to_str().unwrap())).unwrap();
        assert!(css.matches(&weak));
        assert!(css.matches(&HeaderValue::from_static("*")));
        assert!(!css.matches(&HeaderValue::from_static("\"nope\"")));
    }
}
