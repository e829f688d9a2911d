//! Authentication and authorization of every request.
//!
//! Credentials, in order:
//! 1. `Authorization: Bearer <api.token>`: the config's token, a primary
//!    admin (the CLI on the daemon's own machine uses it).
//! 2. `Authorization: Bearer ckt_<id>_<secret>`: a user's API token, looked
//!    up by id, its secret compared in constant time with the stored hash;
//!    revoked, expired or disabled-user tokens are refused.
//! 3. Nothing: allowed only while no `api.token` is set and no account
//!    exists (a fresh install on loopback); the caller is then a primary
//!    admin named `anonymous`. Creating the first account closes the API.
//!
//! Then the matched route's [`Permission`] (from `routes::table`) is checked
//! against the caller's role: 401 without valid credentials, 403 when the
//! role lacks the permission. Failed attempts are limited per source address
//! (and per token id): after too many the source gets 429 with
//! `Retry-After` until its lockout passes. The [`Principal`] goes into the
//! request's extensions for handlers' scope checks.

use certkeeper_model::admin::ratelimit::Subject;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use certkeeper_model::admin::{Permission, Principal, Role, Scope, allows, token};

/// The client's address: the peer's, or, when the peer is one of the
/// trusted `proxies`, the rightmost `X-Forwarded-For` entry that is not
/// itself a trusted proxy. Walking stops at an entry that is not an address
/// (the peer is then the client): nothing left of it can be trusted.
pub fn client_ip(proxies: &[ipnet::IpNet], peer: IpAddr, headers: &header::HeaderMap) -> IpAddr {
    let trusted = |ip: IpAddr| proxies.iter().any(|net| net.contains(&ip.to_canonical()));
    if !trusted(peer) {
        return peer;
    }
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    for entry in entries.into_iter().rev() {
        match entry.parse::<IpAddr>() {
            Ok(ip) if trusted(ip) => continue,
            Ok(ip) => return ip.to_canonical(),
            Err(_) => return peer,
        }
    }
    peer
}

/// Middleware: behind a trusted proxy, the request's `ConnectInfo` becomes
/// the client it forwards for (see [`client_ip`]), so sign-in limits, the
/// open mode's loopback rule and the audit log see the real client.
pub async fn forwarded_client(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let proxies = state.config().api.trusted_proxy_nets();
    if !proxies.is_empty()
        && let Some(ConnectInfo(peer)) = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .copied()
    {
        let client = client_ip(&proxies, peer.ip(), request.headers());
        if client != peer.ip() {
            request
                .extensions_mut()
                .insert(ConnectInfo(SocketAddr::new(client, peer.port())));
        }
    }
    next.run(request).await
}

/// Whether a caller without credentials may use a daemon in open mode (no
/// `api.token`, no accounts): only from the machine itself, so a fresh
/// install listening on a public address is not everyone's administrator.
pub fn open_mode_admits(source: IpAddr) -> bool {
    source.to_canonical().is_loopback()
}

fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    let mut response = (
        status,
        axum::Json(json!({ "error": { "code": code, "message": message } })),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
    }
    response
}

/// A principal already authenticated by the web portal, attached to the
/// API requests the portal makes in-process.
#[derive(Debug, Clone)]
pub struct InProcess(pub Principal);

/// The principal and CSRF key of a live portal session, or `None` when the
/// session is unknown, expired or its account disabled.
pub async fn session_principal(
    state: &AppState,
    id: &str,
) -> Result<Option<(Principal, String)>, Response> {
    let now = chrono::Utc::now().timestamp();
    let Some(session) = state
        .store
        .session(&token::hash_secret(id), now)
        .await
        .map_err(internal)?
    else {
        return Ok(None);
    };
    let Some(user) = state.store.user(&session.user).await.map_err(internal)? else {
        return Ok(None);
    };
    if user.disabled {
        return Ok(None);
    }
    Ok(Some((principal_of(state, user).await?, session.csrf_key)))
}

/// The middleware: authenticates, authorizes, and hands the principal on.
pub async fn authorize(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let permission = request
        .extensions()
        .get::<MatchedPath>()
        .and_then(|p| {
            state
                .permissions
                .get(&(request.method().clone(), p.as_str().to_owned()))
        })
        .copied();
    // A route with no rule does not exist as far as callers know (the
    // fallback answers unmatched paths before this runs).
    let Some(permission) = permission else {
        return refuse(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such route; see /api/v1/openapi.json",
        );
    };
    if permission == Permission::Public {
        return next.run(request).await;
    }
    let source = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    // The portal's in-process calls carry the principal it authenticated
    // (an extension cannot come from the network); the permission check
    // below still applies.
    let principal = match request.extensions().get::<InProcess>().cloned() {
        Some(InProcess(principal)) => principal,
        None => match credentials(&state, request.headers(), request.method(), source).await {
            Ok(p) => p,
            Err(response) => return response,
        },
    };
    if !allows(principal.role, permission) {
        return refuse(
            StatusCode::FORBIDDEN,
            "forbidden",
            &format!("the {} role may not do this", principal.role),
        );
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
}

/// The principal of a request's bearer token or portal session.
async fn credentials(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    method: &axum::http::Method,
    source: IpAddr,
) -> Result<Principal, Response> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned());
    let session = if presented.is_none() {
        session_cookie(headers)
    } else {
        None
    };
    if let Some(id) = session {
        let csrf = headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let safe = matches!(*method, axum::http::Method::GET | axum::http::Method::HEAD);
        from_session(state, &id, csrf.as_deref(), safe).await
    } else {
        authenticate(state, presented.as_deref(), source).await
    }
}

async fn authenticate(
    state: &AppState,
    presented: Option<&str>,
    source: IpAddr,
) -> Result<Principal, Response> {
    let config = state.config();
    let now = Instant::now();
    let Some(presented) = presented else {
        let open =
            config.api.token.is_none() && !state.store.has_users().await.map_err(internal)?;
        return if open && open_mode_admits(source) {
            Ok(Principal::root("anonymous"))
        } else if open {
            Err(refuse(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "this daemon has no api.token and no accounts yet: it answers callers on this machine (loopback) only",
            ))
        } else {
            Err(refuse(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "sign in: send Authorization: Bearer <token> (api.token, or a token from `certkeeper token create`)",
            ))
        };
    };
    // A user token's failures count against its id; anything else (a wrong
    // api.token, garbage) against the source, so strangers cannot lock the
    // config's token out. Neither shares a namespace with user names.
    let account = match token::parse(presented) {
        Some((id, _)) => Subject::Token(id),
        None => Subject::Unknown,
    };
    if let Err(wait) = state.limiter.check(account, source, now) {
        let mut response = refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_failures",
            "too many failed sign-ins from here; wait and try again",
        );
        if let Ok(v) = header::HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return Err(response);
    }
    if let Some(expected) = &config.api.token
        && super::constant_time_eq(presented.as_bytes(), expected.expose().as_bytes())
    {
        state.limiter.success(account, source, now);
        return Ok(Principal::root("api-token"));
    }
    let fail = || {
        state.limiter.failure(account, source, now);
        refuse(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "unknown, expired or revoked token",
        )
    };
    let Some((id, secret)) = token::parse(presented) else {
        return Err(fail());
    };
    let Some(record) = state.store.token(id).await.map_err(internal)? else {
        return Err(fail());
    };
    let unix = chrono::Utc::now().timestamp();
    if !token::verify(secret, &record.secret_hash)
        || record.revoked.is_some()
        || record.expires.is_some_and(|e| e <= unix)
    {
        return Err(fail());
    }
    let Some(user) = state.store.user(&record.user).await.map_err(internal)? else {
        return Err(fail());
    };
    if user.disabled {
        return Err(fail());
    }
    state.limiter.success(account, source, now);
    principal_of(state, user).await
}

/// The `ck_session` cookie's value, if the request carries one.
pub fn session_cookie(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == super::accounts::SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|v| !v.is_empty())
}

/// The principal of a portal session; requests that change something must
/// carry the session's CSRF token.
async fn from_session(
    state: &AppState,
    id: &str,
    csrf: Option<&str>,
    safe: bool,
) -> Result<Principal, Response> {
    let now = chrono::Utc::now().timestamp();
    let expired = || {
        refuse(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the session ended; sign in again",
        )
    };
    let Some(session) = state
        .store
        .session(&token::hash_secret(id), now)
        .await
        .map_err(internal)?
    else {
        return Err(expired());
    };
    if !safe && !csrf.is_some_and(|c| token::check_csrf(id, session.csrf_key.as_bytes(), c)) {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "csrf",
            "missing or wrong X-CSRF-Token (the token given at sign-in)",
        ));
    }
    let Some(user) = state.store.user(&session.user).await.map_err(internal)? else {
        return Err(expired());
    };
    if user.disabled {
        return Err(expired());
    }
    principal_of(state, user).await
}

async fn principal_of(
    state: &AppState,
    user: certkeeper_store::accounts::User,
) -> Result<Principal, Response> {
    let units = state.unit_closure(&user.units).await.map_err(internal)?;
    let scope = match user.role {
        Role::PrimaryAdmin | Role::Auditor => Scope::All,
        Role::DepartmentAdmin => Scope::Units(units),
        Role::Subscriber => Scope::Own {
            user: user.name.clone(),
            units,
        },
    };
    Ok(Principal {
        user: user.name,
        role: user.role,
        scope,
    })
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "authentication failed on a store error");
    refuse(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error; see the daemon's log",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_mode_admits_only_loopback_callers() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(open_mode_admits(ip("127.0.0.1")));
        assert!(open_mode_admits(ip("127.8.9.10")));
        assert!(open_mode_admits(ip("::1")));
        assert!(
            open_mode_admits(ip("::ffff:127.0.0.1")),
            "a dual-stack socket's loopback"
        );
        assert!(!open_mode_admits(ip("192.0.2.7")));
        assert!(!open_mode_admits(ip("::ffff:192.0.2.7")));
        assert!(!open_mode_admits(ip("2001:db8::1")));
        assert!(
            !open_mode_admits(ip("0.0.0.0")),
            "no address is not a loopback address"
        );
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let proxies: Vec<ipnet::IpNet> = vec![
            "127.0.0.1/32".parse().unwrap(),
            "10.0.0.0/24".parse().unwrap(),
        ];
        let headers = |values: &[&str]| {
            let mut map = header::HeaderMap::new();
            for v in values {
                map.append("x-forwarded-for", header::HeaderValue::from_str(v).unwrap());
            }
            map
        };
        // From a trusted proxy: the rightmost entry not a proxy itself.
        let chain = headers(&["198.51.100.1, 203.0.113.9", "10.0.0.7"]);
        assert_eq!(
            client_ip(&proxies, ip("127.0.0.1"), &chain),
            ip("203.0.113.9")
        );
        // From anyone else the header is a claim, not a fact.
        assert_eq!(
            client_ip(&proxies, ip("192.0.2.4"), &chain),
            ip("192.0.2.4")
        );
        // Garbage ends the walk: nothing left of it is trusted.
        let bad = headers(&["198.51.100.1, not-an-address"]);
        assert_eq!(client_ip(&proxies, ip("127.0.0.1"), &bad), ip("127.0.0.1"));
        // No header: the proxy itself.
        assert_eq!(
            client_ip(&proxies, ip("127.0.0.1"), &headers(&[])),
            ip("127.0.0.1")
        );
        assert_eq!(
            client_ip(&proxies, ip("::ffff:127.0.0.1"), &headers(&["2001:db8::5"])),
            ip("2001:db8::5")
        );
    }
}
