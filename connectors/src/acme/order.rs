//! One ACME order, from `newOrder` to the certificate chain.
//!
//! The flow (RFC 8555 section 7.4): create the order (with the profile and,
//! when the CA offers ARI, the certificate it `replaces`), publish a response
//! for every pending authorization, wait until DNS records are visible, tell
//! the CA the challenges are ready, poll until the order is ready, finalize
//! with the caller's CSR and poll for the certificate. The whole flow runs
//! under the order deadline; whatever was published is withdrawn afterwards,
//! whether the order succeeded, failed or ran out of time.

use std::path::PathBuf;
use std::time::Duration;

use instant_acme::{
    AuthorizationStatus, ChallengeType, Identifier as AcmeIdentifier, NewOrder, Order, OrderStatus,
    RetryPolicy,
};
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
    let created = match replaces {
        Some(id) => match account.new_order(&new_order().replaces(id)).await {
            // The CA offers no ARI: order without `replaces`.
            Err(instant_acme::Error::Unsupported(_)) => account.new_order(&new_order()).await,
            other => other,
        },
        None => account.new_order(&new_order()).await,
    };
    let mut order = created.map_err(|e| problem::map(name, "creating the order", e))?;

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

    let policy = |left: Duration| {
        RetryPolicy::new()
            .initial_delay(Duration::from_millis(250))
            .backoff(1.5)
            .timeout(left)
    };
    let status = order
        .poll_ready(&policy(remaining()))
        .await
        .map_err(|e| problem::map(name, "waiting for validation", e))?;
    if status != OrderStatus::Ready {
        return Err(invalid_reason(name, &mut order).await);
    }
    order
        .finalize_csr(&request.csr_der)
        .await
        .map_err(|e| problem::map(name, "finalizing the order", e))?;
    let chain_pem = order
        .poll_certificate(&policy(remaining()))
        .await
        .map_err(|e| problem::map(name, "fetching the certificate", e))?;
    let reference = order.state().certificate.clone();
    tracing::info!(connector = name, certificate = ?reference, "certificate issued");
    Ok(Issued::new(chain_pem, reference))
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
        if let Some(mut challenge) = authz.challenge(kind.clone()) {
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
