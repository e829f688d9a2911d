//! One ACME order, from `newOrder` to the certificate chain.
//!
//! The flow (RFC 8555 section 7.4): create the order (with the profile and,
//! when the CA offers ARI, the certificate it `replaces`), publish a response
//! for every pending authorization, wait until DNS records are visible, tell
//! the CA the challenges are ready, poll until the order is ready, finalize
//! with the caller's CSR and poll for the certificate. The whole flow runs
//! under the order deadline; whatever was published is withdrawn afterwards,
//! whether the order succeeded, failed or ran out of time.
//!
//! ## Continuing an order after a crash
//!
//! A request with an [`IssueRequest::idempotency_key`] has its order's URL
//! saved in the connector's [`crate::StateStore`] (under
//! [`order_state_key`]) as soon as the CA has created the order, before any
//! challenge is answered. A later call with the same key (the daemon's retry
//! of the same renewal, after a crash, a timeout or a dropped future) loads
//! that order and carries on from where the CA has it: `pending` answers the
//! challenges, `ready` finalizes with the request's CSR, `processing` and
//! `valid` fetch the certificate. An order the CA declared `invalid`, one it
//! no longer knows (404), or one saved for another directory or other names
//! is forgotten and a new one placed. The entry is removed once the caller
//! has recorded the certificate (`Connector::recorded`), not when it is
//! downloaded: a daemon killed between the two fetches the same
//! certificate again instead of ordering a second.

use std::path::PathBuf;
use std::time::Duration;

use instant_acme::{
    Account, AuthorizationStatus, ChallengeStatus, ChallengeType, Identifier as AcmeIdentifier,
    NewOrder, Order, OrderStatus, RetryPolicy,
};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::dns01::ChallengeRecord;
use super::http01::{self, Http01Lease};
use super::{AcmeConnector, Solver, ari, problem};
use crate::{ConnectorError, Identifier, IssueRequest, Issued};

/// Challenge responses an order published, to withdraw when it ends.
#[derive(Default)]
struct Published {
    lease: Option<Http01Lease>,
    files: Vec<PathBuf>,
    records: Vec<ChallengeRecord>,
}

/// Issues a certificate for `request` through `connector`.
pub async fn issue(
    connector: &AcmeConnector,
    request: &IssueRequest,
) -> Result<Issued, ConnectorError> {
    let name = connector.settings.name.as_str();
    let identifiers = acme_identifiers(name, &request.identifiers, &connector.solver)?;
    let deadline = connector.settings.order_deadline;
    let mut published = Published::default();
    let result = problem::scoped(async {
        let flow = run(connector, request, &identifiers, &mut published);
        match tokio::time::timeout(deadline, flow).await {
            Ok(result) => result,
            Err(_) => Err(ConnectorError::transient(
                name,
                format!("the order did not complete within its deadline of {deadline:?}"),
            )),
        }
    })
    .await;
    withdraw(connector, published).await;
    if let Err(e) = &result {
        tracing::warn!(connector = name, error = %e.message, class = ?e.class, "ACME order failed");
    }
    result
}

async fn run(
    connector: &AcmeConnector,
    request: &IssueRequest,
    identifiers: &[AcmeIdentifier],
    published: &mut Published,
) -> Result<Issued, ConnectorError> {
    let name = connector.settings.name.as_str();
    let started = Instant::now();
    let remaining = || {
        connector
            .settings
            .order_deadline
            .saturating_sub(started.elapsed())
    };
    let account = connector.account().await?;

    let saved = match request.idempotency_key.as_deref() {
        Some(key) => resume(connector, &account, key, identifiers).await?,
        None => None,
    };
    let mut order = match saved {
        Some(order) => order,
        None => {
            let order = place(connector, &account, request, identifiers).await?;
            if let Some(key) = request.idempotency_key.as_deref() {
                remember(connector, key, identifiers, order.url()).await;
            }
            order
        }
    };

    let policy = |left: Duration| {
        RetryPolicy::new()
            .initial_delay(Duration::from_millis(250))
            .backoff(1.5)
            .timeout(left)
    };
    let mut status = order.state().status;
    let mut finalized_earlier = false;
    if status == OrderStatus::Pending {
        let kind = match connector.solver {
            Solver::Http01(_) | Solver::Webroot(_) => ChallengeType::Http01,
            Solver::Dns01(_) => ChallengeType::Dns01,
        };
        let pending = publish(connector, &mut order, &kind, published).await?;
        if let Solver::Dns01(updater) = &connector.solver
            && !published.records.is_empty()
        {
            updater.wait_visible(&published.records).await?;
        }
        if pending > 0 {
            set_ready(name, &mut order, &kind).await?;
        }
        status = order
            .poll_ready(&policy(remaining()))
            .await
            .map_err(|e| problem::map(name, "waiting for validation", e))?;
    }
    match status {
        OrderStatus::Ready => order
            .finalize_csr(&request.csr_der)
            .await
            .map_err(|e| problem::map(name, "finalizing the order", e))?,
        // Finalized before a crash: only the certificate is missing.
        OrderStatus::Processing | OrderStatus::Valid => finalized_earlier = true,
        OrderStatus::Pending | OrderStatus::Invalid => {
            return Err(invalid_reason(name, &mut order).await);
        }
    }
    let chain_pem = order
        .poll_certificate(&policy(remaining()))
        .await
        .map_err(|e| problem::map(name, "fetching the certificate", e))?;
    if let Some(key) = request.idempotency_key.as_deref() {
        // The saved order stays until the caller has recorded the
        // certificate (`Connector::recorded`): a crash before that fetches
        // this certificate again rather than ordering another.
        // Finalized by an earlier attempt, perhaps with another CSR: a
        // certificate for a key the caller no longer holds is no use.
        if finalized_earlier && !carries_csr_key(&chain_pem, &request.csr_der) {
            forget(connector, key).await;
            return Err(ConnectorError::transient(
                name,
                "the saved order had been finalized with another key; it is forgotten \
                 and the next attempt places a new order (pass the same CSR on every retry)",
            ));
        }
    }
    let reference = order.state().certificate.clone();
    tracing::info!(connector = name, certificate = ?reference, "certificate issued");
    Ok(Issued::new(chain_pem, reference))
}

/// Whether the chain's leaf certifies the public key of `csr_der`.
fn carries_csr_key(chain_pem: &str, csr_der: &[u8]) -> bool {
    let leaf_key = openssl::x509::X509::from_pem(chain_pem.as_bytes()).and_then(|c| c.public_key());
    let csr_key = openssl::x509::X509Req::from_der(csr_der).and_then(|r| r.public_key());
    match (leaf_key, csr_key) {
        (Ok(leaf), Ok(csr)) => leaf.public_eq(&csr),
        _ => false,
    }
}

/// Places a new order for `identifiers`, with the profile and, when the CA
/// offers ARI, the certificate it replaces.
async fn place(
    connector: &AcmeConnector,
    account: &Account,
    request: &IssueRequest,
    identifiers: &[AcmeIdentifier],
) -> Result<Order, ConnectorError> {
    let name = connector.settings.name.as_str();
    let profile = request
        .profile
        .as_deref()
        .or(connector.settings.profile.as_deref());
    let new_order = || {
        let order = NewOrder::new(identifiers);
        match profile {
            Some(profile) => order.profile(profile),
            None => order,
        }
    };
    let replaces = request.replaces.as_deref().and_then(ari::certificate_id);
    // `instant-acme` retries a `badNonce` twice with the nonce the refusal
    // carried; a CA that keeps refusing nonces (pebble rejects 5% on
    // purpose) gets a few more fresh tries here before the renewal backs
    // off. Safe: a refused nonce means the CA did not act on the request.
    let mut tries = 0;
    let created = loop {
        let created = match replaces.clone() {
            Some(id) => match account.new_order(&new_order().replaces(id)).await {
                // The CA offers no ARI: order without `replaces`.
                Err(instant_acme::Error::Unsupported(_)) => account.new_order(&new_order()).await,
                other => other,
            },
            None => account.new_order(&new_order()).await,
        };
        match created {
            Err(instant_acme::Error::Api(problem))
                if tries < 3
                    && problem.r#type.as_deref() == Some("urn:ietf:params:acme:error:badNonce") =>
            {
                tries += 1;
            }
            other => break other,
        }
    };
    created.map_err(|e| problem::map(name, "creating the order", e))
}

/// The key under which the order of the request with `idempotency_key` is
/// kept in the connector's state: a hash, so any key fits the store's short
/// names and none collides with the account's.
pub fn order_state_key(idempotency_key: &str) -> String {
    let digest = openssl::sha::sha256(idempotency_key.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("acme_order_{hex}")
}

/// What is kept of an order in flight.
#[derive(Serialize, Deserialize)]
struct SavedOrder {
    /// The directory the order was placed at (another CA knows nothing of it).
    directory_url: String,
    /// The names ordered, as `dns:example.com` / `ip:192.0.2.1`.
    identifiers: Vec<String>,
    /// The order's URL at the CA.
    order_url: String,
}

fn identifier_texts(identifiers: &[AcmeIdentifier]) -> Vec<String> {
    let mut texts: Vec<String> = identifiers
        .iter()
        .map(|identifier| match identifier {
            AcmeIdentifier::Dns(name) => format!("dns:{name}"),
            AcmeIdentifier::Ip(ip) => format!("ip:{ip}"),
            other => format!("{other:?}"),
        })
        .collect();
    texts.sort();
    texts
}

/// Saves the order's URL under the request's key. A failure is logged, not
/// returned: the order exists now, and giving up would only make the retry
/// place another one for certain rather than after a crash.
async fn remember(connector: &AcmeConnector, key: &str, identifiers: &[AcmeIdentifier], url: &str) {
    let saved = SavedOrder {
        directory_url: connector.settings.directory_url.clone(),
        identifiers: identifier_texts(identifiers),
        order_url: url.to_owned(),
    };
    let result = match serde_json::to_vec(&saved) {
        Ok(bytes) => connector.state.save(&order_state_key(key), &bytes).await,
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = result {
        tracing::warn!(
            connector = connector.settings.name.as_str(),
            order = url,
            error = %e,
            "cannot save the order in flight; a retry after a crash would place a new one"
        );
    }
}

/// Removes the saved order of `key`; a failure is logged (the next call
/// with that key would fetch the same certificate again, no new order).
pub(super) async fn forget(connector: &AcmeConnector, key: &str) {
    if let Err(e) = connector.state.remove(&order_state_key(key)).await {
        tracing::warn!(
            connector = connector.settings.name.as_str(),
            error = %e,
            "cannot remove the saved order"
        );
    }
}

/// The order saved under `key`, as the CA has it now, if it can still be
/// continued; otherwise the entry is forgotten and `None` returned.
async fn resume(
    connector: &AcmeConnector,
    account: &Account,
    key: &str,
    identifiers: &[AcmeIdentifier],
) -> Result<Option<Order>, ConnectorError> {
    let name = connector.settings.name.as_str();
    let bytes = connector
        .state
        .load(&order_state_key(key))
        .await
        .map_err(|e| ConnectorError::transient(name, format!("loading the saved order: {e}")))?;
    let Some(bytes) = bytes.filter(|b| !b.is_empty()) else {
        return Ok(None);
    };
    let saved: SavedOrder = match serde_json::from_slice(&bytes) {
        Ok(saved) => saved,
        Err(e) => {
            tracing::warn!(connector = name, error = %e, "the saved order is unreadable; ordering anew");
            forget(connector, key).await;
            return Ok(None);
        }
    };
    if saved.directory_url != connector.settings.directory_url
        || saved.identifiers != identifier_texts(identifiers)
    {
        tracing::info!(
            connector = name,
            order = saved.order_url.as_str(),
            "the saved order was for another CA or other names; ordering anew"
        );
        forget(connector, key).await;
        return Ok(None);
    }
    match account.order(saved.order_url.clone()).await {
        Ok(mut order) => {
            let status = order.state().status;
            if status == OrderStatus::Invalid {
                tracing::info!(
                    connector = name,
                    order = saved.order_url.as_str(),
                    "the saved order is invalid; ordering anew"
                );
                forget(connector, key).await;
                return Ok(None);
            }
            tracing::info!(
                connector = name,
                order = saved.order_url.as_str(),
                status = ?status,
                "continuing the saved order"
            );
            Ok(Some(order))
        }
        Err(instant_acme::Error::Api(problem)) if matches!(problem.status, Some(404 | 410)) => {
            tracing::info!(
                connector = name,
                order = saved.order_url.as_str(),
                "the CA no longer knows the saved order; ordering anew"
            );
            forget(connector, key).await;
            Ok(None)
        }
        Err(e) => Err(problem::map(name, "loading the saved order", e)),
    }
}

/// Publishes a response for every pending authorization; returns how many.
async fn publish(
    connector: &AcmeConnector,
    order: &mut Order,
    kind: &ChallengeType,
    published: &mut Published,
) -> Result<usize, ConnectorError> {
    let name = connector.settings.name.as_str();
    let mut pending = 0;
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz.map_err(|e| problem::map(name, "fetching authorizations", e))?;
        let identifier = authz.identifier().to_string();
        match authz.status {
            // Validated earlier (authorization reuse): nothing to prove.
            AuthorizationStatus::Valid => continue,
            AuthorizationStatus::Pending => {}
            status => {
                return Err(ConnectorError::permanent(
                    name,
                    format!("the authorization for {identifier} is {status:?}"),
                ));
            }
        }
        let Some(challenge) = authz.challenge(kind.clone()) else {
            return Err(ConnectorError::permanent(
                name,
                format!("the CA offers no {kind:?} challenge for {identifier}"),
            ));
        };
        let key_authorization = challenge.key_authorization();
        match &connector.solver {
            Solver::Http01(responder) => {
                if published.lease.is_none() {
                    let lease = responder
                        .lease()
                        .await
                        .map_err(|e| ConnectorError::transient(name, e))?;
                    published.lease = Some(lease);
                }
                if let Some(lease) = published.lease.as_mut() {
                    lease.publish(&challenge.token, key_authorization.as_str());
                }
            }
            Solver::Webroot(webroot) => {
                let path =
                    http01::write_token(webroot, &challenge.token, key_authorization.as_str())
                        .await
                        .map_err(|e| {
                            ConnectorError::transient(name, format!("HTTP-01 webroot: {e}"))
                        })?;
                published.files.push(path);
            }
            Solver::Dns01(updater) => {
                let AcmeIdentifier::Dns(domain) = challenge.identifier().identifier else {
                    return Err(ConnectorError::permanent(
                        name,
                        format!("DNS-01 cannot validate {identifier}"),
                    ));
                };
                let record = updater.record(domain, key_authorization.dns_value())?;
                updater.add(&record).await?;
                published.records.push(record);
            }
        }
        pending += 1;
    }
    Ok(pending)
}

/// Tells the CA that every pending challenge can be validated.
async fn set_ready(
    name: &str,
    order: &mut Order,
    kind: &ChallengeType,
) -> Result<(), ConnectorError> {
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz.map_err(|e| problem::map(name, "fetching authorizations", e))?;
        if authz.status != AuthorizationStatus::Pending {
            continue;
        }
        // A challenge already validating (told before a crash) is left be.
        if let Some(mut challenge) = authz.challenge(kind.clone())
            && challenge.status == ChallengeStatus::Pending
        {
            challenge
                .set_ready()
                .await
                .map_err(|e| problem::map(name, "starting validation", e))?;
        }
    }
    Ok(())
}

/// Why the CA declared the order invalid: the first failed challenge.
async fn invalid_reason(name: &str, order: &mut Order) -> ConnectorError {
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authz)) = authorizations.next().await {
        let identifier = authz.identifier().to_string();
        let Ok(state) = authz.refresh().await else {
            continue;
        };
        if let Some(problem) = state.challenges.iter().find_map(|c| c.error.clone()) {
            return problem::map(
                name,
                &format!("validating {identifier}"),
                instant_acme::Error::Api(problem),
            );
        }
    }
    match order.state().error.clone() {
        Some(problem) => problem::map(name, "the order", instant_acme::Error::Api(problem)),
        None => ConnectorError::transient(name, "the CA declared the order invalid"),
    }
}

/// Withdraws every published response; failures are logged, not returned,
/// since the certificate (or the order's own error) matters more.
async fn withdraw(connector: &AcmeConnector, published: Published) {
    drop(published.lease);
    for path in &published.files {
        http01::remove_token(path).await;
    }
    if let Solver::Dns01(updater) = &connector.solver {
        for record in &published.records {
            if let Err(e) = updater.remove(record).await {
                tracing::warn!(
                    connector = connector.settings.name.as_str(),
                    record = %record.name,
                    error = %e.message,
                    "cannot remove DNS-01 record"
                );
            }
        }
    }
}

/// The request's identifiers as ACME ones, refusing what the configured
/// challenge cannot prove before anything is sent to the CA.
fn acme_identifiers(
    name: &str,
    identifiers: &[Identifier],
    solver: &Solver,
) -> Result<Vec<AcmeIdentifier>, ConnectorError> {
    if identifiers.is_empty() {
        return Err(ConnectorError::permanent(name, "no identifier to order"));
    }
    let dns01 = matches!(solver, Solver::Dns01(_));
    identifiers
        .iter()
        .map(|identifier| match identifier {
            Identifier::Dns(domain) if domain.starts_with("*.") && !dns01 => {
                Err(ConnectorError::permanent(
                    name,
                    format!("wildcard {domain} needs the DNS-01 challenge"),
                ))
            }
            Identifier::Dns(domain) => Ok(AcmeIdentifier::Dns(domain.to_ascii_lowercase())),
            Identifier::Ip(ip) if dns01 => Err(ConnectorError::permanent(
                name,
                format!("IP address {ip} cannot be validated through DNS-01"),
            )),
            Identifier::Ip(ip) => Ok(AcmeIdentifier::Ip(*ip)),
            Identifier::Email(address) => Err(ConnectorError::permanent(
                name,
                format!("ACME does not issue for e-mail address {address}"),
            )),
        })
        .collect()
}
