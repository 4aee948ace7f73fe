//! The file's bytes: read whole (at most [`MAX_BYTES`]), hashed (the `sha256sum` of what was
//! read, for `/status` and the reload log), and kept as text so that any later error can say at
//! which line and column it is.

use std::io::Read;
use std::ops::Range;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::LoadError;

/// The largest file read: a routing table is kilobytes; a larger file is a mistake (a log, a
/// binary), refused before it is parsed.
pub const MAX_BYTES: usize = 1 << 20;

/// The file as read.
#[derive(Debug)]
pub(super) struct Source {
    pub path: PathBuf,
    pub text: String,
    /// Lowercase hex, as `sha256sum` prints it.
    pub sha256: String,
}

impl Source {
    /// Reads `path` whole: unreadable, larger than [`MAX_BYTES`] or not UTF-8 is an error.
    pub fn read(path: &Path) -> Result<Source, LoadError> {
        let unreadable =
            |e: std::io::Error| LoadError::file(path, None, format!("cannot read: {e}"));
        let file = std::fs::File::open(path).map_err(unreadable)?;
        let mut bytes = Vec::new();
        // One byte past the limit tells a file at the limit from one over it, whatever its
        // size was when opened (it may be growing).
        let limit = u64::try_from(MAX_BYTES).unwrap_or(u64::MAX) + 1;
        file.take(limit)
            .read_to_end(&mut bytes)
            .map_err(unreadable)?;
        if bytes.len() > MAX_BYTES {
            return Err(LoadError::file(
                path,
                None,
                "the file is larger than 1 MiB (1048576 bytes)",
            ));
        }
        let sha256 = hex(&Sha256::digest(&bytes));
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => {
                let valid = e.utf8_error().valid_up_to();
                let before = String::from_utf8_lossy(&e.as_bytes()[..valid]).into_owned();
                let at = position(&before, valid);
                return Err(LoadError::file(
                    path,
                    Some(at),
                    "the file is not UTF-8 text",
                ));
            }
        };
        Ok(Source {
            path: path.to_owned(),
            text,
            sha256,
        })
    }

    /// The file's size in bytes.
    pub fn bytes(&self) -> usize {
        self.text.len()
    }

    /// An error at the start of `span`.
    pub fn error(&self, span: &Range<usize>, message: impl Into<String>) -> LoadError {
        LoadError::file(&self.path, Some(self.at(span)), message)
    }

    /// An error about the whole file, at no position.
    pub fn whole(&self, message: impl Into<String>) -> LoadError {
        LoadError::file(&self.path, None, message)
    }

    /// The 1-based line and column (in characters) of `span`'s start.
    pub fn at(&self, span: &Range<usize>) -> (usize, usize) {
        position(&self.text, span.start)
    }

    /// The 1-based line of `span`'s start.
    pub fn line(&self, span: &Range<usize>) -> usize {
        self.at(span).0
    }
}

/// The 1-based line and column (in characters) of byte `offset` of `text` (clamped to the text,
/// and to the start of the character it falls in).
pub(super) fn position(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}
