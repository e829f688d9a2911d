//! Lifecycle routes: managed certificates, renew, revoke-and-replace,
//! revoke, and the internal CAs' CRLs.
//!
//! Requests only record what is wanted and wake the renewal worker (202);
//! the work itself runs in the worker, step by persisted step, and its
//! progress shows in `GET /api/v1/managed`. Sealed keys never leave the
//! store: the listing is a view without them.

use axum::extract::{Extension, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use certkeeper_connectors::RevocationReason;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ApiError, AppState};
use crate::renewal::{Renewer, RequestError};
use certkeeper_model::admin::{Principal, Scope};
use certkeeper_store::managed::{ManagedState, OperationKind};

/// A managed certificate as the API shows it.
#[derive(Debug, Serialize)]
pub struct ManagedView {
    /// The `[[certificate]]` name.
    pub name: String,
    /// `pending`, `issuing`, `renewing`, `replacing`, `valid`, `failing`.
    pub state: &'static str,
    /// Fingerprint of the certificate in service.
    pub fingerprint: Option<String>,
    /// Its end of validity (Unix seconds).
    pub not_after: Option<i64>,
    /// Issuances completed.
    pub generation: u64,
    /// When the next renewal is due (Unix seconds).
    pub renew_at: Option<i64>,
    /// The CA's suggested renewal window, if it offers one.
    pub window: Option<(i64, i64)>,
    /// The operation in progress and its step.
    pub operation: Option<serde_json::Value>,
    /// Failures since the last success.
    pub attempts: u32,
    /// When the next attempt is allowed (backoff).
    pub next_attempt: Option<i64>,
    /// The last failure.
    pub last_error: Option<String>,
    /// Earlier certificates, newest first.
    pub previous: Vec<String>,
}

impl From<&ManagedState> for ManagedView {
    fn from(s: &ManagedState) -> Self {
        let state = match (&s.operation, &s.current) {
            (Some(_), _) if s.attempts > 0 => "failing",
            (Some(op), _) => match op.kind {
                OperationKind::Issue => "issuing",
                OperationKind::Renew => "renewing",
                OperationKind::Replace => "replacing",
            },
            (None, None) => "pending",
            (None, Some(_)) if s.attempts > 0 => "failing",
            (None, Some(_)) => "valid",
        };
        Self {
            name: s.name.clone(),
            state,
            fingerprint: s.current.as_ref().map(|c| c.fingerprint.clone()),
            not_after: s.current.as_ref().map(|c| c.not_after),
            generation: s.generation,
            renew_at: s.renew_at,
            window: s.window,
            operation: s.operation.as_ref().map(|op| {
                json!({
                    "kind": op.kind,
                    "step": op.step,
                    "reason": op.reason,
                    "new_fingerprint": op.new.as_ref().map(|n| n.fingerprint.clone()),
                    "started": op.started,
                })
            }),
            attempts: s.attempts,
            next_attempt: s.next_attempt,
            last_error: s.last_error.clone(),
            previous: s.previous.iter().map(|p| p.fingerprint.clone()).collect(),
        }
    }
}

pub(super) fn renewer(state: &AppState) -> Result<&Renewer, ApiError> {
    state.renewer.as_deref().ok_or_else(|| ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        code: "unavailable",
        message: "the renewal worker is not running".into(),
    })
}

pub(super) fn request_error(e: RequestError) -> ApiError {
    match e {
        RequestError::NotFound(m) => ApiError::not_found(m),
        RequestError::Conflict(m) => ApiError {
            status: StatusCode::CONFLICT,
            code: "conflict",
            message: m,
        },
        RequestError::Invalid(m) => ApiError::unprocessable(m),
        RequestError::Failed(m) => ApiError {
            status: StatusCode::BAD_GATEWAY,
            code: "failed",
            message: m,
        },
    }
}

/// Whether the certificate `fingerprint` is in the caller's scope; unknown
/// certificates are in a primary admin's scope only.
pub async fn certificate_in_scope(
    state: &AppState,
    principal: &Principal,
    fingerprint: Option<&str>,
) -> Result<bool, ApiError> {
    if principal.scope == Scope::All {
        return Ok(true);
    }
    let Some(fp) = fingerprint else {
        return Ok(false);
    };
    Ok(state
        .store
        .certificate(&fp.to_ascii_lowercase())
        .await
        .map_err(ApiError::internal)?
        .is_some_and(|(cert, _)| principal.can_see(&cert)))
}

/// `GET /api/v1/managed?name=&fingerprint=`: every managed certificate in
/// the caller's scope, or the one of that name, or the one holding that
/// certificate now or before.
pub async fn list_managed(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Result<Response, ApiError> {
    if let Some(key) = query
        .keys()
        .find(|k| !["name", "fingerprint"].contains(&k.as_str()))
    {
        return Err(ApiError::bad_request(format!(
            "unknown parameter `{key}` (expected name or fingerprint)"
        )));
    }
    if let Some(key) = ["name", "fingerprint"]
        .into_iter()
        .find(|k| query.get(*k).is_some_and(|v| v.trim().is_empty()))
    {
        return Err(ApiError::bad_request(format!(
            "`{key}` is empty: give a value or leave the parameter out"
        )));
    }
    let fingerprint = query
        .get("fingerprint")
        .map(|f| f.replace(':', "").to_ascii_lowercase());
    let holds = |m: &ManagedState| {
        fingerprint.as_deref().is_none_or(|fp| {
            m.current.as_ref().is_some_and(|c| c.fingerprint == fp)
                || m.previous.iter().any(|p| p.fingerprint == fp)
        })
    };
    let renewer = renewer(&state)?;
    let items: Vec<ManagedState> = match (query.get("name"), fingerprint.as_deref()) {
        (None, None) => renewer.list().await,
        (Some(name), _) => state.store.managed(name).await.map(Vec::from_iter),
        (None, Some(fp)) => state.store.managed_holding(fp).await.map(Vec::from_iter),
    }
    .map_err(ApiError::internal)?;
    let items: Vec<ManagedState> = items.into_iter().filter(|m| holds(m)).collect();
    let mut views = Vec::new();
    for view in items.iter().map(ManagedView::from) {
        if certificate_in_scope(&state, &principal, view.fingerprint.as_deref()).await? {
            views.push(view);
        }
    }
    Ok(axum::Json(json!({ "items": views })).into_response())
}

/// `POST /api/v1/managed`: a `[[certificate]]` table as JSON (no deploy
/// targets); issued at once.
pub async fn create_managed(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    axum::Json(spec): axum::Json<serde_json::Value>,
) -> Result<Response, ApiError> {
    let name = renewer(&state)?
        .create(spec.clone())
        .await
        .map_err(request_error)?;
    super::accounts::audit(
        &state,
        &principal,
        "managed_create",
        Some(&name),
        None,
        Some(spec),
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(json!({ "managed": name }))).into_response())
}

/// `POST /api/v1/managed/adopt`: make a certificate of the inventory a
/// managed certificate renewing through a connector, issuing nothing now.
pub async fn adopt_managed(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    axum::Json(body): axum::Json<serde_json::Value>,
) -> Result<Response, ApiError> {
    let field = |name: &str| body.get(name).and_then(|v| v.as_str());
    let fingerprint = field("fingerprint")
        .map(|f| f.replace(':', "").to_ascii_lowercase())
        .filter(|f| f.len() == 64 && f.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| {
            ApiError::bad_request("fingerprint: expected the certificate's SHA-256 (64 hex digits)")
        })?;
    let fingerprint = fingerprint.as_str();
    if body
        .get("name")
        .is_some_and(|n| !n.is_string() && !n.is_null())
    {
        return Err(ApiError::bad_request("name: expected a string"));
    }
    let connector = field("connector")
        .ok_or_else(|| ApiError::bad_request("connector: expected a [[connector]] name"))?;
    if let Some(unknown) = body.as_object().and_then(|o| {
        o.keys()
            .find(|k| !["fingerprint", "connector", "name"].contains(&k.as_str()))
    }) {
        return Err(ApiError::bad_request(format!(
            "unknown field `{unknown}` (expected fingerprint, connector, name)"
        )));
    }
    let adopted = renewer(&state)?
        .adopt(fingerprint, connector, field("name"))
        .await
        .map_err(request_error)?;
    super::accounts::audit(
        &state,
        &principal,
        "managed_adopt",
        Some(&adopted.managed),
        None,
        Some(json!({ "fingerprint": fingerprint, "connector": connector })),
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(adopted)).into_response())
}

/// `DELETE /api/v1/managed/{name}`: stop managing one created through the API.
pub async fn delete_managed(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    renewer(&state)?
        .remove(&name)
        .await
        .map_err(request_error)?;
    super::accounts::audit(
        &state,
        &principal,
        "managed_delete",
        Some(&name),
        None,
        None,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/v1/events?limit=N`: the newest lifecycle events (the outbox
/// alerting delivers from), newest first.
pub async fn list_events(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let limit = match query.get("limit") {
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ApiError::bad_request("limit: expected 1 to 1000"))?,
        None => 100,
    };
    let events = state
        .store
        .recent_events(limit)
        .await
        .map_err(ApiError::internal)?;
    let items: Vec<serde_json::Value> = events
        .into_iter()
        .map(|e| e.event)
        .filter(|e| match principal.scope.units() {
            None => true,
            Some(units) => {
                e["certificate"]["org_unit"]
                    .as_str()
                    .is_some_and(|u| units.iter().any(|x| x == u))
                    && principal.scope.owner().is_none_or(|owner| {
                        e["certificate"]["contacts"].as_array().is_some_and(|c| {
                            c.iter()
                                .any(|c| c.as_str().is_some_and(|c| c.eq_ignore_ascii_case(owner)))
                        })
                    })
            }
        })
        .collect();
    Ok(axum::Json(json!({ "items": items })).into_response())
}

/// `POST /api/v1/managed/renew-all`.
pub async fn renew_all(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Response, ApiError> {
    let n = renewer(&state)?.renew(None).await.map_err(request_error)?;
    super::accounts::audit(
        &state,
        &principal,
        "renew_all",
        None,
        None,
        Some(json!({ "renewing": n })),
    )
    .await?;
    Ok((StatusCode::ACCEPTED, axum::Json(json!({ "renewing": n }))).into_response())
}

/// `POST /api/v1/managed/{name}/renew`.
pub async fn renew_one(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    if principal.scope != Scope::All {
        let fingerprint = state
            .store
            .managed(&name)
            .await
            .map_err(ApiError::internal)?
            .and_then(|m| m.current.map(|c| c.fingerprint));
        if !certificate_in_scope(&state, &principal, fingerprint.as_deref()).await? {
            return Err(ApiError::not_found(format!(
                "no managed certificate `{name}`"
            )));
        }
    }
    audit_step(
        &state,
        &principal,
        "certificate_renew",
        &name,
        Step::Attempt,
    )
    .await?;
    let names = [name];
    let result = renewer(&state)?.renew(Some(&names)).await;
    let [name] = names;
    let n = audited(&state, &principal, "certificate_renew", &name, result).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(json!({ "renewing": n }))).into_response())
}

/// Which audit entry of a lifecycle request: the attempt (written before
/// acting) or its outcome (after).
enum Step<'a> {
    Attempt,
    Outcome(Result<(), &'a str>),
}

/// One audit entry of a lifecycle request on `object`: `attempt` before
/// acting, then `success` or `failure` (with the error) once it is known,
/// so the log never says something happened that did not.
async fn audit_step(
    state: &AppState,
    principal: &Principal,
    action: &str,
    object: &str,
    step: Step<'_>,
) -> Result<(), ApiError> {
    let (outcome, after) = match step {
        Step::Attempt => ("attempt", None),
        Step::Outcome(Ok(())) => ("success", None),
        Step::Outcome(Err(error)) => ("failure", Some(json!({ "error": error }))),
    };
    super::accounts::audit_entry(state, principal, action, Some(object), outcome, after).await
}

/// Audits the outcome of `result` and passes it on as the API's answer.
async fn audited<T>(
    state: &AppState,
    principal: &Principal,
    action: &str,
    object: &str,
    result: Result<T, crate::renewal::RequestError>,
) -> Result<T, ApiError> {
    let error = result.as_ref().err().map(ToString::to_string);
    let step = Step::Outcome(error.as_deref().map_or(Ok(()), Err));
    audit_step(state, principal, action, object, step).await?;
    result.map_err(request_error)
}

/// Body of replace and revoke.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    /// RFC 5280 reason name (`keyCompromise`, `superseded`, ...).
    pub reason: Option<String>,
}

fn reason(
    body: Option<axum::Json<ReasonBody>>,
    default: RevocationReason,
) -> Result<RevocationReason, ApiError> {
    match body.and_then(|b| b.0.reason) {
        Some(text) => text.parse().map_err(ApiError::bad_request),
        None => Ok(default),
    }
}

/// The scope check, reason and attempt audit entry replace and revoke
/// share, written before they act; answers the reason.
async fn before_revoking(
    state: &AppState,
    principal: &Principal,
    fingerprint: &str,
    body: Option<axum::Json<ReasonBody>>,
    action: &str,
    default: RevocationReason,
) -> Result<RevocationReason, ApiError> {
    if !certificate_in_scope(state, principal, Some(fingerprint)).await? {
        return Err(ApiError::not_found(format!("no certificate {fingerprint}")));
    }
    let reason = reason(body, default)?;
    super::accounts::audit_entry(
        state,
        principal,
        action,
        Some(fingerprint),
        "attempt",
        Some(json!({ "reason": format!("{reason:?}") })),
    )
    .await?;
    Ok(reason)
}

/// `POST /api/v1/certificates/{fingerprint}/replace`.
pub async fn replace(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(fingerprint): Path<String>,
    body: Option<axum::Json<ReasonBody>>,
) -> Result<Response, ApiError> {
    let reason = before_revoking(
        &state,
        &principal,
        &fingerprint,
        body,
        "certificate_replace",
        RevocationReason::Superseded,
    )
    .await?;
    let result = renewer(&state)?
        .replace(&fingerprint.to_ascii_lowercase(), reason)
        .await;
    let name = audited(
        &state,
        &principal,
        "certificate_replace",
        &fingerprint,
        result,
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({ "managed": name, "replacing": fingerprint })),
    )
        .into_response())
}

/// `POST /api/v1/certificates/{fingerprint}/revoke`.
pub async fn revoke(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(fingerprint): Path<String>,
    body: Option<axum::Json<ReasonBody>>,
) -> Result<Response, ApiError> {
    let reason = before_revoking(
        &state,
        &principal,
        &fingerprint,
        body,
        "certificate_revoke",
        RevocationReason::CessationOfOperation,
    )
    .await?;
    let result = renewer(&state)?
        .revoke(&fingerprint.to_ascii_lowercase(), reason)
        .await;
    let name = audited(
        &state,
        &principal,
        "certificate_revoke",
        &fingerprint,
        result,
    )
    .await?;
    Ok(axum::Json(json!({ "managed": name, "revoked": fingerprint })).into_response())
}

/// `GET /crl/{connector}`: an internal CA's current CRL (DER), public as
/// relying parties fetch it without credentials.
pub async fn crl(
    State(state): State<AppState>,
    Path(connector): Path<String>,
) -> Result<Response, ApiError> {
    let name = connector.strip_suffix(".crl").unwrap_or(&connector);
    let ca = renewer(&state)?
        .registry()
        .connectors
        .get(name)
        .and_then(|e| e.internal.clone())
        .ok_or_else(|| ApiError::not_found(format!("no internal CA named `{name}`")))?;
    Ok((
        [(header::CONTENT_TYPE, "application/pkix-crl")],
        ca.crl_der(),
    )
        .into_response())
}
