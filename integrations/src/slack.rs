//! Slack: an incoming webhook carrying a Block Kit message.
//!
//! Follows Slack's references for incoming webhooks
//! (<https://api.slack.com/messaging/webhooks>: `POST` of a JSON body to the
//! webhook URL, answered `200 ok`, or 400/403/404/410 with an error code) and
//! Block Kit (<https://api.slack.com/reference/block-kit/blocks>): a `header`
//! block (plain text, at most 150 characters), a `section` with the summary
//! (mrkdwn, at most 3000) and sections of `fields` (at most 10 per section,
//! 2000 characters each), a `context` block with the severity, and a
//! top-level `text` that notifications and screen readers show.
//!
//! The webhook URL is the credential (anyone holding it can post), so it is a
//! [`Secret`] and never appears in errors or `Debug` output.
//!
//! Certificate subjects, SANs, issuers and places come from whoever made the
//! certificate, so every text taken from the event is made inert before it
//! goes into mrkdwn ([`crate::render::escape_mrkdwn`]: no `<!channel>`,
//! `<@U…>`, `@here`, links or formatting) or into a `plain_text` header
//! ([`crate::render::escape_slack_plain`]).

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Secret;
use crate::http::{HttpSender, default_timeout_secs};
use crate::render::{Severity, escape_mrkdwn as escape, escape_slack_plain, render, truncate};
use crate::{Event, Notifier, NotifyError};

/// Settings of a Slack channel (`type = "slack"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackSettings {
    /// The incoming webhook URL (`https://hooks.slack.com/services/...`).
    pub webhook_url: Secret,
    /// Seconds to wait for an answer.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

impl SlackSettings {
    /// Settings for `webhook_url` with the default timeout.
    pub fn new(webhook_url: Secret) -> Self {
        Self {
            webhook_url,
            timeout_secs: default_timeout_secs(),
        }
    }
}

/// Posts events to a Slack channel.
#[derive(Debug)]
pub struct SlackNotifier {
    name: String,
    settings: SlackSettings,
    http: HttpSender,
}

impl SlackNotifier {
    /// A Slack notifier called `name`.
    pub fn new(name: impl Into<String>, settings: SlackSettings) -> Result<Self, NotifyError> {
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
}

/// The Block Kit message for `event`.
pub fn payload(event: &Event) -> Value {
    let r = render(event);
    let emoji = match r.severity {
        Severity::Critical => ":rotating_light:",
        Severity::Warning => ":warning:",
        Severity::Info => ":information_source:",
    };
    let mut blocks = vec![
        json!({
            "type": "header",
            "text": { "type": "plain_text", "text": truncate(&escape_slack_plain(&r.title), 150), "emoji": true },
        }),
        json!({
            "type": "section",
            "text": { "type": "mrkdwn", "text": truncate(&escape(&r.summary), 3000) },
        }),
    ];
    for chunk in r.details.chunks(10) {
        let fields: Vec<Value> = chunk
            .iter()
            .map(|(label, value)| {
                json!({
                    "type": "mrkdwn",
                    "text": truncate(&format!("*{label}*\n{}", escape(value)), 2000),
                })
            })
            .collect();
        blocks.push(json!({ "type": "section", "fields": fields }));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{
            "type": "mrkdwn",
            "text": format!("{emoji} {} · Certkeeper · event `{}`", r.severity, escape(&event.id)),
        }],
    }));
    json!({
        // The top-level text is mrkdwn too (notifications show it).
        "text": truncate(&escape(&format!("{}: {}", r.title, r.summary)), 3000),
        "blocks": blocks,
    })
}

#[async_trait]
impl Notifier for SlackNotifier {
    fn name(&self) -> &str {
        &self.name
    }

    /// One request at `timeout_secs`.
    fn max_send_time(&self) -> Duration {
        Duration::from_secs(self.settings.timeout_secs)
    }

    async fn send(&self, event: &Event) -> Result<(), NotifyError> {
        let url = self.http.parse_url(self.settings.webhook_url.expose())?;
        let request = self.http.client().post(url).json(&payload(event));
        self.http.send(request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CertificateSummary, EventKind};

    const HOSTILE: &str = "*bold* <!channel> [x](http://evil) @here <at>Boss</at>";

    fn hostile_event() -> Event {
        Event {
            id: "e1".into(),
            at: chrono::Utc::now(),
            kind: EventKind::CertificateDiscovered,
            certificate: Some(CertificateSummary {
                subject: format!("CN={HOSTILE}"),
                sans: vec![HOSTILE.into(), "<@U0BOSS> <http://evil|click>".into()],
                issuer: format!("CN=~{HOSTILE}~"),
                ..CertificateSummary::default()
            }),
        }
    }

    /// Every string in the payload.
    fn texts(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::String(s) => out.push(s.clone()),
            Value::Array(items) => items.iter().for_each(|v| texts(v, out)),
            Value::Object(map) => map.values().for_each(|v| texts(v, out)),
            _ => {}
        }
    }

    #[test]
    fn certificate_text_cannot_mention_link_or_format() {
        let mut payload = payload(&hostile_event());
        // The header is plain_text, which Slack does not format: only
        // mentions matter there.
        let header = &mut payload["blocks"][0]["text"];
        assert_eq!(header["type"], "plain_text");
        let header = header["text"].take();
        let header = header.as_str().unwrap();
        for live in ["<!channel>", "<@U0BOSS>", "@here", "<at>"] {
            assert!(!header.contains(live), "{live} is live in {header:?}");
        }
        let mut all = Vec::new();
        texts(&payload, &mut all);
        for text in &all {
            for live in [
                "<!channel>",
                "<@U0BOSS>",
                "<http",
                "@here",
                "*bold*",
                "~*",
                "<at>",
            ] {
                assert!(!text.contains(live), "{live} is live in {text:?}");
            }
        }
        // People still read the subject as it is.
        let read = |t: &String| {
            t.replace('\u{200B}', "")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&")
        };
        assert!(
            all.iter()
                .any(|t| read(t).contains(&format!("CN={HOSTILE}"))),
            "{all:#?}"
        );
        // Our own formatting (the field labels) still works.
        assert!(all.iter().any(|t| t.starts_with("*Subject*\n")), "{all:#?}");
    }
}
