//! Generic webhook: the event as JSON, signed, to any HTTPS endpoint.
//!
//! The body is the [`Event`] itself (`Content-Type: application/json`) or,
//! with [`WebhookFormat::CloudEvents`], a CloudEvents 1.0 event in structured
//! mode (`Content-Type: application/cloudevents+json`; attributes
//! `specversion`, `id`, `source`, `type`, `time`, `subject`,
//! `datacontenttype`, with the [`Event`] as `data`), following the
//! CloudEvents JSON format and HTTP protocol binding
//! (<https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/formats/json-format.md>,
//! <https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/bindings/http-protocol-binding.md>).
//!
//! Every request carries:
//! - `X-Certkeeper-Timestamp`: Unix seconds when it was signed;
//! - `X-Certkeeper-Signature: sha256=<hex>`: HMAC-SHA256 keyed with the
//!   shared secret over `<timestamp>.<body>` (the exact body bytes);
//! - `Idempotency-Key`: the event id, identical on every retry.
//!
//! # Verifying a request (receiver side)
//! 1. Read `X-Certkeeper-Timestamp` and refuse it if it is more than five
//!    minutes from your clock (stops replays).
//! 2. Compute `HMAC-SHA256(secret, timestamp + "." + raw_body)` over the raw
//!    body bytes as received, before any JSON parsing, and hex-encode it
//!    (lowercase).
//! 3. Compare `"sha256=" + hex` with `X-Certkeeper-Signature` in constant
//!    time (`hmac.compare_digest` in Python, `crypto.timingSafeEqual` in
//!    Node.js, `openssl::memcmp::eq` in Rust); refuse on mismatch.
//! 4. Drop repeats by `Idempotency-Key`: retries re-send the same event id.
//!
//! In Python:
//! ```text
//! mac = hmac.new(secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
//! ok = hmac.compare_digest("sha256=" + mac, request.headers["X-Certkeeper-Signature"])
//! ```

use std::time::Duration;

use async_trait::async_trait;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;
use reqwest::header::CONTENT_TYPE;
use serde::Deserialize;
use serde_json::json;

use crate::Secret;
use crate::http::{HttpSender, default_timeout_secs};
use crate::render::kind_name;
use crate::{ErrorClass, Event, Notifier, NotifyError};

/// Header with the signing time, Unix seconds.
pub const TIMESTAMP_HEADER: &str = "X-Certkeeper-Timestamp";
/// Header with `sha256=<hex HMAC>`.
pub const SIGNATURE_HEADER: &str = "X-Certkeeper-Signature";
/// Header with the event id, for receivers to drop retried duplicates.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// The body's shape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    /// The [`Event`] as JSON.
    #[default]
    Event,
    /// A CloudEvents 1.0 event in structured mode with the [`Event`] as `data`.
    CloudEvents,
}

/// Settings of a generic webhook (`type = "webhook"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Where to POST.
    pub url: String,
    /// Shared HMAC key the receiver verifies the signature with.
    pub secret: Secret,
    /// Body shape; `event` unless set.
    #[serde(default)]
    pub format: WebhookFormat,
    /// CloudEvents `source` attribute; `/certkeeper` unless set.
    #[serde(default = "default_source")]
    pub source: String,
    /// Seconds to wait for an answer.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

fn default_source() -> String {
    "/certkeeper".into()
}

impl WebhookSettings {
    /// Settings for `url` signed with `secret`, other fields at their defaults.
    pub fn new(url: impl Into<String>, secret: Secret) -> Self {
        Self {
            url: url.into(),
            secret,
            format: WebhookFormat::Event,
            source: default_source(),
            timeout_secs: default_timeout_secs(),
        }
    }
}

/// Delivers events to a generic webhook.
#[derive(Debug)]
pub struct WebhookNotifier {
    name: String,
    settings: WebhookSettings,
    http: HttpSender,
}

impl WebhookNotifier {
    /// A webhook notifier called `name`.
    pub fn new(name: impl Into<String>, settings: WebhookSettings) -> Result<Self, NotifyError> {
        let name = name.into();
        let http = HttpSender::new(&name, Duration::from_secs(settings.timeout_secs))?
            .redacting(&settings.secret)
            // Receivers often put a token in the URL; treat it as one.
            .redacting(&Secret::new(settings.url.clone()));
        Ok(Self {
            name,
            settings,
            http,
        })
    }

    /// The same notifier, connecting only to addresses `guard` allows
    /// (checked when each request connects; see [`crate::http`]).
    pub fn guarded(mut self, guard: &crate::AddressGuard) -> Result<Self, NotifyError> {
        self.http = self.http.guarded(guard)?;
        Ok(self)
    }

    fn body(&self, event: &Event) -> serde_json::Value {
        match self.settings.format {
            WebhookFormat::Event => json!(event),
            WebhookFormat::CloudEvents => {
                let mut envelope = json!({
                    "specversion": "1.0",
                    "id": event.id,
                    "source": self.settings.source,
                    "type": format!("com.certkeeper.{}", kind_name(&event.kind)),
                    "time": event.at.to_rfc3339(),
                    "datacontenttype": "application/json",
                    "data": event,
                });
                if let Some(cert) = &event.certificate {
                    envelope["subject"] = json!(cert.fingerprint);
                }
                envelope
            }
        }
    }
}

/// `sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>`.
pub fn signature(
    secret: &[u8],
    timestamp: &str,
    body: &[u8],
) -> Result<String, openssl::error::ErrorStack> {
    let key = PKey::hmac(secret)?;
    let mut signer = Signer::new(MessageDigest::sha256(), &key)?;
    signer.update(timestamp.as_bytes())?;
    signer.update(b".")?;
    signer.update(body)?;
    Ok(format!("sha256={}", hex::encode(signer.sign_to_vec()?)))
}

#[async_trait]
impl Notifier for WebhookNotifier {
    fn name(&self) -> &str {
        &self.name
    }

    /// One request at `timeout_secs`.
    fn max_send_time(&self) -> Duration {
        Duration::from_secs(self.settings.timeout_secs)
    }

    async fn send(&self, event: &Event) -> Result<(), NotifyError> {
        let body = serde_json::to_vec(&self.body(event)).map_err(|e| {
            self.http.error(
                ErrorClass::Permanent,
                format!("cannot encode the event: {e}"),
            )
        })?;
        let timestamp = chrono::Utc::now().timestamp().to_string();
        let signature = signature(self.settings.secret.expose().as_bytes(), &timestamp, &body)
            .map_err(|e| {
                self.http
                    .error(ErrorClass::Permanent, format!("cannot sign: {e}"))
            })?;
        let content_type = match self.settings.format {
            WebhookFormat::Event => "application/json",
            WebhookFormat::CloudEvents => "application/cloudevents+json",
        };
        let url = self.http.parse_url(&self.settings.url)?;
        let request = self
            .http
            .client()
            .post(url)
            .header(CONTENT_TYPE, content_type)
            .header(TIMESTAMP_HEADER, timestamp)
            .header(SIGNATURE_HEADER, signature)
            .header(IDEMPOTENCY_HEADER, event.id.as_str())
            .body(body);
        self.http.send(request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_over_timestamp_dot_body() {
        // Expected value from `printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac s3cret`.
        let sig = signature(b"s3cret", "1700000000", br#"{"a":1}"#).unwrap();
        assert_eq!(
            sig,
            "sha256=1698a50bc74d1ff1db85c4e0a5297c2ad9fdba245d5737cdb789e4cc6e098940"
        );
    }

    #[test]
    fn a_misspelt_key_is_refused_by_name() {
        let err = serde_json::from_value::<WebhookSettings>(serde_json::json!({
            "url": "https://example.com/hook", "secret": "s", "fromat": "event"
        }))
        .unwrap_err();
        assert!(err.to_string().contains("fromat"), "{err}");
    }
}
