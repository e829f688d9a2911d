//! When to renew and when to try again: pure functions of the clock.
//!
//! - With the CA's window (ACME Renewal Information, RFC 9773, or a
//!   connector's synthetic one), renew at a random time inside it, picked
//!   once per window and persisted, so a fleet does not renew in lockstep.
//! - Without one, renew when a third of the lifetime remains, or half of it
//!   for certificates living under ten days.
//! - `renew_before_days` in the config overrides both.
//! - After a failure, wait 1 minute, 10 minutes, 100 minutes, then a day
//!   between attempts; a CA's `Retry-After` is honoured when longer.

use std::time::Duration;

use certkeeper_connectors::ErrorClass;

/// Seconds in a day.
const DAY: i64 = 86_400;

/// The default renewal time of a certificate valid from `not_before` to
/// `not_after` (Unix seconds).
pub fn default_renew_at(not_before: i64, not_after: i64) -> i64 {
    let life = (not_after - not_before).max(0);
    if life < 10 * DAY {
        not_before + life / 2
    } else {
        not_after - life / 3
    }
}

/// A time inside `[start, end]` from `random` (any `u64`).
pub fn pick_in_window(start: i64, end: i64, random: u64) -> i64 {
    if end <= start {
        return start;
    }
    let span = u64::try_from(end - start).unwrap_or(0).saturating_add(1);
    start + i64::try_from(random % span).unwrap_or(0)
}

/// How long to wait after the `attempts`-th consecutive failure.
pub fn backoff(attempts: u32, class: ErrorClass) -> Duration {
    let schedule = match attempts {
        0 | 1 => Duration::from_secs(60),
        2 => Duration::from_secs(600),
        3 => Duration::from_secs(6_000),
        _ => Duration::from_secs(DAY as u64),
    };
    match class {
        ErrorClass::RetryAfter(wait) => wait.max(Duration::from_secs(1)),
        ErrorClass::Permanent => schedule.max(Duration::from_secs(6_000)),
        ErrorClass::Transient => schedule,
    }
}

/// A random `u64` from OpenSSL's generator (0 if it fails, which only
/// makes the pick less random).
pub fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    if openssl::rand::rand_bytes(&mut bytes).is_err() {
        return 0;
    }
    u64::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_third_of_the_lifetime_or_half_when_short() {
        // 90 days: renew with 30 days left.
        assert_eq!(default_renew_at(0, 90 * DAY), 60 * DAY);
        // 6 days: at half time.
        assert_eq!(default_renew_at(0, 6 * DAY), 3 * DAY);
        // 60 seconds: at 30.
        assert_eq!(default_renew_at(1000, 1060), 1030);
    }

    #[test]
    fn picks_stay_inside_the_window() {
        for r in [0, 1, 7, u64::MAX, 123_456_789] {
            let t = pick_in_window(100, 200, r);
            assert!((100..=200).contains(&t), "{t}");
        }
        assert_eq!(pick_in_window(200, 100, 5), 200);
    }

    #[test]
    fn backoff_grows_and_honours_retry_after() {
        let t = ErrorClass::Transient;
        assert_eq!(backoff(1, t), Duration::from_secs(60));
        assert_eq!(backoff(2, t), Duration::from_secs(600));
        assert_eq!(backoff(3, t), Duration::from_secs(6000));
        assert_eq!(backoff(9, t), Duration::from_secs(86_400));
        let after = ErrorClass::RetryAfter(Duration::from_secs(3600));
        assert_eq!(backoff(1, after), Duration::from_secs(3600));
        assert!(backoff(1, ErrorClass::Permanent) >= Duration::from_secs(6000));
    }
}
