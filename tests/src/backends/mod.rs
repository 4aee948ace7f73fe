//! Purpose-built backends: real servers on loopback ports, each written for one behaviour a test needs
//! from the far side of the balancer (echo what arrived, record it, never answer, break the response,
//! speak WebSocket, answer a chosen status after a chosen delay, decide as a forward-auth service, write a stray
//! response after each answer, break the framing of an answer, hold a server-sent event stream open and send each
//! event when the test says, say which replica answered over HTTP and WebSocket). Each counts the requests it sees,
//! so a test can prove what was (and was not) forwarded; health probes (`/health`) are not counted. Dropping a
//! backend stops it.

mod auth;
mod bulk;
mod echo;
mod framing;
mod misbehaving;
mod recording;
mod replica;
mod sse;
mod stray;
mod tunable;
mod websocket;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub use auth::{AuthBackend, AuthReply, Decide};
pub use bulk::bulk_backend;
pub use echo::{echo_backend, echo_backend_on, echoed};
pub use framing::framing_backend;
pub use misbehaving::{breaking_backend, HungBackend};
pub use recording::{RecordingBackend, Seen};
pub use replica::named_replica;
pub use sse::{SseBackend, SseStream};
pub use stray::{
    h2_frame, raw_h2_backend, stray_h2_backend, stray_http1_backend, H2Reply, STRAY_BODY,
    STRAY_DELAY,
};
pub use tunable::TunableBackend;
pub use websocket::websocket_backend;

/// A backend running in this test process; stops when dropped.
pub struct TestBackend {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl TestBackend {
    /// Requests seen (health probes excluded).
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds `ip:port` (port 0: a free one); panics when it cannot.
pub async fn listen(ip: [u8; 4], port: u16) -> TcpListener {
    match TcpListener::bind(SocketAddr::from((ip, port))).await {
        Ok(l) => l,
        Err(e) => panic!("bind test backend on {ip:?}:{port}: {e}"),
    }
}

/// The address a listener is bound to; panics when it has none.
pub fn local_addr(listener: &TcpListener) -> SocketAddr {
    match listener.local_addr() {
        Ok(a) => a,
        Err(e) => panic!("listener has no local address: {e}"),
    }
}

/// Accepts on `listener` until aborted, running `handle` on each connection in its own task.
pub fn accept_loop<F, Fut>(listener: TcpListener, handle: F) -> JoinHandle<()>
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(handle(stream));
        }
    })
}

/// A [`TestBackend`] on `listener` whose connections `handle` serves, given the hit counter.
pub fn serve<F, Fut>(listener: TcpListener, handle: F) -> TestBackend
where
    F: Fn(TcpStream, Arc<AtomicUsize>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let addr = local_addr(&listener);
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let task = accept_loop(listener, move |stream| handle(stream, counter.clone()));
    TestBackend { addr, hits, task }
}
