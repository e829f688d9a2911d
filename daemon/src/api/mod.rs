//! The HTTP API (axum on hyper): health, readiness, Prometheus metrics, the
//! certificate inventory, imports and jobs, with an OpenAPI document.
//!
//! Every error is JSON `{"error": {"code", "message"}}` with a 4xx/5xx status;
//! unknown query parameters are refused by name rather than ignored. Every
//! route is in [`routes::table`] with the permission it needs; [`auth`]
//! authenticates the caller (`api.token`, a user's API token, or nobody
//! while no account exists and no `api.token` is set) and checks it.
//! The CLI uses these same routes when a daemon holds the embedded store.

pub mod accounts;
pub mod alerts;
pub mod auth;
pub mod contacts;
pub mod lifecycle;
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod openapi;
pub mod report_files;
pub mod requests;
pub mod retire;
pub mod routes;
pub mod tls;

pub use listener::serve;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::sync::watch;

use crate::config::Config;
use certkeeper_model::inventory::{SightingKind, Status};
use certkeeper_store::Store;
use certkeeper_store::inventory::{CertificateFilter, ListError};

/// Largest import body accepted (a big CA bundle is ~250 KiB).
const MAX_IMPORT_BYTES: usize = 16 * 1024 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    store: Store,
    config: watch::Receiver<Arc<Config>>,
    renewer: Option<Arc<crate::renewal::Renewer>>,
    permissions: Arc<HashMap<(axum::http::Method, String), certkeeper_model::admin::Permission>>,
    limiter: Arc<certkeeper_model::admin::ratelimit::LoginLimiter>,
    /// Password hashing and verification (argon2id, tens of milliseconds of
    /// CPU each) run on the blocking pool, at most this many at once, so a
    /// burst of sign-ins cannot starve the API, scheduler and watchdog.
    password_work: Arc<tokio::sync::Semaphore>,
}

/// Password hashes computed or checked at once (see `AppState::password_work`).
const PASSWORD_WORKERS: usize = 2;

/// How long a sign-in waits for a free password worker before it is told
/// the server is busy.
const PASSWORD_QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

impl AppState {
    /// State over a store and the live config.
    pub fn new(store: Store, config: watch::Receiver<Arc<Config>>) -> Self {
        let permissions = routes::specs()
            .into_iter()
            .map(|r| ((r.method, r.path.to_owned()), r.permission))
            .collect();
        Self {
            store,
            config,
            renewer: None,
            permissions: Arc::new(permissions),
            limiter: Arc::new(certkeeper_model::admin::ratelimit::LoginLimiter::default()),
            password_work: Arc::new(tokio::sync::Semaphore::new(PASSWORD_WORKERS)),
        }
    }

    /// Runs argon2 work (`hash_password`, `verify_password`) on the blocking
    /// pool, at most [`PASSWORD_WORKERS`] at a time; 503 when none frees up
    /// within [`PASSWORD_QUEUE_WAIT`].
    pub(crate) async fn password_work<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let permit = tokio::time::timeout(
            PASSWORD_QUEUE_WAIT,
            self.password_work.clone().acquire_owned(),
        )
        .await
        .map_err(|_| ApiError::busy("too many sign-ins at once; try again shortly"))?
        .map_err(ApiError::internal)?;
        let result = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(ApiError::internal)?;
        Ok(result)
    }

    /// `units` and every unit below them.
    pub async fn unit_closure(
        &self,
        units: &[String],
    ) -> Result<Vec<String>, certkeeper_store::StoreError> {
        let all = self.store.org_units().await?;
        Ok(certkeeper_store::accounts::OrgUnit::descendants(
            &all, units,
        ))
    }

    /// Serves the lifecycle routes (renew, replace, revoke) through `renewer`.
    pub fn with_renewer(mut self, renewer: Arc<crate::renewal::Renewer>) -> Self {
        self.renewer = Some(renewer);
        self
    }

    /// The live config.
    pub(crate) fn config(&self) -> Arc<Config> {
        self.config.borrow().clone()
    }

    /// The store.
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }
}

/// A JSON error response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "bad_request",
            message: message.into(),
        }
    }

    fn unauthorized(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            message: message.into(),
        }
    }

    fn too_many(wait: std::time::Duration) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "too_many_failures",
            message: format!(
                "too many failed sign-ins; try again in {} s",
                wait.as_secs().max(1)
            ),
        }
    }

    fn busy(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "busy",
            message: message.into(),
        }
    }

    fn forbidden(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            code: "forbidden",
            message: message.into(),
        }
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: message.into(),
        }
    }

    fn conflict(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::CONFLICT,
            code: "conflict",
            message: message.into(),
        }
    }

    fn unprocessable(message: String) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "unprocessable",
            message,
        }
    }

    /// The message shown to the caller.
    pub fn message(&self) -> &str {
        &self.message
    }

    fn internal(error: impl std::fmt::Display) -> Self {
        let text = error.to_string();
        // The store refuses an empty record id: a name or id the caller left
        // empty that no handler checked. The caller's mistake, not ours.
        if text.contains("for the Record ID but this is not a valid id") {
            return Self::bad_request("a name or id in the request is empty");
        }
        tracing::error!(error = %error, "API request failed");
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: "internal error; see the daemon's log".into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(json!({ "error": { "code": self.code, "message": self.message } })),
        )
            .into_response()
    }
}

/// The router with every route of [`routes::table`], each behind the
/// authorization middleware.
pub fn router(state: AppState) -> Router {
    let mut by_path: std::collections::BTreeMap<
        &'static str,
        axum::routing::MethodRouter<AppState>,
    > = std::collections::BTreeMap::new();
    for (spec, handler) in routes::table() {
        let merged = match by_path.remove(spec.path) {
            Some(existing) => existing.merge(handler),
            None => handler,
        };
        by_path.insert(spec.path, merged);
    }
    let mut router = Router::new();
    for (path, handler) in by_path {
        router = router.route(path, handler);
    }
    // Route layers run last-added first: the caller is authorized before
    // its body is read.
    router
        .route_layer(middleware::from_fn(limits::bounded_text))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authorize,
        ))
        .fallback(|| async { ApiError::not_found("no such route; see /api/v1/openapi.json") })
        .layer(middleware::map_response(errors_as_json))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_IMPORT_BYTES))
        .with_state(state)
}

/// Every error the API answers is JSON: the rejections axum's extractors
/// answer themselves in plain text (a body that is not JSON, the wrong
/// content type, a field of the wrong type, a body over the limit, a
/// method the route lacks) are rewritten as `{"error": {"code", "message"}}`
/// with the same status, message and other headers (`Allow`).
async fn errors_as_json(response: Response) -> Response {
    let status = response.status();
    let json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let code = match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable",
        _ => "error",
    };
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text
    };
    let mut out = ApiError {
        status,
        code,
        message,
    }
    .into_response();
    for (name, value) in &parts.headers {
        if name != axum::http::header::CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn readyz(State(state): State<AppState>) -> Response {
    match state.store.counts_by_status().await {
        Ok(_) => "ready\n".into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n").into_response()
        }
    }
}

/// Parses a query string, refusing parameters not in `allowed`.
fn query_params(
    raw: Option<String>,
    allowed: &[&str],
) -> Result<HashMap<String, String>, ApiError> {
    let mut params = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        if !allowed.contains(&k.as_ref()) {
            return Err(ApiError::bad_request(format!(
                "unknown query parameter `{k}`; expected one of {}",
                allowed.join(", ")
            )));
        }
        params.insert(k.into_owned(), v.into_owned());
    }
    Ok(params)
}

/// Parses `30d`, `12h`, `90m`, `45s` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, "s"),
    };
    let n: i64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration; expected e.g. 30d, 12h, 90m"))?;
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 604_800,
        _ => {
            return Err(format!(
                "`{text}`: unknown unit `{unit}`; expected s, m, h, d or w"
            ));
        }
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("`{text}` is too long a duration"))
}

async fn list_certificates(
    State(state): State<AppState>,
    axum::Extension(principal): axum::Extension<certkeeper_model::admin::Principal>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = query_params(
        raw,
        &[
            "status",
            "expiring_within",
            "issuer",
            "org_unit",
            "q",
            "limit",
            "cursor",
            "order",
            "sort",
        ],
    )?;
    let max = state.config().api.max_page_size;
    let mut filter = CertificateFilter {
        limit: 100.min(max),
        now: chrono::Utc::now().timestamp(),
        ..Default::default()
    };
    if let Some(s) = params.get("status") {
        filter.status = Some(s.parse::<Status>().map_err(ApiError::bad_request)?);
    }
    if let Some(d) = params.get("expiring_within") {
        filter.expiring_within = Some(
            parse_duration(d)
                .map_err(|e| ApiError::bad_request(format!("expiring_within: {e}")))?,
        );
    }
    if let Some(l) = params.get("limit") {
        filter.limit = match l.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "limit: expected a number from 1 to {max}, got `{l}`"
                )));
            }
        };
    }
    filter.issuer = params.get("issuer").cloned();
    filter.org_unit = params.get("org_unit").cloned();
    filter.q = params.get("q").cloned().filter(|q| !q.is_empty());
    filter.cursor = params.get("cursor").cloned();
    if let Some(sort) = params.get("sort") {
        filter.sort = sort
            .parse()
            .map_err(|e| ApiError::bad_request(format!("sort: {e}")))?;
    }
    filter.descending = match params.get("order").map(String::as_str) {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "order: expected asc or desc, got `{other}`"
            )));
        }
    };
    filter.org_units = principal.scope.units().map(<[String]>::to_vec);
    filter.contact = principal.scope.owner().map(str::to_owned);
    match state.store.list_certificates(&filter).await {
        Ok(page) => Ok(axum::Json(page).into_response()),
        Err(e) => Err(list_error(e)),
    }
}

/// A listing's failure: a bad cursor is the caller's (400, naming the
/// parameter), anything else the store's.
pub(crate) fn list_error(e: ListError) -> ApiError {
    match e {
        ListError::Cursor(e) => ApiError::bad_request(format!("cursor: {e}")),
        ListError::Store(e) => ApiError::internal(e),
    }
}

fn is_fingerprint(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

async fn show_certificate(
    State(state): State<AppState>,
    axum::Extension(principal): axum::Extension<certkeeper_model::admin::Principal>,
    Path(fingerprint): Path<String>,
) -> Result<Response, ApiError> {
    let fingerprint = fingerprint.replace(':', "").to_lowercase();
    if !is_fingerprint(&fingerprint) {
        return Err(ApiError::bad_request(
            "expected a SHA-256 fingerprint: 64 hexadecimal digits (colons allowed)",
        ));
    }
    match state
        .store
        .certificate_detail(&fingerprint)
        .await
        .map_err(ApiError::internal)?
    {
        Some(detail) if principal.can_see(&detail.certificate) => {
            Ok(axum::Json(detail).into_response())
        }
        _ => Err(ApiError::not_found(format!(
            "no certificate with fingerprint {fingerprint}"
        ))),
    }
}

async fn counts(
    State(state): State<AppState>,
    axum::Extension(principal): axum::Extension<certkeeper_model::admin::Principal>,
) -> Result<Response, ApiError> {
    let counts = match principal.scope.units() {
        None => state.store.counts_by_status().await,
        Some(units) => {
            state
                .store
                .counts_in_scope(units, principal.scope.owner())
                .await
        }
    }
    .map_err(ApiError::internal)?;
    Ok(axum::Json(counts).into_response())
}

/// `GET /api/v1/expiries?weeks=N`: how many certificates in force in the
/// caller's scope expire in each of the next N weeks (default 13, at most
/// 104), from one aggregate over the expiry index.
async fn expiries(
    State(state): State<AppState>,
    axum::Extension(principal): axum::Extension<certkeeper_model::admin::Principal>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    const WEEK: i64 = 7 * 86_400;
    let params = query_params(raw, &["weeks"])?;
    let weeks = match params.get("weeks") {
        None => 13,
        Some(w) => w
            .parse::<i64>()
            .ok()
            .filter(|w| (1..=104).contains(w))
            .ok_or_else(|| ApiError::bad_request("weeks: expected 1 to 104"))?,
    };
    let now = chrono::Utc::now().timestamp();
    let filter = CertificateFilter {
        expiring_within: Some(weeks * WEEK - 1),
        org_units: principal.scope.units().map(<[String]>::to_vec),
        contact: principal.scope.owner().map(str::to_owned),
        now,
        ..Default::default()
    };
    let counts = match state.store.expiries_per_period(&filter, WEEK).await {
        Ok(c) => c,
        Err(ListError::Cursor(e)) => return Err(ApiError::bad_request(e.to_string())),
        Err(ListError::Store(e)) => return Err(ApiError::internal(e)),
    };
    let items: Vec<serde_json::Value> = (0..weeks)
        .map(|w| {
            let start = crate::reports::date(now + w * WEEK);
            json!({ "week": w, "start": start, "count": counts.get(&w).copied().unwrap_or(0) })
        })
        .collect();
    Ok(axum::Json(json!({ "items": items })).into_response())
}

async fn import(
    State(state): State<AppState>,
    axum::Extension(principal): axum::Extension<certkeeper_model::admin::Principal>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let params = query_params(raw, &["location"])?;
    let location = params
        .get("location")
        .cloned()
        .unwrap_or_else(|| "api upload".into());
    let expiring_days = state.config().inventory.expiring_days;
    match certkeeper_store::import::import_bytes(
        &state.store,
        &body,
        SightingKind::Import,
        &location,
        expiring_days,
    )
    .await
    {
        Ok(outcome) => {
            accounts::audit(
                &state,
                &principal,
                "import",
                Some(&location),
                None,
                Some(json!({ "added": outcome.added, "known": outcome.known.len() })),
            )
            .await?;
            Ok((StatusCode::OK, axum::Json(outcome)).into_response())
        }
        Err(certkeeper_store::import::ImportError::Store(e)) => Err(ApiError::internal(e)),
        Err(e) => Err(ApiError::unprocessable(e.to_string())),
    }
}

async fn jobs(State(state): State<AppState>) -> Result<Response, ApiError> {
    let jobs = state.store.jobs().await.map_err(ApiError::internal)?;
    Ok(axum::Json(jobs).into_response())
}

async fn run_job(
    State(state): State<AppState>,
    axum::Extension(principal): axum::Extension<certkeeper_model::admin::Principal>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let found = state
        .store
        .run_job_now(&name, chrono::Utc::now().timestamp())
        .await
        .map_err(ApiError::internal)?;
    if found {
        accounts::audit(&state, &principal, "job_run", Some(&name), None, None).await?;
        Ok((
            StatusCode::ACCEPTED,
            axum::Json(json!({ "job": name, "due": "now" })),
        )
            .into_response())
    } else {
        Err(ApiError::not_found(format!(
            "no job named `{name}`; see GET /api/v1/jobs"
        )))
    }
}

async fn list_findings(
    State(state): State<AppState>,
    axum::Extension(principal): axum::Extension<certkeeper_model::admin::Principal>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = query_params(raw, &["code", "fingerprint", "limit"])?;
    let code = params
        .get("code")
        .map(|c| {
            serde_json::from_value::<certkeeper_discovery::FindingCode>(json!(c))
                .map_err(|_| ApiError::bad_request(format!("code: unknown finding code `{c}`")))
        })
        .transpose()?;
    let max = state.config().api.max_page_size;
    let limit = match params.get("limit") {
        None => 100.min(max),
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "limit: expected a number from 1 to {max}, got `{l}`"
                )));
            }
        },
    };
    let fingerprint = params
        .get("fingerprint")
        .map(|f| f.replace(':', "").to_lowercase());
    let mut findings = state
        .store
        .findings(fingerprint.as_deref(), code, limit)
        .await
        .map_err(ApiError::internal)?;
    if let Some(units) = principal.scope.units() {
        let fps: Vec<String> = findings.iter().map(|f| f.fingerprint.clone()).collect();
        let visible = state
            .store
            .in_scope(&fps, units, principal.scope.owner())
            .await
            .map_err(ApiError::internal)?;
        findings.retain(|f| visible.contains(&f.fingerprint));
    }
    Ok(axum::Json(findings).into_response())
}

async fn job_runs(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let runs = state
        .store
        .job_runs(&name, 50)
        .await
        .map_err(ApiError::internal)?;
    Ok(axum::Json(runs).into_response())
}

async fn ct_logs(State(state): State<AppState>) -> Result<Response, ApiError> {
    let logs = state.store.ct_logs().await.map_err(ApiError::internal)?;
    let views: Vec<serde_json::Value> = logs
        .iter()
        .map(certkeeper_store::ct::CtLogState::view)
        .collect();
    Ok(axum::Json(views).into_response())
}

async fn job_shards(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let shards = state
        .store
        .latest_shards(&name)
        .await
        .map_err(ApiError::internal)?;
    Ok(axum::Json(shards).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30d").unwrap(), 30 * 86_400);
        assert_eq!(parse_duration("90").unwrap(), 90);
        assert!(parse_duration("30x").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn unknown_parameters_are_named() {
        let err = query_params(Some("statuss=valid".into()), &["status"]).unwrap_err();
        assert!(err.message.contains("statuss"));
    }
}
