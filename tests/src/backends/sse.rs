//! The server-sent events backend: every request but `/health` opens a `text/event-stream`
//! response that stays open, and the test decides when each event goes out. [`SseBackend::opened`]
//! hands the test the next stream opened; [`SseStream::send`] returns once the backend's body has
//! given that event to its HTTP server to write (so the test synchronises on the backend's send,
//! never on a sleep); dropping the [`SseStream`] ends the response.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::sync::{mpsc, oneshot};

use super::{listen, serve, TestBackend};

type Body = BoxBody<Bytes, Infallible>;

/// One event to write, and who to tell once the body has handed it over.
type Event = (Bytes, oneshot::Sender<()>);

/// A [`TestBackend`] whose event streams the test drives.
pub struct SseBackend {
    pub backend: TestBackend,
    opened: mpsc::UnboundedReceiver<SseStream>,
}

/// One open event stream: the test's end of it.
pub struct SseStream {
    events: mpsc::Sender<Event>,
}

impl SseBackend {
    pub async fn start() -> SseBackend {
        let (opened_tx, opened) = mpsc::unbounded_channel();
        let backend = serve(listen([127, 0, 0, 1], 0).await, move |stream, hits| {
            let opened_tx = opened_tx.clone();
            async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let (opened_tx, hits) = (opened_tx.clone(), hits.clone());
                    async move {
                        if req.uri().path() == "/health" {
                            return Ok::<_, Infallible>(Response::new(
                                Full::new(Bytes::from_static(b"ok")).boxed(),
                            ));
                        }
                        hits.fetch_add(1, Ordering::SeqCst);
                        Ok(open_stream(&opened_tx))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            }
        });
        SseBackend { backend, opened }
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.backend.addr
    }

    /// The next event stream a request opened; panics after `within`.
    pub async fn opened(&mut self, within: Duration) -> SseStream {
        match tokio::time::timeout(within, self.opened.recv()).await {
            Ok(Some(stream)) => stream,
            Ok(None) => panic!("the SSE backend stopped"),
            Err(_) => panic!("no request opened an event stream within {within:?}"),
        }
    }
}

/// A held-open `text/event-stream` response fed by a fresh [`SseStream`], handed to the test.
fn open_stream(opened: &mpsc::UnboundedSender<SseStream>) -> Response<Body> {
    // Capacity 1: an event waits in the channel only until the body takes it.
    let (events, rx) = mpsc::channel::<Event>(1);
    let _ = opened.send(SseStream { events });
    let frames = futures_util::stream::unfold(rx, |mut rx| async move {
        let (event, handed) = rx.recv().await?;
        let _ = handed.send(());
        Some((Ok(Frame::data(event)), rx))
    });
    let mut resp = Response::new(StreamBody::new(frames).boxed());
    let h = resp.headers_mut();
    h.insert(
        "content-type",
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert("cache-control", HeaderValue::from_static("no-cache"));
    resp
}

impl SseStream {
    /// Sends `event` (its text as it is, e.g. `"id: 1\ndata: tick\n\n"`), returning once the
    /// backend's body handed it to its HTTP server; panics when the response is gone.
    pub async fn send(&self, event: &str) {
        let (handed_tx, handed) = oneshot::channel();
        let event_bytes = Bytes::from(event.to_owned());
        if self.events.send((event_bytes, handed_tx)).await.is_err() {
            panic!("{event:?}: the stream's response is gone");
        }
        if handed.await.is_err() {
            panic!("{event:?}: the response ended before taking it");
        }
    }
}
