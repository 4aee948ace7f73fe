//! Prometheus metrics owned by the balancer (prometheus-client registry).
//!
//! Per-backend series are looked up once, when a backend joins, and the handles are kept on the
//! backend itself, so the request path does no label hashing or allocation. Counters and gauges
//! are atomics; the latency histogram is not: each observation takes the write lock of that
//! backend's histogram (prometheus-client keeps sum, count and buckets behind one `RwLock`), a
//! lock shared by every worker serving the backend. It is held for a few additions, once per
//! proxied request; per-worker histograms would remove the sharing at the cost of merging them
//! at scrape time.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub backend: String,
    pub class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendLabels {
    pub backend: String,
}

#[derive(Clone, Copy)]
pub struct LatencyBuckets;

impl MetricConstructor<Histogram> for LatencyBuckets {
    fn new_metric(&self) -> Histogram {
        // 0.5 ms .. ~16 s: a static file is sub-millisecond, a hung backend hits the timeout.
        Histogram::new(exponential_buckets(0.0005, 2.0, 16))
    }
}

/// Status classes used as label values; `index` maps a status code to a slot.
pub const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

pub fn class_index(status: u16) -> usize {
    usize::from((status / 100).clamp(1, 5) - 1)
}

pub struct Metrics {
    pub registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<BackendLabels, Histogram, LatencyBuckets>,
    pub healthy: Family<BackendLabels, Gauge>,
    pub in_flight: Family<BackendLabels, Gauge>,
    pub retries: Counter,
    pub backends: Gauge,
    /// Backends waiting for their first passing health check (set at scrape time).
    pub pending: Gauge,
    /// Requests answered by the balancer itself with no backend involved (503, 405, 413, ...).
    pub local: [Counter; 5],
    /// Traffic management (`--rate-limit`, `--max-connections`, `--max-5xx`).
    pub traffic: TrafficMetrics,
    /// HTTP/2 streams to the backends refused and reset.
    pub upstream: UpstreamMetrics,
    /// Requests per route, routing misses, config reloads.
    pub routes: RouteMetrics,
    /// Responses a route's `compress` encoded, and their bytes.
    pub compression: CompressionMetrics,
}

/// The series of the traffic rules: limits in force and what they did.
#[derive(Default)]
pub struct TrafficMetrics {
    pub rate_limited: Counter,
    pub rate_limit_clients: Gauge,
    pub connections: Gauge,
    pub max_connections: Gauge,
    pub connections_refused: Counter,
    pub ejections: Counter,
}

impl TrafficMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "rate_limited",
            "Requests answered 429 by --rate-limit or a route's rate_limit, never forwarded",
            self.rate_limited.clone(),
        );
        registry.register(
            "rate_limit_clients",
            "Client addresses the rate limiter remembers (bounded by --rate-limit-clients)",
            self.rate_limit_clients.clone(),
        );
        registry.register(
            "connections",
            "Client connections open on the public listener",
            self.connections.clone(),
        );
        registry.register(
            "max_connections",
            "--max-connections: beyond it new connections are answered 503 and closed",
            self.max_connections.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections refused over --max-connections",
            self.connections_refused.clone(),
        );
        registry.register(
            "ejections",
            "Backends taken out by --max-5xx (consecutive 5xx responses)",
            self.ejections.clone(),
        );
    }
}

/// What happened to requests on their way to the backends (`--upstream-protocol h2c`).
#[derive(Clone, Default)]
pub struct UpstreamMetrics {
    pub streams_refused: Counter,
    pub streams_reset: Counter,
    /// HTTP/1.1 connections closed because a backend sent bytes no request asked for.
    pub stray_bytes: Family<BackendLabels, Counter>,
}

impl UpstreamMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "upstream_streams_refused",
            "HTTP/2 streams a backend refused unprocessed (REFUSED_STREAM, or above a GOAWAY's last stream id); bodiless requests are retried",
            self.streams_refused.clone(),
        );
        registry.register(
            "upstream_streams_reset",
            "HTTP/2 streams a backend reset after the request went out (answered 502, never retried)",
            self.streams_reset.clone(),
        );
        registry.register(
            "upstream_stray_bytes",
            "HTTP/1.1 connections closed because the backend sent bytes no request asked for (a stray response); each starts or extends --stray-quarantine",
            self.stray_bytes.clone(),
        );
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    pub result: &'static str,
}

/// The routes and the config file: requests per route (the `route` label comes from the file's
/// names, so the file bounds the cardinality), requests no route took, and the reloads.
#[derive(Default)]
pub struct RouteMetrics {
    pub requests: Family<RouteLabels, Counter>,
    pub not_found: Counter,
    pub reloads: Family<ReloadLabels, Counter>,
    pub last_reload_success: Gauge,
    /// Requests answered 429 by a route's own `rate_limit` (also in `rate_limited`).
    pub rate_limited: Family<RouteLabels, Counter>,
}

impl RouteMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "route_requests",
            "Requests that took each route (its name in the config file)",
            self.requests.clone(),
        );
        registry.register(
            "route_not_found",
            "Requests no route took, answered 404 by the balancer",
            self.not_found.clone(),
        );
        registry.register(
            "config_reloads",
            "Reloads of the config file, by result (ok, error)",
            self.reloads.clone(),
        );
        registry.register(
            "config_last_reload_success_timestamp_seconds",
            "When the config file in force was loaded (Unix time)",
            self.last_reload_success.clone(),
        );
        registry.register(
            "route_rate_limited",
            "Requests answered 429 by a route's rate_limit (also counted in rate_limited)",
            self.rate_limited.clone(),
        );
    }

    /// The counter of route `name`, looked up once when the table is built.
    pub fn for_route(&self, name: &str) -> Counter {
        self.requests
            .get_or_create(&RouteLabels {
                route: name.to_owned(),
            })
            .clone()
    }

    /// Route `name`'s count of 429s by its `rate_limit` (looked up on the refused request only).
    pub fn rate_limited_on(&self, name: &str) -> Counter {
        self.rate_limited
            .get_or_create(&RouteLabels {
                route: name.to_owned(),
            })
            .clone()
    }
}

/// Handles for one backend's series.
pub struct BackendMetrics {
    pub by_class: [Counter; 5],
    pub latency: Histogram,
    pub healthy: Gauge,
    pub in_flight: Gauge,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("balancer");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::new_with_constructor(LatencyBuckets);
        let healthy = Family::<BackendLabels, Gauge>::default();
        let in_flight = Family::<BackendLabels, Gauge>::default();
        let retries = Counter::default();
        let backends = Gauge::default();
        registry.register(
            "requests",
            "Requests answered, by backend (\"none\" when the balancer answered itself) and status class",
            requests.clone(),
        );
        registry.register(
            "upstream_latency_seconds",
            "Time from sending a request to a backend until its response head arrived",
            latency.clone(),
        );
        registry.register(
            "retries",
            "Requests retried on another backend because the first could not be connected",
            retries.clone(),
        );
        registry.register(
            "backend_healthy",
            "1 if the backend is in the rotation, 0 if health checks took it out or it is pending",
            healthy.clone(),
        );
        registry.register(
            "backend_in_flight",
            "Requests currently being served by the backend",
            in_flight.clone(),
        );
        registry.register("backends", "Backends currently known", backends.clone());
        let pending = Gauge::default();
        registry.register(
            "backends_pending",
            "Backends waiting for their first passing health check",
            pending.clone(),
        );
        let local = CLASSES.map(|class| {
            requests
                .get_or_create(&RequestLabels {
                    backend: "none".into(),
                    class,
                })
                .clone()
        });
        let traffic = TrafficMetrics::default();
        traffic.register(&mut registry);
        let upstream = UpstreamMetrics::default();
        upstream.register(&mut registry);
        let routes = RouteMetrics::default();
        routes.register(&mut registry);
        for result in ["ok", "error"] {
            drop(routes.reloads.get_or_create(&ReloadLabels { result }));
        }
        let compression = CompressionMetrics::new(&mut registry);
        Metrics {
            compression,
            routes,
            traffic,
            upstream,
            registry,
            requests,
            latency,
            healthy,
            in_flight,
            retries,
            backends,
            pending,
            local,
        }
    }

    pub fn for_backend(&self, backend: &str) -> BackendMetrics {
        let labels = BackendLabels {
            backend: backend.to_owned(),
        };
        BackendMetrics {
            by_class: CLASSES.map(|class| {
                self.requests
                    .get_or_create(&RequestLabels {
                        backend: backend.to_owned(),
                        class,
                    })
                    .clone()
            }),
            latency: self.latency.get_or_create(&labels).clone(),
            healthy: self.healthy.get_or_create(&labels).clone(),
            in_flight: self.in_flight.get_or_create(&labels).clone(),
        }
    }

    /// Drops the gauges of a backend that left; its counters stay so totals never go backwards.
    pub fn forget_backend(&self, backend: &str) {
        let labels = BackendLabels {
            backend: backend.to_owned(),
        };
        self.healthy.remove(&labels);
        self.in_flight.remove(&labels);
    }

    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(8192);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EncodingLabels {
    pub encoding: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabels {
    pub direction: &'static str,
}

/// Response compression (`compress`), each response counted once, when its body ends: the
/// responses encoded by coding, and the bytes into and out of the encoders.
pub struct CompressionMetrics {
    /// By coding, in [`CompressionMetrics::ENCODINGS`]'s order.
    pub responses: [Counter; 3],
    pub bytes_in: Counter,
    pub bytes_out: Counter,
}

impl CompressionMetrics {
    /// The `encoding` label values (`policy::compress::Codec::ALL`'s order).
    pub const ENCODINGS: [&'static str; 3] = ["zstd", "br", "gzip"];

    fn new(registry: &mut Registry) -> Self {
        let responses = Family::<EncodingLabels, Counter>::default();
        let bytes = Family::<DirectionLabels, Counter>::default();
        registry.register(
            "compressed_responses",
            "Responses a route's compress encoded, by coding (counted when the body ends)",
            responses.clone(),
        );
        registry.register(
            "compression_bytes",
            "Bytes into (in: the backend's) and out of (out: the encoded) the response encoders",
            bytes.clone(),
        );
        let direction = |direction| bytes.get_or_create(&DirectionLabels { direction }).clone();
        CompressionMetrics {
            responses: Self::ENCODINGS.map(|encoding| {
                responses
                    .get_or_create(&EncodingLabels { encoding })
                    .clone()
            }),
            bytes_in: direction("in"),
            bytes_out: direction("out"),
        }
    }
}
