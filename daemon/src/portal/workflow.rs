//! Workflow pages: enrollment requests (new, approve, reject, assign) and
//! the alert ledger (acknowledge).

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::pages::items;
use super::{Flash, Form, Portal, Session, redirect};

/// Requests per page.
const REQUEST_ROWS: usize = 50;
/// Alerts per page.
const ALERT_ROWS: usize = 100;

/// The query of a ledger page (`state`, `cursor`, `limit`) from the page's
/// own query, and the links to the next and the newest pages.
struct LedgerQuery {
    state: String,
    api: String,
    newest: Option<String>,
}

impl LedgerQuery {
    fn new(
        query: &std::collections::HashMap<String, String>,
        states: &[&str],
        api: &str,
        page: &str,
        limit: usize,
    ) -> Self {
        let state = query
            .get("state")
            .map(String::as_str)
            .filter(|s| states.contains(s))
            .unwrap_or_default()
            .to_owned();
        let cursor = query.get("cursor").filter(|c| !c.is_empty());
        let mut q = url::form_urlencoded::Serializer::new(format!("limit={limit}"));
        if !state.is_empty() {
            q.append_pair("state", &state);
        }
        if let Some(c) = cursor {
            q.append_pair("cursor", c);
        }
        Self {
            api: format!("{api}?{}", q.finish()),
            newest: cursor.map(|_| Self::link(page, &state, None)),
            state,
        }
    }

    /// The page of the ledger, or nothing and the API's reason (a stale
    /// or mangled cursor in a bookmark, say).
    async fn fetch(
        &self,
        p: &Portal,
        who: &certkeeper_model::admin::Principal,
    ) -> (Value, Option<String>) {
        let answer = p.api(who, Method::GET, &self.api, None).await;
        let error = (!answer.ok()).then(|| answer.message());
        (answer.or(json!({})), error)
    }

    /// The page's own address with `state` and `cursor`.
    fn link(page: &str, state: &str, cursor: Option<&str>) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        if !state.is_empty() {
            q.append_pair("state", state);
        }
        if let Some(c) = cursor {
            q.append_pair("cursor", c);
        }
        match q.finish() {
            q if q.is_empty() => page.to_owned(),
            q => format!("{page}?{q}"),
        }
    }
}

pub(super) async fn requests(
    State(p): State<Portal>,
    Extension(s): Extension<Session>,
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    let who = &s.principal;
    let ledger = LedgerQuery::new(
        &query,
        &["pending", "approved", "rejected"],
        "/api/v1/requests",
        "/ui/requests",
        REQUEST_ROWS,
    );
    let (list, error) = ledger.fetch(&p, who).await;
    let mut rows = Vec::new();
    for mut r in items(&list) {
        // The certificate an approved request became: one lookup per row
        // shown, not a read of every managed certificate.
        if let Some(name) = r["managed"].as_str() {
            let name: String = url::form_urlencoded::byte_serialize(name.as_bytes()).collect();
            let managed = p.read(who, &format!("/api/v1/managed?name={name}")).await;
            r["fingerprint"] = items(&managed)
                .first()
                .map(|m| m["fingerprint"].clone())
                .unwrap_or(Value::Null);
        }
        rows.push(r);
    }
    let next = list["next_cursor"]
        .as_str()
        .map(|c| LedgerQuery::link("/ui/requests", &ledger.state, Some(c)));
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
            "error": error,
            "state": ledger.state,
            "next": next,
            "newest": ledger.newest,
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

pub(super) async fn alerts(
    State(p): State<Portal>,
    Extension(s): Extension<Session>,
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    let ledger = LedgerQuery::new(
        &query,
        &["open", "acknowledged", "resolved"],
        "/api/v1/alerts",
        "/ui/alerts",
        ALERT_ROWS,
    );
    let (list, error) = ledger.fetch(&p, &s.principal).await;
    let rows: Vec<Value> = items(&list)
        .into_iter()
        .filter(|a| a["folded"] != json!(true))
        .collect();
    let next = list["next_cursor"]
        .as_str()
        .map(|c| LedgerQuery::link("/ui/alerts", &ledger.state, Some(c)));
    p.render(
        Some(&s),
        Some(&headers),
        StatusCode::OK,
        "alerts.html",
        json!({
            "title": "Alerts",
            "alerts": rows,
            "error": error,
            "state": ledger.state,
            "next": next,
            "newest": ledger.newest,
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
