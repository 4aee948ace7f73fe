//! When the next order for a name may be placed: renewal due at two-thirds of the certificate's
//! lifetime (or sooner with `--acme-renew-before`), pulled earlier by a random jitter; after a
//! failure an exponential backoff that honours the CA's `Retry-After`; and, whatever the reason,
//! never more than [`ORDERS_PER_HOUR`] orders for one name in any hour. Pure: every input is a
//! value (times in Unix seconds, the random draw a fraction), so it is tested without a clock.

/// Orders for one name in any rolling hour, successful or not (Let's Encrypt allows 5 failed
/// validations per name per hour; this stays under it).
pub const ORDERS_PER_HOUR: usize = 3;
/// The first retry after a failure.
pub const FIRST_BACKOFF_SECS: u64 = 60;
/// The longest wait between two failed attempts.
pub const MAX_BACKOFF_SECS: u64 = 6 * 3600;
/// A `Retry-After` is honoured up to this long (a day), so a bad header cannot stop renewals.
pub const MAX_RETRY_AFTER_SECS: u64 = 86_400;
/// The jitter pulls a renewal earlier by up to this share of the lifetime.
pub const JITTER_SHARE: f64 = 1.0 / 30.0;

/// A certificate's validity, Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: i64,
    pub not_after: i64,
}

/// When the certificate is due for renewal: two-thirds of its lifetime, or `renew_before`
/// seconds before it expires if that is sooner, less `jitter` (a draw in `[0, 1)`) times
/// [`JITTER_SHARE`] of the lifetime.
pub fn renewal_due(validity: Validity, renew_before: Option<u64>, jitter: f64) -> i64 {
    let lifetime = (validity.not_after - validity.not_before).max(0);
    let mut due = validity.not_before + lifetime * 2 / 3;
    if let Some(before) = renew_before {
        let before = i64::try_from(before).unwrap_or(i64::MAX);
        due = due.min(validity.not_after.saturating_sub(before));
    }
    let pull = (lifetime as f64 * JITTER_SHARE * jitter.clamp(0.0, 1.0)) as i64;
    due - pull
}

/// How long to wait after the `failures`-th failure in a row (1 is the first): 1 min, doubling,
/// up to 6 h, plus up to a quarter more by `jitter`; at least the CA's `Retry-After` (capped at
/// a day).
pub fn backoff(failures: u32, retry_after: Option<u64>, jitter: f64) -> u64 {
    let doublings = failures.saturating_sub(1).min(20);
    let base = FIRST_BACKOFF_SECS
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF_SECS);
    let spread = (base as f64 * 0.25 * jitter.clamp(0.0, 1.0)) as u64;
    let wait = base + spread;
    wait.max(retry_after.unwrap_or(0).min(MAX_RETRY_AFTER_SECS))
}

/// The earliest time `candidate` may become so that no hour holds more than [`ORDERS_PER_HOUR`]
/// orders, given the times of the recent ones (any order, older ones ignored).
pub fn within_hourly_cap(candidate: i64, recent: &[i64]) -> i64 {
    let mut in_window: Vec<i64> = recent
        .iter()
        .copied()
        .filter(|&t| t > candidate - 3600)
        .collect();
    if in_window.len() < ORDERS_PER_HOUR {
        return candidate;
    }
    in_window.sort_unstable();
    // The oldest order that must leave the window before one more fits.
    let leaving = in_window[in_window.len() - ORDERS_PER_HOUR];
    candidate.max(leaving + 3600)
}

/// The next attempt: `due` (renewal) or `now + backoff` (after failures), whichever applies,
/// then held to the hourly cap.
pub fn next_attempt(due: i64, now: i64, failure_wait: Option<u64>, recent: &[i64]) -> i64 {
    let candidate = match failure_wait {
        Some(wait) => now.saturating_add(i64::try_from(wait).unwrap_or(i64::MAX)),
        None => due,
    };
    within_hourly_cap(candidate, recent)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;
    const NINETY: Validity = Validity {
        not_before: 0,
        not_after: 90 * DAY,
    };

    #[test]
    fn renewal_is_due_at_two_thirds_of_the_lifetime() {
        assert_eq!(renewal_due(NINETY, None, 0.0), 60 * DAY);
        // The jitter only pulls earlier, by at most a thirtieth of the lifetime.
        let jittered = renewal_due(NINETY, None, 0.999);
        assert!(jittered < 60 * DAY && jittered > 57 * DAY, "{jittered}");
    }

    #[test]
    fn renew_before_makes_it_due_sooner_never_later() {
        let before = |secs| renewal_due(NINETY, Some(secs), 0.0);
        assert_eq!(before(45 * DAY as u64), 45 * DAY);
        assert_eq!(
            before(DAY as u64),
            60 * DAY,
            "later than 2/3: the default wins"
        );
        assert!(
            before(365 * DAY as u64) < 0,
            "longer than the lifetime: due at once"
        );
    }

    #[test]
    fn backoff_doubles_from_a_minute_to_six_hours() {
        let waits: Vec<u64> = (1..=12).map(|n| backoff(n, None, 0.0)).collect();
        assert_eq!(&waits[..4], &[60, 120, 240, 480]);
        assert_eq!(*waits.last().unwrap(), MAX_BACKOFF_SECS);
        assert!(waits.windows(2).all(|w| w[0] <= w[1]));
        assert!(backoff(1, None, 0.999) < 76);
        assert_eq!(backoff(u32::MAX, None, 0.0), MAX_BACKOFF_SECS);
    }

    #[test]
    fn retry_after_is_honoured_up_to_a_day() {
        assert_eq!(backoff(1, Some(900), 0.0), 900);
        assert_eq!(
            backoff(5, Some(10), 0.0),
            960,
            "a shorter Retry-After does not shorten"
        );
        assert_eq!(backoff(1, Some(u64::MAX), 0.0), MAX_RETRY_AFTER_SECS);
    }

    #[test]
    fn no_hour_holds_more_than_the_cap() {
        let now = 10_000;
        assert_eq!(within_hourly_cap(now, &[now - 10, now - 20]), now);
        let full = [now - 100, now - 50, now - 10];
        assert_eq!(within_hourly_cap(now, &full), now - 100 + 3600);
        assert_eq!(within_hourly_cap(now, &[now - 4000, now - 50]), now);
        // Whatever the history, the result never puts a fourth order in one hour.
        let history = [now - 3500, now - 3000, now - 1, now - 2, now - 3];
        let next = within_hourly_cap(now, &history);
        let in_hour = history.iter().filter(|&&t| t > next - 3600).count();
        assert!(in_hour < ORDERS_PER_HOUR, "{next}: {in_hour}");
    }

    #[test]
    fn the_next_attempt_is_the_due_time_or_the_backoff() {
        assert_eq!(next_attempt(500, 100, None, &[]), 500);
        assert_eq!(next_attempt(500, 100, Some(60), &[]), 160);
        assert_eq!(next_attempt(-5, 100, None, &[]), -5, "overdue: at once");
    }
}
