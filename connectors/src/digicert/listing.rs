//! Listing the certificates a CertCentral account ordered, incrementally.
//!
//! `GET /order/certificate?offset=&limit=&sort=id` pages through the orders
//! oldest first (the answer's `page.total` says how many there are), so a
//! new order lands at the end: the cursor's `offset` is where the next run
//! continues. Orders that were still pending when they were passed (they
//! may be issued later, in place) are remembered in the cursor and looked
//! at again, by id, at the start of the next run; the refused or canceled
//! are dropped. Each issued or revoked order is read (`GET
//! /order/certificate/{id}`: the certificate id, who ordered it, the
//! organization) and its certificate downloaded (`pem_all`, whose first
//! certificate is the leaf). Records carry the order id as their reference,
//! the ordering user's e-mail as requester and the organization's name.

use serde::{Deserialize, Serialize};

use super::{DigicertConnector, OrderInfo};
use crate::{ConnectorError, IssuedPage, IssuedRecord};

/// Pending orders remembered at most; the oldest are dropped past this.
const MAX_PENDING: usize = 1000;

/// Where a listing stands.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Cursor {
    /// Orders read so far, oldest first.
    #[serde(default)]
    offset: u64,
    /// Orders passed while still pending, to look at again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pending: Vec<u64>,
    /// Whether the next page starts a new run (and so looks at `pending`).
    #[serde(default)]
    recheck: bool,
}

#[derive(Deserialize)]
struct Orders {
    #[serde(default)]
    orders: Vec<ListedOrder>,
    #[serde(default)]
    page: Option<Page>,
}

#[derive(Deserialize)]
struct ListedOrder {
    id: u64,
    #[serde(default)]
    status: String,
}

#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    total: u64,
}

/// Reads the page after `cursor`.
pub(super) async fn page(
    connector: &DigicertConnector,
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
    let mut pending = Vec::new();
    if cursor.recheck {
        for id in std::mem::take(&mut cursor.pending) {
            match connector.order_info(&id.to_string()).await? {
                Some(info) if info.is_pending() => pending.push(id),
                Some(info) => records.extend(record(connector, &info).await?),
                None => {}
            }
        }
        cursor.recheck = false;
    } else {
        pending = std::mem::take(&mut cursor.pending);
    }

    let limit = connector.settings.list_page_size;
    let mut url = connector.http.endpoint(&["order", "certificate"]);
    url.query_pairs_mut()
        .append_pair("offset", &cursor.offset.to_string())
        .append_pair("limit", &limit.to_string())
        .append_pair("sort", "id");
    let request = connector
        .http
        .request(reqwest::Method::GET, url)
        .header("X-DC-DEVKEY", connector.settings.api_key.expose());
    let listed: Orders = connector.call(request, "listing orders").await?;
    for order in &listed.orders {
        match order.status.as_str() {
            "issued" | "revoked" | "expired" => {
                if let Some(info) = connector.order_info(&order.id.to_string()).await? {
                    records.extend(record(connector, &info).await?);
                }
            }
            "pending" | "needs_approval" | "reissue_pending" | "waiting_pickup" | "processing" => {
                pending.push(order.id)
            }
            _ => {}
        }
    }
    cursor.offset += listed.orders.len() as u64;
    let total = listed.page.map_or(0, |p| p.total);
    let more = !listed.orders.is_empty() && cursor.offset < total;
    if pending.len() > MAX_PENDING {
        let drop = pending.len() - MAX_PENDING;
        tracing::warn!(
            connector = name,
            dropped = drop,
            "too many pending DigiCert orders to remember; the oldest are no longer rechecked"
        );
        pending.drain(..drop);
    }
    cursor.pending = pending;
    cursor.recheck = !more;
    let text = serde_json::to_string(&cursor)
        .map_err(|e| ConnectorError::permanent(name, format!("encoding the cursor: {e}")))?;
    Ok(IssuedPage::new(records, Some(text), more))
}

/// The record of an issued (or revoked) order, with its certificate.
async fn record(
    connector: &DigicertConnector,
    info: &OrderInfo,
) -> Result<Option<IssuedRecord>, ConnectorError> {
    if info.is_pending() || !matches!(info.status.as_str(), "issued" | "revoked" | "expired") {
        return Ok(None);
    }
    let Some(certificate_id) = info.certificate.as_ref().and_then(|c| c.id) else {
        return Ok(None);
    };
    let chain = match connector.download(certificate_id).await {
        Ok(chain) => chain,
        // A revoked certificate may no longer be downloadable: report what
        // can be, rather than fail the whole import.
        Err(e) if info.status != "issued" && !e.is_retryable() => {
            tracing::warn!(connector = %connector.settings.name, order = info.id, error = %e.message, "cannot download a revoked DigiCert certificate; it is not listed");
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let der = openssl::x509::X509::from_pem(chain.as_bytes())
        .and_then(|c| c.to_der())
        .map_err(|e| {
            ConnectorError::permanent(
                &connector.settings.name,
                format!("DigiCert certificate {certificate_id}: not PEM: {e}"),
            )
        })?;
    let organization = info.organization.as_ref().and_then(|o| o.name.clone());
    Ok(Some(
        IssuedRecord::new(der, info.status == "revoked")
            .with_reference(info.id.to_string())
            .with_owner(info.requester(), organization),
    ))
}
