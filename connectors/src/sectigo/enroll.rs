//! One Sectigo enrollment, from the CSR to the collected chain.
//!
//! The sslId is kept in the connector's [`crate::StateStore`] under the
//! request's idempotency key as soon as SCM has answered the enrollment,
//! before any polling (`crate::rest::OrderBook`). A later call with the
//! same key (a retry, a restarted daemon) polls that enrollment instead of
//! enrolling again, as long as it was made at the same SCM for the same
//! names; one made for another key than the request's CSR is forgotten.
//! The entry is removed when the caller has recorded the certificate
//! ([`crate::Connector::recorded`]) or when SCM declined the enrollment.
//! The collected certificate's sslId is also kept by serial, so revoking
//! finds it without a search.

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;
use tokio::time::Instant;

use super::{SectigoConnector, serial_key};
use crate::rest::{self, KeptOrder};
use crate::{ConnectorError, Identifier, IssueRequest, Issued};

impl SectigoConnector {
    /// The leaf and its issuers of `ssl_id`, ordered, PEM; `None` while SCM
    /// is still processing.
    async fn collect_chain(
        &self,
        ssl_id: u64,
        csr_der: Option<&[u8]>,
    ) -> Result<Option<String>, ConnectorError> {
        let Some(leaf) = self.collect(ssl_id, "x509CO").await? else {
            return Ok(None);
        };
        let issuers = self.collect(ssl_id, "x509IO").await?.unwrap_or_default();
        rest::chain_from(&[leaf.as_str(), issuers.as_str()], csr_der)
            .map(Some)
            .map_err(|e| {
                ConnectorError::permanent(
                    &self.settings.name,
                    format!("collecting Sectigo certificate {ssl_id}: {e}"),
                )
            })
    }

    /// Enrolls `request`; returns the sslId.
    async fn enroll(&self, request: &IssueRequest) -> Result<u64, ConnectorError> {
        let name = self.settings.name.as_str();
        let mut names = Vec::new();
        for identifier in &request.identifiers {
            match identifier {
                Identifier::Dns(d) => names.push(d.to_ascii_lowercase()),
                Identifier::Ip(ip) => names.push(ip.to_string()),
                Identifier::Email(address) => {
                    return Err(ConnectorError::permanent(
                        name,
                        format!(
                            "an SSL certificate cannot be enrolled for e-mail address {address}"
                        ),
                    ));
                }
            }
        }
        if names.is_empty() {
            return Err(ConnectorError::permanent(name, "no identifier to enroll"));
        }
        let csr =
            rest::csr_pem(&request.csr_der).map_err(|e| ConnectorError::permanent(name, e))?;
        let cert_type = match request.profile.as_deref() {
            Some(profile) => profile.parse::<u64>().map_err(|_| {
                ConnectorError::permanent(
                    name,
                    format!("profile `{profile}` is not a Sectigo certificate type id"),
                )
            })?,
            None => self.settings.cert_type,
        };
        // SCM offers a few fixed terms per certificate type (the request's
        // validity, say 90 days, would be refused): always the configured one.
        let term = self.settings.term_days;
        let mut body = json!({
            "orgId": self.settings.org_id,
            "csr": csr.trim_end(),
            "certType": cert_type,
            "term": term,
            "subjAltNames": names.join(","),
            "numberServers": 1,
            "serverType": -1,
            "comments": "Enrolled by Certkeeper",
        });
        if let Some(requester) = &self.settings.external_requester {
            body["externalRequester"] = json!(requester);
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Enrolled {
            ssl_id: u64,
        }
        let enrolled: Enrolled = self
            .call(
                self.request(Method::POST, &["enroll"]).json(&body),
                "enrolling the CSR",
            )
            .await?;
        tracing::info!(
            connector = name,
            ssl_id = enrolled.ssl_id,
            "enrolled at Sectigo"
        );
        Ok(enrolled.ssl_id)
    }

    /// Polls `ssl_id` until its certificate can be collected or `max_wait`
    /// has passed; a refused enrollment is forgotten (under `key`).
    async fn wait_collected(
        &self,
        ssl_id: u64,
        key: Option<&str>,
        csr_der: &[u8],
    ) -> Result<String, ConnectorError> {
        let name = self.settings.name.as_str();
        let deadline = Instant::now() + self.settings.max_wait;
        loop {
            let details = self.details(ssl_id).await?;
            let refusal = match &details {
                None => Some("unknown to Sectigo".to_owned()),
                Some(d) if d.is_final_refusal() => Some(d.status.clone()),
                Some(_) => None,
            };
            if let Some(state) = refusal {
                if let Some(key) = key {
                    self.orders.forget(key).await;
                }
                return Err(ConnectorError::permanent(
                    name,
                    format!(
                        "Sectigo certificate {ssl_id} is {state}; the next attempt enrolls anew"
                    ),
                ));
            }
            let status = details.map(|d| d.status).unwrap_or_default();
            if status.eq_ignore_ascii_case("issued")
                && let Some(chain) = self.collect_chain(ssl_id, Some(csr_der)).await?
            {
                return Ok(chain);
            }
            if Instant::now() + self.settings.poll_interval > deadline {
                let next = if key.is_some() {
                    "the enrollment is kept and the next attempt continues it"
                } else {
                    "the request has no idempotency key, so the enrollment is not kept"
                };
                return Err(ConnectorError::transient(
                    name,
                    format!(
                        "Sectigo certificate {ssl_id} is still pending ({status}) after {:?}; {next}",
                        self.settings.max_wait
                    ),
                ));
            }
            tokio::time::sleep(self.settings.poll_interval).await;
        }
    }
}

/// Issues a certificate for `request`: continues the enrollment kept under
/// its idempotency key, or enrolls and keeps it, then polls and collects.
pub(super) async fn issue(
    connector: &SectigoConnector,
    request: &IssueRequest,
) -> Result<Issued, ConnectorError> {
    let name = connector.settings.name.as_str();
    let names = rest::identifier_texts(&request.identifiers);
    let key = request.idempotency_key.as_deref();
    let mut resumed = None;
    if let Some(key) = key
        && let Some(kept) = connector.orders.load(key).await?
    {
        match kept.order_id.parse::<u64>() {
            Ok(id) if kept.base_url == connector.settings.base_url && kept.names == names => {
                tracing::info!(
                    connector = name,
                    ssl_id = id,
                    "continuing the kept Sectigo enrollment"
                );
                resumed = Some(id);
            }
            _ => connector.orders.forget(key).await,
        }
    }
    let ssl_id = match resumed {
        Some(id) => id,
        None => {
            let id = connector.enroll(request).await?;
            if let Some(key) = key {
                let kept = KeptOrder {
                    order_id: id.to_string(),
                    base_url: connector.settings.base_url.clone(),
                    names,
                };
                connector.orders.save(key, &kept).await;
            }
            id
        }
    };
    let chain_pem = connector
        .wait_collected(ssl_id, key, &request.csr_der)
        .await?;
    if resumed.is_some() && !rest::carries_csr_key(&chain_pem, &request.csr_der) {
        if let Some(key) = key {
            connector.orders.forget(key).await;
        }
        return Err(ConnectorError::transient(
            name,
            format!(
                "the kept Sectigo enrollment {ssl_id} was for another key; it is forgotten and \
                 the next attempt enrolls anew (pass the same CSR on every retry)"
            ),
        ));
    }
    // Kept so that revoking finds the sslId without a search.
    let leaf_der = openssl::x509::X509::from_pem(chain_pem.as_bytes()).and_then(|c| c.to_der());
    if let Ok(der) = leaf_der
        && let Ok(serial) = rest::serial_hex(&der, "")
        && let Err(e) = connector
            .state
            .save(
                &serial_key(&serial.to_ascii_uppercase()),
                ssl_id.to_string().as_bytes(),
            )
            .await
    {
        tracing::warn!(connector = name, error = %e, "cannot keep the certificate's sslId; revoking will look it up");
    }
    tracing::info!(connector = name, ssl_id, "Sectigo certificate collected");
    Ok(Issued::new(chain_pem, Some(ssl_id.to_string())))
}
