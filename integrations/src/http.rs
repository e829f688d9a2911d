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

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::RETRY_AFTER;
use reqwest::{Client, RequestBuilder, Response, StatusCode, Url};

use crate::Secret;
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
}

impl fmt::Debug for HttpSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpSender")
            .field("notifier", &self.notifier)
            .field("timeout", &self.timeout)
            .field("scrub", &"[redacted]")
            .finish()
    }
}

impl HttpSender {
    /// A sender for the notifier called `notifier`, giving up on any request
    /// after `timeout`.
    pub fn new(notifier: &str, timeout: Duration) -> Result<Self, NotifyError> {
        let client = Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // A redirected POST turns into a GET, and a webhook that moved
            // should be reconfigured, not silently followed: 3xx is refused.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("certkeeper/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| NotifyError {
                notifier: notifier.to_owned(),
                message: format!("cannot set up the HTTP client: {}", e.without_url()),
                class: ErrorClass::Permanent,
            })?;
        Ok(Self {
            client,
            notifier: notifier.to_owned(),
            timeout,
            scrub: Vec::new(),
        })
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
        let response = self.client.execute(request).await.map_err(|e| {
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
