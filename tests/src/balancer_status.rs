//! Reading the balancer's admin `/status`: one backend's entry, its health, waiting for a health state.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::Balancer;

/// `/status` of a balancer's admin listener; fails the test unless it answers 200.
pub async fn status(admin_url: &str) -> serde_json::Value {
    match crate::http::get(admin_url).await {
        Ok(r) if r.status == 200 => r.json(),
        Ok(r) => panic!("{admin_url}: status {}", r.status),
        Err(e) => panic!("{admin_url}: {e}"),
    }
}

/// The `backends` entry of a `/status` document for `addr`; fails the test when there is none.
pub fn backend_entry<'a>(status: &'a serde_json::Value, addr: &str) -> &'a serde_json::Value {
    status["backends"]
        .as_array()
        .and_then(|b| b.iter().find(|e| e["address"] == addr))
        .unwrap_or_else(|| panic!("backend {addr} not in status: {status}"))
}

/// The `backends` entry of `/status` for `addr`, found by any string field equal to the address.
pub async fn backend_status(balancer: &Balancer, addr: SocketAddr) -> Option<serde_json::Value> {
    let resp = crate::http::get(&balancer.admin_url("/status"))
        .await
        .ok()?;
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
pub async fn backend_healthy(balancer: &Balancer, addr: SocketAddr) -> Option<bool> {
    backend_status(balancer, addr)
        .await?
        .get("healthy")?
        .as_bool()
}

/// Polls `/status` until the backend at `addr` has `healthy == want`; returns how long it took.
pub async fn wait_health(
    balancer: &Balancer,
    addr: SocketAddr,
    want: bool,
    timeout: Duration,
) -> Option<Duration> {
    let began = Instant::now();
    let reached = crate::wait_until_async(timeout, || async {
        backend_healthy(balancer, addr).await == Some(want)
    })
    .await;
    reached.then(|| began.elapsed())
}
