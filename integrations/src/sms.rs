//! SMS through an HTTP API in the shape of Twilio's Messages API.
//!
//! Follows Twilio's "Create a Message" reference
//! (<https://www.twilio.com/docs/messaging/api/message-resource#create-a-message-resource>):
//! `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`, HTTP basic auth
//! with the Account SID as user and the Auth Token as password, and an
//! `application/x-www-form-urlencoded` body with `To`, `From` (E.164 numbers)
//! and `Body` (at most 1600 characters). Twilio answers 201 Created; 400 for
//! a bad number, 401 for bad credentials, 429 when over its rate.
//! Providers that copy this API (many do) work by setting `url`.
//!
//! One delivery texts one number, so a retried delivery never texts a
//! recipient who already has the message: the configured `to`, or a
//! contact's own phone when the contact asked for this channel (the daemon
//! then makes that contact a delivery of its own).

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use reqwest::Url;
use reqwest::header::CONTENT_TYPE;
use serde::Deserialize;

use crate::Secret;
use crate::http::{HttpSender, default_timeout_secs};
use crate::render::{render, truncate};
use crate::{ErrorClass, Event, Notifier, NotifyError};

/// Longest `Body` Twilio accepts.
pub const MAX_BODY_CHARS: usize = 1600;

/// Settings of an SMS channel (`type = "sms"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsSettings {
    /// Account SID (`AC...`), the basic-auth user.
    pub account_sid: String,
    /// Auth token, the basic-auth password.
    pub auth_token: Secret,
    /// Sending number, E.164 (`+15005550006`).
    pub from: String,
    /// Receiving number, E.164.
    pub to: String,
    /// API base URL; `https://api.twilio.com` unless set.
    #[serde(default = "default_url")]
    pub url: String,
    /// Seconds to wait for an answer.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

fn default_url() -> String {
    "https://api.twilio.com".into()
}

impl SmsSettings {
    /// Settings for one sender and recipient, other fields at their defaults.
    pub fn new(
        account_sid: impl Into<String>,
        auth_token: Secret,
        from: impl Into<String>,
        to: impl Into<String>,
    ) -> Self {
        Self {
            account_sid: account_sid.into(),
            auth_token,
            from: from.into(),
            to: to.into(),
            url: default_url(),
            timeout_secs: default_timeout_secs(),
        }
    }
}

/// Texts events to one phone.
#[derive(Debug)]
pub struct SmsNotifier {
    name: String,
    settings: SmsSettings,
    http: HttpSender,
}

impl SmsNotifier {
    /// An SMS notifier called `name`.
    pub fn new(name: impl Into<String>, settings: SmsSettings) -> Result<Self, NotifyError> {
        let name = name.into();
        let http = HttpSender::new(&name, Duration::from_secs(settings.timeout_secs))?
            .redacting(&settings.auth_token)
            // A peer echoing the Authorization header echoes the token in base64.
            .redacting(&Secret::new(
                base64::engine::general_purpose::STANDARD.encode(format!(
                    "{}:{}",
                    settings.account_sid,
                    settings.auth_token.expose()
                )),
            ));
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
}

/// The text of `event`: title, summary, then as many details as fit.
pub fn text(event: &Event) -> String {
    truncate(&render(event).plain_text(), MAX_BODY_CHARS)
}

/// `application/x-www-form-urlencoded` encoding of `pairs`.
fn form(pairs: &[(&str, &str)]) -> String {
    // A URL's query serializer is exactly the form encoder; no extra crate.
    let mut url = Url::parse("http://form.invalid/").unwrap_or_else(|_| unreachable!());
    url.query_pairs_mut().extend_pairs(pairs);
    url.query().unwrap_or_default().to_owned()
}

#[async_trait]
impl Notifier for SmsNotifier {
    fn name(&self) -> &str {
        &self.name
    }

    /// One request at `timeout_secs`.
    fn max_send_time(&self) -> Duration {
        Duration::from_secs(self.settings.timeout_secs)
    }

    async fn send(&self, event: &Event) -> Result<(), NotifyError> {
        self.text_to(event, &self.settings.to).await
    }

    /// A delivery addressed to one person (a contact that asked for this
    /// channel) texts that person's number instead of `to`: the daemon gives
    /// each such person a delivery of their own, so a retry never texts
    /// anyone twice. Anything but exactly one E.164 number goes to `to`.
    async fn send_to(&self, event: &Event, recipients: &[String]) -> Result<(), NotifyError> {
        match recipients {
            [number] if is_e164(number) => self.text_to(event, number).await,
            _ => self.send(event).await,
        }
    }
}

/// Whether `number` is E.164: `+` and 8 to 15 digits.
pub fn is_e164(number: &str) -> bool {
    number
        .strip_prefix('+')
        .is_some_and(|d| (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

impl SmsNotifier {
    /// Texts `event` to `to`.
    async fn text_to(&self, event: &Event, to: &str) -> Result<(), NotifyError> {
        let mut url = self.http.parse_url(&self.settings.url)?;
        url.path_segments_mut()
            .map_err(|()| {
                self.http
                    .error(ErrorClass::Permanent, "the SMS API URL cannot have a path")
            })?
            .clear()
            .extend([
                "2010-04-01",
                "Accounts",
                self.settings.account_sid.as_str(),
                "Messages.json",
            ]);
        let body = text(event);
        let request = self
            .http
            .client()
            .post(url)
            .basic_auth(
                &self.settings.account_sid,
                Some(self.settings.auth_token.expose()),
            )
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form(&[
                ("To", to),
                ("From", self.settings.from.as_str()),
                ("Body", body.as_str()),
            ]));
        self.http.send(request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding_escapes_plus_and_spaces() {
        assert_eq!(
            form(&[("To", "+4915100000"), ("Body", "a b&c")]),
            "To=%2B4915100000&Body=a+b%26c"
        );
    }
}
