//! The small JSON-over-HTTPS client the vendor REST connectors share
//! (`vault`, `digicert`, `sectigo`).
//!
//! Every vendor connector needs the same few things from HTTP, done once
//! here so they behave alike:
//!
//! - a timeout on every request, connection and body included (reqwest's
//!   whole-request timeout), so a CA that accepts the connection and never
//!   answers is a transient error, not a renewal stuck forever;
//! - bodies read with a size cap ([`MAX_BODY_BYTES`] by default): a CA (or
//!   something pretending to be one) that sends 10 MB gets a clear error and
//!   never more than the cap held in memory;
//! - statuses mapped to [`ErrorClass`] one way ([`classify`]): 429 or 503
//!   with `Retry-After` is [`ErrorClass::RetryAfter`], other 5xx, 408, 429,
//!   connection failures and timeouts are transient, other 4xx (bad
//!   credentials, a refused request) permanent;
//! - error messages that name the host and the CA's own error text,
//!   truncated, with every registered secret scrubbed ([`RestClient::redacting`]);
//!   URLs never appear, since vendors put identifiers and sometimes keys in them;
//! - the operator's extra trusted roots (`ca_bundle_pem`) on top of the
//!   system's, no redirects followed, and names resolved through the
//!   daemon's [`AddressGuard`] when it hands one over (checked when
//!   connecting, as in `acme::client`).
//!
//! The vendor modules decode their own error documents (Vault's
//! `{"errors": [...]}`, DigiCert's `{"errors": [{"code", "message"}]}`,
//! Sectigo's `{"code", "description"}`) and pass the text to
//! [`RestClient::refused`].
//!
//! The order-then-poll CAs (DigiCert, Sectigo) also share [`OrderBook`]:
//! the order id kept in the connector's [`StateStore`] under the request's
//! idempotency key before polling, so a restart continues the order rather
//! than placing another. A few certificate helpers the vendor connectors
//! all need live here too ([`serial_hex`], [`csr_pem`], [`chain_from`],
//! [`carries_csr_key`]).

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use certkeeper_base::{AddressGuard, AddressRefused, ErrorClass, Secret};
use chrono::{DateTime, Utc};
use reqwest::header::{DATE, HeaderMap, RETRY_AFTER};
use reqwest::{Client, Method, RequestBuilder, StatusCode, Url};
use serde::de::DeserializeOwned;

use serde::{Deserialize, Serialize};

use crate::{ConnectorError, Identifier, StateStore};

/// The most a response body may hold before it is refused (1 MiB).
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// How much of a CA's error text goes into a message.
const MESSAGE_CHARS: usize = 300;

/// The HTTP side of a vendor connector's settings.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Timeout of each request to the CA, connection and body included.
    pub request_timeout: Duration,
    /// Extra roots (PEM) trusted for the CA's TLS certificate, on top of the
    /// system's, for a CA behind an internal TLS certificate.
    pub ca_bundle_pem: Option<String>,
    /// Which addresses requests may connect to, checked when connecting.
    pub address_guard: AddressGuard,
    /// The largest response body read, in bytes.
    pub max_body_bytes: usize,
}

impl Default for HttpSettings {
    /// 30 s per request, no extra roots, any address, 1 MiB bodies.
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            ca_bundle_pem: None,
            address_guard: AddressGuard::allow_all(),
            max_body_bytes: MAX_BODY_BYTES,
        }
    }
}

/// A complete answer from the CA: any status, its headers and its body,
/// read in full (and within the cap).
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body, at most the cap long.
    pub body: Vec<u8>,
    /// Whether the body was longer than the cap (only error answers are
    /// kept cut short; a successful one is refused instead).
    pub truncated: bool,
}

impl Answer {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }

    /// The `Retry-After` delay the answer asks for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        let value = self.headers.get(RETRY_AFTER)?.to_str().ok()?;
        certkeeper_base::parse_retry_after(value, Utc::now())
    }

    /// The server's clock, from the `Date` header.
    pub fn date(&self) -> Option<DateTime<Utc>> {
        let value = self.headers.get(DATE)?.to_str().ok()?;
        DateTime::parse_from_rfc2822(value)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }

    /// The body as text, control characters dropped, cut to a readable length.
    pub fn snippet(&self) -> String {
        snippet(&String::from_utf8_lossy(&self.body))
    }
}

/// A CA's text cut to a length that fits in an error message, control
/// characters dropped.
pub fn snippet(text: &str) -> String {
    let clean: String = text.chars().filter(|c| !c.is_control()).collect();
    let clean = clean.trim();
    if clean.chars().count() <= MESSAGE_CHARS {
        return clean.to_owned();
    }
    let cut: String = clean.chars().take(MESSAGE_CHARS).collect();
    format!("{cut}…")
}

/// The retry class of a refused request's status.
pub fn classify(status: StatusCode, retry_after: Option<Duration>) -> ErrorClass {
    match (status.as_u16(), retry_after) {
        (429 | 503, Some(delay)) => ErrorClass::RetryAfter(delay),
        // 408 and 429 are the client errors that say "later", not "never".
        (408 | 429, None) => ErrorClass::Transient,
        (s, _) if (500..600).contains(&s) => ErrorClass::Transient,
        _ => ErrorClass::Permanent,
    }
}

/// Sends one connector's requests to its CA and classifies what comes back.
#[derive(Clone)]
pub struct RestClient {
    client: Client,
    connector: String,
    /// What the CA is called in messages ("Vault", "DigiCert").
    peer: String,
    base: Url,
    max_body: usize,
    timeout: Duration,
    guard: AddressGuard,
    scrub: Vec<String>,
}

impl fmt::Debug for RestClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestClient")
            .field("connector", &self.connector)
            .field("peer", &self.peer)
            .field("host", &self.base.host_str())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RestClient {
    /// A client for connector `connector` talking to `peer` (the CA's name
    /// in messages) at `base_url`, which must be `https` (plain `http` only
    /// to a loopback address, for local test servers).
    pub fn new(
        connector: &str,
        peer: &str,
        base_url: &str,
        http: &HttpSettings,
    ) -> Result<Self, ConnectorError> {
        let refuse = |message: String| ConnectorError::permanent(connector, message);
        crate::acme::client::check_directory_url(base_url).map_err(refuse)?;
        let base = Url::parse(base_url).map_err(|e| refuse(format!("`{base_url}`: {e}")))?;
        if base.cannot_be_a_base() {
            return Err(refuse(format!("`{base_url}` cannot have a path")));
        }
        if http.request_timeout.is_zero() {
            return Err(refuse("request_timeout must be longer than zero".into()));
        }
        let mut builder = Client::builder()
            .timeout(http.request_timeout)
            .connect_timeout(http.request_timeout)
            // A CA that moved should be reconfigured, not silently followed
            // to a host the address guard never saw named.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("certkeeper/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &http.ca_bundle_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| refuse(format!("ca_bundle_pem: not PEM certificates: {e}")))?;
            if certs.is_empty() {
                return Err(refuse("ca_bundle_pem: no certificate in the PEM".into()));
            }
            builder = builder.tls_certs_merge(certs);
        }
        if !http.address_guard.allows_all() {
            builder = builder.dns_resolver(Arc::new(GuardedResolver(http.address_guard.clone())));
        }
        let client = builder.build().map_err(|e| {
            refuse(format!(
                "cannot set up the HTTP client: {}",
                e.without_url()
            ))
        })?;
        Ok(Self {
            client,
            connector: connector.to_owned(),
            peer: peer.to_owned(),
            base,
            max_body: http.max_body_bytes.max(1024),
            timeout: http.request_timeout,
            guard: http.address_guard.clone(),
            scrub: Vec::new(),
        })
    }

    /// The same client, scrubbing `secret` from every error message.
    pub fn redacting(mut self, secret: &Secret) -> Self {
        let value = secret.expose();
        if value.chars().count() >= crate::SCRUB_MIN_CHARS {
            self.scrub.push(value.to_owned());
            self.scrub.sort_by_key(|s| std::cmp::Reverse(s.len()));
            self.scrub.dedup();
        }
        self
    }

    /// The connector's name, as its errors carry it.
    pub fn connector(&self) -> &str {
        &self.connector
    }

    /// The base URL's path followed by `segments`, each percent-encoded.
    pub fn endpoint(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.set_query(None);
        url.set_fragment(None);
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// Starts a request (add headers and a body, then [`send`](Self::send) it).
    pub fn request(&self, method: Method, url: Url) -> RequestBuilder {
        self.client
            .request(method, url)
            .header(reqwest::header::ACCEPT, "application/json")
    }

    /// Sends a request and reads the whole answer within the cap. Only a
    /// failure to get an answer is an error here (connection, timeout, a
    /// refused address, a successful answer over the cap); any status is
    /// handed back for the caller to read. `doing` says what the request
    /// was for ("signing the CSR").
    pub async fn send(
        &self,
        request: RequestBuilder,
        doing: &str,
    ) -> Result<Answer, ConnectorError> {
        let request = request.build().map_err(|e| {
            self.error(
                ErrorClass::Permanent,
                format!("{doing}: cannot build the request: {}", e.without_url()),
            )
        })?;
        let host = request.url().host_str().unwrap_or("the CA").to_owned();
        // An IP-address host never reaches the resolver: check it here.
        self.guard
            .check_host(&host)
            .map_err(|refused| self.error(ErrorClass::Permanent, format!("{doing}: {refused}")))?;
        let mut response = self
            .client
            .execute(request)
            .await
            .map_err(|e| self.transport(doing, &host, &e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let too_big = |read: u64| {
            self.error(
                ErrorClass::Permanent,
                format!(
                    "{doing}: {} ({host}) sent an answer of more than {} bytes ({read} read); \
                     refusing to read more — is the URL right?",
                    self.peer, self.max_body
                ),
            )
        };
        let mut truncated = false;
        if response
            .content_length()
            .is_some_and(|len| len > self.max_body as u64)
        {
            if status.is_success() {
                return Err(too_big(0));
            }
            truncated = true;
        }
        let mut body = Vec::new();
        while !truncated {
            let chunk = response
                .chunk()
                .await
                .map_err(|e| self.transport(doing, &host, &e))?;
            let Some(chunk) = chunk else { break };
            if body.len() + chunk.len() > self.max_body {
                if status.is_success() {
                    return Err(too_big((body.len() + chunk.len()) as u64));
                }
                let room = self.max_body - body.len();
                body.extend_from_slice(&chunk[..room]);
                truncated = true;
                break;
            }
            body.extend_from_slice(&chunk);
        }
        tracing::debug!(connector = %self.connector, host = %host, status = %status, doing, "CA answered");
        Ok(Answer {
            status,
            headers,
            body,
            truncated,
        })
    }

    /// Decodes a successful answer's JSON body as `T`.
    pub fn decode<T: DeserializeOwned>(
        &self,
        answer: &Answer,
        doing: &str,
    ) -> Result<T, ConnectorError> {
        serde_json::from_slice(&answer.body).map_err(|e| {
            self.error(
                ErrorClass::Permanent,
                format!(
                    "{doing}: {} answered HTTP {} with something other than the expected JSON \
                     ({e}): {:?} — is the URL right?",
                    self.peer,
                    answer.status.as_u16(),
                    answer.snippet()
                ),
            )
        })
    }

    /// The error for an answer that refused the request: its class from the
    /// status (and `Retry-After`), its message naming the status and the
    /// CA's own error text (`ca_message`, or the body when there is none).
    pub fn refused(
        &self,
        answer: &Answer,
        doing: &str,
        ca_message: Option<String>,
    ) -> ConnectorError {
        let class = classify(answer.status, answer.retry_after());
        let text = ca_message
            .map(|m| snippet(&m))
            .unwrap_or_else(|| answer.snippet());
        let mut message = format!(
            "{doing}: {} answered HTTP {}",
            self.peer,
            answer.status.as_u16()
        );
        if let Some(reason) = answer.status.canonical_reason() {
            message.push(' ');
            message.push_str(reason);
        }
        if !text.is_empty() {
            message.push_str(": ");
            message.push_str(&text);
        }
        if let ErrorClass::RetryAfter(delay) = class {
            message.push_str(&format!(" (retry after {}s)", delay.as_secs()));
        }
        self.error(class, message)
    }

    /// An error of this connector, with every registered secret scrubbed.
    pub fn error(&self, class: ErrorClass, message: impl Into<String>) -> ConnectorError {
        let mut text = message.into();
        for secret in &self.scrub {
            text = text.replace(secret.as_str(), "[redacted]");
        }
        ConnectorError::new(&self.connector, text, class)
    }

    /// A request that got no answer: the guard's refusal (permanent when it
    /// denied the address), a timeout or a connection failure (transient).
    fn transport(&self, doing: &str, host: &str, e: &reqwest::Error) -> ConnectorError {
        if let Some(refused) = refusal(e) {
            let class = if refused.is_denied() {
                ErrorClass::Permanent
            } else {
                ErrorClass::Transient
            };
            return self.error(class, format!("{doing}: {refused}"));
        }
        let message = if e.is_timeout() {
            format!(
                "{doing}: no complete answer from {} ({host}) within {:?}",
                self.peer, self.timeout
            )
        } else if e.is_connect() {
            format!(
                "{doing}: cannot connect to {} ({host}): {}",
                self.peer,
                e.without_url_ref()
            )
        } else {
            format!(
                "{doing}: the request to {} ({host}) failed: {}",
                self.peer,
                e.without_url_ref()
            )
        };
        self.error(ErrorClass::Transient, message)
    }
}

/// `without_url` on a borrowed error: its text and causes, URL left out.
trait WithoutUrlRef {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrlRef for reqwest::Error {
    fn without_url_ref(&self) -> String {
        let mut text = self.to_string();
        if let Some(url) = self.url() {
            text = text
                .replace(&format!(" ({url})"), "")
                .replace(url.as_str(), "");
        }
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            let cause_text = cause.to_string();
            if !text.contains(&cause_text) {
                text.push_str(": ");
                text.push_str(&cause_text);
            }
            source = cause.source();
        }
        text
    }
}

/// Resolves names for reqwest and hands back only addresses the guard
/// allows: all of them, or an error.
struct GuardedResolver(AddressGuard);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.0.clone();
        Box::pin(async move {
            // Port 0: reqwest puts in the URL's port (or the scheme's).
            let addresses: Vec<SocketAddr> = guard.resolve(name.as_str(), 0).await?;
            let addresses: reqwest::dns::Addrs = Box::new(addresses.into_iter());
            Ok(addresses)
        })
    }
}

/// The guard's refusal somewhere in the causes of a failed request.
fn refusal(error: &reqwest::Error) -> Option<&AddressRefused> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<AddressRefused>() {
            return Some(refused);
        }
        source = cause.source();
    }
    None
}

/// The certificate serial of a DER certificate as lowercase hex bytes
/// joined by `sep` (`"1a:2b"` or `"1a2b"`), as CAs print serials.
pub fn serial_hex(certificate_der: &[u8], sep: &str) -> Result<String, String> {
    let cert = openssl::x509::X509::from_der(certificate_der)
        .map_err(|e| format!("the certificate is not DER X.509: {e}"))?;
    let serial = cert
        .serial_number()
        .to_bn()
        .map_err(|e| format!("the certificate's serial: {e}"))?;
    let bytes = serial.to_vec();
    let bytes = if bytes.is_empty() { vec![0] } else { bytes };
    Ok(bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(sep))
}

/// A CSR (DER) as PEM text, as REST CAs take it.
pub fn csr_pem(csr_der: &[u8]) -> Result<String, String> {
    let csr = openssl::x509::X509Req::from_der(csr_der)
        .map_err(|e| format!("the CSR is not DER PKCS#10: {e}"))?;
    let pem = csr.to_pem().map_err(|e| format!("the CSR: {e}"))?;
    String::from_utf8(pem).map_err(|e| format!("the CSR: {e}"))
}

/// Whether the leaf (first certificate) of `chain_pem` certifies the public
/// key of `csr_der`: a saved order finalized with another CSR is no use.
pub fn carries_csr_key(chain_pem: &str, csr_der: &[u8]) -> bool {
    let leaf_key = openssl::x509::X509::from_pem(chain_pem.as_bytes()).and_then(|c| c.public_key());
    let csr_key = openssl::x509::X509Req::from_der(csr_der).and_then(|r| r.public_key());
    match (leaf_key, csr_key) {
        (Ok(leaf), Ok(csr)) => leaf.public_eq(&csr),
        _ => false,
    }
}

/// The key under which a connector keeps the order of the request with
/// `idempotency_key`: `prefix` and a hash, so any key fits the store's
/// short names and none collides with another kind of entry.
pub fn order_state_key(prefix: &str, idempotency_key: &str) -> String {
    let digest = openssl::sha::sha256(idempotency_key.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}_order_{hex}")
}

/// Orders placed at an order-then-poll CA (DigiCert, Sectigo) and not yet
/// recorded by the caller, kept in the connector's [`StateStore`] under the
/// request's idempotency key: saved as soon as the CA has given the order an
/// id and before any polling, so that a retry (or another daemon after a
/// crash, a new connector on the same store) continues the order instead of
/// placing a second one; forgotten when the caller says it has recorded the
/// certificate ([`crate::Connector::recorded`]), or when the CA refused it.
pub struct OrderBook {
    connector: String,
    prefix: &'static str,
    state: Arc<dyn StateStore>,
}

impl fmt::Debug for OrderBook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrderBook")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// What is kept of an order in flight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptOrder {
    /// The CA's id of the order (DigiCert order id, Sectigo sslId).
    pub order_id: String,
    /// The CA it was placed at (another account or CA knows nothing of it).
    pub base_url: String,
    /// The names ordered, sorted, as [`identifier_texts`] writes them.
    pub names: Vec<String>,
}

impl OrderBook {
    /// Orders of `connector`, kept under keys starting with `prefix`.
    pub fn new(connector: &str, prefix: &'static str, state: Arc<dyn StateStore>) -> Self {
        Self {
            connector: connector.to_owned(),
            prefix,
            state,
        }
    }

    /// The order kept for `key`, if any; an unreadable entry is forgotten.
    /// A failing store is a transient error: ordering anyway could order twice.
    pub async fn load(&self, key: &str) -> Result<Option<KeptOrder>, ConnectorError> {
        let bytes = self
            .state
            .load(&order_state_key(self.prefix, key))
            .await
            .map_err(|e| {
                ConnectorError::transient(&self.connector, format!("loading the kept order: {e}"))
            })?;
        let Some(bytes) = bytes.filter(|b| !b.is_empty()) else {
            return Ok(None);
        };
        match serde_json::from_slice(&bytes) {
            Ok(order) => Ok(Some(order)),
            Err(e) => {
                tracing::warn!(connector = %self.connector, error = %e, "the kept order is unreadable; ordering anew");
                self.forget(key).await;
                Ok(None)
            }
        }
    }

    /// Keeps `order` under `key`. A failure is logged, not returned: the
    /// order exists now, and failing would make the retry order again for
    /// certain rather than only after a crash.
    pub async fn save(&self, key: &str, order: &KeptOrder) {
        let result = match serde_json::to_vec(order) {
            Ok(bytes) => {
                self.state
                    .save(&order_state_key(self.prefix, key), &bytes)
                    .await
            }
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = result {
            tracing::warn!(
                connector = %self.connector, order = %order.order_id, error = %e,
                "cannot keep the order in flight; a retry after a crash would place a new one"
            );
        }
    }

    /// Forgets the order kept under `key` (a failure is logged).
    pub async fn forget(&self, key: &str) {
        if let Err(e) = self.state.remove(&order_state_key(self.prefix, key)).await {
            tracing::warn!(connector = %self.connector, error = %e, "cannot remove the kept order");
        }
    }
}

/// The request's identifiers as sorted texts (`dns:example.com`,
/// `ip:192.0.2.1`), to tell whether a kept order was for the same names.
pub fn identifier_texts(identifiers: &[Identifier]) -> Vec<String> {
    let mut texts: Vec<String> = identifiers
        .iter()
        .map(|identifier| match identifier {
            Identifier::Dns(name) => format!("dns:{}", name.to_ascii_lowercase()),
            Identifier::Ip(ip) => format!("ip:{ip}"),
            Identifier::Email(address) => format!("email:{address}"),
        })
        .collect();
    texts.sort();
    texts
}

/// Orders `pem` (certificates in any order, as some CAs hand them out)
/// into a chain: the certificate whose key matches `csr_der` first, then
/// each one's issuer in turn; certificates that fit nowhere are left out.
pub fn chain_from(pems: &[&str], csr_der: Option<&[u8]>) -> Result<String, String> {
    let mut certs = Vec::new();
    for pem in pems {
        let stack = openssl::x509::X509::stack_from_pem(pem.as_bytes())
            .map_err(|e| format!("not PEM certificates: {e}"))?;
        certs.extend(stack);
    }
    if certs.is_empty() {
        return Err("no certificate in the answer".into());
    }
    let csr_key = csr_der.and_then(|der| {
        openssl::x509::X509Req::from_der(der)
            .and_then(|r| r.public_key())
            .ok()
    });
    let leaf_at = csr_key
        .and_then(|key| {
            certs
                .iter()
                .position(|c| c.public_key().is_ok_and(|k| k.public_eq(&key)))
        })
        .unwrap_or(0);
    let mut chain = vec![certs.remove(leaf_at)];
    while let Some(last) = chain.last() {
        let issued_by = |c: &openssl::x509::X509| {
            c.subject_name().try_cmp(last.issuer_name()).ok() == Some(std::cmp::Ordering::Equal)
                && c.public_key()
                    .is_ok_and(|k| last.verify(&k).unwrap_or(false))
        };
        // A self-signed certificate ends the chain.
        let self_signed =
            last.issuer_name().try_cmp(last.subject_name()).ok() == Some(std::cmp::Ordering::Equal);
        match certs.iter().position(issued_by) {
            Some(at) if !self_signed => chain.push(certs.remove(at)),
            _ => break,
        }
    }
    let mut text = String::new();
    for cert in &chain {
        let pem = cert.to_pem().map_err(|e| e.to_string())?;
        text.push_str(&String::from_utf8_lossy(&pem));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_retry_classes() {
        let s = |n| StatusCode::from_u16(n).unwrap_or(StatusCode::IM_A_TEAPOT);
        let secs = Duration::from_secs;
        assert_eq!(
            classify(s(429), Some(secs(7))),
            ErrorClass::RetryAfter(secs(7))
        );
        assert_eq!(
            classify(s(503), Some(secs(3))),
            ErrorClass::RetryAfter(secs(3))
        );
        assert_eq!(classify(s(429), None), ErrorClass::Transient);
        assert_eq!(classify(s(500), Some(secs(3))), ErrorClass::Transient);
        assert_eq!(classify(s(502), None), ErrorClass::Transient);
        assert_eq!(classify(s(400), None), ErrorClass::Permanent);
        assert_eq!(classify(s(401), None), ErrorClass::Permanent);
        assert_eq!(classify(s(403), None), ErrorClass::Permanent);
    }

    #[test]
    fn long_ca_text_is_cut() {
        let text = "x".repeat(5000);
        let cut = snippet(&text);
        assert!(cut.chars().count() <= MESSAGE_CHARS + 1);
        assert_eq!(snippet(" a\nb "), "ab");
    }

    #[test]
    fn plain_http_only_to_loopback_and_secrets_are_scrubbed() {
        let http = HttpSettings::default();
        let err = RestClient::new("v", "Vault", "http://vault.example:8200", &http)
            .expect_err("plain http to a remote host must be refused");
        assert_eq!(err.class, ErrorClass::Permanent);
        let client = RestClient::new("v", "Vault", "http://127.0.0.1:8200/", &http)
            .map(|c| c.redacting(&Secret::new("s3cr3t-token")));
        let Ok(client) = client else {
            panic!("loopback http is allowed");
        };
        let e = client.error(ErrorClass::Permanent, "bad token s3cr3t-token");
        assert_eq!(e.message, "bad token [redacted]");
        assert_eq!(
            client.endpoint(&["v1", "pki", "cert", "1a:2b"]).path(),
            "/v1/pki/cert/1a:2b"
        );
    }
}
