//! The routes' compression keys: the specs they give, `--compress` as the routes' default and in
//! flag-only mode, each bad value at its line and column.

use super::*;
use crate::policy::compress::{Codec, Compress};

fn route(keys: &str) -> String {
    format!("{APP}[[route]]\nupstream = \"app\"\n{keys}")
}

fn compress_of(text: &str, extra: &[&str]) -> Option<Compress> {
    let loaded = load_text(text, extra).unwrap();
    loaded.routes[0].policy.compress.clone()
}

#[test]
fn the_keys_give_the_route_its_compression() {
    assert_eq!(compress_of(&route(""), &[]), None);
    assert_eq!(compress_of(&route("compress = []\n"), &[]), None);
    let c = compress_of(&route("compress = [\"gzip\", \"zstd\"]\n"), &[]).unwrap();
    assert_eq!(c, Compress::new(vec![Codec::Gzip, Codec::Zstd]));
    let keys = "compress = [\"br\"]\ncompress_min_size = \"4KiB\"\ncompress_level = { br = 9, gzip = 1 }\n";
    let c = compress_of(&route(keys), &[]).unwrap();
    assert_eq!(c.min_size, 4096);
    assert_eq!(c.level(Codec::Br), 9);
    assert_eq!(c.level(Codec::Gzip), 1);
    assert_eq!(c.level(Codec::Zstd), Codec::Zstd.default_level());
    let c = compress_of(&route("compress = [\"br\"]\ncompress_min_size = 0\n"), &[]).unwrap();
    assert_eq!(c.min_size, 0);
}

#[test]
fn the_flag_is_the_default_of_routes_without_the_key() {
    let flag = ["--compress", "zstd,gzip"];
    let c = compress_of(&route(""), &flag).unwrap();
    assert_eq!(c.codecs, vec![Codec::Zstd, Codec::Gzip]);
    assert_eq!(compress_of(&route("compress = []\n"), &flag), None);
    let own = compress_of(&route("compress = [\"br\"]\n"), &flag).unwrap();
    assert_eq!(own.codecs, vec![Codec::Br]);
    let server = format!("[server]\ncompress = \"gzip\"\n{}", route(""));
    assert_eq!(compress_of(&server, &[]).unwrap().codecs, vec![Codec::Gzip]);
}

#[test]
fn flag_only_compress() {
    let parse = |args: &[&str]| {
        let args: Vec<OsString> = ["balancer", "--upstreams", "app:5000"]
            .iter()
            .chain(args)
            .map(OsString::from)
            .collect();
        load_with(Cli::command(), &args).unwrap().1
    };
    assert_eq!(parse(&[]).routes[0].policy.compress, None);
    let on = parse(&["--compress", "br,gzip"]);
    assert_eq!(
        on.routes[0].policy.compress,
        Some(Compress::new(vec![Codec::Br, Codec::Gzip]))
    );
}

#[test]
fn bad_values_are_refused_at_their_place() {
    let cases: &[(&str, (usize, usize), &str)] = &[
        (
            "compress = [\"gzip\", \"deflate\"]\n",
            (6, 21),
            "unknown coding \"deflate\"",
        ),
        (
            "compress = [\"gzip\", \"gzip\"]\n",
            (6, 21),
            "already in this route's `compress`",
        ),
        ("compress = \"gzip\"\n", (6, 12), "invalid type"),
        (
            "compress_min_size = 10\n",
            (6, 21),
            "need `compress = [...]`",
        ),
        (
            "compress = [\"br\"]\ncompress_min_size = \"2GiB\"\n",
            (7, 21),
            "between 0 and 1GiB",
        ),
        (
            "compress = [\"br\"]\ncompress_min_size = -1\n",
            (7, 21),
            "not a size",
        ),
        (
            "compress = [\"br\"]\ncompress_level = { br = 12 }\n",
            (7, 25),
            "br level 12 must be between 0 and 11",
        ),
        (
            "compress = [\"br\"]\ncompress_level = { zstd = 0 }\n",
            (7, 27),
            "zstd level 0 must be between 1 and 19",
        ),
        (
            "compress = [\"br\"]\ncompress_level = { lz4 = 1 }\n",
            (7, 20),
            "unknown field `lz4`",
        ),
    ];
    for (keys, at, why) in cases {
        let (got_at, got_why) = error_of(&route(keys));
        assert!(got_why.contains(why), "{keys}: {got_why}");
        assert_eq!(got_at, *at, "{keys}: {got_why}");
    }
}
