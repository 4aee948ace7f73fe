//! The routes' `rate_limit` / `rate_burst`: the specs they give (sized and keyed by the flags,
//! also from `[server]`), each bad value at its line and column.

use super::*;
use crate::policy::rate_limit::RouteRateLimit;

fn route(keys: &str) -> String {
    format!("{APP}[[route]]\nname = \"api\"\nupstream = \"app\"\n{keys}")
}

fn limit_of(text: &str, extra: &[&str]) -> Option<RouteRateLimit> {
    let loaded = load_text(text, extra).unwrap();
    loaded.routes[0].policy.rate_limit.clone()
}

#[test]
fn the_keys_give_the_route_its_limit() {
    assert_eq!(limit_of(&route(""), &["--rate-limit", "5/s"]), None);
    let l = limit_of(&route("rate_limit = \"100/s\"\n"), &[]).unwrap();
    assert_eq!((l.rate.to_string(), l.burst), ("100/s".to_owned(), None));
    assert_eq!(&*l.route, "api");
    let l = limit_of(&route("rate_limit = \"5/m\"\nrate_burst = 7\n"), &[]).unwrap();
    assert_eq!((l.rate.to_string(), l.burst), ("5/m".to_owned(), Some(7)));
    // The flags size and key the table: a different prefix is a different setting.
    let keys = "rate_limit = \"5/m\"\nrate_burst = 7\n";
    let wide = limit_of(&route(keys), &["--rate-limit-ipv6-prefix", "48"]).unwrap();
    assert_ne!(wide, l);
    let server = format!("[server]\nrate-limit-ipv6-prefix = 48\n{}", route(keys));
    assert_eq!(limit_of(&server, &[]).unwrap(), wide);
}

#[test]
fn bad_values_are_refused_at_their_place() {
    let (at, why) = error_of(&route("rate_limit = \"abc\"\n"));
    assert_eq!(at, (7, 14));
    assert!(why.contains("`abc` is not a rate like 50/s"), "{why}");
    let (at, why) = error_of(&route("rate_limit = \"2000000/s\"\n"));
    assert_eq!(at.0, 7);
    assert!(why.contains("count"), "{why}");
    let (at, why) = error_of(&route("rate_limit = \"5/s\"\nrate_burst = 0\n"));
    assert_eq!(at, (8, 14));
    assert_eq!(why, "rate_burst 0 must be between 1 and 1000000");
    let (at, why) = error_of(&route("rate_burst = 5\n"));
    assert_eq!(at, (7, 14));
    assert!(why.contains("needs `rate_limit"), "{why}");
    let (at, _) = error_of(&route("rate_limit = 5\n"));
    assert_eq!(at.0, 7);
}
