//! Inventory pages: the certificate list (search, filters, pages, export)
//! and a certificate's page with its lifecycle actions.

use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use serde_json::json;

use super::pages::items;
use super::{Flash, Form, Portal, Session, redirect};
use certkeeper_model::admin::{Permission, allows};

use super::pages::STATUSES;

pub(super) async fn certificates(
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
            "latest" => query.append_pair("order", "desc"),
            "subject" | "issuer" => query.append_pair("sort", &sort),
            _ => &mut query,
        };
        let within = get("within");
        if ["7", "30", "60", "90"].contains(&within.as_str()) {
            query.append_pair("expiring_within", &format!("{within}d"));
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
    let units = p.read(who, "/api/v1/org-units").await;
    // The next and the first page keep the filters.
    let link = |cursor: Option<&str>| {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for key in ["q", "status", "org_unit", "issuer", "sort", "within"] {
            let v = get(key);
            if !v.is_empty() {
                q.append_pair(key, &v);
            }
        }
        if let Some(c) = cursor {
            q.append_pair("cursor", c);
        }
        format!("/ui/certificates?{}", q.finish())
    };
    let next = page["next_cursor"].as_str().map(|c| link(Some(c)));
    let first = (!get("cursor").is_empty()).then(|| link(None));
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
            "first": first,
            "export": format!("/api/v1/reports/inventory?{}", export.finish()),
            "filters": { "q": get("q"), "status": get("status"), "org_unit": get("org_unit"), "issuer": get("issuer"), "sort": sort, "within": get("within") },
            "statuses": STATUSES,
            "units": items(&units),
            "error": error,
        }),
    )
}

pub(super) async fn certificate(
    State(p): State<Portal>,
    Extension(s): Extension<Session>,
    headers: HeaderMap,
    Path(fingerprint): Path<String>,
) -> Response {
    let who = &s.principal;
    let fp = hex_only(&fingerprint);
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
        .read(who, &format!("/api/v1/managed?fingerprint={fp}"))
        .await;
    let managed = items(&managed).into_iter().next();
    let audit = if allows(who.role, Permission::ReadAudit) {
        let a = p
            .read(who, &format!("/api/v1/audit?object={fp}&limit=50"))
            .await;
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

pub(super) async fn certificate_action(
    State(p): State<Portal>,
    Extension(s): Extension<Session>,
    Extension(form): Extension<Form>,
    Path((fingerprint, action)): Path<(String, String)>,
) -> Response {
    let who = &s.principal;
    let fp = hex_only(&fingerprint);
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
        "revoke" | "replace" | "deactivate" | "reactivate" => {
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
            "deactivate" => "Certificate deactivated: it raises no more alerts.".to_owned(),
            "reactivate" => "Certificate reactivated.".to_owned(),
            _ => "Replacement started: the old certificate is revoked once the new one serves."
                .to_owned(),
        })
    } else {
        Flash::Failed(answer.message())
    };
    redirect(&back, Some(flash))
}

/// A fingerprint from a URL: its hexadecimal digits, lowercase (colons and
/// anything else dropped), so it is safe to put back into a path.
fn hex_only(fingerprint: &str) -> String {
    fingerprint
        .chars()
        .filter(char::is_ascii_hexdigit)
        .collect::<String>()
        .to_lowercase()
}
