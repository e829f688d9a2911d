//! The route table: every route with the [`Permission`] it needs, in one
//! place. The router is built from it and the authorization middleware looks
//! each request's matched route up in it, so a route cannot exist without a
//! rule (`tests/admin.rs` walks this table for every role).

use axum::http::Method;
use axum::routing::{MethodRouter, delete, get, post};

use super::{AppState, accounts, alerts, lifecycle, metrics, openapi, requests};
use crate::admin::Permission;

/// One route and what it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// HTTP method.
    pub method: Method,
    /// The axum path pattern (`/api/v1/certificates/{fingerprint}`).
    pub path: &'static str,
    /// What the caller needs.
    pub permission: Permission,
}

/// Every route: its spec and its handler.
pub fn table() -> Vec<(RouteSpec, MethodRouter<AppState>)> {
    use Permission as P;
    let r = |method: Method, path: &'static str, permission, handler| {
        (
            RouteSpec {
                method,
                path,
                permission,
            },
            handler,
        )
    };
    vec![
        r(Method::GET, "/healthz", P::Public, get(|| async { "ok\n" })),
        r(Method::GET, "/readyz", P::Public, get(super::readyz)),
        r(
            Method::GET,
            "/api/v1/openapi.json",
            P::Public,
            get(openapi::handler),
        ),
        r(
            Method::GET,
            "/crl/{connector}",
            P::Public,
            get(lifecycle::crl),
        ),
        r(
            Method::GET,
            "/metrics",
            P::ReadOperations,
            get(metrics::handler),
        ),
        r(
            Method::GET,
            "/api/v1/certificates",
            P::Read,
            get(super::list_certificates),
        ),
        r(
            Method::GET,
            "/api/v1/certificates/{fingerprint}",
            P::Read,
            get(super::show_certificate),
        ),
        r(Method::GET, "/api/v1/counts", P::Read, get(super::counts)),
        r(
            Method::POST,
            "/api/v1/import",
            P::Import,
            post(super::import),
        ),
        r(
            Method::GET,
            "/api/v1/jobs",
            P::ReadOperations,
            get(super::jobs),
        ),
        r(
            Method::GET,
            "/api/v1/jobs/{name}/runs",
            P::ReadOperations,
            get(super::job_runs),
        ),
        r(
            Method::POST,
            "/api/v1/jobs/{name}/run",
            P::Operate,
            post(super::run_job),
        ),
        r(
            Method::GET,
            "/api/v1/findings",
            P::Read,
            get(super::list_findings),
        ),
        r(
            Method::GET,
            "/api/v1/managed",
            P::Read,
            get(lifecycle::list_managed),
        ),
        r(
            Method::POST,
            "/api/v1/managed",
            P::Administer,
            post(lifecycle::create_managed),
        ),
        r(
            Method::DELETE,
            "/api/v1/managed/{name}",
            P::Administer,
            delete(lifecycle::delete_managed),
        ),
        r(
            Method::POST,
            "/api/v1/managed/renew-all",
            P::Operate,
            post(lifecycle::renew_all),
        ),
        r(
            Method::POST,
            "/api/v1/managed/{name}/renew",
            P::Lifecycle,
            post(lifecycle::renew_one),
        ),
        r(
            Method::GET,
            "/api/v1/events",
            P::Read,
            get(lifecycle::list_events),
        ),
        r(
            Method::GET,
            "/api/v1/alerts",
            P::Read,
            get(alerts::list_alerts),
        ),
        r(
            Method::POST,
            "/api/v1/alerts/{id}/ack",
            P::Acknowledge,
            post(alerts::ack_alert),
        ),
        r(
            Method::GET,
            "/api/v1/deliveries",
            P::ReadOperations,
            get(alerts::list_deliveries),
        ),
        r(
            Method::POST,
            "/api/v1/certificates/{fingerprint}/replace",
            P::Lifecycle,
            post(lifecycle::replace),
        ),
        r(
            Method::POST,
            "/api/v1/certificates/{fingerprint}/revoke",
            P::Lifecycle,
            post(lifecycle::revoke),
        ),
        r(
            Method::GET,
            "/api/v1/whoami",
            P::Authenticated,
            get(accounts::whoami),
        ),
        r(
            Method::GET,
            "/api/v1/users",
            P::Administer,
            get(accounts::list_users),
        ),
        r(
            Method::POST,
            "/api/v1/users",
            P::Administer,
            post(accounts::create_user),
        ),
        r(
            Method::POST,
            "/api/v1/users/{name}",
            P::Administer,
            post(accounts::update_user),
        ),
        r(
            Method::GET,
            "/api/v1/org-units",
            P::Read,
            get(accounts::list_units),
        ),
        r(
            Method::POST,
            "/api/v1/org-units",
            P::Administer,
            post(accounts::put_unit),
        ),
        r(
            Method::GET,
            "/api/v1/tokens",
            P::Authenticated,
            get(accounts::list_tokens),
        ),
        r(
            Method::POST,
            "/api/v1/tokens",
            P::Authenticated,
            post(accounts::create_token),
        ),
        r(
            Method::DELETE,
            "/api/v1/tokens/{id}",
            P::Authenticated,
            delete(accounts::revoke_token),
        ),
        r(
            Method::POST,
            "/api/v1/certificates/assign",
            P::Administer,
            post(accounts::assign_certificates),
        ),
        r(
            Method::GET,
            "/api/v1/requests",
            P::Read,
            get(requests::list),
        ),
        r(
            Method::POST,
            "/api/v1/requests",
            P::Enroll,
            post(requests::create),
        ),
        r(
            Method::GET,
            "/api/v1/requests/{id}",
            P::Read,
            get(requests::show),
        ),
        r(
            Method::POST,
            "/api/v1/requests/{id}/approve",
            P::Approve,
            post(requests::approve),
        ),
        r(
            Method::POST,
            "/api/v1/requests/{id}/reject",
            P::Approve,
            post(requests::reject),
        ),
        r(
            Method::POST,
            "/api/v1/requests/{id}/assign",
            P::Approve,
            post(requests::assign),
        ),
        r(
            Method::GET,
            "/api/v1/domains",
            P::Read,
            get(requests::list_domains),
        ),
        r(
            Method::POST,
            "/api/v1/domains",
            P::Administer,
            post(requests::put_domain),
        ),
        r(
            Method::DELETE,
            "/api/v1/domains/{domain}",
            P::Administer,
            delete(requests::delete_domain),
        ),
        r(
            Method::POST,
            "/api/v1/requests/bulk",
            P::Enroll,
            post(requests::bulk),
        ),
        r(
            Method::GET,
            "/api/v1/domains/caa",
            P::Read,
            get(requests::caa_report),
        ),
        r(
            Method::POST,
            "/api/v1/login",
            P::Public,
            post(accounts::login),
        ),
        r(
            Method::POST,
            "/api/v1/logout",
            P::Authenticated,
            post(accounts::logout),
        ),
        r(
            Method::GET,
            "/api/v1/units",
            P::Read,
            get(requests::list_units),
        ),
        r(
            Method::POST,
            "/api/v1/units",
            P::Administer,
            post(requests::add_units),
        ),
        r(
            Method::GET,
            "/api/v1/audit",
            P::ReadAudit,
            get(accounts::list_audit),
        ),
        r(
            Method::GET,
            "/api/v1/audit/verify",
            P::ReadAudit,
            get(accounts::verify_audit),
        ),
    ]
}

/// Every route's spec.
pub fn specs() -> Vec<RouteSpec> {
    table().into_iter().map(|(spec, _)| spec).collect()
}
