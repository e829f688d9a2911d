//! Listing what a Vault PKI mount issued, incrementally.
//!
//! Vault lists certificates by serial (`LIST /v1/{mount}/certs`, paged with
//! `after` and `limit`), and serials are random: a certificate issued
//! after the previous listing can sort anywhere. So "after the last serial
//! seen" would miss most new ones. Instead each listing is a *pass* over
//! the serials, and the cursor says which certificates a pass reports:
//!
//! - the first pass (no cursor) reports every certificate;
//! - a pass starts by noting the server's clock (the answer's `Date`)
//!   minus [`super::VaultSettings::list_overlap`]: every certificate signed
//!   from then on has a notBefore after that mark (Vault backdates
//!   notBefore by the role's `not_before_duration`, 30 s by default, which
//!   the overlap must exceed);
//! - the next pass reports only certificates whose notBefore is at or after
//!   the previous pass's mark, and skips the few already reported that
//!   fall inside the overlap (their serials travel in the cursor, for as
//!   long as they stay inside it).
//!
//! OpenBao's `LIST /v1/{mount}/certs/detailed` gives each serial's
//! notBefore with the list, so old certificates are passed over without
//! being fetched: a pass reads the serial list and only the new
//! certificates. On Vault, which has only the plain list, each listed
//! certificate is fetched to learn its notBefore. CA certificates stored
//! in the mount (its issuers) are not reported.
//!
//! The cursor is a small JSON document; the daemon stores it as it is.

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

use super::{Envelope, StoredCert, VaultConnector};
use crate::{ConnectorError, IssuedPage, IssuedRecord};

/// Where a listing stands; see the [module documentation](self).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Cursor {
    /// The last serial read in the current pass; `None` at a pass's start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    after: Option<String>,
    /// Report only certificates with notBefore at or after this (`None`:
    /// every certificate, the first pass).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    since: Option<DateTime<Utc>>,
    /// Serials reported by the previous pass that lie at or after `since`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    skip: Vec<String>,
    /// The mark of the current pass, once its first page was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mark: Option<DateTime<Utc>>,
    /// Serials reported in the current pass at or after `mark`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    recent: Vec<String>,
}

/// One page of `LIST …/certs[/detailed]` under `data`.
#[derive(Deserialize, Default)]
struct Keys {
    #[serde(default)]
    keys: Vec<String>,
    #[serde(default)]
    key_info: HashMap<String, KeyInfo>,
}

#[derive(Deserialize)]
struct KeyInfo {
    #[serde(default)]
    not_before: Option<DateTime<Utc>>,
}

/// Reads the page after `cursor`.
pub(super) async fn page(
    connector: &VaultConnector,
    cursor: Option<&str>,
) -> Result<IssuedPage, ConnectorError> {
    let name = connector.settings.name.as_str();
    let mut cursor: Cursor = match cursor {
        None => Cursor::default(),
        Some(text) => serde_json::from_str(text).map_err(|e| {
            ConnectorError::permanent(
                name,
                format!("the listing cursor is not this connector's ({e})"),
            )
        })?,
    };
    let limit = connector.settings.list_page_size;
    let (keys, date) = list_keys(connector, cursor.after.as_deref(), limit).await?;
    if cursor.after.is_none() {
        let now = date.unwrap_or_else(Utc::now);
        let overlap = chrono::Duration::from_std(connector.settings.list_overlap)
            .unwrap_or_else(|_| chrono::Duration::minutes(10));
        cursor.mark = Some(now - overlap);
    }
    let mut records = Vec::new();
    for serial in &keys.keys {
        let listed_not_before = keys.key_info.get(serial).and_then(|i| i.not_before);
        if let (Some(since), Some(not_before)) = (cursor.since, listed_not_before)
            && not_before < since
        {
            continue;
        }
        // Reported by the previous pass; still inside this pass's overlap,
        // it must stay skipped by the next one too.
        let skipped = cursor.skip.contains(serial);
        if skipped && let Some(not_before) = listed_not_before {
            if cursor.mark.is_some_and(|mark| not_before >= mark) {
                cursor.recent.push(serial.clone());
            }
            continue;
        }
        let Some((der, revoked, not_before, is_ca)) = fetch(connector, serial).await? else {
            continue;
        };
        if is_ca || cursor.since.is_some_and(|since| not_before < since) {
            continue;
        }
        if cursor.mark.is_some_and(|mark| not_before >= mark) {
            cursor.recent.push(serial.clone());
        }
        if skipped {
            continue;
        }
        records.push(IssuedRecord::new(der, revoked).with_reference(serial.clone()));
    }
    let full = keys.keys.len() >= limit as usize;
    let next = if full {
        Cursor {
            after: keys.keys.last().cloned(),
            ..cursor
        }
    } else {
        // The pass is over: the next one reports what is new since its mark.
        Cursor {
            after: None,
            since: cursor.mark,
            skip: cursor.recent,
            mark: None,
            recent: Vec::new(),
        }
    };
    let text = serde_json::to_string(&next)
        .map_err(|e| ConnectorError::permanent(name, format!("encoding the cursor: {e}")))?;
    Ok(IssuedPage::new(records, Some(text), full))
}

/// One page of serials after `after`, with their notBefore where Vault
/// lists it, and the server's clock.
async fn list_keys(
    connector: &VaultConnector,
    after: Option<&str>,
    limit: u32,
) -> Result<(Keys, Option<DateTime<Utc>>), ConnectorError> {
    let doing = "listing certificates";
    for path in [&["certs", "detailed"][..], &["certs"][..]] {
        let mut url = connector.mount_url(path);
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("limit", &limit.to_string());
            if let Some(after) = after {
                query.append_pair("after", after);
            }
        }
        let answer = connector
            .call(
                Method::from_bytes(b"LIST").unwrap_or(Method::GET),
                url,
                None,
                doing,
            )
            .await?;
        match answer.status {
            // Vault answers an empty list, and OpenBao-only paths on
            // Vault, with 404: try the plain list, then report nothing.
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => continue,
            status if status.is_success() => {
                let date = answer.date();
                let keys: Envelope<Keys> = connector.http.decode(&answer, doing)?;
                let mut keys = keys.data;
                // Vault without paging support returns everything: page here.
                keys.keys.sort();
                if let Some(after) = after {
                    keys.keys.retain(|k| k.as_str() > after);
                }
                keys.keys.truncate(limit as usize);
                return Ok((keys, date));
            }
            _ => return Err(connector.refused(&answer, doing)),
        }
    }
    Ok((Keys::default(), None))
}

/// The certificate with `serial`: its DER, whether it is revoked, its
/// notBefore and whether it is a CA; `None` when Vault no longer has it.
async fn fetch(
    connector: &VaultConnector,
    serial: &str,
) -> Result<Option<(Vec<u8>, bool, DateTime<Utc>, bool)>, ConnectorError> {
    let name = connector.settings.name.as_str();
    let doing = format!("reading certificate {serial}");
    let answer = connector
        .call(
            Method::GET,
            connector.mount_url(&["cert", serial]),
            None,
            &doing,
        )
        .await?;
    if answer.status == StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !answer.is_success() {
        return Err(connector.refused(&answer, &doing));
    }
    let stored: Envelope<StoredCert> = connector.http.decode(&answer, &doing)?;
    let der = openssl::x509::X509::from_pem(stored.data.certificate.as_bytes())
        .and_then(|c| c.to_der())
        .map_err(|e| {
            ConnectorError::permanent(name, format!("{doing}: not a PEM certificate: {e}"))
        })?;
    let (not_before, is_ca) = match x509_parser::parse_x509_certificate(&der) {
        Ok((_, cert)) => (
            DateTime::from_timestamp(cert.validity().not_before.timestamp(), 0).unwrap_or_default(),
            cert.is_ca(),
        ),
        Err(e) => {
            return Err(ConnectorError::permanent(
                name,
                format!("{doing}: unreadable certificate: {e}"),
            ));
        }
    };
    Ok(Some((
        der,
        stored.data.revocation_time > 0,
        not_before,
        is_ca,
    )))
}
