//! `--compress`: response compression without a config file (the flag-only route), and with one
//! the default of every `[[route]]` that has no `compress` key of its own.

use shared::setting::plain;

use crate::policy::compress::{Codec, Compress};

/// What may be compressed, and how.
#[derive(Debug, Clone, clap::Args)]
pub struct CompressConfig {
    /// Compress responses (text, JSON, JavaScript, CSS, SVG, XML; 1 KiB or more) for clients
    /// that accept it, with these codings in the server's order of preference, e.g.
    /// `zstd,br,gzip` (off when unset). With --config, the default of routes without `compress`.
    #[arg(long, env = "BALANCER_COMPRESS", value_name = "CODINGS", value_parser = plain(parse_codings))]
    pub compress: Option<Codings>,
}

/// `--compress`'s value: at least one coding, none twice, most preferred first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Codings(pub Vec<Codec>);

/// `zstd,br,gzip`: comma-separated names among `zstd`, `br`, `gzip`.
pub fn parse_codings(raw: &str) -> Result<Codings, String> {
    let mut out: Vec<Codec> = Vec::new();
    for name in raw.split(',').map(str::trim) {
        let codec = Codec::parse(name).ok_or_else(|| {
            format!("unknown coding {name:?}: a comma-separated list of zstd, br, gzip")
        })?;
        if out.contains(&codec) {
            return Err(format!("coding {name:?} is listed twice"));
        }
        out.push(codec);
    }
    Ok(Codings(out))
}

impl CompressConfig {
    /// The compression `--compress` asks for, with the default size and levels.
    pub fn policy(&self) -> Option<Compress> {
        self.compress.as_ref().map(|c| Compress::new(c.0.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codings() {
        let all = parse_codings("zstd, br,gzip").unwrap();
        assert_eq!(all.0, Codec::ALL.to_vec());
        assert_eq!(parse_codings("gzip").unwrap().0, vec![Codec::Gzip]);
        for bad in ["", "gzip,", "deflate", "gzip,gzip", "GZIP"] {
            assert!(parse_codings(bad).is_err(), "{bad}");
        }
    }
}
