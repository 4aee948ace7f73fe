//! Command-line and environment configuration.
//!
//! Every setting is an environment variable with a matching `--flag` (clap derive + env), and each
//! has a value parser, so clap hands over typed values (`u16`, `SocketAddr`, `Duration`, ...) and
//! a bad one ends the process before anything starts: one line naming the variable, exit code 2
//! (see `shared::setting` for the line and `shared::config_error` for the exit). Durations use the
//! shared syntax (`500ms`, `2s`, `1m`; a bare number or a fraction is refused), and each has its
//! range where its flag is declared (`shared::duration::within`). What is left after parsing is
//! the one cross-field rule (REDIS_URL wins over REDIS_HOST/REDIS_PORT) and the REPLICA_NAME
//! default (the hostname), in [`Settings::resolve`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use http::HeaderValue;

use shared::duration::{within, HOUR};
use shared::setting::{plain, secret};

/// Command line of the `app` binary.
#[derive(Debug, Parser)]
#[command(
    name = "app",
    version,
    about = "Visit counter web service (hyper + minijinja + Redis)",
    after_help = shared::duration::SYNTAX_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub settings: Settings,
}

/// Subcommands; without one the binary serves HTTP.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Ask `/health` on the local listener (APP_LISTEN's port); exit 0 only on 200.
    Healthcheck {
        /// How long to wait for the answer before declaring the service unhealthy.
        #[arg(long, default_value = "3s", value_parser = within(Duration::from_millis(1), HOUR))]
        timeout: Duration,
    },
}

/// Settings as clap parsed them from the command line or the environment.
#[derive(Debug, clap::Args)]
pub struct Settings {
    /// Redis host name (ignored when REDIS_URL is set).
    #[arg(long = "redis-host", env = "REDIS_HOST", value_name = "REDIS_HOST",
        default_value = "redis", global = true, value_parser = plain(parse_redis_host))]
    pub redis_host: String,

    /// Redis TCP port (ignored when REDIS_URL is set).
    #[arg(long = "redis-port", env = "REDIS_PORT", value_name = "REDIS_PORT",
        default_value = "6379", global = true, value_parser = plain(parse_port))]
    pub redis_port: u16,

    /// Full Redis URL, e.g. redis://:secret@host:6379/0; wins over REDIS_HOST/REDIS_PORT.
    #[arg(long = "redis-url", env = "REDIS_URL", value_name = "REDIS_URL",
        global = true, value_parser = secret(parse_redis_url, redact))]
    pub redis_url: Option<String>,

    /// Bound on every Redis command and connection attempt (e.g. 500ms, 2s).
    #[arg(long = "redis-timeout", env = "REDIS_TIMEOUT", value_name = "REDIS_TIMEOUT",
        default_value = "500ms", global = true,
        value_parser = within(Duration::from_millis(1), HOUR))]
    pub redis_timeout: Duration,

    /// Address the HTTP server listens on.
    #[arg(long = "app-listen", alias = "listen", env = "APP_LISTEN", value_name = "APP_LISTEN",
        default_value = "0.0.0.0:5000", global = true, value_parser = plain(parse_listen))]
    pub app_listen: SocketAddr,

    /// Site name shown in the pages.
    #[arg(long = "app-name", env = "APP_NAME", value_name = "APP_NAME",
        default_value = "Visit Counter", global = true, value_parser = plain(not_blank))]
    pub app_name: String,

    /// Name of this replica, sent in X-Served-By (default: the hostname).
    #[arg(long = "replica-name", env = "REPLICA_NAME", value_name = "REPLICA_NAME",
        global = true, value_parser = plain(parse_replica_name))]
    pub replica_name: Option<ReplicaName>,

    /// This build's version, in /health, the X-App-Version header and the pages' footer (default:
    /// the crate version; images take it as a build argument).
    #[arg(long = "app-version", env = "APP_VERSION", value_name = "APP_VERSION",
        default_value = env!("CARGO_PKG_VERSION"), global = true,
        value_parser = plain(parse_app_version))]
    pub app_version: AppVersion,

    /// Redis key holding the visit counter.
    #[arg(long = "counter-key", env = "COUNTER_KEY", value_name = "COUNTER_KEY",
        default_value = "visits", global = true, value_parser = plain(not_empty))]
    pub counter_key: String,

    /// Link behind the GitHub icon on /about.
    #[arg(long = "github-url", env = "GITHUB_URL", value_name = "GITHUB_URL",
        default_value = "https://github.com/", global = true, value_parser = plain(parse_web_url))]
    pub github_url: String,

    /// Link behind the LinkedIn icon on /about.
    #[arg(long = "linkedin-url", env = "LINKEDIN_URL", value_name = "LINKEDIN_URL",
        default_value = "https://www.linkedin.com/", global = true,
        value_parser = plain(parse_web_url))]
    pub linkedin_url: String,

    /// How long a shutdown waits for in-flight requests before giving up (e.g. 10s).
    #[arg(long = "drain-timeout", env = "DRAIN_TIMEOUT", value_name = "DRAIN_TIMEOUT",
        default_value = "10s", global = true, value_parser = within(Duration::ZERO, HOUR))]
    pub drain_timeout: Duration,

    /// After SIGTERM, how long to keep serving open connections (with `Connection: close` and a 503
    /// /health) before closing idle ones, so a balancer's health check takes this replica out first
    /// (e.g. 3s; 0s closes idle connections at once).
    #[arg(long = "shutdown-delay", env = "SHUTDOWN_DELAY", value_name = "SHUTDOWN_DELAY",
        default_value = "0s", global = true, value_parser = within(Duration::ZERO, HOUR))]
    pub shutdown_delay: Duration,

    /// Load templates and static files from this directory instead of the embedded copies.
    #[arg(long = "templates-dir", env = "TEMPLATES_DIR", value_name = "TEMPLATES_DIR",
        global = true, value_parser = plain(parse_templates_dir))]
    pub templates_dir: Option<PathBuf>,
}

/// REPLICA_NAME with the header value it becomes, so X-Served-By costs a refcount per response.
#[derive(Debug, Clone)]
pub struct ReplicaName {
    pub name: String,
    pub header: HeaderValue,
}

/// APP_VERSION with the header value it becomes, so X-App-Version costs a refcount per response.
#[derive(Debug, Clone)]
pub struct AppVersion {
    pub name: String,
    pub header: HeaderValue,
}

/// 1 to 64 visible ASCII characters (`1.4.2`, `v2`, `2026-12-02-abc123`): it goes into a header.
/// Empty means the default, so an image built without the build argument still starts.
fn parse_app_version(raw: &str) -> Result<AppVersion, String> {
    let raw = if raw.is_empty() {
        env!("CARGO_PKG_VERSION")
    } else {
        raw
    };
    let ok = (1..=64).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_graphic());
    match HeaderValue::from_str(raw) {
        Ok(header) if ok => Ok(AppVersion {
            name: raw.to_owned(),
            header,
        }),
        _ => {
            Err("must be 1 to 64 visible ASCII characters (it is sent in X-App-Version)".to_owned())
        }
    }
}

/// Settings the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Redis connection URL (credentials included; never log it whole).
    pub redis_url: String,
    pub redis_timeout: Duration,
    pub listen: SocketAddr,
    pub app_name: String,
    pub replica_name: String,
    /// REPLICA_NAME as a ready header value.
    pub served_by: HeaderValue,
    /// APP_VERSION, and as a ready header value.
    pub version: String,
    pub version_header: HeaderValue,
    pub counter_key: String,
    pub github_url: String,
    pub linkedin_url: String,
    pub drain_timeout: Duration,
    pub shutdown_delay: Duration,
    pub templates_dir: Option<PathBuf>,
}

impl Settings {
    /// Applies the rules between settings; the error is the one line naming the variable.
    pub fn resolve(self) -> Result<Config, String> {
        let redis_url = self.effective_redis_url()?;
        let replica = match self.replica_name {
            Some(replica) => replica,
            None => {
                let name = hostname();
                parse_replica_name(&name).map_err(|why| {
                    format!("invalid REPLICA_NAME (--replica-name) default, the hostname {name:?}: {why}")
                })?
            }
        };
        Ok(Config {
            redis_url,
            redis_timeout: self.redis_timeout,
            listen: self.app_listen,
            app_name: self.app_name,
            replica_name: replica.name,
            served_by: replica.header,
            version: self.app_version.name,
            version_header: self.app_version.header,
            counter_key: self.counter_key,
            github_url: self.github_url,
            linkedin_url: self.linkedin_url,
            drain_timeout: self.drain_timeout,
            shutdown_delay: self.shutdown_delay,
            templates_dir: self.templates_dir,
        })
    }

    /// REDIS_URL when set and not empty, else one built from REDIS_HOST and REDIS_PORT.
    fn effective_redis_url(&self) -> Result<String, String> {
        if let Some(url) = self.redis_url.as_ref().filter(|url| !url.is_empty()) {
            return Ok(url.clone());
        }
        let url = host_port_url(&self.redis_host, self.redis_port);
        redis::Client::open(url.as_str()).map_err(|e| {
            let host = &self.redis_host;
            format!("invalid REDIS_HOST (--redis-host) value {host:?}: {e}")
        })?;
        Ok(url)
    }
}

/// `redis://host:port/`, with an IPv6 address in brackets.
fn host_port_url(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("redis://[{host}]:{port}/")
    } else {
        format!("redis://{host}:{port}/")
    }
}

fn parse_redis_host(raw: &str) -> Result<String, String> {
    let host = raw.trim();
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/' || c == '@') {
        return Err("expected a host name or IP address".to_owned());
    }
    Ok(host.to_owned())
}

fn parse_port(raw: &str) -> Result<u16, String> {
    match raw.trim().parse::<u16>() {
        Ok(0) | Err(_) => Err("expected a port number 1-65535".to_owned()),
        Ok(port) => Ok(port),
    }
}

/// A URL redis-rs accepts; empty stands for unset (Compose passes `REDIS_URL=` through). The
/// reason never quotes the value: it may hold a password.
fn parse_redis_url(raw: &str) -> Result<String, String> {
    let url = raw.trim();
    if !url.is_empty() {
        redis::Client::open(url).map_err(|e| e.to_string())?;
    }
    Ok(url.to_owned())
}

fn parse_listen(raw: &str) -> Result<SocketAddr, String> {
    raw.trim()
        .parse()
        .map_err(|_| "expected IP:PORT, e.g. 0.0.0.0:5000".to_owned())
}

fn not_blank(raw: &str) -> Result<String, String> {
    if raw.trim().is_empty() {
        return Err("must not be empty".to_owned());
    }
    Ok(raw.to_owned())
}

fn not_empty(raw: &str) -> Result<String, String> {
    if raw.is_empty() {
        return Err("must not be empty".to_owned());
    }
    Ok(raw.to_owned())
}

fn parse_replica_name(raw: &str) -> Result<ReplicaName, String> {
    match HeaderValue::from_str(raw) {
        Ok(header) if !raw.trim().is_empty() => Ok(ReplicaName {
            name: raw.to_owned(),
            header,
        }),
        _ => Err("must be non-empty printable ASCII (it is sent in X-Served-By)".to_owned()),
    }
}

fn parse_web_url(raw: &str) -> Result<String, String> {
    let uri: Option<http::Uri> = raw.parse().ok();
    match uri.as_ref().map(|uri| (uri.scheme_str(), uri.host())) {
        Some((Some("http" | "https"), Some(host))) if !host.is_empty() => Ok(raw.to_owned()),
        _ => Err("expected an http(s) URL".to_owned()),
    }
}

fn parse_templates_dir(raw: &str) -> Result<PathBuf, String> {
    let dir = PathBuf::from(raw);
    if !dir.is_dir() {
        return Err("not a directory".to_owned());
    }
    Ok(dir)
}

/// Hides a password in a Redis URL before it goes into an error or a log line.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://***@{}", &url[..scheme_end], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// The machine's hostname; in a container that is its id, which is what X-Served-By should show.
fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .map(|name| name.trim().to_owned())
        .find(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|n| !n.is_empty()))
        .unwrap_or_else(|| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_version_is_a_header_value_and_empty_means_the_crate_version() {
        assert_eq!(parse_app_version("2.0.1").unwrap().name, "2.0.1");
        assert_eq!(
            parse_app_version("").unwrap().name,
            env!("CARGO_PKG_VERSION")
        );
        for bad in ["two words", "bad\nversion", &"9".repeat(65)] {
            assert!(parse_app_version(bad).is_err(), "{bad:?} accepted");
        }
    }
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, String> {
        let argv = std::iter::once("app").chain(args.iter().copied());
        Cli::try_parse_from(argv).map_err(|e| e.render().to_string())
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// The README's table (`app` section) gives these defaults.
    #[test]
    fn defaults_match_the_readme() {
        let config = parse(&[]).unwrap().settings.resolve().unwrap();
        assert_eq!(config.redis_url, "redis://redis:6379/");
        assert_eq!(config.redis_timeout, Duration::from_millis(500));
        assert_eq!(config.listen.to_string(), "0.0.0.0:5000");
        assert_eq!(config.app_name, "Visit Counter");
        assert_eq!(config.replica_name, hostname());
        assert_eq!(config.counter_key, "visits");
        assert_eq!(config.github_url, "https://github.com/");
        assert_eq!(config.linkedin_url, "https://www.linkedin.com/");
        assert_eq!(config.drain_timeout, Duration::from_secs(10));
        assert_eq!(config.shutdown_delay, Duration::ZERO);
        assert!(config.templates_dir.is_none());
    }

    #[test]
    fn redis_url_wins_over_host_and_port_unless_empty() {
        let url = "redis://:pw@db:6380/1";
        let cli = parse(&["--redis-url", url, "--redis-host", "x", "--redis-port", "1"]).unwrap();
        assert_eq!(cli.settings.resolve().unwrap().redis_url, url);
        let cli = parse(&[
            "--redis-url",
            " ",
            "--redis-host",
            "::1",
            "--redis-port",
            "7",
        ])
        .unwrap();
        assert_eq!(
            cli.settings.resolve().unwrap().redis_url,
            "redis://[::1]:7/"
        );
    }

    #[test]
    fn bad_values_name_the_variable_and_hide_passwords() {
        let err = parse(&["--redis-port", "nope"]).unwrap_err();
        assert!(err.contains("REDIS_PORT (--redis-port)"), "{err}");
        let err = parse(&["--redis-url", "redis://:pw@host:99999/0"]).unwrap_err();
        assert!(err.contains("REDIS_URL"), "{err}");
        assert!(!err.contains("pw"), "{err}");
        let err = parse(&["--replica-name", "bad\nname"]).unwrap_err();
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains("REPLICA_NAME"), "{err}");
        let err = parse(&["healthcheck", "--timeout", "0s"]).unwrap_err();
        assert!(err.contains("--timeout"), "{err}");
    }

    #[test]
    fn value_parsers() {
        assert_eq!(parse_port(" 6379 "), Ok(6379));
        for bad in ["0", "70000", "abc", ""] {
            assert!(parse_port(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_redis_host(" db "), Ok("db".to_owned()));
        for bad in ["", " ", "a b", "u@h", "h/0"] {
            assert!(parse_redis_host(bad).is_err(), "{bad:?}");
        }
        assert!(parse_redis_url("http://not-redis").is_err());
        assert_eq!(parse_redis_url(""), Ok(String::new()));
        assert!(parse_listen("nowhere").is_err());
        assert!(parse_listen("127.0.0.1:99999").is_err());
        assert!(not_blank("  ").is_err());
        assert!(not_empty("").is_err());
        assert!(parse_replica_name("bad\nname").is_err());
        assert_eq!(parse_replica_name("r1").unwrap().header, "r1");
        assert!(parse_templates_dir("/definitely/not/here").is_err());
    }

    /// The duration settings, each with its range in `--help`'s terms; `healthcheck --timeout` is
    /// the subcommand's. Every other setting is a name, address, URL, path or port.
    const DURATIONS: [&str; 3] = ["redis-timeout", "drain-timeout", "shutdown-delay"];
    const NOT_DURATIONS: [&str; 10] = [
        "redis-host",
        "redis-port",
        "redis-url",
        "app-listen",
        "app-name",
        "replica-name",
        "app-version",
        "counter-key",
        "github-url",
        "linkedin-url",
    ];

    /// `(min, max)` from a range error, `must be between <min> and <max>`.
    fn range_of(err: &str) -> Option<(String, String)> {
        let rest = err.split("must be between ").nth(1)?;
        let (min, max) = rest.trim_end().split_once(" and ")?;
        Some((min.to_owned(), max.to_owned()))
    }

    /// `args` for the flag, before or after the subcommand whose flag it is.
    fn flag_args<'a>(flag: &'a str, value: &'a str) -> Vec<&'a str> {
        match flag {
            "timeout" => vec!["healthcheck", "--timeout", value],
            _ => vec![flag, value],
        }
    }

    #[test]
    fn every_setting_is_classified() {
        let cmd = Cli::command();
        let mut longs: Vec<&str> = cmd
            .get_arguments()
            .filter_map(|a| a.get_long())
            .filter(|l| !["help", "version", "templates-dir"].contains(l))
            .collect();
        longs.sort_unstable();
        let mut known: Vec<&str> = DURATIONS.iter().chain(&NOT_DURATIONS).copied().collect();
        known.sort_unstable();
        assert_eq!(
            longs, known,
            "a new setting needs a range, or a place in NOT_DURATIONS"
        );
    }

    /// `u64::MAX` seconds (which once overflowed a deadline in the balancer) is refused for every
    /// duration, naming the flag, the variable and the range; both bounds are accepted.
    #[test]
    fn every_duration_has_a_range_and_refuses_the_extremes() {
        let flags = DURATIONS.iter().map(|f| format!("--{f}"));
        for flag in flags.chain(["timeout".to_owned()]) {
            let err = parse(&flag_args(&flag, "18446744073709551615s")).unwrap_err();
            let line = err.trim_end();
            assert_eq!(line.lines().count(), 1, "{err}");
            let name = if flag == "timeout" {
                "--timeout"
            } else {
                &flag
            };
            assert!(line.contains(name), "{flag}: {line}");
            let (min, max) = range_of(line).unwrap_or_else(|| panic!("{flag}: no range: {line}"));
            for bound in [&min, &max] {
                assert!(
                    parse(&flag_args(&flag, bound)).is_ok(),
                    "{flag} refuses {bound}"
                );
            }
            for bad in ["25h", "1.5s", "5", "-1s", "", "1ns"] {
                if bad == "1ns" && min == "0s" {
                    continue;
                }
                assert!(
                    parse(&flag_args(&flag, bad)).is_err(),
                    "{flag} accepts {bad:?}"
                );
            }
        }
        let cli = parse(&["--shutdown-delay", "1h", "--drain-timeout", "0s"]).unwrap();
        assert_eq!(cli.settings.shutdown_delay, HOUR);
        assert_eq!(cli.settings.drain_timeout, Duration::ZERO);
    }

    /// The README's `app` table has a row `| `VAR` | `--flag` |` for every setting, and for each
    /// duration its range as the parser states it (`` `1ms` to `1h` ``); the healthcheck's timeout
    /// range is in the sentence on `app healthcheck`.
    #[test]
    fn every_setting_is_in_the_readme_with_its_range() {
        let readme = include_str!("../../README.md");
        let app = readme
            .split("## The app")
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .unwrap();
        for arg in Cli::command().get_arguments() {
            let (Some(long), Some(env)) = (arg.get_long(), arg.get_env()) else {
                continue;
            };
            let env = env.to_string_lossy();
            let row = app
                .lines()
                .find(|l| {
                    l.starts_with(&format!("| `{env}` | `--{long}` |"))
                        || (l.starts_with('|')
                            && l.contains(&format!("`{env}`"))
                            && l.contains(&format!("`--{long}`")))
                })
                .unwrap_or_else(|| panic!("README has no row | `{env}` | `--{long}` |"));
            if DURATIONS.contains(&long) {
                let err = parse(&[&format!("--{long}"), "18446744073709551615s"]).unwrap_err();
                let (min, max) = range_of(&err).unwrap();
                let range = format!("`{min}` to `{max}`");
                assert!(
                    row.contains(&range),
                    "README row for --{long} lacks {range}: {row}"
                );
            }
        }
        let err = parse(&flag_args("timeout", "2h")).unwrap_err();
        let (min, max) = range_of(&err).unwrap();
        let sentence = format!("`app healthcheck [--timeout 3s]` (`{min}` to `{max}`)");
        assert!(app.contains(&sentence), "README lacks {sentence}");
    }

    /// `--help` says what the README says about fractions.
    #[test]
    fn help_states_the_duration_syntax() {
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("1.5s"), "{help}");
        assert!(parse(&["--redis-timeout", "1.5s"]).is_err());
        assert!(parse(&["--redis-timeout", "1500ms"]).is_ok());
    }

    mod extremes {
        use super::*;
        use proptest::prelude::*;

        fn value() -> impl Strategy<Value = String> {
            let number = prop_oneof![
                Just("0".to_owned()),
                Just("1".to_owned()),
                Just(u64::MAX.to_string()),
                Just("18446744073709551616".to_owned()),
                Just("9".repeat(40)),
                Just("-1".to_owned()),
                Just("1.5".to_owned()),
                any::<u64>().prop_map(|n| n.to_string()),
                any::<f64>().prop_map(|f| f.to_string()),
            ];
            let unit = prop_oneof![
                Just(""),
                Just("ns"),
                Just("ms"),
                Just("s"),
                Just("m"),
                Just("h"),
                Just("d"),
                Just("y"),
                Just("KiB"),
                Just("parsecs"),
            ];
            prop_oneof![
                (number, unit).prop_map(|(n, u)| format!("{n}{u}")),
                "\\PC{0,12}",
            ]
        }

        proptest! {
            /// Random and extreme values: clap refuses them (exit 2) or the value is in range.
            #[test]
            fn durations_are_refused_or_in_range(v in value(), which in 0usize..4) {
                let flag = match which {
                    3 => "timeout".to_owned(),
                    i => format!("--{}", DURATIONS[i]),
                };
                let Ok(cli) = parse(&flag_args(&flag, &v)) else {
                    return Ok(());
                };
                let s = &cli.settings;
                let (got, min) = match which {
                    0 => (s.redis_timeout, Duration::from_millis(1)),
                    1 => (s.drain_timeout, Duration::ZERO),
                    2 => (s.shutdown_delay, Duration::ZERO),
                    _ => match cli.command {
                        Some(Command::Healthcheck { timeout }) => (timeout, Duration::from_millis(1)),
                        None => unreachable!(),
                    },
                };
                prop_assert!(min <= got && got <= HOUR, "{flag} {v:?} gave {got:?}");
            }
        }
    }

    #[test]
    fn redaction_hides_password() {
        assert_eq!(
            redact("redis://:secret@host:6379/0"),
            "redis://***@host:6379/0"
        );
        assert_eq!(redact("redis://host:6379"), "redis://host:6379");
    }

    #[test]
    fn web_urls() {
        assert!(parse_web_url("https://github.com/me").is_ok());
        assert!(parse_web_url("javascript:alert(1)").is_err());
        assert!(parse_web_url("not a url").is_err());
    }
}
