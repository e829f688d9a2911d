//! A minimal ACME server for what pebble 2.4 lacks (ARI, profiles) and for
//! a rate limit on demand.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use super::free_port;

/// What the ACME stub saw.
#[derive(Default, Debug)]
pub struct StubLog {
    /// Payloads of every newOrder request, as JSON.
    pub new_orders: Vec<serde_json::Value>,
    /// Certificate identifiers asked for at the renewalInfo endpoint.
    pub renewal_queries: Vec<String>,
    /// How many accounts were created.
    pub accounts: usize,
}

/// A minimal ACME server, plain HTTP on loopback, following RFC 8555 and
/// RFC 9773 field by field for what it serves: a directory with
/// `renewalInfo` and a `profiles` meta entry, nonces, account creation,
/// renewal information, and a newOrder that records its payload and answers
/// `rateLimited` with `Retry-After: 120`. It stands in for pebble 2.4, which
/// has neither ARI nor profiles; it checks no signature.
pub struct AcmeStub {
    /// The directory URL.
    pub directory_url: String,
    /// What it saw.
    pub log: Arc<Mutex<StubLog>>,
    task: tokio::task::JoinHandle<()>,
}

impl AcmeStub {
    /// Starts the stub on a free loopback port.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let log = Arc::new(Mutex::new(StubLog::default()));
        let seen = log.clone();
        let root = base.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let seen = seen.clone();
                let base = root.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let seen = seen.clone();
                        let base = base.clone();
                        async move { Ok::<_, Infallible>(stub_answer(&base, &seen, request).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            directory_url: format!("{base}/dir"),
            log,
            task,
        }
    }
}

impl Drop for AcmeStub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn reply(status: StatusCode, headers: &[(&str, String)], body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            hyper::header::HeaderName::from_bytes(name.as_bytes()),
            hyper::header::HeaderValue::from_str(value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

async fn stub_answer(
    base: &str,
    seen: &Mutex<StubLog>,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let nonce = ("Replay-Nonce", format!("nonce-{}", free_port()));
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let payload = || -> serde_json::Value {
        let jws: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let encoded = jws["payload"].as_str().unwrap_or_default();
        URL_SAFE_NO_PAD
            .decode(encoded)
            .ok()
            .and_then(|p| serde_json::from_slice(&p).ok())
            .unwrap_or_default()
    };
    match (method, path.as_str()) {
        (Method::GET, "/dir") => {
            let directory = serde_json::json!({
                "newNonce": format!("{base}/nonce"),
                "newAccount": format!("{base}/account"),
                "newOrder": format!("{base}/order"),
                "revokeCert": format!("{base}/revoke"),
                "keyChange": format!("{base}/key-change"),
                "renewalInfo": format!("{base}/renewal-info"),
                "meta": {"profiles": {"shortlived": "six-day certificates"}},
            });
            reply(StatusCode::OK, &[], directory.to_string())
        }
        (Method::HEAD | Method::GET, "/nonce") => reply(StatusCode::OK, &[nonce], String::new()),
        (Method::POST, "/account") => {
            let id = {
                let mut log = seen.lock().expect("stub log");
                log.accounts += 1;
                log.accounts
            };
            reply(
                StatusCode::CREATED,
                &[nonce, ("Location", format!("{base}/account/{id}"))],
                r#"{"status":"valid"}"#.into(),
            )
        }
        (Method::POST, "/order") => {
            seen.lock().expect("stub log").new_orders.push(payload());
            let problem = serde_json::json!({
                "type": "urn:ietf:params:acme:error:rateLimited",
                "detail": "too many new orders recently",
                "status": 429,
            });
            reply(
                StatusCode::TOO_MANY_REQUESTS,
                &[
                    nonce,
                    ("Retry-After", "120".into()),
                    ("Content-Type", "application/problem+json".into()),
                ],
                problem.to_string(),
            )
        }
        (Method::GET, p) if p.starts_with("/renewal-info/") => {
            let id = p.trim_start_matches("/renewal-info/").to_owned();
            seen.lock().expect("stub log").renewal_queries.push(id);
            let info = serde_json::json!({
                "suggestedWindow": {
                    "start": "2030-01-01T00:00:00Z",
                    "end": "2030-01-02T00:00:00Z",
                },
            });
            reply(
                StatusCode::OK,
                &[("Retry-After", "21600".into())],
                info.to_string(),
            )
        }
        _ => reply(StatusCode::NOT_FOUND, &[], String::new()),
    }
}
