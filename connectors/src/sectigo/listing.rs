//! Listing the SSL certificates an SCM account holds, incrementally.
//!
//! `GET /api/ssl/v1?size=&position=` pages through the account's SSL
//! certificates in the order SCM keeps them, oldest enrollment first, so a
//! new one lands at the end: the cursor's `position` is where the next run
//! continues. Enrollments still pending when they were passed are
//! remembered in the cursor and looked at again, by sslId, at the start of
//! the next run. For each issued (or revoked) certificate the details
//! (`GET /api/ssl/v1/{sslId}`: status, requester, organization id) are
//! read and the certificate collected (`x509CO`). Records carry the sslId
//! as their reference, the requester (or the external requester) and the
//! organization id.

use serde::{Deserialize, Serialize};

use super::{Details, SectigoConnector};
use crate::{ConnectorError, IssuedPage, IssuedRecord};

/// Pending enrollments remembered at most; the oldest are dropped past this.
const MAX_PENDING: usize = 1000;

/// Where a listing stands.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Cursor {
    /// Certificates read so far.
    #[serde(default)]
    position: u64,
    /// Enrollments passed while still pending, to look at again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pending: Vec<u64>,
    /// Whether the next page starts a new run (and so looks at `pending`).
    #[serde(default)]
    recheck: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Listed {
    ssl_id: u64,
}

/// Reads the page after `cursor`.
pub(super) async fn page(
    connector: &SectigoConnector,
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
    let mut records = Vec::new();
    let mut pending = std::mem::take(&mut cursor.pending);
    if cursor.recheck {
        for ssl_id in std::mem::take(&mut pending) {
            match look(connector, ssl_id).await? {
                Look::Pending => pending.push(ssl_id),
                Look::Record(record) => records.push(*record),
                Look::Nothing => {}
            }
        }
        cursor.recheck = false;
    }
    let size = connector.settings.list_page_size;
    let mut url = connector.http.endpoint(&["api", "ssl", "v1"]);
    url.query_pairs_mut()
        .append_pair("size", &size.to_string())
        .append_pair("position", &cursor.position.to_string());
    let listed: Vec<Listed> = connector
        .call(
            connector.request_url(reqwest::Method::GET, url),
            "listing certificates",
        )
        .await?;
    for item in &listed {
        match look(connector, item.ssl_id).await? {
            Look::Pending => pending.push(item.ssl_id),
            Look::Record(record) => records.push(*record),
            Look::Nothing => {}
        }
    }
    cursor.position += listed.len() as u64;
    let more = listed.len() >= size as usize;
    if pending.len() > MAX_PENDING {
        let drop = pending.len() - MAX_PENDING;
        tracing::warn!(
            connector = name,
            dropped = drop,
            "too many pending Sectigo enrollments to remember; the oldest are no longer rechecked"
        );
        pending.drain(..drop);
    }
    cursor.pending = pending;
    cursor.recheck = !more;
    let text = serde_json::to_string(&cursor)
        .map_err(|e| ConnectorError::permanent(name, format!("encoding the cursor: {e}")))?;
    Ok(IssuedPage::new(records, Some(text), more))
}

/// What one certificate of the listing comes to.
enum Look {
    /// Not issued yet: look again next run.
    Pending,
    /// Issued or revoked: its record.
    Record(Box<IssuedRecord>),
    /// Refused, gone, or not collectable: nothing to import.
    Nothing,
}

async fn look(connector: &SectigoConnector, ssl_id: u64) -> Result<Look, ConnectorError> {
    let Some(details) = connector.details(ssl_id).await? else {
        return Ok(Look::Nothing);
    };
    let status = details.status();
    let revoked = status == "revoked";
    if status != "issued" && !revoked {
        return Ok(if details.is_final_refusal() {
            Look::Nothing
        } else {
            Look::Pending
        });
    }
    let leaf = match connector.collect(ssl_id, "x509CO").await {
        Ok(Some(leaf)) => leaf,
        Ok(None) if !revoked => return Ok(Look::Pending),
        Ok(None) => return Ok(Look::Nothing),
        // SCM refuses to hand out a revoked certificate (-110): report what
        // can be, rather than fail the whole import.
        Err(e) if revoked && !e.is_retryable() => {
            tracing::warn!(connector = %connector.settings.name, ssl_id, error = %e.message, "cannot collect a revoked Sectigo certificate; it is not listed");
            return Ok(Look::Nothing);
        }
        Err(e) => return Err(e),
    };
    let der = openssl::x509::X509::from_pem(leaf.as_bytes())
        .and_then(|c| c.to_der())
        .map_err(|e| {
            ConnectorError::permanent(
                &connector.settings.name,
                format!("Sectigo certificate {ssl_id}: not PEM: {e}"),
            )
        })?;
    Ok(Look::Record(Box::new(record(
        der, revoked, ssl_id, &details,
    ))))
}

fn record(der: Vec<u8>, revoked: bool, ssl_id: u64, details: &Details) -> IssuedRecord {
    let requester = details
        .requester
        .clone()
        .or_else(|| details.external_requester.clone())
        .filter(|r| !r.is_empty());
    IssuedRecord::new(der, revoked)
        .with_reference(ssl_id.to_string())
        .with_owner(requester, details.org_id.map(|id| id.to_string()))
}
