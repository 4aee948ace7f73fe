//! The hyper floor: the cheapest HTTP/1.1 reverse proxy hyper allows, with none of the balancer's
//! logic, so `cargo xtask bench --instructions` can say what hyper itself costs per proxied request.
//!
//! One single-threaded event loop (like `balancer --workers 1`), keep-alive on both sides, one
//! upstream, a LIFO stack of idle upstream connections, the request and the response passed through
//! untouched (no header rules, no request ID, no timeouts, no metrics, no retry). A connection goes
//! back on the stack when its response body ended, exactly as the balancer's pool does it. What the
//! balancer spends above this binary is its own; what this binary spends is the floor a hyper proxy
//! cannot go below.
//!
//! Usage: `hyper_floor LISTEN_ADDR UPSTREAM_ADDR`; stops cleanly on SIGTERM or SIGINT (so
//! callgrind writes its profile). The connect, the lock and the stop signal are the library's own
//! (`balancer::upstream::connect`, `shared::sync`, `shared::signal`): none is on the per-request path.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use balancer::upstream::BoxError;
use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1 as client;
use hyper::server::conn::http1 as server;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use shared::sync::lock;
use tokio::net::TcpListener;

type Sender = client::SendRequest<Incoming>;

/// The library's connect bound (the floor opens one connection per keep-alive slot).
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// The idle upstream connections, most recently used last.
#[derive(Default)]
struct Idle(Mutex<Vec<Sender>>);

impl Idle {
    fn pop(&self) -> Option<Sender> {
        let mut stack = lock(&self.0);
        while let Some(sender) = stack.pop() {
            if !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    fn push(self: Arc<Self>, mut sender: Sender) {
        if sender.is_ready() {
            lock(&self.0).push(sender);
            return;
        }
        tokio::spawn(async move {
            if sender.ready().await.is_ok() {
                lock(&self.0).push(sender);
            }
        });
    }
}

/// The upstream's body, handing its connection back once it ended.
struct Relay {
    inner: Incoming,
    lease: Option<(Sender, Arc<Idle>)>,
}

impl Body for Relay {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        if frame.is_none() || this.inner.is_end_stream() {
            if let Some((sender, idle)) = this.lease.take() {
                idle.push(sender);
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

async fn connect(upstream: SocketAddr) -> Result<Sender, BoxError> {
    let stream = balancer::upstream::connect::connect(upstream, CONNECT_TIMEOUT).await?;
    let (sender, conn) = client::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

async fn proxy(
    req: Request<Incoming>,
    idle: Arc<Idle>,
    upstream: SocketAddr,
) -> Result<Response<Relay>, BoxError> {
    let mut sender = match idle.pop() {
        Some(sender) => sender,
        None => connect(upstream).await?,
    };
    let (parts, body) = sender.send_request(req).await?.into_parts();
    let lease = Some((sender, idle));
    Ok(Response::from_parts(parts, Relay { inner: body, lease }))
}

async fn serve(listener: TcpListener, upstream: SocketAddr) {
    let idle = Arc::new(Idle::default());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let idle = idle.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| proxy(req, idle.clone(), upstream));
            let _ = server::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn addr(arg: Option<String>, what: &str) -> Result<SocketAddr, String> {
    let text = arg
        .ok_or_else(|| format!("usage: hyper_floor LISTEN_ADDR UPSTREAM_ADDR ({what} missing)"))?;
    text.parse().map_err(|e| format!("{what} {text:?}: {e}"))
}

fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let listen = addr(args.next(), "LISTEN_ADDR")?;
    let upstream = addr(args.next(), "UPSTREAM_ADDR")?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = TcpListener::bind(listen).await?;
            tokio::select! {
                _ = serve(listener, upstream) => {}
                _ = shared::signal::stop_signal() => {}
            }
            Ok::<(), BoxError>(())
        })
}
