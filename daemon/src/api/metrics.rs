//! `/metrics`: Prometheus text exposition (format 0.0.4).
//!
//! Counts by status come from the status counters (cheap at any size). The
//! per-certificate `not_after` gauge, the one alerting rules key on, covers
//! the certificates that expire soonest, starting with those that expired in
//! the last [`EXPIRED_WINDOW_DAYS`] days, capped at [`PER_CERTIFICATE_LIMIT`]
//! series so a million-certificate inventory does not produce a
//! million-series scrape.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};

/// Most certificates given their own `not_after` series.
pub const PER_CERTIFICATE_LIMIT: usize = 10_000;

/// Certificates that expired longer ago than this get no series of their own
/// (they are still counted in `certkeeper_certificates{status="expired"}`).
pub const EXPIRED_WINDOW_DAYS: i64 = 30;

pub(super) async fn handler(State(state): State<AppState>) -> Result<Response, ApiError> {
    let store = &state.store;
    let counts = store.counts_by_status().await.map_err(ApiError::internal)?;
    let jobs = store.jobs().await.map_err(ApiError::internal)?;
    let mut out = String::new();

    out.push_str("# HELP certkeeper_certificates Certificates in the inventory, by status.\n");
    out.push_str("# TYPE certkeeper_certificates gauge\n");
    for (status, n) in &counts {
        let _ = writeln!(out, "certkeeper_certificates{{status=\"{status}\"}} {n}");
    }

    out.push_str("# HELP certkeeper_certificate_not_after_timestamp_seconds End of validity of each certificate (soonest first, capped).\n");
    out.push_str("# TYPE certkeeper_certificate_not_after_timestamp_seconds gauge\n");
    let series = store
        .expiry_series(
            chrono::Utc::now().timestamp() - EXPIRED_WINDOW_DAYS * 86_400,
            PER_CERTIFICATE_LIMIT,
        )
        .await
        .map_err(ApiError::internal)?;
    for c in &series {
        let _ = writeln!(
            out,
            "certkeeper_certificate_not_after_timestamp_seconds{{fingerprint=\"{}\",subject=\"{}\",issuer=\"{}\",serial=\"{}\",status=\"{}\"}} {}",
            c.fingerprint,
            escape(&c.subject),
            escape(&c.issuer),
            c.serial,
            c.status,
            c.not_after
        );
    }

    out.push_str("# HELP certkeeper_notification_deliveries Notification deliveries in the log, by state (pending ones are waiting or retrying).\n");
    out.push_str("# TYPE certkeeper_notification_deliveries gauge\n");
    let deliveries = store.delivery_counts().await.map_err(ApiError::internal)?;
    for state in ["pending", "delivered", "failed"] {
        let n = deliveries
            .iter()
            .find(|(s, _)| s == state)
            .map_or(0, |(_, n)| *n);
        let _ = writeln!(
            out,
            "certkeeper_notification_deliveries{{state=\"{state}\"}} {n}"
        );
    }

    type JobValue = fn(&certkeeper_store::jobs::JobState) -> i64;
    let job_metrics: [(&str, &str, &str, JobValue); 3] = [
        (
            "certkeeper_job_runs_total",
            "counter",
            "Finished runs of each job.",
            |j| j.runs,
        ),
        (
            "certkeeper_job_failures_total",
            "counter",
            "Failed runs of each job.",
            |j| j.failures,
        ),
        (
            "certkeeper_job_next_due_timestamp_seconds",
            "gauge",
            "When each job is next due.",
            |j| j.next_due,
        ),
    ];
    for (name, kind, help, value) in job_metrics {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for j in &jobs {
            let _ = writeln!(out, "{name}{{job=\"{}\"}} {}", escape(&j.name), value(j));
        }
    }
    let logs = store.ct_logs().await.map_err(ApiError::internal)?;
    type LogValue = fn(&certkeeper_store::ct::CtLogState) -> i64;
    let log_metrics: [(&str, &str, &str, LogValue); 5] = [
        (
            "certkeeper_ct_log_lag_entries",
            "gauge",
            "Entries each followed CT log holds that are not read yet.",
            |l| i64::try_from(l.lag()).unwrap_or(i64::MAX),
        ),
        (
            "certkeeper_ct_log_tree_size",
            "gauge",
            "Size of each CT log's last verified tree head.",
            |l| i64::try_from(l.tree_size).unwrap_or(i64::MAX),
        ),
        (
            "certkeeper_ct_log_read_timestamp_seconds",
            "gauge",
            "When each CT log's entries were last read (0: never).",
            |l| l.read_at.unwrap_or(0),
        ),
        (
            "certkeeper_ct_log_matches_total",
            "counter",
            "Certificates for the watched domains read from each CT log.",
            |l| i64::try_from(l.matches).unwrap_or(i64::MAX),
        ),
        (
            "certkeeper_ct_log_error",
            "gauge",
            "1 when each CT log's last run failed, 2 when it misbehaved (fork, bad signature).",
            |l| match (&l.error, l.misbehaved) {
                (None, _) => 0,
                (Some(_), false) => 1,
                (Some(_), true) => 2,
            },
        ),
    ];
    for (name, kind, help, value) in log_metrics {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for l in &logs {
            let _ = writeln!(out, "{name}{{log=\"{}\"}} {}", escape(&l.log), value(l));
        }
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response())
}

/// Escapes a label value: backslash, double quote and newline.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    #[test]
    fn label_values_are_escaped() {
        assert_eq!(super::escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
