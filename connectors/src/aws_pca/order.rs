//! One issuance through AWS Private CA: `IssueCertificate`, then
//! `GetCertificate` until AWS has signed, then the chain.
//!
//! Under an idempotency key the certificate ARN AWS answered is saved in
//! the state store (`order/<sha256 of the key>`, with the CSR's digest)
//! before polling starts: a retry of the same renewal, in this daemon or
//! another after a crash, polls that ARN instead of issuing again. A
//! retry with another CSR drops the saved order, as the [`Connector`]
//! contract says. The order is forgotten once the caller has recorded the
//! certificate ([`forget`]), or when AWS reports that the issuance failed.
//!
//! [`Connector`]: crate::Connector

use std::time::Duration;

use base64::Engine as _;
use openssl::x509::{X509, X509Req};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::AwsPcaConnector;
use super::sigv4::sha256_hex;
use crate::{ConnectorError, IssueRequest, Issued};

/// What is kept of an issuance in flight.
#[derive(Debug, Serialize, Deserialize)]
struct Pending {
    /// The ARN `IssueCertificate` answered.
    certificate_arn: String,
    /// SHA-256 of the DER CSR it was issued for.
    csr_sha256: String,
}

/// The state-store key of the order kept under `idempotency_key`.
fn state_key(idempotency_key: &str) -> String {
    format!("order/{}", sha256_hex(idempotency_key.as_bytes()))
}

/// AWS's `IdempotencyToken` (at most 36 characters) for a key and CSR:
/// another CSR under the same key is another issuance.
pub(crate) fn idempotency_token(idempotency_key: &str, csr_sha256: &str) -> String {
    let mut token = sha256_hex(format!("{idempotency_key}\n{csr_sha256}").as_bytes());
    token.truncate(32);
    token
}

/// The validity AWS is asked for: whole days, at least one.
fn validity_days(connector: &AwsPcaConnector, validity: Option<Duration>) -> u64 {
    match validity {
        Some(validity) => validity.as_secs().div_ceil(86_400).max(1),
        None => u64::from(connector.settings.default_validity_days),
    }
}

/// Issues a certificate for `request`; see the [module documentation](self).
pub(crate) async fn issue(
    connector: &AwsPcaConnector,
    request: &IssueRequest,
) -> Result<Issued, ConnectorError> {
    let name = &connector.settings.name;
    let csr_pem = X509Req::from_der(&request.csr_der)
        .and_then(|csr| csr.to_pem())
        .map_err(|_| ConnectorError::permanent(name, "issuing: the CSR is not DER PKCS#10"))?;
    let csr_sha256 = sha256_hex(&request.csr_der);
    let key = request.idempotency_key.as_deref().map(state_key);

    let mut resumed = None;
    if let Some(key) = &key {
        let stored = connector
            .state()
            .load(key)
            .await
            .map_err(|e| connector.store_error("issuing", e))?;
        if let Some(bytes) = stored.filter(|b| !b.is_empty()) {
            match serde_json::from_slice::<Pending>(&bytes) {
                Ok(pending) if pending.csr_sha256 == csr_sha256 => {
                    tracing::info!(
                        connector = %name, certificate = %pending.certificate_arn,
                        "continuing an issuance already placed at AWS"
                    );
                    resumed = Some(pending.certificate_arn);
                }
                // Another CSR (a new key after a crash) or an unreadable
                // record: that order is dropped and a new one placed.
                _ => {}
            }
        }
    }

    let certificate_arn = match resumed {
        Some(arn) => arn,
        None => {
            let arn = place(connector, request, &csr_pem, &csr_sha256).await?;
            if let Some(key) = &key {
                let pending = Pending {
                    certificate_arn: arn.clone(),
                    csr_sha256: csr_sha256.clone(),
                };
                let bytes = serde_json::to_vec(&pending).map_err(|e| {
                    ConnectorError::permanent(name, format!("issuing: encoding the order: {e}"))
                })?;
                // AWS's idempotency token makes a quick retry get this ARN
                // back even though it could not be saved.
                connector
                    .state()
                    .save(key, &bytes)
                    .await
                    .map_err(|e| connector.store_error("issuing", e))?;
            }
            arn
        }
    };

    match poll(connector, &certificate_arn).await {
        Ok(issued) => Ok(issued),
        Err(Poll::Failed(error)) => {
            // That issuance is over: a retry must order afresh.
            if let Some(key) = &key
                && let Err(e) = connector.state().remove(key).await
            {
                tracing::warn!(connector = %name, error = %e, "cannot drop a failed order");
            }
            Err(error)
        }
        Err(Poll::Pending(error)) => Err(error),
    }
}

/// `IssueCertificate`: the new certificate's ARN.
async fn place(
    connector: &AwsPcaConnector,
    request: &IssueRequest,
    csr_pem: &[u8],
    csr_sha256: &str,
) -> Result<String, ConnectorError> {
    let settings = &connector.settings;
    let mut body = json!({
        "CertificateAuthorityArn": settings.certificate_authority_arn,
        // A blob in the JSON protocol is base64; the blob is the PEM text.
        "Csr": base64::engine::general_purpose::STANDARD.encode(csr_pem),
        "SigningAlgorithm": connector.signing_algorithm().await?,
        "Validity": {"Type": "DAYS", "Value": validity_days(connector, request.validity)},
    });
    if let Some(template) = connector.template_arn(request) {
        body["TemplateArn"] = json!(template);
    }
    if let Some(key) = &request.idempotency_key {
        body["IdempotencyToken"] = json!(idempotency_token(key, csr_sha256));
    }
    let answer = connector
        .call("IssueCertificate", body)
        .await
        .map_err(|e| connector.error("issuing", &e))?;
    answer
        .get("CertificateArn")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| {
            ConnectorError::permanent(
                &settings.name,
                "issuing: AWS answered IssueCertificate without a CertificateArn",
            )
        })
}

/// How polling failed.
enum Poll {
    /// The issuance failed or cannot be fetched: forget it.
    Failed(ConnectorError),
    /// Not done yet, or AWS unreachable: keep the order for a retry.
    Pending(ConnectorError),
}

/// `GetCertificate` until AWS stops answering `RequestInProgressException`,
/// up to the issue deadline.
async fn poll(connector: &AwsPcaConnector, certificate_arn: &str) -> Result<Issued, Poll> {
    let settings = &connector.settings;
    let deadline = Instant::now() + settings.issue_deadline;
    let body = json!({
        "CertificateAuthorityArn": settings.certificate_authority_arn,
        "CertificateArn": certificate_arn,
    });
    loop {
        match connector.call("GetCertificate", body.clone()).await {
            Ok(answer) => return chain(connector, certificate_arn, &answer).await,
            Err(failure) if failure.code() == Some("RequestInProgressException") => {
                if Instant::now() + settings.poll_interval > deadline {
                    return Err(Poll::Pending(ConnectorError::transient(
                        &settings.name,
                        format!(
                            "issuing: AWS has not finished {certificate_arn} within {:?}; \
                             a retry with the same idempotency key keeps waiting for it",
                            settings.issue_deadline
                        ),
                    )));
                }
                tokio::time::sleep(settings.poll_interval).await;
            }
            Err(failure) => {
                let error = connector.error("fetching the certificate", &failure);
                let failed = failure.code() == Some("RequestFailedException")
                    || error.class == crate::ErrorClass::Permanent;
                return Err(if failed {
                    Poll::Failed(error)
                } else {
                    Poll::Pending(error)
                });
            }
        }
    }
}

/// The leaf and its chain from `GetCertificate`'s answer, with the CA's own
/// certificate and chain when AWS sent none.
async fn chain(
    connector: &AwsPcaConnector,
    certificate_arn: &str,
    answer: &Value,
) -> Result<Issued, Poll> {
    let name = &connector.settings.name;
    let bad = |what: &str| {
        Poll::Failed(ConnectorError::permanent(
            name,
            format!("fetching the certificate: AWS answered {what}"),
        ))
    };
    let leaf = answer
        .get("Certificate")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("GetCertificate without a Certificate"))?;
    let mut text = leaf.trim().to_owned();
    text.push('\n');
    let chain = answer
        .get("CertificateChain")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if chain.trim().is_empty() {
        let body = json!({"CertificateAuthorityArn": connector.settings.certificate_authority_arn});
        let ca = connector
            .call("GetCertificateAuthorityCertificate", body)
            .await
            .map_err(|e| Poll::Pending(connector.error("fetching the CA certificate", &e)))?;
        for field in ["Certificate", "CertificateChain"] {
            if let Some(pem) = ca.get(field).and_then(Value::as_str) {
                text.push_str(pem.trim());
                text.push('\n');
            }
        }
    } else {
        text.push_str(chain.trim());
        text.push('\n');
    }
    let certs = X509::stack_from_pem(text.as_bytes())
        .map_err(|_| bad("a certificate or chain that is not PEM"))?;
    let mut chain_pem = String::new();
    for cert in &certs {
        let pem = cert
            .to_pem()
            .map_err(|_| bad("a certificate that cannot be re-encoded"))?;
        chain_pem.push_str(&String::from_utf8_lossy(&pem));
    }
    Ok(Issued::new(chain_pem, Some(certificate_arn.to_owned())))
}

/// Forgets the order kept under `idempotency_key` (the caller recorded it).
pub(crate) async fn forget(connector: &AwsPcaConnector, idempotency_key: &str) {
    if let Err(e) = connector.state().remove(&state_key(idempotency_key)).await {
        tracing::warn!(
            connector = %connector.settings.name, error = %e,
            "cannot forget an order the caller recorded"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_tokens_fit_aws_and_differ_per_csr() {
        let a = idempotency_token("renewal-1", "aa");
        assert_eq!(a.len(), 32);
        assert_eq!(a, idempotency_token("renewal-1", "aa"));
        assert_ne!(a, idempotency_token("renewal-1", "bb"));
        assert_ne!(a, idempotency_token("renewal-2", "aa"));
    }
}
