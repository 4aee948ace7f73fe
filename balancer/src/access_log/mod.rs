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
//!
//! One file per concern, each importing only the ones below it:
//! * this file: the public handles ([`AccessLog`], [`WorkerLog`], [`AccessLogGuard`],
//!   [`LineMetrics`]) and the re-exports;
//! * `writer.rs`: [`Settings`], [`Counters`], the per-worker batches and the writer thread;
//! * `time.rs`: the cached per-second timestamp (CLF, ISO 8601) and the civil date;
//! * `format.rs`: [`Format`], [`AccessEntry`], [`MAX_FIELD`], the two line formats and their
//!   escaping.

use std::io::{self, Write};
use std::sync::Arc;

mod format;
mod time;
mod writer;

pub use format::{AccessEntry, Format, MAX_FIELD};
pub use writer::{Counters, Settings};

use writer::{Shared, Slot, Stop};

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
    stop: Option<Stop>,
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
        let (shared, stop) = writer::start(format, out, settings, counters.clone())?;
        let log = AccessLog {
            shared: Some(shared),
            counters,
        };
        Ok((log, AccessLogGuard { stop: Some(stop) }))
    }

    /// A handle for one worker thread (each worker takes its own).
    pub fn worker(&self) -> WorkerLog {
        let slot = Arc::new(Slot::default());
        if let Some(shared) = &self.shared {
            shared.add_slot(slot.clone());
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
        if let Some(shared) = &self.shared {
            shared.log(&self.slot, entry);
        }
    }
}

impl AccessLogGuard {
    /// Writes every line logged so far, then stops the writer thread.
    pub fn flush_and_stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop.stop();
        }
    }
}

impl Drop for AccessLogGuard {
    fn drop(&mut self) {
        self.stop_now();
    }
}

#[cfg(test)]
mod tests {
    use super::format::fixtures::{entry, nginx_combined};
    use super::*;
    use shared::sync::lock;
    use std::sync::{Condvar, Mutex};
    use std::time::{Duration, Instant};

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

    /// A week from now: `flush_interval` never fires, so only size and stop write.
    fn no_timer(batch_bytes: usize, queue_batches: usize) -> Settings {
        Settings {
            batch_bytes,
            flush_interval: Duration::from_secs(7 * 86_400),
            queue_batches,
        }
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
