//! `/metrics`: Prometheus text exposition (format 0.0.4).
//!
//! Counts by status come from the status counters (cheap at any size). The
//! per-certificate `not_after` gauge, the one alerting rules key on, covers
//! the in-force and expired certificates that expire soonest, capped at
//! [`PER_CERTIFICATE_LIMIT`] series so a million-certificate inventory does not
//! produce a million-series scrape.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};
use crate::store::inventory::CertificateFilter;

/// Most certificates given their own `not_after` series.
pub const PER_CERTIFICATE_LIMIT: usize = 10_000;

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
    let mut filter = CertificateFilter {
        limit: 1_000,
        now: chrono::Utc::now().timestamp(),
        ..Default::default()
    };
    let mut emitted = 0;
    'pages: loop {
        let page = store
            .list_certificates(&filter)
            .await
            .map_err(ApiError::internal)?;
        for c in &page.items {
            if emitted == PER_CERTIFICATE_LIMIT {
                break 'pages;
            }
            let _ = writeln!(
                out,
                "certkeeper_certificate_not_after_timestamp_seconds{{fingerprint=\"{}\",subject=\"{}\",issuer=\"{}\",serial=\"{}\",status=\"{}\"}} {}",
                c.cert.fingerprint,
                escape(&c.cert.subject),
                escape(&c.cert.issuer),
                c.cert.serial,
                c.status,
                c.cert.not_after
            );
            emitted += 1;
        }
        match page.next_cursor {
            Some(cursor) => filter.cursor = Some(cursor),
            None => break,
        }
    }

    out.push_str("# HELP certkeeper_job_runs_total Finished runs of each job.\n");
    out.push_str("# TYPE certkeeper_job_runs_total counter\n");
    for j in &jobs {
        let _ = writeln!(
            out,
            "certkeeper_job_runs_total{{job=\"{}\"}} {}",
            escape(&j.name),
            j.runs
        );
    }
    out.push_str("# HELP certkeeper_job_failures_total Failed runs of each job.\n");
    out.push_str("# TYPE certkeeper_job_failures_total counter\n");
    for j in &jobs {
        let _ = writeln!(
            out,
            "certkeeper_job_failures_total{{job=\"{}\"}} {}",
            escape(&j.name),
            j.failures
        );
    }
    out.push_str("# HELP certkeeper_job_next_due_timestamp_seconds When each job is next due.\n");
    out.push_str("# TYPE certkeeper_job_next_due_timestamp_seconds gauge\n");
    for j in &jobs {
        let _ = writeln!(
            out,
            "certkeeper_job_next_due_timestamp_seconds{{job=\"{}\"}} {}",
            escape(&j.name),
            j.next_due
        );
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
