//! The Vault connector: certificates from a HashiCorp Vault or OpenBao PKI
//! secrets engine.
//!
//! Vault signs at once, so there is no order to keep: [`Connector::issue`]
//! sends the request's CSR to `POST /v1/{mount}/sign/{role}` with the
//! names (`common_name`, `alt_names`, `ip_sans`) and the requested `ttl`,
//! and returns the certificate with the mount's `ca_chain`. The role decides
//! what may be signed; a name it refuses is a permanent error carrying
//! Vault's own words. Revoking looks the certificate up by serial
//! (`GET /v1/{mount}/cert/{serial}`), refuses one already revoked (Vault
//! itself would answer a second revocation with success) and posts the
//! serial to `/v1/{mount}/revoke`.
//!
//! Authentication (`auth`) is a fixed token or an AppRole login
//! (`POST /v1/auth/{mount}/login`), whose token is renewed by logging in
//! again before its lease runs out, and at once when Vault answers 403 to
//! it. With a [`VaultSettings::namespace`] every request carries
//! `X-Vault-Namespace` (Vault Enterprise and OpenBao namespaces).
//! [`Connector::health`] asks `/v1/sys/health` (a standby counts as up) and
//! then `auth/token/lookup-self`, so a wrong token shows there first.
//!
//! Listing (`listing`) walks `LIST /v1/{mount}/certs/detailed` (OpenBao;
//! plain `LIST /v1/{mount}/certs` on Vault) a page at a time and reads only
//! the certificates issued since the previous walk; see that module for how
//! the cursor makes that hold although Vault lists by serial, not by time.
//! Vault records no requester or organisation for a certificate, so records
//! carry only the serial as their reference. Vault has no renewal
//! information: `renewal_info` is the default `None`.
//!
//! All HTTP goes through [`crate::rest`]: timeouts, capped bodies, statuses
//! mapped to error classes, and the token and secret ID scrubbed from every
//! message.

mod auth;
mod listing;

use std::time::Duration;

use async_trait::async_trait;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

pub use crate::{AddressGuard, Secret};

use crate::rest::{self, Answer, HttpSettings, RestClient};
use crate::{
    Connector, ConnectorError, ErrorClass, Identifier, IssueRequest, Issued, IssuedPage,
    RevokeRequest,
};

use self::auth::TokenSlot;

/// How the connector authenticates to Vault.
#[derive(Debug, Clone)]
pub enum VaultAuth {
    /// A token given by the operator (a periodic or long-lived token).
    Token {
        /// The token (`hvs.…` / `s.…`).
        token: Secret,
    },
    /// An AppRole login; the token it yields is renewed by logging in again.
    AppRole {
        /// Where the AppRole auth method is mounted (`approle`).
        mount: String,
        /// The role's RoleID.
        role_id: String,
        /// The role's SecretID.
        secret_id: Secret,
    },
}

/// Settings of one Vault connector (`[[connector]] type = "vault"`).
#[derive(Debug, Clone)]
pub struct VaultSettings {
    /// The connector's configured name, used in errors and logs.
    pub name: String,
    /// Vault's address, e.g. `https://vault.example.com:8200`. Must be
    /// `https`, except on a loopback address.
    pub base_url: String,
    /// Where the PKI secrets engine is mounted (`pki`, `pki_int`).
    pub mount: String,
    /// The PKI role that signs (`/v1/{mount}/sign/{role}`).
    pub role: String,
    /// How to authenticate.
    pub auth: VaultAuth,
    /// The namespace requests go to (`X-Vault-Namespace`), if any.
    pub namespace: Option<String>,
    /// The TTL asked for when the request names no validity; `None` leaves
    /// it to the role.
    pub ttl: Option<Duration>,
    /// Timeout of each HTTP request, connection and body included.
    pub request_timeout: Duration,
    /// Extra roots (PEM) trusted for Vault's TLS certificate.
    pub ca_bundle_pem: Option<String>,
    /// Which addresses requests may connect to (the daemon's policy).
    pub address_guard: AddressGuard,
    /// How many serials one page of [`Connector::list_issued`] reads.
    pub list_page_size: u32,
    /// How far before the previous listing's start a certificate's
    /// notBefore may lie and still be looked at again: at least the role's
    /// `not_before_duration` (30 s by default) plus clock skew.
    pub list_overlap: Duration,
}

impl VaultSettings {
    /// Settings for `role` at `base_url`, mount `pki`, no namespace, the
    /// role's TTL, 30 s per request, pages of 100 and a 10-minute overlap.
    pub fn new(
        name: impl Into<String>,
        base_url: impl Into<String>,
        role: impl Into<String>,
        auth: VaultAuth,
    ) -> Self {
        Self {
            name: name.into(),
            base_url: base_url.into(),
            mount: "pki".into(),
            role: role.into(),
            auth,
            namespace: None,
            ttl: None,
            request_timeout: Duration::from_secs(30),
            ca_bundle_pem: None,
            address_guard: AddressGuard::allow_all(),
            list_page_size: 100,
            list_overlap: Duration::from_secs(600),
        }
    }
}

/// A connector to one Vault PKI mount; cheap to share, safe for many
/// concurrent requests.
#[derive(Debug)]
pub struct VaultConnector {
    settings: VaultSettings,
    http: RestClient,
    token: TokenSlot,
}

impl VaultConnector {
    /// Builds a connector from `settings`; checks them without contacting
    /// Vault (the first operation logs in).
    pub fn new(settings: VaultSettings) -> Result<Self, ConnectorError> {
        let name = settings.name.clone();
        let refuse = |message: &str| ConnectorError::permanent(&name, message);
        if settings.mount.trim_matches('/').is_empty() || settings.role.is_empty() {
            return Err(refuse("mount and role must not be empty"));
        }
        if settings.list_page_size == 0 {
            return Err(refuse("list_page_size must be at least 1"));
        }
        let http = HttpSettings {
            request_timeout: settings.request_timeout,
            ca_bundle_pem: settings.ca_bundle_pem.clone(),
            address_guard: settings.address_guard.clone(),
            ..HttpSettings::default()
        };
        let mut client = RestClient::new(&name, "Vault", &settings.base_url, &http)?;
        client = match &settings.auth {
            VaultAuth::Token { token } => {
                if token.expose().is_empty() {
                    return Err(refuse("the Vault token is empty"));
                }
                client.redacting(token)
            }
            VaultAuth::AppRole {
                mount,
                role_id,
                secret_id,
            } => {
                if mount.is_empty() || role_id.is_empty() || secret_id.expose().is_empty() {
                    return Err(refuse("AppRole mount, role_id and secret_id must be set"));
                }
                client.redacting(secret_id)
            }
        };
        Ok(Self {
            token: TokenSlot::new(settings.auth.clone()),
            settings,
            http: client,
        })
    }

    /// The mount's path segments (`pki_int` or `team/pki` alike).
    fn mount(&self) -> Vec<&str> {
        self.settings
            .mount
            .split('/')
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// `/v1/{mount}/{rest…}` as an URL.
    fn mount_url(&self, rest: &[&str]) -> reqwest::Url {
        let mut segments = vec!["v1"];
        segments.extend(self.mount());
        segments.extend(rest);
        self.http.endpoint(&segments)
    }

    /// A request with the namespace header, without a token.
    fn unauthenticated(&self, method: Method, url: reqwest::Url) -> reqwest::RequestBuilder {
        let request = self.http.request(method, url);
        match &self.settings.namespace {
            Some(ns) if !ns.is_empty() => request.header("X-Vault-Namespace", ns),
            _ => request,
        }
    }

    /// Sends an authenticated request and returns Vault's answer, whatever
    /// its status. A 403 to an AppRole token logs in again and retries
    /// once: the token may have expired or been revoked meanwhile.
    async fn call(
        &self,
        method: Method,
        url: reqwest::Url,
        body: Option<&Value>,
        doing: &str,
    ) -> Result<Answer, ConnectorError> {
        let mut relogged = false;
        loop {
            let token = self.token.get(self).await?;
            let mut request = self
                .unauthenticated(method.clone(), url.clone())
                .header("X-Vault-Token", token.expose());
            if let Some(body) = body {
                request = request.json(body);
            }
            let answer = self.http.send(request, doing).await?;
            if answer.status == reqwest::StatusCode::FORBIDDEN
                && self.token.can_login()
                && !relogged
            {
                tracing::info!(connector = %self.settings.name, "Vault refused the AppRole token; logging in again");
                self.token.invalidate(&token).await;
                relogged = true;
                continue;
            }
            return Ok(answer);
        }
    }

    /// [`call`](Self::call) expecting success and Vault's `data` object.
    async fn call_data<T: for<'de> Deserialize<'de>>(
        &self,
        method: Method,
        url: reqwest::Url,
        body: Option<&Value>,
        doing: &str,
    ) -> Result<T, ConnectorError> {
        let answer = self.call(method, url, body, doing).await?;
        if !answer.is_success() {
            return Err(self.refused(&answer, doing));
        }
        let envelope: Envelope<T> = self.http.decode(&answer, doing)?;
        Ok(envelope.data)
    }

    /// Vault's refusal as an error with its `errors` text, and a hint on
    /// what to check when it is about credentials.
    fn refused(&self, answer: &Answer, doing: &str) -> ConnectorError {
        let mut error = self.http.refused(answer, doing, vault_errors(&answer.body));
        if answer.status == reqwest::StatusCode::FORBIDDEN {
            error.message.push_str(
                " — check the connector's Vault token or AppRole credentials and its policy",
            );
        }
        error
    }
}

/// Vault's answer envelope: what matters is under `data`.
#[derive(Deserialize)]
struct Envelope<T> {
    data: T,
}

/// Vault's `{"errors": ["…"]}` as one line, if it sent any.
pub(crate) fn vault_errors(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<String>,
    }
    let errors: Errors = serde_json::from_slice(body).ok()?;
    let text = errors.errors.join("; ");
    (!text.trim().is_empty()).then_some(text)
}

/// What `sign` answers under `data`.
#[derive(Deserialize)]
struct Signed {
    certificate: String,
    #[serde(default)]
    issuing_ca: Option<String>,
    #[serde(default)]
    ca_chain: Option<Vec<String>>,
    #[serde(default)]
    serial_number: Option<String>,
}

/// What `cert/{serial}` answers under `data`.
#[derive(Deserialize)]
pub(crate) struct StoredCert {
    pub(crate) certificate: String,
    #[serde(default)]
    pub(crate) revocation_time: i64,
}

/// The request's names as Vault's sign parameters: the first DNS name as
/// the common name, the other names and e-mail addresses as `alt_names`,
/// the addresses as `ip_sans`.
fn sign_parameters(identifiers: &[Identifier]) -> (Option<String>, Vec<String>, Vec<String>) {
    let mut common_name = None;
    let mut alt_names = Vec::new();
    let mut ip_sans = Vec::new();
    for identifier in identifiers {
        match identifier {
            Identifier::Dns(name) if common_name.is_none() => common_name = Some(name.clone()),
            Identifier::Dns(name) | Identifier::Email(name) => alt_names.push(name.clone()),
            Identifier::Ip(ip) => ip_sans.push(ip.to_string()),
        }
    }
    (common_name, alt_names, ip_sans)
}

#[async_trait]
impl Connector for VaultConnector {
    fn name(&self) -> &str {
        &self.settings.name
    }

    async fn issue(&self, request: &IssueRequest) -> Result<Issued, ConnectorError> {
        let name = self.settings.name.as_str();
        if request.identifiers.is_empty() {
            return Err(ConnectorError::permanent(name, "no identifier to sign for"));
        }
        let csr =
            rest::csr_pem(&request.csr_der).map_err(|e| ConnectorError::permanent(name, e))?;
        let (common_name, alt_names, ip_sans) = sign_parameters(&request.identifiers);
        let mut body = json!({ "csr": csr, "format": "pem" });
        if let Some(cn) = common_name {
            body["common_name"] = json!(cn);
        }
        if !alt_names.is_empty() {
            body["alt_names"] = json!(alt_names.join(","));
        }
        if !ip_sans.is_empty() {
            body["ip_sans"] = json!(ip_sans.join(","));
        }
        if let Some(ttl) = request.validity.or(self.settings.ttl) {
            body["ttl"] = json!(format!("{}s", ttl.as_secs().max(1)));
        }
        let url = self.mount_url(&["sign", &self.settings.role]);
        let signed: Signed = self
            .call_data(Method::POST, url, Some(&body), "signing the CSR")
            .await?;
        let mut chain = vec![signed.certificate.trim().to_owned()];
        let issuers = match signed.ca_chain {
            Some(chain) if !chain.is_empty() => chain,
            _ => signed.issuing_ca.into_iter().collect(),
        };
        for issuer in issuers {
            let issuer = issuer.trim().to_owned();
            if !issuer.is_empty() && !chain.contains(&issuer) {
                chain.push(issuer);
            }
        }
        let mut chain_pem = chain.join("\n");
        chain_pem.push('\n');
        tracing::info!(connector = name, serial = ?signed.serial_number, "Vault signed a certificate");
        Ok(Issued::new(chain_pem, signed.serial_number))
    }

    async fn revoke(&self, request: &RevokeRequest) -> Result<(), ConnectorError> {
        let name = self.settings.name.as_str();
        let serial = rest::serial_hex(&request.certificate_der, ":")
            .map_err(|e| ConnectorError::permanent(name, e))?;
        let doing = format!("looking up certificate {serial}");
        let answer = self
            .call(
                Method::GET,
                self.mount_url(&["cert", &serial]),
                None,
                &doing,
            )
            .await?;
        if answer.status == reqwest::StatusCode::NOT_FOUND {
            return Err(ConnectorError::permanent(
                name,
                format!(
                    "Vault's mount `{}` holds no certificate with serial {serial}",
                    self.settings.mount
                ),
            ));
        }
        if !answer.is_success() {
            return Err(self.refused(&answer, &doing));
        }
        let stored: Envelope<StoredCert> = self.http.decode(&answer, &doing)?;
        let same = openssl::x509::X509::from_pem(stored.data.certificate.as_bytes())
            .and_then(|c| c.to_der())
            .is_ok_and(|der| der == request.certificate_der);
        if !same {
            return Err(ConnectorError::permanent(
                name,
                format!("the certificate with serial {serial} at Vault is another certificate"),
            ));
        }
        if stored.data.revocation_time > 0 {
            return Err(ConnectorError::already_revoked(
                name,
                format!("certificate {serial} is already revoked at Vault"),
            ));
        }
        // Vault's revocation takes no reason: the CRL entry carries none.
        let body = json!({ "serial_number": serial });
        let _: Value = self
            .call_data(
                Method::POST,
                self.mount_url(&["revoke"]),
                Some(&body),
                &format!("revoking certificate {serial}"),
            )
            .await?;
        tracing::info!(connector = name, serial = %serial, reason = ?request.reason, "revoked at Vault");
        Ok(())
    }

    async fn list_issued(
        &self,
        cursor: Option<&str>,
    ) -> Result<Option<IssuedPage>, ConnectorError> {
        listing::page(self, cursor).await.map(Some)
    }

    async fn health(&self) -> Result<(), ConnectorError> {
        let mut url = self.http.endpoint(&["v1", "sys", "health"]);
        url.query_pairs_mut()
            .append_pair("standbyok", "true")
            .append_pair("perfstandbyok", "true");
        let doing = "checking Vault's health";
        let answer = self
            .http
            .send(self.unauthenticated(Method::GET, url), doing)
            .await?;
        if !answer.is_success() {
            let mut error = self.refused(&answer, doing);
            if answer.status.as_u16() == 503 {
                error.message.push_str(" (Vault is sealed)");
                error.class = ErrorClass::Transient;
            }
            return Err(error);
        }
        let url = self.http.endpoint(&["v1", "auth", "token", "lookup-self"]);
        let _: Value = self
            .call_data(Method::GET, url, None, "looking up the connector's token")
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_sign_parameters() {
        let ids = vec![
            Identifier::Dns("a.example".into()),
            Identifier::Ip("10.0.0.1".parse().unwrap()),
            Identifier::Dns("b.example".into()),
        ];
        let (cn, alt, ip) = sign_parameters(&ids);
        assert_eq!(cn.as_deref(), Some("a.example"));
        assert_eq!(alt, vec!["b.example"]);
        assert_eq!(ip, vec!["10.0.0.1"]);
    }

    #[test]
    fn vault_error_documents_are_read() {
        assert_eq!(
            vault_errors(br#"{"errors":["permission denied"]}"#).as_deref(),
            Some("permission denied")
        );
        assert_eq!(vault_errors(br#"{"errors":[]}"#), None);
        assert_eq!(vault_errors(b"<html>"), None);
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let settings = VaultSettings::new(
            "vault",
            "https://vault.example:8200",
            "web",
            VaultAuth::AppRole {
                mount: "approle".into(),
                role_id: "role-1".into(),
                secret_id: Secret::new("top-secret-id"),
            },
        );
        let shown = format!("{settings:?}");
        assert!(!shown.contains("top-secret-id"), "{shown}");
        let connector = VaultConnector::new(settings).unwrap();
        assert!(!format!("{connector:?}").contains("top-secret-id"));
    }
}
