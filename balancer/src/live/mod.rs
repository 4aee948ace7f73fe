//! The configuration in force: the running upstream groups and the route table every worker
//! reads, and how a new configuration replaces them without dropping a request.
//!
//! [`Groups::apply`] is the swap. A group whose name and settings did not change is kept as it
//! is (its health state, pooled connections, slow start, cursor and counters), so reloading a
//! file that only touched one route disturbs nothing else. A new or changed group is built and
//! started beside the old one, and given a bounded time for every backend to get its first probe
//! verdict, so it takes traffic already healthy instead of answering 503 while pending. Then the
//! new table is stored in one atomic swap: requests in flight keep the table they loaded and
//! finish on it; a group that left stops its discovery and probes, and its connections close
//! when its last request lets go of it. [`reload`] decides when (SIGHUP, `POST /config/reload`,
//! a changed file) and reports how it went.

pub mod reload;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::backends::group::{GroupSettings, Running, UpstreamGroup};
use crate::routes::table::{LiveRoutes, RouteTable, TableError};
use crate::routes::RouteSpec;
use crate::runtime::metrics::Metrics;

/// The longest a reload waits for the first probe verdicts of a new or changed group.
const SETTLE_CAP: Duration = Duration::from_secs(10);

/// A running group with the handle that stops its loops.
struct Held {
    group: Arc<UpstreamGroup>,
    running: Running,
}

/// The running groups and the live table; see the module doc.
pub struct Groups {
    held: HashMap<Arc<str>, Held>,
    routes: Arc<LiveRoutes>,
    metrics: Arc<Metrics>,
    workers: usize,
}

/// What a swap did to the groups, for the reload's log line.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub kept: Vec<Arc<str>>,
    pub started: Vec<Arc<str>>,
    pub stopped: Vec<Arc<str>>,
}

impl Groups {
    /// Starts `groups` (each resolved once before this returns) and the table of `routes`.
    pub async fn start(
        groups: &[(Arc<str>, GroupSettings)],
        routes: &[RouteSpec],
        metrics: Arc<Metrics>,
        workers: usize,
    ) -> Result<Groups, TableError> {
        let mut held = HashMap::new();
        let mut order = Vec::with_capacity(groups.len());
        for (name, settings) in groups {
            let group =
                UpstreamGroup::new(name.clone(), settings.clone(), metrics.clone(), workers);
            let running = group.start().await;
            order.push(group.clone());
            held.insert(name.clone(), Held { group, running });
        }
        let table = RouteTable::new(routes, &order, &metrics.routes)?;
        Ok(Groups {
            held,
            routes: Arc::new(ArcSwap::from_pointee(table)),
            metrics,
            workers,
        })
    }

    /// The table every worker reads.
    pub fn routes(&self) -> Arc<LiveRoutes> {
        self.routes.clone()
    }

    /// Replaces the configuration in force with `groups` and `routes`; see the module doc. On an
    /// error nothing changed.
    pub async fn apply(
        &mut self,
        groups: &[(Arc<str>, GroupSettings)],
        routes: &[RouteSpec],
    ) -> Result<Applied, TableError> {
        let mut applied = Applied::default();
        let mut order = Vec::with_capacity(groups.len());
        let mut fresh: Vec<(Arc<str>, Held)> = Vec::new();
        for (name, settings) in groups {
            match self.held.get(name) {
                Some(held) if held.group.settings() == settings => {
                    order.push(held.group.clone());
                    applied.kept.push(name.clone());
                }
                _ => {
                    let group = UpstreamGroup::new(
                        name.clone(),
                        settings.clone(),
                        self.metrics.clone(),
                        self.workers,
                    );
                    let running = group.start().await;
                    order.push(group.clone());
                    applied.started.push(name.clone());
                    fresh.push((name.clone(), Held { group, running }));
                }
            }
        }
        // A route's rate-limit table outlives the reload when its settings did not change.
        let mut routes = routes.to_vec();
        self.routes.load().keep_rate_limits(&mut routes);
        // Built before anything is stopped or swapped: a table error leaves all as it was (the
        // fresh groups' loops stop as they are dropped).
        let table = RouteTable::new(&routes, &order, &self.metrics.routes)?;
        settle(fresh.iter().map(|(_, h)| &h.group)).await;
        self.routes.store(Arc::new(table));
        let mut next: HashMap<Arc<str>, Held> = HashMap::with_capacity(groups.len());
        for (name, held) in fresh {
            if let Some(old) = self.held.remove(&name) {
                old.running.stop();
            }
            next.insert(name, held);
        }
        for name in &applied.kept {
            if let Some(held) = self.held.remove(name) {
                next.insert(name.clone(), held);
            }
        }
        for (name, gone) in self.held.drain() {
            gone.running.stop();
            applied.stopped.push(name);
        }
        self.held = next;
        Ok(applied)
    }
}

/// Waits until every backend of `groups` has had its first probe verdict (passing or failing),
/// for at most two health intervals plus a connect timeout of the slowest group, capped at
/// [`SETTLE_CAP`].
async fn settle<'a>(groups: impl Iterator<Item = &'a Arc<UpstreamGroup>> + Clone) {
    let bound = groups
        .clone()
        .map(|g| {
            let s = g.settings();
            s.probe.interval * 2 + s.probe.connect_timeout
        })
        .max()
        .unwrap_or_default()
        .min(SETTLE_CAP);
    let probed = |g: &Arc<UpstreamGroup>| {
        g.backends
            .snapshot()
            .iter()
            .all(|b| !b.health.is_pending() || b.health.last_error().is_some())
    };
    let wait = async {
        while !groups.clone().all(probed) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let _ = tokio::time::timeout(bound, wait).await;
}

#[cfg(test)]
mod tests;
