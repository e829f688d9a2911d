//! AIA caIssuers fetching against a tiny loopback HTTP server: a leaf whose
//! intermediate the server does not send, but which its CA publishes, is
//! `incomplete_chain` with fetching on and `untrusted` with it off.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use certkeeper_discovery::aia::{AiaError, AiaOptions, Fetcher};
use certkeeper_discovery::fetch::FetchError;
use certkeeper_discovery::findings::{Context, Policy, Trust};
use certkeeper_discovery::scan::check_online;
use certkeeper_discovery::{Finding, FindingCode};
use certkeeper_model::inventory::ParsedCertificate;
use common::{Answer, Issued, Server, Urls, issue};

async fn online(chain: &[ParsedCertificate], policy: &Policy) -> Vec<Finding> {
    let context = Context {
        now: common::now(),
        name: Some("www.example.test"),
        tls_version: Some("TLSv1.3"),
        network: true,
        presented: None,
        fetched: &[],
    };
    tokio::time::timeout(
        Duration::from_secs(120),
        check_online(chain, &context, policy),
    )
    .await
    .expect("the check did not finish")
}

fn codes(findings: &[Finding]) -> Vec<FindingCode> {
    findings.iter().map(|f| f.code).collect()
}

/// A root, an intermediate under it, and a leaf whose caIssuers URL is
/// `url`.
fn hierarchy(url: String) -> (Issued, Issued, Issued) {
    let root = issue("Certkeeper AIA Test Root", None, true, 1, &Urls::default());
    let intermediate = issue(
        "Certkeeper AIA Test Issuing CA",
        Some(&root),
        true,
        2,
        &Urls::default(),
    );
    let leaf = issue(
        "www.example.test",
        Some(&intermediate),
        false,
        3,
        &Urls {
            ca_issuers: Some(url),
            ..Urls::default()
        },
    );
    (root, intermediate, leaf)
}

fn policy(root: &Issued, aia: Option<Arc<Fetcher>>) -> Policy {
    Policy {
        trust: Trust::only(std::slice::from_ref(&root.parsed)).unwrap(),
        aia,
        ..Policy::default()
    }
}

#[tokio::test]
async fn fetched_intermediate_makes_a_missing_one_incomplete_not_untrusted() {
    let server = Server::start().await;
    let (root, intermediate, leaf) = hierarchy(server.url("/issuing-ca.der"));
    server.route("/issuing-ca.der", Answer::Body(intermediate.der()));
    let alone = [leaf.parsed.clone()];

    let off = online(&alone, &policy(&root, None)).await;
    assert_eq!(codes(&off), vec![FindingCode::Untrusted]);
    assert!(
        off[0]
            .detail
            .as_deref()
            .unwrap()
            .contains("discovery.policy.trusted_roots"),
        "{off:?}"
    );
    assert_eq!(server.hits("/issuing-ca.der"), 0);

    let fetcher = Arc::new(Fetcher::new(AiaOptions::default()));
    let on = policy(&root, Some(fetcher.clone()));
    let findings = online(&alone, &on).await;
    assert_eq!(codes(&findings), vec![FindingCode::IncompleteChain]);
    let detail = findings[0].detail.as_deref().unwrap();
    assert!(detail.contains(&intermediate.parsed.subject), "{detail}");
    assert!(
        detail.contains("configure it to send it after the leaf"),
        "{detail}"
    );

    // Cached by URL: the second endpoint with this leaf fetches nothing.
    assert_eq!(online(&alone, &on).await, findings);
    assert_eq!(server.hits("/issuing-ca.der"), 1);

    // A complete chain never fetches.
    let sent = [leaf.parsed.clone(), intermediate.parsed.clone()];
    let other = policy(&root, Some(Arc::new(Fetcher::new(AiaOptions::default()))));
    assert_eq!(online(&sent, &other).await, vec![]);
    assert_eq!(server.hits("/issuing-ca.der"), 1);
}

#[tokio::test]
async fn pkcs7_bundles_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start().await;
    let (root, intermediate, leaf) = hierarchy(server.url("/issuing-ca.p7c"));
    std::fs::write(dir.path().join("ca.pem"), intermediate.pem()).unwrap();
    let made = Command::new("openssl")
        .args([
            "crl2pkcs7",
            "-nocrl",
            "-certfile",
            "ca.pem",
            "-outform",
            "DER",
            "-out",
            "ca.p7c",
        ])
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(made.success());
    server.route(
        "/issuing-ca.p7c",
        Answer::Body(std::fs::read(dir.path().join("ca.p7c")).unwrap()),
    );
    let fetcher = Fetcher::new(AiaOptions::default());
    let found = fetcher.issuers(&leaf.parsed).await.unwrap();
    assert_eq!(found, vec![intermediate.parsed.clone()]);
    let on = policy(&root, Some(Arc::new(fetcher)));
    assert_eq!(
        codes(&online(std::slice::from_ref(&leaf.parsed), &on).await),
        vec![FindingCode::IncompleteChain]
    );
}

#[tokio::test]
async fn wrong_or_unreachable_issuer_stays_untrusted() {
    let server = Server::start().await;
    let (root, _, leaf) = hierarchy(server.url("/issuing-ca.der"));
    // The CA publishes some other certificate: the chain still does not
    // verify, so the issuer is still unknown.
    let (_, other_intermediate, _) = hierarchy(server.url("/unused"));
    server.route("/issuing-ca.der", Answer::Body(other_intermediate.der()));
    let on = policy(&root, Some(Arc::new(Fetcher::new(AiaOptions::default()))));
    assert_eq!(
        codes(&online(std::slice::from_ref(&leaf.parsed), &on).await),
        vec![FindingCode::Untrusted]
    );

    // Garbage, an oversized answer, a refused address: errors, and the
    // finding is `untrusted` as without fetching.
    server.route(
        "/issuing-ca.der",
        Answer::Body(b"<html>not here</html>".to_vec()),
    );
    let fetcher = Fetcher::new(AiaOptions::default());
    let error = fetcher.issuers(&leaf.parsed).await.unwrap_err();
    assert!(matches!(error, AiaError::Malformed { .. }), "{error}");
    // Remembered for a while: not fetched again.
    let hits = server.hits("/issuing-ca.der");
    assert!(fetcher.issuers(&leaf.parsed).await.is_err());
    assert_eq!(server.hits("/issuing-ca.der"), hits);

    server.route("/issuing-ca.der", Answer::Body(vec![0x30; 100 * 1024]));
    let error = Fetcher::new(AiaOptions::default())
        .issuers(&leaf.parsed)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            AiaError::Fetch(FetchError::TooLarge { max: 65_536, .. })
        ),
        "{error}"
    );

    let refusing = Fetcher::new(AiaOptions {
        address_filter: Arc::new(|ip: std::net::IpAddr| !ip.is_loopback()),
        ..AiaOptions::default()
    });
    let error = refusing.issuers(&leaf.parsed).await.unwrap_err();
    assert!(
        matches!(error, AiaError::Fetch(FetchError::Refused { .. })),
        "{error}"
    );
    let on = policy(&root, Some(Arc::new(refusing)));
    assert_eq!(
        codes(&online(std::slice::from_ref(&leaf.parsed), &on).await),
        vec![FindingCode::Untrusted]
    );
}
