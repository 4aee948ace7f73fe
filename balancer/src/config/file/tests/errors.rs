//! Every bad input gets one line at the place to blame.

use super::*;

/// `(file, (line, column), words the message holds)`; `APP` is prepended where the case starts
/// with `+` (lines counted after its 3).
const CASES: &[(&str, (usize, usize), &str)] = &[
    // Malformed TOML.
    ("x = [", (1, 6), "unclosed array"),
    ("[server]\nlisten = \"0.0.0.0:1\"\nlisten = \"0.0.0.0:2\"\n", (3, 1), "duplicate key"),
    // Unknown keys anywhere.
    ("[servers]\n", (1, 2), "unknown field `servers`"),
    ("[server]\nlisen = \"0.0.0.0:1\"\n", (2, 1), "unknown key `lisen` in [server]"),
    ("[server]\nhelp = true\n", (2, 1), "unknown key `help`"),
    ("+prot = \"h2c\"\n", (4, 1), "unknown key `prot` in [[upstream]]"),
    ("+listen = \"0.0.0.0:1\"\n", (4, 1), "unknown key `listen` in [[upstream]]"),
    ("+upstreams = \"a:1\"\n", (4, 1), "unknown key `upstreams`"),
    ("+[[route]]\nupstream = \"app\"\nstrip = true\n", (6, 1), "unknown field `strip`"),
    ("+[[route]]\nupstreams = [{ name = \"app\", wieght = 2 }]\n", (5, 30), "unknown field `wieght`"),
    // [server] may not name the servers or the file.
    ("[server]\nupstreams = \"a:1\"\n", (2, 1), "`upstreams` cannot be set in [server]"),
    ("[server]\nconfig = \"other.toml\"\n", (2, 1), "`config` cannot be set"),
    // Values: out of range, of the wrong type, set twice.
    ("+max_fails = 0\n", (4, 13), "invalid --max-fails value \"0\": must be between 1 and 1000000"),
    ("+health-interval = \"1ms\"\n", (4, 19), "must be between 10ms and 1h"),
    ("+balance = \"random\"\n", (4, 11), "possible values: round-robin, least-request"),
    ("[server]\nmax-body = \"2TiB\"\n", (2, 12), "invalid --max-body value \"2TiB\": must be between 0 and 1TiB"),
    ("[server]\nworkers = 0\n", (2, 11), "--workers"),
    ("[server]\nredirect-http = \"yes\"\n", (2, 17), "`redirect-http` is a switch"),
    ("[server]\nmax-body = 1.5\n", (2, 12), "not a float"),
    ("+max_fails = 2\nmax-fails = 3\n", (5, 1), "`max-fails` is set twice in this table (first as `max_fails` on line 4)"),
    ("+protocol = \"h2c\"\nupstream_protocol = \"h2c\"\n", (5, 1), "set twice"),
    // Flags that go together, checked once the file's values are in.
    ("\n[server]\nhsts = \"1d\"\n", (2, 1), "--tls-listen"),
    // Groups.
    ("+[[upstream]]\nname = \"app\"\nservers = [\"b:1\"]\n", (5, 8), "upstream group `app` is already defined on line 2"),
    ("[[upstream]]\nname = \"app\"\nservers = []\n", (3, 11), "`servers` is empty"),
    ("[[upstream]]\nname = \"app\"\nservers = [\"a:1\", \"b\"]\n", (3, 19), "`b` is not host:port"),
    ("[[upstream]]\nname = \"app\"\nservers = [\"a:1,b:2\"]\n", (3, 12), "one \"host:port\" per string"),
    ("[[upstream]]\nname = \"app\"\nservers = \"a:1\"\n", (3, 11), "`servers` is an array"),
    ("[[upstream]]\nname = \"app\"\nservers = [\"a:1\", 2]\n", (3, 19), "expected a string"),
    ("[[upstream]]\nservers = [\"a:1\"]\n", (1, 1), "needs a `name`"),
    ("[[upstream]]\nname = \"app\"\n", (1, 1), "needs `servers"),
    ("[[upstream]]\nname = \"a b\"\nservers = [\"a:1\"]\n", (2, 8), "group name \"a b\" must be 1 to 64"),
    ("[[upstream]]\nname = 7\nservers = [\"a:1\"]\n", (2, 8), "`name` is a string"),
    // Routes.
    ("+\n[[route]]\npath = \"/\"\nupstream = \"api\"\n", (7, 12), "no [[upstream]] is named `api` (defined: app)"),
    ("[[route]]\nupstream = \"api\"\n", (2, 12), "the file defines none"),
    ("+[[route]]\nupstreams = [{ name = \"app\", weight = 0 }]\n", (5, 39), "weight 0 must be between 1 and 1000"),
    ("+[[upstream]]\nname = \"b\"\nservers = [\"b:1\"]\n[[route]]\nupstreams = [{ name = \"app\", weight = 0 }, { name = \"b\", weight = 0 }]\n", (8, 39), "weight 0"),
    ("+[[route]]\nupstreams = [{ name = \"app\", weight = 1001 }]\n", (5, 39), "between 1 and 1000"),
    ("+[[route]]\nupstreams = [{ name = \"app\", weight = -1 }]\n", (5, 39), "weight -1"),
    ("+[[route]]\nupstreams = []\n", (5, 13), "between 1 and 32 groups, not 0"),
    ("+[[route]]\nupstreams = [{ name = \"app\" }, { name = \"app\" }]\n", (5, 41), "group `app` is already in this route"),
    ("+[[route]]\nhost = \"http://x.com\"\nupstream = \"app\"\n", (5, 8), "not a host name"),
    ("+[[route]]\nhost = \"*.\"\nupstream = \"app\"\n", (5, 8), "not a host name"),
    ("+[[route]]\npath = \"api\"\nupstream = \"app\"\n", (5, 8), "`api` must start with `/`"),
    ("+[[route]]\nupstream = \"app\"\nupstreams = [{ name = \"app\" }]\n", (6, 13), "not both"),
    ("+\n[[route]]\npath = \"/\"\n", (5, 1), "needs `upstream"),
    ("+[[route]]\npath = \"/api\"\nupstream = \"app\"\n[[route]]\nname = \"again\"\npath = \"/api\"\nupstream = \"app\"\n", (9, 8), "route `again` has the same host and path as route `/api` on line 5"),
    ("+[[route]]\nupstream = \"app\"\n[[route]]\nhost = \"a.com\"\nupstream = \"app\"\n[[route]]\nhost = \"A.com\"\nupstream = \"app\"\n", (10, 8), "as route `a.com/` on line 7"),
    ("+[[route]]\nname = \"r\"\nupstream = \"app\"\n[[route]]\nname = \"r\"\npath = \"/x\"\nupstream = \"app\"\n", (8, 8), "route name `r` is already used on line 5"),
    ("+[[route]]\nname = \"\"\nupstream = \"app\"\n", (5, 8), "route name \"\" must be 1 to 64"),
    ("+[[route]]\nname = \"é\"\nupstream = \"app\"\n", (5, 8), "must be 1 to 64"),
    ("+[[route]]\nupstream = \"app\"\nstrip_prefix = \"yes\"\n", (6, 16), "expected a boolean"),
    ("+[route]\nupstream = \"app\"\n", (4, 1), "expected a sequence"),
    // No route at all.
    ("", (1, 1), "the file has no [[route]]"),
    ("+", (1, 1), "the file has no [[route]]"),
];

#[test]
fn every_bad_input_is_refused_at_its_line_and_column() {
    assert_refused_at(CASES.iter().map(|&(case, at, words)| {
        let text = match case.strip_prefix('+') {
            Some(rest) => format!("{APP}{rest}"),
            None => case.to_owned(),
        };
        (text, at, words)
    }));
}

/// The column counts characters, not bytes.
#[test]
fn columns_count_characters() {
    let text = "[[upstream]]\nname = \"app\"\nservers = [\"é:1\", \"b\"]\n";
    assert_eq!(error_of(text).0, (3, 19));
    assert_eq!(source::position("éé\nxé", 6), (2, 2));
    assert_eq!(source::position("éé\nxé", 8), (2, 3));
    assert_eq!(
        source::position("é", 1),
        (1, 1),
        "inside a character: its start"
    );
    assert_eq!(source::position("ab", 99), (1, 3), "past the end: the end");
}

#[test]
fn a_file_over_one_mib_or_unreadable_is_refused_without_a_position() {
    let mut big = format!("{APP}[[route]]\nupstream = \"app\"\n").into_bytes();
    big.resize(MAX_BYTES + 1, b'\n');
    let (_dir, path) = write(&big);
    let args: Vec<OsString> = vec!["balancer".into(), "--config".into(), path.clone().into()];
    let err = load_with(Cli::command(), &args).unwrap_err();
    assert_eq!(err.position(), None);
    assert_eq!(
        err.to_string(),
        format!(
            "{}: the file is larger than 1 MiB (1048576 bytes)",
            path.display()
        )
    );
    big.truncate(MAX_BYTES);
    std::fs::write(&path, &big).unwrap();
    assert!(
        load_with(Cli::command(), &args).is_ok(),
        "exactly 1 MiB is accepted"
    );

    let missing = path.with_file_name("missing.toml");
    let args: Vec<OsString> = vec!["balancer".into(), "--config".into(), missing.clone().into()];
    let err = load_with(Cli::command(), &args).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("{}: cannot read: ", missing.display())),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1);
}

#[test]
fn a_file_that_is_not_utf8_is_refused_where_it_stops_being_text() {
    let (_dir, path) = write(b"[server]\nlisten = \"\xff\"\n");
    let args: Vec<OsString> = vec!["balancer".into(), "--config".into(), path.into()];
    let err = load_with(Cli::command(), &args).unwrap_err();
    assert_eq!(err.position(), Some((2, 11)));
    assert!(err.to_string().ends_with("not UTF-8 text"), "{err}");
}

/// `--config` with `--upstreams` (the flag, or a non-empty variable) is one line, exit 2; an
/// empty `BALANCER_UPSTREAMS` counts as unset, as does an empty `BALANCER_CONFIG`.
#[test]
fn config_and_upstreams_together_are_refused() {
    let text = format!("{APP}[[route]]\nupstream = \"app\"\n");
    let err = load_text(&text, &["--upstreams", "a:1"]).unwrap_err();
    assert_eq!(err.position(), None);
    assert!(
        err.to_string()
            .starts_with("--config (BALANCER_CONFIG) and --upstreams"),
        "{err}"
    );

    std::env::set_var("BALANCER_TEST_CFGFILE_UPSTREAMS_SET", "a:1");
    let from_env = Cli::command().mut_arg("upstreams", |a| {
        a.env("BALANCER_TEST_CFGFILE_UPSTREAMS_SET")
    });
    assert!(load_cmd(from_env, &text, &[]).is_err());

    std::env::set_var("BALANCER_TEST_CFGFILE_UPSTREAMS_EMPTY", "");
    let empty = Cli::command().mut_arg("upstreams", |a| {
        a.env("BALANCER_TEST_CFGFILE_UPSTREAMS_EMPTY")
    });
    let clap_alone = empty.clone().try_get_matches_from(["balancer"]);
    assert!(clap_alone.is_err(), "clap parses an empty variable's value");
    let fixed = unset_empty_env(empty, |name| std::env::var_os(name));
    assert_eq!(
        load_cmd(fixed.clone(), &text, &[]).unwrap().groups[0]
            .name
            .as_ref(),
        "app"
    );
    let flag_only = load_with(fixed, &["balancer".into()]).unwrap().1;
    assert_eq!(
        flag_only.groups[0].settings.names[0].to_string(),
        "app:5000"
    );

    let no_file = unset_empty_env(Cli::command(), |name| {
        (name == "BALANCER_CONFIG").then(OsString::new)
    });
    assert!(no_file
        .get_arguments()
        .any(|a| a.get_id() == "routes_file" && a.get_env().is_none()));
}

/// A refused `admin-token` is never echoed, from the file either.
#[test]
fn a_refused_token_is_not_echoed() {
    let (at, message) = error_of("[server]\nadmin-token = \"short secret\"\n");
    assert_eq!(at, (2, 15));
    assert!(
        message.contains("--admin-token") && !message.contains("short secret"),
        "{message}"
    );
}
