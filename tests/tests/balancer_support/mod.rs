//! Purpose-built backends and helpers for the balancer tests.
//!
//! Each backend is a real server on a loopback port, written with tokio/hyper (or raw TCP where a
//! misbehaving peer is the point): one that echoes what it received, one that never answers, one
//! that breaks its response, and a WebSocket echo. They count the requests they see so tests can
//! prove what was (and was not) forwarded. Dropping a backend stops it.
//!
//! Also here, because the shared harness has no equivalent: starting the balancer inside a private
//! mount namespace with its own `/etc/hosts` (for late DNS resolution), and small raw-HTTP parsing
//! helpers.

#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub const T: Duration = Duration::from_secs(20);

/// A backend running in this test process; stops when dropped.
pub struct TestBackend {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl TestBackend {
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

async fn listen(ip: [u8; 4], port: u16) -> TcpListener {
    match TcpListener::bind(SocketAddr::from((ip, port))).await {
        Ok(l) => l,
        Err(e) => panic!("bind test backend on {ip:?}:{port}: {e}"),
    }
}

/// Echoes the request as JSON: method, uri, version, every header (in order) and the body length.
/// Answers `/health` with 200. `/slow?ms=N` waits N ms first. Responses carry hop-by-hop headers
/// the balancer must strip, plus `X-Backend` naming this backend.
pub async fn echo_backend() -> TestBackend {
    echo_backend_on([127, 0, 0, 1], 0).await
}

pub async fn echo_backend_on(ip: [u8; 4], port: u16) -> TestBackend {
    let listener = listen(ip, port).await;
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let counter = counter.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let counter = counter.clone();
                    async move { Ok::<_, Infallible>(echo(req, addr, &counter).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    TestBackend { addr, hits, task }
}

async fn echo(req: Request<Incoming>, me: SocketAddr, hits: &AtomicUsize) -> Response<Full<Bytes>> {
    if req.uri().path() == "/health" {
        return Response::new(Full::new(Bytes::from_static(b"ok")));
    }
    hits.fetch_add(1, Ordering::SeqCst);
    if req.uri().path() == "/slow" {
        let ms: u64 = req
            .uri()
            .query()
            .and_then(|q| q.strip_prefix("ms="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let (parts, body) = req.into_parts();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            let mut r = Response::new(Full::new(Bytes::from(format!("body error: {e}"))));
            *r.status_mut() = StatusCode::BAD_REQUEST;
            return r;
        }
    };
    let json = serde_json::json!({
        "method": parts.method.as_str(),
        "uri": parts.uri.to_string(),
        "version": format!("{:?}", parts.version),
        "headers": headers,
        "body_len": body.len(),
    });
    let mut resp = Response::new(Full::new(Bytes::from(json.to_string())));
    let h = resp.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    h.insert(
        "x-backend",
        HeaderValue::from_str(&me.to_string()).unwrap_or(HeaderValue::from_static("?")),
    );
    h.insert("connection", HeaderValue::from_static("x-hop-resp"));
    h.insert("x-hop-resp", HeaderValue::from_static("secret"));
    h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
    h.insert(
        "proxy-authenticate",
        HeaderValue::from_static("Basic realm=x"),
    );
    h.insert("upgrade", HeaderValue::from_static("h2c"));
    h.insert("x-end-to-end", HeaderValue::from_static("kept"));
    resp
}

/// Accepts connections and reads from them forever, never answering.
pub async fn hanging_backend() -> TestBackend {
    let listener = listen([127, 0, 0, 1], 0).await;
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let mut first = true;
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    // Health probes hang too, but only real requests count as hits.
                    if first && !buf[..n].starts_with(b"GET /health ") {
                        counter.fetch_add(1, Ordering::SeqCst);
                    }
                    first = false;
                }
                // Hold the socket open after EOF too, as a hung process would.
                std::future::pending::<()>().await;
            });
        }
    });
    TestBackend { addr, hits, task }
}

/// Reads each request head, then either closes at once (`partial_body == false`) or sends a
/// 200 head announcing 1000 bytes, 5 of them, and closes.
pub async fn breaking_backend(partial_body: bool) -> TestBackend {
    let listener = listen([127, 0, 0, 1], 0).await;
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
                        _ => return,
                    }
                }
                if got.starts_with(b"GET /health ") {
                    let _ = stream
                        .write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                        )
                        .await;
                    return;
                }
                counter.fetch_add(1, Ordering::SeqCst);
                if partial_body {
                    let _ = stream
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nhello")
                        .await;
                    let _ = stream.flush().await;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                drop(stream);
            });
        }
    });
    TestBackend { addr, hits, task }
}

/// A WebSocket server that echoes every message back.
pub async fn websocket_backend() -> TestBackend {
    use futures_util::{SinkExt, StreamExt};
    let listener = listen([127, 0, 0, 1], 0).await;
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let counter = counter.clone();
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                counter.fetch_add(1, Ordering::SeqCst);
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_close() {
                        break;
                    }
                    if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    TestBackend { addr, hits, task }
}

/// A port with nothing listening on it (bound, then released).
pub fn dead_port() -> u16 {
    e2e::free_port()
}

/// `/status` of a balancer's admin listener.
pub async fn status(admin_url: &str) -> serde_json::Value {
    match e2e::http::get(admin_url).await {
        Ok(r) if r.status == 200 => r.json(),
        Ok(r) => panic!("{admin_url}: status {}", r.status),
        Err(e) => panic!("{admin_url}: {e}"),
    }
}

pub fn backend_entry<'a>(status: &'a serde_json::Value, addr: &str) -> &'a serde_json::Value {
    status["backends"]
        .as_array()
        .and_then(|b| b.iter().find(|e| e["address"] == addr))
        .unwrap_or_else(|| panic!("backend {addr} not in status: {status}"))
}

/// A raw HTTP/1.1 response split into status, lower-cased headers and body.
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn parse(bytes: &[u8]) -> Option<RawResponse> {
        let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = std::str::from_utf8(&bytes[..end]).ok()?;
        let mut lines = head.split("\r\n");
        let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        Some(RawResponse {
            status,
            headers,
            body: bytes[end + 4..].to_vec(),
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// Headers the echo backend received, lower-cased name → values in order.
pub fn echoed(json: &serde_json::Value, name: &str) -> Vec<String> {
    json["headers"]
        .as_array()
        .map(|hs| {
            hs.iter()
                .filter(|h| h[0] == name)
                .filter_map(|h| h[1].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Variables that must not leak from the developer's shell into a balancer a test starts itself.
const SCRUBBED: &[&str] = &[
    "BALANCER_LISTEN",
    "BALANCER_UPSTREAMS",
    "BALANCER_ADMIN_LISTEN",
    "BALANCER_WORKERS",
    "BALANCER_MAX_BODY",
];

/// A balancer inside a private mount namespace whose `/etc/hosts` is `hosts` (bind-mounted, so the
/// test edits it in place) and whose resolver points at loopback port 53 where nothing listens, so
/// no lookup leaves the machine. The real `/etc/hosts` is never touched. `None` when the machine
/// cannot make mount namespaces (not root, no `unshare`).
pub struct NamespacedBalancer {
    pub process: e2e::Process,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    _dir: tempfile::TempDir,
    pub hosts: PathBuf,
}

impl NamespacedBalancer {
    pub async fn start(upstreams: &str, args: &[&str]) -> Option<NamespacedBalancer> {
        let dir = tempfile::tempdir().ok()?;
        let hosts = dir.path().join("hosts");
        let resolv = dir.path().join("resolv.conf");
        std::fs::write(&hosts, "127.0.0.1 localhost\n").ok()?;
        std::fs::write(
            &resolv,
            "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
        )
        .ok()?;
        let probe = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg("mount --bind \"$1\" /etc/hosts && mount --bind \"$2\" /etc/resolv.conf")
            .args(["sh"])
            .arg(&hosts)
            .arg(&resolv)
            .output();
        match probe {
            Ok(out) if out.status.success() => {}
            Ok(out) => {
                eprintln!(
                    "SKIP: cannot make a mount namespace here: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                return None;
            }
            Err(e) => {
                eprintln!("SKIP: unshare not available: {e}");
                return None;
            }
        }
        let addr = SocketAddr::from(([127, 0, 0, 1], e2e::free_port()));
        let admin = SocketAddr::from(([127, 0, 0, 1], e2e::free_port()));
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg("mount --bind \"$1\" /etc/hosts && mount --bind \"$2\" /etc/resolv.conf && shift 2 && exec \"$@\"")
            .arg("sh")
            .arg(&hosts)
            .arg(&resolv)
            .arg(e2e::bin_path("balancer"))
            .args(args);
        for var in SCRUBBED {
            cmd.env_remove(var);
        }
        cmd.env("BALANCER_LISTEN", addr.to_string())
            .env("BALANCER_ADMIN_LISTEN", admin.to_string())
            .env("BALANCER_UPSTREAMS", upstreams)
            .env("RUST_LOG", "info");
        let mut process = e2e::Process::spawn(format!("balancer-ns-{}", addr.port()), cmd)
            .unwrap_or_else(|e| panic!("spawn namespaced balancer: {e}"));
        let url = format!("http://{admin}/status");
        let up = e2e::wait_until_async(T, || async { e2e::http::get(&url).await.is_ok() }).await;
        process.assert_running();
        assert!(
            up,
            "namespaced balancer did not answer; log:\n{}",
            process.log()
        );
        Some(NamespacedBalancer {
            process,
            addr,
            admin,
            _dir: dir,
            hosts,
        })
    }

    /// Rewrites the namespace's /etc/hosts in place (same inode, so the bind mount sees it).
    pub fn set_hosts(&self, content: &str) {
        write_in_place(&self.hosts, content);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }
}

fn write_in_place(path: &Path, content: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    f.write_all(content.as_bytes())
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}
