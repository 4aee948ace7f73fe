//! Containment of stray bytes from a backend over pooled HTTP/1.1 (issue 29, part 1).
//!
//! Nothing in HTTP/1.1 ties a response to its request but the order on the connection, so a
//! backend that writes bytes nobody asked for (bytes while the connection is idle in the pool,
//! bytes past the end of a complete response, a second status line, a body after a `HEAD`) would
//! hand them to whichever client's request goes out next on that connection. hyper's client
//! connection already refuses such bytes once it is idle ("received unexpected message"): the
//! connection ends and is never reused. What it cannot tell is a stray that arrives just after the
//! next request was written: that one is read as the next request's response. Only not reusing
//! the offender's connections bounds that, so one detection puts the backend in *quarantine*:
//!
//! - [`Stray::record`] counts the detection (`balancer_upstream_stray_bytes_total{backend}`) and
//!   says whether to warn (entering quarantine; with quarantine off, at most once a minute) and
//!   whether to eject (a detection while quarantined or within one period after it: the backend
//!   keeps doing it; ejected through the `--max-5xx` path, so the half cap applies);
//! - for `--stray-quarantine` (default 60 s) the pool keeps none of that backend's connections:
//!   one request per connection, so a late stray can only reach a connection being closed;
//! - then reuse resumes.
//!
//! On the benign path this costs one relaxed load per released connection (`quarantined_until`
//! is 0 until the first detection) and one per response for the ejection request.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use prometheus_client::metrics::counter::Counter;

/// With quarantine off, how often a backend that keeps sending stray bytes is warned about.
const WARN_EVERY_MS: u64 = 60_000;

/// One backend's stray-byte detections and quarantine, shared by every worker's connections.
#[derive(Default)]
pub struct Stray {
    /// `balancer_upstream_stray_bytes_total{backend}` (unregistered in unit tests).
    counter: Counter,
    /// Connections are not reused until this many ms since start (0: never quarantined).
    quarantined_until: AtomicU64,
    /// When the last warning was logged (ms since start; 0: never).
    warned_at: AtomicU64,
    /// Set by a repeated offence, taken by the group that can eject the backend.
    eject: AtomicBool,
}

/// What one detection calls for, besides closing the connection and counting it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// Log the one warning naming the backend.
    pub warn: bool,
    /// The backend keeps doing it: eject it (the group decides, under the half cap).
    pub eject: bool,
}

impl Stray {
    /// A backend's state, counting into `counter`.
    pub fn counted(counter: Counter) -> Self {
        Stray {
            counter,
            ..Stray::default()
        }
    }

    /// Records one detection at `now_ms` with a quarantine of `quarantine_ms` (0: off).
    pub fn record(&self, now_ms: u64, quarantine_ms: u64) -> Verdict {
        self.counter.inc();
        let now_ms = now_ms.max(1);
        if quarantine_ms == 0 {
            let last = self.warned_at.load(Ordering::Relaxed);
            let warn = last == 0 || now_ms.saturating_sub(last) >= WARN_EVERY_MS;
            if warn {
                self.warned_at.store(now_ms, Ordering::Relaxed);
            }
            return Verdict { warn, eject: false };
        }
        let until = now_ms.saturating_add(quarantine_ms);
        let previous = self.quarantined_until.swap(until, Ordering::Relaxed);
        let quarantined = now_ms < previous;
        // Again within one period after a quarantine ended: reuse did not cure it.
        let repeat = previous != 0 && now_ms < previous.saturating_add(quarantine_ms);
        if repeat {
            self.eject.store(true, Ordering::Relaxed);
        }
        if !quarantined {
            self.warned_at.store(now_ms, Ordering::Relaxed);
        }
        Verdict {
            warn: !quarantined,
            eject: repeat,
        }
    }

    /// Whether the backend's connections may not be reused at `now_ms`. Reads the clock only
    /// after a backend was quarantined once: `now_ms` is called lazily.
    #[inline]
    pub fn is_quarantined(&self, now_ms: impl FnOnce() -> u64) -> bool {
        let until = self.quarantined_until.load(Ordering::Relaxed);
        until != 0 && now_ms() < until
    }

    /// When the current (or last) quarantine ends, ms since start; 0 if never quarantined.
    pub fn quarantined_until(&self) -> u64 {
        self.quarantined_until.load(Ordering::Relaxed)
    }

    /// Detections so far.
    pub fn total(&self) -> u64 {
        self.counter.get()
    }

    /// Whether a repeated offence asked for an ejection since the last call (cheap when not).
    #[inline]
    pub fn take_ejection(&self) -> bool {
        self.eject.load(Ordering::Relaxed) && self.eject.swap(false, Ordering::Relaxed)
    }
}

/// Whether hyper ended a client connection because the backend sent bytes it did not ask for:
/// bytes while idle, or left over past the end of a complete response. hyper has no predicate
/// for it; the unit test in [`super::http1`] pins the message to the behaviour.
pub fn is_stray_error(e: &hyper::Error) -> bool {
    e.to_string().contains("unexpected message")
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: u64 = 60_000;

    #[test]
    fn the_first_detection_warns_and_quarantines_for_the_period() {
        let s = Stray::default();
        assert!(!s.is_quarantined(|| 1_000), "never quarantined");
        let v = s.record(1_000, Q);
        assert_eq!(
            v,
            Verdict {
                warn: true,
                eject: false
            }
        );
        assert_eq!(s.total(), 1);
        assert!(s.is_quarantined(|| 1_000));
        assert!(s.is_quarantined(|| 1_000 + Q - 1));
        assert!(!s.is_quarantined(|| 1_000 + Q), "reuse resumes");
        assert!(!s.take_ejection());
    }

    #[test]
    fn a_detection_while_quarantined_extends_it_quietly_and_asks_for_ejection() {
        let s = Stray::default();
        s.record(1_000, Q);
        let v = s.record(2_000, Q);
        assert_eq!(
            v,
            Verdict {
                warn: false,
                eject: true
            }
        );
        assert!(s.is_quarantined(|| 2_000 + Q - 1), "extended");
        assert!(s.take_ejection());
        assert!(!s.take_ejection(), "taken once");
        assert_eq!(s.total(), 2);
    }

    #[test]
    fn offending_again_soon_after_the_quarantine_ejects_and_much_later_starts_afresh() {
        let s = Stray::default();
        s.record(1_000, Q);
        // Quarantine over at 61 000; again at 100 000, within one period after it.
        let v = s.record(100_000, Q);
        assert_eq!(
            v,
            Verdict {
                warn: true,
                eject: true
            }
        );
        assert!(s.take_ejection());
        // Quarantine over at 160 000; the next one long after is a first offence again.
        let v = s.record(400_000, Q);
        assert_eq!(
            v,
            Verdict {
                warn: true,
                eject: false
            }
        );
        assert!(!s.take_ejection());
    }

    #[test]
    fn quarantine_off_counts_and_warns_at_most_once_a_minute() {
        let s = Stray::default();
        assert!(s.record(1_000, 0).warn);
        assert!(!s.record(2_000, 0).warn);
        assert!(!s.record(1_000 + WARN_EVERY_MS - 1, 0).warn);
        assert!(s.record(1_000 + WARN_EVERY_MS, 0).warn);
        assert!(!s.is_quarantined(|| 2_000), "never quarantined");
        assert!(!s.take_ejection(), "never ejected");
        assert_eq!(s.total(), 4);
    }

    #[test]
    fn the_counter_is_the_metric() {
        let c = Counter::default();
        let s = Stray::counted(c.clone());
        s.record(5, Q);
        assert_eq!(c.get(), 1);
    }
}
