//! Microsoft Teams: a Workflows ("When a Teams webhook request is received")
//! webhook carrying an Adaptive Card.
//!
//! Follows Microsoft's references for Workflows webhooks and cards
//! (<https://learn.microsoft.com/en-us/microsoftteams/platform/webhooks-and-connectors/how-to/connectors-using#send-adaptive-cards-using-an-incoming-webhook>,
//! <https://adaptivecards.io/explorer/>): `POST` of a JSON message to the
//! workflow URL, `{"type":"message","attachments":[{"contentType":
//! "application/vnd.microsoft.card.adaptive","contentUrl":null,"content":
//! <AdaptiveCard>}]}`, where the card has `$schema`, `type: "AdaptiveCard"`,
//! `version` (1.4, the newest Teams renders everywhere) and a `body` of
//! `TextBlock`s and a `FactSet`. The workflow answers 202 Accepted.
//!
//! The workflow URL carries its signature (`sig=...`) and is the credential,
//! so it is a [`Secret`].
//!
//! Card text is Markdown, and certificate subjects, SANs, issuers and
//! places come from whoever made the certificate: every text taken from the
//! event goes through [`crate::render::escape_teams`], so no `<at>` mention,
//! link or formatting in them takes effect.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Secret;
use crate::http::{HttpSender, default_timeout_secs};
use crate::render::{Severity, escape_teams as md, render};
use crate::{Event, Notifier, NotifyError};

/// Settings of a Teams channel (`type = "teams"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamsSettings {
    /// The Workflows webhook URL.
    pub webhook_url: Secret,
    /// Seconds to wait for an answer.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

impl TeamsSettings {
    /// Settings for `webhook_url` with the default timeout.
    pub fn new(webhook_url: Secret) -> Self {
        Self {
            webhook_url,
            timeout_secs: default_timeout_secs(),
        }
    }
}

/// Posts events to a Teams channel through a workflow.
#[derive(Debug)]
pub struct TeamsNotifier {
    name: String,
    settings: TeamsSettings,
    http: HttpSender,
}

impl TeamsNotifier {
    /// A Teams notifier called `name`.
    pub fn new(name: impl Into<String>, settings: TeamsSettings) -> Result<Self, NotifyError> {
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

/// The message with its Adaptive Card for `event`.
pub fn payload(event: &Event) -> Value {
    let r = render(event);
    let color = match r.severity {
        Severity::Critical => "Attention",
        Severity::Warning => "Warning",
        Severity::Info => "Default",
    };
    let facts: Vec<Value> = r
        .details
        .iter()
        .map(|(label, value)| json!({ "title": label, "value": md(value) }))
        .collect();
    let card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {
                "type": "TextBlock",
                "text": md(&r.title),
                "weight": "Bolder",
                "size": "Medium",
                "color": color,
                "wrap": true,
            },
            { "type": "TextBlock", "text": md(&r.summary), "wrap": true },
            { "type": "FactSet", "facts": facts },
            {
                "type": "TextBlock",
                "text": format!("{} · Certkeeper · event {}", r.severity, md(&event.id)),
                "isSubtle": true,
                "size": "Small",
                "wrap": true,
            },
        ],
    });
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card,
        }],
    })
}

#[async_trait]
impl Notifier for TeamsNotifier {
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

    #[test]
    fn certificate_text_cannot_mention_link_or_format() {
        let event = Event {
            id: "e1".into(),
            at: chrono::Utc::now(),
            kind: EventKind::CertificateExpired,
            certificate: Some(CertificateSummary {
                subject: format!("CN={HOSTILE}"),
                sans: vec![HOSTILE.into()],
                issuer: format!("CN=**{HOSTILE}**"),
                ..CertificateSummary::default()
            }),
        };
        let card = &payload(&event)["attachments"][0]["content"];
        let mut shown: Vec<String> = card["body"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|block| block["text"].as_str().map(str::to_owned))
            .collect();
        let facts = card["body"][2]["facts"].as_array().unwrap();
        shown.extend(
            facts
                .iter()
                .map(|f| f["value"].as_str().unwrap().to_owned()),
        );
        for text in &shown {
            let lower = text.to_ascii_lowercase();
            assert!(!lower.contains("<at"), "a mention tag is live in {text:?}");
            assert!(!text.contains("[x](http"), "a link is live in {text:?}");
            assert!(!text.contains("*bold*"), "formatting is live in {text:?}");
            assert!(!text.contains("@here"), "a mention is live in {text:?}");
        }
        // Markdown shows `\*bold\*` as `*bold*`: the text reads as it is.
        let read = |t: &str| {
            let mut out = String::new();
            let mut chars = t.chars().filter(|&c| c != '\u{200B}');
            while let Some(c) = chars.next() {
                if c == '\\' {
                    out.extend(chars.next());
                } else {
                    out.push(c);
                }
            }
            out
        };
        let subject = facts
            .iter()
            .find(|f| f["title"] == "Subject")
            .and_then(|f| f["value"].as_str())
            .unwrap();
        assert_eq!(read(subject), format!("CN={HOSTILE}"));
    }
}
