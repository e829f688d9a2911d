//! One DigiCert order, from placing it to the certificate.
//!
//! The order's id is kept in the connector's [`crate::StateStore`] under the
//! request's idempotency key as soon as DigiCert has answered, before any
//! polling (`crate::rest::OrderBook`). A later call with the same key (a
//! retry, a restarted daemon) polls that order instead of placing another,
//! as long as it was placed at the same API for the same names; one placed
//! for another key than the request's CSR is forgotten. The entry is
//! removed when the caller has recorded the certificate
//! ([`crate::Connector::recorded`]) or when DigiCert refused the order.

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;
use tokio::time::Instant;

use super::{DigicertConnector, OrderInfo};
use crate::rest::{self, KeptOrder};
use crate::{ConnectorError, Identifier, IssueRequest, Issued};

impl DigicertConnector {
    /// Places the order for `request`; returns its id.
    async fn place(&self, request: &IssueRequest) -> Result<u64, ConnectorError> {
        let name = self.settings.name.as_str();
        let mut dns = Vec::new();
        for identifier in &request.identifiers {
            match identifier {
                Identifier::Dns(d) => dns.push(d.to_ascii_lowercase()),
                Identifier::Ip(ip) => dns.push(ip.to_string()),
                Identifier::Email(address) => {
                    return Err(ConnectorError::permanent(
                        name,
                        format!("a TLS product cannot be ordered for e-mail address {address}"),
                    ));
                }
            }
        }
        let Some(common_name) = dns.first().cloned() else {
            return Err(ConnectorError::permanent(name, "no identifier to order"));
        };
        let csr =
            rest::csr_pem(&request.csr_der).map_err(|e| ConnectorError::permanent(name, e))?;
        let validity = match request
            .validity
            .map(|v| v.as_secs().div_ceil(86_400))
            .or(self.settings.validity_days.map(u64::from))
        {
            Some(days) => json!({ "days": days.max(1) }),
            None => json!({ "years": 1 }),
        };
        let body = json!({
            "certificate": {
                "common_name": common_name,
                "dns_names": dns.iter().skip(1).collect::<Vec<_>>(),
                "csr": csr,
                "signature_hash": self.settings.signature_hash,
            },
            "organization": { "id": self.settings.organization_id },
            "order_validity": validity,
            "comments": "Ordered by Certkeeper",
        });
        let product = request
            .profile
            .as_deref()
            .unwrap_or(&self.settings.product_name_id);
        #[derive(Deserialize)]
        struct Placed {
            id: u64,
        }
        let placed: Placed = self
            .call(
                self.request(Method::POST, &["order", "certificate", product])
                    .json(&body),
                "placing the order",
            )
            .await?;
        tracing::info!(
            connector = name,
            order = placed.id,
            product,
            "placed a DigiCert order"
        );
        Ok(placed.id)
    }

    /// Polls order `order_id` until it is issued or `max_wait` has passed.
    /// An order DigiCert refused or no longer knows is forgotten (under
    /// `key`): the next attempt orders anew. Any other failure keeps it.
    async fn wait_issued(
        &self,
        order_id: u64,
        key: Option<&str>,
    ) -> Result<OrderInfo, ConnectorError> {
        let name = self.settings.name.as_str();
        let deadline = Instant::now() + self.settings.max_wait;
        let kept = key.is_some();
        loop {
            let info = self.order_info(&order_id.to_string()).await?;
            let final_state = match &info {
                None => Some("unknown to DigiCert".to_owned()),
                Some(info) if info.status == "issued" => None,
                Some(info) if !info.is_pending() => Some(info.status.clone()),
                Some(_) => None,
            };
            if let Some(state) = final_state {
                if let Some(key) = key {
                    self.orders.forget(key).await;
                }
                return Err(ConnectorError::permanent(
                    name,
                    format!(
                        "DigiCert order {order_id} is {state}; the next attempt places a new order"
                    ),
                ));
            }
            let Some(info) = info else { continue };
            if info.status == "issued" {
                return Ok(info);
            }
            if Instant::now() + self.settings.poll_interval > deadline {
                let hint = if info.status == "needs_approval" {
                    " (an administrator must approve it in CertCentral)"
                } else {
                    ""
                };
                let next = if kept {
                    "the order is kept and the next attempt continues it"
                } else {
                    "the request has no idempotency key, so the order is not kept"
                };
                return Err(ConnectorError::transient(
                    name,
                    format!(
                        "DigiCert order {order_id} is still {}{hint} after {:?}; {next}",
                        info.status, self.settings.max_wait
                    ),
                ));
            }
            tokio::time::sleep(self.settings.poll_interval).await;
        }
    }
}

/// Issues a certificate for `request`: continues the order kept under its
/// idempotency key, or places one and keeps it, then polls and downloads.
pub(super) async fn issue(
    connector: &DigicertConnector,
    request: &IssueRequest,
) -> Result<Issued, ConnectorError> {
    let name = connector.settings.name.as_str();
    let names = rest::identifier_texts(&request.identifiers);
    let key = request.idempotency_key.as_deref();
    let mut resumed = false;
    let mut order_id = None;
    if let Some(key) = key
        && let Some(kept) = connector.orders.load(key).await?
    {
        if kept.base_url == connector.settings.base_url && kept.names == names {
            if let Ok(id) = kept.order_id.parse::<u64>() {
                tracing::info!(
                    connector = name,
                    order = id,
                    "continuing the kept DigiCert order"
                );
                order_id = Some(id);
                resumed = true;
            }
        } else {
            connector.orders.forget(key).await;
        }
    }
    let order_id = match order_id {
        Some(id) => id,
        None => {
            let id = connector.place(request).await?;
            if let Some(key) = key {
                let kept = KeptOrder {
                    order_id: id.to_string(),
                    base_url: connector.settings.base_url.clone(),
                    names: names.clone(),
                };
                connector.orders.save(key, &kept).await;
            }
            id
        }
    };
    let info = connector.wait_issued(order_id, key).await?;
    let Some(certificate_id) = info.certificate.as_ref().and_then(|c| c.id) else {
        return Err(ConnectorError::transient(
            name,
            format!("DigiCert order {order_id} is issued but names no certificate id yet"),
        ));
    };
    let chain_pem = connector.download(certificate_id).await?;
    if resumed && !rest::carries_csr_key(&chain_pem, &request.csr_der) {
        if let Some(key) = key {
            connector.orders.forget(key).await;
        }
        return Err(ConnectorError::transient(
            name,
            format!(
                "the kept DigiCert order {order_id} was for another key; it is forgotten and \
                 the next attempt places a new order (pass the same CSR on every retry)"
            ),
        ));
    }
    tracing::info!(
        connector = name,
        order = order_id,
        certificate = certificate_id,
        "DigiCert certificate issued"
    );
    Ok(Issued::new(chain_pem, Some(order_id.to_string())))
}
