//! The public listener: accept loop, the worker threads connections are dealt to, and
//! per-connection HTTP serving.
//!
//! HTTP/1.1, and HTTP/2 with prior knowledge, told apart by peeking at the client's first bytes
//! (`front::sniff`); `--header-read-timeout` for clients that are slow to start or trickle headers,
//! `--keep-alive-timeout` for idle keep-alive connections (`head_timeout`);
//! 431 for oversized headers (hyper answers it);
//! TCP_NODELAY on every accepted socket. Every connection is registered with the listener's
//! [`Drain`] so SIGTERM can let it finish.
//!
//! A listener is a [`Door`]: plain HTTP proxied, plain HTTP redirected to HTTPS
//! (`--redirect-http`), or TLS (`--tls-listen`: the handshake in [`crate::front::tls`], then HTTP/2 or
//! HTTP/1.1 as ALPN chose, on the same workers and the same drain).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderValue, STRICT_TRANSPORT_SECURITY};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::{service_fn, Service};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::front::acme_http::{self, Http01Tokens};
use crate::front::connection_limit::{self, ConnectionLimit, Permit};
use crate::front::head_timeout::{self, WaitClock};
use crate::front::redirect;
use crate::front::sniff::{sniff, Protocol};
use crate::front::tls::{self, Alpn, TlsDoor};
use crate::proxy::{ClientInfo, Proxy};
use crate::runtime::shutdown::{Drain, DrainWatch};

/// Largest request head (request line + headers) accepted; beyond it clients get 431.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// How long a draining HTTP/1.1 connection keeps serving before it is closed when idle: a request
/// arriving meanwhile is answered with `Connection: close`, so a client sending on it is never
/// raced by the close (`runtime::shutdown`).
const LAME_DUCK: Duration = Duration::from_secs(1);

/// The connection settings of both protocols, built once.
pub struct Http {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
    header_read_timeout: Duration,
    /// `--keep-alive-timeout`; zero: every HTTP/1 connection closes after one response.
    keep_alive_timeout: Duration,
}

impl Http {
    pub fn new(header_read_timeout: Duration, keep_alive_timeout: Duration) -> Self {
        let mut http1 = http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            // Enforced per connection by `head_timeout` instead: hyper's own timer costs a boxed
            // sleep and a timer-wheel registration for every request.
            .header_read_timeout(None::<Duration>)
            // The hard limit. max_buf_size alone is not one: a head that arrives in one large
            // read is parsed before the buffer size is checked.
            .max_header_size(MAX_HEADER_BYTES)
            .max_buf_size(MAX_HEADER_BYTES)
            .keep_alive(!keep_alive_timeout.is_zero());
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(MAX_HEADER_BYTES).unwrap_or(u32::MAX))
            .max_concurrent_streams(256);
        Http {
            http1,
            http2,
            header_read_timeout,
            keep_alive_timeout,
        }
    }
}

/// What a listener does with its connections.
#[derive(Clone)]
pub enum Door {
    /// Plain HTTP, proxied (`--listen`).
    Plain,
    /// Plain HTTP answered with a redirect to this HTTPS port (`--listen` with `--redirect-http`).
    Redirect { tls_port: u16 },
    /// HTTPS, proxied (`--tls-listen`).
    Tls(Arc<TlsDoor>),
    /// Plain HTTP that first answers ACME HTTP-01 challenges in progress, then proxies or (with
    /// a TLS port) redirects as [`Door::Plain`] or [`Door::Redirect`] would.
    Http01 {
        tokens: Arc<dyn Http01Tokens>,
        redirect_to: Option<u16>,
    },
}

/// A connection the accepting thread hands to another worker, with its door and its place
/// under `--max-connections`.
type Handoff = (std::net::TcpStream, SocketAddr, Door, Permit);

/// The workers accepted connections are dealt to, in turn. Worker 0 is the accepting thread
/// itself; the others each run their own event loop on their own thread
/// ([`spawn_worker`]), the way NGINX runs worker processes: a connection and the upstream
/// connections its requests use stay on one thread, with no work stealing or cross-thread
/// wake-ups on the request path (`--workers 2` cost 20 to 70 % more CPU per request than
/// NGINX's two workers on tokio's work-stealing scheduler).
#[derive(Clone)]
pub struct Workers {
    local: Arc<Proxy>,
    others: Vec<mpsc::UnboundedSender<Handoff>>,
    next: usize,
}

impl Workers {
    pub fn new(local: Arc<Proxy>, others: Vec<mpsc::UnboundedSender<Handoff>>) -> Self {
        Workers {
            local,
            others,
            next: 0,
        }
    }
}

/// Starts worker `index` on its own thread with its own single-threaded event loop. It serves the
/// connections sent to the returned channel until the channel closes (the listener stopped), then
/// lets them finish for at most `shutdown_timeout`; the thread ends after that.
pub fn spawn_worker(
    index: usize,
    proxy: Arc<Proxy>,
    http: Arc<Http>,
    shutdown_timeout: Duration,
) -> std::io::Result<(mpsc::UnboundedSender<Handoff>, std::thread::JoinHandle<()>)> {
    let (handoff, mut handed) = mpsc::unbounded_channel::<Handoff>();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let thread = std::thread::Builder::new()
        .name(format!("balancer-worker-{index}"))
        .spawn(move || {
            runtime.block_on(async move {
                let drain = Drain::new();
                while let Some((stream, peer, door, permit)) = handed.recv().await {
                    match TcpStream::from_std(stream) {
                        Ok(stream) => serve_connection(
                            stream,
                            (peer, permit),
                            door,
                            proxy.clone(),
                            http.clone(),
                            drain.watcher(),
                        ),
                        Err(e) => {
                            tracing::warn!(worker = index, %peer, error = %e, "cannot take over a connection")
                        }
                    }
                }
                finish(index, &drain, shutdown_timeout).await;
            });
            // Upgraded tunnels may still be running; do not wait for them.
            runtime.shutdown_background();
        })?;
    Ok((handoff, thread))
}

/// Lets a worker's open connections finish their requests, for at most `timeout`.
pub async fn finish(worker: usize, drain: &Drain, timeout: Duration) {
    let open = drain.connections();
    tracing::info!(
        worker,
        connections = open,
        ?timeout,
        "stopped accepting; draining"
    );
    // Upgraded tunnels (WebSocket) have left hyper and the drain: they run on until they end or
    // the timeout does.
    let drained = async {
        drain.drain().await;
        while crate::proxy::upgrade::open_tunnels() > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    match tokio::time::timeout(timeout, drained).await {
        Ok(()) => tracing::info!(worker, "drained"),
        Err(_) => tracing::warn!(
            worker,
            ?timeout,
            "shutdown timeout reached with requests still in flight; closing them"
        ),
    }
}

/// Accepts until `shutdown` resolves and deals the connections to `workers` (those beyond
/// `limit` are refused with a 503 and closed, and accepting goes on); returns without
/// waiting for the connections (worker 0's are drained through `drain`, the others' by their own
/// threads once `workers`, dropped here, closes their channels).
pub async fn serve(
    listener: TcpListener,
    mut workers: Workers,
    http: Arc<Http>,
    door: Door,
    drain: &Drain,
    limit: &ConnectionLimit,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let Some(permit) = limit.try_acquire() else {
            connection_limit::refuse(stream);
            continue;
        };
        let slot = workers.next % (workers.others.len() + 1);
        workers.next = workers.next.wrapping_add(1);
        if slot == 0 {
            serve_connection(
                stream,
                (peer, permit),
                door.clone(),
                workers.local.clone(),
                http.clone(),
                drain.watcher(),
            );
            continue;
        }
        // Leaving this thread's event loop: the socket must be deregistered from it first.
        let handed = stream
            .into_std()
            .map_err(|e| e.to_string())
            .and_then(|stream| {
                workers.others[slot - 1]
                    .send((stream, peer, door.clone(), permit))
                    .map_err(|_| "the worker has stopped".to_string())
            });
        if let Err(e) = handed {
            tracing::warn!(%peer, worker = slot, error = %e, "cannot hand a connection to its worker");
        }
    }
}

/// Serves one client connection on the current thread's event loop, as a task of its own; its
/// permit is given back when the connection ends.
fn serve_connection(
    stream: TcpStream,
    (peer, permit): (SocketAddr, Permit),
    door: Door,
    proxy: Arc<Proxy>,
    http: Arc<Http>,
    watch: DrainWatch,
) {
    tokio::spawn(async move {
        let _permit = permit;
        let result = match door {
            Door::Plain => {
                let client = Arc::new(ClientInfo::new(peer));
                let service = service_fn(move |req| proxy.clone().handle(req, client.clone()));
                serve_plain(stream, service, &http, watch).await
            }
            Door::Redirect { tls_port } => {
                let service = service_fn(move |req: http::Request<Incoming>| {
                    std::future::ready(Ok::<_, std::convert::Infallible>(redirect::respond(
                        &req, tls_port,
                    )))
                });
                serve_plain(stream, service, &http, watch).await
            }
            Door::Tls(door) => Box::pin(serve_tls(stream, peer, &door, proxy, &http, watch)).await,
            Door::Http01 {
                tokens,
                redirect_to,
            } => {
                let acme = (tokens, redirect_to);
                Box::pin(serve_http01(stream, peer, acme, proxy, &http, watch)).await
            }
        };
        if let Err(e) = result {
            tracing::debug!(%peer, error = %e, "client connection ended with an error");
        }
    });
}

/// What serves a client connection's requests: a hyper service that every listener, protocol
/// and worker can run (the proxy, with or without HSTS), written once.
pub trait ClientService:
    Service<
        http::Request<Incoming>,
        Response = http::Response<Self::Body>,
        Future: Send + 'static,
        Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    > + Send
    + 'static
{
    /// The response body.
    type Body: hyper::body::Body<Data: Send, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + Send
        + 'static;
}

impl<S, B> ClientService for S
where
    S: Service<http::Request<Incoming>, Response = http::Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body<Data: Send, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + Send
        + 'static,
{
    type Body = B;
}

/// Plain HTTP: HTTP/1 or HTTP/2 chosen by the first bytes (a client that sends none within
/// `--header-read-timeout` is closed), then `service`.
async fn serve_plain<S>(
    stream: TcpStream,
    service: S,
    http: &Http,
    watch: DrainWatch,
) -> Result<(), hyper::Error>
where
    S: ClientService,
{
    let Some(protocol) = sniff(&stream, http.header_read_timeout).await else {
        return Ok(());
    };
    // Boxed: the HTTP connection's state is allocated once the client has spoken, not carried
    // inline in every connection task from its accept.
    Box::pin(serve_http(
        TokioIo::new(stream),
        protocol,
        service,
        http,
        watch,
    ))
    .await
}

/// Plain HTTP that answers ACME HTTP-01 challenges in progress first ([`acme_http`]), then
/// redirects (with a TLS port) or proxies.
async fn serve_http01(
    stream: TcpStream,
    peer: SocketAddr,
    (tokens, redirect_to): (Arc<dyn Http01Tokens>, Option<u16>),
    proxy: Arc<Proxy>,
    http: &Http,
    watch: DrainWatch,
) -> Result<(), hyper::Error> {
    use http_body_util::Either;
    let client = Arc::new(ClientInfo::new(peer));
    let service = service_fn(move |req: http::Request<Incoming>| {
        let early = acme_http::answer(&req, tokens.as_ref())
            .or_else(|| redirect_to.map(|port| redirect::respond(&req, port)));
        let (proxy, client) = (proxy.clone(), client.clone());
        Box::pin(async move {
            if let Some(resp) = early {
                return Ok::<_, std::convert::Infallible>(resp.map(Either::Left));
            }
            let resp = proxy.handle(req, client).await?;
            Ok(resp.map(Either::Right))
        })
    });
    serve_plain(stream, service, http, watch).await
}

/// The TLS handshake (bounded by `--header-read-timeout`), then HTTP as ALPN chose, every
/// response carrying `Strict-Transport-Security` when `--hsts` is set.
async fn serve_tls(
    stream: TcpStream,
    peer: SocketAddr,
    door: &TlsDoor,
    proxy: Arc<Proxy>,
    http: &Http,
    watch: DrainWatch,
) -> Result<(), hyper::Error> {
    let Some((mut tls, alpn)) = door.accept(stream, http.header_read_timeout).await else {
        return Ok(());
    };
    if alpn == Alpn::Http1 && !tls::wait_for_request(&mut tls, http.header_read_timeout).await {
        return Ok(());
    }
    let protocol = match alpn {
        Alpn::H2 => Protocol::Http2,
        Alpn::Http1 => Protocol::Http1,
    };
    let client = Arc::new(ClientInfo::over_tls(peer));
    let hsts: Option<HeaderValue> = door.hsts.clone();
    // The request's future is boxed: hyper's HTTP/2 server spawns a task per stream holding it,
    // and moving the whole proxy future into and through that task cost more than the box
    // (callgrind, HTTP/2+TLS: 76.1k -> 73.1k instructions per request; HTTP/1.1+TLS +0.45 %;
    // docs/PERFORMANCE.md, "What limits HTTP/2+TLS").
    let service = service_fn(move |req| {
        let (proxy, client, hsts) = (proxy.clone(), client.clone(), hsts.clone());
        Box::pin(async move {
            let mut resp = proxy.handle(req, client).await?;
            if let Some(hsts) = hsts {
                resp.headers_mut().insert(STRICT_TRANSPORT_SECURITY, hsts);
            }
            Ok::<_, std::convert::Infallible>(resp)
        })
    });
    // Boxed: the HTTP connection's state is allocated when the first request arrives, not
    // carried inline in every connection task from its accept (heaptrack: the task was the
    // largest per-connection allocation of an idle TLS connection).
    Box::pin(serve_http(
        TokioIo::new(tls),
        protocol,
        service,
        http,
        watch,
    ))
    .await
}

/// Serves HTTP on `io` until the client leaves or draining has let the connection finish.
async fn serve_http<I, S>(
    io: TokioIo<I>,
    protocol: Protocol,
    service: S,
    http: &Http,
    watch: DrainWatch,
) -> Result<(), hyper::Error>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: ClientService,
{
    match protocol {
        Protocol::Http1 => {
            let clock = Arc::new(WaitClock::waiting());
            let service = head_timeout::Timed::new(service, clock.clone(), watch.closing());
            let io = TokioIo::new(head_timeout::Watched::new(io.into_inner(), clock.clone()));
            let conn = http.http1.serve_connection(io, service).with_upgrades();
            let served = watch.serve_lame_duck(conn, |c| c.graceful_shutdown(), LAME_DUCK);
            // Without keep-alive hyper closes after the response: nothing is ever idle.
            let idle = match http.keep_alive_timeout {
                zero if zero.is_zero() => http.header_read_timeout,
                idle => idle,
            };
            match clock
                .guard_idle(served, http.header_read_timeout, idle)
                .await
            {
                Some(served) => served,
                None => {
                    tracing::debug!(
                        "no request head within --header-read-timeout or idle past \
                         --keep-alive-timeout: closed"
                    );
                    Ok(())
                }
            }
        }
        Protocol::Http2 => {
            let conn = http.http2.serve_connection(io, service);
            watch.serve(conn, |c| c.graceful_shutdown()).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// HTTP/1 served on an in-memory pipe: what the client gets back for `head` (the first line
    /// of the answer), from a service that answers 200 to anything that reaches it. No socket: the
    /// listener's HTTP/1 rules are hyper's, configured by [`Http::new`], and checked here in memory.
    async fn answer_to(head: String) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (client, server) = tokio::io::duplex(256 * 1024);
        let service = service_fn(|_req| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(
                bytes::Bytes::from_static(b"ok"),
            )))
        });
        let http = Http::new(Duration::from_secs(5), Duration::from_secs(75));
        let drain = crate::runtime::shutdown::Drain::new();
        let served = serve_http(
            TokioIo::new(server),
            Protocol::Http1,
            service,
            &http,
            drain.watcher(),
        );
        let talk = async move {
            let mut client = client;
            client.write_all(head.as_bytes()).await.unwrap();
            let mut buf = vec![0u8; 1024];
            let n = client.read(&mut buf).await.unwrap();
            String::from_utf8_lossy(&buf[..n])
                .lines()
                .next()
                .unwrap_or("")
                .to_owned()
        };
        // The client hangs up after the first read, which ends the connection on both answers.
        let (line, _) = tokio::join!(talk, served);
        line
    }

    #[tokio::test]
    async fn a_head_over_the_limit_is_431_and_one_within_is_served() {
        let big = format!(
            "GET / HTTP/1.1\r\nHost: a.test\r\nX-Big: {}\r\n\r\n",
            "a".repeat(MAX_HEADER_BYTES + 1024)
        );
        assert_eq!(
            answer_to(big).await,
            "HTTP/1.1 431 Request Header Fields Too Large"
        );
        let small = "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n".to_owned();
        assert_eq!(answer_to(small).await, "HTTP/1.1 200 OK");
    }
}
