//! Retiring certificates Certkeeper did not issue: deactivate, reactivate,
//! and the candidates discovery has stopped seeing (the store's `retire`
//! module says what makes one).
//!
//! A certificate a managed certificate holds now is Certkeeper's to retire
//! through `DELETE /api/v1/managed/{name}` (or revoke), so deactivating it is
//! refused with 409. Both changes are audited with the caller's reason.

use axum::extract::{Extension, Path, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::lifecycle::certificate_in_scope;
use super::{ApiError, AppState};
use certkeeper_model::admin::{Principal, Scope};

/// Body of deactivate.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeactivateBody {
    /// Why (shown in the inventory and the audit log).
    pub reason: Option<String>,
}

/// Fingerprint from the path, lowercase hex without colons.
fn fingerprint_of(path: &str) -> String {
    path.replace(':', "").to_ascii_lowercase()
}

/// `POST /api/v1/certificates/{fingerprint}/deactivate`.
pub async fn deactivate(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(fingerprint): Path<String>,
    body: Option<axum::Json<DeactivateBody>>,
) -> Result<Response, ApiError> {
    let fp = fingerprint_of(&fingerprint);
    let reason = body
        .and_then(|b| b.0.reason)
        .filter(|r| !r.trim().is_empty());
    if !certificate_in_scope(&state, &principal, Some(&fp)).await? {
        return Err(ApiError::not_found(format!("no certificate {fp}")));
    }
    if let Some(managed) = state
        .store
        .managed_holding(&fp)
        .await
        .map_err(ApiError::internal)?
        .filter(|m| m.current.as_ref().is_some_and(|c| c.fingerprint == fp))
    {
        return Err(ApiError::conflict(format!(
            "certificate {fp} is in service for the managed certificate `{}`: stop managing it (DELETE /api/v1/managed/{}) or revoke it instead",
            managed.name, managed.name
        )));
    }
    let now = chrono::Utc::now().timestamp();
    let before = state
        .store
        .deactivate(&fp, &principal.user, reason.as_deref(), now)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(format!("no certificate {fp}")))?;
    super::accounts::audit(
        &state,
        &principal,
        "certificate_deactivate",
        Some(&fp),
        Some(json!({ "status": before })),
        Some(json!({ "status": "deactivated", "reason": reason })),
    )
    .await?;
    Ok(
        axum::Json(json!({ "fingerprint": fp, "status": "deactivated", "was": before }))
            .into_response(),
    )
}

/// `POST /api/v1/certificates/{fingerprint}/reactivate`.
pub async fn reactivate(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(fingerprint): Path<String>,
) -> Result<Response, ApiError> {
    let fp = fingerprint_of(&fingerprint);
    if !certificate_in_scope(&state, &principal, Some(&fp)).await? {
        return Err(ApiError::not_found(format!("no certificate {fp}")));
    }
    let expiring_days = state.config().inventory.expiring_days;
    let now = chrono::Utc::now().timestamp();
    let Some(status) = state
        .store
        .reactivate(&fp, now, expiring_days)
        .await
        .map_err(ApiError::internal)?
    else {
        return Err(ApiError::conflict(format!(
            "certificate {fp} is not deactivated"
        )));
    };
    super::accounts::audit(
        &state,
        &principal,
        "certificate_reactivate",
        Some(&fp),
        Some(json!({ "status": "deactivated" })),
        Some(json!({ "status": status })),
    )
    .await?;
    Ok(axum::Json(json!({ "fingerprint": fp, "status": status })).into_response())
}

/// `GET /api/v1/deactivation-candidates`: certificates every discovery
/// source that saw them has scanned `inventory.candidate_after_missed_scans`
/// times since without seeing them, in the caller's scope, oldest first.
pub async fn candidates(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Response, ApiError> {
    let config = state.config();
    let missed = config.inventory.candidate_after_missed_scans as usize;
    let mut cutoffs = std::collections::BTreeMap::new();
    if missed > 0 {
        let sources = config
            .discovery
            .network
            .iter()
            .map(|s| s.name.clone())
            .chain(config.discovery.files.iter().map(|s| s.name.clone()));
        for source in sources {
            let runs = state
                .store
                .job_runs(&source, 50)
                .await
                .map_err(ApiError::internal)?;
            let mut started: Vec<i64> = runs
                .iter()
                .filter(|r| r.state == "succeeded")
                .map(|r| r.started)
                .collect();
            started.sort_unstable_by(|a, b| b.cmp(a));
            if let Some(&cutoff) = started.get(missed - 1) {
                cutoffs.insert(source, cutoff);
            }
        }
    }
    let found = state
        .store
        .deactivation_candidates(&cutoffs, 1000)
        .await
        .map_err(ApiError::internal)?;
    let visible = |c: &certkeeper_store::retire::Candidate| match &principal.scope {
        Scope::All => true,
        scope => {
            let owner = c
                .contacts
                .iter()
                .find(|x| scope.owner().is_some_and(|o| x.eq_ignore_ascii_case(o)))
                .map(String::as_str);
            scope.covers(c.org_unit.as_deref(), owner)
        }
    };
    let items: Vec<serde_json::Value> = found
        .iter()
        .filter(|c| visible(c))
        .map(|c| {
            json!({
                "fingerprint": c.fingerprint,
                "subject": c.subject,
                "org_unit": c.org_unit,
                "last_seen": c.last_seen,
                "places": c.places.iter().map(|(source, location, last_seen)| json!({
                    "source": source, "location": location, "last_seen": last_seen,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(axum::Json(json!({ "items": items, "missed_scans": missed })).into_response())
}
