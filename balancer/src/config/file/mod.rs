//! The configuration as the balancer runs it: the flags and variables, and with `--config PATH`
//! the TOML file of `[[upstream]]` groups, `[[route]]`s and `[server]` settings. [`load`] reads
//! it all, whole and checked, at start and at every reload; nothing is applied before all of it
//! is valid. Without a file it is one group `default` (`--upstreams`) and one route `/` to it.
//!
//! The parts: `source` reads the file (size limit, hash, line and column), `schema` is its
//! shape for serde, `server` layers the file's settings under the command line through clap,
//! `upstream` and `route` build the groups and routes; `restart` says which settings a
//! reload cannot change. A group no route names is allowed (a canary prepared ahead).

mod compress;
mod error;
mod forward_auth;
mod policy;
mod rate_limit;
mod restart;
mod route;
mod schema;
mod server;
mod source;
mod sticky;
#[cfg(test)]
mod tests;
mod upstream;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Command as ClapCommand, CommandFactory};
use toml::Spanned;

pub use error::LoadError;
pub use source::MAX_BYTES;

use super::{Cli, Command, Config};
use crate::backends::group::GroupSettings;
use crate::policy::RoutePolicy;
use crate::routes::matcher::{HostPattern, PathPrefix, Rule};
use crate::routes::{RouteSpec, TargetSpec};
use schema::FileTables;
use server::{Layers, Scope};
use source::Source;

/// The name of the group and of the route of the flag-only balancer.
pub const DEFAULT_NAME: &str = "default";

/// A whole, valid configuration.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The settings: the command line and variables over the file's `[server]`. With a file,
    /// `config.group` holds the defaults every group starts from, not a group.
    pub config: Config,
    /// The upstream groups, in the file's order (names unique).
    pub groups: Vec<GroupSpec>,
    /// The routes, in the file's order (at least one; every target names a group above).
    pub routes: Vec<RouteSpec>,
    /// The file, when there is one.
    pub file: Option<FileInfo>,
}

/// One upstream group: its name and settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSpec {
    pub name: Arc<str>,
    pub settings: GroupSettings,
}

/// The file a configuration was loaded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    pub path: PathBuf,
    /// Lowercase hex of the bytes read, as `sha256sum` prints it.
    pub sha256: String,
    pub bytes: usize,
}

/// Loads the configuration from `args` (the whole argv, with argv\[0\]) and the environment,
/// reading `--config`'s file again. For `check-config`, the file named by `--config` is not read.
pub fn load(args: &[OsString]) -> Result<Loaded, LoadError> {
    load_with(command(), args).map(|(_, loaded)| loaded)
}

/// [`load`] for `main`: `--help` and `--version` print and exit 0; `check-config PATH` prints its
/// summary and exits 0, or its error and exits 2; any other error prints
/// `balancer: configuration error: <one line>` and exits 2. Returns the subcommand
/// (`healthcheck` or none) and the configuration.
pub fn load_or_exit(args: &[OsString]) -> (Option<Command>, Loaded) {
    match load_with(command(), args) {
        Ok((Some(Command::CheckConfig { path }), _)) => check_or_exit(&path),
        Ok(loaded) => loaded,
        Err(e) if e.is_informational() => {
            if let Some(clap) = e.clap_error() {
                let _ = clap.print();
            }
            std::process::exit(0)
        }
        Err(e) => shared::config_error::exit("balancer", e),
    }
}

/// `balancer check-config PATH`: the summary on stdout and exit 0, or the error's one line
/// (`PATH:LINE:COLUMN: what is wrong`, nothing before it) on stderr and exit 2.
pub fn check_or_exit(path: &Path) -> ! {
    match check_file(path) {
        Ok(summary) => {
            println!("{summary}");
            std::process::exit(0)
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(shared::config_error::EXIT_CONFIG)
        }
    }
}

/// Checks the file at `path` as the server would load it (with the environment, no other
/// flags): `PATH: ok: 3 routes, 2 upstream groups, sha256 <first 12 hex digits>`.
pub fn check_file(path: &Path) -> Result<String, LoadError> {
    let args: [OsString; 3] = ["balancer".into(), "--config".into(), path.into()];
    let loaded = load(&args)?;
    let sha = loaded
        .file
        .as_ref()
        .map_or("", |f| f.sha256.get(..12).unwrap_or_default());
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    Ok(format!(
        "{}: ok: {}, {}, sha256 {sha}",
        path.display(),
        plural(loaded.routes.len(), "route"),
        plural(loaded.groups.len(), "upstream group"),
    ))
}

/// `Cli`'s command, where an empty `BALANCER_UPSTREAMS` or `BALANCER_CONFIG` counts as unset
/// (clap would parse the empty value; a Compose file passes them through as `""`).
fn command() -> ClapCommand {
    unset_empty_env(Cli::command(), |name| std::env::var_os(name))
}

/// The arguments whose variable reads empty have no variable.
fn unset_empty_env(
    mut cmd: ClapCommand,
    var: impl Fn(&std::ffi::OsStr) -> Option<OsString>,
) -> ClapCommand {
    for id in ["upstreams", "routes_file"] {
        let empty = cmd
            .get_arguments()
            .find(|a| a.get_id() == id)
            .and_then(|a| a.get_env())
            .and_then(&var)
            .is_some_and(|value| value.is_empty());
        if empty {
            cmd = cmd.mut_arg(id, |a| a.env(None::<&str>));
        }
    }
    cmd
}

/// [`load`] with the command given (tests give variables of their own).
fn load_with(cmd: ClapCommand, args: &[OsString]) -> Result<(Option<Command>, Loaded), LoadError> {
    let (layers, cli) = Layers::parse(cmd, args)?;
    let Cli { command, config } = cli;
    let path = match (&command, &config.routes_file) {
        (Some(Command::CheckConfig { .. }), _) | (_, None) => {
            return Ok((command, flag_only(config)?))
        }
        (_, Some(path)) => path.clone(),
    };
    if layers.user_set("upstreams") {
        return Err(LoadError::plain(
            "--config (BALANCER_CONFIG) and --upstreams (BALANCER_UPSTREAMS) cannot both be given: \
             the file's [[upstream]] tables name the servers",
        ));
    }
    Ok((command, from_file(&layers, &path)?))
}

/// The flag-only balancer: one group `default` from `--upstreams`, one route `/` to it.
fn flag_only(config: Config) -> Result<Loaded, LoadError> {
    let name: Arc<str> = Arc::from(DEFAULT_NAME);
    let path = PathPrefix::parse("/").map_err(LoadError::plain)?;
    Ok(Loaded {
        groups: vec![GroupSpec {
            name: name.clone(),
            settings: config.group.group(),
        }],
        routes: vec![RouteSpec {
            name: name.clone(),
            rule: Rule {
                host: HostPattern::Any,
                path,
            },
            targets: vec![TargetSpec {
                upstream: name,
                weight: 1,
            }],
            strip_prefix: false,
            policy: RoutePolicy {
                compress: config.compress.policy(),
                ..RoutePolicy::default()
            },
        }],
        config,
        file: None,
    })
}

/// The configuration with the file at `path`.
fn from_file(layers: &Layers, path: &Path) -> Result<Loaded, LoadError> {
    let src = Source::read(path)?;
    let tables: FileTables = toml::from_str(&src.text).map_err(|e| {
        let why = e.message().trim().replace('\n', " ");
        match e.span() {
            Some(span) => src.error(&span, why),
            None => src.whole(why),
        }
    })?;
    let server_args = match &tables.server {
        Some(server) => layers.setting_args(&src, server.get_ref().0.iter(), Scope::Server)?,
        None => Vec::new(),
    };
    let server_span = tables.server.as_ref().map_or(0..0, Spanned::span);
    let cli = layers
        .reparse(&[&server_args])
        .map_err(|e| src.error(&server_span, shared::config_error::first_line(&e)))?;
    let groups = upstream::groups(layers, &src, &server_args, &tables.upstream)?;
    let mut routes = route::routes(&src, &tables.route, &groups)?;
    compress::apply_default(&tables.route, &mut routes, cli.config.compress.policy());
    rate_limit::apply(&src, &tables.route, &mut routes, &cli.config.traffic)?;
    let file = FileInfo {
        path: path.to_owned(),
        sha256: src.sha256.clone(),
        bytes: src.bytes(),
    };
    Ok(Loaded {
        config: cli.config,
        groups,
        routes,
        file: Some(file),
    })
}

/// A group's or a route's name: 1 to 64 of `A-Z a-z 0-9 _ . -` (it is a metric label).
fn valid_name(src: &Source, name: &Spanned<String>, what: &str) -> Result<Arc<str>, LoadError> {
    let text = name.get_ref();
    let ok = (1..=64).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if !ok {
        let why =
            format!("{what} name {text:?} must be 1 to 64 of the characters A-Z a-z 0-9 _ . -");
        return Err(src.error(&name.span(), why));
    }
    Ok(Arc::from(text.as_str()))
}
