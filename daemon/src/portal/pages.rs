//! The portal's route table and menu, sign-in and sign-out, and the
//! dashboard. Every page (here and in `inventory`, `workflow`,
//! `operations`) reads or acts through the API in-process, so the API's
//! role and scope checks apply, and renders a template.

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use serde_json::{Value, json};

use super::inventory::{certificate, certificate_action, certificates};
use super::operations::{admin, admin_action, discovery, reports, run_job};
use super::workflow::{acknowledge, alerts, decide, new_request, requests};
use super::{Form, Need, Portal, Session, redirect};
use certkeeper_model::admin::{Permission, Role, allows};

/// Every portal route: method, path, what it needs, handler.
pub fn table() -> Vec<(Method, &'static str, Need, MethodRouter<Portal>)> {
    use Need::{Permission as P, Public, Staff};
    use Permission as Perm;
    vec![
        (
            Method::GET,
            "/",
            Public,
            get(|| async { redirect("/ui/", None) }),
        ),
        (
            Method::GET,
            "/ui",
            Public,
            get(|| async { redirect("/ui/", None) }),
        ),
        (
            Method::GET,
            "/ui/static/portal.css",
            Public,
            get(stylesheet),
        ),
        (Method::GET, "/ui/login", Public, get(login_page)),
        // Any other page under /ui: an HTML 404, not the API's JSON one.
        (Method::GET, "/ui/{*rest}", Public, get(not_found)),
        (Method::POST, "/ui/login", Public, post(login)),
        (
            Method::POST,
            "/ui/logout",
            P(Perm::Authenticated),
            post(logout),
        ),
        (Method::GET, "/ui/", P(Perm::Read), get(dashboard)),
        (
            Method::GET,
            "/ui/certificates",
            P(Perm::Read),
            get(certificates),
        ),
        (
            Method::GET,
            "/ui/certificates/{fingerprint}",
            P(Perm::Read),
            get(certificate),
        ),
        (
            Method::POST,
            "/ui/certificates/{fingerprint}/{action}",
            P(Perm::Lifecycle),
            post(certificate_action),
        ),
        (Method::GET, "/ui/requests", P(Perm::Read), get(requests)),
        (
            Method::POST,
            "/ui/requests",
            P(Perm::Enroll),
            post(new_request),
        ),
        (
            Method::POST,
            "/ui/requests/{id}/{decision}",
            P(Perm::Approve),
            post(decide),
        ),
        (Method::GET, "/ui/discovery", Staff, get(discovery)),
        (
            Method::POST,
            "/ui/discovery/{job}/run",
            P(Perm::Operate),
            post(run_job),
        ),
        (Method::GET, "/ui/alerts", P(Perm::Read), get(alerts)),
        (
            Method::POST,
            "/ui/alerts/{id}/ack",
            P(Perm::Acknowledge),
            post(acknowledge),
        ),
        (Method::GET, "/ui/reports", P(Perm::Read), get(reports)),
        (Method::GET, "/ui/admin", P(Perm::Administer), get(admin)),
        (
            Method::POST,
            "/ui/admin/{what}",
            P(Perm::Administer),
            post(admin_action),
        ),
    ]
}

/// The menu a role sees: only pages it may open.
pub fn menu(role: Role) -> Vec<Value> {
    let mut items = vec![
        json!({ "href": "/ui/", "label": "Dashboard" }),
        json!({ "href": "/ui/certificates", "label": "Inventory" }),
        json!({ "href": "/ui/requests", "label": "Requests" }),
    ];
    if Need::Staff.met_by(role) {
        items.push(json!({ "href": "/ui/discovery", "label": "Discovery" }));
    }
    items.push(json!({ "href": "/ui/alerts", "label": "Alerts" }));
    items.push(json!({ "href": "/ui/reports", "label": "Reports" }));
    if allows(role, Permission::Administer) {
        items.push(json!({ "href": "/ui/admin", "label": "Administration" }));
    }
    items
}

/// Which actions a role's pages offer (the server checks them again).
pub fn abilities(role: Role) -> Value {
    json!({
        "enroll": allows(role, Permission::Enroll),
        "approve": allows(role, Permission::Approve),
        "lifecycle": allows(role, Permission::Lifecycle),
        "retire": allows(role, Permission::Import),
        "acknowledge": allows(role, Permission::Acknowledge),
        "operate": allows(role, Permission::Operate),
        "administer": allows(role, Permission::Administer),
        "audit": allows(role, Permission::ReadAudit),
    })
}

async fn stylesheet() -> Response {
    (
        [
            (axum::http::header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (axum::http::header::CACHE_CONTROL, "max-age=3600"),
        ],
        super::STYLESHEET,
    )
        .into_response()
}

async fn not_found(State(p): State<Portal>, session: Option<Extension<Session>>) -> Response {
    p.error_page(
        session.as_ref().map(|Extension(s)| s),
        StatusCode::NOT_FOUND,
        "There is no such page.",
    )
}

async fn login_page(State(p): State<Portal>, session: Option<Extension<Session>>) -> Response {
    if session.is_some() {
        return redirect("/ui/", None);
    }
    // A fresh install has nobody to sign in as: say how to make the first
    // account rather than leave the form to fail.
    let first_run = !p.state.store().has_users().await.unwrap_or(true);
    p.render(
        None,
        None,
        StatusCode::OK,
        "login.html",
        json!({ "first_run": first_run }),
    )
}

async fn login(
    State(p): State<Portal>,
    connect: Option<Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    Extension(form): Extension<Form>,
) -> Response {
    let name = form.text("name");
    let body = json!({ "user": name, "password": form.get("password").unwrap_or_default() });
    let Ok(body) = serde_json::from_value(body) else {
        return p.render(
            None,
            None,
            StatusCode::BAD_REQUEST,
            "login.html",
            json!({ "error": "Enter your name and password.", "name": name }),
        );
    };
    match crate::api::accounts::login(State(p.state.clone()), connect, axum::Json(body)).await {
        Ok(response) => {
            let mut out = redirect("/ui/", None);
            if let Some(cookie) = response.headers().get(axum::http::header::SET_COOKIE) {
                out.headers_mut()
                    .insert(axum::http::header::SET_COOKIE, cookie.clone());
            }
            out
        }
        Err(e) => {
            let status = e.into_response().status();
            let message = if status == StatusCode::TOO_MANY_REQUESTS {
                "Too many failed sign-ins; wait a few minutes and try again."
            } else {
                "Wrong name or password."
            };
            p.render(
                None,
                None,
                status,
                "login.html",
                json!({ "error": message, "name": name }),
            )
        }
    }
}

async fn logout(
    State(p): State<Portal>,
    Extension(s): Extension<Session>,
    headers: HeaderMap,
) -> Response {
    let _ = crate::api::accounts::logout(
        State(p.state.clone()),
        Extension(s.principal.clone()),
        headers,
    )
    .await;
    let mut out = redirect("/ui/login", None);
    out.headers_mut().insert(
        axum::http::header::SET_COOKIE,
        axum::http::HeaderValue::from_static(
            "ck_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0",
        ),
    );
    out
}

/// Statuses in the order the dashboard shows them.
pub(super) const STATUSES: [&str; 6] = [
    "valid",
    "expiring",
    "expired",
    "revoked",
    "deactivated",
    "unknown",
];

async fn dashboard(
    State(p): State<Portal>,
    Extension(s): Extension<Session>,
    headers: HeaderMap,
) -> Response {
    let who = &s.principal;
    let counts = p.read(who, "/api/v1/counts").await;
    let statuses: Vec<Value> = STATUSES
        .iter()
        .map(|st| json!({ "status": st, "count": counts[st].as_u64().unwrap_or(0) }))
        .collect();
    let timeline = weekly(&items(&p.read(who, "/api/v1/expiries?weeks=13").await));
    let findings = p.read(who, "/api/v1/findings?limit=10").await;
    let pending = p
        .read(who, "/api/v1/requests?state=pending&limit=100")
        .await;
    let alerts = p.read(who, "/api/v1/alerts?state=open&limit=100").await;
    let open: Vec<Value> = items(&alerts)
        .into_iter()
        .filter(|a| a["folded"] != json!(true))
        .collect();
    // A first page's count, with "+" when there are more pages.
    let total = |page: &Value, n: usize| {
        if page["next_cursor"].is_string() {
            format!("{n}+")
        } else {
            n.to_string()
        }
    };
    p.render(
        Some(&s),
        Some(&headers),
        StatusCode::OK,
        "dashboard.html",
        json!({
            "title": "Dashboard",
            "statuses": statuses,
            "timeline": timeline,
            "findings": items(&findings),
            "pending": items(&pending).iter().take(10).collect::<Vec<_>>(),
            "pending_total": total(&pending, items(&pending).len()),
            "alerts": open.iter().take(10).collect::<Vec<_>>(),
            "alerts_total": total(&alerts, open.len()),
        }),
    )
}

pub(super) fn items(v: &Value) -> Vec<Value> {
    v["items"]
        .as_array()
        .or_else(|| v.as_array())
        .cloned()
        .unwrap_or_default()
}

/// Bar geometry for an inline SVG chart of the weekly expiry counts
/// (`GET /api/v1/expiries` items).
fn weekly(weeks: &[Value]) -> Value {
    let max = weeks
        .iter()
        .filter_map(|w| w["count"].as_u64())
        .max()
        .unwrap_or(0)
        .max(1);
    let bars: Vec<Value> = weeks
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let n = w["count"].as_u64().unwrap_or(0);
            let height = (n as f64 / max as f64 * 100.0).round();
            let i = i as i64;
            json!({
                "week": w["start"],
                "count": n,
                "x": i * 40 + 30,
                "y": 110.0 - height,
                "height": height,
            })
        })
        .collect();
    json!({ "bars": bars, "max": max, "width": weeks.len() as i64 * 40 + 40 })
}
