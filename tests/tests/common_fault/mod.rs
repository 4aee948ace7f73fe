//! Shared pieces of the fault (`fault_*`) and hostile-input (`hostile_*`) suites.
//!
//! The harness in `tests/src` starts the real processes; this module adds what only these suites need:
//! a bounded load generator that records every request's outcome, small purpose-built backends (one that
//! records what reaches it, one that accepts and never answers), a TCP relay, a reader for the balancer's
//! `/status`, and a network-namespace fixture for cutting a replica's link. Each test binary uses a subset,
//! hence the `dead_code` allowance.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Redis key the app counts visits under (its default `COUNTER_KEY`).
pub const COUNTER_KEY: &str = "visits";

/// Hard bound on any one test's body, so a wedged process fails the test instead of hanging the suite.
pub const TEST_BOUND: Duration = Duration::from_secs(150);

// ------------------------------------------------------------------------------------------------------------
// Load

/// What one request ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A response with this status.
    Status(u16),
    /// No response: the connection failed or broke.
    Error(String),
}

/// One request made by the load generator.
#[derive(Debug, Clone)]
pub struct Sample {
    pub started: Instant,
    pub finished: Instant,
    pub outcome: Outcome,
    /// `X-Served-By` of the response.
    pub served_by: Option<String>,
    /// The number in "visited N times", for `/count`.
    pub visits: Option<i64>,
}

impl Sample {
    pub fn ok(&self) -> bool {
        self.outcome == Outcome::Status(200)
    }

    pub fn latency(&self) -> Duration {
        self.finished - self.started
    }
}

/// A steady load: `workers` tasks, each with its own keep-alive client, sending GET `url` one after another
/// (with `pace` between requests) until stopped or `max_duration` passes.
pub struct Load {
    stop: Arc<AtomicBool>,
    in_flight: Arc<AtomicUsize>,
    last_served: Arc<Mutex<HashMap<String, Instant>>>,
    workers: Vec<JoinHandle<Vec<Sample>>>,
    pub started: Instant,
}

impl Load {
    pub fn start(url: &str, workers: usize, pace: Duration, max_duration: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let last_served = Arc::new(Mutex::new(HashMap::new()));
        let started = Instant::now();
        let deadline = started + max_duration;
        let workers = (0..workers)
            .map(|_| {
                let url = url.to_string();
                let stop = stop.clone();
                let in_flight = in_flight.clone();
                let last_served = last_served.clone();
                tokio::spawn(async move {
                    let client = e2e::http::Client::new();
                    let mut samples = Vec::new();
                    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                        in_flight.fetch_add(1, Ordering::SeqCst);
                        let began = Instant::now();
                        let result = client.get(&url).await;
                        let finished = Instant::now();
                        in_flight.fetch_sub(1, Ordering::SeqCst);
                        let sample = match result {
                            Ok(resp) => {
                                let served_by = resp.header("x-served-by").map(str::to_string);
                                if let Some(name) = &served_by {
                                    lock(&last_served).insert(name.clone(), finished);
                                }
                                Sample {
                                    started: began,
                                    finished,
                                    outcome: Outcome::Status(resp.status),
                                    served_by,
                                    visits: visits_in(&resp.text()),
                                }
                            }
                            Err(e) => Sample {
                                started: began,
                                finished,
                                outcome: Outcome::Error(e.to_string()),
                                served_by: None,
                                visits: None,
                            },
                        };
                        samples.push(sample);
                        if !pace.is_zero() {
                            tokio::time::sleep(pace).await;
                        }
                    }
                    samples
                })
            })
            .collect();
        Load {
            stop,
            in_flight,
            last_served,
            workers,
            started,
        }
    }

    /// Requests sent and not yet answered, right now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// When a response from replica `name` last arrived.
    pub fn last_served(&self, name: &str) -> Option<Instant> {
        lock(&self.last_served).get(name).copied()
    }

    /// Waits until replica `name` answers a request of this load after `since`; returns when, or None after
    /// `timeout`.
    pub async fn wait_served_by(
        &self,
        name: &str,
        since: Instant,
        timeout: Duration,
    ) -> Option<Instant> {
        let seen = e2e::wait_until(timeout, || {
            self.last_served(name).is_some_and(|t| t > since)
        })
        .await;
        if seen {
            self.last_served(name)
        } else {
            None
        }
    }

    /// Waits until every replica of `apps` has answered this load at least once (so a fault
    /// injected next hits a replica that is really in the rotation); panics naming one that has
    /// not within 10 s.
    pub async fn wait_until_each_serves(&self, apps: &[e2e::App]) {
        for app in apps {
            let warm = self
                .wait_served_by(app.name(), self.started, Duration::from_secs(10))
                .await;
            assert!(warm.is_some(), "{} served nothing under load", app.name());
        }
    }

    pub async fn stop(self) -> LoadReport {
        self.stop.store(true, Ordering::SeqCst);
        let mut samples = Vec::new();
        for worker in self.workers {
            match worker.await {
                Ok(s) => samples.extend(s),
                Err(e) => panic!("load worker panicked: {e}"),
            }
        }
        samples.sort_by_key(|s| s.started);
        LoadReport {
            samples,
            elapsed: self.started.elapsed(),
        }
    }
}

/// Everything a [`Load`] did.
pub struct LoadReport {
    pub samples: Vec<Sample>,
    pub elapsed: Duration,
}

impl LoadReport {
    pub fn sent(&self) -> usize {
        self.samples.len()
    }

    pub fn ok(&self) -> usize {
        self.samples.iter().filter(|s| s.ok()).count()
    }

    pub fn failed(&self) -> usize {
        self.sent() - self.ok()
    }

    pub fn failures(&self) -> Vec<&Sample> {
        self.samples.iter().filter(|s| !s.ok()).collect()
    }

    /// "status -> count" of every outcome, e.g. `{200: 5120, 502: 1}`, for messages.
    pub fn outcomes(&self) -> String {
        let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
        for s in &self.samples {
            let key = match &s.outcome {
                Outcome::Status(code) => code.to_string(),
                Outcome::Error(e) => format!("error({e})"),
            };
            *counts.entry(key).or_default() += 1;
        }
        format!("{counts:?}")
    }

    /// Per-replica share of the successful responses.
    pub fn served_by(&self) -> String {
        let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
        for s in self.samples.iter().filter(|s| s.ok()) {
            *counts
                .entry(s.served_by.as_deref().unwrap_or("?"))
                .or_default() += 1;
        }
        format!("{counts:?}")
    }
}

/// The `q` quantile (0..=1) of some latencies.
pub fn quantile(mut latencies: Vec<Duration>, q: f64) -> Duration {
    if latencies.is_empty() {
        return Duration::ZERO;
    }
    latencies.sort();
    let index = ((latencies.len() as f64 - 1.0) * q).round() as usize;
    latencies[index.min(latencies.len() - 1)]
}

/// The N of "visited N times" in a `/count` page.
pub fn visits_in(body: &str) -> Option<i64> {
    let at = body.find("visited")?;
    body[at + "visited".len()..]
        .split(|c: char| !c.is_ascii_digit())
        .find(|part| !part.is_empty())?
        .parse()
        .ok()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

// ------------------------------------------------------------------------------------------------------------
// The balancer's admin /status

/// The `backends` entry of `/status` for `addr`, found by any string field equal to the address.
pub async fn backend_status(
    balancer: &e2e::Balancer,
    addr: SocketAddr,
) -> Option<serde_json::Value> {
    let resp = e2e::http::get(&balancer.admin_url("/status")).await.ok()?;
    let status: serde_json::Value = serde_json::from_slice(&resp.body).ok()?;
    let wanted = addr.to_string();
    status
        .get("backends")?
        .as_array()?
        .iter()
        .find(|b| {
            b.as_object()
                .is_some_and(|o| o.values().any(|v| v.as_str() == Some(wanted.as_str())))
        })
        .cloned()
}

/// Whether `/status` says the backend at `addr` is healthy (field `healthy`), None when it cannot tell.
pub async fn backend_healthy(balancer: &e2e::Balancer, addr: SocketAddr) -> Option<bool> {
    backend_status(balancer, addr)
        .await?
        .get("healthy")?
        .as_bool()
}

/// Polls `/status` until the backend at `addr` has `healthy == want`; returns how long it took.
pub async fn wait_health(
    balancer: &e2e::Balancer,
    addr: SocketAddr,
    want: bool,
    timeout: Duration,
) -> Option<Duration> {
    let began = Instant::now();
    let reached = e2e::wait_until_async(timeout, || async {
        backend_healthy(balancer, addr).await == Some(want)
    })
    .await;
    reached.then(|| began.elapsed())
}

// ------------------------------------------------------------------------------------------------------------
// Purpose-built backends

/// What reached the [`RecordingBackend`].
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Whether the whole body arrived (false when the stream broke midway).
    pub complete: bool,
}

impl Seen {
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// An HTTP/1.1 backend that records every request except health probes (`/health`) and answers 200 with
/// `X-Served-By: recorder`, so a test can prove what was, and was not, forwarded.
pub struct RecordingBackend {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

impl RecordingBackend {
    pub async fn start() -> RecordingBackend {
        let listener = bind_loopback().await;
        let addr = local_addr(&listener);
        let seen: Arc<Mutex<Vec<Seen>>> = Default::default();
        let record = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let record = record.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let record = record.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let (body, complete) = match body.collect().await {
                                Ok(b) => (b.to_bytes().to_vec(), true),
                                Err(_) => (Vec::new(), false),
                            };
                            if parts.uri.path() != "/health" {
                                lock(&record).push(Seen {
                                    method: parts.method.to_string(),
                                    target: parts.uri.to_string(),
                                    headers: parts
                                        .headers
                                        .iter()
                                        .map(|(k, v)| {
                                            (
                                                k.to_string(),
                                                String::from_utf8_lossy(v.as_bytes()).into_owned(),
                                            )
                                        })
                                        .collect(),
                                    body,
                                    complete,
                                });
                            }
                            hyper::Response::builder()
                                .header("x-served-by", "recorder")
                                .body(Full::new(Bytes::from_static(b"recorded\n")))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        RecordingBackend { addr, seen, task }
    }

    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.seen).clone()
    }

    pub fn count(&self) -> usize {
        lock(&self.seen).len()
    }
}

impl Drop for RecordingBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A backend that accepts connections and never answers: what a wedged replica looks like from outside.
pub struct HungBackend {
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl HungBackend {
    pub async fn start() -> HungBackend {
        let listener = bind_loopback().await;
        let addr = local_addr(&listener);
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            let mut held: Vec<TcpStream> = Vec::new();
            loop {
                if let Ok((stream, _)) = listener.accept().await {
                    count.fetch_add(1, Ordering::SeqCst);
                    held.push(stream);
                }
            }
        });
        HungBackend {
            addr,
            accepted,
            task,
        }
    }

    /// Connections accepted so far (health probes included).
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for HungBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Relays TCP connections from `listen` to `target` (used to let a replica in a network namespace reach the
/// Redis that listens on loopback only).
pub struct Relay {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Relay {
    pub async fn start(listen: SocketAddr, target: SocketAddr) -> Relay {
        let listener = match TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => panic!("relay cannot bind {listen}: {e}"),
        };
        let addr = local_addr(&listener);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Relay { addr, task }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn bind_loopback() -> TcpListener {
    match TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => panic!("cannot bind a loopback port: {e}"),
    }
}

fn local_addr(listener: &TcpListener) -> SocketAddr {
    match listener.local_addr() {
        Ok(a) => a,
        Err(e) => panic!("listener has no local address: {e}"),
    }
}

/// A fresh keep-alive-free GET that must answer 200: "a normal request still works".
pub async fn assert_normal_request(url: &str, what: &str) {
    match e2e::http::get(url).await {
        Ok(resp) => assert_eq!(
            resp.status,
            200,
            "after {what}: a normal GET {url} answered {} ({})",
            resp.status,
            resp.text()
        ),
        Err(e) => panic!("after {what}: a normal GET {url} failed: {e}"),
    }
}

/// Resident memory of a process in KiB, from /proc.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Raises this process's soft open-file limit to at least `want` (up to the hard limit); returns the limit
/// now in force.
pub fn raise_nofile(want: libc::rlim_t) -> libc::rlim_t {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on our own process with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        if limit.rlim_cur < want {
            let new = libc::rlimit {
                rlim_cur: want.min(limit.rlim_max),
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &new) == 0 {
                limit = new;
            }
        }
    }
    limit.rlim_cur
}

// ------------------------------------------------------------------------------------------------------------
// Network namespaces

/// A network namespace joined to this host by a veth pair in a private /30: the host end is `host_ip`, the
/// namespace end `ns_ip`. Only this test's own processes live behind it, so traffic to `ns_ip` never leaves
/// the machine. Dropping it deletes the veth pair and the namespace.
pub struct Netns {
    pub name: String,
    pub host_if: String,
    pub ns_if: String,
    pub host_ip: Ipv4Addr,
    pub ns_ip: Ipv4Addr,
}

impl Netns {
    /// Creates the namespace and link, or says why it cannot (not root, no `ip`, no namespace support).
    pub fn create(tag: &str) -> Result<Netns, String> {
        let pid = std::process::id();
        let name = format!("e2e-{tag}-{pid}");
        // Interface names are limited to 15 bytes.
        let suffix = format!("{:x}", pid % 0xfffff);
        let host_if = format!("e2h{suffix}");
        let ns_if = format!("e2n{suffix}");
        let taken = run_ip(&["-4", "-o", "addr", "show"]).unwrap_or_default();
        let octet = (0..250u32)
            .map(|i| ((pid + i) % 250) as u8 + 1)
            .find(|o| !taken.contains(&format!("10.254.{o}.")))
            .ok_or("no free 10.254.N.0/30 subnet")?;
        let host_ip = Ipv4Addr::new(10, 254, octet, 1);
        let ns_ip = Ipv4Addr::new(10, 254, octet, 2);
        // A namespace left behind by a killed earlier run of the same pid would make `add` fail.
        let _ = run_ip(&["link", "del", &host_if]);
        let _ = run_ip(&["netns", "del", &name]);
        run_ip(&["netns", "add", &name])?;
        let ns = Netns {
            name,
            host_if,
            ns_if,
            host_ip,
            ns_ip,
        };
        let host_cidr = format!("{host_ip}/30");
        let ns_cidr = format!("{ns_ip}/30");
        run_ip(&[
            "link",
            "add",
            &ns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &ns.ns_if,
        ])?;
        run_ip(&["link", "set", &ns.ns_if, "netns", &ns.name])?;
        run_ip(&["addr", "add", &host_cidr, "dev", &ns.host_if])?;
        run_ip(&["link", "set", &ns.host_if, "up"])?;
        ns.exec_ip(&["addr", "add", &ns_cidr, "dev", &ns.ns_if])?;
        ns.exec_ip(&["link", "set", &ns.ns_if, "up"])?;
        ns.exec_ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Runs `ip ARGS` inside the namespace.
    pub fn exec_ip(&self, args: &[&str]) -> Result<String, String> {
        let mut full = vec!["netns", "exec", &self.name, "ip"];
        full.extend_from_slice(args);
        run_ip(&full)
    }

    /// Cuts the link: the namespace end goes down, so packets to `ns_ip` are dropped silently and connects
    /// time out (rather than being refused).
    pub fn cut(&self) -> Result<(), String> {
        self.exec_ip(&["link", "set", &self.ns_if, "down"])
            .map(|_| ())
    }

    pub fn restore(&self) -> Result<(), String> {
        self.exec_ip(&["link", "set", &self.ns_if, "up"])
            .map(|_| ())
    }

    /// A command that runs `program` inside the namespace (`ip netns exec` execs it, so the pid is the
    /// program's own).
    pub fn command(&self, program: &std::path::Path) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    pub fn ns_addr(&self, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(self.ns_ip), port)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting one end of a veth pair deletes both.
        let _ = run_ip(&["link", "del", &self.host_if]);
        if let Err(e) = run_ip(&["netns", "del", &self.name]) {
            eprintln!(
                "warning: could not delete network namespace {}: {e}",
                self.name
            );
        }
    }
}

fn run_ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A port that is free in the namespace (nothing runs there yet, so any unprivileged port is).
pub fn ns_port() -> u16 {
    e2e::free_port()
}

// ------------------------------------------------------------------------------------------------------------
// The stack under test

/// A real Redis, `replicas` app replicas named `replica-1..` and a balancer in front of them started with
/// `balancer_args` (e.g. short health intervals for the test).
pub struct Stack {
    pub redis: e2e::RedisServer,
    pub apps: Vec<e2e::App>,
    pub balancer: e2e::Balancer,
}

/// How long a replica keeps serving after SIGTERM before it closes idle connections: longer than the
/// balancer's health interval in these tests, so the balancer has taken it out by then (as in Compose).
pub const REPLICA_SHUTDOWN_DELAY: &str = "1s";

impl Stack {
    pub async fn start(replicas: usize, balancer_args: &[&str]) -> Stack {
        Stack::start_with_spares(replicas, &[], balancer_args).await
    }

    /// Like [`Stack::start`], with extra upstream addresses where nothing listens yet (ports a replica may
    /// later be started on, which the balancer already knows of).
    pub async fn start_with_spares(
        replicas: usize,
        spare_ports: &[u16],
        balancer_args: &[&str],
    ) -> Stack {
        let redis = e2e::RedisServer::start().await;
        let mut apps = Vec::new();
        for i in 1..=replicas {
            apps.push(
                e2e::App::builder(&redis)
                    .name(&format!("replica-{i}"))
                    .env("SHUTDOWN_DELAY", REPLICA_SHUTDOWN_DELAY)
                    .start()
                    .await,
            );
        }
        let upstreams: Vec<String> = apps
            .iter()
            .map(|a| a.addr().to_string())
            .chain(spare_ports.iter().map(|p| format!("127.0.0.1:{p}")))
            .collect();
        let balancer = balancer_for(&upstreams.join(","), balancer_args)
            .start()
            .await;
        let stack = Stack {
            redis,
            apps,
            balancer,
        };
        stack.wait_all_healthy(Duration::from_secs(10)).await;
        stack
    }

    /// Waits until a run of fresh requests through the balancer has reached every replica.
    pub async fn wait_all_healthy(&self, timeout: Duration) {
        let names: Vec<String> = self.apps.iter().map(|a| a.name().to_string()).collect();
        let url = self.balancer.url("/about");
        let seen: Arc<Mutex<std::collections::HashSet<String>>> = Default::default();
        let ok = e2e::wait_until_async(timeout, || {
            let url = url.clone();
            let seen = seen.clone();
            let names = names.clone();
            async move {
                if let Ok(resp) = e2e::http::get(&url).await {
                    if let Some(name) = resp.header("x-served-by") {
                        lock(&seen).insert(name.to_string());
                    }
                }
                let seen = lock(&seen);
                names.iter().all(|n| seen.contains(n))
            }
        })
        .await;
        assert!(
            ok,
            "not every replica served through the balancer within {timeout:?}"
        );
    }
}

/// A balancer builder for `upstreams` with every flag in `args` added.
pub fn balancer_for(upstreams: &str, args: &[&str]) -> e2e::BalancerBuilder {
    args.iter()
        .fold(e2e::Balancer::builder().upstreams(upstreams), |b, a| {
            b.arg(a)
        })
}

// ------------------------------------------------------------------------------------------------------------
// Raw hostile input

/// What a raw exchange produced.
#[derive(Debug)]
pub struct RawReply {
    pub bytes: Vec<u8>,
    pub elapsed: Duration,
    /// The server closed (or reset) the connection, rather than the wait running out.
    pub closed: bool,
}

impl RawReply {
    /// Status of the first response, None when the server closed without answering.
    pub fn status(&self) -> Option<u16> {
        e2e::raw::status_of(&self.bytes)
    }

    /// Status of every response in the stream (pipelined requests get several).
    pub fn statuses(&self) -> Vec<u16> {
        let text = String::from_utf8_lossy(&self.bytes);
        text.split("\r\n")
            .filter(|line| line.starts_with("HTTP/1."))
            .filter_map(|line| line.split_whitespace().nth(1)?.parse().ok())
            .collect()
    }

    /// "400", "closed" etc., for reports.
    pub fn verdict(&self) -> String {
        match self.statuses().as_slice() {
            [] if self.closed => "closed, no response".to_string(),
            [] => "no response, left open".to_string(),
            [one] => one.to_string(),
            many => format!("{many:?}"),
        }
    }

    /// A clear 4xx, or a close without a response.
    pub fn rejected(&self) -> bool {
        match self.status() {
            None => self.closed && self.bytes.is_empty(),
            Some(code) => (400..500).contains(&code),
        }
    }
}

/// Sends `bytes` on a fresh connection and reads until the server closes or `wait` passes.
pub async fn raw(addr: SocketAddr, bytes: &[u8], wait: Duration) -> RawReply {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let began = Instant::now();
    let mut stream = match tokio::time::timeout(wait, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => panic!("connect to {addr}: {e}"),
        Err(_) => panic!("connect to {addr}: timed out"),
    };
    // The server may close before reading everything (e.g. on a bad request line): not an error here.
    let _ = stream.write_all(bytes).await;
    let deadline = began + wait;
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let closed = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => break false,
        }
    };
    RawReply {
        bytes: out,
        elapsed: began.elapsed(),
        closed,
    }
}

/// Whether a process has logged a panic.
pub fn panicked(log: &str) -> bool {
    log.contains("panicked")
}
