//! The AWS JSON 1.1 protocol for ACM Private CA: every call is a signed
//! `POST /` whose `X-Amz-Target` names the operation
//! (`ACMPrivateCA.IssueCertificate`) and whose body and answer are JSON.
//!
//! The client has a timeout on connecting and on each whole request, never
//! follows redirects, reads at most `max_response_bytes` of an answer, and
//! resolves names through the connector's [`AddressGuard`]. Failures come
//! back as [`ApiFailure`], which the connector classifies.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use reqwest::header::RETRY_AFTER;
use reqwest::{Client, Url};
use serde_json::Value;

use super::sigv4::{self, Credentials};
use crate::{AddressGuard, ErrorClass};
use certkeeper_base::parse_retry_after;

/// The signing name of ACM Private CA.
pub const SERVICE: &str = "acm-pca";
/// The JSON 1.1 target prefix of API version 2017-08-22.
pub const TARGET_PREFIX: &str = "ACMPrivateCA";
/// The content type of the AWS JSON 1.1 protocol.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// Why a call produced no usable answer.
#[derive(Debug, Clone)]
pub enum ApiFailure {
    /// The request did not complete: no connection, a timeout, a reset.
    Transport(String),
    /// AWS answered with an error.
    Service {
        /// The HTTP status.
        status: u16,
        /// The error code (`ThrottlingException`), without namespace.
        code: String,
        /// AWS's message.
        message: String,
        /// A `Retry-After` the answer carried.
        retry_after: Option<Duration>,
    },
    /// The answer was not what the protocol promises (not JSON, too large).
    BadAnswer(String),
}

impl ApiFailure {
    /// The AWS error code, when AWS answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Service { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether retrying can help, from the code AWS documents for the
    /// failure: throttling waits, in-progress and server-side failures are
    /// transient, anything the request itself got wrong is permanent.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Transport(_) => ErrorClass::Transient,
            Self::BadAnswer(_) => ErrorClass::Permanent,
            Self::Service {
                status,
                code,
                retry_after,
                ..
            } => match code.as_str() {
                "ThrottlingException" | "TooManyRequestsException" | "RequestLimitExceeded" => {
                    retry_after.map_or(ErrorClass::Transient, ErrorClass::RetryAfter)
                }
                // A quota (certificates per second, per CA) was hit: backing
                // off is all that helps.
                "LimitExceededException"
                | "RequestInProgressException"
                | "ConcurrentModificationException"
                | "RequestFailedException"
                | "ServiceUnavailable"
                | "ServiceUnavailableException"
                | "InternalFailure"
                | "InternalServerError" => ErrorClass::Transient,
                _ if *status >= 500 || *status == 429 => {
                    retry_after.map_or(ErrorClass::Transient, ErrorClass::RetryAfter)
                }
                // InvalidStateException, MalformedCSRException,
                // ResourceNotFoundException, InvalidArnException,
                // InvalidArgsException, InvalidRequestException,
                // AccessDeniedException, UnrecognizedClientException, ...
                _ => ErrorClass::Permanent,
            },
        }
    }
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Transport(message) => write!(f, "cannot reach AWS: {message}"),
            Self::Service {
                status,
                code,
                message,
                ..
            } => write!(f, "AWS answered {code} (HTTP {status}): {message}"),
            Self::BadAnswer(message) => write!(f, "AWS answered {message}"),
        }
    }
}

/// A signed JSON 1.1 client for one region's ACM Private CA endpoint.
pub struct ApiClient {
    http: Client,
    url: Url,
    host: String,
    region: String,
    credentials: Credentials,
    max_response_bytes: usize,
}

impl ApiClient {
    /// A client for `endpoint` (`https://acm-pca.REGION.amazonaws.com/`),
    /// signing for `region`. Plain `http` is refused except to a loopback
    /// address (a local test server).
    pub fn new(
        endpoint: &str,
        region: &str,
        credentials: Credentials,
        timeout: Duration,
        max_response_bytes: usize,
        guard: &AddressGuard,
    ) -> Result<Self, String> {
        let url = Url::parse(endpoint).map_err(|e| format!("endpoint `{endpoint}`: {e}"))?;
        let host_name = url
            .host_str()
            .ok_or_else(|| format!("endpoint `{endpoint}` names no host"))?;
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(host_name) => {}
            _ => {
                return Err(format!(
                    "endpoint `{endpoint}` must be https (plain http only to a loopback address)"
                ));
            }
        }
        let host = match url.port() {
            Some(port) => format!("{host_name}:{port}"),
            None => host_name.to_owned(),
        };
        let mut builder = Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("certkeeper/", env!("CARGO_PKG_VERSION")));
        if !guard.allows_all() {
            builder = builder.dns_resolver(Arc::new(GuardedResolver(guard.clone())));
        }
        let http = builder
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
        Ok(Self {
            http,
            url,
            host,
            region: region.to_owned(),
            credentials,
            max_response_bytes,
        })
    }

    /// Calls `operation` (`IssueCertificate`) with `body`; the answer's JSON.
    pub async fn call(&self, operation: &str, body: &Value) -> Result<Value, ApiFailure> {
        let body = serde_json::to_vec(body)
            .map_err(|e| ApiFailure::BadAnswer(format!("a request that cannot be encoded: {e}")))?;
        let target = format!("{TARGET_PREFIX}.{operation}");
        let headers = [("content-type", CONTENT_TYPE), ("x-amz-target", &target)];
        let signed = sigv4::sign(
            &self.credentials,
            &self.region,
            SERVICE,
            Utc::now(),
            &sigv4::Request {
                method: "POST",
                path: self.url.path(),
                query: &[],
                host: &self.host,
                headers: &headers,
                body: &body,
            },
        )
        .map_err(|e| ApiFailure::Transport(format!("cannot sign the request: {e}")))?;
        let mut request = self.http.post(self.url.clone()).body(body);
        for (name, value) in headers.iter().copied() {
            request = request.header(name, value);
        }
        for (name, value) in &signed.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let mut response = request.send().await.map_err(|e| transport(&e))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, Utc::now()));
        let error_type = response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| transport(&e))? {
            if bytes.len() + chunk.len() > self.max_response_bytes {
                return Err(ApiFailure::BadAnswer(format!(
                    "with more than {} bytes",
                    self.max_response_bytes
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        let json: Option<Value> = if bytes.iter().all(u8::is_ascii_whitespace) {
            Some(Value::Object(serde_json::Map::new()))
        } else {
            serde_json::from_slice(&bytes).ok()
        };
        if (200..300).contains(&status) {
            return json.ok_or_else(|| {
                ApiFailure::BadAnswer(format!("HTTP {status} with a body that is not JSON"))
            });
        }
        let json = json.unwrap_or(Value::Null);
        let code = json
            .get("__type")
            .or_else(|| json.get("code"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or(error_type)
            .map(|c| short_code(&c))
            .unwrap_or_else(|| format!("HTTP{status}"));
        let message = json
            .get("message")
            .or_else(|| json.get("Message"))
            .and_then(Value::as_str)
            .map(tidy)
            .unwrap_or_else(|| "(no message)".into());
        Err(ApiFailure::Service {
            status,
            code,
            message,
            retry_after,
        })
    }
}

/// `com.amazonaws.acmpca#ThrottlingException:http://...` → `ThrottlingException`.
fn short_code(code: &str) -> String {
    let code = code.rsplit('#').next().unwrap_or(code);
    code.split(':').next().unwrap_or(code).trim().to_owned()
}

/// An AWS message made fit for a log line: one line, at most 300 characters.
fn tidy(message: &str) -> String {
    let flat = message
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if flat.chars().count() > 300 {
        format!("{}…", flat.chars().take(300).collect::<String>())
    } else {
        flat
    }
}

fn transport(error: &reqwest::Error) -> ApiFailure {
    let what = if error.is_timeout() {
        "the request timed out".to_owned()
    } else {
        // The chain of causes says "connection refused", "dns error", ...
        let mut text = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    };
    ApiFailure::Transport(what)
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn service(status: u16, code: &str) -> ApiFailure {
        ApiFailure::Service {
            status,
            code: code.into(),
            message: String::new(),
            retry_after: None,
        }
    }

    #[test]
    fn error_codes_map_to_retry_classes() {
        assert_eq!(
            service(400, "ThrottlingException").class(),
            ErrorClass::Transient
        );
        let throttled = ApiFailure::Service {
            status: 400,
            code: "ThrottlingException".into(),
            message: String::new(),
            retry_after: Some(Duration::from_secs(3)),
        };
        assert_eq!(
            throttled.class(),
            ErrorClass::RetryAfter(Duration::from_secs(3))
        );
        for permanent in [
            "InvalidStateException",
            "MalformedCSRException",
            "ResourceNotFoundException",
            "AccessDeniedException",
        ] {
            assert_eq!(service(400, permanent).class(), ErrorClass::Permanent);
        }
        assert_eq!(
            service(503, "Whatever").class(),
            ErrorClass::Transient,
            "5xx"
        );
        assert_eq!(
            ApiFailure::Transport("refused".into()).class(),
            ErrorClass::Transient
        );
    }

    #[test]
    fn error_types_lose_their_namespace() {
        assert_eq!(
            short_code("com.amazonaws.acmpca#ThrottlingException"),
            "ThrottlingException"
        );
        assert_eq!(
            short_code("InvalidStateException:http://internal.amazon.com/"),
            "InvalidStateException"
        );
    }

    #[test]
    fn plain_http_only_to_loopback() {
        let credentials = Credentials {
            access_key_id: "AKID".into(),
            secret_access_key: crate::Secret::new("s"),
            session_token: None,
        };
        let make = |endpoint: &str| {
            ApiClient::new(
                endpoint,
                "us-east-1",
                credentials.clone(),
                Duration::from_secs(1),
                1024,
                &AddressGuard::allow_all(),
            )
        };
        assert!(make("http://acm-pca.example.com/").is_err());
        let local = make("http://127.0.0.1:4566/").map_err(|_| ()).unwrap();
        assert_eq!(local.host, "127.0.0.1:4566");
        let aws = make("https://acm-pca.us-east-1.amazonaws.com")
            .map_err(|_| ())
            .unwrap();
        assert_eq!(aws.host, "acm-pca.us-east-1.amazonaws.com");
        assert_eq!(aws.url.path(), "/");
    }
}
