//! Reading what `redis-benchmark -q` prints and what Redis's `INFO` answers: pure functions of
//! the text, tested on real output of Redis 7.0.

/// The summary of one `redis-benchmark -q` test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub requests_per_sec: f64,
    /// `p50=… msec`, printed by Redis 6.2 and later.
    pub p50_ms: Option<f64>,
}

/// The final summary of `test` (e.g. `INCR`) in `redis-benchmark -q` output.
///
/// With `-q`, redis-benchmark overwrites a progress line in place (`\r`) before the summary:
/// `\rINCR: rps=0.0 (overall: 1000.0) avg_msec=0.084 (overall: 0.084)\r   …   \rINCR: 50200.00
/// requests per second, p50=0.151 msec\n`. The text is split on both `\r` and `\n`, progress
/// segments (no "requests per second") are skipped, and the last summary wins.
pub fn summary(output: &str, test: &str) -> Option<Summary> {
    let prefix = format!("{test}:");
    output
        .split(['\r', '\n'])
        .map(str::trim)
        .filter_map(|segment| {
            let rest = segment.strip_prefix(&prefix)?;
            let (rate, tail) = rest.split_once("requests per second")?;
            let requests_per_sec = rate.trim().parse::<f64>().ok()?;
            let p50_ms = tail
                .split_once("p50=")
                .and_then(|(_, p)| p.split_whitespace().next())
                .and_then(|p| p.parse().ok());
            (requests_per_sec.is_finite() && requests_per_sec > 0.0).then_some(Summary {
                requests_per_sec,
                p50_ms,
            })
        })
        .next_back()
}

/// The value of `field` in an `INFO` answer (`field:value` lines), e.g. `redis_version`.
pub fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines().find_map(|line| {
        let (name, value) = line.trim_end_matches('\r').split_once(':')?;
        (name == field).then_some(value.trim())
    })
}

/// The CPU seconds the Redis process has used (`used_cpu_sys` + `used_cpu_user` of `INFO cpu`:
/// every thread of the server, not its forked children).
pub fn used_cpu_seconds(info: &str) -> Option<f64> {
    let sys: f64 = info_field(info, "used_cpu_sys")?.parse().ok()?;
    let user: f64 = info_field(info, "used_cpu_user")?.parse().ok()?;
    Some(sys + user)
}

/// How many times `command` (lower case) has run, from `INFO commandstats`
/// (`cmdstat_incr:calls=20000,usec=…`); 0 when it has not run yet (no line).
pub fn command_calls(info: &str, command: &str) -> Option<u64> {
    match info_field(info, &format!("cmdstat_{command}")) {
        None => Some(0),
        Some(stats) => stats
            .split(',')
            .find_map(|kv| kv.strip_prefix("calls="))
            .and_then(|n| n.parse().ok()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_is_read_past_the_progress_lines() {
        // Real output of redis-benchmark 7.0.15 (`-t incr -n 5000 -c 16 -q`, piped).
        let out = " \rINCR: rps=0.0 (overall: 1000.0) avg_msec=0.084 (overall: 0.084)\r                                                                \rINCR: 54347.82 requests per second, p50=0.079 msec\n\n";
        assert_eq!(
            summary(out, "INCR"),
            Some(Summary {
                requests_per_sec: 54347.82,
                p50_ms: Some(0.079)
            })
        );
        // `-P 16 -r 100000`: the progress line can say -nan before the first sample.
        let out = "\rINCR: rps=0.0 (overall: -nan) avg_msec=-nan (overall: -nan)\r      \rINCR: 500800.00 requests per second, p50=0.295 msec\n\n";
        assert_eq!(summary(out, "INCR").unwrap().requests_per_sec, 500800.0);
        // The brief's sample, and the pre-6.2 form without percentiles.
        let out = "INCR: 50200.00 requests per second, p50=0.151 msec\n";
        assert_eq!(summary(out, "INCR").unwrap().p50_ms, Some(0.151));
        let old = "INCR: 36400.00 requests per second\n";
        assert_eq!(
            summary(old, "INCR"),
            Some(Summary {
                requests_per_sec: 36400.0,
                p50_ms: None
            })
        );
    }

    #[test]
    fn no_summary_is_none() {
        assert_eq!(summary("", "INCR"), None);
        let progress_only = "\rINCR: rps=41000.0 (overall: 40000.0) avg_msec=0.3 (overall: 0.3)\r";
        assert_eq!(summary(progress_only, "INCR"), None);
        let other_test = "SET: 50200.00 requests per second, p50=0.151 msec\n";
        assert_eq!(summary(other_test, "INCR"), None);
        assert_eq!(
            summary("INCR: -nan requests per second\n", "INCR"),
            None,
            "a rate that is no number"
        );
    }

    #[test]
    fn info_cpu_and_commandstats_are_read() {
        // Real `INFO cpu` of Redis 7.0.15 (RESP bulk text, CRLF lines).
        let cpu = "# CPU\r\nused_cpu_sys:0.018598\r\nused_cpu_user:0.030998\r\nused_cpu_sys_children:0.000000\r\nused_cpu_user_children:0.000000\r\nused_cpu_sys_main_thread:0.018423\r\nused_cpu_user_main_thread:0.030705\r\n";
        let used = used_cpu_seconds(cpu).unwrap();
        assert!((used - 0.049596).abs() < 1e-9, "{used}");
        assert_eq!(info_field(cpu, "used_cpu_user"), Some("0.030998"));
        assert_eq!(info_field(cpu, "used_cpu"), None);
        assert_eq!(used_cpu_seconds("# CPU\r\nused_cpu_sys:0.1\r\n"), None);
        let stats = "# Commandstats\r\ncmdstat_config:calls=2,usec=25,usec_per_call=12.50,rejected_calls=0,failed_calls=0\r\ncmdstat_incr:calls=20000,usec=9912,usec_per_call=0.50,rejected_calls=0,failed_calls=0\r\n";
        assert_eq!(command_calls(stats, "incr"), Some(20000));
        assert_eq!(command_calls(stats, "config"), Some(2));
        assert_eq!(command_calls("# Commandstats\r\n", "incr"), Some(0));
        assert_eq!(command_calls("cmdstat_incr:usec=1\r\n", "incr"), None);
    }
}
