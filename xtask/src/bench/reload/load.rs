//! One fixed-rate phase of the reload bench: oha on `/count` at `--reload-rate` requests/s over
//! 64 connections, optionally with a reload every second beside it (the config file rewritten
//! between its two contents, then `POST /config/reload` with the admin token), and what it
//! found: failures, latencies, the Redis counter against the successful responses, and the
//! answers of every reload.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::bench::route_files::{self, reload_toml};
use crate::stack::Redis;
use crate::tools::oha::{self, Load};

/// oha's connections in every phase.
pub const CONNECTIONS: usize = 64;

/// What one phase measured.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub reloading: bool,
    pub round: usize,
    pub rate: u32,
    pub seconds: f64,
    pub ok: u64,
    /// Non-200 answers plus transport errors.
    pub failed: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub counter_delta: i64,
    /// Reloads asked and how the balancer answered them (`ok`, `unchanged`, `error`, other).
    pub reloads: Vec<String>,
}

/// Where a phase sends its load and its reloads.
pub struct Target<'a> {
    pub oha: &'a Path,
    pub url: String,
    pub admin: SocketAddr,
    pub token: &'a str,
    pub config: &'a Path,
    pub servers: &'a [SocketAddr],
    pub redis: &'a Redis,
    pub counter_key: &'a str,
}

/// Runs one phase of `duration` at `rate`, reloading every second when `reloading`.
pub fn phase(
    target: &Target,
    (rate, duration): (u32, Duration),
    (reloading, round): (bool, usize),
    raw_stem: &Path,
) -> Result<Phase> {
    let before = target.redis.counter(target.counter_key)?;
    let stop = Arc::new(AtomicBool::new(false));
    let reloader = reloading.then(|| spawn_reloader(target, stop.clone()));
    let load = Load::Rate {
        per_second: rate,
        duration,
    };
    let result = oha::run_load(target.oha, &target.url, CONNECTIONS, load, raw_stem, &[]);
    stop.store(true, Ordering::Relaxed);
    let reloads = match reloader {
        Some(handle) => handle.join().unwrap_or_default(),
        None => Vec::new(),
    };
    // The file ends on its first content, as the next phase starts.
    route_files::write_text(target.config, &reload_toml(target.servers, false))?;
    let result = result?;
    let counter_delta = target.redis.counter(target.counter_key)? - before;
    Ok(Phase {
        reloading,
        round,
        rate,
        seconds: duration.as_secs_f64(),
        ok: result.responses_with(200),
        failed: result.non_200() + result.errors(),
        p50_ms: result.p50_ms,
        p99_ms: result.p99_ms,
        p999_ms: result.p999_ms,
        counter_delta,
        reloads,
    })
}

/// Every second until `stop`: the file rewritten to its other content, then a reload asked
/// through the admin API; returns each reload's result.
fn spawn_reloader(target: &Target, stop: Arc<AtomicBool>) -> thread::JoinHandle<Vec<String>> {
    let (admin, token) = (target.admin, target.token.to_string());
    let (config, servers) = (target.config.to_path_buf(), target.servers.to_vec());
    thread::spawn(move || {
        let mut results = Vec::new();
        let mut next = Instant::now() + Duration::from_secs(1);
        while !stop.load(Ordering::Relaxed) {
            if Instant::now() < next {
                thread::sleep(Duration::from_millis(10));
                continue;
            }
            next += Duration::from_secs(1);
            let second = results.len() % 2 == 0;
            let outcome = route_files::write_text(&config, &reload_toml(&servers, second))
                .and_then(|()| post_reload(admin, &token));
            results.push(outcome.unwrap_or_else(|e| format!("failed: {e:#}")));
        }
        results
    })
}

/// `POST /config/reload` with the bearer token: `ok`, `unchanged` or `error` from the answer's
/// `result`, or the status line when the answer is not a report.
pub fn post_reload(admin: SocketAddr, token: &str) -> Result<String> {
    let mut stream = TcpStream::connect_timeout(&admin, Duration::from_secs(5))
        .with_context(|| format!("connecting to {admin}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let request = format!(
        "POST /config/reload HTTP/1.1\r\nHost: {admin}\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes())?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(reload_result(&answer))
}

/// The `result` of a reload answer, or its status line.
fn reload_result(answer: &str) -> String {
    let status = answer.lines().next().unwrap_or("").to_string();
    // The JSON object, whether the body came whole or chunked.
    let body = match (answer.find('{'), answer.rfind('}')) {
        (Some(start), Some(end)) if start < end => &answer[start..=end],
        _ => "",
    };
    let result = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("result")?.as_str().map(String::from));
    match (status.contains(" 200 "), result) {
        (true, Some(result)) => result,
        (_, result) => format!("{status} {}", result.unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reload_answer_is_its_result() {
        let ok = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{\"result\":\"ok\"}\n";
        assert_eq!(reload_result(ok), "ok");
        let refused = "HTTP/1.1 401 Unauthorized\r\n\r\nno\n";
        assert_eq!(reload_result(refused), "HTTP/1.1 401 Unauthorized ");
    }
}
