//! The bulk backend, speaking HTTP/1.1 and HTTP/2 (prior knowledge) on one port, as the app does:
//! `GET /big?mib=N` streams N MiB of zeros (lazily: the transport's flow control paces it), and
//! `POST /upload` reads the body frame by frame, never holding it, and answers its length.

use std::convert::Infallible;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

use super::{listen, serve, TestBackend};

const CHUNK: usize = 64 << 10;
static ZEROS: [u8; CHUNK] = [0; CHUNK];

type Body = BoxBody<Bytes, Infallible>;

/// A backend for big bodies both ways; a hit is one request other than `/health`.
pub async fn bulk_backend() -> TestBackend {
    serve(listen([127, 0, 0, 1], 0).await, |stream, hits| async move {
        let service = service_fn(move |req: Request<Incoming>| {
            let hits = hits.clone();
            async move {
                if req.uri().path() != "/health" {
                    hits.fetch_add(1, Ordering::SeqCst);
                }
                Ok::<_, Infallible>(answer(req).await)
            }
        });
        let _ = auto::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(stream), service)
            .await;
    })
}

async fn answer(req: Request<Incoming>) -> Response<Body> {
    match req.uri().path() {
        "/big" => {
            let mib: usize = req
                .uri()
                .query()
                .and_then(|q| q.strip_prefix("mib="))
                .and_then(|v| v.parse().ok())
                .unwrap_or(1);
            let chunks = mib * ((1 << 20) / CHUNK);
            let frames = futures_util::stream::iter(
                (0..chunks).map(|_| Ok(Frame::data(Bytes::from_static(&ZEROS)))),
            );
            let mut resp = Response::new(BodyExt::boxed(StreamBody::new(frames)));
            resp.headers_mut()
                .insert(http::header::CONTENT_LENGTH, (chunks * CHUNK).into());
            resp
        }
        "/upload" => {
            let mut body = req.into_body();
            let mut len = 0usize;
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(f) => len += f.data_ref().map_or(0, |d| d.len()),
                    Err(e) => return text(format!("body error after {len} bytes: {e}")),
                }
            }
            text(len.to_string())
        }
        _ => text("ok".to_owned()),
    }
}

fn text(s: String) -> Response<Body> {
    Response::new(Full::new(Bytes::from(s)).boxed())
}
