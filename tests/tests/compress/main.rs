//! Response compression through a real balancer (issue 26): the real `app`'s `/` page fetched
//! with each coding and decoded by the real `zstd`, `brotli` and `gzip` tools to exactly the
//! uncompressed page, `curl --compressed`, the `Accept-Encoding` edge cases (q-values,
//! `identity;q=0`, `*`, a huge header), `--compress` off by default (byte-identical), and, behind
//! a `[[route]]` with `compress` in a config file, a small backend of this test's own: an
//! already-encoded body (a gzip bomb) passed through untouched, HEAD, 304, images and small
//! bodies untouched, a strong `ETag` made weak, and 64 MiB to a slow reader with the balancer's
//! memory bounded; `/metrics` and `/status` show what was compressed. A server-sent event stream
//! decodes event by event as it is sent: `sse`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use e2e::{App, Balancer, RedisServer};
use http::{Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

mod sse;

/// What curl got: the status line and headers (lowercased names), and the body's bytes.
struct Got {
    head: String,
    body: Vec<u8>,
}

impl Got {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

/// `curl -s -D <head> args... url`.
async fn curl(url: &str, args: &[&str]) -> Got {
    let dir = tempfile::tempdir().unwrap();
    let head = dir.path().join("head");
    let out = Command::new("curl")
        .args(["-s", "--max-time", "60", "-D"])
        .arg(&head)
        .args(args)
        .arg(url)
        .output()
        .await
        .expect("curl runs");
    assert!(
        out.status.success(),
        "curl {args:?} {url}: {:?}",
        out.status
    );
    Got {
        head: std::fs::read_to_string(&head).unwrap(),
        body: out.stdout,
    }
}

/// `bytes` decoded by the real tool for `coding`.
async fn decode(coding: &str, bytes: &[u8]) -> Vec<u8> {
    let tool = match coding {
        "br" => "brotli",
        other => other,
    };
    let mut child = Command::new(tool)
        .args(["-d", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{tool} (apt-get install zstd brotli): {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let input = bytes.to_vec();
    let feed = tokio::spawn(async move {
        stdin.write_all(&input).await.unwrap();
    });
    let out = child.wait_with_output().await.unwrap();
    feed.await.unwrap();
    assert!(out.status.success(), "{tool} -d failed");
    out.stdout
}

async fn app_behind(args: &[&str]) -> (RedisServer, App, Balancer) {
    let redis = RedisServer::start().await;
    let app = App::start(&redis).await;
    let b = Balancer::builder().apps(&[&app]).args(args).start().await;
    (redis, app, b)
}

#[tokio::test]
async fn each_coding_decodes_to_exactly_the_app_page() {
    let (_redis, _app, b) = app_behind(&["--compress", "zstd,br,gzip"]).await;
    let url = b.url("/");
    let plain = curl(&url, &[]).await;
    assert!(plain.head.starts_with("HTTP/1.1 200"), "{}", plain.head);
    assert_eq!(plain.header("content-encoding"), None);
    assert!(plain.body.len() > 1024, "the page is worth compressing");
    for coding in ["zstd", "br", "gzip"] {
        let got = curl(&url, &["-H", &format!("Accept-Encoding: {coding}")]).await;
        assert_eq!(got.header("content-encoding").as_deref(), Some(coding));
        assert_eq!(got.header("vary").as_deref(), Some("Accept-Encoding"));
        assert_eq!(got.header("content-length"), None);
        assert!(got.body.len() < plain.body.len() / 2, "{coding}");
        assert_eq!(decode(coding, &got.body).await, plain.body, "{coding}");
    }
    // curl's own decoders, each coding it offers.
    let compressed = curl(&url, &["--compressed"]).await;
    assert_eq!(
        compressed.header("content-encoding").as_deref(),
        Some("zstd")
    );
    assert_eq!(compressed.body, plain.body);
    let css = curl(&b.url("/static/style.css"), &["--compressed"]).await;
    let css_plain = curl(&b.url("/static/style.css"), &[]).await;
    assert_eq!(css.body, css_plain.body);
}

#[tokio::test]
async fn accept_encoding_edge_cases() {
    let (_redis, _app, b) = app_behind(&["--compress", "zstd,br,gzip"]).await;
    let url = b.url("/");
    let huge = format!("{}br", "x-junk;q=0.5, ".repeat(2_000));
    let cases: &[(&str, Option<&str>)] = &[
        ("gzip, deflate, br, zstd", Some("zstd")),
        ("zstd;q=0.5, br;q=0.8, gzip", Some("gzip")),
        ("zstd;q=0, br;q=0, gzip;q=0", None),
        ("identity;q=0, br", Some("br")),
        ("identity;q=0", None),
        ("*", Some("zstd")),
        ("*;q=0", None),
        ("zstd;q=0, *", Some("br")),
        ("gzip;q=0.5, identity", None),
        ("deflate", None),
        ("GZIP;Q=1.000", Some("gzip")),
        ("zstd;q=2, gzip", Some("gzip")),
        (huge.as_str(), Some("br")),
    ];
    let plain = curl(&url, &[]).await.body;
    for (accept, want) in cases {
        let got = curl(&url, &["-H", &format!("Accept-Encoding: {accept}")]).await;
        let shown = &accept[..accept.len().min(60)];
        assert_eq!(got.header("content-encoding").as_deref(), *want, "{shown}");
        let body = match want {
            Some(coding) => decode(coding, &got.body).await,
            None => got.body,
        };
        assert_eq!(body, plain, "{shown}");
    }
    let head = curl(&url, &["-I", "-H", "Accept-Encoding: gzip"]).await;
    assert_eq!(head.header("content-encoding"), None, "HEAD: {}", head.head);
}

#[tokio::test]
async fn off_by_default_the_bytes_are_the_backends() {
    let (_redis, app, b) = app_behind(&[]).await;
    let direct = curl(&app.url("/"), &["-H", "Accept-Encoding: gzip, br, zstd"]).await;
    let through = curl(&b.url("/"), &["-H", "Accept-Encoding: gzip, br, zstd"]).await;
    assert_eq!(through.header("content-encoding"), None);
    assert_eq!(
        through.header("content-length"),
        direct.header("content-length")
    );
    assert_eq!(through.body, direct.body);
}

/// 16 KiB of text, the same on every request.
fn text(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| b"<p>compressible text</p>\n"[i % 25])
        .collect()
}

/// Text that compresses about 2:1 (hex of a pseudo-random sequence), `len` bytes.
fn noisy(len: usize, seed: u64) -> Bytes {
    let mut x = seed | 1;
    let hex = b"0123456789abcdef";
    Bytes::from(
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                hex[(x & 15) as usize]
            })
            .collect::<Vec<u8>>(),
    )
}

type Body = BoxBody<Bytes, Infallible>;

fn answer(status: u16, headers: &[(&'static str, &str)], body: Vec<u8>) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(body)).boxed());
    *resp.status_mut() = StatusCode::from_u16(status).unwrap();
    for (name, value) in headers {
        resp.headers_mut()
            .append(*name, http::HeaderValue::from_str(value).unwrap());
    }
    resp
}

/// The small backend: one path per case; `bomb` is the gzip of 64 MiB of zeros.
fn route(req: &Request<Incoming>, bomb: &[u8]) -> Response<Body> {
    let html = ("content-type", "text/html; charset=utf-8");
    match req.uri().path() {
        "/encoded" => answer(200, &[html, ("content-encoding", "gzip")], bomb.to_vec()),
        "/etag" => answer(
            200,
            &[html, ("etag", "\"v1\""), ("vary", "Cookie")],
            text(16384),
        ),
        "/not-modified" => answer(304, &[html, ("etag", "\"v1\"")], Vec::new()),
        "/image" => answer(200, &[("content-type", "image/png")], text(16384)),
        "/small" => answer(200, &[html], text(1000)),
        "/no-transform" => answer(200, &[html, ("cache-control", "no-transform")], text(16384)),
        "/big" => {
            let chunks = (0..1024).map(|i| Ok(Frame::data(noisy(64 << 10, i + 1))));
            let mut resp =
                Response::new(StreamBody::new(futures_util::stream::iter(chunks)).boxed());
            resp.headers_mut()
                .insert("content-type", http::HeaderValue::from_static("text/plain"));
            resp
        }
        _ => answer(200, &[html], text(16384)),
    }
}

async fn small_backend(bomb: Vec<u8>) -> e2e::backends::TestBackend {
    let bomb = std::sync::Arc::new(bomb);
    let listener = e2e::backends::listen([127, 0, 0, 1], 0).await;
    e2e::backends::serve(listener, move |stream, _hits| {
        let bomb = bomb.clone();
        async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let resp = route(&req, &bomb);
                async move { Ok::<_, Infallible>(resp) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
    })
}

/// The gzip of 64 MiB of zeros (about 64 KiB), made by the real `gzip`.
async fn gzip_bomb() -> Vec<u8> {
    let mut child = Command::new("gzip")
        .args(["-c", "-9"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feed = tokio::spawn(async move {
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            stdin.write_all(&zeros).await.unwrap();
        }
    });
    let out = child.wait_with_output().await.unwrap();
    feed.await.unwrap();
    out.stdout
}

/// A balancer with a config file: `/` compressed (gzip, br; 2 KiB minimum), `/off` not.
async fn file_balancer(backend: SocketAddr) -> (tempfile::TempDir, Balancer) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("balancer.toml");
    let file = format!(
        "[[upstream]]\nname = \"small\"\nservers = [\"{backend}\"]\n\n\
         [[route]]\npath = \"/\"\nupstream = \"small\"\ncompress = [\"gzip\", \"br\"]\n\
         compress_min_size = \"2KiB\"\ncompress_level = {{ gzip = 1 }}\n\n\
         [[route]]\npath = \"/off\"\nupstream = \"small\"\n"
    );
    std::fs::write(&path, file).unwrap();
    let b = Balancer::builder()
        .args(&["--config", path.to_str().unwrap()])
        .start()
        .await;
    (dir, b)
}

#[tokio::test]
async fn a_route_compresses_what_it_should_and_nothing_else() {
    let bomb = gzip_bomb().await;
    let backend = small_backend(bomb.clone()).await;
    let (_dir, b) = file_balancer(backend.addr).await;
    let gzip = ["-H", "Accept-Encoding: gzip, br"];
    let page = curl(&b.url("/page"), &gzip).await;
    assert_eq!(page.header("content-encoding").as_deref(), Some("gzip"));
    assert_eq!(decode("gzip", &page.body).await, text(16384));
    // Already encoded: passed byte for byte, never decoded (the balancer does not decompress).
    let encoded = curl(&b.url("/encoded"), &gzip).await;
    assert_eq!(encoded.header("content-encoding").as_deref(), Some("gzip"));
    assert_eq!(encoded.body, bomb);
    let etag = curl(&b.url("/etag"), &gzip).await;
    assert_eq!(etag.header("etag").as_deref(), Some("W/\"v1\""));
    assert_eq!(
        etag.header("vary").as_deref(),
        Some("Cookie, Accept-Encoding")
    );
    for path in ["/image", "/small", "/no-transform", "/off/page"] {
        let got = curl(&b.url(path), &gzip).await;
        assert_eq!(got.header("content-encoding"), None, "{path}");
        assert!(got.header("content-length").is_some(), "{path}");
    }
    let not_modified = curl(&b.url("/not-modified"), &gzip).await;
    assert!(
        not_modified.head.starts_with("HTTP/1.1 304"),
        "{}",
        not_modified.head
    );
    assert_eq!(not_modified.header("content-encoding"), None);
    assert_eq!(not_modified.header("etag").as_deref(), Some("\"v1\""));
    let head = curl(&b.url("/page"), &["-I", "-H", "Accept-Encoding: gzip"]).await;
    assert_eq!(head.header("content-encoding"), None);
    counted_in_metrics_and_status(&b, page.body.len() + etag.body.len()).await;
}

/// `/metrics` counted the two gzip responses above (`/page`, `/etag`: 16 KiB each, `encoded`
/// bytes out), nothing else; `/status` shows each route's `compress`.
async fn counted_in_metrics_and_status(b: &Balancer, encoded: usize) {
    use e2e::routes::metric;
    let responses = "balancer_compressed_responses_total";
    assert_eq!(
        metric(b, &format!("{responses}{{encoding=\"gzip\"}}")).await,
        2.0
    );
    assert_eq!(metric(b, responses).await, 2.0, "br and zstd: none");
    let bytes = "balancer_compression_bytes_total";
    let bytes_in = metric(b, &format!("{bytes}{{direction=\"in\"}}")).await;
    assert_eq!(bytes_in, 2.0 * 16384.0);
    let out = metric(b, &format!("{bytes}{{direction=\"out\"}}")).await;
    assert_eq!(out, encoded as f64);
    let status = e2e::routes::status(b).await;
    let route = |path: &str| {
        let routes = status["routes"].as_array().expect("/status routes");
        routes.iter().find(|r| r["path"] == path).cloned().unwrap()
    };
    let on = &route("/")["compress"];
    assert_eq!(on["codecs"], serde_json::json!(["gzip", "br"]), "{on}");
    assert_eq!(on["min_size"], 2048, "{on}");
    assert_eq!(on["levels"]["gzip"], 1, "{on}");
    assert_eq!(on["levels"]["zstd"], 3, "{on}");
    assert!(route("/off")["compress"].is_null());
}

/// The balancer's peak resident memory so far, in KiB.
fn peak_kib(b: &mut Balancer) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", b.process().pid())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn sixty_four_mib_to_a_slow_reader_in_bounded_memory() {
    let backend = small_backend(Vec::new()).await;
    let (_dir, mut b) = file_balancer(backend.addr).await;
    let before = peak_kib(&mut b);
    let mut conn = tokio::net::TcpStream::connect(b.addr()).await.unwrap();
    let req = "GET /big HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n";
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 64 << 10];
    let mut total = 0usize;
    let mut reads = 0u64;
    loop {
        let n = conn.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        total += n;
        reads += 1;
        // A slow reader: the balancer must wait for it, not buffer ahead.
        if reads % 16 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let head = String::from_utf8_lossy(&buf[..200.min(buf.len())]).to_string();
    assert!(
        total > 16 << 20,
        "{total} bytes: 64 MiB of hex compresses about 2:1"
    );
    let grown = peak_kib(&mut b).saturating_sub(before);
    eprintln!("peak memory grew by {grown} KiB for {total} encoded bytes");
    assert!(
        grown < 32 << 10,
        "the balancer grew by {grown} KiB for a 64 MiB body ({head:.40})"
    );
}
