//! The one error kind the command line treats apart: a bad flag value or an unusable setting.
//!
//! `main` reports it on one line with exit code 2 (like clap's own usage errors) instead of the
//! cause chain and exit code 1 of a failed run, so a script can tell "you asked for something
//! impossible" from "the bench broke". Every module that checks a flag returns it through
//! [`config_error`]; none reaches up to `main` for it.

use std::fmt;

/// A bad flag value or an unusable setting: reported on one line, exit code 2 (like clap's own).
#[derive(Debug)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// `message` as a [`ConfigError`], ready to return from an `anyhow` function.
pub fn config_error(message: impl Into<String>) -> anyhow::Error {
    ConfigError(message.into()).into()
}
