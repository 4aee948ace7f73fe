//! The access log's batching and its writer thread: where a formatted line waits, and how it
//! reaches stdout.
//!
//! Owns [`Settings`] and [`Counters`] (re-exported from `mod.rs`), each worker's `Slot` (its
//! batch buffer and cached clock), the bounded queue of full batches, the pool of spare buffers,
//! and the `Writer` thread. The model is NGINX's `access_log ... buffer=32k flush=1s`:
//! * A line is appended to its worker's slot; a slot that reaches [`Settings::batch_bytes`]
//!   (32 KiB) is shipped to the writer whole, so stdout sees a few large `write(2)` calls
//!   instead of one per request. The writer also collects every partly filled slot each
//!   [`Settings::flush_interval`] (1 s) and at stop.
//! * Shipping never blocks a worker: the queue holds [`Settings::queue_batches`] batches and a
//!   batch that finds it full is dropped, its lines counted in [`Counters::dropped`].
//! * Emptied buffers go back to a small pool, so shipping a batch allocates nothing.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use shared::sync::lock;

use super::format::{format_combined, format_json, AccessEntry, Format};
use super::time::Clock;

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

/// What the workers and the writer thread share.
pub(super) struct Shared {
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

/// One worker's batch buffer.
#[derive(Default)]
pub(super) struct Slot {
    state: Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    bytes: Vec<u8>,
    lines: u64,
    clock: Clock,
}

/// The writer thread's stop handle, held by `AccessLogGuard`.
pub(super) struct Stop {
    queue: SyncSender<Message>,
    thread: JoinHandle<()>,
}

impl Stop {
    /// Writes everything queued, then joins the writer thread.
    pub(super) fn stop(self) {
        // Blocks only while the writer drains a full queue.
        let _ = self.queue.send(Message::Stop);
        let _ = self.thread.join();
    }
}

/// Starts the writer thread on `out` with `format` lines; `format` is not `Off`.
pub(super) fn start<W: Write + Send + 'static>(
    format: Format,
    out: W,
    settings: Settings,
    counters: Arc<Counters>,
) -> io::Result<(Arc<Shared>, Stop)> {
    let settings = Settings {
        batch_bytes: settings.batch_bytes.max(1),
        queue_batches: settings.queue_batches.max(1),
        ..settings
    };
    let (queue, rx) = mpsc::sync_channel(settings.queue_batches);
    let shared = Arc::new(Shared {
        format,
        settings,
        counters,
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
    Ok((shared, Stop { queue, thread }))
}

impl Shared {
    /// Registers a worker's slot for the writer's periodic collection.
    pub(super) fn add_slot(&self, slot: Arc<Slot>) {
        lock(&self.slots).push(slot);
    }

    /// Appends one line to `slot`'s batch; never blocks on the writer.
    pub(super) fn log(&self, slot: &Slot, entry: &AccessEntry<'_>) {
        if self.closed.load(Ordering::Relaxed) {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let now = SystemTime::now();
        let mut state = lock(&slot.state);
        let SlotState {
            bytes,
            lines,
            clock,
        } = &mut *state;
        match self.format {
            Format::Json => format_json(bytes, entry, clock.iso8601(now)),
            _ => format_combined(bytes, entry, clock.clf(now)),
        }
        *lines += 1;
        if bytes.len() >= self.settings.batch_bytes {
            let full = std::mem::replace(bytes, self.spare());
            let count = std::mem::take(lines);
            drop(state);
            self.ship(full, count);
        }
    }

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
