//! The access log: one line per request, cheap enough to leave on.
//!
//! Owns the line formats (`combined`, NGINX's format plus request ID, backend and upstream time,
//! or one JSON object per line), the per-worker batch buffers, and the writer thread that turns
//! them into large writes on stdout.
//!
//! Why it is built this way (NGINX's `access_log ... buffer=32k flush=1s` is the model):
//! * The request path formats straight into its worker's batch buffer: no tracing machinery, no
//!   allocation per line, and the timestamp text is cached for the current second.
//! * A batch is handed to the writer thread when it reaches [`Settings::batch_bytes`] (32 KiB),
//!   and the writer collects every partly filled batch each [`Settings::flush_interval`] (1 s),
//!   so stdout sees a few large `write(2)` calls instead of one per request.
//! * Memory is bounded: at most [`Settings::queue_batches`] batches wait for the writer, plus one
//!   batch per worker. A request never waits for the writer: when the queue is full the batch is
//!   dropped and its lines counted in [`Counters::dropped`] (the metrics export it).
//! * [`AccessLogGuard::flush_and_stop`] (or dropping the guard) writes everything queued before it
//!   returns, so a clean stop (SIGTERM, SIGINT) loses no line.
//!
//! Nothing a client sends can forge a line: in `combined`, `"`, `\`, control bytes and bytes
//! outside ASCII are written as `\xHH` (NGINX's default escaping); in `json` the strings are JSON
//! escaped. Each field is cut at [`MAX_FIELD`] bytes so one line stays bounded. Times are UTC
//! (`+0000`): the request path does not consult a time zone database.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// `--access-log`: which line each request writes, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// No access log (the default, like Traefik and Caddy).
    Off,
    /// NGINX `combined`, then ` rid=... backend=... upstream_time=... request_time=...`.
    Combined,
    /// One JSON object per line, keys named after NGINX's variables.
    Json,
}

/// Longest part of any one field that is logged (user agent, referer, target, request ID).
pub const MAX_FIELD: usize = 4096;

/// One request as the access log sees it; every field is borrowed from the request path.
#[derive(Debug, Clone, Copy)]
pub struct AccessEntry<'a> {
    pub remote_addr: &'a str,
    pub method: &'a str,
    /// The request target as received (`/path?query`).
    pub target: &'a str,
    pub version: http::Version,
    pub status: u16,
    /// Response body size when known (Content-Length); `-` / `null` otherwise.
    pub body_bytes: Option<u64>,
    pub referer: Option<&'a [u8]>,
    pub user_agent: Option<&'a [u8]>,
    pub request_id: Option<&'a [u8]>,
    /// The backend that answered (`host:port`), if any did.
    pub backend: Option<&'a str>,
    /// Time the backend took to answer, if one was asked.
    pub upstream_time: Option<Duration>,
    /// Time from the request's arrival to the response head.
    pub request_time: Duration,
}

/// How the lines are batched and queued; [`Settings::default`] is NGINX's `buffer=32k flush=1s`.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// A worker's batch goes to the writer once it holds this many bytes.
    pub batch_bytes: usize,
    /// The writer collects partly filled batches this often.
    pub flush_interval: Duration,
    /// Full batches that may wait for the writer; beyond that, batches are dropped.
    pub queue_batches: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            batch_bytes: 32 * 1024,
            flush_interval: Duration::from_secs(1),
            queue_batches: 64,
        }
    }
}

/// Lines written and lines dropped since start, for the metrics.
#[derive(Debug, Default)]
pub struct Counters {
    written: AtomicU64,
    dropped: AtomicU64,
}

impl Counters {
    /// Lines handed to stdout.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Lines lost: the queue was full (overload), stdout failed, or the log had stopped.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The counters on the admin port's `/metrics`, read at each scrape:
/// `balancer_access_log_lines_written_total` and `balancer_access_log_lines_dropped_total`.
#[derive(Debug)]
pub struct LineMetrics(Arc<Counters>);

impl prometheus_client::collector::Collector for LineMetrics {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::counter::ConstCounter;
        let lines = [
            (
                "access_log_lines_written",
                "Access log lines handed to stdout",
                self.0.written(),
            ),
            (
                "access_log_lines_dropped",
                "Access log lines dropped (writer behind, stdout failing, or stopped)",
                self.0.dropped(),
            ),
        ];
        for (name, help, value) in lines {
            let counter = ConstCounter::new(value);
            let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        Ok(())
    }
}

/// The running access log; [`AccessLog::worker`] gives each worker thread its own handle.
#[derive(Clone)]
pub struct AccessLog {
    shared: Option<Arc<Shared>>,
    counters: Arc<Counters>,
}

/// One worker's handle: its own batch buffer, so workers never contend with each other.
pub struct WorkerLog {
    shared: Option<Arc<Shared>>,
    slot: Arc<Slot>,
}

/// Stops the writer thread after writing everything queued; dropping it does the same.
pub struct AccessLogGuard {
    stop: Option<(SyncSender<Message>, JoinHandle<()>)>,
}

struct Shared {
    format: Format,
    settings: Settings,
    counters: Arc<Counters>,
    queue: SyncSender<Message>,
    /// Every worker's slot, for the writer's periodic collection.
    slots: Mutex<Vec<Arc<Slot>>>,
    /// Emptied batch buffers, reused so that shipping a batch allocates nothing.
    spares: Mutex<Vec<Vec<u8>>>,
    /// Set once the writer has stopped: later lines are counted as dropped.
    closed: AtomicBool,
}

enum Message {
    Batch { bytes: Vec<u8>, lines: u64 },
    Stop,
}

#[derive(Default)]
struct Slot {
    state: Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    bytes: Vec<u8>,
    lines: u64,
    clock: Clock,
}

/// Locks without panicking: a poisoned lock only means a panic elsewhere; the bytes stay valid.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl AccessLog {
    /// Starts the access log on stdout with the default [`Settings`]; `Off` starts nothing.
    pub fn start(format: Format) -> io::Result<(AccessLog, AccessLogGuard)> {
        Self::start_with(format, io::stdout(), Settings::default())
    }

    /// Starts the writer thread on `out`; `Off` starts nothing and every handle is a no-op.
    pub fn start_with<W: Write + Send + 'static>(
        format: Format,
        out: W,
        settings: Settings,
    ) -> io::Result<(AccessLog, AccessLogGuard)> {
        let counters = Arc::new(Counters::default());
        if format == Format::Off {
            let off = AccessLog {
                shared: None,
                counters,
            };
            return Ok((off, AccessLogGuard { stop: None }));
        }
        let settings = Settings {
            batch_bytes: settings.batch_bytes.max(1),
            queue_batches: settings.queue_batches.max(1),
            ..settings
        };
        let (queue, rx) = mpsc::sync_channel(settings.queue_batches);
        let shared = Arc::new(Shared {
            format,
            settings,
            counters: counters.clone(),
            queue: queue.clone(),
            slots: Mutex::new(Vec::new()),
            spares: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        });
        let writer = Writer {
            shared: shared.clone(),
            out,
            reported: false,
        };
        let thread = std::thread::Builder::new()
            .name("balancer-access".into())
            .spawn(move || writer.run(&rx))?;
        let log = AccessLog {
            shared: Some(shared),
            counters,
        };
        Ok((
            log,
            AccessLogGuard {
                stop: Some((queue, thread)),
            },
        ))
    }

    /// A handle for one worker thread (each worker takes its own).
    pub fn worker(&self) -> WorkerLog {
        let slot = Arc::new(Slot::default());
        if let Some(shared) = &self.shared {
            lock(&shared.slots).push(slot.clone());
        }
        WorkerLog {
            shared: self.shared.clone(),
            slot,
        }
    }

    /// The written/dropped counters, for the metrics.
    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    /// The line counters as a Prometheus collector for the admin port.
    pub fn line_metrics(&self) -> LineMetrics {
        LineMetrics(self.counters.clone())
    }
}

impl WorkerLog {
    /// False with `--access-log off`: the caller can skip gathering the entry at all.
    pub fn enabled(&self) -> bool {
        self.shared.is_some()
    }

    /// Appends one line to this worker's batch; never blocks on the writer.
    pub fn log(&self, entry: &AccessEntry<'_>) {
        let Some(shared) = &self.shared else {
            return;
        };
        if shared.closed.load(Ordering::Relaxed) {
            shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let now = SystemTime::now();
        let mut state = lock(&self.slot.state);
        let SlotState {
            bytes,
            lines,
            clock,
        } = &mut *state;
        match shared.format {
            Format::Json => format_json(bytes, entry, clock.iso8601(now)),
            _ => format_combined(bytes, entry, clock.clf(now)),
        }
        *lines += 1;
        if bytes.len() >= shared.settings.batch_bytes {
            let full = std::mem::replace(bytes, shared.spare());
            let count = std::mem::take(lines);
            drop(state);
            shared.ship(full, count);
        }
    }
}

impl Shared {
    fn spare(&self) -> Vec<u8> {
        lock(&self.spares)
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.settings.batch_bytes + 1024))
    }

    fn recycle(&self, mut bytes: Vec<u8>) {
        bytes.clear();
        let mut spares = lock(&self.spares);
        if spares.len() < self.settings.queue_batches + 4 {
            spares.push(bytes);
        }
    }

    /// Queues a full batch for the writer, or drops it (counted) when the queue is full.
    fn ship(&self, bytes: Vec<u8>, lines: u64) {
        match self.queue.try_send(Message::Batch { bytes, lines }) {
            Ok(()) => {}
            Err(TrySendError::Full(message) | TrySendError::Disconnected(message)) => {
                if let Message::Batch { bytes, lines } = message {
                    self.counters.dropped.fetch_add(lines, Ordering::Relaxed);
                    self.recycle(bytes);
                }
            }
        }
    }
}

impl AccessLogGuard {
    /// Writes every line logged so far, then stops the writer thread.
    pub fn flush_and_stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some((queue, thread)) = self.stop.take() {
            // Blocks only while the writer drains a full queue.
            let _ = queue.send(Message::Stop);
            let _ = thread.join();
        }
    }
}

impl Drop for AccessLogGuard {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// The writer thread's state.
struct Writer<W> {
    shared: Arc<Shared>,
    out: W,
    /// Whether a write error was already reported on stderr (once is enough).
    reported: bool,
}

impl<W: Write> Writer<W> {
    fn run(mut self, rx: &Receiver<Message>) {
        let interval = self.shared.settings.flush_interval;
        let mut collected = Vec::new();
        let mut next_collect = Instant::now() + interval;
        loop {
            let now = Instant::now();
            if now >= next_collect {
                self.collect(&mut collected);
                next_collect = now + interval;
            }
            match rx.recv_timeout(next_collect.saturating_duration_since(now)) {
                Ok(Message::Batch { bytes, lines }) => self.write_batch(bytes, lines),
                Ok(Message::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
        self.shared.closed.store(true, Ordering::Relaxed);
        while let Ok(message) = rx.try_recv() {
            if let Message::Batch { bytes, lines } = message {
                self.write_batch(bytes, lines);
            }
        }
        self.collect(&mut collected);
    }

    fn write_batch(&mut self, bytes: Vec<u8>, lines: u64) {
        self.write(&bytes, lines);
        self.shared.recycle(bytes);
    }

    /// Gathers every worker's partly filled batch into one buffer and writes it at once.
    fn collect(&mut self, collected: &mut Vec<u8>) {
        let slots = lock(&self.shared.slots).clone();
        let mut lines = 0;
        for slot in &slots {
            let mut state = lock(&slot.state);
            collected.extend_from_slice(&state.bytes);
            state.bytes.clear();
            lines += std::mem::take(&mut state.lines);
        }
        if lines > 0 {
            self.write(collected, lines);
        }
        collected.clear();
    }

    fn write(&mut self, bytes: &[u8], lines: u64) {
        let counters = &self.shared.counters;
        match self.out.write_all(bytes).and_then(|()| self.out.flush()) {
            Ok(()) => counters.written.fetch_add(lines, Ordering::Relaxed),
            Err(e) => {
                if !self.reported {
                    self.reported = true;
                    eprintln!("balancer: access log: cannot write to stdout, dropping lines: {e}");
                }
                counters.dropped.fetch_add(lines, Ordering::Relaxed)
            }
        };
    }
}

// ---- formats ---------------------------------------------------------------------------------

/// `$remote_addr - - [$time_local] "$request" $status $body_bytes_sent "$http_referer"
/// "$http_user_agent" rid=... backend=... upstream_time=... request_time=...`
fn format_combined(out: &mut Vec<u8>, e: &AccessEntry<'_>, time: &[u8]) {
    push_clf(out, e.remote_addr.as_bytes());
    out.extend_from_slice(b" - - [");
    out.extend_from_slice(time);
    out.extend_from_slice(b"] \"");
    push_clf(out, e.method.as_bytes());
    out.push(b' ');
    push_clf(out, e.target.as_bytes());
    out.push(b' ');
    out.extend_from_slice(version_str(e.version).as_bytes());
    out.extend_from_slice(b"\" ");
    push_u64(out, u64::from(e.status));
    out.push(b' ');
    push_or_dash(out, e.body_bytes, push_u64);
    out.extend_from_slice(b" \"");
    push_or_dash(out, e.referer, push_clf);
    out.extend_from_slice(b"\" \"");
    push_or_dash(out, e.user_agent, push_clf);
    out.extend_from_slice(b"\" rid=");
    push_or_dash(out, e.request_id, push_token);
    out.extend_from_slice(b" backend=");
    push_or_dash(out, e.backend.map(str::as_bytes), push_token);
    out.extend_from_slice(b" upstream_time=");
    push_or_dash(out, e.upstream_time, push_seconds);
    out.extend_from_slice(b" request_time=");
    push_seconds(out, e.request_time);
    out.push(b'\n');
}

/// One JSON object; strings JSON-escaped, unknown values `null`.
fn format_json(out: &mut Vec<u8>, e: &AccessEntry<'_>, time: &[u8]) {
    out.extend_from_slice(b"{\"time_iso8601\":\"");
    out.extend_from_slice(time);
    out.extend_from_slice(b"\",\"remote_addr\":");
    push_json_str(out, e.remote_addr.as_bytes());
    out.extend_from_slice(b",\"request_method\":");
    push_json_str(out, e.method.as_bytes());
    out.extend_from_slice(b",\"request_uri\":");
    push_json_str(out, e.target.as_bytes());
    out.extend_from_slice(b",\"server_protocol\":\"");
    out.extend_from_slice(version_str(e.version).as_bytes());
    out.extend_from_slice(b"\",\"status\":");
    push_u64(out, u64::from(e.status));
    out.extend_from_slice(b",\"body_bytes_sent\":");
    push_or_null(out, e.body_bytes, push_u64);
    out.extend_from_slice(b",\"http_referer\":");
    push_or_null(out, e.referer, push_json_str);
    out.extend_from_slice(b",\"http_user_agent\":");
    push_or_null(out, e.user_agent, push_json_str);
    out.extend_from_slice(b",\"request_id\":");
    push_or_null(out, e.request_id, push_json_str);
    out.extend_from_slice(b",\"backend\":");
    push_or_null(out, e.backend.map(str::as_bytes), push_json_str);
    out.extend_from_slice(b",\"upstream_response_time\":");
    push_or_null(out, e.upstream_time, push_seconds);
    out.extend_from_slice(b",\"request_time\":");
    push_seconds(out, e.request_time);
    out.extend_from_slice(b"}\n");
}

fn version_str(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

fn push_or_dash<T>(out: &mut Vec<u8>, value: Option<T>, push: fn(&mut Vec<u8>, T)) {
    match value {
        Some(v) => push(out, v),
        None => out.push(b'-'),
    }
}

fn push_or_null<T>(out: &mut Vec<u8>, value: Option<T>, push: fn(&mut Vec<u8>, T)) {
    match value {
        Some(v) => push(out, v),
        None => out.extend_from_slice(b"null"),
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn push_hex_escape(out: &mut Vec<u8>, prefix: &[u8], b: u8) {
    out.extend_from_slice(prefix);
    out.push(HEX[usize::from(b >> 4)]);
    out.push(HEX[usize::from(b & 0xf)]);
}

/// NGINX's default escaping: `"`, `\`, control bytes and non-ASCII bytes become `\xHH`.
fn push_clf(out: &mut Vec<u8>, raw: &[u8]) {
    let raw = &raw[..raw.len().min(MAX_FIELD)];
    let mut start = 0;
    for (i, &b) in raw.iter().enumerate() {
        if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            out.extend_from_slice(&raw[start..i]);
            push_hex_escape(out, b"\\x", b);
            start = i + 1;
        }
    }
    out.extend_from_slice(&raw[start..]);
}

/// A `key=value` value: [`push_clf`], and spaces too, so the value ends at the next space.
fn push_token(out: &mut Vec<u8>, raw: &[u8]) {
    let raw = &raw[..raw.len().min(MAX_FIELD)];
    let mut start = 0;
    for (i, &b) in raw.iter().enumerate() {
        if b == b' ' {
            push_clf(out, &raw[start..i]);
            push_hex_escape(out, b"\\x", b);
            start = i + 1;
        }
    }
    push_clf(out, &raw[start..]);
}

/// A JSON string. Valid UTF-8 passes through (escaped where JSON requires it); a byte that is
/// not valid UTF-8 is written as the code point of the same value (`\u00HH`), so the line stays
/// valid JSON whatever a header held.
fn push_json_str(out: &mut Vec<u8>, raw: &[u8]) {
    let raw = &raw[..raw.len().min(MAX_FIELD)];
    out.push(b'"');
    for chunk in raw.utf8_chunks() {
        let valid = chunk.valid().as_bytes();
        let mut start = 0;
        for (i, &b) in valid.iter().enumerate() {
            let escape: &[u8] = match b {
                b'"' => b"\\\"",
                b'\\' => b"\\\\",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                b'\t' => b"\\t",
                0..=0x1f | 0x7f => b"",
                _ => continue,
            };
            out.extend_from_slice(&valid[start..i]);
            if escape.is_empty() {
                push_hex_escape(out, b"\\u00", b);
            } else {
                out.extend_from_slice(escape);
            }
            start = i + 1;
        }
        out.extend_from_slice(&valid[start..]);
        for &b in chunk.invalid() {
            push_hex_escape(out, b"\\u00", b);
        }
    }
    out.push(b'"');
}

fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        // n % 10 < 10, so the cast cannot truncate.
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Seconds with millisecond resolution, as NGINX writes `$request_time`: `0.004`.
fn push_seconds(out: &mut Vec<u8>, d: Duration) {
    push_u64(out, d.as_secs());
    let ms = d.subsec_millis();
    // ms < 1000, so each digit is < 10.
    out.extend_from_slice(&[
        b'.',
        b'0' + (ms / 100) as u8,
        b'0' + (ms / 10 % 10) as u8,
        b'0' + (ms % 10) as u8,
    ]);
}

// ---- time ------------------------------------------------------------------------------------

/// The current second's timestamp text, formatted once per second per worker.
#[derive(Default)]
struct Clock {
    second: Option<u64>,
    text: Vec<u8>,
}

impl Clock {
    /// `02/Dec/2026:04:20:58 +0000` (NGINX `$time_local`, in UTC).
    fn clf(&mut self, now: SystemTime) -> &[u8] {
        self.cached(now, format_clf_time)
    }

    /// `2026-12-02T04:20:58+00:00` (NGINX `$time_iso8601`, in UTC).
    fn iso8601(&mut self, now: SystemTime) -> &[u8] {
        self.cached(now, format_iso8601_time)
    }

    fn cached(&mut self, now: SystemTime, render: fn(&mut Vec<u8>, u64)) -> &[u8] {
        let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if self.second != Some(second) {
            self.text.clear();
            render(&mut self.text, second);
            self.second = Some(second);
        }
        &self.text
    }
}

struct Civil {
    year: u64,
    month: usize,
    day: u64,
    hour: u64,
    minute: u64,
    second: u64,
}

/// Seconds since the epoch to a UTC calendar date (Howard Hinnant's `civil_from_days`).
fn civil(unix: u64) -> Civil {
    let days = unix / 86_400;
    let secs = unix % 86_400;
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    Civil {
        year: yoe + era * 400 + u64::from(month <= 2),
        // 1..=12, so the cast cannot truncate.
        month: month as usize,
        day,
        hour: secs / 3600,
        minute: secs / 60 % 60,
        second: secs % 60,
    }
}

fn push_2(out: &mut Vec<u8>, n: u64) {
    if n < 10 {
        out.push(b'0');
    }
    push_u64(out, n);
}

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

fn format_clf_time(out: &mut Vec<u8>, unix: u64) {
    let c = civil(unix);
    push_2(out, c.day);
    out.push(b'/');
    out.extend_from_slice(MONTHS[(c.month - 1) % 12]);
    out.push(b'/');
    push_u64(out, c.year);
    for part in [c.hour, c.minute, c.second] {
        out.push(b':');
        push_2(out, part);
    }
    out.extend_from_slice(b" +0000");
}

fn format_iso8601_time(out: &mut Vec<u8>, unix: u64) {
    let c = civil(unix);
    push_u64(out, c.year);
    out.push(b'-');
    push_2(out, c.month as u64);
    out.push(b'-');
    push_2(out, c.day);
    out.push(b'T');
    push_2(out, c.hour);
    out.push(b':');
    push_2(out, c.minute);
    out.push(b':');
    push_2(out, c.second);
    out.extend_from_slice(b"+00:00");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Condvar;

    /// Captures what the writer thread writes, one entry per `write` call; optionally holds
    /// every write until the gate opens (a stdout that cannot keep up).
    #[derive(Clone, Default)]
    struct Capture {
        state: Arc<Mutex<Captured>>,
        gate: Option<Arc<(Mutex<bool>, Condvar)>>,
    }

    #[derive(Default)]
    struct Captured {
        bytes: Vec<u8>,
        writes: Vec<usize>,
    }

    impl Capture {
        fn gated() -> Self {
            Capture {
                gate: Some(Arc::new((Mutex::new(false), Condvar::new()))),
                ..Capture::default()
            }
        }

        fn open_gate(&self) {
            if let Some(gate) = &self.gate {
                *lock(&gate.0) = true;
                gate.1.notify_all();
            }
        }

        fn text(&self) -> String {
            String::from_utf8(lock(&self.state).bytes.clone()).unwrap()
        }

        fn writes(&self) -> Vec<usize> {
            lock(&self.state).writes.clone()
        }
    }

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if let Some(gate) = &self.gate {
                let mut open = lock(&gate.0);
                while !*open {
                    open = gate.1.wait(open).unwrap();
                }
            }
            let mut state = lock(&self.state);
            state.bytes.extend_from_slice(buf);
            state.writes.push(buf.len());
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn entry() -> AccessEntry<'static> {
        AccessEntry {
            remote_addr: "192.0.2.7",
            method: "GET",
            target: "/static/style.css?v=1",
            version: http::Version::HTTP_11,
            status: 200,
            body_bytes: Some(1234),
            referer: Some(b"http://localhost:5000/"),
            user_agent: Some(b"oha/1.4.5"),
            request_id: None,
            backend: Some("172.18.0.3:5000"),
            upstream_time: Some(Duration::from_micros(4_321)),
            request_time: Duration::from_micros(5_678),
        }
    }

    /// A week from now: `flush_interval` never fires, so only size and stop write.
    fn no_timer(batch_bytes: usize, queue_batches: usize) -> Settings {
        Settings {
            batch_bytes,
            flush_interval: Duration::from_secs(7 * 86_400),
            queue_batches,
        }
    }

    fn combined(e: &AccessEntry<'_>) -> String {
        let mut out = Vec::new();
        format_combined(&mut out, e, b"02/Dec/2026:04:20:58 +0000");
        String::from_utf8(out).unwrap()
    }

    fn json(e: &AccessEntry<'_>) -> serde_json::Value {
        let mut out = Vec::new();
        format_json(&mut out, e, b"2026-12-02T04:20:58+00:00");
        let text = std::str::from_utf8(&out).unwrap();
        assert_eq!(text.matches('\n').count(), 1, "one line: {text:?}");
        assert!(text.ends_with('\n'));
        serde_json::from_str(text).unwrap()
    }

    /// NGINX's `log_format combined`, then the fields this balancer adds.
    fn nginx_combined() -> regex::Regex {
        regex::Regex::new(concat!(
            r#"^(?P<addr>\S+) - - \[(?P<time>\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4})\] "#,
            r#""(?P<request>[^"]*)" (?P<status>\d{3}) (?P<bytes>\d+|-) "#,
            r#""(?P<referer>[^"]*)" "(?P<ua>[^"]*)" "#,
            r#"rid=(?P<rid>\S+) backend=(?P<backend>\S+) "#,
            r#"upstream_time=(?P<up>\d+\.\d{3}|-) request_time=(?P<rt>\d+\.\d{3})\n$"#,
        ))
        .unwrap()
    }

    #[test]
    fn combined_matches_the_nginx_format() {
        let line = combined(&entry());
        assert_eq!(
            line,
            "192.0.2.7 - - [02/Dec/2026:04:20:58 +0000] \"GET /static/style.css?v=1 HTTP/1.1\" \
             200 1234 \"http://localhost:5000/\" \"oha/1.4.5\" rid=- backend=172.18.0.3:5000 \
             upstream_time=0.004 request_time=0.005\n"
        );
        let caps = nginx_combined().captures(&line).unwrap();
        assert_eq!(&caps["request"], "GET /static/style.css?v=1 HTTP/1.1");
        let local = AccessEntry {
            body_bytes: None,
            referer: None,
            user_agent: None,
            request_id: Some(b"0190a4c1-7d3e-7c2b-9f00-5b1e2d3c4a5f"),
            backend: None,
            upstream_time: None,
            status: 503,
            version: http::Version::HTTP_2,
            ..entry()
        };
        let line = combined(&local);
        let caps = nginx_combined().captures(&line).unwrap();
        assert_eq!(&caps["bytes"], "-");
        assert_eq!(&caps["ua"], "-");
        assert_eq!(&caps["rid"], "0190a4c1-7d3e-7c2b-9f00-5b1e2d3c4a5f");
        assert_eq!(&caps["backend"], "-");
        assert_eq!(&caps["up"], "-");
        assert_eq!(&caps["request"], "GET /static/style.css?v=1 HTTP/2.0");
    }

    #[test]
    fn json_parses_with_every_field() {
        let v = json(&entry());
        assert_eq!(v["time_iso8601"], "2026-12-02T04:20:58+00:00");
        assert_eq!(v["remote_addr"], "192.0.2.7");
        assert_eq!(v["request_method"], "GET");
        assert_eq!(v["request_uri"], "/static/style.css?v=1");
        assert_eq!(v["server_protocol"], "HTTP/1.1");
        assert_eq!(v["status"], 200);
        assert_eq!(v["body_bytes_sent"], 1234);
        assert_eq!(v["http_referer"], "http://localhost:5000/");
        assert_eq!(v["http_user_agent"], "oha/1.4.5");
        assert!(v["request_id"].is_null());
        assert_eq!(v["backend"], "172.18.0.3:5000");
        assert_eq!(v["upstream_response_time"], 0.004);
        assert_eq!(v["request_time"], 0.005);
        let local = json(&AccessEntry {
            backend: None,
            upstream_time: None,
            body_bytes: None,
            ..entry()
        });
        assert!(local["backend"].is_null() && local["upstream_response_time"].is_null());
        assert!(local["body_bytes_sent"].is_null());
    }

    /// Quotes, backslashes, CR/LF and other control or non-ASCII bytes in a header or the path
    /// cannot end a field, start a new line, or break the JSON.
    #[test]
    fn hostile_bytes_cannot_forge_lines() {
        let ua: &[u8] =
            b"evil\" 200 \"x\r\n127.0.0.1 - - [forged] \\ \x1b[31m \x7f caf\xc3\xa9 \xff";
        let target = "/a\"b\\c";
        let e = AccessEntry {
            user_agent: Some(ua),
            referer: Some(b"\n"),
            request_id: Some(b"id with spaces\""),
            target,
            ..entry()
        };
        let line = combined(&e);
        assert_eq!(line.matches('\n').count(), 1, "{line:?}");
        let caps = nginx_combined().captures(&line).unwrap();
        assert_eq!(
            &caps["ua"],
            r"evil\x22 200 \x22x\x0D\x0A127.0.0.1 - - [forged] \x5C \x1B[31m \x7F caf\xC3\xA9 \xFF"
        );
        assert_eq!(&caps["referer"], r"\x0A");
        assert_eq!(&caps["rid"], r"id\x20with\x20spaces\x22");
        assert_eq!(&caps["request"], r"GET /a\x22b\x5Cc HTTP/1.1");

        let v = json(&e);
        let mut expected_ua = String::from_utf8_lossy(&ua[..ua.len() - 1]).into_owned();
        expected_ua.push('\u{ff}');
        assert_eq!(v["http_user_agent"], expected_ua.as_str());
        assert_eq!(v["http_referer"], "\n");
        assert_eq!(v["request_uri"], target);
    }

    #[test]
    fn fields_are_cut_so_a_line_stays_bounded() {
        let long = vec![b'a'; 3 * MAX_FIELD];
        let line = combined(&AccessEntry {
            user_agent: Some(&long),
            ..entry()
        });
        let caps = nginx_combined().captures(&line).unwrap();
        assert_eq!(caps["ua"].len(), MAX_FIELD);
    }

    #[test]
    fn timestamps_match_date_u() {
        let clf = |unix| {
            let mut out = Vec::new();
            format_clf_time(&mut out, unix);
            String::from_utf8(out).unwrap()
        };
        let iso = |unix| {
            let mut out = Vec::new();
            format_iso8601_time(&mut out, unix);
            String::from_utf8(out).unwrap()
        };
        // Expected values from `date -u -d @N`.
        assert_eq!(clf(0), "01/Jan/1970:00:00:00 +0000");
        assert_eq!(clf(951_782_400), "29/Feb/2000:00:00:00 +0000");
        assert_eq!(clf(1_798_171_200), "25/Dec/2026:04:00:00 +0000");
        assert_eq!(clf(1_796_268_058), "03/Dec/2026:03:20:58 +0000");
        assert_eq!(iso(1_796_268_058), "2026-12-03T03:20:58+00:00");
        assert_eq!(iso(951_782_400), "2000-02-29T00:00:00+00:00");
    }

    #[test]
    fn the_second_is_formatted_once() {
        let mut clock = Clock::default();
        let t = UNIX_EPOCH + Duration::from_secs(1_796_268_058);
        assert_eq!(clock.clf(t), b"03/Dec/2026:03:20:58 +0000");
        clock.text[0] = b'X'; // a second read within the same second returns the cache
        assert_eq!(clock.clf(t + Duration::from_millis(999))[0], b'X');
        assert_eq!(
            clock.clf(t + Duration::from_secs(1)),
            b"03/Dec/2026:03:20:59 +0000"
        );
    }

    #[test]
    fn off_starts_nothing_and_logs_nothing() {
        let out = Capture::default();
        let (log, guard) = AccessLog::start_with(Format::Off, out.clone(), no_timer(1, 1)).unwrap();
        let worker = log.worker();
        assert!(!worker.enabled());
        worker.log(&entry());
        guard.flush_and_stop();
        assert_eq!(out.text(), "");
        assert_eq!((log.counters().written(), log.counters().dropped()), (0, 0));
    }

    /// Several workers, a batch size none of them reaches and no timer: only the stop writes,
    /// and it writes every line.
    #[test]
    fn flush_at_stop_loses_nothing() {
        let out = Capture::default();
        let (log, guard) =
            AccessLog::start_with(Format::Json, out.clone(), no_timer(1 << 30, 4)).unwrap();
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let worker = log.worker();
                std::thread::spawn(move || (0..500).for_each(|_| worker.log(&entry())))
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(out.text(), "", "nothing written before the stop");
        guard.flush_and_stop();
        let text = out.text();
        assert_eq!(text.lines().count(), 1500);
        for line in text.lines() {
            serde_json::from_str::<serde_json::Value>(line).unwrap();
        }
        assert_eq!(
            out.writes().len(),
            1,
            "the stop writes all workers' lines at once"
        );
        assert_eq!(
            (log.counters().written(), log.counters().dropped()),
            (1500, 0)
        );
    }

    #[test]
    fn stdout_sees_large_writes() {
        const BATCH: usize = 32 * 1024;
        let out = Capture::default();
        let (log, guard) =
            AccessLog::start_with(Format::Combined, out.clone(), no_timer(BATCH, 1024)).unwrap();
        let worker = log.worker();
        (0..20_000).for_each(|_| worker.log(&entry()));
        guard.flush_and_stop();
        let writes = out.writes();
        let total: usize = writes.iter().sum();
        assert_eq!(out.text().lines().count(), 20_000);
        assert!(
            writes[..writes.len() - 1].iter().all(|&n| n >= BATCH),
            "{writes:?}"
        );
        assert!(
            writes.len() <= total / BATCH + 1,
            "{} writes for {total} bytes",
            writes.len()
        );
        assert_eq!(log.counters().written(), 20_000);
    }

    /// A stdout that does not move: the queue fills, later batches are dropped and counted,
    /// and logging never waits. Once stdout moves again everything queued is written.
    #[test]
    fn overload_drops_and_counts_instead_of_blocking() {
        let out = Capture::gated();
        // One line per batch, two batches queued at most.
        let (log, guard) =
            AccessLog::start_with(Format::Combined, out.clone(), no_timer(1, 2)).unwrap();
        let worker = log.worker();
        (0..100).for_each(|_| worker.log(&entry()));
        let counters = log.counters();
        // At most one batch is in the writer's hands and two in the queue.
        assert!(counters.dropped() >= 97, "dropped {}", counters.dropped());
        out.open_gate();
        guard.flush_and_stop();
        let written = out.text().lines().count() as u64;
        assert!((2..=3).contains(&written), "written {written}");
        assert_eq!(counters.written(), written);
        assert_eq!(counters.written() + counters.dropped(), 100);
        for line in out.text().lines() {
            assert!(nginx_combined().is_match(&format!("{line}\n")));
        }
    }

    #[test]
    fn lines_after_the_stop_are_counted_as_dropped() {
        let out = Capture::default();
        let (log, guard) =
            AccessLog::start_with(Format::Combined, out.clone(), no_timer(1 << 20, 1)).unwrap();
        let worker = log.worker();
        worker.log(&entry());
        guard.flush_and_stop();
        worker.log(&entry());
        assert_eq!((log.counters().written(), log.counters().dropped()), (1, 1));
    }

    /// A quiet worker's partly filled batch is written within the flush interval.
    #[test]
    fn the_timer_flushes_a_quiet_worker() {
        let out = Capture::default();
        let settings = Settings {
            flush_interval: Duration::from_millis(20),
            ..Settings::default()
        };
        let (log, guard) = AccessLog::start_with(Format::Combined, out.clone(), settings).unwrap();
        log.worker().log(&entry());
        let deadline = Instant::now() + Duration::from_secs(10);
        while out.text().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(out.text().lines().count(), 1);
        drop(guard);
        assert_eq!(log.counters().written(), 1);
    }
}
