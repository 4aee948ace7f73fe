//! A server-sent event stream through a route with `compress`: a real SSE backend holds the
//! stream open and the test sends each event; the client reads the compressed stream with a
//! streaming decoder and must decode event N, exactly and in full, before event N+1 is sent (the
//! backend's send is the synchronisation: nothing is sent ahead, so an encoder holding the event
//! back fails the test by its deadline). Each of gzip, zstd and br, over HTTP/1.1.

use std::time::{Duration, Instant};

use async_compression::tokio::write::{BrotliDecoder, GzipDecoder, ZstdDecoder};
use bytes::Bytes;
use e2e::backends::SseBackend;
use e2e::routes::ConfigFile;
use e2e::Balancer;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// How long one event may take to come out decoded.
const EVENT_DEADLINE: Duration = Duration::from_secs(10);

/// Events sent per stream.
const EVENTS: usize = 5;

/// A streaming decoder for `coding`, writing into a `Vec`.
fn decoder(coding: &str) -> Box<dyn Decoded> {
    match coding {
        "gzip" => Box::new(GzipDecoder::new(Vec::new())),
        "zstd" => Box::new(ZstdDecoder::new(Vec::new())),
        "br" => Box::new(BrotliDecoder::new(Vec::new())),
        other => panic!("no decoder for {other}"),
    }
}

/// A decoder whose output so far can be read.
trait Decoded: AsyncWrite + Unpin + Send {
    fn decoded(&self) -> &[u8];
}

macro_rules! decoded {
    ($($t:ident),*) => {$(
        impl Decoded for $t<Vec<u8>> {
            fn decoded(&self) -> &[u8] {
                self.get_ref()
            }
        }
    )*};
}
decoded!(GzipDecoder, ZstdDecoder, BrotliDecoder);

fn event(n: usize) -> String {
    format!("id: {n}\ndata: tick {n} {}\n\n", "lorem ipsum ".repeat(n))
}

fn events(upto: usize) -> String {
    (1..=upto).map(event).collect()
}

/// Feeds the response's frames to `dec` until its output is `want`; panics at the deadline or
/// when the output goes past `want` (an event the backend has not sent yet).
async fn decode_until(body: &mut Incoming, dec: &mut Box<dyn Decoded>, want: &str, what: &str) {
    let deadline = Instant::now() + EVENT_DEADLINE;
    while dec.decoded() != want.as_bytes() {
        assert!(
            want.as_bytes().starts_with(dec.decoded()),
            "{what}: decoded {:?}",
            String::from_utf8_lossy(dec.decoded())
        );
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = match tokio::time::timeout(left, body.frame()).await {
            Ok(Some(Ok(frame))) => frame,
            Ok(Some(Err(e))) => panic!("{what}: body error {e}"),
            Ok(None) => panic!("{what}: the response ended"),
            Err(_) => panic!(
                "{what}: not decodable within {EVENT_DEADLINE:?}; decoded so far {:?}",
                String::from_utf8_lossy(dec.decoded())
            ),
        };
        if let Ok(data) = frame.into_data() {
            dec.write_all(&data).await.expect("the coding decodes");
            dec.flush().await.expect("the decoder flushes");
        }
    }
}

async fn one_stream(b: &Balancer, sse: &mut SseBackend, coding: &str) {
    let tcp = tokio::net::TcpStream::connect(b.addr()).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let req = Request::get("/events")
        .header("host", "sse.test")
        .header("accept", "text/event-stream")
        .header("accept-encoding", coding)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = tokio::spawn(send.send_request(req));
    let stream = sse.opened(EVENT_DEADLINE).await;
    // The head may wait for the first event's bytes; either way it is here once that is sent.
    stream.send(&event(1)).await;
    let resp = tokio::time::timeout(EVENT_DEADLINE, resp)
        .await
        .expect("the head arrives")
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 200, "{coding}");
    let h = resp.headers();
    assert_eq!(h["content-encoding"], coding, "{coding}");
    assert_eq!(h["content-type"], "text/event-stream");
    let mut body = resp.into_body();
    let mut dec = decoder(coding);
    for n in 1..=EVENTS {
        if n > 1 {
            stream.send(&event(n)).await;
        }
        let what = format!("{coding} event {n}");
        decode_until(&mut body, &mut dec, &events(n), &what).await;
    }
    // The stream ends: the encoder finishes, the decoder sees a whole, valid stream.
    drop(stream);
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            dec.write_all(&data).await.unwrap();
        }
    }
    dec.shutdown().await.expect("a complete stream");
    assert_eq!(dec.decoded(), events(EVENTS).as_bytes(), "{coding}");
    conn.abort();
}

#[tokio::test]
async fn each_event_decodes_before_the_next_is_sent() {
    let mut sse = SseBackend::start().await;
    let file = ConfigFile::plain(&format!(
        "[[upstream]]\nname = \"sse\"\nservers = [\"{}\"]\n\n\
         [[route]]\npath = \"/\"\nupstream = \"sse\"\ncompress = [\"zstd\", \"br\", \"gzip\"]\n",
        sse.addr()
    ));
    let b = Balancer::builder()
        .args(&["--config", &file.path_str()])
        .start()
        .await;
    for coding in ["gzip", "zstd", "br"] {
        tokio::time::timeout(Duration::from_secs(60), one_stream(&b, &mut sse, coding))
            .await
            .unwrap_or_else(|_| panic!("{coding}: the stream took over 60 s"));
    }
}
