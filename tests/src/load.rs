//! A bounded load generator that records every request's outcome: the fault suites run it through a fault
//! and then check what each request ended with, who served it and the visit number it was shown.

use shared::sync::lock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::page::visits_in;

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
        Load::start_with(url, workers, pace, max_duration, true)
    }

    /// Like [`start`](Self::start), each request on a fresh connection (no keep-alive).
    pub fn start_without_keep_alive(
        url: &str,
        workers: usize,
        pace: Duration,
        max_duration: Duration,
    ) -> Load {
        Load::start_with(url, workers, pace, max_duration, false)
    }

    fn start_with(
        url: &str,
        workers: usize,
        pace: Duration,
        max_duration: Duration,
        keep_alive: bool,
    ) -> Load {
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
                    let client = crate::http::Client::new();
                    let mut samples = Vec::new();
                    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                        in_flight.fetch_add(1, Ordering::SeqCst);
                        let began = Instant::now();
                        let result = if keep_alive {
                            client.get(&url).await
                        } else {
                            crate::http::get(&url).await
                        };
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
                                    visits: visits_in(&resp.text()).ok(),
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
        let seen = crate::wait_until(timeout, || {
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
    pub async fn wait_until_each_serves(&self, apps: &[crate::App]) {
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

// Tagged load

/// One request of a [`tagged_load`]: when it finished, how long it took, its status (None: no
/// response) and the value of the header the load was asked to look at.
#[derive(Debug, Clone)]
pub struct Tagged {
    pub finished: Instant,
    pub latency: Duration,
    pub status: Option<u16>,
    pub tag: Option<String>,
}

/// How much a [`tagged_load`] sends.
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    /// This many requests in all.
    Requests(usize),
    /// Until this much time has passed.
    For(Duration),
}

/// `concurrency` keep-alive clients sending GET `url` back to back until `budget` is spent,
/// recording each response's `header` (e.g. `x-backend`, to see who served it). Bounded: it
/// never runs past [`crate::TEST_BOUND`].
pub async fn tagged_load(
    url: &str,
    concurrency: usize,
    header: &str,
    budget: Budget,
) -> Vec<Tagged> {
    let left = Arc::new(AtomicUsize::new(match budget {
        Budget::Requests(n) => n,
        Budget::For(_) => usize::MAX,
    }));
    let deadline = Instant::now()
        + match budget {
            Budget::Requests(_) => crate::TEST_BOUND,
            Budget::For(d) => d.min(crate::TEST_BOUND),
        };
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (url, header, left) = (url.to_string(), header.to_string(), left.clone());
            tokio::spawn(async move {
                let client = crate::http::Client::new();
                let mut out = Vec::new();
                while Instant::now() < deadline
                    && left
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok()
                {
                    let began = Instant::now();
                    let result = client.get(&url).await;
                    let finished = Instant::now();
                    let (status, tag) = match &result {
                        Ok(r) => (Some(r.status), r.header(&header).map(str::to_string)),
                        Err(_) => (None, None),
                    };
                    out.push(Tagged {
                        finished,
                        latency: finished - began,
                        status,
                        tag,
                    });
                }
                out
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        match task.await {
            Ok(samples) => all.extend(samples),
            Err(e) => panic!("load task panicked: {e}"),
        }
    }
    all.sort_by_key(|t| t.finished);
    all
}

/// How many of `samples` carry each tag.
pub fn count_tags(samples: &[Tagged]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for s in samples {
        *counts
            .entry(s.tag.clone().unwrap_or_else(|| "-".into()))
            .or_default() += 1;
    }
    counts
}
