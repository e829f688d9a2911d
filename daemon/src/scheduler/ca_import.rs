//! CA import as a job: a `[[discovery.ca]]` source pulls the certificates a
//! CA account holds, through its connector's paged listing
//! ([`Connector::list_issued`](certkeeper_connectors::Connector::list_issued)),
//! into the inventory.
//!
//! Each certificate is recorded with a sighting of kind `connector` at
//! `ca:CONNECTOR`, merged by fingerprint with what network and file
//! discovery saw, so the inventory shows per certificate where it was seen
//! deployed and which CA account holds it. A certificate new to the
//! inventory takes the owner fields the CA gives (the requester as a
//! contact when it is an e-mail address, the CA's organisation as the org
//! unit when one of that name exists); an administrator's assignments of a
//! known one are left alone. One the CA revoked is marked revoked.
//!
//! After the listing, the account's certificates that no network or file
//! discovery has seen deployed are `issued_not_deployed` findings, and
//! certificates seen deployed from a CA some account uses but held by no
//! account are `unmanaged_account` (each recorded at `ca:NAME/FP` and
//! `ca:*/FP`, one place per certificate), cleared once they no longer fit.
//!
//! The listing is incremental: the connector's cursor is saved with every
//! page recorded (store `ca_import.rs`), so the next run reads only what the
//! CA issued since, and a run stopped mid-listing continues after its last
//! recorded page.

use std::collections::HashMap;
use std::sync::Arc;

use certkeeper_connectors::Connector;
use certkeeper_model::discovery::{Finding, FindingCode};
use certkeeper_model::inventory::{CertificateRecord, SightingKind, Status};
use certkeeper_store::Store;
use certkeeper_store::ca_import::ALL_ACCOUNTS;

use crate::config::CaSource;

/// Most pages one run reads, so a CA whose cursor never ends (a bug at the
/// CA) cannot hold the job forever; the next run continues.
const MAX_PAGES: usize = 100_000;

/// What a run imported.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CaImportSummary {
    /// Pages read.
    pub pages: u64,
    /// Certificates the CA listed.
    pub listed: u64,
    /// Of those, new to the inventory.
    pub added: u64,
    /// Listed entries that were not certificates Certkeeper can read.
    pub unreadable: u64,
    /// Certificates the account holds that nobody has seen deployed
    /// (`issued_not_deployed`).
    pub not_deployed: u64,
    /// Certificates seen deployed from an account's CA that no account
    /// holds (`unmanaged_account`).
    pub unmanaged: u64,
}

/// The sighting location of certificates held by `connector`'s CA account.
pub fn location(connector: &str) -> String {
    format!("ca:{connector}")
}

/// Runs one CA import of `source` through `connector`.
pub async fn run(
    store: &Store,
    source: &CaSource,
    connector: &Arc<dyn Connector>,
    expiring_days: u32,
) -> Result<CaImportSummary, String> {
    let state = store
        .ca_import_state(&source.name)
        .await
        .map_err(|e| e.to_string())?;
    let mut cursor = if source.full { None } else { state.cursor };
    let place = location(&source.connector);
    let mut summary = CaImportSummary::default();
    let mut units: HashMap<String, bool> = HashMap::new();
    for _ in 0..MAX_PAGES {
        let page = connector
            .list_issued(cursor.as_deref())
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| {
                format!(
                    "connector `{}` cannot list the certificates its CA account holds",
                    source.connector
                )
            })?;
        summary.pages += 1;
        let now = chrono::Utc::now().timestamp();
        let mut records = Vec::with_capacity(page.records.len());
        let mut revoked = Vec::new();
        for entry in &page.records {
            let parsed = match certkeeper_model::inventory::parse::parse_der(&entry.certificate_der)
            {
                Ok(parsed) => parsed,
                Err(e) => {
                    tracing::info!(connector = %source.connector, reference = ?entry.ca_reference,
                        error = %e, "the CA listed something that is not a readable certificate");
                    summary.unreadable += 1;
                    continue;
                }
            };
            let mut record = CertificateRecord::discovered(parsed, now, expiring_days);
            if entry.revoked {
                record.status = Status::Revoked;
                revoked.push(record.cert.fingerprint.clone());
            }
            if let Some(requester) = entry.requester.as_deref().filter(|r| r.contains('@')) {
                record.contacts = vec![requester.to_ascii_lowercase()];
            }
            if let Some(org) = entry.organization.as_deref() {
                let exists = match units.get(org) {
                    Some(known) => *known,
                    None => {
                        let exists = store.org_unit_exists(org).await.unwrap_or(false);
                        units.insert(org.to_owned(), exists);
                        exists
                    }
                };
                if exists {
                    record.org_unit = Some(org.to_owned());
                }
            }
            records.push(record);
        }
        let outcome = store
            .record_certificates_from(
                &records,
                SightingKind::Connector,
                &place,
                Some(&source.name),
                now,
            )
            .await
            .map_err(|e| e.to_string())?;
        // Revoked at the CA after an earlier run imported it.
        for fingerprint in revoked.iter().filter(|f| !outcome.added.contains(f)) {
            store
                .set_status(fingerprint, Status::Revoked)
                .await
                .map_err(|e| e.to_string())?;
        }
        summary.listed += page.records.len() as u64;
        summary.added += outcome.added.len() as u64;
        let finished = (!page.more).then_some(now);
        // A page that gives no cursor keeps the last one: the next run
        // starts again from there rather than from the beginning.
        if page.cursor.is_some() {
            cursor = page.cursor.clone();
        }
        store
            .advance_ca_import(
                &source.name,
                cursor.as_deref(),
                page.records.len() as u64,
                finished,
            )
            .await
            .map_err(|e| e.to_string())?;
        if !page.more {
            classify(store, &source.connector, &mut summary).await?;
            return Ok(summary);
        }
    }
    tracing::warn!(connector = %source.connector, pages = MAX_PAGES,
        "CA import stopped after the most pages one run reads; the next run continues");
    Ok(summary)
}

/// Where a finding about one certificate held (or not) by an account is
/// recorded: findings are one per place, so each certificate has its own.
fn finding_place(account: &str, fingerprint: &str) -> String {
    format!("{account}/{fingerprint}")
}

/// Raises `issued_not_deployed` for the certificates `connector`'s account
/// holds that nobody has seen deployed, and `unmanaged_account` for those
/// seen deployed from an account's CA that no account holds; clears each
/// from certificates it no longer fits.
async fn classify(
    store: &Store,
    connector: &str,
    summary: &mut CaImportSummary,
) -> Result<(), String> {
    let err = |e: certkeeper_store::StoreError| e.to_string();
    let account = location(connector);
    let (lonely, _) = store.held_not_deployed(&account).await.map_err(err)?;
    summary.not_deployed = lonely.len() as u64;
    let detail = format!("held by the CA account `{connector}`; seen at no endpoint or file");
    reconcile(
        store,
        &account,
        FindingCode::IssuedNotDeployed,
        &lonely,
        &detail,
    )
    .await?;
    let unmanaged = store.unmanaged_account().await.map_err(err)?;
    summary.unmanaged = unmanaged.len() as u64;
    reconcile(
        store,
        ALL_ACCOUNTS,
        FindingCode::UnmanagedAccount,
        &unmanaged,
        "deployed, issued by a CA a configured account uses, held by no configured account",
    )
    .await
}

/// Makes `code` at `account/FP` hold for exactly `fingerprints`, with a
/// `discovery_finding` event for each newly raised.
async fn reconcile(
    store: &Store,
    account: &str,
    code: FindingCode,
    fingerprints: &[String],
    detail: &str,
) -> Result<(), String> {
    let err = |e: certkeeper_store::StoreError| e.to_string();
    let now = chrono::Utc::now().timestamp();
    let wanted: std::collections::HashSet<&str> = fingerprints.iter().map(String::as_str).collect();
    let prefix = format!("{account}/");
    let raised = store
        .findings(None, Some(code), 1_000_000)
        .await
        .map_err(err)?;
    for old in raised.iter().filter(|f| f.location.starts_with(&prefix)) {
        if !wanted.contains(old.fingerprint.as_str()) {
            store
                .record_findings(&old.location, &old.fingerprint, &[], now)
                .await
                .map_err(err)?;
        }
    }
    let finding = Finding {
        code,
        days: None,
        detail: Some(detail.to_owned()),
    };
    for fingerprint in fingerprints {
        let place = finding_place(account, fingerprint);
        let new = store
            .record_findings_new(&place, fingerprint, std::slice::from_ref(&finding), now)
            .await
            .map_err(err)?;
        if !new.is_empty()
            && let Some((record, _)) = store.certificate(fingerprint).await.map_err(err)?
        {
            super::discovery::finding_event(store, &place, code, Some(&finding), &record, now)
                .await;
        }
    }
    Ok(())
}
