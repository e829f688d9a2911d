//! Workflow pages: enrollment requests (new, approve, reject, assign) and
//! the alert ledger (acknowledge).

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::pages::items;
use super::{Flash, Form, Portal, Session, redirect};

pub(super) async fn requests(
    State(p): State<Portal>,
    Extension(s): Extension<Session>,
    headers: HeaderMap,
) -> Response {
    let who = &s.principal;
    let list = p.read(who, "/api/v1/requests").await;
    let managed = p.read(who, "/api/v1/managed").await;
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
    let units = p.read(who, "/api/v1/org-units").await;
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

pub(super) async fn new_request(
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

pub(super) async fn decide(
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

/// Most ledger rows the alerts page lists (the API's page limit).
const ALERT_ROWS: usize = 1000;

pub(super) async fn alerts(
    State(p): State<Portal>,
    Extension(s): Extension<Session>,
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    let state = query
        .get("state")
        .map(String::as_str)
        .filter(|s| ["open", "acknowledged", "resolved"].contains(s))
        .unwrap_or_default();
    let uri = if state.is_empty() {
        format!("/api/v1/alerts?limit={ALERT_ROWS}")
    } else {
        format!("/api/v1/alerts?state={state}&limit={ALERT_ROWS}")
    };
    let list = p.read(&s.principal, &uri).await;
    let all = items(&list);
    let rows: Vec<Value> = all
        .iter()
        .filter(|a| a["folded"] != json!(true))
        .cloned()
        .collect();
    p.render(
        Some(&s),
        Some(&headers),
        StatusCode::OK,
        "alerts.html",
        json!({
            "title": "Alerts",
            "alerts": rows,
            "state": state,
            "truncated": all.len() >= ALERT_ROWS,
            "limit": ALERT_ROWS,
        }),
    )
}

pub(super) async fn acknowledge(
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
