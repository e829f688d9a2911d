//! The AWS Private CA connector (ACM PCA, API version 2017-08-22): issues
//! and revokes certificates through one private CA of an AWS account.
//!
//! - [`sigv4`]: AWS Signature Version 4, checked against AWS's test suite;
//! - [`client`]: the JSON 1.1 protocol (`POST /`, `X-Amz-Target:
//!   ACMPrivateCA.<Operation>`), with timeouts, a capped answer and the
//!   mapping of AWS error codes to [`ErrorClass`](crate::ErrorClass);
//! - [`order`]: one issuance, from `IssueCertificate` to the certificate.
//!
//! Issuing is order-then-poll: `IssueCertificate` answers a certificate
//! ARN at once and `GetCertificate` answers `RequestInProgressException`
//! until the CA has signed. With an idempotency key the ARN is saved in the
//! connector's [`StateStore`] before polling starts, so a retry (or another
//! daemon after a crash) fetches that certificate instead of ordering a
//! second one, until [`Connector::recorded`]. AWS's own `IdempotencyToken`
//! (derived from the key and the CSR) covers the gap between the call and
//! the save, for as long as AWS keeps tokens (minutes).
//!
//! Revoking sends the certificate's serial (colon-separated hex, as `openssl
//! x509 -text` prints it and AWS's examples show) with the RFC 5280 reason.
//! The connector remembers the serials it revoked (in the state store) and
//! answers a repeat as already revoked without calling AWS; AWS itself
//! answers a repeat with `RequestAlreadyProcessedException`, read the same
//! way.
//!
//! `health` checks that `DescribeCertificateAuthority` says `ACTIVE`.
//! [`Connector::list_issued`] answers `None`: AWS Private CA has no API that
//! lists the certificates a CA issued; the only record is the audit report
//! (`CreateCertificateAuthorityAuditReport`), written asynchronously to an
//! S3 bucket, which would need S3 access this connector does not have.
//! [`Connector::renewal_info`] answers `None` (no ARI); the scheduler uses
//! its own window.
//!
//! The daemon maps a `[[connector]] type = "aws_pca"` table onto
//! [`AwsPcaSettings`] and calls [`AwsPcaConnector::open`], which does not
//! touch the network.

pub mod client;
pub mod order;
pub mod sigv4;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use openssl::x509::X509;
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use crate::{
    AddressGuard, Connector, ConnectorError, ErrorClass, IssueRequest, Issued, RevocationReason,
    RevokeRequest, StateStore,
};

pub use crate::Secret;
pub use client::ApiFailure;
pub use sigv4::Credentials;

use client::ApiClient;

/// Settings of one AWS Private CA connector (`[[connector]] type = "aws_pca"`).
#[derive(Debug, Clone)]
pub struct AwsPcaSettings {
    /// The connector's configured name, used in errors and logs.
    pub name: String,
    /// ARN of the private CA that issues
    /// (`arn:aws:acm-pca:REGION:ACCOUNT:certificate-authority/ID`).
    pub certificate_authority_arn: String,
    /// The AWS region; the CA ARN's region when `None`.
    pub region: Option<String>,
    /// The access key id of the IAM identity that calls AWS.
    pub access_key_id: String,
    /// Its secret access key.
    pub secret_access_key: Secret,
    /// The session token of temporary (STS) credentials.
    pub session_token: Option<Secret>,
    /// The API endpoint; `https://acm-pca.REGION.amazonaws.com/` when
    /// `None`. Plain `http` is accepted only to a loopback address (a test
    /// server such as moto).
    pub endpoint: Option<String>,
    /// `SigningAlgorithm` of every issuance (`SHA256WITHRSA`,
    /// `SHA256WITHECDSA`, ...); when `None`, the one matching the CA key's
    /// algorithm, read once from `DescribeCertificateAuthority`.
    pub signing_algorithm: Option<String>,
    /// Certificate template ARN for requests that name no profile; when
    /// `None`, AWS's default (`EndEntityCertificate/V1`, server and client
    /// authentication) for server certificates and the matching
    /// `EndEntityClientAuthCertificate/V1` or `CodeSigningCertificate/V1`
    /// for the other usages. A request's profile names a template
    /// (`EndEntityServerAuthCertificate/V1`) or a template ARN.
    pub template_arn: Option<String>,
    /// Validity in days when the request asks for none.
    pub default_validity_days: u32,
    /// Timeout of each HTTP request, connection included.
    pub request_timeout: Duration,
    /// How long one `issue` waits for AWS to finish signing before giving
    /// up with a transient error (a retry with the same idempotency key
    /// continues waiting for the same certificate).
    pub issue_deadline: Duration,
    /// Pause between `GetCertificate` polls.
    pub poll_interval: Duration,
    /// Most bytes read of one answer.
    pub max_response_bytes: usize,
    /// Which addresses the endpoint may resolve to (the daemon's address
    /// policy); [`AddressGuard::allow_all`] by default.
    pub address_guard: AddressGuard,
}

impl AwsPcaSettings {
    /// Settings for the CA `certificate_authority_arn` with these
    /// credentials: region from the ARN, AWS's endpoint, 90-day default
    /// validity, 30 s per request, two minutes per issuance, polls every
    /// second, 1 MiB per answer.
    pub fn new(
        name: impl Into<String>,
        certificate_authority_arn: impl Into<String>,
        access_key_id: impl Into<String>,
        secret_access_key: Secret,
    ) -> Self {
        Self {
            name: name.into(),
            certificate_authority_arn: certificate_authority_arn.into(),
            region: None,
            access_key_id: access_key_id.into(),
            secret_access_key,
            session_token: None,
            endpoint: None,
            signing_algorithm: None,
            template_arn: None,
            default_validity_days: 90,
            request_timeout: Duration::from_secs(30),
            issue_deadline: Duration::from_secs(120),
            poll_interval: Duration::from_secs(1),
            max_response_bytes: 1024 * 1024,
            address_guard: AddressGuard::allow_all(),
        }
    }
}

/// The parts of a CA ARN the connector needs.
#[derive(Debug, Clone)]
struct CaArn {
    /// `aws`, `aws-cn`, `aws-us-gov`.
    partition: String,
    region: String,
}

fn parse_ca_arn(arn: &str) -> Result<CaArn, String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", partition, "acm-pca", region, account, resource]
            if !partition.is_empty()
                && !region.is_empty()
                && !account.is_empty()
                && resource.starts_with("certificate-authority/") =>
        {
            Ok(CaArn {
                partition: (*partition).to_owned(),
                region: (*region).to_owned(),
            })
        }
        _ => Err(format!(
            "certificate_authority_arn `{arn}` is not an ACM PCA CA ARN \
             (arn:aws:acm-pca:REGION:ACCOUNT:certificate-authority/ID)"
        )),
    }
}

/// A connector to one AWS private CA; cheap to share, safe for concurrent
/// issuances.
pub struct AwsPcaConnector {
    settings: AwsPcaSettings,
    partition: String,
    api: ApiClient,
    state: Arc<dyn StateStore>,
    signing_algorithm: OnceCell<String>,
}

impl fmt::Debug for AwsPcaConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsPcaConnector")
            .field("name", &self.settings.name)
            .field("ca", &self.settings.certificate_authority_arn)
            .finish_non_exhaustive()
    }
}

impl AwsPcaConnector {
    /// A connector from `settings`, keeping issuances in flight in `state`.
    /// Checks the settings (ARN, endpoint, durations) without calling AWS.
    pub fn open(
        settings: AwsPcaSettings,
        state: Arc<dyn StateStore>,
    ) -> Result<Self, ConnectorError> {
        let refuse = |message: String| ConnectorError::permanent(&settings.name, message);
        let arn = parse_ca_arn(&settings.certificate_authority_arn).map_err(refuse)?;
        if settings.access_key_id.is_empty() || settings.secret_access_key.expose().is_empty() {
            return Err(refuse(
                "access_key_id and secret_access_key must not be empty".into(),
            ));
        }
        if settings.request_timeout.is_zero()
            || settings.issue_deadline.is_zero()
            || settings.poll_interval.is_zero()
        {
            return Err(refuse(
                "request_timeout, issue_deadline and poll_interval must be longer than zero".into(),
            ));
        }
        if settings.default_validity_days == 0 {
            return Err(refuse("default_validity_days must be at least one".into()));
        }
        let region = settings.region.clone().unwrap_or(arn.region);
        let endpoint = settings
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://acm-pca.{region}.amazonaws.com/"));
        let api = ApiClient::new(
            &endpoint,
            &region,
            Credentials {
                access_key_id: settings.access_key_id.clone(),
                secret_access_key: settings.secret_access_key.clone(),
                session_token: settings.session_token.clone(),
            },
            settings.request_timeout,
            settings.max_response_bytes,
            &settings.address_guard,
        )
        .map_err(refuse)?;
        Ok(Self {
            partition: arn.partition,
            signing_algorithm: OnceCell::new(),
            settings,
            api,
            state,
        })
    }

    /// The settings in use.
    pub fn settings(&self) -> &AwsPcaSettings {
        &self.settings
    }

    /// Calls `operation` with `body`; a failure becomes the connector's
    /// error, prefixed with what was being done.
    pub(crate) async fn call(&self, operation: &str, body: Value) -> Result<Value, ApiFailure> {
        self.api.call(operation, &body).await
    }

    /// `failure` of `doing` as this connector's error.
    pub(crate) fn error(&self, doing: &str, failure: &ApiFailure) -> ConnectorError {
        ConnectorError::new(
            &self.settings.name,
            format!("{doing}: {failure}"),
            failure.class(),
        )
    }

    /// The CA's `DescribeCertificateAuthority` record.
    async fn describe(&self) -> Result<Value, ConnectorError> {
        let body = json!({"CertificateAuthorityArn": self.settings.certificate_authority_arn});
        let answer = self
            .call("DescribeCertificateAuthority", body)
            .await
            .map_err(|e| self.error("describing the CA", &e))?;
        Ok(answer
            .get("CertificateAuthority")
            .cloned()
            .unwrap_or(Value::Null))
    }

    /// The signing algorithm for issuances: configured, or matched to the
    /// CA's key algorithm.
    pub(crate) async fn signing_algorithm(&self) -> Result<&str, ConnectorError> {
        if let Some(configured) = &self.settings.signing_algorithm {
            return Ok(configured);
        }
        let algorithm =
            self.signing_algorithm
                .get_or_try_init(|| async {
                    let ca = self.describe().await?;
                    let key = ca
                        .pointer("/CertificateAuthorityConfiguration/KeyAlgorithm")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    signing_algorithm_for(key).map(str::to_owned).ok_or_else(|| {
                    ConnectorError::permanent(
                        &self.settings.name,
                        format!(
                            "the CA's key algorithm `{key}` has no known signing algorithm; \
                             set signing_algorithm"
                        ),
                    )
                })
                })
                .await?;
        Ok(algorithm)
    }

    /// The template ARN for `request`: its profile, the configured one, or
    /// the one matching its usage.
    pub(crate) fn template_arn(&self, request: &IssueRequest) -> Option<String> {
        let template = |name: &str| format!("arn:{}:acm-pca:::template/{name}", self.partition);
        if let Some(profile) = &request.profile {
            return Some(if profile.starts_with("arn:") {
                profile.clone()
            } else {
                template(profile)
            });
        }
        if let Some(configured) = &self.settings.template_arn {
            return Some(configured.clone());
        }
        match request.usage {
            crate::Usage::Server => None,
            crate::Usage::Client => Some(template("EndEntityClientAuthCertificate/V1")),
            crate::Usage::CodeSigning => Some(template("CodeSigningCertificate/V1")),
        }
    }

    /// The store, for [`order`].
    pub(crate) fn state(&self) -> &dyn StateStore {
        self.state.as_ref()
    }

    fn store_error(&self, doing: &str, error: String) -> ConnectorError {
        ConnectorError::transient(
            &self.settings.name,
            format!("{doing}: state store: {error}"),
        )
    }
}

/// The `SigningAlgorithm` matching a CA `KeyAlgorithm`.
fn signing_algorithm_for(key_algorithm: &str) -> Option<&'static str> {
    match key_algorithm {
        "RSA_2048" | "RSA_3072" | "RSA_4096" => Some("SHA256WITHRSA"),
        "EC_prime256v1" => Some("SHA256WITHECDSA"),
        "EC_secp384r1" => Some("SHA384WITHECDSA"),
        "EC_secp521r1" => Some("SHA512WITHECDSA"),
        "SM2" => Some("SM3WITHSM2"),
        _ => None,
    }
}

/// AWS's name for a revocation reason.
fn aws_reason(reason: RevocationReason) -> &'static str {
    match reason {
        RevocationReason::Unspecified => "UNSPECIFIED",
        RevocationReason::KeyCompromise => "KEY_COMPROMISE",
        RevocationReason::AffiliationChanged => "AFFILIATION_CHANGED",
        RevocationReason::Superseded => "SUPERSEDED",
        RevocationReason::CessationOfOperation => "CESSATION_OF_OPERATION",
    }
}

/// A serial as AWS takes it: colon-separated lowercase hex byte pairs.
fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[async_trait]
impl Connector for AwsPcaConnector {
    fn name(&self) -> &str {
        &self.settings.name
    }

    async fn issue(&self, request: &IssueRequest) -> Result<Issued, ConnectorError> {
        order::issue(self, request).await
    }

    async fn recorded(&self, idempotency_key: &str) {
        order::forget(self, idempotency_key).await;
    }

    async fn revoke(&self, request: &RevokeRequest) -> Result<(), ConnectorError> {
        let name = &self.settings.name;
        let cert = X509::from_der(&request.certificate_der).map_err(|_| {
            ConnectorError::permanent(name, "revoking: not a DER X.509 certificate")
        })?;
        let serial = cert
            .serial_number()
            .to_bn()
            .map_err(|e| ConnectorError::permanent(name, format!("revoking: serial: {e}")))?
            .to_vec();
        let serial = colon_hex(&serial);
        let key = format!("revoked/{}", serial.replace(':', ""));
        let known = self
            .state
            .load(&key)
            .await
            .map_err(|e| self.store_error("revoking", e))?;
        if known.is_some_and(|v| !v.is_empty()) {
            return Err(ConnectorError::already_revoked(
                name,
                format!("revoking: the certificate with serial {serial} is already revoked"),
            ));
        }
        let body = json!({
            "CertificateAuthorityArn": self.settings.certificate_authority_arn,
            "CertificateSerial": serial,
            "RevocationReason": aws_reason(request.reason),
        });
        let outcome = self.call("RevokeCertificate", body).await;
        let already = match &outcome {
            Ok(_) => false,
            Err(failure) if failure.code() == Some("RequestAlreadyProcessedException") => true,
            Err(failure) => return Err(self.error("revoking", failure)),
        };
        if let Err(e) = self.state.save(&key, b"1").await {
            // AWS has revoked it; only the shortcut for a repeat is lost.
            tracing::warn!(connector = %name, error = %e, "cannot record a revocation");
        }
        if already {
            return Err(ConnectorError::already_revoked(
                name,
                format!(
                    "revoking: AWS says the certificate with serial {serial} is already revoked"
                ),
            ));
        }
        tracing::info!(connector = %name, serial = %serial, "revoked a certificate");
        Ok(())
    }

    async fn health(&self) -> Result<(), ConnectorError> {
        let ca = self.describe().await?;
        let status = ca
            .get("Status")
            .and_then(Value::as_str)
            .unwrap_or("unknown");
        match status {
            "ACTIVE" => Ok(()),
            // Being set up: worth looking again later.
            "CREATING" | "PENDING_CERTIFICATE" => Err(ConnectorError::transient(
                &self.settings.name,
                format!("the CA is {status}, not yet ACTIVE"),
            )),
            _ => Err(ConnectorError::new(
                &self.settings.name,
                format!("the CA is {status}, not ACTIVE"),
                ErrorClass::Permanent,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> AwsPcaSettings {
        AwsPcaSettings::new(
            "pca",
            "arn:aws:acm-pca:eu-west-1:111122223333:certificate-authority/abc",
            "AKIDEXAMPLE",
            Secret::new("top-secret-key"),
        )
    }

    #[test]
    fn the_region_comes_from_the_arn_and_secrets_stay_hidden() {
        let state: Arc<dyn StateStore> = Arc::new(crate::MemoryState::default());
        let connector = AwsPcaConnector::open(settings(), state.clone()).unwrap();
        assert_eq!(connector.partition, "aws");
        let shown = format!("{:?} {:?}", connector, connector.settings());
        assert!(!shown.contains("top-secret-key"), "{shown}");

        let mut bad = settings();
        bad.certificate_authority_arn = "arn:aws:acm:eu-west-1:1:certificate/x".into();
        let err = AwsPcaConnector::open(bad, state).unwrap_err();
        assert!(err.message.contains("certificate_authority_arn"), "{err}");
    }

    #[test]
    fn serials_are_colon_hex_and_templates_follow_usage() {
        assert_eq!(colon_hex(&[0x0a, 0xff, 0x01]), "0a:ff:01");
        let state: Arc<dyn StateStore> = Arc::new(crate::MemoryState::default());
        let connector = AwsPcaConnector::open(settings(), state).unwrap();
        let mut request = IssueRequest::new(vec![], vec![]);
        assert_eq!(connector.template_arn(&request), None);
        request.usage = crate::Usage::Client;
        assert_eq!(
            connector.template_arn(&request).as_deref(),
            Some("arn:aws:acm-pca:::template/EndEntityClientAuthCertificate/V1")
        );
        request.profile = Some("EndEntityServerAuthCertificate/V1".into());
        assert_eq!(
            connector.template_arn(&request).as_deref(),
            Some("arn:aws:acm-pca:::template/EndEntityServerAuthCertificate/V1")
        );
        assert_eq!(
            signing_algorithm_for("EC_prime256v1"),
            Some("SHA256WITHECDSA")
        );
        assert_eq!(signing_algorithm_for("RSA_2048"), Some("SHA256WITHRSA"));
    }
}
