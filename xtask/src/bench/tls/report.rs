//! The TLS bench's figures and report: a door's round and medians, `report.{json,md,svg}` in
//! `<target>/bench-tls`, the table printed, and the chart of balancer / NGINX per measure.

use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use crate::report::median;

/// One door's figures in one round.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Round {
    pub full_handshakes_per_sec: f64,
    /// The door's CPU per full handshake (with its one request), microseconds: the server's
    /// own cost, which the clients sharing the machine do not blur.
    pub full_handshake_cpu_us: f64,
    pub resumed_handshakes_per_sec: f64,
    pub resumed_handshake_cpu_us: f64,
    pub http1_rps: f64,
    pub http1_p99_ms: f64,
    pub http2_rps: f64,
    pub http2_p99_ms: f64,
    pub cpu_seconds_per_10k: f64,
}

/// A door's medians and its idle-connection memory.
#[derive(Debug, Clone, Serialize)]
pub struct DoorResult {
    pub door: &'static str,
    pub rounds: Vec<Round>,
    pub median: Round,
    pub rss_kib_per_1000_idle: f64,
}

#[derive(Debug, Serialize)]
pub struct TlsReport {
    pub quick: bool,
    pub rounds: usize,
    pub seconds_per_run: u64,
    pub idle_connections: usize,
    pub balancer: DoorResult,
    pub nginx: DoorResult,
    pub problems: Vec<String>,
}

/// The median of every figure over the rounds (0 when there is none).
pub fn median_round(rounds: &[Round]) -> Round {
    let m =
        |f: fn(&Round) -> f64| median(&mut rounds.iter().map(f).collect::<Vec<_>>()).unwrap_or(0.0);
    Round {
        full_handshakes_per_sec: m(|r| r.full_handshakes_per_sec),
        full_handshake_cpu_us: m(|r| r.full_handshake_cpu_us),
        resumed_handshakes_per_sec: m(|r| r.resumed_handshakes_per_sec),
        resumed_handshake_cpu_us: m(|r| r.resumed_handshake_cpu_us),
        http1_rps: m(|r| r.http1_rps),
        http1_p99_ms: m(|r| r.http1_p99_ms),
        http2_rps: m(|r| r.http2_rps),
        http2_p99_ms: m(|r| r.http2_p99_ms),
        cpu_seconds_per_10k: m(|r| r.cpu_seconds_per_10k),
    }
}

/// `report.json` and `report.md` into `out`; prints the table; false when a check failed.
pub fn write_report(report: &TlsReport, out: &Path) -> Result<bool> {
    let json = serde_json::to_string_pretty(report)?;
    std::fs::write(out.join("report.json"), json)?;
    let md = markdown(report);
    std::fs::write(out.join("report.md"), &md)?;
    std::fs::write(out.join("report.svg"), chart(report))?;
    println!("{md}");
    for p in &report.problems {
        eprintln!("xtask: tls bench check failed: {p}");
    }
    Ok(report.problems.is_empty())
}

fn markdown(r: &TlsReport) -> String {
    let (b, n) = (&r.balancer.median, &r.nginx.median);
    let ratio = |x: f64, y: f64| {
        if y > 0.0 {
            format!("{:.2}x", x / y)
        } else {
            "-".into()
        }
    };
    let rows: [(&str, f64, f64, &str); 10] = [
        (
            "full handshakes/s (s_time -new)",
            b.full_handshakes_per_sec,
            n.full_handshakes_per_sec,
            ">= 1.2x",
        ),
        (
            "CPU us per full handshake + request",
            b.full_handshake_cpu_us,
            n.full_handshake_cpu_us,
            "",
        ),
        (
            "resumed handshakes/s (s_time -reuse)",
            b.resumed_handshakes_per_sec,
            n.resumed_handshakes_per_sec,
            "",
        ),
        (
            "CPU us per resumed handshake + request",
            b.resumed_handshake_cpu_us,
            n.resumed_handshake_cpu_us,
            "",
        ),
        (
            "HTTP/1.1+TLS keep-alive req/s (/count, c=64)",
            b.http1_rps,
            n.http1_rps,
            ">= 1.0x",
        ),
        ("HTTP/1.1+TLS p99 ms", b.http1_p99_ms, n.http1_p99_ms, ""),
        (
            "HTTP/2+TLS req/s (/count, 8 conns x 8 streams)",
            b.http2_rps,
            n.http2_rps,
            ">= 1.0x",
        ),
        ("HTTP/2+TLS p99 ms", b.http2_p99_ms, n.http2_p99_ms, ""),
        (
            "CPU s per 10k requests (HTTP/1.1+TLS)",
            b.cpu_seconds_per_10k,
            n.cpu_seconds_per_10k,
            "",
        ),
        (
            "RSS KiB per 1,000 idle TLS connections",
            r.balancer.rss_kib_per_1000_idle,
            r.nginx.rss_kib_per_1000_idle,
            "<= 0.5x",
        ),
    ];
    let mut md = format!(
        "# TLS: balancer --workers 1 vs NGINX worker_processes 1\n\nSame ECDSA P-256 certificate, \
         medians of {} round(s) of {} s runs (alternating), {} idle connections for the RSS figure{}.\n\n\
         | measure | balancer | nginx | balancer / nginx | target |\n| --- | ---: | ---: | ---: | --- |\n",
        r.rounds,
        r.seconds_per_run,
        r.idle_connections,
        if r.quick { " (--quick: not figures to quote)" } else { "" }
    );
    for (name, x, y, target) in rows {
        md.push_str(&format!(
            "| {name} | {x:.2} | {y:.2} | {} | {target} |\n",
            ratio(x, y)
        ));
    }
    md
}

/// Horizontal bars of balancer / NGINX per measure, with the 1.0 line: right of it is better for
/// rates, left of it for costs (CPU, p99, memory).
fn chart(r: &TlsReport) -> String {
    let (b, n) = (&r.balancer.median, &r.nginx.median);
    let bars = [
        (
            "full handshakes/s",
            b.full_handshakes_per_sec / n.full_handshakes_per_sec,
            true,
        ),
        (
            "CPU per full handshake",
            b.full_handshake_cpu_us / n.full_handshake_cpu_us,
            false,
        ),
        (
            "resumed handshakes/s",
            b.resumed_handshakes_per_sec / n.resumed_handshakes_per_sec,
            true,
        ),
        (
            "CPU per resumed handshake",
            b.resumed_handshake_cpu_us / n.resumed_handshake_cpu_us,
            false,
        ),
        ("HTTP/1.1+TLS req/s", b.http1_rps / n.http1_rps, true),
        ("HTTP/1.1+TLS p99", b.http1_p99_ms / n.http1_p99_ms, false),
        ("HTTP/2+TLS req/s", b.http2_rps / n.http2_rps, true),
        ("HTTP/2+TLS p99", b.http2_p99_ms / n.http2_p99_ms, false),
        (
            "CPU per 10k requests",
            b.cpu_seconds_per_10k / n.cpu_seconds_per_10k,
            false,
        ),
        (
            "RSS per idle TLS connection",
            r.balancer.rss_kib_per_1000_idle / r.nginx.rss_kib_per_1000_idle,
            false,
        ),
    ];
    let (left, width, row) = (230.0, 400.0, 28.0);
    let scale = |x: f64| left + (x.clamp(0.0, 2.0) / 2.0) * width;
    let height = 60.0 + row * bars.len() as f64;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"700\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"13\">\n\
         <text x=\"10\" y=\"20\" font-weight=\"bold\">TLS: balancer / NGINX (1 worker each; medians)</text>\n"
    );
    for (i, (name, ratio, higher_is_better)) in bars.iter().enumerate() {
        let y = 40.0 + row * i as f64;
        let good = if *higher_is_better {
            *ratio >= 1.0
        } else {
            *ratio <= 1.0
        };
        let color = if good { "#2e7d32" } else { "#c62828" };
        svg.push_str(&format!(
            "<text x=\"10\" y=\"{:.0}\">{name}</text><rect x=\"{left}\" y=\"{y:.0}\" width=\"{:.1}\" height=\"18\" fill=\"{color}\"/>\
             <text x=\"{:.1}\" y=\"{:.0}\">{ratio:.2}x</text>\n",
            y + 14.0,
            scale(*ratio) - left,
            scale(*ratio) + 6.0,
            y + 14.0
        ));
    }
    let one = scale(1.0);
    svg.push_str(&format!(
        "<line x1=\"{one}\" y1=\"30\" x2=\"{one}\" y2=\"{:.0}\" stroke=\"#000\" stroke-dasharray=\"4\"/>\n\
         <text x=\"{one}\" y=\"{:.0}\" text-anchor=\"middle\">1.0 (green: balancer better)</text>\n</svg>\n",
        height - 20.0,
        height - 5.0
    ));
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_has_a_bar_per_measure_colored_by_which_door_wins() {
        let round = |x: f64| Round {
            full_handshakes_per_sec: x,
            full_handshake_cpu_us: x,
            resumed_handshakes_per_sec: x,
            resumed_handshake_cpu_us: x,
            http1_rps: x,
            http1_p99_ms: x,
            http2_rps: x,
            http2_p99_ms: x,
            cpu_seconds_per_10k: x,
        };
        let door = |name, x| DoorResult {
            door: name,
            rounds: vec![],
            median: round(x),
            rss_kib_per_1000_idle: x,
        };
        let report = TlsReport {
            quick: true,
            rounds: 1,
            seconds_per_run: 1,
            idle_connections: 100,
            balancer: door("balancer", 2.0),
            nginx: door("nginx", 1.0),
            problems: vec![],
        };
        let svg = chart(&report);
        let md = markdown(&report);
        assert!(md.contains("| full handshakes/s (s_time -new) | 2.00 | 1.00 | 2.00x | >= 1.2x |"));
        assert_eq!(svg.matches("<rect").count(), 10);
        // Twice the rate is good, twice the cost is bad: 4 rates green, 6 costs red.
        assert_eq!(svg.matches("#2e7d32").count(), 4);
        assert_eq!(svg.matches("#c62828").count(), 6);
    }

    #[test]
    fn medians_of_rounds() {
        let round = |x: f64| Round {
            http1_rps: x,
            ..Round::default()
        };
        assert_eq!(
            median_round(&[round(3.0), round(1.0), round(2.0)]).http1_rps,
            2.0
        );
        assert_eq!(median_round(&[round(4.0), round(1.0)]).http1_rps, 2.5);
        assert_eq!(median_round(&[]).http1_rps, 0.0);
    }
}
