//! Hostile input sent raw over TCP to the balancer's public port.
//!
//! The only upstream is a recording backend, and a second recording backend (the "decoy") is not an
//! upstream at all, so each case can prove what was forwarded and that nothing went anywhere else. Every
//! case must get a clear 4xx or a closed connection (never a panic, never a forwarded request that should
//! not pass), and a normal request right after must still work.

use std::time::{Duration, Instant};

use e2e::backends::{RecordingBackend, Seen};
use e2e::hostile::{
    assert_normal_request, expect_rejected, hold_idle_connections, huge_header_request,
    many_headers_request, panicked, HostileTarget,
};
use e2e::raw::{send as raw, RawReply};
use e2e::Balancer;
use tokio::io::AsyncWriteExt;

const WAIT: Duration = Duration::from_secs(3);
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(1);
const MAX_BODY: usize = 1024;

struct Fixture {
    recorder: RecordingBackend,
    decoy: RecordingBackend,
    balancer: e2e::Balancer,
}

impl Fixture {
    /// `protocol`: `--upstream-protocol` (the recorder speaks both).
    async fn start(protocol: &str) -> Fixture {
        let recorder = RecordingBackend::start().await;
        let decoy = RecordingBackend::start().await;
        let balancer = Balancer::builder()
            .upstreams(&recorder.addr.to_string())
            .args(&[
                "--header-read-timeout",
                "1s",
                "--max-body",
                "1KiB",
                "--health-interval",
                "300ms",
                "--upstream-protocol",
                protocol,
            ])
            .start()
            .await;
        assert_normal_request(&balancer.url("/"), "start").await;
        let want = if protocol == "h2c" {
            "HTTP/2.0"
        } else {
            "HTTP/1.1"
        };
        let seen = recorder.seen();
        let versions: Vec<&str> = seen.iter().map(|s| s.version.as_str()).collect();
        assert_eq!(
            versions,
            [want],
            "--upstream-protocol {protocol}: what reached the recorder"
        );
        Fixture {
            recorder,
            decoy,
            balancer,
        }
    }
}

/// A case's effect: what reached the recorder meanwhile.
impl HostileTarget for Fixture {
    type Effect = Vec<Seen>;

    fn front(&self) -> &'static str {
        "balancer"
    }

    async fn send(&self, bytes: &[u8]) -> (RawReply, Vec<Seen>) {
        let before = self.recorder.count();
        let reply = raw(self.balancer.addr(), bytes, WAIT).await;
        let forwarded = self.recorder.seen().split_off(before);
        (reply, forwarded)
    }

    fn describe(forwarded: &Vec<Seen>) -> String {
        format!("forwarded {}", forwarded.len())
    }

    fn leak(forwarded: &Vec<Seen>) -> Option<String> {
        (!forwarded.is_empty()).then(|| format!("forwarded to the backend: {forwarded:?}"))
    }

    /// After a case: a normal request works, nothing reached the decoy, the balancer did not panic.
    async fn after(&mut self, case: &str) {
        assert_normal_request(&self.balancer.url("/"), case).await;
        assert_eq!(
            self.decoy.count(),
            0,
            "after {case}: a request reached a host that is not an upstream"
        );
        self.balancer.process().assert_running();
        assert!(
            !panicked(&self.balancer.log()),
            "after {case}: the balancer panicked:\n{}",
            self.balancer.log()
        );
    }
}

/// Every case runs twice: over the default HTTP/1.1 upstream pool and with `--upstream-protocol h2c`
/// (the recorder answers both; it lists HTTP/2's `:authority` as the Host and `:path` as the target,
/// so one expectation holds for both).
macro_rules! over_both_protocols {
    ($($case:ident => $http1:ident, $h2c:ident;)*) => {$(
        #[tokio::test]
        async fn $http1() {
            $case("http1").await
        }

        #[tokio::test]
        async fn $h2c() {
            $case("h2c").await
        }
    )*};
}

over_both_protocols! {
    malformed_request_lines_and_header_names_are_rejected_case => malformed_request_lines_and_header_names_are_rejected, malformed_request_lines_and_header_names_are_rejected_over_h2c;
    http2_preface_with_junk_frames_is_closed_case => http2_preface_with_junk_frames_is_closed, http2_preface_with_junk_frames_is_closed_over_h2c;
    spoofed_forwarding_and_hop_by_hop_headers_do_not_pass_case => spoofed_forwarding_and_hop_by_hop_headers_do_not_pass, spoofed_forwarding_and_hop_by_hop_headers_do_not_pass_over_h2c;
    missing_or_duplicated_host_gets_400_case => missing_or_duplicated_host_gets_400, missing_or_duplicated_host_gets_400_over_h2c;
    smuggling_and_conflicting_lengths_never_desynchronise_the_backend_case => smuggling_and_conflicting_lengths_never_desynchronise_the_backend, smuggling_and_conflicting_lengths_never_desynchronise_the_backend_over_h2c;
    oversized_headers_get_431_and_oversized_bodies_413_case => oversized_headers_get_431_and_oversized_bodies_413, oversized_headers_get_431_and_oversized_bodies_413_over_h2c;
    absolute_form_and_connect_never_reach_another_host_case => absolute_form_and_connect_never_reach_another_host, absolute_form_and_connect_never_reach_another_host_over_h2c;
    path_tricks_are_forwarded_verbatim_or_rejected_case => path_tricks_are_forwarded_verbatim_or_rejected, path_tricks_are_forwarded_verbatim_or_rejected_over_h2c;
    slow_trickling_headers_are_cut_at_the_header_read_timeout_case => slow_trickling_headers_are_cut_at_the_header_read_timeout, slow_trickling_headers_are_cut_at_the_header_read_timeout_over_h2c;
}

async fn malformed_request_lines_and_header_names_are_rejected_case(protocol: &str) {
    let mut fx = Fixture::start(protocol).await;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage request line", b"GARBAGE\r\n\r\n".to_vec()),
        (
            "request line without version",
            b"GET /\r\nHost: x\r\n\r\n".to_vec(),
        ),
        (
            "unknown HTTP version",
            b"GET / HTTP/7.0\r\nHost: x\r\n\r\n".to_vec(),
        ),
        (
            "space inside the target",
            b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
        (
            "space in a header name",
            b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: y\r\n\r\n".to_vec(),
        ),
        (
            "header line without colon",
            b"GET / HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n".to_vec(),
        ),
        (
            "space before the colon",
            b"GET / HTTP/1.1\r\nHost: x\r\nX-A : y\r\n\r\n".to_vec(),
        ),
        (
            "NUL in a header value",
            b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n".to_vec(),
        ),
        (
            "raw NUL in the path",
            b"GET /a\0b HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
        (
            "obsolete line folding",
            b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n".to_vec(),
        ),
        (
            "binary junk",
            vec![0x16, 0x03, 0x01, 0x00, 0xff, 0x00, 0x0d, 0x0a, 0x0d, 0x0a],
        ),
    ];
    expect_rejected(&mut fx, &cases, None).await;
}

/// An HTTP/2 prior-knowledge preface followed by junk frames: the connection is closed (after a GOAWAY),
/// nothing is forwarded.
async fn http2_preface_with_junk_frames_is_closed_case(protocol: &str) {
    let mut fx = Fixture::start(protocol).await;
    let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    // A frame header claiming a 16 MiB DATA frame on stream 0, then garbage.
    bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]);
    bytes.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef].repeat(64));
    let (reply, forwarded) = fx.send(&bytes).await;
    eprintln!(
        "hostile balancer: HTTP/2 preface + junk frames: {} bytes back, closed {} in {:?}, forwarded {}",
        reply.bytes.len(),
        reply.closed,
        reply.elapsed,
        forwarded.len()
    );
    assert!(
        reply.closed,
        "the connection with junk HTTP/2 frames was left open"
    );
    assert!(
        forwarded.is_empty(),
        "junk HTTP/2 frames led to a forwarded request"
    );
    fx.after("HTTP/2 junk frames").await;
}

/// Forwarding headers a client sends cannot impersonate the proxy: `X-Real-IP` and `X-Forwarded-Proto`
/// are the balancer's own, `X-Forwarded-For` ends with the real peer, and a header named in `Connection`
/// is dropped.
async fn spoofed_forwarding_and_hop_by_hop_headers_do_not_pass_case(protocol: &str) {
    let mut fx = Fixture::start(protocol).await;
    let bytes = b"GET /spoof HTTP/1.1\r\nHost: x\r\nX-Real-IP: 6.6.6.6\r\nX-Forwarded-Proto: https\r\n\
X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Host: evil.example\r\nConnection: close, X-Secret\r\n\
X-Secret: s3cr3t\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\nTE: trailers\r\nKeep-Alive: timeout=5\r\n\
Proxy-Connection: keep-alive\r\n\r\n";
    let (reply, forwarded) = fx.send(bytes).await;
    let [seen] = forwarded.as_slice() else {
        panic!(
            "expected exactly one forwarded request, got {forwarded:?} ({})",
            reply.verdict()
        );
    };
    eprintln!(
        "hostile balancer: spoofed forwarding headers: {}, backend saw {:?}",
        reply.verdict(),
        seen.headers
    );
    assert_eq!(
        seen.header_values("x-real-ip"),
        ["127.0.0.1"],
        "X-Real-IP must be the real peer"
    );
    assert_eq!(
        seen.header_values("x-forwarded-proto"),
        ["http"],
        "X-Forwarded-Proto must be the balancer's"
    );
    let xff = seen.header_values("x-forwarded-for").join(",");
    assert!(
        xff.trim_end().ends_with("127.0.0.1"),
        "X-Forwarded-For must end with the real peer: {xff}"
    );
    for hop in [
        "x-secret",
        "proxy-authorization",
        "te",
        "keep-alive",
        "proxy-connection",
        "connection",
    ] {
        assert!(
            seen.header_values(hop).is_empty(),
            "hop-by-hop header {hop} was forwarded: {seen:?}"
        );
    }
    fx.after("spoofed forwarding headers").await;
}

async fn missing_or_duplicated_host_gets_400_case(protocol: &str) {
    let mut fx = Fixture::start(protocol).await;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("HTTP/1.1 without Host", b"GET /nohost HTTP/1.1\r\nConnection: close\r\n\r\n".to_vec()),
        (
            "two different Host headers",
            b"GET /duphost HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nConnection: close\r\n\r\n".to_vec(),
        ),
        (
            "two identical Host headers",
            b"GET /duphost2 HTTP/1.1\r\nHost: a.example\r\nHost: a.example\r\nConnection: close\r\n\r\n".to_vec(),
        ),
        (
            "Host with a space",
            b"GET /badhost HTTP/1.1\r\nHost: a b.example\r\nConnection: close\r\n\r\n".to_vec(),
        ),
        (
            "Host with userinfo",
            b"GET /badhost2 HTTP/1.1\r\nHost: user@a.example\r\nConnection: close\r\n\r\n".to_vec(),
        ),
    ];
    expect_rejected(&mut fx, &cases, Some(400)).await;
}

async fn smuggling_and_conflicting_lengths_never_desynchronise_the_backend_case(protocol: &str) {
    let mut fx = Fixture::start(protocol).await;
    // Both framings in one request, with a second request hidden behind: the balancer must either refuse
    // it, or process it by Transfer-Encoding alone and close the connection (RFC 9112 §6.1), so the hidden
    // request is never forwarded and the backend never sees both framings.
    let smuggles: Vec<(&str, Vec<u8>)> = vec![
        (
            "CL then TE",
            b"POST /front HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
        (
            "TE then CL",
            b"POST /front HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
        (
            "TE with a body that looks like a request",
            b"POST /front HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n23\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n\r\n0\r\n\r\n".to_vec(),
        ),
    ];
    let mut misses = Vec::new();
    for (case, bytes) in &smuggles {
        let (reply, forwarded) = fx.send(bytes).await;
        eprintln!(
            "hostile balancer: smuggling {case}: {} in {:?}, forwarded {:?}",
            reply.verdict(),
            reply.elapsed,
            forwarded
                .iter()
                .map(|s| (&s.method, &s.target))
                .collect::<Vec<_>>()
        );
        if forwarded.iter().any(|s| s.target.contains("smuggled")) {
            misses.push(format!(
                "{case}: the hidden request reached the backend: {forwarded:?}"
            ));
        }
        for seen in &forwarded {
            if !seen.header_values("content-length").is_empty()
                && !seen.header_values("transfer-encoding").is_empty()
            {
                misses.push(format!("{case}: forwarded with both framings: {seen:?}"));
            }
        }
        if !reply.rejected() && (reply.statuses().len() > 1 || !reply.closed) {
            misses.push(format!(
                "{case}: the connection stayed open after a request with both framings ({})",
                reply.verdict()
            ));
        }
        if reply.status().is_some_and(|c| c >= 500) {
            misses.push(format!("{case}: answered {}", reply.verdict()));
        }
        fx.after(case).await;
    }
    assert!(
        misses.is_empty(),
        "smuggling cases mishandled:\n{}",
        misses.join("\n")
    );

    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "two different Content-Lengths",
            b"POST /cl HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde".to_vec(),
        ),
        (
            "Content-Length list",
            b"POST /cl HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 5\r\n\r\nabcde".to_vec(),
        ),
        ("negative Content-Length", b"POST /cl HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n".to_vec()),
        ("non-numeric Content-Length", b"POST /cl HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\nab".to_vec()),
        (
            "chunked not the final coding",
            b"POST /te HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n".to_vec(),
        ),
        (
            "unknown transfer coding",
            b"POST /te HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
        ),
    ];
    expect_rejected(&mut fx, &cases, None).await;

    // An invalid chunk size shows up after the head, which a streaming proxy may already have sent: the
    // client must still get a 4xx or a close, and the backend must never see a complete request.
    let chunks: Vec<(&str, Vec<u8>)> = vec![
        (
            "invalid chunk size",
            b"POST /chunk HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n".to_vec(),
        ),
        (
            "chunk size overflowing 64 bits",
            b"POST /chunk HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\nhello\r\n0\r\n\r\n".to_vec(),
        ),
        (
            "chunk longer than its size",
            b"POST /chunk HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n".to_vec(),
        ),
    ];
    let mut misses = Vec::new();
    for (case, bytes) in &chunks {
        let (reply, forwarded) = fx.send(bytes).await;
        eprintln!(
            "hostile balancer: {case}: {} in {:?}, forwarded {} (complete {})",
            reply.verdict(),
            reply.elapsed,
            forwarded.len(),
            forwarded.iter().filter(|s| s.complete).count()
        );
        if !reply.rejected() {
            misses.push(format!(
                "{case}: expected a 4xx or a close, got {}",
                reply.verdict()
            ));
        }
        if let Some(seen) = forwarded.iter().find(|s| s.complete) {
            misses.push(format!(
                "{case}: the backend got a complete request: {seen:?}"
            ));
        }
        fx.after(case).await;
    }
    assert!(
        misses.is_empty(),
        "chunk cases mishandled:\n{}",
        misses.join("\n")
    );
}

async fn oversized_headers_get_431_and_oversized_bodies_413_case(protocol: &str) {
    let mut fx = Fixture::start(protocol).await;
    expect_rejected(
        &mut fx,
        &[
            ("1 MiB header", huge_header_request("/big")),
            ("1000 headers", many_headers_request("/many")),
        ],
        Some(431),
    )
    .await;

    let mut long_target = b"GET /".to_vec();
    long_target.extend(std::iter::repeat_n(b'a', 1024 * 1024));
    long_target.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_rejected(&mut fx, &[("1 MiB request target", long_target)], None).await;

    let body = vec![b'b'; MAX_BODY * 4];
    let mut declared = format!(
        "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    declared.extend_from_slice(&body);
    expect_rejected(
        &mut fx,
        &[("Content-Length past --max-body", declared)],
        Some(413),
    )
    .await;

    // Chunked, so the size is only known as it streams: 413 or a close, and the backend never gets it whole.
    let mut chunked =
        b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..8 {
        chunked.extend_from_slice(format!("{:x}\r\n", 512).as_bytes());
        chunked.extend(std::iter::repeat_n(b'c', 512));
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let (reply, forwarded) = fx.send(&chunked).await;
    eprintln!(
        "hostile balancer: chunked body past --max-body: {} in {:?}, forwarded {} (complete {})",
        reply.verdict(),
        reply.elapsed,
        forwarded.len(),
        forwarded.iter().filter(|s| s.complete).count()
    );
    assert!(
        reply.status() == Some(413) || (reply.status().is_none() && reply.bytes.is_empty()),
        "chunked body past --max-body: expected 413 or a close, got {}",
        reply.verdict()
    );
    assert!(
        forwarded
            .iter()
            .all(|s| !s.complete || s.body.len() <= MAX_BODY),
        "a body past --max-body reached the backend whole"
    );
    fx.after("chunked body past --max-body").await;

    // A body at the limit still passes, whole.
    let ok_body = vec![b'd'; MAX_BODY];
    let resp = e2e::http::request(
        http::Method::POST,
        &fx.balancer.url("/upload"),
        &[],
        ok_body.clone(),
    )
    .await;
    match resp {
        Ok(r) => assert_eq!(
            r.status,
            200,
            "a body of exactly --max-body was refused: {}",
            r.text()
        ),
        Err(e) => panic!("a body of exactly --max-body failed: {e}"),
    }
    let last = fx.recorder.seen().pop();
    assert_eq!(
        last.map(|s| s.body),
        Some(ok_body),
        "the body at the limit did not arrive whole"
    );
}

async fn absolute_form_and_connect_never_reach_another_host_case(protocol: &str) {
    let mut fx = Fixture::start(protocol).await;
    let decoy = fx.decoy.addr;
    let cases = [
        (
            "absolute-form naming another host",
            format!("GET http://{decoy}/abs HTTP/1.1\r\nHost: {decoy}\r\nConnection: close\r\n\r\n"),
        ),
        (
            "absolute-form, Host of the balancer",
            format!(
                "GET http://{decoy}/abs2 HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                fx.balancer.addr()
            ),
        ),
        (
            "absolute-form naming a far host",
            "GET http://elsewhere.example/abs3 HTTP/1.1\r\nHost: elsewhere.example\r\nConnection: close\r\n\r\n"
                .to_string(),
        ),
    ];
    for (case, text) in &cases {
        let (reply, forwarded) = fx.send(text.as_bytes()).await;
        eprintln!(
            "hostile balancer: {case}: {}, forwarded to the upstream {:?}, to the decoy {}",
            reply.verdict(),
            forwarded.iter().map(|s| &s.target).collect::<Vec<_>>(),
            fx.decoy.count()
        );
        assert!(
            reply.rejected() || reply.status() == Some(200),
            "{case}: expected a 4xx, or the configured upstream's answer; got {}",
            reply.verdict()
        );
        fx.after(case).await;
    }

    let connect = format!("CONNECT {decoy} HTTP/1.1\r\nHost: {decoy}\r\n\r\n");
    let (reply, forwarded) = fx.send(connect.as_bytes()).await;
    eprintln!(
        "hostile balancer: CONNECT: {}, forwarded {}",
        reply.verdict(),
        forwarded.len()
    );
    assert_eq!(
        reply.status(),
        Some(405),
        "CONNECT must get 405, got {}",
        reply.verdict()
    );
    assert!(forwarded.is_empty(), "CONNECT was forwarded: {forwarded:?}");
    fx.after("CONNECT").await;
}

async fn path_tricks_are_forwarded_verbatim_or_rejected_case(protocol: &str) {
    let mut fx = Fixture::start(protocol).await;
    let targets = [
        "/static/../secret",
        "/static/%2e%2e/%2e%2e/etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/static/..%2f..%2fCargo.toml",
        "/static/%252e%252e/x",
        "/a%00b",
        "//double//slashes",
    ];
    let mut misses = Vec::new();
    for target in targets {
        let text = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let (reply, forwarded) = fx.send(text.as_bytes()).await;
        eprintln!(
            "hostile balancer: path {target}: {}, forwarded as {:?}",
            reply.verdict(),
            forwarded.iter().map(|s| &s.target).collect::<Vec<_>>()
        );
        // The proxy must not decode or resolve the path into something else on the way: the app decides.
        match forwarded.as_slice() {
            [] if reply.rejected() => {}
            [seen] if seen.target == target => {}
            other => misses.push(format!(
                "{target}: {} and forwarded {other:?}",
                reply.verdict()
            )),
        }
        fx.after(target).await;
    }
    assert!(
        misses.is_empty(),
        "path tricks mishandled:\n{}",
        misses.join("\n")
    );
}

async fn slow_trickling_headers_are_cut_at_the_header_read_timeout_case(protocol: &str) {
    let fx = Fixture::start(protocol).await;
    let mut stream = match tokio::net::TcpStream::connect(fx.balancer.addr()).await {
        Ok(s) => s,
        Err(e) => panic!("connect: {e}"),
    };
    let began = Instant::now();
    let head = b"GET /slow HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let mut cut_after = None;
    // One byte every 100 ms: the whole head would take ~9 s, far past the 1 s timeout.
    for byte in head.iter() {
        if stream.write_all(&[*byte]).await.is_err() {
            cut_after = Some(began.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        // A closed connection shows as a readable EOF (or a 408) before writes start failing.
        let mut probe = [0u8; 512];
        match tokio::time::timeout(Duration::from_millis(1), stream.peek(&mut probe)).await {
            Ok(Ok(_)) | Ok(Err(_)) => {
                cut_after = Some(began.elapsed());
                break;
            }
            Err(_) => {}
        }
    }
    let rest =
        e2e::raw::read_until_close(&mut stream, Instant::now() + Duration::from_secs(1)).await;
    eprintln!(
        "hostile balancer: trickling headers (1 byte / 100 ms, --header-read-timeout 1s): cut after \
         {cut_after:?}, reply {:?}, forwarded {}",
        e2e::raw::status_of(&rest),
        fx.recorder.count() - 1
    );
    let Some(cut_after) = cut_after else {
        panic!(
            "a client trickling headers for {:?} was never disconnected",
            began.elapsed()
        );
    };
    assert!(
        cut_after <= HEADER_READ_TIMEOUT + Duration::from_millis(1500),
        "trickling client cut only after {cut_after:?}"
    );
    assert!(
        cut_after >= HEADER_READ_TIMEOUT - Duration::from_millis(200),
        "trickling client cut after {cut_after:?}, before --header-read-timeout"
    );
    assert!(
        fx.recorder.seen().iter().all(|s| s.target != "/slow"),
        "the trickled request was forwarded"
    );
    assert_normal_request(&fx.balancer.url("/"), "a trickling client").await;
}

/// Thousands of connections that never send a byte: memory stays bounded and normal requests still work.
/// (Named `heavy_` so nextest runs it alone.)
#[tokio::test]
async fn heavy_thousands_of_idle_connections_keep_memory_bounded() {
    const IDLE: usize = 2000;
    let recorder = RecordingBackend::start().await;
    // The default --header-read-timeout (10 s) keeps them open for the whole measurement.
    let balancer = Balancer::builder()
        .upstreams(&recorder.addr.to_string())
        .start()
        .await;
    let url = balancer.url("/");
    assert_normal_request(&url, "start").await;
    let idle = hold_idle_connections("balancer", balancer.addr(), balancer.pid(), &url, IDLE).await;
    drop(idle);
    assert_normal_request(&url, "closing idle connections").await;
}
