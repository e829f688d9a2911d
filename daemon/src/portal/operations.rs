//! Operations pages: discovery (sources, jobs, findings), reports (every
//! kind, schedules) and administration (users, org units, domains, the
//! config's connectors and integrations).

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::pages::items;
use super::{Flash, Form, Portal, Session, redirect};

pub(super) async fn discovery(
    State(p): State<Portal>,
    Extension(s): Extension<Session>,
    headers: HeaderMap,
) -> Response {
    let who = &s.principal;
    let jobs = p.read(who, "/api/v1/jobs").await;
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
    let findings = p.read(who, "/api/v1/findings?limit=200").await;
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

pub(super) async fn run_job(
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

pub(super) async fn reports(
    State(p): State<Portal>,
    Extension(s): Extension<Session>,
    headers: HeaderMap,
) -> Response {
    let config = p.state.config();
    // The files each schedule wrote, for those who may download them.
    let written = p.read(&s.principal, "/api/v1/reports/files").await;
    let written = items(&written);
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
                "files": written
                    .iter()
                    .find(|w| w["job"] == json!(r.name))
                    .and_then(|w| w["files"].as_array())
                    .map(|f| f.iter().take(5).cloned().collect::<Vec<_>>()),
            })),
            _ => None,
        })
        .collect();
    let kinds: Vec<Value> = crate::reports::Kind::ALL
        .iter()
        .map(|(name, kind)| json!({ "name": name, "title": kind.title() }))
        .collect();
    // Only a primary admin lists accounts; for others the choice is absent.
    let users = p.read(&s.principal, "/api/v1/users").await;
    let administrators: Vec<Value> = items(&users)
        .into_iter()
        .filter(|u| u["role"] == "department_admin")
        .map(|u| u["name"].clone())
        .collect();
    let units = p.read(&s.principal, "/api/v1/org-units").await;
    p.render(
        Some(&s),
        Some(&headers),
        StatusCode::OK,
        "reports.html",
        json!({
            "title": "Reports",
            "kinds": kinds,
            "schedules": schedules,
            "units": items(&units),
            "administrators": administrators,
        }),
    )
}

pub(super) async fn admin(
    State(p): State<Portal>,
    Extension(s): Extension<Session>,
    headers: HeaderMap,
) -> Response {
    let who = &s.principal;
    let users = p.read(who, "/api/v1/users").await;
    let units = p.read(who, "/api/v1/org-units").await;
    let domains = p.read(who, "/api/v1/domains").await;
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

pub(super) async fn admin_action(
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
