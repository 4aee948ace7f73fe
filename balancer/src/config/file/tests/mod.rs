//! The file layer's contract: every bad input refused at its line and column, the precedence
//! (command line and variables over `[[upstream]]` over `[server]` over the defaults), the specs
//! an example file gives, the flag-only configuration, what a reload cannot change.

mod compress;
mod errors;
mod forward_auth;
mod loading;
mod policies;
mod rate_limit;
mod sticky;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{CommandFactory, Parser};

use super::*;

/// A group `app` on lines 1 to 3, for the cases that need one.
const APP: &str = "[[upstream]]\nname = \"app\"\nservers = [\"app:5000\"]\n";

/// A file with `text`, kept while the returned directory lives.
fn write(text: impl AsRef<[u8]>) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("balancer.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// `balancer --config <file with text> extra...`, parsed with `cmd`.
fn load_cmd(cmd: clap::Command, text: &str, extra: &[&str]) -> Result<Loaded, LoadError> {
    let (_dir, path) = write(text);
    let mut args: Vec<OsString> = vec!["balancer".into(), "--config".into(), path.into()];
    args.extend(extra.iter().map(OsString::from));
    load_with(cmd, &args).map(|(_, loaded)| loaded)
}

/// [`load_cmd`] with the balancer's own command, variables as clap read them (the tests set
/// none of the `BALANCER_*` ones).
fn load_text(text: &str, extra: &[&str]) -> Result<Loaded, LoadError> {
    load_cmd(Cli::command(), text, extra)
}

/// The error of `text`: its line, column and message (without the path).
fn error_of(text: &str) -> ((usize, usize), String) {
    let err = load_text(text, &[]).unwrap_err();
    let line = err.to_string();
    let at = err
        .position()
        .unwrap_or_else(|| panic!("no position: {line}"));
    let message = line
        .splitn(4, ':')
        .nth(3)
        .unwrap_or_default()
        .trim()
        .to_owned();
    assert_eq!(line.lines().count(), 1, "{line}");
    (at, message)
}

/// Each `(text, position, words)`: `text` is refused at `position` (line, column) with a message
/// holding `words`; one assertion naming every case that is not.
fn assert_refused_at<'a>(cases: impl IntoIterator<Item = (String, (usize, usize), &'a str)>) {
    let mut wrong = Vec::new();
    for (text, at, words) in cases {
        let (found, message) = error_of(&text);
        if found != at || !message.contains(words) {
            wrong.push(format!("{text:?}: {found:?} {message}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
