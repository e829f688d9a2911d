//! A local fake of DigiCert CertCentral's Services API v2, for the DigiCert
//! connector's tests (CertCentral cannot run here).
//!
//! It follows DigiCert's public CertCentral API documentation
//! (dev.digicert.com, "Services API") for the endpoints and fields the
//! connector uses, and implements only those:
//!
//! - authentication by the `X-DC-DEVKEY` header; a wrong key is HTTP 401
//!   with DigiCert's error shape `{"errors": [{"code", "message"}]}`;
//! - `POST /order/certificate/{product_name_id}` with `certificate`
//!   (`common_name`, `dns_names`, `csr`, `signature_hash`),
//!   `organization.id` and `order_validity` (`years` or `days`); answers
//!   201 `{"id", "requests": [{"id", "status"}]}`. Names outside the
//!   allowed domain, or another organization, are refused with 400;
//! - `GET /order/certificate/{order_id}` (order info; the id may also be
//!   the certificate's serial number, as documented) with `id`, `status`,
//!   `certificate` (`id`, `common_name`, `dns_names`, `serial_number`),
//!   `organization` (`id`, `name`), `user` (`email`…) and `requests`;
//!   an order is `pending` for a configurable number of looks, or
//!   `needs_approval` until the test approves it, then `issued`;
//! - `GET /order/certificate?offset=&limit=&sort=id` (list orders) with
//!   `orders` and `page` (`total`, `limit`, `offset`);
//! - `GET /certificate/{certificate_id}/download/format/pem_all`: the leaf,
//!   the intermediate and the root, PEM;
//! - `PUT /certificate/{certificate_id}/revoke` with `revocation_reason`,
//!   `skip_approval` and `comments`: 204 when approval is skipped, else 201
//!   with the revocation request; revocations are recorded for the tests;
//! - `GET /organization/{id}` (organization info);
//! - a rate limit on demand: HTTP 429 with `Retry-After` and DigiCert's
//!   error shape.
//!
//! Not from the documentation, and so only this fake's choice: the error
//! codes' exact wording (`invalid_api_key`, `rate_limit_exceeded`,
//! `invalid_dns_name`, `already_revoked`), and issuing a real certificate
//! at once from a local OpenSSL test CA ([`super::TestCa`]) while the order
//! still reads as pending. It counts the orders placed so tests can assert
//! that a retry never orders twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hyper::body::Bytes;
use hyper::{HeaderMap, Method, StatusCode, Uri};

type Response = hyper::Response<Body>;
use openssl::x509::X509;
use serde_json::{Value, json};

use super::{Body, TestCa, serial_upper, serve};

/// The organization's name the fake reports.
pub const ORGANIZATION_NAME: &str = "Certkeeper Test Org";
/// The e-mail of the user every order is placed by.
pub const USER_EMAIL: &str = "pki-admin@example.test";

struct Order {
    id: u64,
    certificate_id: u64,
    common_name: String,
    dns_names: Vec<String>,
    leaf: X509,
    looks: u32,
    pending_looks: u32,
    needs_approval: bool,
    revoked: bool,
}

impl Order {
    fn status(&self) -> &'static str {
        if self.revoked {
            "revoked"
        } else if self.needs_approval {
            "needs_approval"
        } else if self.looks <= self.pending_looks {
            "pending"
        } else {
            "issued"
        }
    }
}

struct State {
    api_key: String,
    organization_id: u64,
    allowed_suffix: String,
    ca: TestCa,
    orders: Vec<Order>,
    pending_looks: u32,
    needs_approval: bool,
    rate_limited: u32,
    revocations: HashMap<String, String>,
}

/// A running fake; stops with the test's runtime.
pub struct DigicertFake {
    /// The base URL to configure (`http://127.0.0.1:PORT/services/v2`).
    pub base_url: String,
    state: Arc<Mutex<State>>,
}

impl DigicertFake {
    /// A fake accepting `api_key` for `organization_id`, issuing for names
    /// ending in `allowed_suffix` (e.g. `.digicert.test`).
    pub async fn start(api_key: &str, organization_id: u64, allowed_suffix: &str) -> Self {
        let state = Arc::new(Mutex::new(State {
            api_key: api_key.to_owned(),
            organization_id,
            allowed_suffix: allowed_suffix.to_owned(),
            ca: TestCa::new("Fake DigiCert"),
            orders: Vec::new(),
            pending_looks: 0,
            needs_approval: false,
            rate_limited: 0,
            revocations: HashMap::new(),
        }));
        let shared = state.clone();
        let base = serve(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                handle(&shared, &method, &uri, &headers, &body)
            },
        )
        .await;
        Self {
            base_url: format!("{base}/services/v2"),
            state,
        }
    }

    /// How many orders were placed.
    pub fn orders_placed(&self) -> usize {
        self.state.lock().unwrap().orders.len()
    }

    /// New orders read as `pending` for the first `looks` order-info reads.
    pub fn set_pending_looks(&self, looks: u32) {
        self.state.lock().unwrap().pending_looks = looks;
    }

    /// New orders need an administrator's approval.
    pub fn set_needs_approval(&self, on: bool) {
        self.state.lock().unwrap().needs_approval = on;
    }

    /// Approves every order waiting for approval.
    pub fn approve_all(&self) {
        for order in &mut self.state.lock().unwrap().orders {
            order.needs_approval = false;
        }
    }

    /// The next `count` requests are refused with 429.
    pub fn rate_limit_next(&self, count: u32) {
        self.state.lock().unwrap().rate_limited = count;
    }

    /// The revocation reason recorded for the certificate with `serial`
    /// (uppercase hex), if it was revoked.
    pub fn revocation(&self, serial: &str) -> Option<String> {
        self.state.lock().unwrap().revocations.get(serial).cloned()
    }
}

fn json_response(status: StatusCode, body: Value) -> Response {
    hyper::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    json_response(
        status,
        json!({"errors": [{"code": code, "message": message}]}),
    )
}

fn order_json(state: &State, order: &Order) -> Value {
    let status = order.status();
    let mut certificate = json!({
        "id": order.certificate_id,
        "common_name": order.common_name,
        "dns_names": order.dns_names,
        "signature_hash": "sha256",
    });
    if status == "issued" || status == "revoked" {
        certificate["serial_number"] = json!(serial_upper(&order.leaf));
    }
    json!({
        "id": order.id,
        "certificate": certificate,
        "status": status,
        "organization": {"id": state.organization_id, "name": ORGANIZATION_NAME},
        "user": {"id": 7, "first_name": "Pat", "last_name": "Admin", "email": USER_EMAIL},
        "requests": [{"id": order.id + 1000, "status": if status == "needs_approval" { "pending" } else { "approved" }}],
        "product": {"name_id": "ssl_basic"},
    })
}

fn handle(
    state: &Mutex<State>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let mut state = state.lock().unwrap();
    if headers.get("X-DC-DEVKEY").and_then(|v| v.to_str().ok()) != Some(state.api_key.as_str()) {
        return error(
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
            "The API key provided is invalid or has been revoked.",
        );
    }
    if state.rate_limited > 0 {
        state.rate_limited -= 1;
        let mut response = error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_exceeded",
            "Too many requests. Please try again later.",
        );
        response
            .headers_mut()
            .insert("retry-after", "7".parse().unwrap());
        return response;
    }
    let path = uri.path().trim_start_matches("/services/v2/");
    let parts: Vec<&str> = path.split('/').collect();
    let query: HashMap<String, String> = uri.query().map(url_pairs).unwrap_or_default();
    match (method.as_str(), parts.as_slice()) {
        ("GET", ["organization", id]) => {
            if id.parse::<u64>().ok() == Some(state.organization_id) {
                json_response(
                    StatusCode::OK,
                    json!({"id": state.organization_id, "name": ORGANIZATION_NAME, "status": "active"}),
                )
            } else {
                error(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    "Organization not found.",
                )
            }
        }
        ("POST", ["order", "certificate", _product]) => place(&mut state, body),
        ("GET", ["order", "certificate"]) => {
            let offset: usize = query
                .get("offset")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let limit: usize = query
                .get("limit")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1000);
            let orders: Vec<Value> = state
                .orders
                .iter()
                .skip(offset)
                .take(limit)
                .map(|o| {
                    json!({
                        "id": o.id,
                        "certificate": {"id": o.certificate_id, "common_name": o.common_name, "dns_names": o.dns_names},
                        "status": o.status(),
                        "organization": {"id": state.organization_id, "name": ORGANIZATION_NAME},
                    })
                })
                .collect();
            json_response(
                StatusCode::OK,
                json!({"orders": orders, "page": {"total": state.orders.len(), "limit": limit, "offset": offset}}),
            )
        }
        ("GET", ["order", "certificate", id]) => {
            let id = id.to_string();
            let Some(at) = state.orders.iter().position(|o| {
                o.id.to_string() == id
                    || (matches!(o.status(), "issued" | "revoked") && serial_upper(&o.leaf) == id)
            }) else {
                return error(StatusCode::NOT_FOUND, "not_found", "Order not found.");
            };
            state.orders[at].looks += 1;
            let state = &*state;
            json_response(StatusCode::OK, order_json(state, &state.orders[at]))
        }
        ("GET", ["certificate", id, "download", "format", "pem_all"]) => {
            let Some(order) = state
                .orders
                .iter()
                .find(|o| o.certificate_id.to_string() == *id)
            else {
                return error(StatusCode::NOT_FOUND, "not_found", "Certificate not found.");
            };
            if !matches!(order.status(), "issued" | "revoked") {
                return error(
                    StatusCode::BAD_REQUEST,
                    "cert_unavailable_for_download",
                    "The certificate is not yet available for download.",
                );
            }
            hyper::Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "application/x-pem-file")
                .body(Body::from(state.ca.pem_all(&order.leaf)))
                .unwrap()
        }
        ("PUT", ["certificate", id, "revoke"]) => {
            let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let id = id.to_string();
            let Some(at) = state
                .orders
                .iter()
                .position(|o| o.certificate_id.to_string() == id || serial_upper(&o.leaf) == id)
            else {
                return error(StatusCode::NOT_FOUND, "not_found", "Certificate not found.");
            };
            if state.orders[at].revoked {
                return error(
                    StatusCode::BAD_REQUEST,
                    "already_revoked",
                    "The certificate has already been revoked.",
                );
            }
            let reason = request["revocation_reason"]
                .as_str()
                .unwrap_or("unspecified")
                .to_owned();
            if request["skip_approval"].as_bool() == Some(true) {
                state.orders[at].revoked = true;
                let serial = serial_upper(&state.orders[at].leaf);
                state.revocations.insert(serial, reason);
                hyper::Response::builder()
                    .status(StatusCode::NO_CONTENT)
                    .body(Body::default())
                    .unwrap()
            } else {
                json_response(
                    StatusCode::CREATED,
                    json!({"id": 1, "type": "revoke", "status": "pending", "comments": request["comments"]}),
                )
            }
        }
        _ => error(StatusCode::NOT_FOUND, "not_found", "No such endpoint."),
    }
}

fn place(state: &mut State, body: &[u8]) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "The request body is not JSON.",
        );
    };
    if request["organization"]["id"].as_u64() != Some(state.organization_id) {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_organization",
            "The organization is not valid for this account.",
        );
    }
    let certificate = &request["certificate"];
    let Some(common_name) = certificate["common_name"].as_str() else {
        return error(
            StatusCode::BAD_REQUEST,
            "missing_param",
            "certificate.common_name is required.",
        );
    };
    let mut names = vec![common_name.to_owned()];
    for name in certificate["dns_names"].as_array().into_iter().flatten() {
        if let Some(name) = name.as_str() {
            names.push(name.to_owned());
        }
    }
    for name in &names {
        let ip = name.parse::<std::net::IpAddr>().is_ok();
        if !ip && !name.ends_with(&state.allowed_suffix) {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_dns_name",
                &format!("{name} is not a domain this organization may order for."),
            );
        }
    }
    let days = request["order_validity"]["days"]
        .as_u64()
        .map_or(365, |d| d as u32);
    let Some(leaf) = certificate["csr"]
        .as_str()
        .and_then(|csr| state.ca.sign(csr, &names, days))
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_csr",
            "The CSR is invalid.",
        );
    };
    let id = 100_000 + state.orders.len() as u64 + 1;
    let order = Order {
        id,
        certificate_id: id + 500_000,
        common_name: common_name.to_owned(),
        dns_names: names[1..].to_vec(),
        leaf,
        looks: 0,
        pending_looks: state.pending_looks,
        needs_approval: state.needs_approval,
        revoked: false,
    };
    let status = if order.needs_approval {
        "pending"
    } else {
        "approved"
    };
    state.orders.push(order);
    json_response(
        StatusCode::CREATED,
        json!({"id": id, "requests": [{"id": id + 1000, "status": status}]}),
    )
}

/// A query string's pairs (no percent-decoding needed for these tests).
pub(super) fn url_pairs(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}
