//! The access log's clock: the timestamp text each line starts with, in UTC.
//!
//! Owns `Clock` (one per worker's batch, so the text is formatted once per second per worker
//! rather than once per line), the two renderings NGINX uses (`$time_local` as CLF,
//! `$time_iso8601`) and the civil-date arithmetic under them. Times are UTC (`+0000`): the
//! request path does not consult a time zone database, so a few integer operations turn seconds
//! since the epoch into the date.

use std::time::{SystemTime, UNIX_EPOCH};

use super::format::push_u64;

/// The current second's timestamp text, formatted once per second per worker.
#[derive(Default)]
pub(super) struct Clock {
    second: Option<u64>,
    text: Vec<u8>,
}

impl Clock {
    /// `02/Dec/2026:04:20:58 +0000` (NGINX `$time_local`, in UTC).
    pub(super) fn clf(&mut self, now: SystemTime) -> &[u8] {
        self.cached(now, format_clf_time)
    }

    /// `2026-12-02T04:20:58+00:00` (NGINX `$time_iso8601`, in UTC).
    pub(super) fn iso8601(&mut self, now: SystemTime) -> &[u8] {
        self.cached(now, format_iso8601_time)
    }

    fn cached(&mut self, now: SystemTime, render: fn(&mut Vec<u8>, u64)) -> &[u8] {
        let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if self.second != Some(second) {
            self.text.clear();
            render(&mut self.text, second);
            self.second = Some(second);
        }
        &self.text
    }
}

struct Civil {
    year: u64,
    month: usize,
    day: u64,
    hour: u64,
    minute: u64,
    second: u64,
}

/// Seconds since the epoch to a UTC calendar date (Howard Hinnant's `civil_from_days`).
fn civil(unix: u64) -> Civil {
    let days = unix / 86_400;
    let secs = unix % 86_400;
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    Civil {
        year: yoe + era * 400 + u64::from(month <= 2),
        // 1..=12, so the cast cannot truncate.
        month: month as usize,
        day,
        hour: secs / 3600,
        minute: secs / 60 % 60,
        second: secs % 60,
    }
}

fn push_2(out: &mut Vec<u8>, n: u64) {
    if n < 10 {
        out.push(b'0');
    }
    push_u64(out, n);
}

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

fn format_clf_time(out: &mut Vec<u8>, unix: u64) {
    let c = civil(unix);
    push_2(out, c.day);
    out.push(b'/');
    out.extend_from_slice(MONTHS[(c.month - 1) % 12]);
    out.push(b'/');
    push_u64(out, c.year);
    for part in [c.hour, c.minute, c.second] {
        out.push(b':');
        push_2(out, part);
    }
    out.extend_from_slice(b" +0000");
}

fn format_iso8601_time(out: &mut Vec<u8>, unix: u64) {
    let c = civil(unix);
    push_u64(out, c.year);
    out.push(b'-');
    push_2(out, c.month as u64);
    out.push(b'-');
    push_2(out, c.day);
    out.push(b'T');
    push_2(out, c.hour);
    out.push(b':');
    push_2(out, c.minute);
    out.push(b':');
    push_2(out, c.second);
    out.extend_from_slice(b"+00:00");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_match_date_u() {
        let clf = |unix| {
            let mut out = Vec::new();
            format_clf_time(&mut out, unix);
            String::from_utf8(out).unwrap()
        };
        let iso = |unix| {
            let mut out = Vec::new();
            format_iso8601_time(&mut out, unix);
            String::from_utf8(out).unwrap()
        };
        // Expected values from `date -u -d @N`.
        assert_eq!(clf(0), "01/Jan/1970:00:00:00 +0000");
        assert_eq!(clf(951_782_400), "29/Feb/2000:00:00:00 +0000");
        assert_eq!(clf(1_798_171_200), "25/Dec/2026:04:00:00 +0000");
        assert_eq!(clf(1_796_268_058), "03/Dec/2026:03:20:58 +0000");
        assert_eq!(iso(1_796_268_058), "2026-12-03T03:20:58+00:00");
        assert_eq!(iso(951_782_400), "2000-02-29T00:00:00+00:00");
    }

    #[test]
    fn the_second_is_formatted_once() {
        let mut clock = Clock::default();
        let t = UNIX_EPOCH + Duration::from_secs(1_796_268_058);
        assert_eq!(clock.clf(t), b"03/Dec/2026:03:20:58 +0000");
        clock.text[0] = b'X'; // a second read within the same second returns the cache
        assert_eq!(clock.clf(t + Duration::from_millis(999))[0], b'X');
        assert_eq!(
            clock.clf(t + Duration::from_secs(1)),
            b"03/Dec/2026:03:20:59 +0000"
        );
    }
}
