//! The DigiCert connector: certificates ordered through DigiCert
//! CertCentral's Services API v2 (`https://www.digicert.com/services/v2`).
//!
//! CertCentral is an order-then-poll CA. [`Connector::issue`] places an
//! order (`POST /order/certificate/{product_name_id}` with the CSR, the
//! names, the signature hash, the organization and the validity), keeps its
//! id in the connector's [`StateStore`] under the request's idempotency key
//! before anything else happens (`crate::rest::OrderBook`), and polls
//! `GET /order/certificate/{order_id}` every
//! [`DigicertSettings::poll_interval`] until its status is `issued`. Then
//! it downloads `GET /certificate/{certificate_id}/download/format/pem_all`
//! (leaf, intermediates, root). An order still `pending` or
//! `needs_approval` after [`DigicertSettings::max_wait`] is a transient
//! error saying so; the order stays kept, and the next call with the same
//! key continues polling it rather than ordering again, until
//! [`Connector::recorded`] forgets it. A `rejected` or `canceled` order is
//! forgotten and a permanent error. That flow is `order`.
//!
//! Every request carries the API key in `X-DC-DEVKEY`. DigiCert's errors
//! (`{"errors": [{"code", "message"}]}`) are quoted in messages; 401/403
//! (a wrong key) and 400 (a refused order) are permanent, 429 (rate limit)
//! waits for `Retry-After` when DigiCert sends one.
//!
//! Revoking finds the order by the certificate's serial number (order info
//! accepts the serial of the order's primary certificate in place of the
//! order id), refuses one already `revoked`, and submits
//! `PUT /certificate/{certificate_id}/revoke` with the reason; with
//! [`DigicertSettings::skip_approval`] (an admin key) DigiCert revokes at
//! once (204), otherwise the request waits for an administrator (201).
//! [`Connector::health`] reads the configured organization
//! (`GET /organization/{id}`), which checks the key and the organization.
//! Listing is in `listing`. DigiCert offers no renewal information through
//! this API, so `renewal_info` is the default `None`.

mod listing;
mod order;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

pub use crate::{AddressGuard, Secret};

use crate::rest::{self, Answer, HttpSettings, OrderBook, RestClient};
use crate::{
    Connector, ConnectorError, IssueRequest, Issued, IssuedPage, RevocationReason, RevokeRequest,
    StateStore,
};

/// DigiCert's production Services API.
pub const DEFAULT_BASE_URL: &str = "https://www.digicert.com/services/v2";

/// Settings of one DigiCert connector (`[[connector]] type = "digicert"`).
#[derive(Debug, Clone)]
pub struct DigicertSettings {
    /// The connector's configured name, used in errors and logs.
    pub name: String,
    /// The Services API's base URL ([`DEFAULT_BASE_URL`]).
    pub base_url: String,
    /// The CertCentral API key, sent as `X-DC-DEVKEY`.
    pub api_key: Secret,
    /// The product ordered (`ssl_basic`, `ssl_securesite_flex`, …) unless a
    /// request names its own profile.
    pub product_name_id: String,
    /// The CertCentral organization the certificates are ordered for.
    pub organization_id: u64,
    /// The certificate's signature hash (`sha256`, `sha384`, `sha512`).
    pub signature_hash: String,
    /// Validity asked for when the request names none, in days; `None`
    /// orders one year (`order_validity.years = 1`), which DigiCert caps at
    /// the current maximum for public TLS.
    pub validity_days: Option<u32>,
    /// Revoke without waiting for an administrator's approval (the API key
    /// must have admin privileges).
    pub skip_approval: bool,
    /// How long to wait between two looks at a pending order.
    pub poll_interval: Duration,
    /// How long one `issue` call polls before giving up with a transient
    /// error (the order is kept and continued by the next call).
    pub max_wait: Duration,
    /// Timeout of each HTTP request, connection and body included.
    pub request_timeout: Duration,
    /// Extra roots (PEM) trusted for the API's TLS certificate (a proxy).
    pub ca_bundle_pem: Option<String>,
    /// Which addresses requests may connect to (the daemon's policy).
    pub address_guard: AddressGuard,
    /// How many orders one page of [`Connector::list_issued`] reads (at
    /// most 1000).
    pub list_page_size: u32,
}

impl DigicertSettings {
    /// Settings ordering `product_name_id` for `organization_id` with
    /// `api_key` from the production API: SHA-256, one year, revocations
    /// awaiting approval, a look every 15 s for up to 5 minutes, 30 s per
    /// request, pages of 100.
    pub fn new(
        name: impl Into<String>,
        api_key: Secret,
        product_name_id: impl Into<String>,
        organization_id: u64,
    ) -> Self {
        Self {
            name: name.into(),
            base_url: DEFAULT_BASE_URL.into(),
            api_key,
            product_name_id: product_name_id.into(),
            organization_id,
            signature_hash: "sha256".into(),
            validity_days: None,
            skip_approval: false,
            poll_interval: Duration::from_secs(15),
            max_wait: Duration::from_secs(300),
            request_timeout: Duration::from_secs(30),
            ca_bundle_pem: None,
            address_guard: AddressGuard::allow_all(),
            list_page_size: 100,
        }
    }
}

/// A connector to one CertCentral account; cheap to share, safe for many
/// concurrent orders.
#[derive(Debug)]
pub struct DigicertConnector {
    settings: DigicertSettings,
    http: RestClient,
    orders: OrderBook,
}

/// Order info (`GET /order/certificate/{id}`), the fields used.
#[derive(Debug, Deserialize)]
struct OrderInfo {
    id: u64,
    #[serde(default)]
    status: String,
    #[serde(default)]
    certificate: Option<CertificateInfo>,
    #[serde(default)]
    organization: Option<Organization>,
    #[serde(default)]
    user: Option<User>,
    #[serde(default)]
    requests: Vec<OrderRequest>,
}

#[derive(Debug, Deserialize)]
struct CertificateInfo {
    #[serde(default)]
    id: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct Organization {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct User {
    #[serde(default)]
    email: Option<String>,
}

#[derive(Debug, Deserialize)]
struct OrderRequest {
    #[serde(default)]
    requester: Option<User>,
}

impl OrderInfo {
    /// Whether the order can still become `issued`.
    fn is_pending(&self) -> bool {
        matches!(
            self.status.as_str(),
            "pending" | "needs_approval" | "reissue_pending" | "waiting_pickup" | "processing"
        )
    }

    /// Who ordered it: the order's user, else the first request's requester.
    fn requester(&self) -> Option<String> {
        self.user
            .as_ref()
            .and_then(|u| u.email.clone())
            .or_else(|| {
                self.requests
                    .iter()
                    .find_map(|r| r.requester.as_ref().and_then(|u| u.email.clone()))
            })
    }
}

/// DigiCert's `{"errors": [{"code", "message"}]}` as one line.
fn digicert_errors(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<ErrorItem>,
    }
    #[derive(Deserialize)]
    struct ErrorItem {
        #[serde(default)]
        code: Option<String>,
        #[serde(default)]
        message: Option<String>,
    }
    let errors: Errors = serde_json::from_slice(body).ok()?;
    let text = errors
        .errors
        .iter()
        .map(|e| match (&e.code, &e.message) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(one), None) | (None, Some(one)) => one.clone(),
            (None, None) => String::new(),
        })
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    (!text.is_empty()).then_some(text)
}

/// DigiCert's name for a revocation reason.
fn reason_name(reason: RevocationReason) -> &'static str {
    match reason {
        RevocationReason::Unspecified => "unspecified",
        RevocationReason::KeyCompromise => "key_compromise",
        RevocationReason::AffiliationChanged => "affiliation_changed",
        RevocationReason::Superseded => "superseded",
        RevocationReason::CessationOfOperation => "cessation_of_operation",
    }
}

impl DigicertConnector {
    /// Builds a connector from `settings`, keeping orders in flight in
    /// `state`; checks the settings without contacting DigiCert.
    pub fn new(
        settings: DigicertSettings,
        state: Arc<dyn StateStore>,
    ) -> Result<Self, ConnectorError> {
        let name = settings.name.clone();
        let refuse = |message: &str| ConnectorError::permanent(&name, message);
        if settings.api_key.expose().is_empty() {
            return Err(refuse("the DigiCert API key is empty"));
        }
        if settings.product_name_id.is_empty() || settings.organization_id == 0 {
            return Err(refuse("product_name_id and organization_id must be set"));
        }
        if settings.poll_interval.is_zero() {
            return Err(refuse("poll_interval must be longer than zero"));
        }
        if !(1..=1000).contains(&settings.list_page_size) {
            return Err(refuse("list_page_size must be between 1 and 1000"));
        }
        let http = HttpSettings {
            request_timeout: settings.request_timeout,
            ca_bundle_pem: settings.ca_bundle_pem.clone(),
            address_guard: settings.address_guard.clone(),
            ..HttpSettings::default()
        };
        let http = RestClient::new(&name, "DigiCert", &settings.base_url, &http)?
            .redacting(&settings.api_key);
        Ok(Self {
            orders: OrderBook::new(&name, "digicert", state),
            settings,
            http,
        })
    }

    /// A request with the API key.
    fn request(&self, method: Method, segments: &[&str]) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.http.endpoint(segments))
            .header("X-DC-DEVKEY", self.settings.api_key.expose())
    }

    /// Sends and expects success, decoding the JSON answer.
    async fn call<T: for<'de> Deserialize<'de>>(
        &self,
        request: reqwest::RequestBuilder,
        doing: &str,
    ) -> Result<T, ConnectorError> {
        let answer = self.http.send(request, doing).await?;
        if !answer.is_success() {
            return Err(self.refused(&answer, doing));
        }
        self.http.decode(&answer, doing)
    }

    /// DigiCert's refusal as an error quoting its `errors`.
    fn refused(&self, answer: &Answer, doing: &str) -> ConnectorError {
        let mut error = self
            .http
            .refused(answer, doing, digicert_errors(&answer.body));
        if matches!(
            answer.status,
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        ) {
            error
                .message
                .push_str(" — check the connector's DigiCert API key");
        }
        error
    }

    /// The order `id` (an order id, or a certificate serial number).
    async fn order_info(&self, id: &str) -> Result<Option<OrderInfo>, ConnectorError> {
        let doing = format!("reading DigiCert order {id}");
        let answer = self
            .http
            .send(
                self.request(Method::GET, &["order", "certificate", id]),
                &doing,
            )
            .await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !answer.is_success() {
            return Err(self.refused(&answer, &doing));
        }
        self.http.decode(&answer, &doing).map(Some)
    }

    /// The certificate `certificate_id` with its chain, PEM (`pem_all`).
    async fn download(&self, certificate_id: u64) -> Result<String, ConnectorError> {
        let id = certificate_id.to_string();
        let doing = format!("downloading DigiCert certificate {id}");
        let request = self.request(
            Method::GET,
            &["certificate", &id, "download", "format", "pem_all"],
        );
        let answer = self.http.send(request, &doing).await?;
        if !answer.is_success() {
            return Err(self.refused(&answer, &doing));
        }
        let text = String::from_utf8_lossy(&answer.body).into_owned();
        if !openssl::x509::X509::stack_from_pem(text.as_bytes()).is_ok_and(|s| !s.is_empty()) {
            return Err(self.http.error(
                crate::ErrorClass::Permanent,
                format!(
                    "{doing}: the answer holds no PEM certificate: {:?}",
                    answer.snippet()
                ),
            ));
        }
        Ok(text)
    }
}

#[async_trait]
impl Connector for DigicertConnector {
    fn name(&self) -> &str {
        &self.settings.name
    }

    async fn issue(&self, request: &IssueRequest) -> Result<Issued, ConnectorError> {
        order::issue(self, request).await
    }

    async fn recorded(&self, idempotency_key: &str) {
        self.orders.forget(idempotency_key).await;
    }

    async fn revoke(&self, request: &RevokeRequest) -> Result<(), ConnectorError> {
        let name = self.settings.name.as_str();
        let serial = rest::serial_hex(&request.certificate_der, "")
            .map_err(|e| ConnectorError::permanent(name, e))?
            .to_ascii_uppercase();
        let Some(info) = self.order_info(&serial).await? else {
            return Err(ConnectorError::permanent(
                name,
                format!("DigiCert has no order whose certificate has serial {serial}"),
            ));
        };
        if info.status == "revoked" {
            return Err(ConnectorError::already_revoked(
                name,
                format!(
                    "certificate {serial} (order {}) is already revoked at DigiCert",
                    info.id
                ),
            ));
        }
        let certificate_id = info
            .certificate
            .as_ref()
            .and_then(|c| c.id)
            .map_or_else(|| serial.clone(), |id| id.to_string());
        let body = json!({
            "revocation_reason": reason_name(request.reason),
            "skip_approval": self.settings.skip_approval,
            "comments": format!("Revoked by Certkeeper ({})", reason_name(request.reason)),
        });
        let doing = format!("revoking certificate {serial}");
        let answer = self
            .http
            .send(
                self.request(Method::PUT, &["certificate", &certificate_id, "revoke"])
                    .json(&body),
                &doing,
            )
            .await?;
        if !answer.is_success() {
            return Err(self.refused(&answer, &doing));
        }
        if answer.status == StatusCode::CREATED {
            tracing::info!(connector = name, serial = %serial, "DigiCert revocation request awaits an administrator's approval");
        } else {
            tracing::info!(connector = name, serial = %serial, "revoked at DigiCert");
        }
        Ok(())
    }

    async fn list_issued(
        &self,
        cursor: Option<&str>,
    ) -> Result<Option<IssuedPage>, ConnectorError> {
        listing::page(self, cursor).await.map(Some)
    }

    async fn health(&self) -> Result<(), ConnectorError> {
        let id = self.settings.organization_id.to_string();
        let _: Value = self
            .call(
                self.request(Method::GET, &["organization", &id]),
                "reading the configured organization",
            )
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digicert_errors_are_quoted() {
        let body =
            br#"{"errors":[{"code":"invalid_dns_name","message":"Bad name."},{"code":"x"}]}"#;
        assert_eq!(
            digicert_errors(body).as_deref(),
            Some("invalid_dns_name: Bad name.; x")
        );
        assert_eq!(digicert_errors(b"nope"), None);
    }

    #[test]
    fn the_api_key_never_shows() {
        let settings = DigicertSettings::new("dc", Secret::new("dc-key-123"), "ssl_basic", 7);
        assert!(!format!("{settings:?}").contains("dc-key-123"));
        let state: Arc<dyn StateStore> = Arc::new(crate::MemoryState::default());
        let connector = DigicertConnector::new(settings, state).unwrap();
        assert!(!format!("{connector:?}").contains("dc-key-123"));
    }
}
