//! The conformance harness every notifier passes.
//!
//! [`Receiver`] is a local HTTP server (hyper, on `127.0.0.1:0`) standing in
//! for a vendor's API: it records each request, answers with the vendor's
//! documented success status, and can be told to refuse the next requests
//! with a status (and `Retry-After`) or to never answer. Vendor services
//! cannot run here, so each channel's test supplies a shape check written
//! from that vendor's public API reference, field by field (method, path,
//! headers, auth, required JSON fields); [`run`] drives a notifier through
//! the behaviour all channels share.
//!
//! Channels that read what the vendor answers (ticketing: search, then
//! create or comment) start the receiver with a [`Responder`] instead of a
//! fixed answer: [`jira::FakeJira`] and [`servicenow::FakeServiceNow`] are
//! small in-memory fakes of those vendors' APIs, written from their public
//! references field by field.

// Test scaffolding: a failed unwrap is a failed test (see clippy.toml), and
// helper functions are outside the reach of `allow-unwrap-in-tests`.
#![allow(dead_code, clippy::unwrap_used)]

pub mod jira;
pub mod servicenow;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt::Debug;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use certkeeper_integrations::conformance::{sample_event, sample_events};
use certkeeper_integrations::{ErrorClass, Event, Notifier, NotifyError};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// `POST`, `GET`, ...
    pub method: String,
    /// The path, percent-encoded as sent.
    pub path: String,
    /// The query string, if any.
    pub query: Option<String>,
    /// Headers, names lowercase.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Vec<u8>,
}

impl RecordedRequest {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON; fails the test if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The body as `application/x-www-form-urlencoded` pairs.
    pub fn form(&self) -> Vec<(String, String)> {
        let body = String::from_utf8_lossy(&self.body);
        let url = reqwest::Url::parse(&format!("http://form.invalid/?{body}")).unwrap();
        url.query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    /// Asserts method, path and a JSON content type.
    pub fn assert_json_post(&self, path: &str) {
        assert_eq!(self.method, "POST");
        assert_eq!(self.path, path);
        let ct = self.header("content-type").unwrap_or_default();
        assert!(ct.starts_with("application/json"), "content-type {ct}");
    }
}

/// Answers a request the receiver lets through: status and JSON (or other)
/// body. Refused and hung requests never reach it, so a fake's state only
/// changes for requests the notifier saw succeed.
pub type Responder = Arc<dyn Fn(&RecordedRequest) -> (u16, String) + Send + Sync>;

struct Refusal {
    status: u16,
    retry_after: Option<String>,
    /// Refuse only a request with this method and path prefix.
    only: Option<(String, String)>,
}

impl Refusal {
    fn applies_to(&self, request: &RecordedRequest) -> bool {
        self.only.as_ref().is_none_or(|(method, prefix)| {
            request.method == *method && request.path.starts_with(prefix.as_str())
        })
    }
}

struct Shared {
    requests: Vec<RecordedRequest>,
    refusals: VecDeque<Refusal>,
    hang: bool,
    responder: Responder,
}

/// A local stand-in for a vendor's HTTP API.
pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    task: JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    /// Starts a receiver answering `success_status` with `success_body`, as
    /// the vendor does for an accepted request.
    pub async fn start(success_status: u16, success_body: &str) -> Self {
        let body = success_body.to_owned();
        Self::start_with(Arc::new(move |_: &RecordedRequest| {
            (success_status, body.clone())
        }))
        .await
    }

    /// Starts a receiver whose answers come from `responder` (a vendor fake).
    pub async fn start_with(responder: Responder) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Mutex::new(Shared {
            requests: Vec::new(),
            refusals: VecDeque::new(),
            hang: false,
            responder,
        }));
        let state = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = state.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(state.clone(), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, shared, task }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Refuses the next request with `status` (and `Retry-After`).
    pub fn refuse_next(&self, status: u16, retry_after: Option<&str>) {
        self.shared.lock().unwrap().refusals.push_back(Refusal {
            status,
            retry_after: retry_after.map(str::to_owned),
            only: None,
        });
    }

    /// Refuses the next request with `method` whose path starts with
    /// `path_prefix`, letting others through: a failure half-way through a
    /// multi-request delivery.
    pub fn refuse_next_matching(
        &self,
        method: &str,
        path_prefix: &str,
        status: u16,
        retry_after: Option<&str>,
    ) {
        self.shared.lock().unwrap().refusals.push_back(Refusal {
            status,
            retry_after: retry_after.map(str::to_owned),
            only: Some((method.to_owned(), path_prefix.to_owned())),
        });
    }

    /// Never answers while `on`.
    pub fn hang(&self, on: bool) {
        self.shared.lock().unwrap().hang = on;
    }

    /// The requests received since the last call.
    pub fn take(&self) -> Vec<RecordedRequest> {
        std::mem::take(&mut self.shared.lock().unwrap().requests)
    }
}

async fn handle(
    shared: Arc<Mutex<Shared>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let recorded = RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
    };
    let (hang, refusal, responder) = {
        let mut s = shared.lock().unwrap();
        let refusal = s
            .refusals
            .iter()
            .position(|r| r.applies_to(&recorded))
            .and_then(|i| s.refusals.remove(i));
        s.requests.push(recorded.clone());
        (s.hang, refusal, s.responder.clone())
    };
    if hang {
        // The notifier has given up by then; its request must not count.
        tokio::time::sleep(Duration::from_secs(60)).await;
        return Ok(Response::builder()
            .status(StatusCode::GATEWAY_TIMEOUT)
            .body(Full::new(Bytes::new()))
            .unwrap());
    }
    let response = match refusal {
        Some(refusal) => {
            let mut builder = Response::builder().status(refusal.status);
            if let Some(secs) = refusal.retry_after {
                builder = builder.header("retry-after", secs);
            }
            // Echo the request target and auth, as careless APIs do, so the
            // harness sees whether the notifier scrubs its secrets.
            let echo = format!(
                "{{\"error\":\"refused {} (auth {})\"}}",
                parts.uri,
                parts
                    .headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-")
            );
            builder.body(Full::new(Bytes::from(echo)))
        }
        None => {
            let (status, body) = responder(&recorded);
            let mut builder = Response::builder().status(StatusCode::from_u16(status).unwrap());
            if serde_json::from_str::<serde_json::Value>(&body).is_ok() {
                builder = builder.header("content-type", "application/json");
            }
            builder.body(Full::new(Bytes::from(body)))
        }
    };
    Ok(response.unwrap())
}

/// What a channel's test tells the harness.
pub struct Channel<'a> {
    /// Strings that must never appear in errors or `Debug` output.
    pub secrets: Vec<String>,
    /// The notifier's configured timeout.
    pub timeout: Duration,
    /// Checks the requests one event caused against the vendor's shape.
    pub check: &'a dyn Fn(&Event, &[RecordedRequest]),
}

/// Runs the shared conformance checks.
pub async fn run<N: Notifier + Debug>(notifier: &N, receiver: &Receiver, channel: Channel<'_>) {
    let leaks = |text: &str, what: &str| {
        for secret in &channel.secrets {
            assert!(
                !text.contains(secret.as_str()),
                "{what} leaks a secret: {text}"
            );
        }
    };
    leaks(&format!("{notifier:?}"), "Debug output");

    // A sample of each kind is delivered in the vendor's shape.
    receiver.take();
    for event in sample_events() {
        notifier
            .send(&event)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", event.id));
        (channel.check)(&event, &receiver.take());
    }

    // Refusals map to delivery classes. The first request `certificate_expired`
    // makes is refused (the only one on most channels; the ticket search on
    // ticketing channels, which then stop).
    let probe = sample_event("certificate_expired").unwrap();
    let cases: [(u16, Option<&str>, ErrorClass); 6] = [
        (500, None, ErrorClass::Transient),
        (502, None, ErrorClass::Transient),
        (
            429,
            Some("7"),
            ErrorClass::RetryAfter(Duration::from_secs(7)),
        ),
        (
            503,
            Some("3"),
            ErrorClass::RetryAfter(Duration::from_secs(3)),
        ),
        (400, None, ErrorClass::Permanent),
        (401, None, ErrorClass::Permanent),
    ];
    for (status, retry_after, class) in cases {
        receiver.refuse_next(status, retry_after);
        let err = expect_err(notifier.send(&probe).await, status);
        assert_eq!(err.class, class, "status {status}: {err}");
        assert_eq!(err.notifier, notifier.name());
        leaks(&err.to_string(), "error message");
        leaks(&format!("{err:?}"), "error Debug");
        receiver.take();
    }

    // A receiver that never answers is a transient failure, within the timeout.
    receiver.hang(true);
    let started = Instant::now();
    let err = expect_err(notifier.send(&probe).await, 0);
    let waited = started.elapsed();
    receiver.hang(false);
    assert_eq!(err.class, ErrorClass::Transient, "{err}");
    assert!(
        waited < channel.timeout + Duration::from_secs(2),
        "gave up after {waited:?}"
    );
    leaks(&err.to_string(), "timeout error");
    receiver.take();
}

fn expect_err(result: Result<(), NotifyError>, status: u16) -> NotifyError {
    match result {
        Ok(()) => panic!("status {status} was taken for success"),
        Err(e) => e,
    }
}
