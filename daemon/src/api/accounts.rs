//! Account routes: who am I, users and roles, org units, API tokens. Every
//! change is written to the audit log before it is answered.

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use certkeeper_model::admin::audit_chain::AuditEntry;
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, AppState};
use certkeeper_model::admin::{Principal, Role, password, token};
use certkeeper_store::accounts::{ApiToken, OrgUnit, User};

/// Appends an audit entry for `principal`; an action whose entry cannot be
/// written fails with 500.
pub async fn audit(
    state: &AppState,
    principal: &Principal,
    action: &str,
    object: Option<&str>,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
) -> Result<(), ApiError> {
    append(state, principal, action, object, |e| AuditEntry {
        before,
        after,
        ..e
    })
    .await
}

/// [`audit`] with an outcome other than `success` (`attempt`, `failure`).
pub async fn audit_entry(
    state: &AppState,
    principal: &Principal,
    action: &str,
    object: Option<&str>,
    outcome: &str,
    after: Option<serde_json::Value>,
) -> Result<(), ApiError> {
    append(state, principal, action, object, |e| AuditEntry {
        outcome: outcome.to_owned(),
        after,
        ..e
    })
    .await
}

/// Appends `principal`'s entry for `action` on `object`, as `fill` completes it.
async fn append(
    state: &AppState,
    principal: &Principal,
    action: &str,
    object: Option<&str>,
    fill: impl FnOnce(AuditEntry) -> AuditEntry,
) -> Result<(), ApiError> {
    let entry = fill(AuditEntry::new(
        principal.user.clone(),
        action,
        object.map(str::to_owned),
    ));
    state
        .store
        .append_audit(entry)
        .await
        .map(|_| ())
        .map_err(ApiError::internal)
}

/// `GET /api/v1/whoami`.
pub async fn whoami(Extension(principal): Extension<Principal>) -> Response {
    let units = principal.scope.units().map(<[String]>::to_vec);
    Json(json!({
        "user": principal.user,
        "role": principal.role,
        "units": units,
    }))
    .into_response()
}

/// `GET /api/v1/users`.
pub async fn list_users(State(state): State<AppState>) -> Result<Response, ApiError> {
    let users: Vec<User> = state
        .store
        .users()
        .await
        .map_err(ApiError::internal)?
        .iter()
        .map(User::public)
        .collect();
    Ok(Json(json!({ "items": users })).into_response())
}

/// Body of `POST /api/v1/users`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// Account name.
    pub name: String,
    /// Role.
    pub role: String,
    /// Org units.
    #[serde(default)]
    pub units: Vec<String>,
    /// Password (for the web portal); tokens work without one.
    pub password: Option<certkeeper_base::Secret>,
    /// Where the user's alerts go by e-mail.
    pub email: Option<String>,
    /// Where the user's text messages go (E.164).
    pub phone: Option<String>,
}

/// An e-mail address as alerts are sent to it: `local@domain`, no spaces,
/// angle brackets or commas (one address, not a list).
pub(super) fn check_email(email: Option<String>) -> Result<Option<String>, ApiError> {
    let Some(email) = email.map(|e| e.trim().to_owned()) else {
        return Ok(None);
    };
    let plausible = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
        && !email.contains(|c: char| c.is_whitespace() || "<>,;\"".contains(c));
    if !plausible {
        return Err(ApiError::bad_request(format!(
            "email: `{email}` is not an e-mail address (local@domain)"
        )));
    }
    Ok(Some(email))
}

/// A phone number in E.164: `+` and 8 to 15 digits.
pub(super) fn check_phone(phone: Option<String>) -> Result<Option<String>, ApiError> {
    let Some(phone) = phone.map(|p| p.trim().to_owned()) else {
        return Ok(None);
    };
    let digits = phone.strip_prefix('+').unwrap_or("");
    if !(8..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::bad_request(format!(
            "phone: `{phone}` is not an E.164 number (+ and 8 to 15 digits, like +4915112345678)"
        )));
    }
    Ok(Some(phone))
}

/// What a user name may be, in words.
pub(super) const USER_NAME_RULE: &str = "1 to 254 characters of letters, digits and @ . - _ +";

/// Whether `name` follows [`USER_NAME_RULE`].
pub(super) fn valid_user_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 254
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "@.-_+".contains(c))
}

/// Longest password a sign-in verifies (the policy allows far fewer
/// characters); a longer one is wrong without hashing it.
const MAX_PRESENTED_PASSWORD_BYTES: usize = 4096;

/// Checks a new account's fields; `Err` is for the requester.
pub async fn validate_user(
    state: &AppState,
    name: &str,
    role: &str,
    units: &[String],
) -> Result<Role, ApiError> {
    if !valid_user_name(name) {
        return Err(ApiError::bad_request(format!("name: {USER_NAME_RULE}")));
    }
    let role = Role::parse(role).ok_or_else(|| {
        ApiError::bad_request(format!(
            "role: `{role}` is not one of primary_admin, department_admin, auditor, subscriber"
        ))
    })?;
    let known = state.store.org_units().await.map_err(ApiError::internal)?;
    if let Some(u) = units.iter().find(|u| !known.iter().any(|k| &k.name == *u)) {
        return Err(ApiError::bad_request(format!(
            "units: no org unit `{u}` (create it with POST /api/v1/org-units)"
        )));
    }
    if matches!(role, Role::DepartmentAdmin | Role::Subscriber) && units.is_empty() {
        return Err(ApiError::bad_request(format!(
            "units: a {role} needs at least one org unit"
        )));
    }
    Ok(role)
}

/// `POST /api/v1/users`.
pub async fn create_user(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Json(body): Json<NewUser>,
) -> Result<Response, ApiError> {
    let role = validate_user(&state, &body.name, &body.role, &body.units).await?;
    let password_hash = match &body.password {
        Some(p) => {
            password::check_policy(p.expose(), &body.name).map_err(ApiError::bad_request)?;
            let p = p.clone();
            Some(
                state
                    .password_work(move || password::hash_password(p.expose()))
                    .await?
                    .map_err(ApiError::internal)?,
            )
        }
        None => None,
    };
    let user = User {
        name: body.name.to_lowercase(),
        role,
        units: body.units,
        password_hash,
        disabled: false,
        created: chrono::Utc::now().timestamp(),
        email: check_email(body.email)?,
        phone: check_phone(body.phone)?,
    };
    if state
        .store
        .user(&user.name)
        .await
        .map_err(ApiError::internal)?
        .is_some()
    {
        return Err(ApiError::conflict(format!("user `{}` exists", user.name)));
    }
    state
        .store
        .create_user(&user)
        .await
        .map_err(ApiError::internal)?;
    audit(
        &state,
        &principal,
        "user_create",
        Some(&user.name),
        None,
        Some(json!(user.public())),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(user.public())).into_response())
}

/// Body of `POST /api/v1/users/{name}`: what changes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    /// New role.
    pub role: Option<String>,
    /// New units.
    pub units: Option<Vec<String>>,
    /// Disable or enable.
    pub disabled: Option<bool>,
    /// New password.
    pub password: Option<certkeeper_base::Secret>,
    /// New e-mail address (empty: none).
    pub email: Option<String>,
    /// New phone number (empty: none).
    pub phone: Option<String>,
}

/// `POST /api/v1/users/{name}`: role, units, disabled, password.
pub async fn update_user(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    Json(change): Json<UserChange>,
) -> Result<Response, ApiError> {
    let Some(before) = state.store.user(&name).await.map_err(ApiError::internal)? else {
        return Err(ApiError::not_found(format!("no user `{name}`")));
    };
    let mut after = before.clone();
    if let Some(units) = change.units {
        after.units = units;
    }
    let role = change
        .role
        .unwrap_or_else(|| before.role.as_str().to_owned());
    after.role = validate_user(&state, &after.name, &role, &after.units).await?;
    if let Some(d) = change.disabled {
        after.disabled = d;
    }
    if let Some(email) = change.email {
        after.email = check_email(Some(email).filter(|e| !e.is_empty()))?;
    }
    if let Some(phone) = change.phone {
        after.phone = check_phone(Some(phone).filter(|p| !p.is_empty()))?;
    }
    if let Some(p) = &change.password {
        password::check_policy(p.expose(), &after.name).map_err(ApiError::bad_request)?;
        let p = p.clone();
        after.password_hash = Some(
            state
                .password_work(move || password::hash_password(p.expose()))
                .await?
                .map_err(ApiError::internal)?,
        );
    }
    state
        .store
        .update_user(&after)
        .await
        .map_err(ApiError::internal)?;
    // Whoever signed in with the old password, or before the account was
    // disabled, is signed out.
    if change.password.is_some() || (after.disabled && !before.disabled) {
        let ended = state
            .store
            .end_sessions_of(&after.name)
            .await
            .map_err(ApiError::internal)?;
        tracing::info!(user = %after.name, sessions = ended, "portal sessions ended");
    }
    let action = if before.role != after.role || before.units != after.units {
        "role_change"
    } else {
        "user_update"
    };
    audit(
        &state,
        &principal,
        action,
        Some(&after.name),
        Some(json!(before.public())),
        Some(json!(after.public())),
    )
    .await?;
    Ok(Json(after.public()).into_response())
}

/// `GET /api/v1/org-units`: every unit (scoped callers see theirs).
pub async fn list_units(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Response, ApiError> {
    let units: Vec<OrgUnit> = state
        .store
        .org_units()
        .await
        .map_err(ApiError::internal)?
        .into_iter()
        .filter(|u| {
            principal
                .scope
                .units()
                .is_none_or(|scope| scope.contains(&u.name))
        })
        .collect();
    Ok(Json(json!({ "items": units })).into_response())
}

/// `POST /api/v1/org-units`: creates or moves a unit.
pub async fn put_unit(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Json(unit): Json<OrgUnit>,
) -> Result<Response, ApiError> {
    if unit.name.is_empty() || unit.name.len() > 128 || unit.name.contains(['\n', '\r']) {
        return Err(ApiError::bad_request("name: 1 to 128 characters, one line"));
    }
    let known = state.store.org_units().await.map_err(ApiError::internal)?;
    if let Some(parent) = &unit.parent {
        if !known.iter().any(|k| &k.name == parent) {
            return Err(ApiError::bad_request(format!(
                "parent: no org unit `{parent}`"
            )));
        }
        // Moving a unit under itself or its own descendant would make a loop.
        let below = certkeeper_store::accounts::OrgUnit::descendants(
            &known,
            std::slice::from_ref(&unit.name),
        );
        if below.contains(parent) {
            return Err(ApiError::bad_request(format!(
                "parent: `{parent}` is inside `{}`; that would make a loop",
                unit.name
            )));
        }
    }
    let before = known.iter().find(|k| k.name == unit.name).cloned();
    state
        .store
        .put_org_unit(&unit)
        .await
        .map_err(ApiError::internal)?;
    audit(
        &state,
        &principal,
        "org_unit_put",
        Some(&unit.name),
        before.map(|b| json!(b)),
        Some(json!(unit)),
    )
    .await?;
    Ok(Json(unit).into_response())
}

/// `GET /api/v1/tokens`: the caller's tokens (a primary admin's: everyone's).
pub async fn list_tokens(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Response, ApiError> {
    let user = (principal.role != Role::PrimaryAdmin).then_some(principal.user.as_str());
    let tokens = state.store.tokens(user).await.map_err(ApiError::internal)?;
    Ok(Json(json!({ "items": tokens })).into_response())
}

/// Body of `POST /api/v1/tokens`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// Whose token (primary admins only; default the caller).
    pub user: Option<String>,
    /// What it is for.
    #[serde(default)]
    pub label: String,
    /// Days until it expires (default 90; at most 3650).
    pub expires_days: Option<u32>,
}

/// `POST /api/v1/tokens`: a new token, shown once.
pub async fn create_token(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Json(body): Json<NewToken>,
) -> Result<Response, ApiError> {
    let user = body
        .user
        .map(|u| u.to_lowercase())
        .unwrap_or_else(|| principal.user.clone());
    if user.trim().is_empty() {
        return Err(ApiError::bad_request(
            "user: empty; name an account or leave it out for your own",
        ));
    }
    if user != principal.user && principal.role != Role::PrimaryAdmin {
        return Err(ApiError::forbidden(
            "only a primary admin makes tokens for others",
        ));
    }
    if state
        .store
        .user(&user)
        .await
        .map_err(ApiError::internal)?
        .is_none()
    {
        return Err(ApiError::bad_request(format!(
            "user: no account `{user}` (tokens belong to accounts; create one first)"
        )));
    }
    let days = body.expires_days.unwrap_or(90);
    if !(1..=3650).contains(&days) {
        return Err(ApiError::bad_request("expires_days: expected 1 to 3650"));
    }
    let (record, plaintext) = issue_token(&state, &user, &body.label, days).await?;
    audit(
        &state,
        &principal,
        "token_create",
        Some(&record.id),
        None,
        Some(json!(record)),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "token": plaintext, "id": record.id, "user": record.user, "expires": record.expires,
            "note": "shown once: store it now" })),
    )
        .into_response())
}

/// Creates and stores a token for `user`; returns its record and plaintext.
pub async fn issue_token(
    state: &AppState,
    user: &str,
    label: &str,
    days: u32,
) -> Result<(ApiToken, String), ApiError> {
    let new = token::generate().map_err(ApiError::internal)?;
    let now = chrono::Utc::now().timestamp();
    let record = ApiToken {
        id: new.id.clone(),
        user: user.to_owned(),
        secret_hash: new.secret_hash.clone(),
        label: label.to_owned(),
        created: now,
        expires: Some(now + i64::from(days) * 86_400),
        revoked: None,
    };
    state
        .store
        .create_token(&record)
        .await
        .map_err(ApiError::internal)?;
    let shown = ApiToken {
        secret_hash: String::new(),
        ..record
    };
    Ok((shown, new.plaintext.clone()))
}

/// `DELETE /api/v1/tokens/{id}`: revokes a token (one's own, or any for a
/// primary admin).
pub async fn revoke_token(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let Some(record) = state.store.token(&id).await.map_err(ApiError::internal)? else {
        return Err(ApiError::not_found(format!("no token `{id}`")));
    };
    if record.user != principal.user && principal.role != Role::PrimaryAdmin {
        return Err(ApiError::not_found(format!("no token `{id}`")));
    }
    let now = chrono::Utc::now().timestamp();
    if !state
        .store
        .revoke_token(&id, now)
        .await
        .map_err(ApiError::internal)?
    {
        return Err(ApiError::conflict(format!(
            "token `{id}` is revoked already"
        )));
    }
    audit(&state, &principal, "token_revoke", Some(&id), None, None).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Body of `POST /api/v1/certificates/assign`: which certificates (by
/// fingerprint, or by the inventory filters) and what to set.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assign {
    /// These certificates.
    #[serde(default)]
    pub fingerprints: Vec<String>,
    /// Or those matching this text search (names, issuer, serial).
    pub q: Option<String>,
    /// Or those whose issuer DN contains this.
    pub issuer: Option<String>,
    /// Or those of this org unit now.
    pub in_org_unit: Option<String>,
    /// New org unit.
    pub org_unit: Option<String>,
    /// New contacts.
    pub contacts: Option<Vec<String>>,
    /// New tags.
    pub tags: Option<Vec<String>>,
}

/// `POST /api/v1/certificates/assign`: sets the owner unit, contacts or tags
/// of many certificates at once (a merger, a reorganisation), as one audited
/// action.
pub async fn assign_certificates(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Json(body): Json<Assign>,
) -> Result<Response, ApiError> {
    if body.org_unit.is_none() && body.contacts.is_none() && body.tags.is_none() {
        return Err(ApiError::bad_request("set org_unit, contacts or tags"));
    }
    for (field, value) in [
        ("org_unit", &body.org_unit),
        ("in_org_unit", &body.in_org_unit),
    ] {
        if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
            return Err(ApiError::bad_request(format!(
                "{field}: empty; name an org unit or leave it out"
            )));
        }
    }
    if let Some(unit) = &body.org_unit
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
    let mut fps: Vec<String> = body
        .fingerprints
        .iter()
        .map(|f| f.replace(':', "").to_lowercase())
        .collect();
    if body.q.is_some() || body.issuer.is_some() || body.in_org_unit.is_some() {
        let mut filter = certkeeper_store::inventory::CertificateFilter {
            q: body.q.clone(),
            issuer: body.issuer.clone(),
            org_unit: body.in_org_unit.clone(),
            limit: 1000,
            now: chrono::Utc::now().timestamp(),
            ..Default::default()
        };
        loop {
            let page = state
                .store
                .list_certificates(&filter)
                .await
                .map_err(ApiError::internal)?;
            fps.extend(page.items.iter().map(|c| c.cert.fingerprint.clone()));
            match page.next_cursor {
                Some(c) if fps.len() < 1_000_000 => filter.cursor = Some(c),
                _ => break,
            }
        }
    }
    if fps.is_empty() {
        return Err(ApiError::bad_request(
            "select certificates: fingerprints, q, issuer or in_org_unit",
        ));
    }
    fps.sort();
    fps.dedup();
    let changed = state
        .store
        .assign_certificates(
            &fps,
            body.org_unit.as_deref(),
            body.contacts.as_deref(),
            body.tags.as_deref(),
        )
        .await
        .map_err(ApiError::internal)?;
    audit(
        &state,
        &principal,
        "certificates_assign",
        Some(&format!("{changed} certificates")),
        None,
        Some(json!({ "fingerprints": fps, "org_unit": body.org_unit, "contacts": body.contacts, "tags": body.tags })),
    )
    .await?;
    Ok(Json(json!({ "changed": changed })).into_response())
}

/// `GET /api/v1/audit?after=SEQ&limit=N&actor=&object=`: entries in order
/// after `after`; or, with `actor`/`object` and no `after`, the newest first.
pub async fn list_audit(
    State(state): State<AppState>,
    axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let limit = match query.get("limit") {
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ApiError::bad_request("limit: expected 1 to 1000"))?,
        None => 1000,
    };
    let items = match query.get("after") {
        Some(a) => {
            let after = a
                .parse::<u64>()
                .map_err(|_| ApiError::bad_request("after: expected a sequence number"))?;
            state.store.audit_page(after, limit).await
        }
        None if query.contains_key("actor") || query.contains_key("object") => {
            state
                .store
                .audit_recent(
                    query.get("actor").map(String::as_str),
                    query.get("object").map(String::as_str),
                    limit,
                )
                .await
        }
        None => state.store.audit_page(0, limit).await,
    }
    .map_err(ApiError::internal)?;
    Ok(Json(json!({ "items": items })).into_response())
}

/// `GET /api/v1/audit/verify`: checks the hash chain.
pub async fn verify_audit(State(state): State<AppState>) -> Result<Response, ApiError> {
    let report = state
        .store
        .verify_audit()
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(report).into_response())
}

/// Session lifetime.
pub const SESSION_HOURS: i64 = 12;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "ck_session";

/// Body of `POST /api/v1/login`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// Account name.
    pub user: String,
    /// Its password.
    pub password: certkeeper_base::Secret,
}

/// `POST /api/v1/login`: a password sign-in for the web portal. Answers a
/// `ck_session` cookie (HttpOnly, SameSite=Strict, Secure over TLS) and the
/// CSRF token that requests other than GET must send as `X-CSRF-Token`.
/// Failures are limited per account and per source, and audited.
pub async fn login(
    State(state): State<AppState>,
    connect: Option<Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    Json(body): Json<Login>,
) -> Result<Response, ApiError> {
    let source = connect
        .map(|Extension(c)| c.0.ip())
        .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
    let name = body.user.to_lowercase();
    // A name no account can have is refused before it costs a password
    // check or an audit row (which would otherwise store whatever a client
    // sends).
    if !valid_user_name(&name) {
        return Err(ApiError::bad_request(format!("user: {USER_NAME_RULE}")));
    }
    // The attempt counts before the password is verified, so parallel
    // guesses cannot all slip in under the limit.
    let attempt = state
        .limiter
        .begin(&name, source, std::time::Instant::now())
        .map_err(ApiError::too_many)?;
    let user = state.store.user(&name).await.map_err(ApiError::internal)?;
    let hash = user.as_ref().and_then(|u| u.password_hash.clone());
    let presented = body.password.clone();
    let ok = state
        .password_work(move || match hash {
            Some(hash) if presented.expose().len() <= MAX_PRESENTED_PASSWORD_BYTES => {
                password::verify_password(presented.expose(), &hash)
            }
            _ => {
                // As slow as a real check, so timing does not tell which
                // accounts exist.
                password::dummy_verify();
                false
            }
        })
        .await?;
    let now = std::time::Instant::now();
    let actor = Principal {
        user: name.clone(),
        role: user.as_ref().map_or(Role::Subscriber, |u| u.role),
        scope: certkeeper_model::admin::Scope::All,
    };
    let Some(user) = user.filter(|u| ok && !u.disabled) else {
        attempt.failed(now);
        audit_outcome(&state, &actor, "login_failed", Some(source), "failure").await?;
        return Err(ApiError::unauthorized("wrong user name or password"));
    };
    attempt.succeeded();
    let id = token::session_id();
    let mut key = [0u8; 32];
    openssl::rand::rand_bytes(&mut key).map_err(ApiError::internal)?;
    let key = hex::encode(key);
    let unix = chrono::Utc::now().timestamp();
    let session = certkeeper_store::accounts::Session {
        user: user.name.clone(),
        created: unix,
        expires: unix + SESSION_HOURS * 3600,
        csrf_key: key.clone(),
    };
    state
        .store
        .create_session(&token::hash_secret(&id), &session)
        .await
        .map_err(ApiError::internal)?;
    audit_outcome(&state, &actor, "login", Some(source), "success").await?;
    let secure = if state.config().api.tls_cert.is_some() {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{SESSION_COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
        SESSION_HOURS * 3600
    );
    let csrf = token::csrf_token(&id, key.as_bytes());
    let mut response = Json(json!({ "user": user.name, "role": user.role, "csrf_token": csrf, "expires": session.expires })).into_response();
    if let Ok(v) = axum::http::HeaderValue::from_str(&cookie) {
        response
            .headers_mut()
            .insert(axum::http::header::SET_COOKIE, v);
    }
    Ok(response)
}

/// `POST /api/v1/logout`: ends the caller's portal session.
pub async fn logout(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(id) = super::auth::session_cookie(&headers) {
        state
            .store
            .delete_session(&token::hash_secret(&id), chrono::Utc::now().timestamp())
            .await
            .map_err(ApiError::internal)?;
    }
    audit(&state, &principal, "logout", None, None, None).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        axum::http::header::SET_COOKIE,
        axum::http::HeaderValue::from_static(
            "ck_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0",
        ),
    );
    Ok(response)
}

async fn audit_outcome(
    state: &AppState,
    principal: &Principal,
    action: &str,
    source: Option<std::net::IpAddr>,
    outcome: &str,
) -> Result<(), ApiError> {
    state
        .store
        .append_audit(certkeeper_model::admin::audit_chain::AuditEntry {
            source: source.map(|s| s.to_string()),
            outcome: outcome.to_owned(),
            ..certkeeper_model::admin::audit_chain::AuditEntry::new(
                principal.user.clone(),
                action,
                Some(principal.user.clone()),
            )
        })
        .await
        .map_err(ApiError::internal)?;
    Ok(())
}
