//! Prometheus metrics, exposed on `/metrics` in the text exposition format.
//!
//! Owned here: requests by route and status, a latency histogram per route, Redis errors,
//! whether Redis is reachable, and requests in flight. Route labels come from a fixed set
//! (see `routes::Route::label`) so a scanner probing random paths cannot blow up the
//! number of series.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

fn latency_histogram() -> Histogram {
    // 100 µs .. ~3.3 s: static files sit at the bottom, Redis timeouts at the top.
    Histogram::new([
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        5.0,
    ])
}

/// Shared metric handles; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    redis_errors: Counter,
    redis_up: Gauge,
    in_flight: Gauge,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("app");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let redis_errors = Counter::default();
        let redis_up = Gauge::default();
        let in_flight = Gauge::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from request head to response head, by route",
            latency.clone(),
        );
        registry.register(
            "redis_errors",
            "Redis operations that failed or timed out",
            redis_errors.clone(),
        );
        registry.register(
            "redis_up",
            "1 when the last Redis probe succeeded",
            redis_up.clone(),
        );
        registry.register(
            "http_requests_in_flight",
            "Requests being handled right now",
            in_flight.clone(),
        );
        Metrics {
            inner: Arc::new(Inner {
                registry,
                requests,
                latency,
                redis_errors,
                redis_up,
                in_flight,
            }),
        }
    }

    /// Records one answered request.
    pub fn observe(&self, route: &'static str, status: u16, elapsed: Duration) {
        self.inner
            .requests
            .get_or_create(&RequestLabels { route, status })
            .inc();
        self.inner
            .latency
            .get_or_create(&RouteLabels { route })
            .observe(elapsed.as_secs_f64());
    }

    pub fn redis_error(&self) {
        self.inner.redis_errors.inc();
    }

    pub fn set_redis_up(&self, up: bool) {
        self.inner.redis_up.set(i64::from(up));
    }

    /// Counts a request as in flight until the guard drops (also on cancellation).
    pub fn in_flight(&self) -> InFlight<'_> {
        self.inner.in_flight.inc();
        InFlight(&self.inner.in_flight)
    }

    /// Renders the text exposition.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(4096);
        encode(&mut out, &self.inner.registry)?;
        Ok(out)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Decrements the in-flight gauge on drop.
pub struct InFlight<'a>(&'a Gauge);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}
