//! Backends that answer each request with its own body echoed, and then, 2 ms later, write a second,
//! unasked-for response on the same connection (its body `STRAY`): the replica of issue 15 that hands
//! responses to the wrong clients behind a pooled HTTP/1.1 proxy.
//!
//! [`stray_http1_backend`] speaks HTTP/1.1. [`stray_h2_backend`] speaks just enough raw HTTP/2 (prior
//! knowledge) to do the same thing there: after a stream's response it sends another HEADERS + DATA on
//! that very stream, which is already closed. Both echo the request *body* (HTTP/2 DATA frames are not
//! HPACK-encoded, so the raw server needs no header decoder); health probes (bodiless GETs) get a clean
//! empty 200 with no stray, so the backend stays in the rotation.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::{listen, serve, TestBackend};

/// How long after a response its stray twin is written.
pub const STRAY_DELAY: Duration = Duration::from_millis(2);
/// The body of every stray response.
pub const STRAY_BODY: &str = "STRAY";

/// The connection's one writer: whole messages at a time, in the order sent, so a stray never lands
/// inside another response or frame.
fn writer_task(mut writer: tokio::net::tcp::OwnedWriteHalf) -> mpsc::UnboundedSender<Vec<u8>> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                return;
            }
        }
    });
    tx
}

/// An HTTP/1.1 backend echoing each request's body, then writing a stray response 2 ms later.
pub async fn stray_http1_backend() -> TestBackend {
    serve(listen([127, 0, 0, 1], 0).await, |stream, hits| async move {
        let (mut reader, writer) = stream.into_split();
        let tx = writer_task(writer);
        let mut buf = Vec::new();
        while let Some((probe, body)) = read_http1_request(&mut reader, &mut buf).await {
            if tx.send(http1_response(&body)).is_err() {
                return;
            }
            if probe {
                continue;
            }
            hits.fetch_add(1, Ordering::SeqCst);
            let tx = tx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(STRAY_DELAY).await;
                let _ = tx.send(http1_response(STRAY_BODY.as_bytes()));
            });
        }
    })
}

fn http1_response(body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    out.extend_from_slice(body);
    out
}

/// The next request on the connection: (is it a health probe, its body); `None` at EOF.
async fn read_http1_request<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> Option<(bool, Vec<u8>)> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let body = buf[end + 4..end + 4 + len].to_vec();
                let probe = head.starts_with("get /health");
                buf.drain(..end + 4 + len);
                return Some((probe, body));
            }
        }
        let mut chunk = [0u8; 4096];
        match r.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const SETTINGS: u8 = 4;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const WINDOW_UPDATE: u8 = 8;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;
/// HPACK: `:status: 200` from the static table.
const STATUS_200: u8 = 0x88;

/// One HTTP/2 frame.
pub fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u32).to_be_bytes();
    let mut out = vec![len[1], len[2], len[3], kind, flags];
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A response on `stream`: `:status 200` and `body`, ending the stream.
fn h2_response(stream: u32, body: &[u8]) -> Vec<u8> {
    let mut out = h2_frame(HEADERS, END_HEADERS, stream, &[STATUS_200]);
    out.extend(h2_frame(DATA, END_STREAM, stream, body));
    out
}

/// How the raw HTTP/2 backend answers a request with a body (health probes always get a clean 200).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum H2Reply {
    /// The body echoed, nothing else.
    Echo,
    /// The body echoed, then 2 ms later a second response on the same, already closed, stream.
    EchoThenStray,
    /// A HEADERS frame whose block is not valid HPACK (a connection error for the client).
    GarbageHeaders,
    /// A header block of 80 KiB, in a HEADERS frame and CONTINUATION frames (over any sane limit).
    HugeHeaderBlock,
}

/// A raw HTTP/2 (prior knowledge) backend echoing each request's body, then writing a second
/// response on the same, already closed, stream 2 ms later.
pub async fn stray_h2_backend() -> TestBackend {
    raw_h2_backend(H2Reply::EchoThenStray).await
}

/// A raw HTTP/2 (prior knowledge) backend answering requests with a body as `reply` says.
pub async fn raw_h2_backend(reply: H2Reply) -> TestBackend {
    serve(listen([127, 0, 0, 1], 0).await, move |stream, hits| {
        serve_h2(stream, hits, reply)
    })
}

async fn serve_h2(stream: TcpStream, hits: Arc<AtomicUsize>, reply: H2Reply) {
    let (mut reader, writer) = stream.into_split();
    let tx = writer_task(writer);
    let mut preface = [0u8; 24];
    if reader.read_exact(&mut preface).await.is_err() {
        return;
    }
    let _ = tx.send(h2_frame(SETTINGS, 0, 0, &[]));
    let mut bodies: HashMap<u32, Vec<u8>> = HashMap::new();
    let mut head = [0u8; 9];
    while reader.read_exact(&mut head).await.is_ok() {
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let (kind, flags) = (head[3], head[4]);
        let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; len];
        if reader.read_exact(&mut payload).await.is_err() {
            return;
        }
        let ended = match kind {
            SETTINGS if flags & ACK == 0 => {
                let _ = tx.send(h2_frame(SETTINGS, ACK, 0, &[]));
                None
            }
            PING if flags & ACK == 0 => {
                let _ = tx.send(h2_frame(PING, ACK, 0, &payload));
                None
            }
            GOAWAY => return,
            HEADERS => {
                bodies.insert(id, Vec::new());
                (flags & END_STREAM != 0).then_some(id)
            }
            DATA => {
                bodies.entry(id).or_default().extend_from_slice(&payload);
                // Give the window back, or a long run stalls on flow control.
                if len > 0 {
                    let inc = (len as u32).to_be_bytes();
                    let _ = tx.send(h2_frame(WINDOW_UPDATE, 0, 0, &inc));
                    if flags & END_STREAM == 0 {
                        let _ = tx.send(h2_frame(WINDOW_UPDATE, 0, id, &inc));
                    }
                }
                (flags & END_STREAM != 0).then_some(id)
            }
            _ => None,
        };
        if let Some(id) = ended {
            answer_h2(
                &tx,
                id,
                bodies.remove(&id).unwrap_or_default(),
                &hits,
                reply,
            );
        }
    }
}

fn answer_h2(
    tx: &mpsc::UnboundedSender<Vec<u8>>,
    id: u32,
    body: Vec<u8>,
    hits: &Arc<AtomicUsize>,
    reply: H2Reply,
) {
    // A bodiless request is a health probe: a clean answer.
    if body.is_empty() {
        let _ = tx.send(h2_response(id, &body));
        return;
    }
    hits.fetch_add(1, Ordering::SeqCst);
    match reply {
        H2Reply::Echo => {
            let _ = tx.send(h2_response(id, &body));
        }
        H2Reply::EchoThenStray => {
            let _ = tx.send(h2_response(id, &body));
            let tx = tx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(STRAY_DELAY).await;
                let _ = tx.send(h2_response(id, STRAY_BODY.as_bytes()));
            });
        }
        H2Reply::GarbageHeaders => {
            // 0xff...: an indexed field whose index never ends (integer overflow).
            let _ = tx.send(h2_frame(HEADERS, END_HEADERS | END_STREAM, id, &[0xff; 8]));
        }
        H2Reply::HugeHeaderBlock => {
            let _ = tx.send(huge_header_block(id));
        }
    }
}

/// `:status 200` and twenty 4,000-byte `x-pad` fields: a HEADERS frame without END_HEADERS, then
/// CONTINUATION frames of four fields each.
fn huge_header_block(id: u32) -> Vec<u8> {
    const CONTINUATION: u8 = 9;
    // Literal without indexing, new name "x-pad", value length 4000 (7-bit prefix: 127 + 3873).
    let mut field = vec![0x00, 0x05];
    field.extend_from_slice(b"x-pad");
    field.extend_from_slice(&[0x7f, 0xa1, 0x1e]);
    field.extend(std::iter::repeat_n(b'a', 4000));
    let mut out = h2_frame(HEADERS, 0, id, &[STATUS_200]);
    for frame in 0..5 {
        let flags = if frame == 4 { END_HEADERS } else { 0 };
        out.extend(h2_frame(CONTINUATION, flags, id, &field.repeat(4)));
    }
    out
}
