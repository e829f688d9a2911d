//! A local fake of Sectigo Certificate Manager's SSL REST API (`/api/ssl/v1`),
//! for the Sectigo connector's tests (SCM cannot run here).
//!
//! It follows Sectigo's public SCM REST API documentation (docs.sectigo.com
//! and the SCM developer hub) for the endpoints and fields the connector
//! uses, and implements only those:
//!
//! - authentication by the `login`, `password` and `customerUri` headers;
//!   wrong ones are HTTP 401 with SCM's error shape
//!   `{"code": -16, "description": "Unknown user"}`;
//! - `POST /api/ssl/v1/enroll` with `orgId`, `csr`, `certType`, `term`,
//!   `subjAltNames` (comma-separated), `numberServers`, `serverType`,
//!   `comments` and `externalRequester`; answers `{"renewId", "sslId"}`.
//!   Another organization, an unknown type or term, or a name outside the
//!   allowed domain is refused with 400 and an SCM error;
//! - `GET /api/ssl/v1/{sslId}` (certificate details) with `sslId`,
//!   `commonName`, `status` (`Requested` for a configurable number of
//!   looks, then `Issued`; `Revoked`), `orgId`, `requester`,
//!   `externalRequester`, `serialNumber`, `term`;
//! - `GET /api/ssl/v1/collect/{sslId}/{format}` for `x509CO` (the leaf),
//!   `x509IO` (intermediate and root) and `x509` (all); while not issued,
//!   HTTP 400 `{"code": 0, "description": "Being processed by Sectigo"}`,
//!   the answer SCM gives (as clients written against it handle);
//! - `GET /api/ssl/v1?size=&position=` (and `serialNumber=`, uppercase hex)
//!   listing `sslId`, `commonName`, `subjectAlternativeNames`,
//!   `serialNumber`, oldest first;
//! - `POST /api/ssl/v1/revoke/{sslId}` with `reasonCode` and `reason`:
//!   204; revocations are recorded for the tests;
//! - `GET /api/ssl/v1/types`: the account's SSL certificate types with
//!   their `terms`;
//! - a rate limit on demand: HTTP 429 with `Retry-After`.
//!
//! Not from the documentation, and so only this fake's choice: which
//! negative codes it uses for refusals other than authentication and
//! "being processed", their wording, and issuing a real certificate at
//! once from a local OpenSSL test CA ([`super::TestCa`]) while the
//! enrollment still reads as `Requested`. It counts enrollments so tests
//! can assert that a retry never enrolls twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hyper::body::Bytes;
use hyper::{HeaderMap, Method, StatusCode, Uri};

type Response = hyper::Response<Body>;
use openssl::x509::X509;
use serde_json::{Value, json};

use super::{Body, TestCa, serial_upper, serve};

/// The certificate type (profile) id the fake offers.
pub const CERT_TYPE: u64 = 4242;
/// The term (days) the certificate type offers.
pub const TERM: u64 = 365;

struct Enrollment {
    ssl_id: u64,
    common_name: String,
    names: Vec<String>,
    leaf: X509,
    requester: Option<String>,
    looks: u32,
    pending_looks: u32,
    revoked: bool,
}

impl Enrollment {
    fn status(&self) -> &'static str {
        if self.revoked {
            "Revoked"
        } else if self.looks <= self.pending_looks {
            "Requested"
        } else {
            "Issued"
        }
    }
}

struct State {
    login: String,
    password: String,
    customer_uri: String,
    org_id: u64,
    allowed_suffix: String,
    ca: TestCa,
    enrollments: Vec<Enrollment>,
    pending_looks: u32,
    rate_limited: u32,
    revocations: HashMap<String, i64>,
}

/// A running fake; stops with the test's runtime.
pub struct SectigoFake {
    /// The SCM address to configure (`http://127.0.0.1:PORT`).
    pub base_url: String,
    state: Arc<Mutex<State>>,
}

impl SectigoFake {
    /// A fake for `login`/`password` of `customer_uri`, organization
    /// `org_id`, issuing for names ending in `allowed_suffix`.
    pub async fn start(
        login: &str,
        password: &str,
        customer_uri: &str,
        org_id: u64,
        allowed_suffix: &str,
    ) -> Self {
        let state = Arc::new(Mutex::new(State {
            login: login.to_owned(),
            password: password.to_owned(),
            customer_uri: customer_uri.to_owned(),
            org_id,
            allowed_suffix: allowed_suffix.to_owned(),
            ca: TestCa::new("Fake Sectigo"),
            enrollments: Vec::new(),
            pending_looks: 0,
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
            base_url: base,
            state,
        }
    }

    /// How many enrollments were made.
    pub fn enrollments(&self) -> usize {
        self.state.lock().unwrap().enrollments.len()
    }

    /// New enrollments read as `Requested` for the first `looks` detail reads.
    pub fn set_pending_looks(&self, looks: u32) {
        self.state.lock().unwrap().pending_looks = looks;
    }

    /// Every enrollment still `Requested` is issued now.
    pub fn release_all(&self) {
        for e in &mut self.state.lock().unwrap().enrollments {
            e.pending_looks = 0;
        }
    }

    /// The next `count` requests are refused with 429.
    pub fn rate_limit_next(&self, count: u32) {
        self.state.lock().unwrap().rate_limited = count;
    }

    /// The revocation reason code recorded for `serial` (uppercase hex).
    pub fn revocation(&self, serial: &str) -> Option<i64> {
        self.state.lock().unwrap().revocations.get(serial).copied()
    }
}

fn json_response(status: StatusCode, body: Value) -> Response {
    hyper::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn scm_error(status: StatusCode, code: i64, description: &str) -> Response {
    json_response(status, json!({"code": code, "description": description}))
}

fn pem(cert: &X509) -> String {
    String::from_utf8(cert.to_pem().unwrap()).unwrap()
}

fn handle(
    state: &Mutex<State>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let mut state = state.lock().unwrap();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if header("login") != Some(state.login.as_str())
        || header("password") != Some(state.password.as_str())
        || header("customerUri") != Some(state.customer_uri.as_str())
    {
        return scm_error(StatusCode::UNAUTHORIZED, -16, "Unknown user");
    }
    if state.rate_limited > 0 {
        state.rate_limited -= 1;
        let mut response = scm_error(StatusCode::TOO_MANY_REQUESTS, -1, "Too many requests");
        response
            .headers_mut()
            .insert("retry-after", "5".parse().unwrap());
        return response;
    }
    let Some(path) = uri.path().strip_prefix("/api/ssl/v1") else {
        return scm_error(StatusCode::NOT_FOUND, -1, "Unknown endpoint");
    };
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let query = uri
        .query()
        .map(super::digicert::url_pairs)
        .unwrap_or_default();
    match (method.as_str(), parts.as_slice()) {
        ("GET", ["types"]) => json_response(
            StatusCode::OK,
            json!([{"id": CERT_TYPE, "name": "Fake OV Multi-Domain", "terms": [TERM]}]),
        ),
        ("POST", ["enroll"]) => enroll(&mut state, body),
        ("GET", []) => {
            let size: usize = query.get("size").and_then(|v| v.parse().ok()).unwrap_or(10);
            let position: usize = query
                .get("position")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let serial = query.get("serialNumber");
            let items: Vec<Value> = state
                .enrollments
                .iter()
                .filter(|e| {
                    serial.is_none_or(|s| e.status() != "Requested" && &serial_upper(&e.leaf) == s)
                })
                .skip(position)
                .take(size)
                .map(|e| {
                    json!({
                        "sslId": e.ssl_id,
                        "commonName": e.common_name,
                        "subjectAlternativeNames": e.names,
                        "serialNumber": serial_upper(&e.leaf),
                    })
                })
                .collect();
            json_response(StatusCode::OK, Value::Array(items))
        }
        ("GET", [id]) => {
            let Some(at) = find(&state, id) else {
                return scm_error(StatusCode::NOT_FOUND, -5101, "Certificate not found.");
            };
            state.enrollments[at].looks += 1;
            let e = &state.enrollments[at];
            let mut details = json!({
                "sslId": e.ssl_id,
                "commonName": e.common_name,
                "subjectAlternativeNames": e.names,
                "status": e.status(),
                "orgId": state.org_id,
                "requester": e.requester,
                "term": TERM,
                "certType": {"id": CERT_TYPE, "name": "Fake OV Multi-Domain"},
            });
            if e.status() != "Requested" {
                details["serialNumber"] = json!(serial_upper(&e.leaf));
            }
            json_response(StatusCode::OK, details)
        }
        ("GET", ["collect", id, format]) => {
            let Some(at) = find(&state, id) else {
                return scm_error(StatusCode::NOT_FOUND, -5101, "Certificate not found.");
            };
            let e = &state.enrollments[at];
            match e.status() {
                "Requested" => {
                    return scm_error(StatusCode::BAD_REQUEST, 0, "Being processed by Sectigo");
                }
                "Revoked" => {
                    return scm_error(
                        StatusCode::BAD_REQUEST,
                        -110,
                        "Certificate has been revoked and cannot be downloaded.",
                    );
                }
                _ => {}
            }
            let text = match *format {
                "x509CO" => pem(&e.leaf),
                "x509IO" => format!("{}{}", pem(&state.ca.intermediate), pem(&state.ca.root)),
                "x509" => state.ca.pem_all(&e.leaf),
                other => {
                    return scm_error(
                        StatusCode::BAD_REQUEST,
                        -126,
                        &format!("Unknown SSL certificate file format requested: {other}"),
                    );
                }
            };
            hyper::Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "application/octet-stream")
                .body(Body::from(text))
                .unwrap()
        }
        ("POST", ["revoke", id]) => {
            let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let Some(at) = find(&state, id) else {
                return scm_error(StatusCode::NOT_FOUND, -5101, "Certificate not found.");
            };
            if state.enrollments[at].revoked {
                return scm_error(
                    StatusCode::BAD_REQUEST,
                    -159,
                    "Your certificate already revoked",
                );
            }
            if request["reason"].as_str().is_none_or(str::is_empty) {
                return scm_error(
                    StatusCode::BAD_REQUEST,
                    -7,
                    "reason is required but missing.",
                );
            }
            state.enrollments[at].revoked = true;
            let serial = serial_upper(&state.enrollments[at].leaf);
            let code = request["reasonCode"].as_i64().unwrap_or(0);
            state.revocations.insert(serial, code);
            hyper::Response::builder()
                .status(StatusCode::NO_CONTENT)
                .body(Body::default())
                .unwrap()
        }
        _ => scm_error(StatusCode::NOT_FOUND, -1, "Unknown endpoint"),
    }
}

fn find(state: &State, id: &str) -> Option<usize> {
    state
        .enrollments
        .iter()
        .position(|e| e.ssl_id.to_string() == id)
}

fn enroll(state: &mut State, body: &[u8]) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return scm_error(StatusCode::BAD_REQUEST, -1, "Malformed JSON");
    };
    if request["orgId"].as_u64() != Some(state.org_id) {
        return scm_error(StatusCode::BAD_REQUEST, -639, "Supplied orgid invalid..");
    }
    if request["certType"].as_u64() != Some(CERT_TYPE) {
        return scm_error(
            StatusCode::BAD_REQUEST,
            -39,
            "The certificate profile id is invalid!",
        );
    }
    if request["term"].as_u64() != Some(TERM) {
        return scm_error(
            StatusCode::BAD_REQUEST,
            -36,
            "The validity period (term) is invalid for this certificate profile.",
        );
    }
    let names: Vec<String> = request["subjAltNames"]
        .as_str()
        .unwrap_or_default()
        .split(',')
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .collect();
    for name in &names {
        if name.parse::<std::net::IpAddr>().is_err() && !name.ends_with(&state.allowed_suffix) {
            return scm_error(
                StatusCode::BAD_REQUEST,
                -727,
                &format!("The domain '{name}' does not exist."),
            );
        }
    }
    let Some(leaf) = request["csr"]
        .as_str()
        .and_then(|csr| state.ca.sign(csr, &names, TERM as u32))
    else {
        return scm_error(StatusCode::BAD_REQUEST, -138, "Invalid CSR.");
    };
    let ssl_id = 7000 + state.enrollments.len() as u64 + 1;
    state.enrollments.push(Enrollment {
        ssl_id,
        common_name: names[0].clone(),
        names: names.clone(),
        leaf,
        requester: request["externalRequester"].as_str().map(str::to_owned),
        looks: 0,
        pending_looks: state.pending_looks,
        revoked: false,
    });
    json_response(
        StatusCode::OK,
        json!({"renewId": format!("renew-{ssl_id}"), "sslId": ssl_id}),
    )
}
