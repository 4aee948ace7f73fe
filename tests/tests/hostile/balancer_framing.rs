//! Hostile framing and sizes sent raw over TCP to the balancer's public port: request smuggling with both
//! framings, conflicting or invalid lengths and chunks, oversized heads and bodies (431, 413, `--max-body`),
//! and headers trickled past `--header-read-timeout`. The other hostile cases are in `balancer.rs`.
//!
//! As there, the only upstream is a recording backend and a decoy is no upstream ([`HostileBalancer`]):
//! every case must get a clear 4xx or a closed connection, leave no complete request at the backend that
//! should not pass, and a normal request right after must still work.

use std::time::{Duration, Instant};

use e2e::hostile::{
    assert_normal_request, expect_rejected, huge_header_request, many_headers_request,
    HostileBalancer, HostileTarget,
};
use e2e::over_both_upstream_protocols;
use tokio::io::AsyncWriteExt;

const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(1);
const MAX_BODY: usize = 1024;

over_both_upstream_protocols! {
    smuggling_and_conflicting_lengths_never_desynchronise_the_backend_case => smuggling_and_conflicting_lengths_never_desynchronise_the_backend, smuggling_and_conflicting_lengths_never_desynchronise_the_backend_over_h2c;
    oversized_headers_get_431_and_oversized_bodies_413_case => oversized_headers_get_431_and_oversized_bodies_413, oversized_headers_get_431_and_oversized_bodies_413_over_h2c;
    slow_trickling_headers_are_cut_at_the_header_read_timeout_case => slow_trickling_headers_are_cut_at_the_header_read_timeout, slow_trickling_headers_are_cut_at_the_header_read_timeout_over_h2c;
}

async fn smuggling_and_conflicting_lengths_never_desynchronise_the_backend_case(protocol: &str) {
    let mut fx = HostileBalancer::start(protocol).await;
    hidden_requests_behind_both_framings_never_reach_the_backend(&mut fx).await;
    conflicting_or_invalid_lengths_are_rejected(&mut fx).await;
    invalid_chunks_never_reach_the_backend_complete(&mut fx).await;
}

/// Both framings in one request, with a second request hidden behind: the balancer must either refuse
/// it, or process it by Transfer-Encoding alone and close the connection (RFC 9112 §6.1), so the hidden
/// request is never forwarded and the backend never sees both framings.
async fn hidden_requests_behind_both_framings_never_reach_the_backend(fx: &mut HostileBalancer) {
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
}

/// Two Content-Lengths, a list, a negative or non-numeric one, chunked not last, an unknown coding:
/// each is rejected outright and forwards nothing.
async fn conflicting_or_invalid_lengths_are_rejected(fx: &mut HostileBalancer) {
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
    expect_rejected(fx, &cases, None).await;
}

/// An invalid chunk size shows up after the head, which a streaming proxy may already have sent: the
/// client must still get a 4xx or a close, and the backend must never see a complete request.
async fn invalid_chunks_never_reach_the_backend_complete(fx: &mut HostileBalancer) {
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
    let mut fx = HostileBalancer::start(protocol).await;
    oversized_heads_and_declared_bodies_are_refused(&mut fx).await;
    a_chunked_body_past_the_limit_never_arrives_whole(&mut fx).await;
    a_body_at_the_limit_passes_whole(&fx).await;
}

/// A 1 MiB header and 1000 headers get 431, a 1 MiB target a 4xx or a close, a declared
/// Content-Length past `--max-body` 413; none is forwarded.
async fn oversized_heads_and_declared_bodies_are_refused(fx: &mut HostileBalancer) {
    expect_rejected(
        fx,
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
    expect_rejected(fx, &[("1 MiB request target", long_target)], None).await;

    let body = vec![b'b'; MAX_BODY * 4];
    let mut declared = format!(
        "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    declared.extend_from_slice(&body);
    expect_rejected(
        fx,
        &[("Content-Length past --max-body", declared)],
        Some(413),
    )
    .await;
}

/// Chunked, so the size is only known as it streams: 413 or a close, and the backend never gets it whole.
async fn a_chunked_body_past_the_limit_never_arrives_whole(fx: &mut HostileBalancer) {
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
}

/// A body of exactly `--max-body` still passes, whole.
async fn a_body_at_the_limit_passes_whole(fx: &HostileBalancer) {
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

async fn slow_trickling_headers_are_cut_at_the_header_read_timeout_case(protocol: &str) {
    let fx = HostileBalancer::start(protocol).await;
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
