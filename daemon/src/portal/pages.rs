//! The portal's pages and actions: each reads or acts through the API
//! in-process (so the API's role and scope checks apply) and renders a
//! template.

use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use serde_json::{Value, json};

use super::{Flash, Form, Need, Portal, Session, redirect};
use crate::admin::{Permission, Role, allows};

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

async fn login_page(State(p): State<Portal>, session: Option<Extension<Session>>) -> Response {
    if session.is_some() {
        return redirect("/ui/", None);
    }
    p.render(None, None, StatusCode::OK, "login.html", json!({}))
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
const STATUSES: [&str; 6] = [
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
    let counts = p
        .api(who, Method::GET, "/api/v1/counts", None)
        .await
        .or(json!({}));
    let statuses: Vec<Value> = STATUSES
        .iter()
        .map(|st| json!({ "status": st, "count": counts[st].as_u64().unwrap_or(0) }))
        .collect();
    let expiring = p
        .api(
            who,
            Method::GET,
            "/api/v1/certificates?expiring_within=90d&limit=500",
            None,
        )
        .await
        .or(json!({}));
    let timeline = weekly(&expiring["items"], 13);
    let findings = p
        .api(who, Method::GET, "/api/v1/findings?limit=10", None)
        .await
        .or(json!([]));
    let pending = p
        .api(who, Method::GET, "/api/v1/requests?state=pending", None)
        .await
        .or(json!({}));
    let alerts = p
        .api(who, Method::GET, "/api/v1/alerts?state=open", None)
        .await
        .or(json!({}));
    p.render(
        Some(&s),
        Some(&headers),
        StatusCode::OK,
        "dashboard.html",
        json!({
            "title": "Dashboard",
            "statuses": statuses,
            "timeline": timeline,
            "more_expiring": expiring["next_cursor"].is_string(),
            "findings": findings,
            "pending": items(&pending).iter().take(10).collect::<Vec<_>>(),
            "pending_total": items(&pending).len(),
            "alerts": items(&alerts).iter().filter(|a| a["folded"] != json!(true)).take(10).collect::<Vec<_>>(),
            "alerts_total": items(&alerts).iter().filter(|a| a["folded"] != json!(true)).count(),
        }),
    )
}

fn items(v: &Value) -> Vec<Value> {
    v["items"]
        .as_array()
        .or_else(|| v.as_array())
        .cloned()
        .unwrap_or_default()
}

/// Expiries per week for the next `weeks` weeks, with bar geometry for an
/// inline SVG chart.
fn weekly(certificates: &Value, weeks: i64) -> Value {
    let now = chrono::Utc::now().timestamp();
    let mut counts = vec![0u64; usize::try_from(weeks).unwrap_or(13)];
    for c in certificates.as_array().into_iter().flatten() {
        if let Some(t) = c["not_after"].as_i64() {
            let w = (t - now).div_euclid(7 * 86_400);
            if let Some(slot) = usize::try_from(w).ok().and_then(|w| counts.get_mut(w)) {
                *slot += 1;
            }
        }
    }
    let max = counts.iter().copied().max().unwrap_or(0).max(1);
    let bars: Vec<Value> = counts
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let height = (*n as f64 / max as f64 * 100.0).round();
            let i = i as i64;
            json!({
                "week": super::date(now + i * 7 * 86_400),
                "count": n,
                "x": i * 40 + 30,
                "y": 110.0 - height,
                "height": height,
            })
        })
        .collect();
    json!({ "bars": bars, "max": max, "width": weeks * 40 + 40 })
}

async fn certificates(
    State(p): State<Portal>,
    Extension(s): Extension<Session>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let params: Vec<(String, String)> =
        url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .filter(|(_, v)| !v.is_empty())
            .collect();
    let get = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let sort = get("sort");
    // The serializer is not Send: finish it before any await.
    let query = {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for key in ["q", "status", "org_unit", "issuer", "cursor"] {
            let v = get(key);
            if !v.is_empty() {
                query.append_pair(key, &v);
            }
        }
        match sort.as_str() {
            "expiring30" => {
                query.append_pair("expiring_within", "30d");
            }
            "expiring90" => {
                query.append_pair("expiring_within", "90d");
            }
            _ => {}
        }
        query.append_pair("limit", "50");
        query.finish()
    };
    let who = &s.principal;
    let page = p
        .api(
            who,
            Method::GET,
            &format!("/api/v1/certificates?{query}"),
            None,
        )
        .await;
    let error = (!page.ok()).then(|| page.message());
    let page = page.or(json!({}));
    let units = p
        .api(who, Method::GET, "/api/v1/org-units", None)
        .await
        .or(json!({}));
    // The next page keeps the filters.
    let next = page["next_cursor"].as_str().map(|c| {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for key in ["q", "status", "org_unit", "issuer", "sort"] {
            let v = get(key);
            if !v.is_empty() {
                q.append_pair(key, &v);
            }
        }
        q.append_pair("cursor", c);
        format!("/ui/certificates?{}", q.finish())
    });
    let mut export = url::form_urlencoded::Serializer::new(String::new());
    export.append_pair("format", "csv");
    for key in ["status", "org_unit", "issuer"] {
        let v = get(key);
        if !v.is_empty() {
            export.append_pair(key, &v);
        }
    }
    p.render(
        Some(&s),
        Some(&headers),
        StatusCode::OK,
        "certificates.html",
        json!({
            "title": "Inventory",
            "items": items(&page),
            "next": next,
            "export": format!("/api/v1/reports/inventory?{}", export.finish()),
            "filters": { "q": get("q"), "status": get("status"), "org_unit": get("org_unit"), "issuer": get("issuer"), "sort": sort },
            "statuses": STATUSES,
            "units": items(&units),
            "error": error,
        }),
    )
}

async fn certificate(
    State(p): State<Portal>,
    Extension(s): Extension<Session>,
    headers: HeaderMap,
    Path(fingerprint): Path<String>,
) -> Response {
    let who = &s.principal;
    let fp: String = fingerprint
        .chars()
        .filter(char::is_ascii_hexdigit)
        .collect::<String>()
        .to_lowercase();
    let detail = p
        .api(
            who,
            Method::GET,
            &format!("/api/v1/certificates/{fp}"),
            None,
        )
        .await;
    if !detail.ok() {
        return p.error_page(Some(&s), detail.status, &detail.message());
    }
    let mut detail = detail.body;
    // The record carries the certificate's PEM (public); the page shows
    // fields, never key material.
    if let Some(c) = detail["certificate"].as_object_mut() {
        c.remove("pem");
    }
    let managed = p
        .api(who, Method::GET, "/api/v1/managed", None)
        .await
        .or(json!({}));
    let managed = items(&managed).into_iter().find(|m| {
        m["fingerprint"] == json!(fp)
            || m["previous"]
                .as_array()
                .is_some_and(|prev| prev.contains(&json!(fp)))
    });
    let audit = if allows(who.role, Permission::ReadAudit) {
        let a = p
            .api(
                who,
                Method::GET,
                &format!("/api/v1/audit?object={fp}&limit=50"),
                None,
            )
            .await
            .or(json!({}));
        items(&a)
    } else {
        Vec::new()
    };
    let current = managed
        .as_ref()
        .is_some_and(|m| m["fingerprint"] == json!(fp));
    p.render(
        Some(&s),
        Some(&headers),
        StatusCode::OK,
        "certificate.html",
        json!({
            "title": detail["certificate"]["subject"],
            "fp": fp,
            "c": detail["certificate"],
            "sightings": detail["sightings"],
            "findings": detail["findings"],
            "managed": managed,
            "current": current,
            "audit": audit,
        }),
    )
}

async fn certificate_action(
    State(p): State<Portal>,
    Extension(s): Extension<Session>,
    Extension(form): Extension<Form>,
    Path((fingerprint, action)): Path<(String, String)>,
) -> Response {
    let who = &s.principal;
    let fp: String = fingerprint
        .chars()
        .filter(char::is_ascii_hexdigit)
        .collect::<String>()
        .to_lowercase();
    let back = format!("/ui/certificates/{fp}");
    let reason = form.text("reason");
    let body = (!reason.is_empty()).then(|| json!({ "reason": reason }));
    let answer = match action.as_str() {
        "renew" => {
            let name = form.text("managed");
            p.api(
                who,
                Method::POST,
                &format!(
                    "/api/v1/managed/{}/renew",
                    url::form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>()
                ),
                None,
            )
            .await
        }
        "revoke" | "replace" => {
            p.api(
                who,
                Method::POST,
                &format!("/api/v1/certificates/{fp}/{action}"),
                body.or(Some(json!({}))),
            )
            .await
        }
        _ => return p.error_page(Some(&s), StatusCode::NOT_FOUND, "No such action."),
    };
    let flash = if answer.ok() {
        Flash::Done(match action.as_str() {
            "renew" => "Renewal started.".to_owned(),
            "revoke" => "Certificate revoked.".to_owned(),
            _ => "Replacement started: the old certificate is revoked once the new one serves."
                .to_owned(),
        })
    } else {
        Flash::Failed(answer.message())
    };
    redirect(&back, Some(flash))
}

async fn requests(
    State(p): State<Portal>,
    Extension(s): Extension<Session>,
    headers: HeaderMap,
) -> Response {
    let who = &s.principal;
    let list = p
        .api(who, Method::GET, "/api/v1/requests", None)
        .await
        .or(json!({}));
    let managed = p
        .api(who, Method::GET, "/api/v1/managed", None)
        .await
        .or(json!({}));
    let managed = items(&managed);
    let rows: Vec<Value> = items(&list)
        .into_iter()
        .map(|mut r| {
            let issued = r["managed"].as_str().and_then(|name| {
                managed
                    .iter()
                    .find(|m| m["name"] == json!(name))
                    .and_then(|m| m["fingerprint"].as_str())
                    .map(str::to_owned)
            });
            r["fingerprint"] = json!(issued);
            r
        })
        .collect();
    let units = p
        .api(who, Method::GET, "/api/v1/org-units", None)
        .await
        .or(json!({}));
    let connectors: Vec<String> = p
        .state
        .config()
        .connectors
        .iter()
        .map(|c| c.name().to_owned())
        .collect();
    p.render(
        Some(&s),
        Some(&headers),
        StatusCode::OK,
        "requests.html",
        json!({
            "title": "Requests",
            "requests": rows,
            "units": items(&units),
            "connectors": connectors,
        }),
    )
}

async fn new_request(
    State(p): State<Portal>,
    Extension(s): Extension<Session>,
    Extension(form): Extension<Form>,
) -> Response {
    let identifiers: Vec<String> = form
        .text("identifiers")
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect();
    let mut body = json!({
        "identifiers": identifiers,
        "connector": form.text("connector"),
    });
    for key in ["org_unit", "contact"] {
        let v = form.text(key);
        if !v.is_empty() {
            body[key] = json!(v);
        }
    }
    let answer = p
        .api(&s.principal, Method::POST, "/api/v1/requests", Some(body))
        .await;
    let flash = if answer.ok() {
        Flash::Done(format!(
            "Request {} is {}.",
            answer.body["id"].as_str().unwrap_or("?"),
            answer.body["state"].as_str().unwrap_or("recorded")
        ))
    } else {
        Flash::Failed(answer.message())
    };
    redirect("/ui/requests", Some(flash))
}

async fn decide(
    State(p): State<Portal>,
    Extension(s): Extension<Session>,
    Extension(form): Extension<Form>,
    Path((id, decision)): Path<(String, String)>,
) -> Response {
    let body = match decision.as_str() {
        "approve" => json!({}),
        "reject" => json!({ "reason": form.text("reason") }),
        "assign" => json!({ "to": form.text("to") }),
        _ => return p.error_page(Some(&s), StatusCode::NOT_FOUND, "No such decision."),
    };
    let id_part: String = url::form_urlencoded::byte_serialize(id.as_bytes()).collect();
    let answer = p
        .api(
            &s.principal,
            Method::POST,
            &format!("/api/v1/requests/{id_part}/{decision}"),
            Some(body),
        )
        .await;
    if answer.status == StatusCode::FORBIDDEN || answer.status == StatusCode::NOT_FOUND {
        return p.error_page(Some(&s), answer.status, &answer.message());
    }
    let flash = if answer.ok() {
        Flash::Done(format!(
            "Request {id} {}.",
            if decision == "approve" {
                "approved"
            } else {
                "rejected"
            }
        ))
    } else {
        Flash::Failed(answer.message())
    };
    redirect("/ui/requests", Some(flash))
}

async fn discovery(
    State(p): State<Portal>,
    Extension(s): Extension<Session>,
    headers: HeaderMap,
) -> Response {
    let who = &s.principal;
    let jobs = p
        .api(who, Method::GET, "/api/v1/jobs", None)
        .await
        .or(json!([]));
    let mut rows = Vec::new();
    for job in items(&jobs) {
        let name = job["name"].as_str().unwrap_or_default().to_owned();
        let runs = p
            .api(
                who,
                Method::GET,
                &format!(
                    "/api/v1/jobs/{}/runs",
                    url::form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>()
                ),
                None,
            )
            .await
            .or(json!([]));
        rows.push(json!({ "job": job, "last": items(&runs).into_iter().next() }));
    }
    let findings = p
        .api(who, Method::GET, "/api/v1/findings?limit=200", None)
        .await
        .or(json!([]));
    let sources: Vec<Value> = {
        let config = p.state.config();
        let d = &config.discovery;
        d.network
            .iter()
            .map(|n| json!({ "kind": "network", "name": n.name, "schedule": n.schedule }))
            .chain(
                d.files
                    .iter()
                    .map(|f| json!({ "kind": "files", "name": f.name, "schedule": f.schedule })),
            )
            .collect()
    };
    p.render(
        Some(&s),
        Some(&headers),
        StatusCode::OK,
        "discovery.html",
        json!({
            "title": "Discovery",
            "jobs": rows,
            "findings": items(&findings),
            "sources": sources,
        }),
    )
}

async fn run_job(
    State(p): State<Portal>,
    Extension(s): Extension<Session>,
    Path(job): Path<String>,
) -> Response {
    let part: String = url::form_urlencoded::byte_serialize(job.as_bytes()).collect();
    let answer = p
        .api(
            &s.principal,
            Method::POST,
            &format!("/api/v1/jobs/{part}/run"),
            None,
        )
        .await;
    let flash = if answer.ok() {
        Flash::Done(format!("Job {job} will run now."))
    } else {
        Flash::Failed(answer.message())
    };
    redirect("/ui/discovery", Some(flash))
}

async fn alerts(
    State(p): State<Portal>,
    Extension(s): Extension<Session>,
    headers: HeaderMap,
) -> Response {
    let list = p
        .api(&s.principal, Method::GET, "/api/v1/alerts", None)
        .await
        .or(json!({}));
    let rows: Vec<Value> = items(&list)
        .into_iter()
        .filter(|a| a["folded"] != json!(true))
        .collect();
    p.render(
        Some(&s),
        Some(&headers),
        StatusCode::OK,
        "alerts.html",
        json!({ "title": "Alerts", "alerts": rows }),
    )
}

async fn acknowledge(
    State(p): State<Portal>,
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
) -> Response {
    let part: String = url::form_urlencoded::byte_serialize(id.as_bytes()).collect();
    let answer = p
        .api(
            &s.principal,
            Method::POST,
            &format!("/api/v1/alerts/{part}/ack"),
            Some(json!({})),
        )
        .await;
    if answer.status == StatusCode::NOT_FOUND {
        return p.error_page(Some(&s), answer.status, &answer.message());
    }
    let flash = if answer.ok() {
        Flash::Done("Alert acknowledged.".into())
    } else {
        Flash::Failed(answer.message())
    };
    redirect("/ui/alerts", Some(flash))
}

async fn reports(
    State(p): State<Portal>,
    Extension(s): Extension<Session>,
    headers: HeaderMap,
) -> Response {
    let config = p.state.config();
    let schedules: Vec<Value> = config
        .jobs
        .iter()
        .filter_map(|j| match j {
            crate::config::JobConfig::Report(r) => Some(json!({
                "name": r.name,
                "kind": r.kind,
                "format": r.format,
                "schedule": r.schedule,
                "directory": r.directory.display().to_string(),
            })),
            _ => None,
        })
        .collect();
    let kinds: Vec<Value> = crate::reports::Kind::ALL
        .iter()
        .map(|(name, kind)| json!({ "name": name, "title": kind.title() }))
        .collect();
    let units = p
        .api(&s.principal, Method::GET, "/api/v1/org-units", None)
        .await
        .or(json!({}));
    p.render(
        Some(&s),
        Some(&headers),
        StatusCode::OK,
        "reports.html",
        json!({ "title": "Reports", "kinds": kinds, "schedules": schedules, "units": items(&units) }),
    )
}

async fn admin(
    State(p): State<Portal>,
    Extension(s): Extension<Session>,
    headers: HeaderMap,
) -> Response {
    let who = &s.principal;
    let users = p
        .api(who, Method::GET, "/api/v1/users", None)
        .await
        .or(json!({}));
    let units = p
        .api(who, Method::GET, "/api/v1/org-units", None)
        .await
        .or(json!({}));
    let domains = p
        .api(who, Method::GET, "/api/v1/domains", None)
        .await
        .or(json!({}));
    let config = p.state.config();
    // Names, types and where they point: never credentials.
    let connectors: Vec<Value> = config
        .connectors
        .iter()
        .map(|c| json!({ "name": c.name(), "type": c.kind() }))
        .collect();
    let integrations: Vec<Value> = config
        .notifiers
        .iter()
        .map(|(name, c)| json!({ "name": name, "type": c.kind(), "host": c.endpoint().and_then(host_of) }))
        .collect();
    p.render(
        Some(&s),
        Some(&headers),
        StatusCode::OK,
        "admin.html",
        json!({
            "title": "Administration",
            "users": items(&users),
            "units": items(&units),
            "domains": items(&domains),
            "connectors": connectors,
            "integrations": integrations,
            "roles": ["primary_admin", "department_admin", "auditor", "subscriber"],
        }),
    )
}

async fn admin_action(
    State(p): State<Portal>,
    Extension(s): Extension<Session>,
    Extension(form): Extension<Form>,
    Path(what): Path<String>,
) -> Response {
    let units: Vec<String> = form
        .text("units")
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect();
    let optional = |k: &str| {
        let v = form.text(k);
        (!v.is_empty()).then_some(v)
    };
    let (uri, body, done) = match what.as_str() {
        "users" => {
            let mut body =
                json!({ "name": form.text("name"), "role": form.text("role"), "units": units });
            if let Some(pw) = form.get("password").filter(|p| !p.is_empty()) {
                body["password"] = json!(pw);
            }
            (
                "/api/v1/users",
                body,
                format!("User {} created.", form.text("name")),
            )
        }
        "org-units" => (
            "/api/v1/org-units",
            json!({ "name": form.text("name"), "parent": optional("parent") }),
            format!("Org unit {} saved.", form.text("name")),
        ),
        "domains" => (
            "/api/v1/domains",
            json!({ "domain": form.text("domain"), "org_unit": optional("org_unit"), "mode": form.text("mode") }),
            format!("Domain rule for {} saved.", form.text("domain")),
        ),
        _ => return p.error_page(Some(&s), StatusCode::NOT_FOUND, "No such action."),
    };
    let answer = p.api(&s.principal, Method::POST, uri, Some(body)).await;
    let flash = if answer.ok() {
        Flash::Done(done)
    } else {
        Flash::Failed(answer.message())
    };
    redirect("/ui/admin", Some(flash))
}

/// `https://host:port` of a URL, without path or query (which may hold a
/// token, as Slack's webhook URLs do).
fn host_of(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    let host = u.host_str()?;
    Some(match u.port() {
        Some(port) => format!("{}://{host}:{port}", u.scheme()),
        None => format!("{}://{host}", u.scheme()),
    })
}
