//! `GET /api/v1/reports/files/{job}/{file}`: a scheduled report's file, for
//! the link in its `report_ready` notification (a webhook or chat message
//! carries the link, not the file); `GET /api/v1/reports/files` lists them.
//!
//! Only files the job wrote are served: the job must be a `[[job]] type =
//! "report"` of the config and the name must have the job's
//! `NAME-YYYYMMDD-HHMMSS.EXT` form, so no path reaches outside its
//! directory. A report over every org unit is for callers who see every org
//! unit; a job limited to one unit is also for department admins of it.
//! Subscribers are refused (403): a unit's report lists other people's
//! certificates.

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{ApiError, AppState};
use crate::config::{JobConfig, ReportJob};
use certkeeper_model::admin::{Principal, Scope};

/// The report jobs of the config the caller may download from.
fn visible_jobs<'c>(
    config: &'c crate::config::Config,
    principal: &Principal,
) -> Result<Vec<&'c ReportJob>, ApiError> {
    let units = match &principal.scope {
        Scope::All => None,
        Scope::Units(units) => Some(units),
        // A unit's report lists other people's certificates.
        Scope::Own { .. } => {
            return Err(ApiError::forbidden(
                "scheduled reports are for administrators and auditors; run a report of your own certificates with GET /api/v1/reports/{kind}",
            ));
        }
    };
    Ok(config
        .jobs
        .iter()
        .filter_map(|j| match j {
            JobConfig::Report(r) => Some(r),
            _ => None,
        })
        .filter(|r| {
            units.is_none_or(|units| r.org_unit.as_ref().is_some_and(|u| units.contains(u)))
        })
        .collect())
}

/// `GET /api/v1/reports/files`: each scheduled report job the caller may
/// read, with the files it has written, newest first.
pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Response, ApiError> {
    let config = state.config();
    let mut items = Vec::new();
    for job in visible_jobs(&config, &principal)? {
        let mut files = Vec::new();
        // A directory not written yet is an empty list.
        if let Ok(mut entries) = tokio::fs::read_dir(&job.directory).await {
            while let Ok(Some(entry)) = entries.next_entry().await {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !crate::reports::is_report_file(&job.name, &name) {
                    continue;
                }
                let Ok(meta) = entry.metadata().await else {
                    continue;
                };
                let modified = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_secs());
                files.push(json!({
                    "name": name,
                    "bytes": meta.len(),
                    "modified": modified,
                    "url": crate::reports::download_path(&job.name, &name),
                }));
            }
        }
        // The names carry the time: newest first.
        files.sort_by(|a, b| b["name"].as_str().cmp(&a["name"].as_str()));
        items.push(json!({
            "job": job.name,
            "kind": job.kind,
            "format": job.format,
            "schedule": job.schedule,
            "org_unit": job.org_unit,
            "files": files,
        }));
    }
    Ok(Json(json!({ "items": items })).into_response())
}

/// Serves one report file of a scheduled report job.
pub async fn download(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((job, file)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let missing = || ApiError::not_found(format!("no report `{file}` of job `{job}`"));
    let config = state.config();
    let Some(report) = visible_jobs(&config, &principal)?
        .into_iter()
        .find(|r| r.name == job)
    else {
        return Err(missing());
    };
    if !crate::reports::is_report_file(&job, &file) {
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
