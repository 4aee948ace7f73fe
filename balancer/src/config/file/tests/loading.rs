//! What a valid file gives, and who wins when the file and the command line both set something.

use std::time::Duration;

use sha2::Digest;

use super::*;
use crate::backends::selection::Balance;
use crate::upstream::UpstreamProtocol;

const EXAMPLE: &str = r#"
[server]
listen = "127.0.0.1:8080"
max_fails = 3

[[upstream]]
name = "app"
servers = ["app:5000", "app2:5000", "app:5000"]

[[upstream]]
name = "next"
servers = ["next:5000"]
protocol = "h2c"
slow_start = "10s"

[[upstream]]
name = "api"
servers = ["api:8000"]
max-fails = 5
balance = "least-request"

[[route]]
upstreams = [{ name = "app", weight = 90 }, { name = "next", weight = 10 }]

[[route]]
name = "api"
path = "/api/"
upstream = "api"
strip_prefix = true

[[route]]
host = "*.Example.com"
path = "/v1"
upstream = "api"
"#;

fn target(upstream: &str, weight: u32) -> TargetSpec {
    TargetSpec {
        upstream: upstream.into(),
        weight,
    }
}

fn route(
    name: &str,
    host: HostPattern,
    path: &str,
    targets: Vec<TargetSpec>,
    strip: bool,
) -> RouteSpec {
    RouteSpec {
        name: name.into(),
        rule: Rule {
            host,
            path: PathPrefix::parse(path).unwrap(),
        },
        targets,
        strip_prefix: strip,
        policy: Default::default(),
    }
}

#[test]
fn the_example_file_gives_its_groups_and_routes() {
    let loaded = load_text(EXAMPLE, &[]).unwrap();
    assert_eq!(loaded.config.front.listen.to_string(), "127.0.0.1:8080");
    let names: Vec<&str> = loaded.groups.iter().map(|g| &*g.name).collect();
    assert_eq!(names, ["app", "next", "api"]);
    let [app, next, api] = [0, 1, 2].map(|i| &loaded.groups[i].settings);
    let servers: Vec<String> = app.names.iter().map(ToString::to_string).collect();
    assert_eq!(servers, ["app:5000", "app2:5000"]);
    assert_eq!(
        (
            app.policy.max_fails,
            next.policy.max_fails,
            api.policy.max_fails
        ),
        (3, 3, 5)
    );
    assert_eq!(next.connections.protocol, UpstreamProtocol::H2c);
    assert_eq!(next.probe.protocol, UpstreamProtocol::H2c);
    assert_eq!(app.connections.protocol, UpstreamProtocol::Http1);
    assert_eq!(next.slow_start, Duration::from_secs(10));
    assert_eq!(
        (app.balance, api.balance),
        (Balance::RoundRobin, Balance::LeastRequest)
    );
    let wildcard = HostPattern::parse("*.example.com").unwrap();
    assert_eq!(
        loaded.routes,
        [
            route(
                "/",
                HostPattern::Any,
                "/",
                vec![target("app", 90), target("next", 10)],
                false
            ),
            route(
                "api",
                HostPattern::Any,
                "/api/",
                vec![target("api", 1)],
                true
            ),
            route(
                "*.example.com/v1",
                wildcard,
                "/v1",
                vec![target("api", 1)],
                false
            ),
        ]
    );
    let file = loaded.file.unwrap();
    assert_eq!(file.bytes, EXAMPLE.len());
    let digest = sha2::Sha256::digest(EXAMPLE.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(file.sha256, hex);
}

#[test]
fn flag_only_is_one_default_group_and_route() {
    let args: Vec<OsString> = ["balancer", "--upstreams", "a:1,b:2", "--max-fails", "4"]
        .map(OsString::from)
        .to_vec();
    let (command, loaded) = load_with(Cli::command(), &args).unwrap();
    assert!(command.is_none() && loaded.file.is_none());
    let cli = Cli::try_parse_from(&args).unwrap();
    assert_eq!(
        loaded.groups,
        [GroupSpec {
            name: "default".into(),
            settings: cli.config.group.group(),
        }]
    );
    assert_eq!(loaded.groups[0].settings.policy.max_fails, 4);
    let only = route(
        "default",
        HostPattern::Any,
        "/",
        vec![target("default", 1)],
        false,
    );
    assert_eq!(loaded.routes, [only]);
}

/// The command line and the variables win over the file; the file wins over the defaults; a
/// group's own key wins over `[server]`.
#[test]
fn precedence_is_command_line_then_group_then_server_then_default() {
    let text = "[server]\nlisten = \"127.0.0.1:1\"\nmax_fails = 3\nmax-body = \"1MiB\"\n\
         [[upstream]]\nname = \"a\"\nservers = [\"a:1\"]\nmax_fails = 5\n\
         [[upstream]]\nname = \"b\"\nservers = [\"b:1\"]\n\
         [[route]]\nupstreams = [{ name = \"a\" }, { name = \"b\" }]\n";
    let fails = |l: &Loaded| {
        l.groups
            .iter()
            .map(|g| g.settings.policy.max_fails)
            .collect::<Vec<_>>()
    };
    let from_file = load_text(text, &[]).unwrap();
    assert_eq!(fails(&from_file), [5, 3]);
    assert_eq!(from_file.config.group.max_fails, 3);
    assert_eq!(from_file.config.front.listen.port(), 1);
    assert_eq!(from_file.config.traffic.max_body, 1 << 20);
    assert_eq!(
        from_file.groups[0].settings.policy.fail_timeout,
        Duration::from_secs(10)
    );

    let flags = load_text(text, &["--max-fails", "9", "--listen", "127.0.0.1:9"]).unwrap();
    assert_eq!(fails(&flags), [9, 9]);
    assert_eq!(flags.config.front.listen.port(), 9);

    std::env::set_var("BALANCER_TEST_CFGFILE_MAX_FAILS", "7");
    std::env::set_var("BALANCER_TEST_CFGFILE_LISTEN", "127.0.0.1:7");
    let env = Cli::command()
        .mut_arg("max_fails", |a| a.env("BALANCER_TEST_CFGFILE_MAX_FAILS"))
        .mut_arg("listen", |a| a.env("BALANCER_TEST_CFGFILE_LISTEN"));
    let from_env = load_cmd(env, text, &[]).unwrap();
    assert_eq!(fails(&from_env), [7, 7]);
    assert_eq!(from_env.config.front.listen.port(), 7);
    assert_eq!(from_env.config.traffic.max_body, 1 << 20);

    // A value the command line overrides is still checked.
    let bad = text.replace("max_fails = 5", "max_fails = 0");
    assert_eq!(
        load_text(&bad, &["--max-fails", "9"])
            .unwrap_err()
            .position(),
        Some((8, 13))
    );
}

/// `[server]` takes any flag by its long name with `-` or `_`: a switch as a boolean, a list as
/// an array of strings.
#[test]
fn server_takes_switches_lists_and_integers() {
    let base = format!("{APP}[[route]]\nupstream = \"app\"\n");
    let text = format!(
        "[server]\ntls-listen = \"127.0.0.1:5443\"\ntls_cert = \"c.pem\"\ntls-key = \"k.pem\"\n\
         redirect_http = true\ntrusted-proxies = [\"10.0.0.0/8\", \"192.168.0.0/16\"]\nworkers = 4\n{base}"
    );
    let c = load_text(&text, &[]).unwrap().config;
    assert!(c.tls.redirect_http);
    assert_eq!(c.tls.tls_listen.map(|a| a.port()), Some(5443));
    assert_eq!(c.front.workers, Some(4));
    let expected =
        Cli::try_parse_from(["balancer", "--trusted-proxies", "10.0.0.0/8,192.168.0.0/16"])
            .unwrap();
    assert_eq!(
        format!("{:?}", c.traffic.trusted_proxies),
        format!("{:?}", expected.config.traffic.trusted_proxies)
    );
    let off = load_text(
        &text.replace("redirect_http = true", "redirect_http = false"),
        &[],
    )
    .unwrap();
    assert!(!off.config.tls.redirect_http);
    let h2c = format!("{APP}upstream_protocol = \"h2c\"\n[[route]]\nupstream = \"app\"\n");
    let group = &load_text(&h2c, &[]).unwrap().groups[0].settings;
    assert_eq!(group.connections.protocol, UpstreamProtocol::H2c);
}

#[test]
fn needs_restart_names_changed_flags_and_ignores_groups_and_routes() {
    // A reload reads the same path again.
    let (_dir, path) = write(EXAMPLE);
    let args: Vec<OsString> = vec!["balancer".into(), "--config".into(), path.clone().into()];
    let reload = |text: &str| {
        std::fs::write(&path, text).unwrap();
        load_with(Cli::command(), &args).unwrap().1
    };
    let now = reload(EXAMPLE);
    assert!(now.needs_restart(&now).is_empty());
    let groups = EXAMPLE
        .replace("max-fails = 5", "max-fails = 6")
        .replace("\"next:5000\"", "\"next:5001\"")
        .replace("weight = 90", "weight = 80");
    let next = reload(&groups);
    assert_ne!(next.groups, now.groups);
    assert!(now.needs_restart(&next).is_empty());
    let listen = EXAMPLE.replace("127.0.0.1:8080", "127.0.0.1:8081");
    assert_eq!(now.needs_restart(&reload(&listen)), ["--listen"]);
    let more = listen.replace(
        "max_fails = 3",
        "max_fails = 3\nworkers = 2\naccess-log = \"json\"",
    );
    assert_eq!(
        now.needs_restart(&reload(&more)),
        ["--listen", "--workers", "--access-log"]
    );
}

/// Every flag but the group's is compared by `needs_restart`: a new one cannot be forgotten.
#[test]
fn every_flag_outside_the_group_needs_a_restart() {
    use crate::config::UpstreamConfig;
    use clap::Args;
    let group = UpstreamConfig::augment_args(clap::Command::new("g"));
    let group: Vec<&str> = group.get_arguments().filter_map(|a| a.get_long()).collect();
    let cmd = Cli::command();
    let mut others: Vec<&str> = cmd
        .get_arguments()
        .filter_map(|a| a.get_long())
        // `--compress` is the routes' default, applied by every reload.
        .filter(|l| !["help", "version", "compress"].contains(l) && !group.contains(l))
        .collect();
    let config = Cli::try_parse_from(["balancer"]).unwrap().config;
    let mut listed: Vec<&str> = restart::restart_settings(&config)
        .iter()
        .map(|s| s.0)
        .collect();
    others.sort_unstable();
    listed.sort_unstable();
    assert_eq!(others, listed);
}

#[test]
fn check_config_summarises_or_points_at_the_error() {
    let (_dir, path) = write(EXAMPLE);
    let summary = check_file(&path).unwrap();
    let sha = &load_text(EXAMPLE, &[]).unwrap().file.unwrap().sha256[..12];
    let expected = format!(
        "{}: ok: 3 routes, 3 upstream groups, sha256 {sha}",
        path.display()
    );
    assert_eq!(summary, expected);
    let (_dir, one) = write(format!("{APP}[[route]]\nupstream = \"app\"\n"));
    assert!(check_file(&one)
        .unwrap()
        .contains(": ok: 1 route, 1 upstream group, sha256 "));
    let (_dir, bad) = write(format!("{APP}[[route]]\nupstream = \"ap\"\n"));
    let err = check_file(&bad).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("{}:5:12: no [[upstream]]", bad.display())),
        "{err}"
    );

    // `check-config PATH` reads PATH (in `load_or_exit`), not `--config`'s file.
    let args: Vec<OsString> = [
        "balancer",
        "--config",
        "/nonexistent.toml",
        "check-config",
        "x.toml",
    ]
    .map(OsString::from)
    .to_vec();
    let (command, loaded) = load_with(Cli::command(), &args).unwrap();
    assert!(matches!(command, Some(Command::CheckConfig { path }) if path == Path::new("x.toml")));
    assert!(loaded.file.is_none());
}

/// `balancer healthcheck` finds the admin listener where the file's `[server]` puts it, unless
/// the command line says otherwise.
#[test]
fn healthcheck_reads_the_admin_listener_from_the_file() {
    let text = format!(
        "[server]\nadmin_listen = \"127.0.0.1:9100\"\n{APP}[[route]]\nupstream = \"app\"\n"
    );
    let (_dir, path) = write(text);
    let args = |extra: &[&str]| {
        let mut args: Vec<OsString> =
            vec!["balancer".into(), "--config".into(), path.clone().into()];
        args.extend(extra.iter().map(OsString::from));
        args
    };
    let (command, loaded) = load_with(Cli::command(), &args(&["healthcheck"])).unwrap();
    assert!(matches!(command, Some(Command::Healthcheck)));
    assert_eq!(loaded.config.admin.admin_listen.port(), 9100);
    let flag = args(&["healthcheck", "--admin-listen", "127.0.0.1:9200"]);
    let (_, loaded) = load_with(Cli::command(), &flag).unwrap();
    assert_eq!(loaded.config.admin.admin_listen.port(), 9200);
}
