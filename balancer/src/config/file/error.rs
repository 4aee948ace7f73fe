//! [`LoadError`]: why a configuration was refused, as the one line the operator reads. A file's
//! error is `PATH:LINE:COLUMN: what is wrong` (1-based, the column in characters), or `PATH: what
//! is wrong` when no place in it is to blame (too big, unreadable); a command line error is
//! clap's, cut to its first line.

use std::fmt;
use std::path::{Path, PathBuf};

use clap::error::ErrorKind;

/// Why loading the configuration failed; [`fmt::Display`] is the one line to print or log.
#[derive(Debug)]
pub struct LoadError(Kind);

#[derive(Debug)]
enum Kind {
    /// The command line or the environment (including `--help` and `--version`).
    Clap(Box<clap::Error>),
    /// Not tied to the file: `--config` with `--upstreams`.
    Plain(String),
    /// In the file, at a line and column when one is to blame.
    File {
        path: PathBuf,
        at: Option<(usize, usize)>,
        message: String,
    },
}

impl LoadError {
    pub(super) fn clap(e: clap::Error) -> LoadError {
        LoadError(Kind::Clap(Box::new(e)))
    }

    pub(super) fn plain(message: impl Into<String>) -> LoadError {
        LoadError(Kind::Plain(message.into()))
    }

    /// An error in the file at 1-based `line` and `column`, or about the whole file.
    pub(super) fn file(
        path: &Path,
        at: Option<(usize, usize)>,
        message: impl Into<String>,
    ) -> LoadError {
        LoadError(Kind::File {
            path: path.to_owned(),
            at,
            message: message.into(),
        })
    }

    /// The 1-based line and column in the file, when the error has one.
    pub fn position(&self) -> Option<(usize, usize)> {
        match &self.0 {
            Kind::File { at, .. } => *at,
            _ => None,
        }
    }

    /// Whether this is `--help` or `--version`: print [`LoadError::clap_error`]'s text, exit 0.
    pub fn is_informational(&self) -> bool {
        match &self.0 {
            Kind::Clap(e) => matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ),
            _ => false,
        }
    }

    /// The command line's own error, when it is one (to print `--help` as clap renders it).
    pub fn clap_error(&self) -> Option<&clap::Error> {
        match &self.0 {
            Kind::Clap(e) => Some(e),
            _ => None,
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line = match &self.0 {
            Kind::Clap(e) => shared::config_error::first_line(e),
            Kind::Plain(message) => message.clone(),
            Kind::File {
                path,
                at: Some((line, column)),
                message,
            } => format!("{}:{line}:{column}: {message}", path.display()),
            Kind::File {
                path,
                at: None,
                message,
            } => format!("{}: {message}", path.display()),
        };
        // A path or a quoted value may hold a line break: the error stays one line.
        f.write_str(&line.replace(char::is_control, " "))
    }
}

impl std::error::Error for LoadError {}
