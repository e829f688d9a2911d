//! Enrollment: requests decided by the domain policy, approvals, and the
//! managed domains themselves.
//!
//! A request's names are normalised (IDN to A-labels, wildcards only where
//! allowed) and decided by the policy for its org unit and the units above
//! it: every name pre-approved → approved at once and issued through the
//! connector (a managed certificate named after the request); any name
//! needing approval → `pending`, approvers told by a
//! `request_pending_approval` event; any name blocked, owned by another unit
//! or unmanaged → `rejected` with the reason. Every transition is an event
//! and an audit entry.

use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use certkeeper_integrations::{Event, EventKind};
use certkeeper_model::event::StoredEvent;
use certkeeper_model::request::RequestState;
use serde::Deserialize;
use serde_json::{Value, json};

use super::accounts::audit;
use super::{ApiError, AppState};
use certkeeper_model::admin::domains::{Decision, DomainPolicy, DomainRule, normalise_identifier};
use certkeeper_model::admin::{Principal, Role, Scope};
use certkeeper_store::requests::Request;

/// Body of `POST /api/v1/requests`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRequest {
    /// DNS names and IP addresses.
    pub identifiers: Vec<String>,
    /// The org unit it is for (default: the requester's first unit).
    pub org_unit: Option<String>,
    /// The connector (CA account) to issue through.
    pub connector: String,
    /// Key type (default `ecdsa_p256`).
    pub key_type: Option<String>,
    /// Requested validity in days.
    pub validity_days: Option<u32>,
    /// Requested validity in seconds (short-lived certificates; overrides
    /// `validity_days`).
    pub validity_seconds: Option<u64>,
    /// Technical contact (default: the requester).
    pub contact: Option<String>,
}

fn event(id: String, kind: EventKind) -> StoredEvent {
    StoredEvent::from(&Event {
        id,
        at: chrono::Utc::now(),
        kind,
        certificate: None,
    })
}

async fn ancestors(state: &AppState, unit: &str) -> Result<Vec<String>, ApiError> {
    let all = state.store.org_units().await.map_err(ApiError::internal)?;
    let mut out = Vec::new();
    let mut current = all
        .iter()
        .find(|u| u.name == unit)
        .and_then(|u| u.parent.clone());
    while let Some(p) = current {
        if out.contains(&p) {
            break;
        }
        current = all
            .iter()
            .find(|u| u.name == p)
            .and_then(|u| u.parent.clone());
        out.push(p);
    }
    Ok(out)
}

fn in_scope(principal: &Principal, unit: &str) -> bool {
    match &principal.scope {
        Scope::All => true,
        Scope::Units(units) | Scope::Own { units, .. } => units.iter().any(|u| u == unit),
    }
}

/// Starts issuance of an approved request: a managed certificate named after it.
async fn issue(state: &AppState, request: &Request) -> Result<String, ApiError> {
    let renewer = super::lifecycle::renewer(state)?;
    let mut spec = json!({
        "name": request.id,
        "identifiers": request.identifiers,
        "connector": request.connector,
        "key_type": request.key_type,
        "org_unit": request.org_unit,
        "contacts": [request.contact],
    });
    if let Some(days) = request.validity_days {
        spec["validity_days"] = json!(days);
    }
    if let Some(seconds) = request.validity_seconds {
        spec["validity_seconds"] = json!(seconds);
    }
    renewer
        .create(spec)
        .await
        .map_err(super::lifecycle::request_error)
}

/// Approved requests whose issuance never started: the daemon stopped
/// between recording the approval and creating the managed certificate.
/// Starts each (its managed certificate is named after the request, so one
/// created just before the stop is found, not made twice) and records it on
/// the request; returns how many were resumed. Run at start.
pub async fn resume_approved(state: &AppState) -> Result<usize, ApiError> {
    let mut resumed = 0;
    let mut cursor: Option<String> = None;
    loop {
        let page = state
            .store
            .requests(
                None,
                None,
                Some(RequestState::Approved),
                500,
                cursor.as_deref(),
            )
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        // Renewal requests name the managed certificate they renew; only
        // enrollments issue a new one.
        for request in page
            .items
            .iter()
            .filter(|r| r.managed.is_none() && !r.id.starts_with("renew-"))
        {
            let managed = match state
                .store
                .managed(&request.id)
                .await
                .map_err(ApiError::internal)?
            {
                Some(m) => m.name,
                None => match issue(state, request).await {
                    Ok(name) => name,
                    Err(e) => {
                        tracing::warn!(request = %request.id, error = %e.message, "an approved request cannot be issued");
                        continue;
                    }
                },
            };
            state
                .store
                .transition_request(
                    &request.id,
                    RequestState::Approved,
                    json!({ "managed": managed }),
                    None,
                    chrono::Utc::now().timestamp(),
                )
                .await
                .map_err(ApiError::internal)?;
            tracing::info!(request = %request.id, managed = %managed, "resumed the issuance of an approved request");
            resumed += 1;
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(resumed),
        }
    }
}

/// `POST /api/v1/requests`.
pub async fn create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Json(body): Json<NewRequest>,
) -> Result<Response, ApiError> {
    let (status, request) = enroll(&state, &principal, body).await?;
    Ok((status, Json(request)).into_response())
}

/// Decides one request and, when approved, starts issuance.
async fn enroll(
    state: &AppState,
    principal: &Principal,
    body: NewRequest,
) -> Result<(StatusCode, Request), ApiError> {
    let state = state.clone();
    let principal = principal.clone();
    for (field, value) in [
        ("org_unit", body.org_unit.as_deref()),
        ("connector", Some(body.connector.as_str())),
        ("contact", body.contact.as_deref()),
    ] {
        if value.is_some_and(|v| v.trim().is_empty()) {
            return Err(ApiError::bad_request(format!("{field}: empty")));
        }
    }
    let unit = match (&body.org_unit, principal.scope.units()) {
        (Some(u), _) => u.clone(),
        (None, Some(units)) if !units.is_empty() => units[0].clone(),
        (None, _) => {
            return Err(ApiError::bad_request(
                "org_unit: name the org unit the certificate is for",
            ));
        }
    };
    if !state
        .store
        .org_unit_exists(&unit)
        .await
        .map_err(ApiError::internal)?
    {
        return Err(ApiError::bad_request(format!(
            "org_unit: no org unit `{unit}`"
        )));
    }
    if !in_scope(&principal, &unit) {
        return Err(ApiError::forbidden(format!(
            "you may not request certificates for org unit `{unit}`"
        )));
    }
    if body.identifiers.is_empty() || body.identifiers.len() > 100 {
        return Err(ApiError::bad_request(
            "identifiers: expected 1 to 100 names",
        ));
    }
    let mut identifiers = Vec::new();
    for raw in &body.identifiers {
        identifiers.push(
            normalise_identifier(raw)
                .map_err(|e| ApiError::bad_request(format!("identifiers: `{raw}`: {e}")))?,
        );
    }
    let key_type = body.key_type.clone().unwrap_or_else(|| "ecdsa_p256".into());
    let contact = body
        .contact
        .clone()
        .unwrap_or_else(|| principal.user.clone());
    let rules = state
        .store
        .domain_rules()
        .await
        .map_err(ApiError::internal)?;
    let policy = DomainPolicy::new(rules).map_err(ApiError::internal)?;
    let decision = policy.decide(&unit, &ancestors(&state, &unit).await?, &identifiers);
    let now = chrono::Utc::now().timestamp();
    let id = format!("req-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let names: Vec<String> = identifiers.iter().map(ToString::to_string).collect();
    let mut request = Request {
        id: id.clone(),
        requester: principal.user.clone(),
        org_unit: unit,
        identifiers: names.clone(),
        connector: body.connector.clone(),
        key_type,
        validity_days: body.validity_days,
        validity_seconds: body.validity_seconds,
        contact,
        state: RequestState::Pending,
        assignee: None,
        decided_by: None,
        reason: None,
        managed: None,
        created: now,
        decided: None,
    };
    let (ev, status) = match &decision {
        Decision::PreApproved => {
            request.state = RequestState::Approved;
            request.decided_by = Some("rules".into());
            request.decided = Some(now);
            (
                event(
                    format!("request:{id}:approved"),
                    EventKind::RequestApproved {
                        request: id.clone(),
                        approver: "rules".into(),
                    },
                ),
                StatusCode::CREATED,
            )
        }
        Decision::RequiresApproval { names } => {
            request.reason = Some(format!("approval needed for {}", names.join(", ")));
            (
                event(
                    format!("request:{id}:pending"),
                    EventKind::RequestPendingApproval {
                        request: id.clone(),
                        requester: principal.user.clone(),
                        identifiers: request.identifiers.clone(),
                    },
                ),
                StatusCode::ACCEPTED,
            )
        }
        Decision::Rejected { reason } => {
            request.state = RequestState::Rejected;
            request.decided_by = Some("rules".into());
            request.reason = Some(reason.clone());
            request.decided = Some(now);
            (
                event(
                    format!("request:{id}:rejected"),
                    EventKind::RequestRejected {
                        request: id.clone(),
                        reason: reason.clone(),
                    },
                ),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
        }
    };
    // A connector that does not exist is the requester's mistake, whatever
    // the policy says; check before recording anything.
    if request.state != RequestState::Rejected {
        let renewer = super::lifecycle::renewer(&state)?;
        if !renewer.connector_names().contains(&request.connector) {
            return Err(ApiError::bad_request(format!(
                "connector: no connector `{}`",
                request.connector
            )));
        }
        if let Some(units) = state
            .store
            .units_of(&request.connector)
            .await
            .map_err(ApiError::internal)?
            && units.remaining() <= 0
        {
            return Err(ApiError::unprocessable(format!(
                "connector `{}` has no purchased units left; a primary admin adds more with POST /api/v1/units",
                request.connector
            )));
        }
    }
    state
        .store
        .create_request(&request, &ev)
        .await
        .map_err(ApiError::internal)?;
    audit(
        &state,
        &principal,
        "request_create",
        Some(&id),
        None,
        Some(json!(request)),
    )
    .await?;
    if request.state == RequestState::Approved {
        let managed = issue(&state, &request).await?;
        request = state
            .store
            .transition_request(
                &id,
                RequestState::Approved,
                json!({ "managed": managed }),
                None,
                now,
            )
            .await
            .map_err(ApiError::internal)?
            .unwrap_or(request);
    }
    Ok((status, request))
}

/// `POST /api/v1/requests/bulk`: many requests from CSV (RFC 4180, UTF-8,
/// a header row), as in a merger. Columns: `identifiers` (names separated
/// by spaces or semicolons), `connector`, and optionally `org_unit`,
/// `contact`, `key_type`, `validity_days`. Each row is decided on its own;
/// the answer lists every row's outcome.
pub async fn bulk(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(body.as_ref());
    let headers = reader
        .headers()
        .map_err(|e| ApiError::bad_request(format!("CSV header: {e}")))?
        .clone();
    let column = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let known = [
        "identifiers",
        "connector",
        "org_unit",
        "contact",
        "key_type",
        "validity_days",
    ];
    if let Some(h) = headers
        .iter()
        .find(|h| !known.iter().any(|k| h.eq_ignore_ascii_case(k)))
    {
        return Err(ApiError::bad_request(format!(
            "CSV header: unknown column `{h}` (expected {})",
            known.join(", ")
        )));
    }
    let (Some(ids_col), Some(connector_col)) = (column("identifiers"), column("connector")) else {
        return Err(ApiError::bad_request(
            "CSV header: expected columns identifiers and connector (and optionally org_unit, contact, key_type, validity_days)",
        ));
    };
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = record.map_err(|e| ApiError::bad_request(format!("CSV line {line}: {e}")))?;
        if let Some(long) = record
            .iter()
            .position(|f| f.chars().count() > super::limits::MAX_TEXT_CHARS)
        {
            return Err(ApiError::bad_request(format!(
                "CSV line {line}, column {}: longer than {} characters",
                long + 1,
                super::limits::MAX_TEXT_CHARS
            )));
        }
        rows.push((line, record));
        if rows.len() > 10_000 {
            return Err(ApiError::bad_request("CSV: at most 10000 rows at once"));
        }
    }
    let field = |record: &csv::StringRecord, name: &str| {
        column(name)
            .and_then(|c| record.get(c))
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let mut results = Vec::new();
    let mut counts = std::collections::BTreeMap::<String, u64>::new();
    for (line, record) in rows {
        let validity_days = match field(&record, "validity_days").map(|v| v.parse::<u32>()) {
            Some(Ok(d)) => Some(d),
            Some(Err(_)) => {
                results.push(
                    json!({ "line": line, "error": "validity_days: expected a number of days" }),
                );
                *counts.entry("error".into()).or_default() += 1;
                continue;
            }
            None => None,
        };
        let request = NewRequest {
            identifiers: record
                .get(ids_col)
                .unwrap_or_default()
                .split([' ', ';'])
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            org_unit: field(&record, "org_unit"),
            connector: record.get(connector_col).unwrap_or_default().to_owned(),
            key_type: field(&record, "key_type"),
            validity_days,
            validity_seconds: None,
            contact: field(&record, "contact"),
        };
        match enroll(&state, &principal, request).await {
            Ok((_, r)) => {
                *counts.entry(r.state.as_str().to_owned()).or_default() += 1;
                results.push(json!({ "line": line, "id": r.id, "state": r.state, "reason": r.reason, "managed": r.managed }));
            }
            Err(e) => {
                *counts.entry("error".into()).or_default() += 1;
                results.push(json!({ "line": line, "error": e.message() }));
            }
        }
    }
    audit(
        &state,
        &principal,
        "requests_bulk",
        None,
        None,
        Some(json!({ "counts": counts })),
    )
    .await?;
    Ok(Json(json!({ "counts": counts, "rows": results })).into_response())
}

/// Most requests one page lists.
const MAX_REQUEST_PAGE: usize = 500;

/// `GET /api/v1/requests?state=&limit=&cursor=`: the caller's scope
/// (subscribers: their own), newest first, a page at a time
/// (`next_cursor`).
pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let state_filter = match query.get("state") {
        None => None,
        Some(s) => Some(s.parse::<RequestState>().map_err(|_| {
            ApiError::bad_request(format!("state: `{s}` is not pending, approved or rejected"))
        })?),
    };
    let limit = match query.get("limit") {
        None => 100,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_REQUEST_PAGE).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "limit: expected 1 to {MAX_REQUEST_PAGE}, got `{l}`"
                ))
            })?,
    };
    let page = state
        .store
        .requests(
            principal.scope.units(),
            principal.scope.owner(),
            state_filter,
            limit,
            query.get("cursor").map(String::as_str),
        )
        .await
        .map_err(super::list_error)?;
    Ok(Json(page).into_response())
}

async fn load(state: &AppState, principal: &Principal, id: &str) -> Result<Request, ApiError> {
    match state.store.request(id).await.map_err(ApiError::internal)? {
        Some(r)
            if in_scope(principal, &r.org_unit)
                && principal.scope.owner().is_none_or(|o| o == r.requester) =>
        {
            Ok(r)
        }
        _ => Err(ApiError::not_found(format!("no request `{id}`"))),
    }
}

/// `GET /api/v1/requests/{id}`.
pub async fn show(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(load(&state, &principal, &id).await?).into_response())
}

/// Body of reject and assign.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decide {
    /// Why (reject).
    pub reason: Option<String>,
    /// To whom (assign).
    pub to: Option<String>,
}

/// Applies `changes` to `request` if it is still pending (409 if someone
/// decided first), records `event` with it, and audits `action`.
async fn decide_pending(
    state: &AppState,
    principal: &Principal,
    request: &Request,
    changes: serde_json::Value,
    event: Option<StoredEvent>,
    action: &str,
) -> Result<Request, ApiError> {
    let now = chrono::Utc::now().timestamp();
    let Some(after) = state
        .store
        .transition_request(
            &request.id,
            RequestState::Pending,
            changes,
            event.as_ref(),
            now,
        )
        .await
        .map_err(ApiError::internal)?
    else {
        return Err(ApiError::conflict(format!(
            "request `{}` is {}, not pending",
            request.id, request.state
        )));
    };
    audit(
        state,
        principal,
        action,
        Some(&request.id),
        Some(json!(request)),
        Some(json!(after)),
    )
    .await?;
    Ok(after)
}

/// `POST /api/v1/requests/{id}/approve`: approves a pending request in the
/// approver's scope and starts issuance.
pub async fn approve(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let request = load(&state, &principal, &id).await?;
    if state.config().admin.four_eyes && request.requester == principal.user {
        return Err(ApiError::forbidden(
            "the four-eyes rule: a request is approved by someone other than its requester ([admin] four_eyes)",
        ));
    }
    let now = chrono::Utc::now().timestamp();
    let ev = event(
        format!("request:{id}:approved"),
        EventKind::RequestApproved {
            request: id.clone(),
            approver: principal.user.clone(),
        },
    );
    let approved = decide_pending(
        &state,
        &principal,
        &request,
        json!({ "state": "approved", "decided_by": principal.user, "decided": now }),
        Some(ev),
        "request_approve",
    )
    .await?;
    // A renewal request names its managed certificate: approving it
    // renews that one now instead of issuing a new one.
    let managed = match (&approved.managed, id.starts_with("renew-")) {
        (Some(m), true) => {
            super::lifecycle::renewer(&state)?
                .renew(Some(std::slice::from_ref(m)))
                .await
                .map_err(super::lifecycle::request_error)?;
            m.clone()
        }
        _ => issue(&state, &approved).await?,
    };
    let approved = state
        .store
        .transition_request(
            &id,
            RequestState::Approved,
            json!({ "managed": managed }),
            None,
            now,
        )
        .await
        .map_err(ApiError::internal)?
        .unwrap_or(approved);
    Ok(Json(approved).into_response())
}

/// `POST /api/v1/requests/{id}/reject` with `{"reason": "..."}`.
pub async fn reject(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    Json(body): Json<Decide>,
) -> Result<Response, ApiError> {
    let reason = body
        .reason
        .filter(|r| !r.trim().is_empty())
        .ok_or_else(|| ApiError::bad_request("reason: say why, for the requester"))?;
    let request = load(&state, &principal, &id).await?;
    let now = chrono::Utc::now().timestamp();
    let ev = event(
        format!("request:{id}:rejected"),
        EventKind::RequestRejected {
            request: id.clone(),
            reason: reason.clone(),
        },
    );
    let rejected = decide_pending(
        &state,
        &principal,
        &request,
        json!({ "state": "rejected", "decided_by": principal.user, "decided": now, "reason": reason }),
        Some(ev),
        "request_reject",
    )
    .await?;
    Ok(Json(rejected).into_response())
}

/// `POST /api/v1/requests/{id}/assign` with `{"to": "approver"}`.
pub async fn assign(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    Json(body): Json<Decide>,
) -> Result<Response, ApiError> {
    let to = body
        .to
        .map(|t| t.to_lowercase())
        .ok_or_else(|| ApiError::bad_request("to: name the approver"))?;
    let request = load(&state, &principal, &id).await?;
    let Some(user) = state.store.user(&to).await.map_err(ApiError::internal)? else {
        return Err(ApiError::bad_request(format!("to: no account `{to}`")));
    };
    let can_approve = match user.role {
        Role::PrimaryAdmin => true,
        Role::DepartmentAdmin => {
            let units = state
                .unit_closure(&user.units)
                .await
                .map_err(ApiError::internal)?;
            units.contains(&request.org_unit)
        }
        Role::Auditor | Role::Subscriber => false,
    };
    if !can_approve {
        return Err(ApiError::bad_request(format!(
            "to: `{to}` cannot approve requests of org unit `{}`",
            request.org_unit
        )));
    }
    let assigned = decide_pending(
        &state,
        &principal,
        &request,
        json!({ "assignee": to }),
        None,
        "request_assign",
    )
    .await?;
    Ok(Json(assigned).into_response())
}

/// `GET /api/v1/domains`.
pub async fn list_domains(State(state): State<AppState>) -> Result<Response, ApiError> {
    let rules = state
        .store
        .domain_rules()
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(json!({ "items": rules })).into_response())
}

/// `POST /api/v1/domains`: adds or replaces a managed-domain rule.
pub async fn put_domain(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Json(rule): Json<DomainRule>,
) -> Result<Response, ApiError> {
    DomainPolicy::new(vec![rule.clone()]).map_err(ApiError::bad_request)?;
    if let Some(unit) = &rule.org_unit
        && !state
            .store
            .org_unit_exists(unit)
            .await
            .map_err(ApiError::internal)?
    {
        return Err(ApiError::bad_request(format!(
            "org_unit: no org unit `{unit}`"
        )));
    }
    state
        .store
        .put_domain_rule(&rule)
        .await
        .map_err(ApiError::internal)?;
    audit(
        &state,
        &principal,
        "domain_put",
        Some(&rule.domain),
        None,
        Some(json!(rule)),
    )
    .await?;
    Ok(Json(rule).into_response())
}

/// `DELETE /api/v1/domains/{domain}`.
pub async fn delete_domain(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(domain): Path<String>,
) -> Result<Response, ApiError> {
    if !state
        .store
        .delete_domain_rule(&domain)
        .await
        .map_err(ApiError::internal)?
    {
        return Err(ApiError::not_found(format!("no rule for `{domain}`")));
    }
    audit(
        &state,
        &principal,
        "domain_delete",
        Some(&domain),
        None,
        None,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/v1/units`: purchased, used and remaining units per metered
/// connector.
pub async fn list_units(State(state): State<AppState>) -> Result<Response, ApiError> {
    let items: Vec<Value> = state
        .store
        .units()
        .await
        .map_err(ApiError::internal)?
        .into_iter()
        .map(|u| {
            let remaining = u.remaining();
            let mut v = json!(u);
            v["remaining"] = json!(remaining);
            v
        })
        .collect();
    Ok(Json(json!({ "items": items })).into_response())
}

/// Body of `POST /api/v1/units`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddUnits {
    /// The connector (CA account).
    pub connector: String,
    /// Units bought now (0 to only change the threshold).
    pub add: i64,
    /// Below this many left, `units_low` fires. Default 10.
    pub threshold: Option<i64>,
}

/// `POST /api/v1/units`: records purchased units for a connector (which
/// makes it metered).
pub async fn add_units(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Json(body): Json<AddUnits>,
) -> Result<Response, ApiError> {
    if !super::lifecycle::renewer(&state)?
        .connector_names()
        .contains(&body.connector)
    {
        return Err(ApiError::bad_request(format!(
            "connector: no connector `{}`",
            body.connector
        )));
    }
    if !(0..=10_000_000).contains(&body.add) {
        return Err(ApiError::bad_request("add: expected 0 to 10000000"));
    }
    let threshold = body.threshold.unwrap_or(10);
    if !(0..=10_000_000).contains(&threshold) {
        return Err(ApiError::bad_request("threshold: expected 0 to 10000000"));
    }
    let before = state
        .store
        .units_of(&body.connector)
        .await
        .map_err(ApiError::internal)?;
    let after = state
        .store
        .add_units(&body.connector, body.add, threshold)
        .await
        .map_err(ApiError::internal)?;
    audit(
        &state,
        &principal,
        "units_add",
        Some(&body.connector),
        before.map(|b| json!(b)),
        Some(json!(after)),
    )
    .await?;
    let remaining = after.remaining();
    let mut v = json!(after);
    v["remaining"] = json!(remaining);
    Ok(Json(v).into_response())
}

/// `GET /api/v1/domains/caa`: for every managed domain (pre-approved or
/// needing approval), whether each connector's CA may issue for it by the
/// domain's DNS CAA records (RFC 8659), looked up now.
pub async fn caa_report(State(state): State<AppState>) -> Result<Response, ApiError> {
    let config = state.config();
    let servers = certkeeper_discovery::dns::parse_dns_servers(&config.admin.caa_dns_servers)
        .map_err(|e| ApiError::internal(format!("admin.caa_dns_servers: {e}")))?;
    let timeout = std::time::Duration::from_secs(5);
    let resolver = if servers.is_empty() {
        certkeeper_discovery::dns::Resolver::system(timeout)
    } else {
        certkeeper_discovery::dns::Resolver::with_servers(&servers, timeout)
    }
    .map_err(ApiError::internal)?;
    let domains: Vec<String> = state
        .store
        .domain_rules()
        .await
        .map_err(ApiError::internal)?
        .into_iter()
        .filter(|r| r.mode != certkeeper_model::admin::domains::DomainMode::Blocked)
        .filter(|r| {
            r.domain.parse::<ipnet::IpNet>().is_err()
                && r.domain.parse::<std::net::IpAddr>().is_err()
        })
        .flat_map(|r| {
            let wildcard = r.allow_wildcards.then(|| format!("*.{}", r.domain));
            std::iter::once(r.domain).chain(wildcard)
        })
        .collect();
    let connectors: Vec<(String, Vec<String>)> = config
        .connectors
        .iter()
        .map(|c| (c.name().to_owned(), c.caa_identities().to_vec()))
        .collect();
    let rows = certkeeper_discovery::caa::report(resolver.hickory(), &domains, &connectors).await;
    let items: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            let (verdict, error) = match r.verdict {
                Ok(v) => (json!(v), None),
                Err(e) => (Value::Null, Some(e.to_string())),
            };
            json!({
                "domain": r.domain,
                "connector": r.connector,
                "verdict": verdict,
                "error": error,
                "allowed_cas": r.allowed_cas,
            })
        })
        .collect();
    Ok(Json(json!({ "items": items })).into_response())
}

/// `GET /api/v1/reports/{kind}?format=csv|json|html|pdf&org_unit=&issuer=&status=&within_days=`:
/// a report over the caller's scope, streamed as it is produced.
pub async fn report(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(kind): Path<String>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Result<Response, ApiError> {
    use crate::reports::{Chunks, Filters, Format, Kind};
    let allowed: Vec<&str> = ["format", "org_unit"]
        .into_iter()
        .chain(Filters::KEYS)
        .collect();
    if let Some(k) = query.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "unknown parameter `{k}` (expected {})",
            allowed.join(", ")
        )));
    }
    let kind = Kind::parse(&kind).map_err(ApiError::not_found)?;
    let format = Format::parse(query.get("format").map_or("csv", String::as_str))
        .map_err(ApiError::bad_request)?;
    let mut filters = Filters {
        org_units: principal.scope.units().map(<[String]>::to_vec),
        contact: principal.scope.owner().map(str::to_owned),
        ..Default::default()
    };
    // Forms send empty fields for "any".
    for key in Filters::KEYS {
        if let Some(v) = query.get(key).filter(|v| !v.is_empty()) {
            filters.set(key, v).map_err(ApiError::bad_request)?;
        }
    }
    if let Some(unit) = query.get("org_unit").filter(|u| !u.is_empty()) {
        if filters
            .org_units
            .as_ref()
            .is_some_and(|u| !u.contains(unit))
        {
            return Err(ApiError::not_found(format!(
                "no org unit `{unit}` in your scope"
            )));
        }
        let all = state.store.org_units().await.map_err(ApiError::internal)?;
        filters.org_units = Some(certkeeper_store::accounts::OrgUnit::descendants(
            &all,
            std::slice::from_ref(unit),
        ));
    }
    // Narrowed here, so an unknown administrator is a 400, not a report
    // cut short.
    if let Some(name) = filters.administrator.clone() {
        filters = crate::reports::administered(&state.store, &filters, &name)
            .await
            .map_err(|e| match e {
                crate::reports::ReportError::Filter(m) => ApiError::bad_request(m),
                other => ApiError::internal(other),
            })?;
    }
    let chunks = Chunks::default();
    let sink = crate::reports::sink(format, chunks.clone());
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<axum::body::Bytes, std::io::Error>>(4);
    let store = state.store.clone();
    let error_tx = tx.clone();
    tokio::spawn(async move {
        let mut flush = move || {
            let (chunks, tx) = (chunks.clone(), tx.clone());
            Box::pin(async move {
                let bytes = chunks.take();
                if !bytes.is_empty() {
                    tx.send(Ok(bytes.into()))
                        .await
                        .map_err(|_| std::io::Error::other("the client went away"))?;
                }
                Ok(())
            })
                as std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<()>> + Send>>
        };
        if let Err(e) = crate::reports::generate(&store, kind, &filters, sink, &mut flush).await {
            tracing::warn!(error = %e, "report stopped");
            let _ = error_tx
                .send(Err(std::io::Error::other(e.to_string())))
                .await;
        }
    });
    audit(
        &state,
        &principal,
        "report",
        Some(kind_name(kind)),
        None,
        Some(json!({ "format": format.extension() })),
    )
    .await?;
    let body = axum::body::Body::from_stream(tokio_stream_from(rx));
    let filename = format!("certkeeper-{}.{}", kind_name(kind), format.extension());
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                format.content_type().to_owned(),
            ),
            (
                axum::http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        body,
    )
        .into_response())
}

fn kind_name(kind: crate::reports::Kind) -> &'static str {
    crate::reports::Kind::ALL
        .iter()
        .find(|(_, k)| *k == kind)
        .map_or("report", |(n, _)| n)
}

/// The receiver as a stream of body chunks.
fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<axum::body::Bytes, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<axum::body::Bytes, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
