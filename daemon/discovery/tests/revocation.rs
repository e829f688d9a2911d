//! Revocation checks against real parts on loopback: a CRL served by a tiny
//! HTTP server, an OCSP responder that is the `openssl ocsp` CLI, a peer
//! that never answers, a 10 MB CRL, a CRL signed by the wrong key.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use certkeeper_discovery::FindingCode;
use certkeeper_discovery::fetch::FetchError;
use certkeeper_discovery::findings::{Context, Policy, Trust};
use certkeeper_discovery::revocation::{Checker, RevocationError, RevocationOptions};
use certkeeper_model::inventory::ParsedCertificate;
use common::{Answer, Issued, OcspResponder, Server, Urls, issue};

/// Generous: a check that hangs fails the test here, not by a timed assert.
const TEST_BOUND: Duration = Duration::from_secs(120);

async fn bounded<T>(work: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(TEST_BOUND, work)
        .await
        .expect("the check did not finish")
}

fn ca() -> Issued {
    issue("Certkeeper Online Test CA", None, true, 1, &Urls::default())
}

fn leaf(ca: &Issued, name: &str, serial: u32, urls: Urls) -> Issued {
    issue(name, Some(ca), false, serial, &urls)
}

fn crl_at(url: String) -> Urls {
    Urls {
        crl: Some(url),
        ..Urls::default()
    }
}

fn chain(leaf: &Issued, ca: &Issued) -> Vec<ParsedCertificate> {
    vec![leaf.parsed.clone(), ca.parsed.clone()]
}

#[tokio::test]
async fn crl_revoked_and_not_revoked_fetched_once() {
    let ca = ca();
    let server = Server::start().await;
    let revoked = leaf(
        &ca,
        "revoked.example.test",
        100,
        crl_at(server.url("/ca.crl")),
    );
    let good = leaf(&ca, "good.example.test", 101, crl_at(server.url("/ca.crl")));
    let revoked_pem = leaf(
        &ca,
        "pem.example.test",
        102,
        crl_at(server.url("/ca-pem.crl")),
    );
    let list = common::crl(&ca, &ca.key, &[&revoked, &revoked_pem]);
    server.route("/ca.crl", Answer::Body(list.to_der().unwrap()));
    server.route("/ca-pem.crl", Answer::Body(list.to_pem().unwrap()));

    let checker = Checker::new(RevocationOptions::default());
    let finding = bounded(checker.check(&chain(&revoked, &ca), None))
        .await
        .unwrap()
        .expect("the revoked leaf is revoked");
    assert_eq!(finding.code, FindingCode::Revoked);
    let detail = finding.detail.unwrap();
    assert!(
        detail.starts_with("revoked on ")
            && detail.contains(&format!("according to the CRL {}", server.url("/ca.crl")))
            && detail.contains("install a new certificate"),
        "{detail}"
    );
    assert_eq!(
        bounded(checker.check(&chain(&good, &ca), None))
            .await
            .unwrap(),
        None
    );
    // A PEM CRL, and the issuer given rather than found in the chain.
    let finding =
        bounded(checker.check(std::slice::from_ref(&revoked_pem.parsed), Some(&ca.parsed)))
            .await
            .unwrap();
    assert_eq!(finding.map(|f| f.code), Some(FindingCode::Revoked));

    // More checks of both leaves: still one download (cached until the
    // CRL's nextUpdate, a week away).
    for _ in 0..2 {
        assert!(
            bounded(checker.check(&chain(&revoked, &ca), None))
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            bounded(checker.check(&chain(&good, &ca), None))
                .await
                .unwrap()
                .is_none()
        );
    }
    assert_eq!(server.hits("/ca.crl"), 1);
    assert_eq!(server.hits("/ca-pem.crl"), 1);
}

#[tokio::test]
async fn ocsp_revoked_and_good_from_openssl_responder_and_cached() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca();
    let server = Server::start().await;
    let urls = Urls {
        ocsp: Some(server.url("/ocsp")),
        ..Urls::default()
    };
    let revoked = leaf(&ca, "revoked.example.test", 200, urls.clone());
    let good = leaf(&ca, "good.example.test", 201, urls);
    let responder = OcspResponder::new(dir.path(), &ca, &[&good], &[(&revoked, "keyCompromise")]);
    server.route("/ocsp", Answer::Ocsp(Arc::new(responder)));

    let checker = Checker::new(RevocationOptions::default());
    let finding = bounded(checker.check(&chain(&revoked, &ca), None))
        .await
        .unwrap()
        .expect("the responder says revoked");
    assert_eq!(finding.code, FindingCode::Revoked);
    let detail = finding.detail.unwrap();
    assert!(
        detail.contains("(keyCompromise)")
            && detail.contains(&format!(
                "according to the OCSP responder {}",
                server.url("/ocsp")
            )),
        "{detail}"
    );
    assert_eq!(
        bounded(checker.check(&chain(&good, &ca), None))
            .await
            .unwrap(),
        None
    );
    assert_eq!(server.hits("/ocsp"), 2);
    // Cached by (issuer, serial) until the answer's nextUpdate (a day).
    for _ in 0..2 {
        assert!(
            bounded(checker.check(&chain(&revoked, &ca), None))
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            bounded(checker.check(&chain(&good, &ca), None))
                .await
                .unwrap()
                .is_none()
        );
    }
    assert_eq!(server.hits("/ocsp"), 2);

    // Through the scan's entry point, with the policy's checker.
    let policy = Policy {
        trust: Trust::only(std::slice::from_ref(&ca.parsed)).unwrap(),
        revocation: Some(Arc::new(Checker::new(RevocationOptions::default()))),
        ..Policy::default()
    };
    let context = Context {
        now: common::now(),
        name: Some("revoked.example.test"),
        tls_version: Some("TLSv1.3"),
        network: true,
        presented: None,
        fetched: &[],
    };
    let findings = bounded(certkeeper_discovery::scan::check_online(
        &chain(&revoked, &ca),
        &context,
        &policy,
    ))
    .await;
    assert_eq!(
        findings.iter().map(|f| f.code).collect::<Vec<_>>(),
        vec![FindingCode::Revoked]
    );
    // Off by default.
    let off = Policy {
        revocation: None,
        ..policy
    };
    let findings = bounded(certkeeper_discovery::scan::check_online(
        &chain(&revoked, &ca),
        &context,
        &off,
    ))
    .await;
    assert_eq!(findings, vec![]);
    assert_eq!(server.hits("/ocsp"), 3);
}

#[tokio::test]
async fn stalling_responder_is_bounded_and_gives_no_finding() {
    let ca = ca();
    let port = common::stalling_peer().await;
    let cert = leaf(
        &ca,
        "stall.example.test",
        300,
        Urls {
            ocsp: Some(format!("http://127.0.0.1:{port}/ocsp")),
            crl: Some(format!("http://127.0.0.1:{port}/ca.crl")),
            ..Urls::default()
        },
    );
    let checker = Checker::new(RevocationOptions {
        request_timeout: Duration::from_secs(1),
        overall_timeout: Duration::from_secs(60),
        ..RevocationOptions::default()
    });
    let error = bounded(checker.check(&chain(&cert, &ca), None))
        .await
        .unwrap_err();
    // Both sources timed out, each named.
    let text = error.to_string();
    assert!(
        matches!(&error, RevocationError::AllFailed(all) if all.len() == 2),
        "{text}"
    );
    assert!(
        text.contains("/ocsp: no complete answer within 1 s"),
        "{text}"
    );
    assert!(
        text.contains("/ca.crl: no complete answer within 1 s"),
        "{text}"
    );
    assert!(error.is_transient());

    // The overall bound holds when the requests alone would take longer.
    let checker = Checker::new(RevocationOptions {
        request_timeout: Duration::from_secs(600),
        overall_timeout: Duration::from_secs(1),
        ..RevocationOptions::default()
    });
    let error = bounded(checker.check(&chain(&cert, &ca), None))
        .await
        .unwrap_err();
    assert!(
        matches!(error, RevocationError::Timeout { secs: 1 }),
        "{error}"
    );
}

#[tokio::test]
async fn ten_megabyte_crl_is_refused_by_the_size_cap() {
    let ca = ca();
    let server = Server::start().await;
    let cert = leaf(&ca, "big.example.test", 400, crl_at(server.url("/big.crl")));
    server.route("/big.crl", Answer::Body(vec![0x30; 10_000_000]));
    let checker = Checker::new(RevocationOptions::default());
    let error = bounded(checker.check(&chain(&cert, &ca), None))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, RevocationError::Fetch(FetchError::TooLarge { max, .. }) if *max == 4 * 1024 * 1024),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("larger than the 4194304 byte cap"),
        "{error}"
    );
    assert_eq!(server.hits("/big.crl"), 1);
}

#[tokio::test]
async fn unverifiable_crl_refused_address_and_missing_issuer_are_errors_not_findings() {
    let ca = ca();
    let server = Server::start().await;
    let cert = leaf(
        &ca,
        "forged.example.test",
        500,
        crl_at(server.url("/ca.crl")),
    );
    // The CA's name, someone else's key, listing the leaf.
    let impostor = issue("Certkeeper Online Test CA", None, true, 1, &Urls::default());
    let forged = common::crl(&ca, &impostor.key, &[&cert]);
    server.route("/ca.crl", Answer::Body(forged.to_der().unwrap()));
    let checker = Checker::new(RevocationOptions::default());
    let error = bounded(checker.check(&chain(&cert, &ca), None))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, RevocationError::Unverifiable { reason, .. } if reason.contains("signature does not verify")),
        "{error}"
    );

    // The address filter sees every address: loopback refused, nothing sent.
    let hits = server.hits("/ca.crl");
    let checker = Checker::new(RevocationOptions {
        address_filter: Arc::new(|ip: std::net::IpAddr| !ip.is_loopback()),
        ..RevocationOptions::default()
    });
    let error = bounded(checker.check(&chain(&cert, &ca), None))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, RevocationError::Fetch(FetchError::Refused { .. })),
        "{error}"
    );
    assert_eq!(server.hits("/ca.crl"), hits);

    // No issuer at hand: nothing can be verified.
    let error = bounded(checker.check(std::slice::from_ref(&cert.parsed), None))
        .await
        .unwrap_err();
    assert!(matches!(error, RevocationError::NoIssuer { .. }), "{error}");
}
