//! The tunable backend: answers every request with a status and after a delay that the test can
//! change while it runs (a slow replica, a replica answering 500 to everything, and back).
//! `/health` always answers 200 at once, so health checks keep it in the rotation and only the
//! balancer's view of its answers (in-flight counts, 5xx streaks) decides.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use super::{listen, local_addr, serve, TestBackend};

/// A [`TestBackend`] whose status and delay can be changed live. Responses carry `X-Backend`
/// (its address).
pub struct TunableBackend {
    pub backend: TestBackend,
    status: Arc<AtomicU16>,
    delay_ms: Arc<AtomicU64>,
}

impl TunableBackend {
    pub async fn start(status: u16, delay: Duration) -> TunableBackend {
        Self::start_on(0, status, delay).await
    }

    /// On a chosen loopback port (0: a free one), e.g. one a balancer already lists.
    pub async fn start_on(port: u16, status: u16, delay: Duration) -> TunableBackend {
        let listener = listen([127, 0, 0, 1], port).await;
        let me = HeaderValue::from_str(&local_addr(&listener).to_string())
            .unwrap_or(HeaderValue::from_static("?"));
        let status = Arc::new(AtomicU16::new(status));
        let delay_ms = Arc::new(AtomicU64::new(
            u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
        ));
        let (s, d) = (status.clone(), delay_ms.clone());
        let backend = serve(listener, move |stream, counter| {
            let (s, d, me) = (s.clone(), d.clone(), me.clone());
            async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let (s, d, me, counter) = (s.clone(), d.clone(), me.clone(), counter.clone());
                    async move {
                        let mut resp = Response::new(Full::new(Bytes::from_static(b"tunable\n")));
                        if req.uri().path() != "/health" {
                            counter.fetch_add(1, Ordering::SeqCst);
                            let ms = d.load(Ordering::SeqCst);
                            if ms > 0 {
                                tokio::time::sleep(Duration::from_millis(ms)).await;
                            }
                            *resp.status_mut() = StatusCode::from_u16(s.load(Ordering::SeqCst))
                                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                        }
                        resp.headers_mut().insert("x-backend", me);
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            }
        });
        TunableBackend {
            backend,
            status,
            delay_ms,
        }
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.backend.addr
    }

    pub fn hits(&self) -> usize {
        self.backend.hits()
    }

    pub fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    pub fn set_delay(&self, delay: Duration) {
        self.delay_ms.store(
            u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            Ordering::SeqCst,
        );
    }
}
