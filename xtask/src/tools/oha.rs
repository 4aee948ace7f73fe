//! Running `oha` (the HTTP load generator users will check the claims with) for a bounded
//! time and reading its JSON summary.
//!
//! Each run is `oha --no-tui --output-format json -z <duration> -w -c <connections> <url>`.
//! `-w` (wait for ongoing requests after the deadline) matters for correctness: without it the
//! requests in flight at the deadline are cancelled, and a cancelled `/count` may already have
//! incremented the counter, which would break the "counter delta == successful responses" check.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// Extra time oha gets beyond its load duration (startup, `-w` drain) before it is killed.
const OHA_GRACE: Duration = Duration::from_secs(30);

/// The figures of one oha run that the benchmark uses.
#[derive(Debug, Clone, PartialEq)]
pub struct OhaResult {
    pub requests_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    /// Responses by HTTP status code.
    pub status_counts: BTreeMap<u16, u64>,
    /// Transport-level failures (connect refused, reset, timeout) by message.
    pub error_counts: BTreeMap<String, u64>,
}

impl OhaResult {
    pub fn responses_with(&self, status: u16) -> u64 {
        self.status_counts.get(&status).copied().unwrap_or(0)
    }

    pub fn errors(&self) -> u64 {
        self.error_counts.values().sum()
    }

    /// Responses whose status is anything other than 200.
    pub fn non_200(&self) -> u64 {
        self.status_counts
            .iter()
            .filter(|(s, _)| **s != 200)
            .map(|(_, n)| n)
            .sum()
    }
}

#[derive(Deserialize)]
struct Raw {
    summary: RawSummary,
    #[serde(rename = "latencyPercentiles")]
    latency_percentiles: BTreeMap<String, Option<f64>>,
    #[serde(rename = "statusCodeDistribution", default)]
    status_code_distribution: BTreeMap<String, u64>,
    #[serde(rename = "errorDistribution", default)]
    error_distribution: BTreeMap<String, u64>,
}

#[derive(Deserialize)]
struct RawSummary {
    #[serde(rename = "requestsPerSec")]
    requests_per_sec: Option<f64>,
}

/// Parses oha's JSON output (latencies there are in seconds).
pub fn parse(json: &str) -> Result<OhaResult> {
    let raw: Raw = serde_json::from_str(json).context("parsing oha's JSON output")?;
    let percentile_ms = |key: &str| -> Result<f64> {
        raw.latency_percentiles
            .get(key)
            .copied()
            .flatten()
            .map(|s| s * 1000.0)
            .with_context(|| format!("oha's JSON output has no latencyPercentiles.{key}"))
    };
    let mut status_counts = BTreeMap::new();
    for (code, n) in &raw.status_code_distribution {
        let code: u16 = code
            .parse()
            .with_context(|| format!("oha reported a status code {code:?}"))?;
        status_counts.insert(code, *n);
    }
    let ok = status_counts.values().sum::<u64>() > 0;
    Ok(OhaResult {
        requests_per_sec: raw.summary.requests_per_sec.unwrap_or(0.0),
        // With no successful response there are no latencies; report zeros, the run fails anyway.
        p50_ms: if ok { percentile_ms("p50")? } else { 0.0 },
        p99_ms: if ok { percentile_ms("p99")? } else { 0.0 },
        p999_ms: if ok { percentile_ms("p99.9")? } else { 0.0 },
        status_counts,
        error_counts: raw.error_distribution,
    })
}

/// How much load one oha run applies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Load {
    /// As fast as it can for this long (`-z`, with `-w`).
    For(Duration),
    /// Exactly this many requests, as fast as it can (`-n`).
    Requests(u64),
    /// This many requests per second (all connections together, `-q`) for this long.
    Rate { per_second: u32, duration: Duration },
}

impl Load {
    fn args(self) -> Vec<String> {
        match self {
            Load::For(duration) => vec![
                "-w".into(),
                "-z".into(),
                format!("{}ms", duration.as_millis()),
            ],
            Load::Requests(n) => vec!["-n".into(), n.to_string()],
            Load::Rate {
                per_second,
                duration,
            } => {
                let mut args = Load::For(duration).args();
                args.extend(["-q".into(), per_second.to_string()]);
                args
            }
        }
    }

    /// How long oha may take before it is killed.
    fn bound(self) -> Duration {
        match self {
            Load::For(duration) | Load::Rate { duration, .. } => duration + OHA_GRACE,
            // Generous: a server under valgrind answers a few hundred requests a second.
            Load::Requests(n) => OHA_GRACE + Duration::from_millis(n.saturating_mul(20)),
        }
    }
}

/// Runs oha against `url` with `connections` keep-alive connections for `duration`, writing its
/// raw output next to `output_stem` (`.json`, `.err`) for inspection.
pub fn run(
    oha: &Path,
    url: &str,
    connections: usize,
    duration: Duration,
    output_stem: &Path,
) -> Result<OhaResult> {
    run_load(oha, url, connections, Load::For(duration), output_stem, &[])
}

/// [`run`] with extra oha flags (the TLS bench: `--cacert`, `--http2`, `--disable-keepalive`).
pub fn run_with(
    oha: &Path,
    url: &str,
    connections: usize,
    duration: Duration,
    output_stem: &Path,
    extra: &[&str],
) -> Result<OhaResult> {
    run_load(
        oha,
        url,
        connections,
        Load::For(duration),
        output_stem,
        extra,
    )
}

/// Runs oha against `url` with `connections` keep-alive connections, the given `load` and
/// `extra` flags.
pub fn run_load(
    oha: &Path,
    url: &str,
    connections: usize,
    load: Load,
    output_stem: &Path,
    extra: &[&str],
) -> Result<OhaResult> {
    let json_path = output_stem.with_extension("json");
    let err_path = output_stem.with_extension("err");
    let stdout =
        File::create(&json_path).with_context(|| format!("creating {}", json_path.display()))?;
    let stderr =
        File::create(&err_path).with_context(|| format!("creating {}", err_path.display()))?;
    let mut child = Command::new(oha)
        .args(["--no-tui", "--output-format", "json"])
        .args(load.args())
        .arg("-c")
        .arg(connections.to_string())
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .with_context(|| format!("starting {}", oha.display()))?;
    let deadline = Instant::now() + load.bound();
    let status = loop {
        if let Some(status) = child.try_wait().context("waiting for oha")? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("oha against {url} did not finish within {:?}", load.bound());
        }
        thread::sleep(Duration::from_millis(20));
    };
    if !status.success() {
        let err = fs::read_to_string(&err_path).unwrap_or_default();
        bail!("oha against {url} failed ({status}): {}", err.trim());
    }
    let json = fs::read_to_string(&json_path)
        .with_context(|| format!("reading {}", json_path.display()))?;
    parse(&json).with_context(|| format!("oha output in {}", json_path.display()))
}

/// `oha --version`, to record in the report.
pub fn version(oha: &Path) -> String {
    super::locate::tool_version(oha, "--version")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_summary_percentiles_statuses_and_errors() {
        let json = r#"{
            "summary": {"successRate": 1.0, "total": 3.0, "requestsPerSec": 12345.5},
            "latencyPercentiles": {"p50": 0.0012, "p99": 0.004, "p99.9": 0.0101, "p99.99": 0.02},
            "statusCodeDistribution": {"200": 37000, "502": 3},
            "errorDistribution": {"connection closed before message completed": 2}
        }"#;
        let r = parse(json).unwrap();
        assert_eq!(r.requests_per_sec, 12345.5);
        assert!((r.p50_ms - 1.2).abs() < 1e-9);
        assert!((r.p99_ms - 4.0).abs() < 1e-9);
        assert!((r.p999_ms - 10.1).abs() < 1e-9);
        assert_eq!(r.responses_with(200), 37000);
        assert_eq!(r.non_200(), 3);
        assert_eq!(r.errors(), 2);
    }

    #[test]
    fn no_responses_at_all_is_not_a_parse_error() {
        let json = r#"{"summary": {"requestsPerSec": 0.0},
            "latencyPercentiles": {"p50": null, "p99": null, "p99.9": null},
            "statusCodeDistribution": {}, "errorDistribution": {"connection refused": 10}}"#;
        let r = parse(json).unwrap();
        assert_eq!(r.errors(), 10);
        assert_eq!(r.responses_with(200), 0);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse("oha: error").is_err());
    }
}
