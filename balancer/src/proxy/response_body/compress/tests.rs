//! The encoder body: every codec decodes back to the backend's bytes, chunk by chunk; the head
//! rewritten; what is left alone; SSE flushed per event; a pause flushes; the lease released at
//! the end; a broken backend body reported; memory bounded on a large body.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_compression::tokio::bufread::{BrotliDecoder, GzipDecoder, ZstdDecoder};
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Body, Frame};
use tokio::io::AsyncReadExt;

use super::*;
use crate::backends::backend::{Backend, InFlight};
use crate::backends::health::HealthPolicy;
use crate::policy::compress::Codec;
use crate::runtime::metrics::{CompressionMetrics, Metrics};

/// A lease that counts how it ended: released (0) or broken (1).
#[derive(Clone, Default)]
struct Counted(Arc<[AtomicUsize; 2]>);

impl Release for Counted {
    fn release(self) {
        self.0[0].fetch_add(1, Ordering::SeqCst);
    }
    fn broken(self, _: &(dyn std::error::Error + 'static)) {
        self.0[1].fetch_add(1, Ordering::SeqCst);
    }
}

type Chunks = StreamBody<
    futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, std::io::Error>>>,
>;

fn chunks(parts: Vec<Result<Bytes, std::io::Error>>) -> Chunks {
    let frames: Vec<_> = parts.into_iter().map(|p| p.map(Frame::data)).collect();
    StreamBody::new(futures_util::stream::iter(frames))
}

fn upstream<B: Body>(body: B, lease: Counted) -> ResponseBody<B, Counted> {
    let metrics = Metrics::new();
    let backend = Backend::new("127.0.0.1:9".parse().unwrap(), "app", &metrics, 1).unwrap();
    ResponseBody::Upstream {
        inner: body,
        in_flight: InFlight::start(Arc::new(backend)),
        policy: HealthPolicy {
            max_fails: 1,
            fail_timeout: Duration::from_secs(1),
        },
        lease: Some(lease),
        finished: false,
    }
}

fn response<B: Body>(
    body: ResponseBody<B, Counted>,
    kind: &str,
) -> Response<ResponseBody<B, Counted>> {
    let mut resp = Response::new(body);
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_str(kind).unwrap());
    resp
}

/// [`super::wrap`] counting into metrics of its own (the tests that count use theirs).
fn wrap<B: Body, L: Release>(
    resp: Response<ResponseBody<B, L>>,
    codec: Codec,
    compress: &Compress,
) -> Response<ResponseBody<B, L>> {
    super::wrap(resp, codec, compress, &Metrics::new().compression)
}

async fn decode(codec: Codec, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match codec {
        Codec::Zstd => ZstdDecoder::new(bytes).read_to_end(&mut out).await,
        Codec::Br => BrotliDecoder::new(bytes).read_to_end(&mut out).await,
        Codec::Gzip => GzipDecoder::new(bytes).read_to_end(&mut out).await,
    }
    .unwrap();
    out
}

fn page() -> Vec<Bytes> {
    (0..50)
        .map(|i| {
            Bytes::from(format!(
                "<li>item {i}: {}</li>\n",
                "lorem ipsum ".repeat(i % 7)
            ))
        })
        .collect()
}

#[tokio::test]
async fn every_codec_decodes_to_the_backend_bytes() {
    let whole: Vec<u8> = page().concat();
    for codec in Codec::ALL {
        let lease = Counted::default();
        let body = chunks(page().into_iter().map(Ok).collect());
        let mut resp = response(upstream(body, lease.clone()), "text/html; charset=utf-8");
        resp.headers_mut()
            .insert(header::ETAG, HeaderValue::from_static("\"v1\""));
        resp.headers_mut()
            .insert(header::VARY, HeaderValue::from_static("Cookie"));
        resp.headers_mut()
            .insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        let resp = wrap(resp, codec, &Compress::new(Codec::ALL.to_vec()));
        let h = resp.headers();
        assert_eq!(h[header::CONTENT_ENCODING], codec.token());
        assert_eq!(h[header::ETAG], "W/\"v1\"");
        assert_eq!(h[header::VARY], "Cookie, Accept-Encoding");
        assert!(!h.contains_key(header::ACCEPT_RANGES));
        let encoded = resp.into_body().collect().await.unwrap().to_bytes();
        assert!(
            encoded.len() < whole.len() / 2,
            "{codec:?}: {}",
            encoded.len()
        );
        assert_eq!(decode(codec, &encoded).await, whole, "{codec:?}");
        assert_eq!(lease.0[0].load(Ordering::SeqCst), 1, "lease released");
    }
}

#[tokio::test]
async fn left_alone() {
    let c = Compress::new(vec![Codec::Gzip]);
    let text = "x".repeat(4096);
    let body = || chunks(vec![Ok(Bytes::from(text.clone()))]);
    // An image, an encoded body, a small known length, the balancer's own answer.
    let png = wrap(
        response(upstream(body(), Counted::default()), "image/png"),
        Codec::Gzip,
        &c,
    );
    assert!(!png.headers().contains_key(header::CONTENT_ENCODING));
    let mut br = response(upstream(body(), Counted::default()), "text/html");
    br.headers_mut()
        .insert(header::CONTENT_ENCODING, HeaderValue::from_static("br"));
    let br = wrap(br, Codec::Gzip, &c);
    assert_eq!(br.headers()[header::CONTENT_ENCODING], "br");
    assert_eq!(
        br.into_body().collect().await.unwrap().to_bytes(),
        text.as_bytes()
    );
    let small = http_body_util::Full::new(Bytes::from_static(b"tiny"));
    let small = wrap(
        response(upstream(small, Counted::default()), "text/html"),
        Codec::Gzip,
        &c,
    );
    assert!(!small.headers().contains_key(header::CONTENT_ENCODING));
    let own: Response<ResponseBody<Chunks, Counted>> =
        response(ResponseBody::fixed("502\n"), "text/plain");
    let own = wrap(own, Codec::Gzip, &c);
    assert!(!own.headers().contains_key(header::CONTENT_ENCODING));
    let mut vary_star = response(upstream(body(), Counted::default()), "text/html");
    *vary_star.status_mut() = StatusCode::OK;
    vary_star
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("*"));
    let vary_star = wrap(vary_star, Codec::Gzip, &c);
    assert_eq!(vary_star.headers()[header::VARY], "*");
    assert_eq!(vary_star.headers()[header::CONTENT_ENCODING], "gzip");
}

#[tokio::test]
async fn a_broken_backend_body_is_reported() {
    let lease = Counted::default();
    let body = chunks(vec![
        Ok(Bytes::from("a".repeat(2000))),
        Err(std::io::Error::other("reset")),
    ]);
    let resp = wrap(
        response(upstream(body, lease.clone()), "text/plain"),
        Codec::Zstd,
        &Compress::new(vec![Codec::Zstd]),
    );
    assert!(resp.into_body().collect().await.is_err());
    assert_eq!(lease.0[1].load(Ordering::SeqCst), 1, "lease broken");
    assert_eq!(lease.0[0].load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn sse_flushes_every_event_and_a_pause_flushes() {
    for (kind, codec) in [
        ("text/event-stream", Codec::Br),
        ("application/json", Codec::Gzip),
    ] {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(1);
        let body = StreamBody::new(tokio_stream(rx));
        let resp = wrap(
            response(upstream(body, Counted::default()), kind),
            codec,
            &Compress::new(vec![codec]),
        );
        let mut body = resp.into_body();
        let mut decoded = Vec::new();
        let mut wire = Vec::new();
        for event in ["data: one\n\n", "data: two\n\n"] {
            tx.send(Ok(Frame::data(Bytes::from(event)))).await.unwrap();
            // The next frame comes without the stream ending: flushed.
            let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
                .await
                .unwrap();
            wire.extend_from_slice(&frame.unwrap().unwrap().into_data().unwrap());
            decoded = decode_prefix(codec, &wire).await;
        }
        assert_eq!(decoded, b"data: one\n\ndata: two\n\n", "{kind}");
    }
}

/// What a decoder yields of an unfinished stream.
async fn decode_prefix(codec: Codec, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    macro_rules! drain {
        ($d:expr) => {{
            let mut d = $d;
            while let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_millis(100), d.read(&mut buf)).await
            {
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
            }
        }};
    }
    match codec {
        Codec::Zstd => drain!(ZstdDecoder::new(bytes)),
        Codec::Br => drain!(BrotliDecoder::new(bytes)),
        Codec::Gzip => drain!(GzipDecoder::new(bytes)),
    }
    out
}

fn tokio_stream<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Unpin {
    Box::pin(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

/// 64 MiB through the encoder in 64 KiB chunks, read frame by frame: no frame is ever much
/// larger than a chunk, so nothing accumulates.
#[tokio::test]
async fn a_large_body_streams_in_bounded_frames() {
    const CHUNK: usize = 64 * 1024;
    let mut n = 0u64;
    let stream = futures_util::stream::iter(0..1024).map(move |i: usize| {
        let line = format!("{{\"id\":{i},\"name\":\"item {}\"}},", i * 7919 % 1000);
        Ok::<_, Infallible>(Frame::data(Bytes::from(
            line.repeat(CHUNK / line.len() + 1)[..CHUNK].to_owned(),
        )))
    });
    let body = StreamBody::new(stream);
    let resp = wrap(
        response(upstream(body, Counted::default()), "application/json"),
        Codec::Zstd,
        &Compress::new(vec![Codec::Zstd]),
    );
    let mut body = resp.into_body();
    let mut largest = 0;
    while let Some(frame) = body.frame().await {
        let data = frame.unwrap().into_data().unwrap();
        largest = largest.max(data.len());
        n += data.len() as u64;
    }
    assert!(n > 0);
    assert!(largest <= 2 * CHUNK, "a frame of {largest} bytes");
}

use futures_util::StreamExt;

#[tokio::test]
async fn a_known_length_gets_a_window_to_fit_and_decodes() {
    assert_eq!(window_bits(0, 21), 10);
    assert_eq!(window_bits(4096, 21), 12);
    assert_eq!(window_bits(4097, 21), 13);
    assert_eq!(window_bits(u64::MAX, 21), 21);
    for len in [1024usize, 5000, 300_000] {
        let whole: Vec<u8> = page().concat().into_iter().cycle().take(len).collect();
        for codec in Codec::ALL {
            let body = http_body_util::Full::new(Bytes::from(whole.clone()));
            let resp = response(upstream(body, Counted::default()), "text/css");
            let resp = wrap(resp, codec, &Compress::new(vec![codec]));
            assert_eq!(resp.headers()[header::CONTENT_ENCODING], codec.token());
            let encoded = resp.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(decode(codec, &encoded).await, whole, "{codec:?} {len}");
        }
    }
}

/// Each response is counted once, when its body ends or is dropped: by coding, and its bytes
/// into and out of the encoder; what is left alone is not counted.
#[tokio::test]
async fn each_response_is_counted_once_at_its_end() {
    assert_eq!(
        Codec::ALL.map(Codec::token),
        CompressionMetrics::ENCODINGS,
        "the metric's label order is the codecs'"
    );
    let metrics = Metrics::new();
    let m = &metrics.compression;
    let whole: Vec<u8> = page().concat();
    let compress = Compress::new(Codec::ALL.to_vec());
    let mut out = 0;
    for codec in [Codec::Br, Codec::Gzip, Codec::Gzip] {
        let body = chunks(page().into_iter().map(Ok).collect());
        let resp = response(upstream(body, Counted::default()), "text/html");
        let encoded = super::wrap(resp, codec, &compress, m).into_body();
        out += encoded.collect().await.unwrap().to_bytes().len() as u64;
    }
    let png = response(upstream(chunks(vec![]), Counted::default()), "image/png");
    drop(super::wrap(png, Codec::Zstd, &compress, m));
    assert_eq!(m.responses.each_ref().map(|c| c.get()), [0, 1, 2]);
    assert_eq!(m.bytes_in.get(), 3 * whole.len() as u64);
    assert_eq!(m.bytes_out.get(), out);
    // A response dropped half-way (the client went away) is counted when dropped.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(1);
    let resp = response(
        upstream(StreamBody::new(tokio_stream(rx)), Counted::default()),
        "text/html",
    );
    let mut body = super::wrap(resp, Codec::Zstd, &compress, m).into_body();
    tx.send(Ok(Frame::data(Bytes::from(whole.clone()))))
        .await
        .unwrap();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(m.responses[0].get(), 0, "not counted before its end");
    drop(body);
    assert_eq!(m.responses[0].get(), 1);
    assert_eq!(m.bytes_in.get(), 4 * whole.len() as u64);
    assert_eq!(m.bytes_out.get(), out + first.len() as u64);
}
