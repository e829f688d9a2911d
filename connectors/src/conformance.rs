//! The conformance suite every [`Connector`] implementation runs.
//!
//! The renewal scheduler treats every connector alike, so every connector
//! must behave alike where the scheduler can tell: issuing returns the leaf
//! first with its chain and the requested names and key, re-issuing for the
//! same names yields a different certificate, issuing twice under one
//! idempotency key (a retry of the same renewal) yields a certificate for the
//! CSR's key both times, revoking succeeds once and then
//! fails permanently, a CA that can list what it issued lists a certificate
//! it issued and does not list it again from the listing's last cursor (the
//! next incremental import), a refused identifier is a permanent error, and
//! an unreachable CA is a transient one. Each implementation's tests call
//! [`run`] against a real CA (pebble for ACME, a fresh internal CA).

use openssl::pkey::{PKey, Private};
use openssl::x509::X509;

use crate::csr::{KeyAlgorithm, build_csr, generate_key};
use crate::{
    Connector, ErrorClass, Identifier, IssueRequest, RevocationReason, RevokeRequest, Usage,
};

/// What a connector under test is asked to do.
pub struct Fixture<'a> {
    /// The connector under test, pointed at a working CA.
    pub connector: &'a dyn Connector,
    /// Identifiers the CA will issue for.
    pub identifiers: Vec<Identifier>,
    /// Identifiers the CA must refuse (a permanent error).
    pub refused: Vec<Identifier>,
    /// The same kind of connector pointed at a CA that does not answer.
    pub unreachable: Option<&'a dyn Connector>,
}

/// A fresh P-256 key and a CSR for `identifiers` signed with it.
pub fn key_and_csr(identifiers: &[Identifier]) -> Result<(PKey<Private>, Vec<u8>), String> {
    let key = generate_key(KeyAlgorithm::EcdsaP256).map_err(|e| e.to_string())?;
    let csr = build_csr(&key, identifiers).map_err(|e| e.to_string())?;
    Ok((key, csr))
}

/// Runs the suite; the error names the first expectation that failed.
pub async fn run(fixture: &Fixture<'_>) -> Result<(), String> {
    let connector = fixture.connector;
    let name = connector.name().to_owned();
    connector
        .health()
        .await
        .map_err(|e| format!("health of a working CA failed: {e}"))?;

    let (key, csr) = key_and_csr(&fixture.identifiers)?;
    let first = issue_checked(connector, &fixture.identifiers, &key, csr, None, None).await?;

    let (key2, csr2) = key_and_csr(&fixture.identifiers)?;
    let first_der = first.to_der().map_err(|e| e.to_string())?;
    let second = issue_checked(
        connector,
        &fixture.identifiers,
        &key2,
        csr2,
        Some(first_der.clone()),
        None,
    )
    .await?;
    if second.serial_number().to_bn().ok() == first.serial_number().to_bn().ok() {
        return Err(format!("{name}: re-issuing returned the same serial"));
    }

    // A retry of one issuance (same key, same CSR) after the first finished.
    let (key3, csr3) = key_and_csr(&fixture.identifiers)?;
    let idempotency_key = format!("conformance-{name}-retry");
    for attempt in ["first", "second"] {
        issue_checked(
            connector,
            &fixture.identifiers,
            &key3,
            csr3.clone(),
            None,
            Some(idempotency_key.clone()),
        )
        .await
        .map_err(|e| format!("{attempt} issue under one idempotency key: {e}"))?;
    }

    connector
        .revoke(&RevokeRequest::new(
            first_der.clone(),
            RevocationReason::Superseded,
        ))
        .await
        .map_err(|e| format!("revoking a certificate it issued failed: {e}"))?;
    match connector
        .revoke(&RevokeRequest::new(first_der, RevocationReason::Superseded))
        .await
    {
        Ok(()) => return Err(format!("{name}: revoking twice succeeded")),
        Err(e) if e.class != ErrorClass::Permanent => {
            return Err(format!(
                "{name}: revoking twice is not a permanent error: {e:?}"
            ));
        }
        Err(_) => {}
    }

    let second_der = second.to_der().map_err(|e| e.to_string())?;
    check_listing(connector, &second_der).await?;

    for refused in &fixture.refused {
        let ids = vec![refused.clone()];
        let (_, csr) = key_and_csr(&ids)?;
        match connector.issue(&IssueRequest::new(csr, ids)).await {
            Ok(_) => return Err(format!("{name}: issued for refused identifier {refused:?}")),
            Err(e) if e.class != ErrorClass::Permanent => {
                return Err(format!(
                    "{name}: refusing {refused:?} is not a permanent error: {e:?}"
                ));
            }
            Err(_) => {}
        }
    }

    if let Some(down) = fixture.unreachable {
        let (_, csr) = key_and_csr(&fixture.identifiers)?;
        let request = IssueRequest::new(csr, fixture.identifiers.clone());
        match down.issue(&request).await {
            Ok(_) => return Err(format!("{name}: issued through an unreachable CA")),
            Err(e) if !e.is_retryable() => {
                return Err(format!(
                    "{name}: an unreachable CA is a permanent error: {e:?}"
                ));
            }
            Err(_) => {}
        }
        if down.health().await.is_ok() {
            return Err(format!("{name}: health of an unreachable CA succeeded"));
        }
    }
    Ok(())
}

/// For a CA that can list what it issued: a certificate it issued
/// (`issued_der`) is in the listing, read page by page to the end, and a
/// listing from that end's cursor (the next incremental import) does not
/// return it again.
async fn check_listing(connector: &dyn Connector, issued_der: &[u8]) -> Result<(), String> {
    let name = connector.name().to_owned();
    let Some((records, cursor)) = list_to_end(connector, None).await? else {
        return Ok(());
    };
    if !records.iter().any(|der| der == issued_der) {
        return Err(format!(
            "{name}: a certificate it issued is not in its listing ({} records)",
            records.len()
        ));
    }
    let Some(cursor) = cursor else {
        return Err(format!("{name}: the listing's last page has no cursor"));
    };
    let again = list_to_end(connector, Some(cursor))
        .await?
        .map(|(records, _)| records)
        .unwrap_or_default();
    if again.iter().any(|der| der == issued_der) {
        return Err(format!(
            "{name}: listing from the last cursor returned a certificate listed before"
        ));
    }
    Ok(())
}

/// Every certificate (DER) of the listing from `cursor` to its end, and the
/// end's cursor; `None` when the connector cannot list.
async fn list_to_end(
    connector: &dyn Connector,
    mut cursor: Option<String>,
) -> Result<Option<(Vec<Vec<u8>>, Option<String>)>, String> {
    let name = connector.name();
    let mut records = Vec::new();
    for _ in 0..10_000 {
        let page = connector
            .list_issued(cursor.as_deref())
            .await
            .map_err(|e| format!("{name}: listing failed: {e}"))?;
        let Some(page) = page else {
            return Ok(None);
        };
        records.extend(page.records.into_iter().map(|r| r.certificate_der));
        cursor = page.cursor;
        if !page.more {
            return Ok(Some((records, cursor)));
        }
        if cursor.is_none() {
            return Err(format!(
                "{name}: a listing page says more follow but has no cursor"
            ));
        }
    }
    Err(format!("{name}: the listing never ended"))
}

/// Issues and checks the result: leaf first, chained, with the CSR's key and
/// every requested identifier.
async fn issue_checked(
    connector: &dyn Connector,
    identifiers: &[Identifier],
    key: &PKey<Private>,
    csr: Vec<u8>,
    replaces: Option<Vec<u8>>,
    idempotency_key: Option<String>,
) -> Result<X509, String> {
    let name = connector.name();
    let mut request = IssueRequest::new(csr, identifiers.to_vec());
    request.usage = Usage::Server;
    request.replaces = replaces;
    request.idempotency_key = idempotency_key;
    let issued = connector
        .issue(&request)
        .await
        .map_err(|e| format!("issuing failed: {e}"))?;
    let chain = X509::stack_from_pem(issued.chain_pem.as_bytes())
        .map_err(|e| format!("{name}: the issued chain is not PEM: {e}"))?;
    let leaf = chain
        .first()
        .ok_or_else(|| format!("{name}: the issued chain is empty"))?;
    let leaf_key = leaf.public_key().map_err(|e| e.to_string())?;
    if !leaf_key.public_eq(key) {
        return Err(format!("{name}: the leaf does not carry the CSR's key"));
    }
    let issuer = chain
        .get(1)
        .ok_or_else(|| format!("{name}: the chain holds no issuer after the leaf"))?;
    let issuer_key = issuer.public_key().map_err(|e| e.to_string())?;
    if !leaf.verify(&issuer_key).unwrap_or(false) {
        return Err(format!(
            "{name}: the leaf is not signed by the next certificate"
        ));
    }
    let sans: Vec<String> = leaf
        .subject_alt_names()
        .map(|names| {
            names
                .iter()
                .filter_map(|n| {
                    n.dnsname()
                        .map(str::to_owned)
                        .or_else(|| n.ipaddress().and_then(ip_text))
                        .or_else(|| n.email().map(str::to_owned))
                })
                .collect()
        })
        .unwrap_or_default();
    for id in identifiers {
        let want = match id {
            Identifier::Dns(d) => d.clone(),
            Identifier::Ip(ip) => ip.to_string(),
            Identifier::Email(m) => m.clone(),
        };
        if !sans.iter().any(|s| s.eq_ignore_ascii_case(&want)) {
            return Err(format!(
                "{name}: the leaf does not cover {want} (SANs: {sans:?})"
            ));
        }
    }
    Ok(leaf.clone())
}

fn ip_text(raw: &[u8]) -> Option<String> {
    match raw.len() {
        4 => <[u8; 4]>::try_from(raw)
            .ok()
            .map(|b| std::net::Ipv4Addr::from(b).to_string()),
        16 => <[u8; 16]>::try_from(raw)
            .ok()
            .map(|b| std::net::Ipv6Addr::from(b).to_string()),
        _ => None,
    }
}
