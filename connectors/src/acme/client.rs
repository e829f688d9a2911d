//! The HTTP client every request to the CA goes through.
//!
//! `instant-acme`'s own client sets no timeout, so a CA that accepts the
//! connection and never answers would hold a renewal forever. This one wraps
//! each request, body included, in [`tokio::time::timeout`], trusts the
//! system's roots plus the operator's extra ones, and notes any `Retry-After`
//! of a refused request so that [`super::problem`] can turn a rate limit into
//! [`crate::ErrorClass::RetryAfter`].
//!
//! Every name is resolved through the connector's [`AddressGuard`]: the
//! connection goes only to addresses the daemon's policy allows, checked
//! when connecting (not once at start, which DNS rebinding would defeat),
//! and an IP-address host is checked before the request. That covers the
//! directory and every URL the CA hands out (nonce, orders, certificates).
//! Redirects are never followed: hyper's client does not, and a 3xx
//! directory answer is an error.

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use certkeeper_base::{AddressGuard, AddressRefused};

use chrono::Utc;
use http_body_util::BodyExt;
use hyper::body::Bytes;
use hyper::header::{RETRY_AFTER, USER_AGENT};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioExecutor;
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::problem;

const USER_AGENT_VALUE: &str = concat!("certkeeper/", env!("CARGO_PKG_VERSION"));

/// A request that got no complete answer within the timeout.
#[derive(Debug)]
pub struct RequestTimedOut {
    /// Host the request went to.
    pub host: String,
    /// The timeout that elapsed.
    pub after: Duration,
}

impl fmt::Display for RequestTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no complete answer from {} within {:?}",
            self.host, self.after
        )
    }
}

impl std::error::Error for RequestTimedOut {}

/// An [`HttpClient`] for `instant-acme` with a per-request timeout.
#[derive(Clone)]
pub struct TimeoutClient {
    inner: Client<HttpsConnector<HttpConnector<GuardedResolver>>, BodyWrapper<Bytes>>,
    timeout: Duration,
    guard: AddressGuard,
}

impl TimeoutClient {
    /// A client trusting the system roots plus `extra_roots_pem`, giving up on
    /// any request (connection, TLS, headers and body) after `timeout`,
    /// connecting to any address.
    pub fn new(extra_roots_pem: Option<&str>, timeout: Duration) -> Result<Self, String> {
        Self::guarded(extra_roots_pem, timeout, AddressGuard::allow_all())
    }

    /// Like [`Self::new`], connecting only to addresses `guard` allows.
    pub fn guarded(
        extra_roots_pem: Option<&str>,
        timeout: Duration,
        guard: AddressGuard,
    ) -> Result<Self, String> {
        let mut roots = RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
        if let Some(pem) = extra_roots_pem {
            let mut added = 0;
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|e| format!("extra trusted roots: not PEM: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("extra trusted roots: unusable certificate: {e}"))?;
                added += 1;
            }
            if added == 0 {
                return Err("extra trusted roots: no certificate in the PEM".into());
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new_with_resolver(GuardedResolver(guard.clone()));
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeout));
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        Ok(Self {
            inner: Client::builder(TokioExecutor::new()).build(connector),
            timeout,
            guard,
        })
    }

    /// The client as `instant-acme` takes it.
    pub fn boxed(&self) -> Box<dyn HttpClient> {
        Box::new(self.clone())
    }

    /// Fetches the directory and checks it looks like one.
    pub async fn fetch_directory(&self, url: &str) -> Result<(), instant_acme::Error> {
        let request = Request::builder()
            .method(Method::GET)
            .uri(url)
            .body(BodyWrapper::default())?;
        let mut response = self.request(request).await?;
        let body = response
            .body
            .into_bytes()
            .await
            .map_err(instant_acme::Error::Other)?;
        if !response.parts.status.is_success() {
            return Err(instant_acme::Error::Other(
                format!("directory answered HTTP {}", response.parts.status).into(),
            ));
        }
        let directory: serde_json::Value = serde_json::from_slice(&body)?;
        if directory.get("newOrder").and_then(|v| v.as_str()).is_none() {
            return Err("the directory has no newOrder URL".into());
        }
        Ok(())
    }
}

impl HttpClient for TimeoutClient {
    fn request(
        &self,
        mut req: Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let client = self.inner.clone();
        let timeout = self.timeout;
        let guard = self.guard.clone();
        Box::pin(async move {
            check_directory_url(&req.uri().to_string()).map_err(|e| {
                instant_acme::Error::Other(format!("refusing to follow the CA: {e}").into())
            })?;
            if let Ok(value) = USER_AGENT_VALUE.parse() {
                req.headers_mut().insert(USER_AGENT, value);
            }
            let host = req.uri().host().unwrap_or("the CA").to_owned();
            // An IP-address host never reaches the resolver: check it here.
            guard
                .check_host(&host)
                .map_err(|refused| instant_acme::Error::Other(Box::new(refused)))?;
            let exchange = async move {
                let response = client.request(req).await.map_err(|e| {
                    // The guard's refusal alone says what to fix; hyper's
                    // wrapping ("client error (Connect)") does not.
                    match refusal(&e) {
                        Some(refused) => instant_acme::Error::Other(Box::new(refused.clone())),
                        None => instant_acme::Error::Other(Box::new(e)),
                    }
                })?;
                let (parts, body) = response.into_parts();
                let body = body.collect().await?.to_bytes();
                Ok::<_, instant_acme::Error>((parts, body))
            };
            let (parts, body) = tokio::time::timeout(timeout, exchange)
                .await
                .map_err(|_| {
                    instant_acme::Error::Other(Box::new(RequestTimedOut {
                        host,
                        after: timeout,
                    }))
                })??;
            let body = gone_problem(parts.status, body);
            if matches!(
                parts.status,
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
            ) && let Some(delay) = parts
                .headers
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| certkeeper_base::parse_retry_after(v, Utc::now()))
            {
                problem::note_retry_after(delay);
            }
            Ok(BytesResponse {
                parts,
                body: Box::new(body),
            })
        })
    }
}

/// A 404 or 410 answer as a problem document when the CA sent none (pebble
/// answers an unknown order with an empty 404): `instant-acme` would report
/// only that the body is not JSON, hiding the status that tells a saved
/// order the CA has forgotten from a failure worth retrying.
fn gone_problem(status: StatusCode, body: Bytes) -> Bytes {
    let gone = matches!(status, StatusCode::NOT_FOUND | StatusCode::GONE);
    let is_problem =
        serde_json::from_slice::<serde_json::Value>(&body).is_ok_and(|v| v.is_object());
    if !gone || is_problem {
        return body;
    }
    let problem = serde_json::json!({
        "type": "urn:ietf:params:acme:error:malformed",
        "detail": format!("the CA answered HTTP {status} without a problem document"),
        "status": status.as_u16(),
    });
    Bytes::from(problem.to_string())
}

/// Resolves names for hyper's connector through the guard: every address
/// the name resolves to must be allowed, and exactly those are connected to.
#[derive(Clone)]
pub struct GuardedResolver(AddressGuard);

impl tower::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = AddressRefused;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let guard = self.0.clone();
        // Port 0: the connector puts in the URL's port (or the scheme's).
        Box::pin(async move { Ok(guard.resolve(name.as_str(), 0).await?.into_iter()) })
    }
}

/// The guard's refusal somewhere in the causes of `error`.
pub(crate) fn refusal<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a AddressRefused> {
    let mut source = Some(error);
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<AddressRefused>() {
            return Some(refused);
        }
        source = cause.source();
    }
    None
}

/// Checks that `url` is `https`, or plain `http` to a loopback address (a
/// local test CA): ACME requires TLS (RFC 8555 section 6.1).
pub fn check_directory_url(url: &str) -> Result<(), String> {
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    let host = uri.host().ok_or_else(|| format!("`{url}` names no host"))?;
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") if is_loopback(host) => Ok(()),
        _ => Err(format!(
            "`{url}` must use https (plain http only to a loopback address)"
        )),
    }
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_roots_must_hold_a_certificate() {
        let err = TimeoutClient::new(Some("not a pem"), Duration::from_secs(1))
            .err()
            .expect("garbage roots must be refused");
        assert!(err.contains("extra trusted roots"), "{err}");
    }
}
