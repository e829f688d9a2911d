//! `GET /api/v1/reports/files/{job}/{file}`: a scheduled report's file, for
//! the link in its `report_ready` notification (a webhook or chat message
//! carries the link, not the file).
//!
//! Only files the job wrote are served: the job must be a `[[job]] type =
//! "report"` of the config and the name must have the job's
//! `NAME-YYYYMMDD-HHMMSS.EXT` form, so no path reaches outside its
//! directory. A report over every org unit is for callers who see every org
//! unit; a job limited to one unit is also for department admins of it.
//! Subscribers are refused (403): a unit's report lists other people's
//! certificates.

use axum::body::Body;
use axum::extract::{Extension, Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};
use crate::admin::{Principal, Scope};
use crate::config::JobConfig;

/// Serves one report file of a scheduled report job.
pub async fn download(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((job, file)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let missing = || ApiError::not_found(format!("no report `{file}` of job `{job}`"));
    let config = state.config();
    let Some(report) = config.jobs.iter().find_map(|j| match j {
        JobConfig::Report(r) if r.name == job => Some(r),
        _ => None,
    }) else {
        return Err(missing());
    };
    if !crate::reports::is_report_file(&job, &file) {
        return Err(missing());
    }
    let visible = match &principal.scope {
        Scope::All => true,
        Scope::Units(units) => report.org_unit.as_ref().is_some_and(|u| units.contains(u)),
        // A unit's report lists other people's certificates.
        Scope::Own { .. } => {
            return Err(ApiError::forbidden(
                "scheduled reports are for administrators and auditors; run a report of your own certificates with GET /api/v1/reports/{kind}",
            ));
        }
    };
    if !visible {
        return Err(missing());
    }
    let path = report.directory.join(&file);
    let handle = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        // Pruned, or never written.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(missing()),
        Err(e) => {
            return Err(ApiError::internal(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    let content_type = match file.rsplit('.').next() {
        Some("csv") => "text/csv; charset=utf-8",
        Some("json") => "application/json",
        Some("html") => "text/html; charset=utf-8",
        _ => "application/pdf",
    };
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(handle));
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        body,
    )
        .into_response())
}
