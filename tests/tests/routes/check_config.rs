//! `balancer check-config PATH` (one summary line and exit 0, or `PATH:LINE:COLUMN: what is
//! wrong` and exit 2), `--config` with `--upstreams` (exit 2, one line), a balancer started on an
//! invalid file, and a flag given on the command line winning over the file's `[server]`.

use e2e::routes::{balancer_for, printed_lines, run_balancer, upstream, ConfigFile};
use e2e::{free_port, Balancer};

use crate::fixture::{assert_routed, Groups};

const UPSTREAM: &str = "[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:5000\"]\n\n";
const ROUTE: &str = "[[route]]\npath = \"/\"\nupstream = \"app\"\n";

/// A bad file and the 1-based line its error must name (None: any position, or none for an
/// error about the whole file).
struct Bad {
    what: &'static str,
    text: String,
    line: Option<usize>,
}

fn bad(what: &'static str, text: String, line: Option<usize>) -> Bad {
    Bad { what, text, line }
}

/// The 1-based number of the first line of `text` that starts with `prefix`.
fn line_of(text: &str, prefix: &str) -> usize {
    text.lines()
        .position(|l| l.starts_with(prefix))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("no line starts with {prefix:?} in:\n{text}"))
}

/// A route table with `key_line` in it, after the one upstream; the error must name that line.
fn bad_route(what: &'static str, key_line: &str) -> Bad {
    let text = format!("{UPSTREAM}[[route]]\nupstream = \"app\"\n{key_line}\n");
    let line = line_of(&text, key_line);
    bad(what, text, Some(line))
}

/// An upstream table with `key_line` in it, before one route; the error must name that line.
fn bad_upstream(what: &'static str, key_line: &str) -> Bad {
    let text = format!(
        "[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:5000\"]\n{key_line}\n\n{ROUTE}"
    );
    let line = line_of(&text, key_line);
    bad(what, text, Some(line))
}

/// `text`, whose error must name the line that starts with `prefix`.
fn bad_at(what: &'static str, text: String, prefix: &str) -> Bad {
    let line = line_of(&text, prefix);
    bad(what, text, Some(line))
}

fn bad_files() -> Vec<Bad> {
    let dup = format!("{UPSTREAM}{UPSTREAM}{ROUTE}");
    let second_name = dup
        .match_indices("name = \"app\"")
        .nth(1)
        .map_or(0, |(i, _)| i);
    let dup_line = dup[..second_name].lines().count() + 1;
    let weights = "upstreams = [{ name = \"app\", weight = 0 }]";
    let huge = format!(
        "{UPSTREAM}{ROUTE}{}",
        "# padding padding padding\n".repeat(45_000)
    );
    vec![
        bad_route("malformed TOML", "path = \"/unterminated"),
        bad_route("unknown key", "colour = \"blue\""),
        bad_route("host that is not a host", "host = \"http://example.com/\""),
        bad_route("path not starting with /", "path = \"api\""),
        bad_at(
            "route to an unknown group",
            format!("{UPSTREAM}[[route]]\nupstream = \"nope\"\n"),
            "upstream =",
        ),
        bad_at(
            "weight of 0",
            format!("{UPSTREAM}[[route]]\n{weights}\n"),
            "upstreams =",
        ),
        bad_at(
            "empty servers",
            format!("[[upstream]]\nname = \"app\"\nservers = []\n\n{ROUTE}"),
            "servers =",
        ),
        bad_upstream("value out of range", "health_interval = \"1ms\""),
        bad_upstream("unknown balance", "balance = \"random\""),
        bad("duplicate group name", dup, Some(dup_line)),
        bad("over 1 MiB", huge, None),
    ]
}

#[tokio::test]
async fn check_config_accepts_a_valid_file_with_one_summary_line() {
    let next = upstream("next", &["127.0.0.1:5001".parse().expect("address")], &[]);
    let text =
        format!("{UPSTREAM}{next}{ROUTE}\n[[route]]\npath = \"/api\"\nupstream = \"next\"\n");
    let file = ConfigFile::plain(&text);
    let out = run_balancer(&["check-config", &file.path_str()], &[]).await;
    let lines = printed_lines(&out);
    assert_eq!(out.status.code(), Some(0), "{lines:?}");
    assert_eq!(lines.len(), 1, "one summary line: {lines:?}");
    assert!(
        lines[0].contains("route"),
        "the summary counts routes: {lines:?}"
    );
}

/// Whether a line of `lines` is `PATH:LINE:COLUMN: what` with `LINE == line`; with `line` None,
/// `PATH: what` also does (a whole-file error, e.g. its size, has no position).
fn names_the_error(lines: &[String], path: &str, line: Option<usize>) -> bool {
    let positioned = format!(r"^{}:(\d+):(\d+): \S", regex::escape(path));
    let bare = format!(r"^{}: \S", regex::escape(path));
    let (positioned, bare) = match (regex::Regex::new(&positioned), regex::Regex::new(&bare)) {
        (Ok(p), Ok(b)) => (p, b),
        _ => panic!("bad pattern for {path}"),
    };
    lines.iter().any(|l| {
        let at = positioned
            .captures(l)
            .and_then(|c| Some((c[1].parse::<usize>().ok()?, c[2].parse::<usize>().ok()?)));
        match (at, line) {
            (Some((got, col)), want) => col >= 1 && want.is_none_or(|want| got == want),
            (None, None) => bare.is_match(l),
            (None, Some(_)) => false,
        }
    })
}

#[tokio::test]
async fn check_config_names_path_line_and_column_and_exits_2() {
    let mut wrong = Vec::new();
    for case in bad_files() {
        let file = ConfigFile::plain(&case.text);
        let path = file.path_str();
        let out = run_balancer(&["check-config", &path], &[]).await;
        let lines = printed_lines(&out);
        let ok = out.status.code() == Some(2) && names_the_error(&lines, &path, case.line);
        if !ok {
            wrong.push(format!(
                "{} (want line {:?}): exit {:?}, printed {lines:?}",
                case.what,
                case.line,
                out.status.code()
            ));
        }
    }
    assert!(wrong.is_empty(), "check-config:\n{}", wrong.join("\n"));
}

#[tokio::test]
async fn config_with_upstreams_exits_2_with_one_line() {
    let file = ConfigFile::plain(&format!("{UPSTREAM}{ROUTE}"));
    let (listen, admin) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let env = [
        ("BALANCER_LISTEN", listen.as_str()),
        ("BALANCER_ADMIN_LISTEN", admin.as_str()),
    ];
    let by_flag = run_balancer(
        &[
            "--config",
            &file.path_str(),
            "--upstreams",
            "127.0.0.1:5000",
        ],
        &env,
    )
    .await;
    let by_env = run_balancer(
        &["--upstreams", "127.0.0.1:5000"],
        &[env[0], env[1], ("BALANCER_CONFIG", &file.path_str())],
    )
    .await;
    for (how, out) in [("flags", by_flag), ("flag and BALANCER_CONFIG", by_env)] {
        let lines = printed_lines(&out);
        assert_eq!(out.status.code(), Some(2), "{how}: {lines:?}");
        assert_eq!(lines.len(), 1, "{how}: one line: {lines:?}");
    }
}

#[tokio::test]
async fn a_balancer_started_on_an_invalid_file_exits_naming_the_position() {
    let text = format!("{UPSTREAM}[[route]]\nupstream = \"nope\"\n");
    let file = ConfigFile::plain(&text);
    let env = [
        ("BALANCER_LISTEN", format!("127.0.0.1:{}", free_port())),
        (
            "BALANCER_ADMIN_LISTEN",
            format!("127.0.0.1:{}", free_port()),
        ),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = run_balancer(&["--config", &file.path_str()], &env).await;
    let lines = printed_lines(&out);
    assert!(!out.status.success(), "{lines:?}");
    let want = format!("{}:{}:", file.path_str(), line_of(&text, "upstream ="));
    assert!(
        lines.iter().any(|l| l.contains(&want)),
        "{want} in {lines:?}"
    );
}

#[tokio::test]
async fn a_listen_given_on_the_command_line_wins_over_the_file() {
    e2e::bounded("flag over file", async {
        let groups = Groups::start().await;
        let in_file = free_port();
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:{in_file}\"\n\n{}",
            groups.all_to("web")
        );
        let file = ConfigFile::plain(&text);
        // The builder sets BALANCER_LISTEN to a port of its own.
        let b: Balancer = balancer_for(&file).start().await;
        assert_ne!(b.addr().port(), in_file);
        assert_routed(&b, "web").await;
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", in_file)).is_err(),
            "the file's listen was used although BALANCER_LISTEN was set"
        );
    })
    .await;
}
