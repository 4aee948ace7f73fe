//! An HTTP/1.1 backend that breaks the framing of its answers on chosen paths, each a way to put
//! bytes on a connection that no request asked for (issue 29): every other request gets its body
//! echoed, health probes a clean empty 200.
//!
//! - `/early`: answers `early` as soon as the head arrived, before reading the request body, then
//!   reads the body and answers it again with [`STRAY_BODY`] (as a server that took the body for a
//!   request of its own would);
//! - `/short`: a `Content-Length` shorter than the bytes sent: the rest is a whole second response;
//! - `/continue-twice`: two `100 Continue` before the final answer (legal: RFC 9110 §15.2);
//! - `/continue-late`: a `100 Continue` after the final answer;
//! - any `HEAD`: a response with a body.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;

use super::stray::STRAY_BODY;
use super::{listen, serve, TestBackend};

/// How long `/early` waits after its early answer before it reads the body: the body is then still
/// on its way when the answer arrives.
const EARLY_HOLD: Duration = Duration::from_millis(100);

/// The backend described in the module doc.
pub async fn framing_backend() -> TestBackend {
    serve(listen([127, 0, 0, 1], 0).await, |stream, hits| async move {
        let (mut reader, mut writer) = stream.into_split();
        let mut buf = Vec::new();
        while let Some((method, path, len)) = read_head(&mut reader, &mut buf).await {
            if path != "/health" {
                hits.fetch_add(1, Ordering::SeqCst);
            }
            let out = if path == "/early" {
                if writer.write_all(&response(b"early")).await.is_err() {
                    return;
                }
                tokio::time::sleep(EARLY_HOLD).await;
                let _ = read_body(&mut reader, &mut buf, len).await;
                response(STRAY_BODY.as_bytes())
            } else {
                let Some(body) = read_body(&mut reader, &mut buf, len).await else {
                    return;
                };
                answer(&method, &path, &body)
            };
            if writer.write_all(&out).await.is_err() {
                return;
            }
        }
    })
}

fn response(body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    out.extend_from_slice(body);
    out
}

/// The bytes written for a request whose body has been read, in one write.
fn answer(method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
    if method == "HEAD" {
        return response(STRAY_BODY.as_bytes());
    }
    match path {
        "/short" => {
            let mut out =
                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
            out.extend_from_slice(body);
            out.extend(response(STRAY_BODY.as_bytes()));
            out
        }
        "/continue-twice" => [CONTINUE, CONTINUE, &response(body)].concat(),
        "/continue-late" => [&response(body), CONTINUE].concat(),
        _ => response(body),
    }
}

/// The next request head: (method, path, content length); `None` at EOF.
async fn read_head(r: &mut OwnedReadHalf, buf: &mut Vec<u8>) -> Option<(String, String, usize)> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 4);
            let mut words = head.split_whitespace();
            let method = words.next().unwrap_or_default().to_owned();
            let path = words.next().unwrap_or_default().to_owned();
            let len = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            return Some((method, path, len));
        }
        fill(r, buf).await?;
    }
}

/// The request body of `len` bytes; `None` at EOF.
async fn read_body(r: &mut OwnedReadHalf, buf: &mut Vec<u8>, len: usize) -> Option<Vec<u8>> {
    while buf.len() < len {
        fill(r, buf).await?;
    }
    Some(buf.drain(..len).collect())
}

async fn fill(r: &mut OwnedReadHalf, buf: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 16384];
    match r.read(&mut chunk).await {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Some(())
        }
    }
}
