//! The visit counter in Redis.
//!
//! One shared auto-reconnecting multiplexed connection (`redis::aio::ConnectionManager`)
//! serves every request. The manager is created in the background so the app starts
//! (and serves `/` and `/about`) while Redis is down; until it exists, and whenever
//! Redis fails, counter operations return an error at once or within `REDIS_TIMEOUT`,
//! which the routes turn into 503. A background probe PINGs Redis a few times a second:
//! that keeps `redis_up` honest for metrics and, because a failed command makes the
//! manager reconnect, it heals the connection within a fraction of a second of Redis
//! coming back even when no visitor is asking.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::AsyncCommands;

use crate::metrics::Metrics;

/// How often the background probe checks Redis.
const PROBE_INTERVAL: Duration = Duration::from_millis(250);

/// Why a counter operation failed; every variant means "answer 503".
#[derive(Debug)]
pub enum CounterError {
    /// The first connection has not been established yet.
    NotConnected,
    /// Redis did not answer within REDIS_TIMEOUT.
    Timeout,
    /// Redis answered with an error or the connection broke.
    Redis(redis::RedisError),
}

impl std::fmt::Display for CounterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CounterError::NotConnected => f.write_str("not connected to Redis yet"),
            CounterError::Timeout => f.write_str("Redis did not answer in time"),
            CounterError::Redis(e) => write!(f, "Redis error: {e}"),
        }
    }
}

/// Shared handle to the counter; cheap to clone.
#[derive(Clone)]
pub struct Counter {
    inner: Arc<Inner>,
}

struct Inner {
    manager: OnceLock<ConnectionManager>,
    key: String,
    timeout: Duration,
    metrics: Metrics,
}

impl Counter {
    /// Starts connecting in the background and returns immediately.
    pub fn connect(
        client: redis::Client,
        key: String,
        timeout: Duration,
        metrics: Metrics,
    ) -> Self {
        let counter = Counter {
            inner: Arc::new(Inner {
                manager: OnceLock::new(),
                key,
                timeout,
                metrics,
            }),
        };
        let background = counter.clone();
        tokio::spawn(async move { background.keep_connected(client).await });
        counter
    }

    /// Creates the connection manager (retrying until Redis answers), then probes it forever.
    async fn keep_connected(self, client: redis::Client) {
        // No retries inside the manager: a reconnect attempt that loops with backoff would
        // make visitors wait on it. One attempt bounded by the timeout, and our probe
        // (or the next visitor) starts the next one.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(self.inner.timeout)
            .set_response_timeout(self.inner.timeout)
            .set_number_of_retries(0);
        let mut logged_down = false;
        loop {
            match tokio::time::timeout(
                self.inner.timeout * 2,
                ConnectionManager::new_with_config(client.clone(), config.clone()),
            )
            .await
            {
                Ok(Ok(manager)) => {
                    let _ = self.inner.manager.set(manager);
                    self.inner.metrics.set_redis_up(true);
                    tracing::info!("connected to Redis");
                    break;
                }
                Ok(Err(e)) if !logged_down => {
                    tracing::warn!(error = %e, "Redis unreachable; retrying in the background");
                    logged_down = true;
                }
                Err(_) if !logged_down => {
                    tracing::warn!("connecting to Redis timed out; retrying in the background");
                    logged_down = true;
                }
                _ => {}
            }
            self.inner.metrics.set_redis_up(false);
            tokio::time::sleep(PROBE_INTERVAL).await;
        }

        let mut was_up = true;
        let mut ticker = tokio::time::interval(PROBE_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let up = self.ping().await.is_ok();
            self.inner.metrics.set_redis_up(up);
            if up != was_up {
                if up {
                    tracing::info!("Redis is reachable again");
                } else {
                    tracing::warn!("Redis is unreachable");
                }
                was_up = up;
            }
        }
    }

    fn manager(&self) -> Result<ConnectionManager, CounterError> {
        self.inner
            .manager
            .get()
            .cloned()
            .ok_or(CounterError::NotConnected)
    }

    /// Runs one Redis operation bounded by REDIS_TIMEOUT, counting failures.
    async fn bounded<T, F>(&self, op: F) -> Result<T, CounterError>
    where
        F: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let result = match tokio::time::timeout(self.inner.timeout, op).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(CounterError::Redis(e)),
            Err(_) => Err(CounterError::Timeout),
        };
        if result.is_err() {
            self.inner.metrics.redis_error();
        }
        result
    }

    /// Adds one visit (exactly one INCR, never retried) and returns the new total.
    pub async fn increment(&self) -> Result<i64, CounterError> {
        let mut conn = self
            .manager()
            .inspect_err(|_| self.inner.metrics.redis_error())?;
        self.bounded(conn.incr(&self.inner.key, 1_i64)).await
    }

    /// Reads the total without changing it; a missing key counts as zero.
    pub async fn current(&self) -> Result<i64, CounterError> {
        let mut conn = self
            .manager()
            .inspect_err(|_| self.inner.metrics.redis_error())?;
        let value: Option<i64> = self.bounded(conn.get(&self.inner.key)).await?;
        Ok(value.unwrap_or(0))
    }

    /// Checks that Redis answers.
    pub async fn ping(&self) -> Result<(), CounterError> {
        let mut conn = self.manager()?;
        self.bounded(redis::cmd("PING").query_async::<String>(&mut conn))
            .await
            .map(|_| ())
    }
}
