//! The clap layering: the file's settings under the command line's. `[server]` sets any flag
//! by its long name, an `[[upstream]]` table its group's flags; either becomes `--long=value`
//! arguments placed before the user's own, parsed again by the same `Cli` (so every range,
//! choice and `requires` is the flags' own, declared once on them).
//!
//! Precedence, highest first: a flag or variable the user gave (the file's value for it is still
//! checked, then left out), the `[[upstream]]` table's key (for that group), `[server]`, the
//! built-in default. Each value is first checked alone with its flag's value parser, so an error
//! points at the value in the file.

use std::collections::HashMap;
use std::ffi::OsString;

use clap::builder::Resettable;
use clap::parser::ValueSource;
use clap::{Arg, ArgMatches, Args, Command, FromArgMatches};
use toml::Spanned;

use super::schema::Value;
use super::source::Source;
use super::LoadError;
use crate::config::{Cli, UpstreamConfig};

/// Which table the settings are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scope {
    /// `[server]`: every flag but `--upstreams` and `--config`.
    Server,
    /// `[[upstream]]`: the group's flags (and `protocol` for `upstream-protocol`).
    Upstream,
}

/// The command line as the user gave it, and what it set.
pub(super) struct Layers {
    cmd: Command,
    matches: ArgMatches,
    args: Vec<OsString>,
    /// The long names of the group's flags (`UpstreamConfig`'s), but `upstreams`.
    group_longs: Vec<String>,
}

impl Layers {
    /// Parses the user's `args` (argv, with argv\[0\]) with `cmd`.
    pub fn parse(cmd: Command, args: &[OsString]) -> Result<(Layers, Cli), LoadError> {
        let matches = cmd
            .clone()
            .try_get_matches_from(args)
            .map_err(LoadError::clap)?;
        let cli = Cli::from_arg_matches(&matches).map_err(LoadError::clap)?;
        let group_longs = UpstreamConfig::augment_args(Command::new("group"))
            .get_arguments()
            .filter_map(Arg::get_long)
            .filter(|long| *long != "upstreams")
            .map(str::to_owned)
            .collect();
        let layers = Layers {
            cmd: cmd.args_override_self(true),
            matches,
            args: args.to_vec(),
            group_longs,
        };
        Ok((layers, cli))
    }

    /// Whether the user set the argument `id` by a flag or a variable.
    pub fn user_set(&self, id: &str) -> bool {
        matches!(
            self.matches
                .try_get_raw(id)
                .ok()
                .and(self.matches.value_source(id)),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        )
    }

    /// The `Cli` from the file's arguments (`layers`, lowest first) under the user's.
    pub fn reparse(&self, layers: &[&[OsString]]) -> Result<Cli, clap::Error> {
        let mut argv: Vec<OsString> = self.args.first().cloned().into_iter().collect();
        if argv.is_empty() {
            argv.push("balancer".into());
        }
        argv.extend(layers.iter().flat_map(|l| l.iter().cloned()));
        argv.extend(self.args.iter().skip(1).cloned());
        let matches = self.cmd.clone().try_get_matches_from(argv)?;
        Cli::from_arg_matches(&matches)
    }

    /// The `--long=value` arguments of a table's settings, each checked by its flag's parser;
    /// those the user set are left out.
    pub fn setting_args<'a>(
        &self,
        src: &Source,
        entries: impl Iterator<Item = &'a (Spanned<String>, Spanned<Value>)>,
        scope: Scope,
    ) -> Result<Vec<OsString>, LoadError> {
        let mut seen: HashMap<String, &Spanned<String>> = HashMap::new();
        let mut out = Vec::new();
        for (key, value) in entries {
            let arg = self
                .resolve(key.get_ref(), scope)
                .map_err(|why| src.error(&key.span(), why))?;
            let long = arg.get_long().unwrap_or_default();
            if let Some(first) = seen.insert(long.to_owned(), key) {
                let line = src.line(&first.span());
                let why = format!(
                    "`{long}` is set twice in this table (first as `{}` on line {line})",
                    first.get_ref()
                );
                return Err(src.error(&key.span(), why));
            }
            let arg_value = self.value_arg(arg, key.get_ref(), value, src)?;
            if let Some(arg_value) = arg_value.filter(|_| !self.user_set(arg.get_id().as_str())) {
                out.push(arg_value);
            }
        }
        Ok(out)
    }

    /// The flag a key names in `scope`.
    fn resolve(&self, key: &str, scope: Scope) -> Result<&Arg, String> {
        let mut long = key.replace('_', "-");
        match (scope, long.as_str()) {
            (Scope::Server, "upstreams") => return Err(
                "`upstreams` cannot be set in [server]: the [[upstream]] tables name the servers"
                    .into(),
            ),
            (_, "config") => return Err("`config` cannot be set in the file itself".into()),
            (Scope::Upstream, "protocol") => long = "upstream-protocol".into(),
            _ => {}
        }
        let allowed = match scope {
            Scope::Server => true,
            Scope::Upstream => self.group_longs.contains(&long),
        };
        let arg = self
            .cmd
            .get_arguments()
            .filter(|a| a.get_action().takes_values() || is_switch(a))
            .find(|a| allowed && a.get_long() == Some(long.as_str()));
        arg.ok_or_else(|| match scope {
            Scope::Server => format!("unknown key `{key}` in [server]: not a flag of the balancer"),
            Scope::Upstream => format!(
                "unknown key `{key}` in [[upstream]]: expected name, servers, protocol or {}",
                self.group_longs.join(", ")
            ),
        })
    }

    /// The argument a value makes (`None`: a switch set to false), checked by the flag's parser.
    fn value_arg(
        &self,
        arg: &Arg,
        key: &str,
        value: &Spanned<Value>,
        src: &Source,
    ) -> Result<Option<OsString>, LoadError> {
        let long = arg.get_long().unwrap_or_default();
        let at = |why: String| src.error(&value.span(), why);
        if is_switch(arg) {
            return match value.get_ref() {
                Value::Bool(true) => Ok(Some(format!("--{long}").into())),
                Value::Bool(false) => Ok(None),
                other => Err(at(format!(
                    "`{key}` is a switch: true or false, not {}",
                    other.kind()
                ))),
            };
        }
        let raw = match value.get_ref() {
            Value::Text(text) => text.clone(),
            Value::Integer(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::List(items) => items
                .iter()
                .map(|i| i.get_ref().as_str())
                .collect::<Vec<_>>()
                .join(","),
            other @ (Value::Other(_) | Value::Table(_)) => {
                return Err(at(format!(
                    "`{key}` takes a string, an integer or an array of strings, not {}",
                    other.kind()
                )))
            }
        };
        let flag = format!("--{long}={raw}");
        check_value(arg, &flag).map_err(at)?;
        Ok(Some(flag.into()))
    }
}

/// Runs the flag's own value parser (and so its range) on `flag` (`--long=value`) alone: a
/// command of that one argument, named as the flag, without its variable or what it requires.
fn check_value(arg: &Arg, flag: &str) -> Result<(), String> {
    let alone = arg
        .clone()
        .env(None::<&str>)
        .requires(Resettable::<clap::Id>::Reset)
        .conflicts_with(Resettable::<clap::Id>::Reset)
        .default_value(None::<&str>)
        .global(false)
        .required(false);
    Command::new("balancer")
        .disable_help_flag(true)
        .disable_version_flag(true)
        .arg(alone)
        .try_get_matches_from(["balancer", flag])
        .map(|_| ())
        .map_err(|e| shared::config_error::first_line(&e))
}

/// A flag without a value (`--redirect-http`).
fn is_switch(arg: &Arg) -> bool {
    matches!(arg.get_action(), clap::ArgAction::SetTrue)
}
