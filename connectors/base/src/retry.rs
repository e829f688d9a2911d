//! Whether a failed operation may be retried, and when.
//!
//! One [`ErrorClass`] serves a CA refusing an order, a chat service refusing
//! a message and a renewal step that failed: the worker that owns the retry
//! reads the class, never the message.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// Whether retrying a failed operation can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Retrying the same request will fail the same way (bad CSR, bad
    /// credentials, a policy refusal).
    Permanent,
    /// A network or server hiccup; retry with backoff.
    Transient,
    /// The peer asked to wait this long (rate limit, `Retry-After`).
    RetryAfter(Duration),
}

impl ErrorClass {
    /// Whether the operation may be tried again.
    pub fn is_retryable(self) -> bool {
        !matches!(self, Self::Permanent)
    }
}

/// Parses a `Retry-After` header value (RFC 9110 §10.2.3): delay-seconds or
/// an HTTP-date, as the time left from `now` (zero for a date already past).
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default()
    }

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        let now = at("2025-01-01T00:00:00Z");
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 01 Jan 2025 00:10:00 GMT", now),
            Some(Duration::from_secs(600))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn a_date_in_the_past_means_now() {
        let now = at("2015-10-21T07:28:00Z");
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn only_permanent_errors_are_final() {
        assert!(!ErrorClass::Permanent.is_retryable());
        assert!(ErrorClass::Transient.is_retryable());
        assert!(ErrorClass::RetryAfter(Duration::from_secs(5)).is_retryable());
    }
}
