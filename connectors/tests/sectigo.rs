//! Tests of the Sectigo connector against a local fake of Sectigo
//! Certificate Manager's SSL REST API (tests/vendor_fakes/sectigo.rs,
//! written from Sectigo's public documentation): the conformance suite,
//! enrollments that stay "being processed" (polled, kept, continued after a
//! restart, never enrolled twice), rate limits, revocation as SCM records
//! it, incremental listing with the owner fields, and the failures an
//! operator meets.

#![allow(clippy::unwrap_used)]

mod vendor_fakes;

use std::sync::Arc;
use std::time::Duration;

use certkeeper_connectors::conformance::{self, Fixture, key_and_csr};
use certkeeper_connectors::sectigo::{Secret, SectigoConnector, SectigoSettings};
use certkeeper_connectors::{
    Connector, ErrorClass, Identifier, IssueRequest, IssuedRecord, MemoryState, RevocationReason,
    RevokeRequest, StateStore,
};
use openssl::x509::X509;
use vendor_fakes::sectigo::{CERT_TYPE, SectigoFake};

const LOGIN: &str = "certkeeper-api";
const PASSWORD: &str = "scm-password-0123456789";
const CUSTOMER: &str = "example-corp";
const ORG: u64 = 31_337;
const REQUESTER: &str = "owner@example.test";

fn dns(name: &str) -> Identifier {
    Identifier::Dns(name.into())
}

fn settings(base_url: &str, password: &str) -> SectigoSettings {
    let mut settings = SectigoSettings::new(
        "sectigo",
        CUSTOMER,
        LOGIN,
        Secret::new(password),
        ORG,
        CERT_TYPE,
    );
    settings.base_url = base_url.into();
    settings.external_requester = Some(REQUESTER.into());
    settings.poll_interval = Duration::from_millis(20);
    settings.max_wait = Duration::from_secs(5);
    settings.request_timeout = Duration::from_secs(5);
    settings
}

fn connector(settings: SectigoSettings, state: Arc<dyn StateStore>) -> SectigoConnector {
    SectigoConnector::new(settings, state).unwrap()
}

async fn fake() -> SectigoFake {
    SectigoFake::start(LOGIN, PASSWORD, CUSTOMER, ORG, ".sectigo.test").await
}

fn keyed(ids: &[Identifier], key: &str) -> IssueRequest {
    let (_, csr) = key_and_csr(ids).unwrap();
    let mut request = IssueRequest::new(csr, ids.to_vec());
    request.idempotency_key = Some(key.into());
    request
}

fn leaf(chain_pem: &str) -> X509 {
    X509::stack_from_pem(chain_pem.as_bytes()).unwrap()[0].clone()
}

async fn list_all(
    connector: &SectigoConnector,
    mut cursor: Option<String>,
) -> (Vec<IssuedRecord>, String) {
    let mut records = Vec::new();
    for _ in 0..1000 {
        let page = connector
            .list_issued(cursor.as_deref())
            .await
            .unwrap()
            .unwrap();
        records.extend(page.records);
        cursor = page.cursor;
        if !page.more {
            return (records, cursor.unwrap());
        }
    }
    panic!("the listing never ended");
}

#[tokio::test]
async fn passes_the_conformance_suite() {
    let ca = fake().await;
    let state: Arc<dyn StateStore> = Arc::new(MemoryState::default());
    let working = connector(settings(&ca.base_url, PASSWORD), state.clone());
    let down = connector(
        settings(
            &format!("http://127.0.0.1:{}", vendor_fakes::closed_port()),
            PASSWORD,
        ),
        state,
    );
    conformance::run(&Fixture {
        connector: &working,
        identifiers: vec![dns("www.sectigo.test"), dns("api.sectigo.test")],
        refused: vec![dns("www.example.com")],
        unreachable: Some(&down),
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn an_enrollment_being_processed_is_polled_until_collected() {
    let ca = fake().await;
    ca.set_pending_looks(3);
    let scm = connector(
        settings(&ca.base_url, PASSWORD),
        Arc::new(MemoryState::default()),
    );
    let issued = scm
        .issue(&keyed(&[dns("poll.sectigo.test")], "op-poll"))
        .await
        .unwrap();
    assert_eq!(ca.enrollments(), 1);
    let chain = X509::stack_from_pem(issued.chain_pem.as_bytes()).unwrap();
    assert_eq!(chain.len(), 3, "leaf, intermediate and root");
    assert_eq!(issued.ca_reference.as_deref(), Some("7001"));
}

#[tokio::test]
async fn an_enrollment_pending_past_max_wait_is_kept_and_continued_after_a_restart() {
    let ca = fake().await;
    ca.set_pending_looks(1000);
    let state: Arc<dyn StateStore> = Arc::new(MemoryState::default());
    let mut short = settings(&ca.base_url, PASSWORD);
    short.max_wait = Duration::from_millis(200);
    let scm = connector(short.clone(), state.clone());
    let request = keyed(&[dns("slow.sectigo.test")], "op-slow");

    let err = scm.issue(&request).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Transient, "{err}");
    assert!(err.message.contains("still pending"), "{}", err.message);
    assert!(err.message.contains("7001"), "{}", err.message);
    assert!(err.message.contains("kept"), "{}", err.message);
    scm.issue(&request).await.unwrap_err();
    assert_eq!(ca.enrollments(), 1);

    // The daemon restarts; meanwhile SCM issued it. A new connector on the
    // same store collects the kept enrollment.
    drop(scm);
    ca.set_pending_looks(0);
    ca.release_all();
    let restarted = connector(settings(&ca.base_url, PASSWORD), state);
    let issued = restarted.issue(&request).await.unwrap();
    assert_eq!(ca.enrollments(), 1, "never a second enrollment");
    let again = restarted.issue(&request).await.unwrap();
    assert_eq!(leaf(&again.chain_pem), leaf(&issued.chain_pem));
    restarted.recorded("op-slow").await;
    restarted.issue(&request).await.unwrap();
    assert_eq!(ca.enrollments(), 2);
}

#[tokio::test]
async fn a_rate_limit_is_retry_after() {
    let ca = fake().await;
    let scm = connector(
        settings(&ca.base_url, PASSWORD),
        Arc::new(MemoryState::default()),
    );
    ca.rate_limit_next(1);
    let err = scm.health().await.unwrap_err();
    assert_eq!(
        err.class,
        ErrorClass::RetryAfter(Duration::from_secs(5)),
        "{err}"
    );
    scm.health().await.unwrap();
}

#[tokio::test]
async fn a_revocation_is_recorded_at_the_ca_with_its_reason() {
    let ca = fake().await;
    let state: Arc<dyn StateStore> = Arc::new(MemoryState::default());
    let scm = connector(settings(&ca.base_url, PASSWORD), state);
    let issued = scm
        .issue(&keyed(&[dns("gone.sectigo.test")], "op-gone"))
        .await
        .unwrap();
    let cert = leaf(&issued.chain_pem);
    scm.revoke(&RevokeRequest::new(
        cert.to_der().unwrap(),
        RevocationReason::KeyCompromise,
    ))
    .await
    .unwrap();
    assert_eq!(ca.revocation(&vendor_fakes::serial_upper(&cert)), Some(1));
    let again = scm
        .revoke(&RevokeRequest::new(
            cert.to_der().unwrap(),
            RevocationReason::KeyCompromise,
        ))
        .await
        .unwrap_err();
    assert!(again.already_revoked, "{again}");

    // A connector that never issued it (another daemon, an imported
    // certificate) finds its sslId by serial number.
    let other = scm
        .issue(&keyed(&[dns("other.sectigo.test")], "op-other"))
        .await
        .unwrap();
    let other_cert = leaf(&other.chain_pem);
    let stranger = connector(
        settings(&ca.base_url, PASSWORD),
        Arc::new(MemoryState::default()),
    );
    stranger
        .revoke(&RevokeRequest::new(
            other_cert.to_der().unwrap(),
            RevocationReason::Superseded,
        ))
        .await
        .unwrap();
    assert_eq!(
        ca.revocation(&vendor_fakes::serial_upper(&other_cert)),
        Some(4)
    );
}

#[tokio::test]
async fn listing_is_incremental_and_carries_the_owner() {
    let ca = fake().await;
    let mut s = settings(&ca.base_url, PASSWORD);
    s.list_page_size = 1;
    s.max_wait = Duration::from_millis(100);
    let scm = connector(s, Arc::new(MemoryState::default()));
    let a = scm
        .issue(&keyed(&[dns("a.sectigo.test")], "op-a"))
        .await
        .unwrap();
    let b = scm
        .issue(&keyed(&[dns("b.sectigo.test")], "op-b"))
        .await
        .unwrap();
    ca.set_pending_looks(1000);
    scm.issue(&keyed(&[dns("c.sectigo.test")], "op-c"))
        .await
        .unwrap_err();
    ca.set_pending_looks(0);

    let (records, cursor) = list_all(&scm, None).await;
    let refs: Vec<_> = records
        .iter()
        .map(|r| r.ca_reference.clone().unwrap())
        .collect();
    assert_eq!(
        refs,
        vec![
            a.ca_reference.clone().unwrap(),
            b.ca_reference.clone().unwrap()
        ]
    );
    for record in &records {
        assert_eq!(record.requester.as_deref(), Some(REQUESTER));
        assert_eq!(
            record.organization.as_deref(),
            Some(ORG.to_string().as_str())
        );
    }
    assert_eq!(
        X509::from_der(&records[0].certificate_der).unwrap(),
        leaf(&a.chain_pem)
    );

    // SCM issues the pending one and another is enrolled: the next run
    // lists exactly those two.
    ca.release_all();
    let d = scm
        .issue(&keyed(&[dns("d.sectigo.test")], "op-d"))
        .await
        .unwrap();
    let (records, cursor) = list_all(&scm, Some(cursor)).await;
    let refs: Vec<_> = records
        .iter()
        .map(|r| r.ca_reference.clone().unwrap())
        .collect();
    assert_eq!(refs, vec!["7003".to_owned(), d.ca_reference.unwrap()]);

    let (records, _) = list_all(&scm, Some(cursor)).await;
    assert!(records.is_empty());
}

#[tokio::test]
async fn wrong_credentials_are_a_permanent_error_that_does_not_show_them() {
    let ca = fake().await;
    let scm = connector(
        settings(&ca.base_url, "wrong-password-xyz"),
        Arc::new(MemoryState::default()),
    );
    let err = scm
        .issue(&keyed(&[dns("x.sectigo.test")], "op-x"))
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent, "{err}");
    assert!(err.message.contains("401"), "{}", err.message);
    assert!(err.message.contains("Unknown user"), "{}", err.message);
    assert!(
        !err.message.contains("wrong-password-xyz"),
        "{}",
        err.message
    );
    assert_eq!(scm.health().await.unwrap_err().class, ErrorClass::Permanent);
    assert_eq!(ca.enrollments(), 0);
}

#[tokio::test]
async fn an_unreachable_ca_is_a_transient_error() {
    let scm = connector(
        settings(
            &format!("http://127.0.0.1:{}", vendor_fakes::closed_port()),
            PASSWORD,
        ),
        Arc::new(MemoryState::default()),
    );
    let err = scm
        .issue(&keyed(&[dns("x.sectigo.test")], "op-x"))
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Transient, "{err}");
    assert!(scm.health().await.unwrap_err().is_retryable());
}

#[tokio::test]
async fn garbage_and_oversized_answers_are_clear_errors() {
    let request = keyed(&[dns("x.sectigo.test")], "op-x");
    let garbage = vendor_fakes::answering(vendor_fakes::http_answer(
        200,
        "text/html",
        b"<h1>maintenance</h1>",
    ))
    .await;
    let scm = connector(
        settings(&format!("http://127.0.0.1:{garbage}"), PASSWORD),
        Arc::new(MemoryState::default()),
    );
    let err = scm.issue(&request).await.unwrap_err();
    assert!(err.message.contains("expected JSON"), "{}", err.message);
    assert!(err.message.contains("maintenance"), "{}", err.message);

    let huge = vendor_fakes::answering(vendor_fakes::http_answer(
        200,
        "application/json",
        &vec![b' '; 10 << 20],
    ))
    .await;
    let scm = connector(
        settings(&format!("http://127.0.0.1:{huge}"), PASSWORD),
        Arc::new(MemoryState::default()),
    );
    let err = scm.issue(&request).await.unwrap_err();
    assert!(
        err.message.contains("more than 1048576 bytes"),
        "{}",
        err.message
    );
}
