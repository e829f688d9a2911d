//! The one HTTP sender every channel delivers through.
//!
//! [`HttpSender`] wraps a `reqwest` client (rustls) with a per-request
//! timeout and turns every outcome into the crate's delivery classes, so the
//! alert ledger retries the same way whatever the channel:
//!
//! | outcome                                   | result                        |
//! |-------------------------------------------|-------------------------------|
//! | 2xx                                       | `Ok`                          |
//! | 429 or 503 with `Retry-After`             | [`ErrorClass::RetryAfter`] |
//! | other 5xx, 429/503 without `Retry-After`, connection error, timeout | [`ErrorClass::Transient`] |
//! | other 4xx (bad credentials, bad payload)  | [`ErrorClass::Permanent`]  |
//!
//! Error messages name the host only, never the URL: Slack, Discord, Teams
//! and Mattermost webhook URLs are credentials in themselves. Every secret
//! registered with [`HttpSender::redacting`] (and, for URLs, their path and
//! query parts) is also scrubbed from whatever the peer answered.
//!
//! ## Which addresses it connects to
//!
//! A sender made with [`HttpSender::new`] connects anywhere. Given the
//! daemon's address policy as an [`AddressGuard`] ([`HttpSender::guarded`]),
//! it resolves names itself, through reqwest's `dns_resolver` hook, and
//! connects only if every address the name resolves to is allowed, to
//! exactly those addresses: a name that passed the daemon's check at start
//! and resolves to an internal address later (DNS rebinding) is refused at
//! connect time. A host written as an IP address never reaches a resolver,
//! so it is checked before the request is sent. Either refusal is a
//! permanent error naming the host and why its address is not allowed.
//! Redirects are never followed, so a peer cannot bounce a request to a host
//! the guard has not seen.
//!
//! The guard is threaded through explicitly rather than set process-wide:
//! each channel has a `guarded` builder and [`crate::config::ChannelConfig::build_guarded`]
//! passes one guard to whichever channel it builds, so tests (and two
//! daemons in one process) can use different policies side by side.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::RETRY_AFTER;
use reqwest::{Client, RequestBuilder, Response, StatusCode, Url};

use crate::{AddressGuard, AddressRefused, Secret};
use crate::{ErrorClass, NotifyError};

/// The per-request timeout channels use unless configured otherwise.
pub const DEFAULT_TIMEOUT_SECS: u64 = 10;

/// Serde default of every channel's `timeout_secs`.
pub fn default_timeout_secs() -> u64 {
    DEFAULT_TIMEOUT_SECS
}

/// How much of a refusing peer's answer goes into an error message.
const BODY_SNIPPET_CHARS: usize = 200;

/// Shortest fragment of a secret URL scrubbed on its own; shorter path
/// segments (`services`, `hooks`, `api`) are not secret and would only make
/// messages unreadable.
const MIN_SECRET_FRAGMENT: usize = 8;

/// Sends a channel's requests and classifies their outcome.
#[derive(Clone)]
pub struct HttpSender {
    client: Client,
    notifier: String,
    timeout: Duration,
    scrub: Vec<String>,
    guard: AddressGuard,
}

impl fmt::Debug for HttpSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpSender")
            .field("notifier", &self.notifier)
            .field("timeout", &self.timeout)
            .field("scrub", &"[redacted]")
            .field("guard", &self.guard)
            .finish()
    }
}

impl HttpSender {
    /// A sender for the notifier called `notifier`, giving up on any request
    /// after `timeout`, connecting to any address (see [`Self::guarded`]).
    pub fn new(notifier: &str, timeout: Duration) -> Result<Self, NotifyError> {
        let guard = AddressGuard::allow_all();
        Ok(Self {
            client: build_client(notifier, timeout, &guard)?,
            notifier: notifier.to_owned(),
            timeout,
            scrub: Vec::new(),
            guard,
        })
    }

    /// The same sender, connecting only to addresses `guard` allows: names
    /// are resolved and checked at connect time, IP-address hosts before
    /// each request.
    pub fn guarded(mut self, guard: &AddressGuard) -> Result<Self, NotifyError> {
        self.client = build_client(&self.notifier, self.timeout, guard)?;
        self.guard = guard.clone();
        Ok(self)
    }

    /// Also scrubs `secret` from every error message. A secret that is a URL
    /// has its path, query and long path segments scrubbed as well, since a
    /// peer may echo those without the host.
    pub fn redacting(mut self, secret: &Secret) -> Self {
        let value = secret.expose();
        if value.is_empty() {
            return self;
        }
        self.scrub.push(value.to_owned());
        if let Ok(url) = Url::parse(value) {
            if url.path().len() > 1 {
                self.scrub.push(url.path().to_owned());
            }
            if let Some(query) = url.query() {
                self.scrub.push(query.to_owned());
            }
            for (_, v) in url.query_pairs() {
                if v.len() >= MIN_SECRET_FRAGMENT {
                    self.scrub.push(v.into_owned());
                }
            }
            for segment in url.path_segments().into_iter().flatten() {
                if segment.len() >= MIN_SECRET_FRAGMENT {
                    self.scrub.push(segment.to_owned());
                }
            }
        }
        // Longest first, so a fragment never leaves part of a longer secret.
        self.scrub.sort_by_key(|s| std::cmp::Reverse(s.len()));
        self.scrub.dedup();
        self
    }

    /// The notifier's name, as errors carry it.
    pub fn notifier(&self) -> &str {
        &self.notifier
    }

    /// The client, to start a request with (`sender.client().post(url)`).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Parses a configured URL, refusing it without ever printing it.
    pub fn parse_url(&self, url: &str) -> Result<Url, NotifyError> {
        Url::parse(url).map_err(|e| self.error(ErrorClass::Permanent, format!("invalid URL ({e})")))
    }

    /// A REST endpoint under a configured base URL: the base without its
    /// query or fragment, then `prefix` and `segments` as path segments,
    /// each percent-encoded. `setting` names the base URL's key in errors.
    pub fn endpoint(
        &self,
        base: &str,
        setting: &str,
        prefix: &[&str],
        segments: &[&str],
    ) -> Result<Url, NotifyError> {
        let mut url = self.parse_url(base)?;
        url.set_query(None);
        url.set_fragment(None);
        url.path_segments_mut()
            .map_err(|()| {
                self.error(
                    ErrorClass::Permanent,
                    format!("the {setting} cannot have a path"),
                )
            })?
            .pop_if_empty()
            .extend(prefix)
            .extend(segments);
        Ok(url)
    }

    /// Sends one request of a JSON API and reads its JSON answer. `peer`
    /// names the service in errors; `hint` says what to check when a 2xx
    /// answer is not JSON (a login or error page at a wrong URL).
    pub async fn send_for_json(
        &self,
        request: RequestBuilder,
        peer: &str,
        hint: &str,
    ) -> Result<serde_json::Value, NotifyError> {
        let response = self.send_for_response(request).await?;
        let body = response.bytes().await.map_err(|e| {
            self.error(
                ErrorClass::Transient,
                format!("reading {peer}'s answer failed: {}", e.without_url()),
            )
        })?;
        serde_json::from_slice(&body).map_err(|e| {
            self.error(
                ErrorClass::Permanent,
                format!("{peer} answered with something other than JSON ({e}); {hint}"),
            )
        })
    }

    /// Sends one request and classifies the outcome.
    pub async fn send(&self, request: RequestBuilder) -> Result<(), NotifyError> {
        self.send_for_response(request).await.map(drop)
    }

    /// Sends one request; on 2xx hands back the response for channels that
    /// read it.
    pub async fn send_for_response(
        &self,
        request: RequestBuilder,
    ) -> Result<Response, NotifyError> {
        let request = request.build().map_err(|e| {
            self.error(
                ErrorClass::Permanent,
                format!("cannot build the request: {}", e.without_url()),
            )
        })?;
        let host = request.url().host_str().unwrap_or("?").to_owned();
        // IP-address hosts never reach the resolver: check them here.
        self.guard
            .check_host(&host)
            .map_err(|refused| self.error(ErrorClass::Permanent, refused.to_string()))?;
        let response = self.client.execute(request).await.map_err(|e| {
            if let Some(refused) = refusal(&e) {
                let class = if refused.is_denied() {
                    ErrorClass::Permanent
                } else {
                    ErrorClass::Transient
                };
                return self.error(class, refused.to_string());
            }
            let message = if e.is_timeout() {
                format!("no answer from {host} within {:?}", self.timeout)
            } else if e.is_connect() {
                format!("cannot connect to {host}")
            } else {
                format!("request to {host} failed: {}", e.without_url())
            };
            self.error(ErrorClass::Transient, message)
        })?;
        let status = response.status();
        if status.is_success() {
            tracing::debug!(notifier = %self.notifier, host = %host, status = %status, "delivered");
            return Ok(response);
        }
        let retry_after = retry_after(&response, Utc::now());
        let class = classify(status, retry_after);
        // The body is best effort: a refusal is still a refusal if it is unreadable.
        let body = response.text().await.unwrap_or_default();
        let snippet: String = body
            .chars()
            .filter(|c| !c.is_control())
            .take(BODY_SNIPPET_CHARS)
            .collect();
        let mut message = format!("{host} answered {status}");
        if !snippet.trim().is_empty() {
            message.push_str(": ");
            message.push_str(snippet.trim());
        }
        Err(self.error(class, message))
    }

    /// An error of this notifier, with every registered secret scrubbed.
    pub fn error(&self, class: ErrorClass, message: impl Into<String>) -> NotifyError {
        NotifyError {
            notifier: self.notifier.clone(),
            message: self.redact(&message.into()),
            class,
        }
    }

    fn redact(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in &self.scrub {
            text = text.replace(secret.as_str(), "[redacted]");
        }
        text
    }
}

/// The reqwest client of a sender: rustls, the timeout on connecting and
/// on each whole request, no redirects, and names resolved through `guard`.
fn build_client(
    notifier: &str,
    timeout: Duration,
    guard: &AddressGuard,
) -> Result<Client, NotifyError> {
    let mut builder = Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        // A redirected POST turns into a GET, and a webhook that moved
        // should be reconfigured, not silently followed: 3xx is refused.
        // Following one would also take the request to a host the guard
        // never saw named.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("certkeeper/", env!("CARGO_PKG_VERSION")));
    if !guard.allows_all() {
        builder = builder.dns_resolver(Arc::new(GuardedResolver(guard.clone())));
    }
    builder.build().map_err(|e| NotifyError {
        notifier: notifier.to_owned(),
        message: format!("cannot set up the HTTP client: {}", e.without_url()),
        class: ErrorClass::Permanent,
    })
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

/// The delivery class of a non-2xx status.
pub fn classify(status: StatusCode, retry_after: Option<Duration>) -> ErrorClass {
    match (status.as_u16(), retry_after) {
        (429 | 503, Some(delay)) => ErrorClass::RetryAfter(delay),
        // 408 and 429 are the client errors that say "later", not "never".
        (408 | 429, None) => ErrorClass::Transient,
        (s, _) if (500..600).contains(&s) => ErrorClass::Transient,
        _ => ErrorClass::Permanent,
    }
}

/// `Retry-After` as the time left from `now` (delay-seconds or an HTTP date).
fn retry_after(response: &Response, now: DateTime<Utc>) -> Option<Duration> {
    let value = response.headers().get(RETRY_AFTER)?.to_str().ok()?;
    certkeeper_base::parse_retry_after(value, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_delivery_classes() {
        let s = |n| StatusCode::from_u16(n).unwrap();
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
        assert_eq!(classify(s(404), None), ErrorClass::Permanent);
    }

    #[tokio::test]
    async fn a_closed_port_is_transient_and_names_only_the_host() {
        // Bind then drop a listener, so the port is (almost certainly) closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let sender = HttpSender::new("hook", Duration::from_secs(1)).unwrap();
        let request = sender
            .client()
            .post(format!("http://127.0.0.1:{port}/secret-path"));
        let err = sender.send(request).await.unwrap_err();
        assert_eq!(err.class, ErrorClass::Transient);
        assert!(!err.message.contains("secret-path"), "{}", err.message);
    }

    /// A loopback HTTP server answering every request with `answer`; the
    /// counter is how many connections it accepted.
    async fn answering(answer: String) -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let answer = answer.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = stream.write_all(answer.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        (port, accepted)
    }

    const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

    fn accepted(counter: &std::sync::atomic::AtomicUsize) -> usize {
        counter.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn no_loopback() -> AddressGuard {
        AddressGuard::new(|ip| {
            if ip.is_loopback() {
                Err("a loopback address".into())
            } else {
                Ok(())
            }
        })
    }

    #[tokio::test]
    async fn a_name_resolving_to_a_denied_address_is_never_connected_to() {
        let (port, hits) = answering(OK.into()).await;
        let sender = HttpSender::new("hook", Duration::from_secs(5))
            .unwrap()
            .guarded(&no_loopback())
            .unwrap();
        let request = sender
            .client()
            .post(format!("http://localhost:{port}/secret-path?token=abc123"))
            .body("{}");
        let err = sender.send(request).await.unwrap_err();
        assert_eq!(err.class, ErrorClass::Permanent, "{}", err.message);
        assert!(
            err.message.contains("localhost resolves to"),
            "{}",
            err.message
        );
        assert!(
            err.message.contains("not allowed: a loopback address"),
            "{}",
            err.message
        );
        assert!(!err.message.contains("secret-path"), "{}", err.message);
        assert!(!err.message.contains("abc123"), "{}", err.message);
        assert_eq!(accepted(&hits), 0, "the denied server was connected to");

        // An IP-address host never reaches the resolver; it is refused too.
        let request = sender
            .client()
            .post(format!("http://127.0.0.1:{port}/secret-path"));
        let err = sender.send(request).await.unwrap_err();
        assert_eq!(err.class, ErrorClass::Permanent);
        assert!(
            err.message.contains("the address 127.0.0.1 is not allowed"),
            "{}",
            err.message
        );
        assert!(!err.message.contains("secret-path"), "{}", err.message);
        assert_eq!(accepted(&hits), 0);
    }

    #[tokio::test]
    async fn a_name_resolving_to_allowed_addresses_is_delivered() {
        let (port, hits) = answering(OK.into()).await;
        let private_only = AddressGuard::new(|ip| match ip {
            std::net::IpAddr::V4(v4) if v4.is_private() => Err("a private address".into()),
            _ => Ok(()),
        });
        let sender = HttpSender::new("hook", Duration::from_secs(5))
            .unwrap()
            .guarded(&private_only)
            .unwrap();
        let request = sender
            .client()
            .post(format!("http://localhost:{port}/hook"))
            .body("{}");
        sender.send(request).await.unwrap();
        assert_eq!(accepted(&hits), 1);
    }

    #[tokio::test]
    async fn a_redirect_is_refused_not_followed() {
        let (target, target_hits) = answering(OK.into()).await;
        let (port, _) = answering(format!(
            "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://127.0.0.1:{target}/internal\r\n\
             content-length: 0\r\nconnection: close\r\n\r\n"
        ))
        .await;
        let sender = HttpSender::new("hook", Duration::from_secs(5)).unwrap();
        let request = sender
            .client()
            .post(format!("http://127.0.0.1:{port}/hook"))
            .body("{}");
        let err = sender.send(request).await.unwrap_err();
        assert_eq!(err.class, ErrorClass::Permanent);
        assert!(err.message.contains("307"), "{}", err.message);
        assert_eq!(accepted(&target_hits), 0, "the redirect was followed");
    }

    #[test]
    fn secret_urls_are_scrubbed_whole_and_in_parts() {
        let sender = HttpSender::new("slack-ops", Duration::from_secs(1))
            .unwrap()
            .redacting(&Secret::new(
                "https://hooks.slack.com/services/T0001/B0001/abcdefghijklmnop",
            ));
        let e = sender.error(
            ErrorClass::Permanent,
            "bad https://hooks.slack.com/services/T0001/B0001/abcdefghijklmnop, \
             path /services/T0001/B0001/abcdefghijklmnop, token abcdefghijklmnop",
        );
        assert!(!e.message.contains("abcdefghijklmnop"), "{}", e.message);
        assert!(!format!("{sender:?}").contains("abcdefghijklmnop"));
    }
}
