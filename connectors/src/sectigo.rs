//! The Sectigo connector: certificates enrolled through Sectigo Certificate
//! Manager's SSL REST API (`/api/ssl/v1` under the account's SCM address,
//! `https://cert-manager.com` or a regional one).
//!
//! SCM is an order-then-poll CA. [`Connector::issue`] enrolls the CSR
//! (`POST /api/ssl/v1/enroll` with `orgId`, `csr`, `certType`, `term`,
//! `subjAltNames`, `comments` and `externalRequester`), keeps the `sslId`
//! it answers in the connector's [`StateStore`] under the request's
//! idempotency key before anything else happens (`crate::rest::OrderBook`),
//! then looks at `GET /api/ssl/v1/{sslId}` every
//! [`SectigoSettings::poll_interval`] until its status is `Issued`, and
//! collects the certificate (`GET /api/ssl/v1/collect/{sslId}/x509CO`, the
//! leaf) and its issuers (`…/x509IO`), ordered into a chain. While SCM is
//! still processing, collect answers HTTP 400 with `{"code": 0,
//! "description": "Being processed by Sectigo"}` (also seen: `-1400`, "The
//! request is being processed by Sectigo", and `-183`, "Certificate is not
//! collectable"); those count as "not yet". An enrollment still pending
//! after [`SectigoSettings::max_wait`] is a transient error saying so; the
//! sslId stays kept and the next call with the same key continues it,
//! until [`Connector::recorded`] forgets it. A declined or rejected one is
//! forgotten and a permanent error. That flow is `enroll`.
//!
//! Every request carries the `login`, `password` and `customerUri` headers.
//! SCM's errors (`{"code": -16, "description": "Unknown user"}`) are quoted
//! in messages; 401/403 and other 4xx are permanent.
//!
//! Revoking needs the certificate's sslId: the connector keeps it (under
//! the serial) when it collects a certificate, and otherwise asks the list
//! filtered by serial number (`GET /api/ssl/v1?serialNumber=`, the serial
//! as uppercase hex). A certificate already `Revoked` is refused; otherwise
//! `POST /api/ssl/v1/revoke/{sslId}` carries the reason code and text.
//! [`Connector::health`] lists the SSL certificate types the account offers
//! (`GET /api/ssl/v1/types`) and checks the configured one is among them.
//! Listing is in `listing`. SCM offers no renewal information through this
//! API, so `renewal_info` is the default `None`.

mod enroll;
mod listing;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;

pub use crate::{AddressGuard, Secret};

use crate::rest::{self, Answer, HttpSettings, OrderBook, RestClient};
use crate::{
    Connector, ConnectorError, ErrorClass, IssueRequest, Issued, IssuedPage, RevocationReason,
    RevokeRequest, StateStore,
};

/// SCM's main address (regional accounts have their own).
pub const DEFAULT_BASE_URL: &str = "https://cert-manager.com";

/// Collect's codes for "not issued yet".
const NOT_READY_CODES: [i64; 3] = [0, -1400, -183];

/// Settings of one Sectigo connector (`[[connector]] type = "sectigo"`).
#[derive(Debug, Clone)]
pub struct SectigoSettings {
    /// The connector's configured name, used in errors and logs.
    pub name: String,
    /// The SCM address ([`DEFAULT_BASE_URL`]); `/api/ssl/v1` is appended.
    pub base_url: String,
    /// The API account's login (the `login` header).
    pub login: String,
    /// The API account's password (the `password` header).
    pub password: Secret,
    /// The customer URI (the `customerUri` header), the last part of the
    /// account's SCM web address.
    pub customer_uri: String,
    /// The organization (or department) id certificates are enrolled under.
    pub org_id: u64,
    /// The SSL certificate type (profile) id enrolled unless a request names
    /// its own as a number.
    pub cert_type: u64,
    /// The term, in days, of every enrollment; it must be one the
    /// certificate type offers (a request's validity is not applied: SCM
    /// offers a few fixed terms per type).
    pub term_days: u32,
    /// E-mail address(es) put in `externalRequester`, for SCM's
    /// notifications and as the certificate's requester.
    pub external_requester: Option<String>,
    /// How long to wait between two looks at a pending enrollment.
    pub poll_interval: Duration,
    /// How long one `issue` call polls before giving up with a transient
    /// error (the enrollment is kept and continued by the next call).
    pub max_wait: Duration,
    /// Timeout of each HTTP request, connection and body included.
    pub request_timeout: Duration,
    /// Extra roots (PEM) trusted for SCM's TLS certificate (a proxy).
    pub ca_bundle_pem: Option<String>,
    /// Which addresses requests may connect to (the daemon's policy).
    pub address_guard: AddressGuard,
    /// How many certificates one page of [`Connector::list_issued`] reads.
    pub list_page_size: u32,
}

impl SectigoSettings {
    /// Settings for `login` of `customer_uri` at the main SCM address,
    /// enrolling `cert_type` under `org_id` for 365 days, a look every
    /// 15 s for up to 5 minutes, 30 s per request, pages of 100.
    pub fn new(
        name: impl Into<String>,
        customer_uri: impl Into<String>,
        login: impl Into<String>,
        password: Secret,
        org_id: u64,
        cert_type: u64,
    ) -> Self {
        Self {
            name: name.into(),
            base_url: DEFAULT_BASE_URL.into(),
            login: login.into(),
            password,
            customer_uri: customer_uri.into(),
            org_id,
            cert_type,
            term_days: 365,
            external_requester: None,
            poll_interval: Duration::from_secs(15),
            max_wait: Duration::from_secs(300),
            request_timeout: Duration::from_secs(30),
            ca_bundle_pem: None,
            address_guard: AddressGuard::allow_all(),
            list_page_size: 100,
        }
    }
}

/// A connector to one SCM account; cheap to share, safe for many
/// concurrent enrollments.
pub struct SectigoConnector {
    settings: SectigoSettings,
    http: RestClient,
    orders: OrderBook,
    state: Arc<dyn StateStore>,
}

impl std::fmt::Debug for SectigoConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SectigoConnector")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// SCM's `{"code": -16, "description": "…"}`.
#[derive(Debug, Deserialize)]
struct ScmError {
    code: i64,
    #[serde(default)]
    description: Option<String>,
}

fn scm_error(body: &[u8]) -> Option<ScmError> {
    serde_json::from_slice(body).ok()
}

/// SCM's error as one line.
fn scm_errors(body: &[u8]) -> Option<String> {
    let error = scm_error(body)?;
    Some(match error.description {
        Some(text) => format!("code {}: {text}", error.code),
        None => format!("code {}", error.code),
    })
}

/// A certificate's details (`GET /api/ssl/v1/{sslId}`), the fields used.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Details {
    #[serde(default)]
    status: String,
    #[serde(default)]
    requester: Option<String>,
    #[serde(default)]
    external_requester: Option<String>,
    #[serde(default)]
    org_id: Option<u64>,
}

impl Details {
    fn status(&self) -> String {
        self.status.to_ascii_lowercase()
    }

    /// Whether the enrollment ended without a certificate (or with one no
    /// longer to be had).
    fn is_final_refusal(&self) -> bool {
        matches!(
            self.status().as_str(),
            "rejected"
                | "declined"
                | "invalid"
                | "not enrolled"
                | "revoked"
                | "expired"
                | "replaced"
        )
    }
}

/// The key a collected certificate's sslId is kept under, by serial.
fn serial_key(serial: &str) -> String {
    format!("sectigo_serial_{serial}")
}

impl SectigoConnector {
    /// Builds a connector from `settings`, keeping enrollments in flight
    /// (and the sslIds of certificates it collected) in `state`; checks the
    /// settings without contacting SCM.
    pub fn new(
        settings: SectigoSettings,
        state: Arc<dyn StateStore>,
    ) -> Result<Self, ConnectorError> {
        let name = settings.name.clone();
        let refuse = |message: &str| ConnectorError::permanent(&name, message);
        if settings.login.is_empty()
            || settings.password.expose().is_empty()
            || settings.customer_uri.is_empty()
        {
            return Err(refuse("login, password and customer_uri must be set"));
        }
        if settings.org_id == 0 || settings.cert_type == 0 || settings.term_days == 0 {
            return Err(refuse("org_id, cert_type and term_days must be set"));
        }
        if settings.poll_interval.is_zero() || settings.list_page_size == 0 {
            return Err(refuse(
                "poll_interval and list_page_size must be above zero",
            ));
        }
        let http = HttpSettings {
            request_timeout: settings.request_timeout,
            ca_bundle_pem: settings.ca_bundle_pem.clone(),
            address_guard: settings.address_guard.clone(),
            ..HttpSettings::default()
        };
        let http = RestClient::new(&name, "Sectigo", &settings.base_url, &http)?
            .redacting(&settings.password);
        Ok(Self {
            orders: OrderBook::new(&name, "sectigo", state.clone()),
            settings,
            http,
            state,
        })
    }

    /// A request to `/api/ssl/v1/{segments…}` with the account's headers.
    fn request(&self, method: Method, segments: &[&str]) -> reqwest::RequestBuilder {
        let mut path = vec!["api", "ssl", "v1"];
        path.extend(segments);
        self.request_url(method, self.http.endpoint(&path))
    }

    fn request_url(&self, method: Method, url: reqwest::Url) -> reqwest::RequestBuilder {
        self.http
            .request(method, url)
            .header("login", &self.settings.login)
            .header("password", self.settings.password.expose())
            .header("customerUri", &self.settings.customer_uri)
    }

    /// SCM's refusal as an error quoting its code and description.
    fn refused(&self, answer: &Answer, doing: &str) -> ConnectorError {
        let mut error = self.http.refused(answer, doing, scm_errors(&answer.body));
        if matches!(
            answer.status,
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        ) || scm_error(&answer.body).is_some_and(|e| e.code == -16)
        {
            error.class = ErrorClass::Permanent;
            error
                .message
                .push_str(" — check the connector's login, password and customer_uri");
        }
        error
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

    /// The details of `ssl_id`; `None` when SCM does not know it.
    async fn details(&self, ssl_id: u64) -> Result<Option<Details>, ConnectorError> {
        let id = ssl_id.to_string();
        let doing = format!("reading Sectigo certificate {id}");
        let answer = self
            .http
            .send(self.request(Method::GET, &[&id]), &doing)
            .await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !answer.is_success() {
            return Err(self.refused(&answer, &doing));
        }
        self.http.decode(&answer, &doing).map(Some)
    }

    /// Collects `ssl_id` in `format`; `None` while SCM is still processing.
    async fn collect(&self, ssl_id: u64, format: &str) -> Result<Option<String>, ConnectorError> {
        let id = ssl_id.to_string();
        let doing = format!("collecting Sectigo certificate {id}");
        let answer = self
            .http
            .send(self.request(Method::GET, &["collect", &id, format]), &doing)
            .await?;
        if answer.is_success() {
            return Ok(Some(String::from_utf8_lossy(&answer.body).into_owned()));
        }
        if answer.status == StatusCode::BAD_REQUEST
            && scm_error(&answer.body).is_some_and(|e| NOT_READY_CODES.contains(&e.code))
        {
            return Ok(None);
        }
        Err(self.refused(&answer, &doing))
    }

    /// The sslId of the certificate with `serial`, kept or looked up.
    async fn ssl_id_of(&self, serial: &str) -> Result<Option<u64>, ConnectorError> {
        if let Ok(Some(bytes)) = self.state.load(&serial_key(serial)).await
            && let Some(id) = std::str::from_utf8(&bytes)
                .ok()
                .and_then(|t| t.parse().ok())
        {
            return Ok(Some(id));
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Listed {
            ssl_id: u64,
        }
        let mut url = self.http.endpoint(&["api", "ssl", "v1"]);
        url.query_pairs_mut()
            .append_pair("serialNumber", serial)
            .append_pair("size", "1");
        let found: Vec<Listed> = self
            .call(
                self.request_url(Method::GET, url),
                &format!("looking up certificate {serial}"),
            )
            .await?;
        Ok(found.first().map(|l| l.ssl_id))
    }
}

/// RFC 5280 reason text as SCM shows it.
fn reason_text(reason: RevocationReason) -> &'static str {
    match reason {
        RevocationReason::Unspecified => "unspecified",
        RevocationReason::KeyCompromise => "keyCompromise",
        RevocationReason::AffiliationChanged => "affiliationChanged",
        RevocationReason::Superseded => "superseded",
        RevocationReason::CessationOfOperation => "cessationOfOperation",
    }
}

#[async_trait]
impl Connector for SectigoConnector {
    fn name(&self) -> &str {
        &self.settings.name
    }

    async fn issue(&self, request: &IssueRequest) -> Result<Issued, ConnectorError> {
        enroll::issue(self, request).await
    }

    async fn recorded(&self, idempotency_key: &str) {
        self.orders.forget(idempotency_key).await;
    }

    async fn revoke(&self, request: &RevokeRequest) -> Result<(), ConnectorError> {
        let name = self.settings.name.as_str();
        let serial = rest::serial_hex(&request.certificate_der, "")
            .map_err(|e| ConnectorError::permanent(name, e))?
            .to_ascii_uppercase();
        let Some(ssl_id) = self.ssl_id_of(&serial).await? else {
            return Err(ConnectorError::permanent(
                name,
                format!("Sectigo has no certificate with serial {serial} in this account"),
            ));
        };
        match self.details(ssl_id).await? {
            Some(d) if d.status().as_str() == "revoked" => {
                return Err(ConnectorError::already_revoked(
                    name,
                    format!("certificate {serial} (sslId {ssl_id}) is already revoked at Sectigo"),
                ));
            }
            Some(_) => {}
            None => {
                return Err(ConnectorError::permanent(
                    name,
                    format!("Sectigo no longer knows certificate {serial} (sslId {ssl_id})"),
                ));
            }
        }
        let body = json!({
            "reasonCode": request.reason.code(),
            "reason": format!("Revoked by Certkeeper: {}", reason_text(request.reason)),
        });
        let id = ssl_id.to_string();
        let doing = format!("revoking certificate {serial}");
        let answer = self
            .http
            .send(
                self.request(Method::POST, &["revoke", &id]).json(&body),
                &doing,
            )
            .await?;
        if !answer.is_success() {
            return Err(self.refused(&answer, &doing));
        }
        tracing::info!(connector = name, serial = %serial, ssl_id, "revoked at Sectigo");
        Ok(())
    }

    async fn list_issued(
        &self,
        cursor: Option<&str>,
    ) -> Result<Option<IssuedPage>, ConnectorError> {
        listing::page(self, cursor).await.map(Some)
    }

    async fn health(&self) -> Result<(), ConnectorError> {
        #[derive(Deserialize)]
        struct CertType {
            id: u64,
        }
        let types: Vec<CertType> = self
            .call(
                self.request(Method::GET, &["types"]),
                "listing the account's SSL certificate types",
            )
            .await?;
        if !types.iter().any(|t| t.id == self.settings.cert_type) {
            return Err(ConnectorError::permanent(
                &self.settings.name,
                format!(
                    "the account offers no SSL certificate type {} (it offers {:?})",
                    self.settings.cert_type,
                    types.iter().map(|t| t.id).collect::<Vec<_>>()
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scm_errors_are_quoted() {
        assert_eq!(
            scm_errors(br#"{"code":-16,"description":"Unknown user"}"#).as_deref(),
            Some("code -16: Unknown user")
        );
        assert_eq!(scm_errors(b"<html>"), None);
    }

    #[test]
    fn the_password_never_shows() {
        let settings = SectigoSettings::new("s", "acme", "api", Secret::new("pw-987"), 1, 2);
        assert!(!format!("{settings:?}").contains("pw-987"));
        let state: Arc<dyn StateStore> = Arc::new(crate::MemoryState::default());
        let connector = SectigoConnector::new(settings, state).unwrap();
        assert!(!format!("{connector:?}").contains("pw-987"));
    }
}
