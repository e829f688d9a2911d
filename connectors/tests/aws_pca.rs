//! Tests of the AWS Private CA connector.
//!
//! Against moto (`moto_server`, the AWS mock, in the test virtualenv that
//! `tests/run.sh` installs and names in `CERTKEEPER_TEST_VENV`): the shared
//! conformance suite, and an issuance resumed by another connector over the
//! same state store. Where moto is not AWS, the tests say so:
//!
//! - moto does not check SigV4 signatures at all; the signer is checked
//!   against AWS's published test vectors in `aws_pca/sigv4.rs` instead, and
//!   the fake below checks what the requests carry;
//! - moto issues for any name (so does AWS Private CA, which has no name
//!   policy of its own: who may issue what is IAM's business), so the suite
//!   gets no refused identifiers;
//! - moto accepts a second revocation of the same serial where AWS answers
//!   `RequestAlreadyProcessedException`; the suite's "revoking twice fails"
//!   passes through the connector's own record of what it revoked;
//! - moto has no CRL or audit report to check a revocation in, so the test
//!   reads moto's state (`/moto-api/data.json`) for it;
//! - moto signs at once and never answers `RequestInProgressException`, and
//!   never throttles: polling, throttling, server errors, timeouts and the
//!   answer size cap are tested against a small local fake of the JSON 1.1
//!   endpoint that follows the ACM PCA API reference for those answers.

// Helpers outside `#[test]` functions are test code too: a failed unwrap is
// a failed test (see clippy.toml).
#![allow(clippy::unwrap_used)]

#[path = "vendor_fakes/mod.rs"]
mod vendor_fakes;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use certkeeper_connectors::aws_pca::{AwsPcaConnector, AwsPcaSettings, Secret};
use certkeeper_connectors::conformance::{self, Fixture};
use certkeeper_connectors::{
    Connector, ErrorClass, Identifier, IssueRequest, MemoryState, StateStore,
};
use openssl::x509::X509;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vendor_fakes::moto::{Moto, SECRET_KEY};

fn dns(name: &str) -> Identifier {
    Identifier::Dns(name.into())
}

fn settings(endpoint: &str, ca_arn: &str) -> AwsPcaSettings {
    let mut settings = AwsPcaSettings::new("pca", ca_arn, "AKIDEXAMPLE", Secret::new(SECRET_KEY));
    settings.endpoint = Some(endpoint.to_owned());
    settings.request_timeout = Duration::from_secs(5);
    settings.issue_deadline = Duration::from_secs(5);
    settings.poll_interval = Duration::from_millis(100);
    settings
}

#[tokio::test]
async fn passes_the_conformance_suite_against_moto() {
    let moto = Moto::start();
    let arn = moto.create_active_ca().await;
    let ca = AwsPcaConnector::open(
        settings(&moto.endpoint, &arn),
        Arc::new(MemoryState::default()),
    )
    .unwrap();
    let closed = format!("http://127.0.0.1:{}/", vendor_fakes::free_port());
    let down =
        AwsPcaConnector::open(settings(&closed, &arn), Arc::new(MemoryState::default())).unwrap();
    let fixture = Fixture {
        connector: &ca,
        identifiers: vec![dns("api.svc.test"), dns("www.svc.test")],
        // Neither moto nor AWS Private CA refuses names (see the top).
        refused: vec![],
        unreachable: Some(&down),
    };
    conformance::run(&fixture).await.unwrap();

    // The suite revoked one certificate, once at AWS (the repeat was
    // answered from the connector's record): moto holds it with the reason
    // and the serial in the colon-separated form AWS documents.
    let state = moto.ca_state(&arn).await;
    let revoked = state["revoked_certificates"].as_object().unwrap();
    assert_eq!(revoked.len(), 1, "{revoked:?}");
    let (serial, entry) = revoked.iter().next().unwrap();
    assert_eq!(entry["revocation_reason"], "SUPERSEDED");
    assert!(
        serial
            .split(':')
            .all(|pair| pair.len() == 2 && pair.chars().all(|c| c.is_ascii_hexdigit())),
        "{serial}"
    );
}

#[tokio::test]
async fn an_issuance_under_a_key_is_resumed_by_another_daemon() {
    let moto = Moto::start();
    let arn = moto.create_active_ca().await;
    let shared: Arc<dyn StateStore> = Arc::new(MemoryState::default());
    let ids = vec![dns("resume.svc.test")];
    let (_, csr) = conformance::key_and_csr(&ids).unwrap();
    let mut request = IssueRequest::new(csr, ids.clone());
    request.idempotency_key = Some("renewal-42".into());
    request.validity = Some(Duration::from_secs(10 * 86_400));

    let first = AwsPcaConnector::open(settings(&moto.endpoint, &arn), shared.clone()).unwrap();
    let issued = first.issue(&request).await.unwrap();
    let reference = issued.ca_reference.clone().unwrap();
    assert!(
        reference.starts_with(&format!("{arn}/certificate/")),
        "{reference}"
    );

    // The daemon died before recording it; another one retries the same
    // renewal over the same store and gets the same certificate (a second
    // IssueCertificate would have another ARN and serial: moto honours no
    // IdempotencyToken).
    drop(first);
    let second = AwsPcaConnector::open(settings(&moto.endpoint, &arn), shared.clone()).unwrap();
    let again = second.issue(&request).await.unwrap();
    assert_eq!(again.ca_reference.as_deref(), Some(reference.as_str()));
    assert_eq!(again.chain_pem, issued.chain_pem);

    // Once recorded, the same key orders afresh.
    second.recorded("renewal-42").await;
    let fresh = second.issue(&request).await.unwrap();
    assert_ne!(fresh.ca_reference.as_deref(), Some(reference.as_str()));

    // The chain is leaf then the CA certificate.
    let chain = X509::stack_from_pem(fresh.chain_pem.as_bytes()).unwrap();
    assert_eq!(chain.len(), 2);
    let root_key = chain[1].public_key().unwrap();
    assert!(chain[0].verify(&root_key).unwrap());
}

#[tokio::test]
async fn health_and_errors_against_moto() {
    let moto = Moto::start();
    // A CA that exists but was never activated.
    let pending = moto
        .create_ca(
            "EC_prime256v1",
            "SHA256WITHECDSA",
            json!({"CommonName": "Pending"}),
        )
        .await;
    let pending = pending.as_str();
    let state: Arc<dyn StateStore> = Arc::new(MemoryState::default());
    let connector =
        AwsPcaConnector::open(settings(&moto.endpoint, pending), state.clone()).unwrap();
    let err = connector.health().await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Transient);
    assert!(err.message.contains("PENDING_CERTIFICATE"), "{err}");

    // A CA that does not exist: permanent, naming AWS's error code.
    let missing = format!("{}-0000", pending);
    let connector = AwsPcaConnector::open(settings(&moto.endpoint, &missing), state).unwrap();
    let err = connector.health().await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent);
    assert!(err.message.contains("ResourceNotFoundException"), "{err}");
    assert!(!err.to_string().contains(SECRET_KEY));
}

/// One canned answer of the fake endpoint.
#[derive(Clone)]
struct Canned {
    status: u16,
    body: String,
    /// Hold the connection this long before answering.
    delay: Duration,
}

fn canned(status: u16, body: Value) -> Canned {
    Canned {
        status,
        body: body.to_string(),
        delay: Duration::ZERO,
    }
}

/// Canned answers by operation, each a queue whose last answer repeats.
type Answers = Vec<(String, Vec<Canned>)>;

/// A local fake of the ACM PCA JSON 1.1 endpoint: answers each operation
/// from a queue of canned answers (the last one repeats) and records every
/// request's target and headers.
#[derive(Clone, Default)]
struct Fake {
    answers: Arc<Mutex<Answers>>,
    seen: Arc<Mutex<Vec<(String, String)>>>,
}

impl Fake {
    fn answer(&self, operation: &str, answers: Vec<Canned>) {
        self.answers
            .lock()
            .unwrap()
            .push((operation.to_owned(), answers));
    }

    fn next(&self, operation: &str) -> Canned {
        let mut all = self.answers.lock().unwrap();
        let (_, queue) = all
            .iter_mut()
            .find(|(op, _)| op == operation)
            .unwrap_or_else(|| panic!("no answer for {operation}"));
        if queue.len() > 1 {
            queue.remove(0)
        } else {
            queue[0].clone()
        }
    }

    fn seen(&self, operation: &str) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(op, _)| op == operation)
            .map(|(_, head)| head.clone())
            .collect()
    }

    async fn start(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}/", listener.local_addr().unwrap());
        let fake = self.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let fake = fake.clone();
                tokio::spawn(async move {
                    let mut raw = Vec::new();
                    let mut buf = [0u8; 4096];
                    let (head, body_len) = loop {
                        let n = stream.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        raw.extend_from_slice(&buf[..n]);
                        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&raw[..end]).to_lowercase();
                            let len = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            break (head, end + 4 + len);
                        }
                    };
                    while raw.len() < body_len {
                        let n = stream.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        raw.extend_from_slice(&buf[..n]);
                    }
                    let operation = head
                        .lines()
                        .find_map(|l| l.strip_prefix("x-amz-target: acmprivateca."))
                        .unwrap_or_default()
                        .to_owned();
                    // Lower-cased above: map back to the API's spelling.
                    let operation = [
                        "IssueCertificate",
                        "GetCertificate",
                        "GetCertificateAuthorityCertificate",
                        "DescribeCertificateAuthority",
                        "RevokeCertificate",
                    ]
                    .into_iter()
                    .find(|op| op.to_lowercase() == operation)
                    .unwrap_or("unknown")
                    .to_owned();
                    fake.seen.lock().unwrap().push((operation.clone(), head));
                    let answer = fake.next(&operation);
                    tokio::time::sleep(answer.delay).await;
                    let response = format!(
                        "HTTP/1.1 {} X\r\ncontent-type: application/x-amz-json-1.1\r\n\
                         content-length: {}\r\nconnection: close\r\n\r\n{}",
                        answer.status,
                        answer.body.len(),
                        answer.body
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                });
            }
        });
        endpoint
    }
}

const FAKE_CA: &str = "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/fake";

/// A certificate for `subject` and `key`, issued by `issuer` with `issuer_key`.
fn certificate<T: openssl::pkey::HasPublic>(
    subject: &openssl::x509::X509NameRef,
    key: &openssl::pkey::PKeyRef<T>,
    issuer: &openssl::x509::X509NameRef,
    issuer_key: &openssl::pkey::PKeyRef<openssl::pkey::Private>,
) -> String {
    use openssl::asn1::Asn1Time;
    let mut b = openssl::x509::X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(subject).unwrap();
    b.set_issuer_name(issuer).unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    b.sign(issuer_key, openssl::hash::MessageDigest::sha256())
        .unwrap();
    String::from_utf8(b.build().to_pem().unwrap()).unwrap()
}

/// A self-signed issuer and a leaf for `csr`'s key, PEM, as AWS would
/// answer GetCertificate.
fn leaf_and_issuer(csr_der: &[u8]) -> (String, String) {
    use certkeeper_connectors::csr::{KeyAlgorithm, generate_key};
    let issuer_key = generate_key(KeyAlgorithm::EcdsaP256).unwrap();
    let mut name = openssl::x509::X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "Fake PCA").unwrap();
    let name = name.build();
    let issuer = certificate(&name, &issuer_key, &name, &issuer_key);
    let csr = openssl::x509::X509Req::from_der(csr_der).unwrap();
    let leaf = certificate(
        csr.subject_name(),
        &csr.public_key().unwrap(),
        &name,
        &issuer_key,
    );
    (leaf, issuer)
}

fn fake_settings(endpoint: &str) -> AwsPcaSettings {
    let mut settings = settings(endpoint, FAKE_CA);
    settings.signing_algorithm = Some("SHA256WITHECDSA".into());
    settings.session_token = Some(Secret::new("session-token-value"));
    settings.issue_deadline = Duration::from_millis(600);
    settings.request_timeout = Duration::from_secs(1);
    settings
}

#[tokio::test]
async fn polls_while_in_progress_and_a_timed_out_wait_resumes_later() {
    let fake = Fake::default();
    let endpoint = fake.start().await;
    let in_progress = canned(
        400,
        json!({"__type": "RequestInProgressException", "message": "The request is already in progress"}),
    );
    let cert_arn = format!("{FAKE_CA}/certificate/0123");
    fake.answer(
        "IssueCertificate",
        vec![canned(200, json!({"CertificateArn": cert_arn}))],
    );
    fake.answer("GetCertificate", vec![in_progress.clone()]);
    let state: Arc<dyn StateStore> = Arc::new(MemoryState::default());
    let ids = vec![dns("slow.svc.test")];
    let (_, csr) = conformance::key_and_csr(&ids).unwrap();
    let mut request = IssueRequest::new(csr.clone(), ids);
    request.idempotency_key = Some("renewal-9".into());

    // AWS is still signing when the deadline passes: transient, and the
    // order is kept.
    let connector = AwsPcaConnector::open(fake_settings(&endpoint), state.clone()).unwrap();
    let err = connector.issue(&request).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Transient);
    assert!(err.message.contains("keeps waiting"), "{err}");
    assert!(fake.seen("GetCertificate").len() >= 2, "it polled");

    // What the requests carried: the JSON 1.1 headers, a SigV4
    // authorization for acm-pca in the region, the session token, and the
    // Csr as base64 of the PEM with the idempotency token.
    let head = &fake.seen("IssueCertificate")[0];
    assert!(
        head.contains("content-type: application/x-amz-json-1.1"),
        "{head}"
    );
    assert!(
        head.contains("x-amz-security-token: session-token-value"),
        "{head}"
    );
    assert!(
        head.contains(
            "authorization: aws4-hmac-sha256 credential=akidexample/"
        ) && head.contains("/us-east-1/acm-pca/aws4_request, signedheaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, signature="),
        "{head}"
    );
    assert!(!head.contains(&SECRET_KEY.to_lowercase()), "{head}");

    // Restarted, and AWS is done after one more "in progress": the saved
    // ARN is fetched, no second IssueCertificate.
    let (leaf, issuer) = leaf_and_issuer(&csr);
    *fake.answers.lock().unwrap() = vec![
        (
            "GetCertificate".into(),
            vec![
                in_progress,
                canned(
                    200,
                    json!({"Certificate": leaf, "CertificateChain": issuer}),
                ),
            ],
        ),
        (
            "IssueCertificate".into(),
            vec![canned(500, json!({"__type": "InternalFailure"}))],
        ),
    ];
    let connector = AwsPcaConnector::open(fake_settings(&endpoint), state).unwrap();
    let issued = connector.issue(&request).await.unwrap();
    assert_eq!(issued.ca_reference.as_deref(), Some(cert_arn.as_str()));
    assert_eq!(fake.seen("IssueCertificate").len(), 1);
    let chain = X509::stack_from_pem(issued.chain_pem.as_bytes()).unwrap();
    assert_eq!(chain.len(), 2);
}

#[tokio::test]
async fn throttling_server_errors_timeouts_and_huge_answers_are_classified() {
    let fake = Fake::default();
    let endpoint = fake.start().await;
    let connector =
        AwsPcaConnector::open(fake_settings(&endpoint), Arc::new(MemoryState::default())).unwrap();
    let describe = |answers: Vec<Canned>| {
        fake.answers.lock().unwrap().clear();
        fake.answer("DescribeCertificateAuthority", answers);
    };

    describe(vec![canned(
        400,
        json!({"__type": "com.amazonaws.acmpca#ThrottlingException", "message": "Rate exceeded"}),
    )]);
    let err = connector.health().await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert!(err.message.contains("ThrottlingException"), "{err}");

    describe(vec![canned(503, json!({"message": "busy"}))]);
    assert_eq!(
        connector.health().await.unwrap_err().class,
        ErrorClass::Transient
    );

    describe(vec![canned(
        400,
        json!({"__type": "InvalidStateException", "message": "The CA is disabled"}),
    )]);
    let err = connector.health().await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent);
    assert!(err.message.contains("The CA is disabled"), "{err}");

    describe(vec![Canned {
        delay: Duration::from_secs(3),
        ..canned(200, json!({"CertificateAuthority": {"Status": "ACTIVE"}}))
    }]);
    let err = connector.health().await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Transient);
    assert!(err.message.contains("timed out"), "{err}");

    describe(vec![canned(
        200,
        json!({"CertificateAuthority": {"Status": "ACTIVE", "Padding": "x".repeat(2 << 20)}}),
    )]);
    let err = connector.health().await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent);
    assert!(err.message.contains("more than 1048576 bytes"), "{err}");

    describe(vec![canned(
        200,
        json!({"CertificateAuthority": {"Status": "DISABLED"}}),
    )]);
    let err = connector.health().await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent);
    assert!(err.message.contains("DISABLED"), "{err}");

    describe(vec![canned(
        200,
        json!({"CertificateAuthority": {"Status": "ACTIVE"}}),
    )]);
    connector.health().await.unwrap();
}
