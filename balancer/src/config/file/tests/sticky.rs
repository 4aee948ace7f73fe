//! An `[[upstream]]`'s `sticky` table: refused at its line and column when wrong, in the group's
//! settings (secret never printed) when right.

use super::*;

/// A group with `sticky = <value>` on line 4, then a route to it.
fn with_sticky(value: &str) -> String {
    format!(
        "[[upstream]]\nname = \"app\"\nservers = [\"app:5000\"]\nsticky = {value}\n[[route]]\nupstream = \"app\"\n"
    )
}

const CASES: &[(&str, (usize, usize), &str)] = &[
    ("{ cookie = \"\" }", (4, 21), "sticky `cookie` is empty"),
    (
        "{ cookie = \"a b\" }",
        (4, 21),
        "which a cookie name cannot hold",
    ),
    ("{ cookie = \"a;b\" }", (4, 21), "cannot hold"),
    ("{ cookie = \"é\" }", (4, 21), "cannot hold"),
    (
        "{ cookie = 7 }",
        (4, 21),
        "sticky `cookie` is a string, not an integer",
    ),
    (
        "{ cookie = \"lb\", path = \"/\" }",
        (4, 34),
        "`sticky` has no key `path`",
    ),
    (
        "{ cookie = \"lb\", secret = \"short\" }",
        (4, 36),
        "sticky `secret` is 5 bytes long; it takes 16 to 1024",
    ),
    (
        "{ secret = \"0123456789abcdef\" }",
        (4, 10),
        "`sticky` needs `cookie = \"NAME\"`",
    ),
    ("{}", (4, 10), "needs `cookie"),
    (
        "\"lb\"",
        (4, 10),
        "`sticky` is a table, `{ cookie = \"NAME\" }`, not a string",
    ),
];

#[test]
fn every_bad_sticky_is_refused_at_its_line_and_column() {
    assert_refused_at(
        CASES
            .iter()
            .map(|&(value, at, words)| (with_sticky(value), at, words)),
    );
}

#[test]
fn sticky_is_read_into_the_group_and_off_by_default() {
    let loaded = load_text(&with_sticky("{ cookie = \"lb\" }"), &[]).unwrap();
    let sticky = loaded.groups[0].settings.sticky.clone().unwrap();
    assert_eq!(&*sticky.name, "lb");
    assert_eq!(sticky.secret, None);
    let shared = with_sticky("{ cookie = \"SERVERID\", secret = \"0123456789abcdef-shared\" }");
    let loaded = load_text(&shared, &[]).unwrap();
    let sticky = loaded.groups[0].settings.sticky.clone().unwrap();
    assert_eq!(sticky.secret.as_deref(), Some("0123456789abcdef-shared"));
    assert!(!format!("{loaded:?}").contains("0123456789abcdef-shared"));
    let plain = format!("{APP}[[route]]\nupstream = \"app\"\n");
    assert_eq!(
        load_text(&plain, &[]).unwrap().groups[0].settings.sticky,
        None
    );
    // A table is still no flag's value, and a date still says so.
    let (_, message) = error_of(&format!("{APP}max_fails = {{ a = 1 }}\n"));
    assert!(message.contains("not a table or a date"), "{message}");
    let (_, message) = error_of(&format!("{APP}max_fails = 1979-05-27\n"));
    assert!(message.contains("not a table or a date"), "{message}");
}
