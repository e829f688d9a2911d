//! Mattermost: an incoming webhook with a Markdown message and a
//! Slack-compatible attachment.
//!
//! Follows Mattermost's incoming-webhook reference
//! (<https://developers.mattermost.com/integrate/webhooks/incoming/>):
//! `POST` of a JSON body to `https://<server>/hooks/<key>` with `text`
//! (Markdown) and the optional `channel`, `username`, `icon_url` and
//! `attachments` (message attachments: `fallback`, `color`, `title`, `text`,
//! `fields` of `{short, title, value}`,
//! <https://developers.mattermost.com/integrate/reference/message-attachments/>).
//! Mattermost answers 200 `ok`. The hook key in the URL is the credential,
//! so the URL is a [`Secret`].

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Secret;
use crate::http::{HttpSender, default_timeout_secs};
use crate::render::{Severity, escape_markdown as md, render};
use crate::{Event, Notifier, NotifyError};

/// Settings of a Mattermost channel (`type = "mattermost"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MattermostSettings {
    /// The incoming webhook URL (`https://chat.example.com/hooks/<key>`).
    pub webhook_url: Secret,
    /// Channel to post to instead of the hook's own (if the hook allows it).
    #[serde(default)]
    pub channel: Option<String>,
    /// Name to post as instead of the hook's own (if the server allows it).
    #[serde(default)]
    pub username: Option<String>,
    /// Seconds to wait for an answer.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

impl MattermostSettings {
    /// Settings for `webhook_url`, other fields at their defaults.
    pub fn new(webhook_url: Secret) -> Self {
        Self {
            webhook_url,
            channel: None,
            username: None,
            timeout_secs: default_timeout_secs(),
        }
    }
}

/// Posts events to a Mattermost channel.
#[derive(Debug)]
pub struct MattermostNotifier {
    name: String,
    settings: MattermostSettings,
    http: HttpSender,
}

impl MattermostNotifier {
    /// A Mattermost notifier called `name`.
    pub fn new(name: impl Into<String>, settings: MattermostSettings) -> Result<Self, NotifyError> {
        let name = name.into();
        let http = HttpSender::new(&name, Duration::from_secs(settings.timeout_secs))?
            .redacting(&settings.webhook_url);
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

    fn payload(&self, event: &Event) -> Value {
        let r = render(event);
        let color = match r.severity {
            Severity::Critical => "#d00000",
            Severity::Warning => "#e8a317",
            Severity::Info => "#2f7bd9",
        };
        let fields: Vec<Value> = r
            .details
            .iter()
            .map(|(label, value)| json!({ "short": value.len() < 40, "title": label, "value": md(value) }))
            .collect();
        let (title, summary) = (md(&r.title), md(&r.summary));
        let mut body = json!({
            "text": format!("**{title}**\n{summary}"),
            "attachments": [{
                "fallback": format!("{title}: {summary}"),
                "color": color,
                "title": title,
                "text": summary,
                "fields": fields,
                "footer": format!("{} · Certkeeper · event {}", r.severity, event.id),
            }],
        });
        if let Some(channel) = &self.settings.channel {
            body["channel"] = json!(channel);
        }
        if let Some(username) = &self.settings.username {
            body["username"] = json!(username);
        }
        body
    }
}

#[async_trait]
impl Notifier for MattermostNotifier {
    fn name(&self) -> &str {
        &self.name
    }

    /// One request at `timeout_secs`.
    fn max_send_time(&self) -> Duration {
        Duration::from_secs(self.settings.timeout_secs)
    }

    async fn send(&self, event: &Event) -> Result<(), NotifyError> {
        let url = self.http.parse_url(self.settings.webhook_url.expose())?;
        let request = self.http.client().post(url).json(&self.payload(event));
        self.http.send(request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CertificateSummary, EventKind};

    #[test]
    fn a_certificate_cannot_ping_the_channel_or_format_the_message() {
        let settings = MattermostSettings::new(Secret::new("https://mm.example.test/hooks/x"));
        let notifier = MattermostNotifier::new("mm", settings).unwrap();
        let event = Event {
            id: "expiry:ab:30".into(),
            at: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default(),
            kind: EventKind::CertificateExpiring {
                threshold_days: 30,
                days_left: 29,
            },
            certificate: Some(CertificateSummary {
                fingerprint: "ab".into(),
                subject: "CN=@channel **now**".into(),
                sans: vec!["@all.example.test".into()],
                issuer: "CN=[click](http://evil.test)".into(),
                serial: "01".into(),
                not_after: None,
                seen_at: vec!["10.0.0.5:443 (@here)".into()],
                org_unit: None,
                contacts: Vec::new(),
                tags: Vec::new(),
            }),
        };
        let body = notifier.payload(&event).to_string();
        for mention in ["@channel", "@all", "@here"] {
            assert!(!body.contains(mention), "{mention} in {body}");
        }
        assert!(!body.contains("**now**"), "{body}");
        assert!(!body.contains("[click](http"), "{body}");
    }
}
