//! Tests of the DigiCert connector against a local fake of CertCentral's
//! Services API (tests/vendor_fakes/digicert.rs, written from DigiCert's
//! public API documentation): the conformance suite, orders that stay
//! pending (polled, kept, continued after a restart, never placed twice),
//! rate limits, revocation as the CA records it, incremental listing with
//! the owner fields, and the failures an operator meets.

#![allow(clippy::unwrap_used)]

mod vendor_fakes;

use std::sync::Arc;
use std::time::Duration;

use certkeeper_connectors::conformance::{self, Fixture, key_and_csr};
use certkeeper_connectors::digicert::{DigicertConnector, DigicertSettings, Secret};
use certkeeper_connectors::{
    Connector, ErrorClass, Identifier, IssueRequest, IssuedRecord, MemoryState, RevocationReason,
    RevokeRequest, StateStore,
};
use openssl::x509::X509;
use vendor_fakes::digicert::{DigicertFake, ORGANIZATION_NAME, USER_EMAIL};

const API_KEY: &str = "dc-test-key-0123456789";
const ORG: u64 = 123_456;

fn dns(name: &str) -> Identifier {
    Identifier::Dns(name.into())
}

fn settings(base_url: &str, key: &str) -> DigicertSettings {
    let mut settings = DigicertSettings::new("digicert", Secret::new(key), "ssl_basic", ORG);
    settings.base_url = base_url.into();
    settings.poll_interval = Duration::from_millis(20);
    settings.max_wait = Duration::from_secs(5);
    settings.request_timeout = Duration::from_secs(5);
    settings.skip_approval = true;
    settings
}

fn connector(settings: DigicertSettings, state: Arc<dyn StateStore>) -> DigicertConnector {
    DigicertConnector::new(settings, state).unwrap()
}

async fn fake() -> DigicertFake {
    DigicertFake::start(API_KEY, ORG, ".digicert.test").await
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
    connector: &DigicertConnector,
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
    let working = connector(settings(&ca.base_url, API_KEY), state.clone());
    let down = connector(
        settings(
            &format!(
                "http://127.0.0.1:{}/services/v2",
                vendor_fakes::closed_port()
            ),
            API_KEY,
        ),
        state,
    );
    conformance::run(&Fixture {
        connector: &working,
        identifiers: vec![dns("www.digicert.test"), dns("api.digicert.test")],
        refused: vec![dns("www.example.com")],
        unreachable: Some(&down),
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_pending_order_is_polled_until_it_is_issued() {
    let ca = fake().await;
    ca.set_pending_looks(3);
    let dc = connector(
        settings(&ca.base_url, API_KEY),
        Arc::new(MemoryState::default()),
    );
    let request = keyed(&[dns("poll.digicert.test")], "op-poll");
    let issued = dc.issue(&request).await.unwrap();
    assert_eq!(ca.orders_placed(), 1);
    let chain = X509::stack_from_pem(issued.chain_pem.as_bytes()).unwrap();
    assert_eq!(chain.len(), 3, "leaf, intermediate and root");
    assert!(issued.ca_reference.is_some());
}

#[tokio::test]
async fn an_order_pending_past_max_wait_is_kept_and_continued_after_a_restart() {
    let ca = fake().await;
    ca.set_needs_approval(true);
    let state: Arc<dyn StateStore> = Arc::new(MemoryState::default());
    let mut short = settings(&ca.base_url, API_KEY);
    short.max_wait = Duration::from_millis(200);
    let dc = connector(short.clone(), state.clone());
    let request = keyed(&[dns("slow.digicert.test")], "op-slow");

    let err = dc.issue(&request).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Transient, "{err}");
    assert!(
        err.message.contains("still needs_approval"),
        "{}",
        err.message
    );
    assert!(err.message.contains("approve"), "{}", err.message);
    assert!(err.message.contains("kept"), "{}", err.message);
    // A second attempt polls the same order again.
    dc.issue(&request).await.unwrap_err();
    assert_eq!(ca.orders_placed(), 1);

    // The daemon restarts: a new connector on the same store continues it.
    drop(dc);
    ca.approve_all();
    let restarted = connector(short, state);
    let issued = restarted.issue(&request).await.unwrap();
    assert_eq!(ca.orders_placed(), 1, "never a second order");

    // Until recorded, the same key returns the same certificate …
    let again = restarted.issue(&request).await.unwrap();
    assert_eq!(leaf(&again.chain_pem), leaf(&issued.chain_pem));
    assert_eq!(ca.orders_placed(), 1);
    // … and once recorded, the key orders afresh.
    restarted.recorded("op-slow").await;
    ca.set_needs_approval(false);
    restarted.issue(&request).await.unwrap();
    assert_eq!(ca.orders_placed(), 2);
}

#[tokio::test]
async fn a_rate_limit_is_retry_after_and_keeps_the_order() {
    let ca = fake().await;
    let dc = connector(
        settings(&ca.base_url, API_KEY),
        Arc::new(MemoryState::default()),
    );
    ca.rate_limit_next(1);
    let err = dc.health().await.unwrap_err();
    assert_eq!(
        err.class,
        ErrorClass::RetryAfter(Duration::from_secs(7)),
        "{err}"
    );
    assert!(
        err.message.contains("rate_limit_exceeded"),
        "{}",
        err.message
    );
    dc.health().await.unwrap();

    // Limited while polling: the order placed stays kept for the retry.
    ca.set_pending_looks(1);
    let request = keyed(&[dns("busy.digicert.test")], "op-busy");
    let slow = {
        let mut s = settings(&ca.base_url, API_KEY);
        s.max_wait = Duration::from_millis(1);
        s
    };
    let state: Arc<dyn StateStore> = Arc::new(MemoryState::default());
    let limited = connector(slow, state.clone());
    limited.issue(&request).await.unwrap_err();
    ca.rate_limit_next(1);
    let err = limited.issue(&request).await.unwrap_err();
    assert!(matches!(err.class, ErrorClass::RetryAfter(_)), "{err}");
    let retried = connector(settings(&ca.base_url, API_KEY), state);
    retried.issue(&request).await.unwrap();
    assert_eq!(ca.orders_placed(), 1);
}

#[tokio::test]
async fn a_revocation_is_recorded_at_the_ca_with_its_reason() {
    let ca = fake().await;
    let dc = connector(
        settings(&ca.base_url, API_KEY),
        Arc::new(MemoryState::default()),
    );
    let issued = dc
        .issue(&keyed(&[dns("gone.digicert.test")], "op-gone"))
        .await
        .unwrap();
    let cert = leaf(&issued.chain_pem);
    dc.revoke(&RevokeRequest::new(
        cert.to_der().unwrap(),
        RevocationReason::KeyCompromise,
    ))
    .await
    .unwrap();
    assert_eq!(
        ca.revocation(&vendor_fakes::serial_upper(&cert)).as_deref(),
        Some("key_compromise")
    );
    let again = dc
        .revoke(&RevokeRequest::new(
            cert.to_der().unwrap(),
            RevocationReason::KeyCompromise,
        ))
        .await
        .unwrap_err();
    assert!(again.already_revoked, "{again}");
}

#[tokio::test]
async fn listing_is_incremental_and_carries_the_owner() {
    let ca = fake().await;
    let mut s = settings(&ca.base_url, API_KEY);
    s.list_page_size = 1;
    s.max_wait = Duration::from_millis(100);
    let dc = connector(s, Arc::new(MemoryState::default()));
    let a = dc
        .issue(&keyed(&[dns("a.digicert.test")], "op-a"))
        .await
        .unwrap();
    let b = dc
        .issue(&keyed(&[dns("b.digicert.test")], "op-b"))
        .await
        .unwrap();
    // One order still waits for approval when the first listing runs.
    ca.set_needs_approval(true);
    dc.issue(&keyed(&[dns("c.digicert.test")], "op-c"))
        .await
        .unwrap_err();
    ca.set_needs_approval(false);

    let (records, cursor) = list_all(&dc, None).await;
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
        assert_eq!(record.requester.as_deref(), Some(USER_EMAIL));
        assert_eq!(record.organization.as_deref(), Some(ORGANIZATION_NAME));
        assert!(!record.revoked);
    }
    assert_eq!(
        X509::from_der(&records[0].certificate_der).unwrap(),
        leaf(&a.chain_pem)
    );

    // The pending order is approved and another placed: the next run lists
    // exactly those two.
    ca.approve_all();
    let d = dc
        .issue(&keyed(&[dns("d.digicert.test")], "op-d"))
        .await
        .unwrap();
    let (records, cursor) = list_all(&dc, Some(cursor)).await;
    let mut refs: Vec<_> = records
        .iter()
        .map(|r| r.ca_reference.clone().unwrap())
        .collect();
    refs.sort();
    assert_eq!(refs.len(), 2, "{refs:?}");
    assert!(refs.contains(&d.ca_reference.unwrap()));
    assert!(!refs.contains(&a.ca_reference.unwrap()));

    let (records, _) = list_all(&dc, Some(cursor)).await;
    assert!(records.is_empty());
}

#[tokio::test]
async fn a_wrong_api_key_is_a_permanent_error_that_does_not_show_it() {
    let ca = fake().await;
    let dc = connector(
        settings(&ca.base_url, "wrong-key-abcdef"),
        Arc::new(MemoryState::default()),
    );
    let err = dc
        .issue(&keyed(&[dns("x.digicert.test")], "op-x"))
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent, "{err}");
    assert!(err.message.contains("401"), "{}", err.message);
    assert!(err.message.contains("invalid_api_key"), "{}", err.message);
    assert!(
        err.message
            .contains("check the connector's DigiCert API key"),
        "{}",
        err.message
    );
    assert!(!err.message.contains("wrong-key-abcdef"), "{}", err.message);
    let health = dc.health().await.unwrap_err();
    assert_eq!(health.class, ErrorClass::Permanent);
    assert_eq!(ca.orders_placed(), 0);
}

#[tokio::test]
async fn an_unreachable_ca_is_a_transient_error() {
    let dc = connector(
        settings(
            &format!(
                "http://127.0.0.1:{}/services/v2",
                vendor_fakes::closed_port()
            ),
            API_KEY,
        ),
        Arc::new(MemoryState::default()),
    );
    let err = dc
        .issue(&keyed(&[dns("x.digicert.test")], "op-x"))
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Transient, "{err}");
    assert!(dc.health().await.unwrap_err().is_retryable());
}

#[tokio::test]
async fn a_ca_that_never_answers_is_a_transient_error_after_the_timeout() {
    let port = vendor_fakes::silent().await;
    let mut s = settings(&format!("http://127.0.0.1:{port}/services/v2"), API_KEY);
    s.request_timeout = Duration::from_millis(500);
    let dc = connector(s, Arc::new(MemoryState::default()));
    let started = std::time::Instant::now();
    let err = dc
        .issue(&keyed(&[dns("x.digicert.test")], "op-x"))
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Transient, "{err}");
    assert!(
        err.message.contains("no complete answer"),
        "{}",
        err.message
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn garbage_and_oversized_answers_are_clear_errors() {
    let request = keyed(&[dns("x.digicert.test")], "op-x");
    let garbage =
        vendor_fakes::answering(vendor_fakes::http_answer(201, "text/plain", b"oops{")).await;
    let dc = connector(
        settings(&format!("http://127.0.0.1:{garbage}/services/v2"), API_KEY),
        Arc::new(MemoryState::default()),
    );
    let err = dc.issue(&request).await.unwrap_err();
    assert!(err.message.contains("expected JSON"), "{}", err.message);
    assert!(err.message.contains("oops"), "{}", err.message);

    let huge = vendor_fakes::answering_chunked(10 << 20).await;
    let dc = connector(
        settings(&format!("http://127.0.0.1:{huge}/services/v2"), API_KEY),
        Arc::new(MemoryState::default()),
    );
    let err = dc.issue(&request).await.unwrap_err();
    assert!(
        err.message.contains("more than 1048576 bytes"),
        "{}",
        err.message
    );

    // An error answer of 10 MB is cut off, not read whole.
    let mut body = br#"{"errors":[{"code":"x","message":""#.to_vec();
    body.extend(vec![b'y'; 10 << 20]);
    let big_error =
        vendor_fakes::answering(vendor_fakes::http_answer(400, "application/json", &body)).await;
    let dc = connector(
        settings(
            &format!("http://127.0.0.1:{big_error}/services/v2"),
            API_KEY,
        ),
        Arc::new(MemoryState::default()),
    );
    let err = dc.issue(&request).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent);
    assert!(err.message.len() < 2000, "{} chars", err.message.len());
}
