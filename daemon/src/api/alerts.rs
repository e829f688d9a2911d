//! Alert routes: the ledger (`/api/v1/alerts`), acknowledgement, and the
//! delivery log (`/api/v1/deliveries`).

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, AppState};
use certkeeper_model::admin::Principal;
use certkeeper_store::alerts::{AckOutcome, DeliveryFilter};

fn limit(query: &HashMap<String, String>) -> Result<usize, ApiError> {
    match query.get("limit") {
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ApiError::bad_request("limit: expected 1 to 1000")),
        None => Ok(100),
    }
}

fn one_of(
    query: &HashMap<String, String>,
    key: &str,
    allowed: &[&str],
) -> Result<Option<String>, ApiError> {
    match query.get(key) {
        Some(v) if allowed.contains(&v.as_str()) => Ok(Some(v.clone())),
        Some(v) => Err(ApiError::bad_request(format!(
            "{key}: `{v}` is not one of {}",
            allowed.join(", ")
        ))),
        None => Ok(None),
    }
}

/// Most ledger pages one scoped listing reads to fill its page.
const SCOPED_SCAN_PAGES: usize = 20;

/// `GET /api/v1/alerts?state=open|acknowledged|resolved&limit=N&cursor=C`:
/// the alert ledger, newest first, a page at a time (`next_cursor`).
///
/// A scoped caller's page holds only its certificates' alerts: the walk goes
/// on through the ledger until the page is full, or for at most
/// [`SCOPED_SCAN_PAGES`] pages, and the cursor resumes where it stopped, so a
/// short page never means the end unless `next_cursor` is absent.
pub async fn list_alerts(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let filter = one_of(&query, "state", &["open", "acknowledged", "resolved"])?;
    let limit = limit(&query)?;
    let mut cursor = query.get("cursor").cloned();
    let mut items = Vec::new();
    for _ in 0..SCOPED_SCAN_PAGES {
        let page = state
            .store
            .list_alerts(filter.as_deref(), limit - items.len(), cursor.as_deref())
            .await
            .map_err(super::list_error)?;
        let mut rows = page.items;
        if let Some(units) = principal.scope.units() {
            let fps: Vec<String> = rows.iter().map(|a| a.fingerprint.clone()).collect();
            let visible = state
                .store
                .in_scope(&fps, units, principal.scope.owner())
                .await
                .map_err(ApiError::internal)?;
            rows.retain(|a| visible.contains(&a.fingerprint));
        }
        items.extend(rows);
        cursor = page.next_cursor;
        if cursor.is_none() || items.len() >= limit {
            break;
        }
    }
    Ok(Json(json!({ "items": items, "next_cursor": cursor })).into_response())
}

/// Body of an acknowledgement.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckBody {
    /// Who acknowledges it.
    pub by: Option<String>,
}

/// `POST /api/v1/alerts/{id}/ack`: acknowledges an open alert (and the
/// looser-threshold alerts of the same certificate), which stops its
/// escalation.
pub async fn ack_alert(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    body: Option<Json<AckBody>>,
) -> Result<Response, ApiError> {
    let fingerprint = state
        .store
        .alert(&id)
        .await
        .map_err(ApiError::internal)?
        .map(|a| a.fingerprint);
    if fingerprint.is_some()
        && !super::lifecycle::certificate_in_scope(&state, &principal, fingerprint.as_deref())
            .await?
    {
        return Err(ApiError::not_found(format!(
            "no alert `{id}` (ids are listed by GET /api/v1/alerts)"
        )));
    }
    // An account acknowledges as itself; `by` is for the shared api.token.
    let by = match principal.user.as_str() {
        "api-token" | "anonymous" => body
            .and_then(|Json(b)| b.by)
            .unwrap_or(principal.user.clone()),
        user => user.to_owned(),
    };
    if by.is_empty() || by.len() > 200 {
        return Err(ApiError::bad_request("by: expected 1 to 200 characters"));
    }
    let now = chrono::Utc::now().timestamp();
    match state
        .store
        .ack_alert(&id, &by, now)
        .await
        .map_err(ApiError::internal)?
    {
        AckOutcome::Acknowledged(alert) => {
            super::accounts::audit(
                &state,
                &principal,
                "alert_ack",
                Some(&id),
                None,
                Some(serde_json::json!({ "by": by })),
            )
            .await?;
            Ok(Json(alert).into_response())
        }
        AckOutcome::NotOpen(alert) => Err(ApiError::conflict(format!(
            "alert `{id}` is {}, not open: nothing to acknowledge",
            alert.state
        ))),
        AckOutcome::Missing => Err(ApiError::not_found(format!(
            "no alert `{id}` (ids are listed by GET /api/v1/alerts)"
        ))),
    }
}

/// `GET /api/v1/deliveries?state=&event=&channel=&limit=`: the delivery
/// log, newest first, with counts by state.
pub async fn list_deliveries(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let filter = DeliveryFilter {
        state: one_of(&query, "state", &["pending", "delivered", "failed"])?,
        event: query.get("event").cloned(),
        channel: query.get("channel").cloned(),
        limit: limit(&query)?,
    };
    let items = state
        .store
        .list_deliveries(&filter)
        .await
        .map_err(ApiError::internal)?;
    let counts: serde_json::Map<String, serde_json::Value> = state
        .store
        .delivery_counts()
        .await
        .map_err(ApiError::internal)?
        .into_iter()
        .map(|(s, n)| (s, json!(n)))
        .collect();
    Ok(Json(json!({ "items": items, "counts": counts })).into_response())
}
