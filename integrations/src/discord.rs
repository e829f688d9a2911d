//! Discord: "Execute Webhook" with an embed.
//!
//! Follows Discord's webhook reference
//! (<https://discord.com/developers/docs/resources/webhook#execute-webhook>):
//! `POST /webhooks/{webhook.id}/{webhook.token}` (the configured URL) with a
//! JSON body that has `content` (at most 2000 characters) and/or `embeds`
//! (at most 10; an embed's `title` at most 256 characters, `description`
//! 4096, up to 25 `fields` of `{name ≤ 256, value ≤ 1024, inline}`, `color`
//! as an integer, `timestamp` in ISO 8601). `allowed_mentions` with an empty
//! `parse` list keeps names from certificates (`@everyone`) from pinging
//! anyone. Without `?wait=true` Discord answers 204 No Content.
//! The webhook token in the URL is the credential, so the URL is a [`Secret`].

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Secret;
use crate::http::{HttpSender, default_timeout_secs};
use crate::render::{Severity, escape_markdown as md, render, truncate};
use crate::{Event, Notifier, NotifyError};

/// Settings of a Discord channel (`type = "discord"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscordSettings {
    /// The webhook URL (`https://discord.com/api/webhooks/<id>/<token>`).
    pub webhook_url: Secret,
    /// Name to post as instead of the webhook's own.
    #[serde(default)]
    pub username: Option<String>,
    /// Seconds to wait for an answer.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

impl DiscordSettings {
    /// Settings for `webhook_url`, other fields at their defaults.
    pub fn new(webhook_url: Secret) -> Self {
        Self {
            webhook_url,
            username: None,
            timeout_secs: default_timeout_secs(),
        }
    }
}

/// Posts events to a Discord channel.
#[derive(Debug)]
pub struct DiscordNotifier {
    name: String,
    settings: DiscordSettings,
    http: HttpSender,
}

impl DiscordNotifier {
    /// A Discord notifier called `name`.
    pub fn new(name: impl Into<String>, settings: DiscordSettings) -> Result<Self, NotifyError> {
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
            Severity::Critical => 0xD0_00_00,
            Severity::Warning => 0xE8_A3_17,
            Severity::Info => 0x2F_7B_D9,
        };
        let fields: Vec<Value> = r
            .details
            .iter()
            .take(25)
            .map(|(label, value)| {
                json!({
                    "name": truncate(label, 256),
                    "value": truncate(&md(value), 1024),
                    "inline": value.len() < 40,
                })
            })
            .collect();
        let mut body = json!({
            "content": truncate(&md(&r.title), 2000),
            "embeds": [{
                "title": truncate(&md(&r.title), 256),
                "description": truncate(&md(&r.summary), 4096),
                "color": color,
                "fields": fields,
                "timestamp": event.at.to_rfc3339(),
                "footer": { "text": format!("{} · Certkeeper · event {}", r.severity, event.id) },
            }],
            "allowed_mentions": { "parse": [] },
        });
        if let Some(username) = &self.settings.username {
            body["username"] = json!(username);
        }
        body
    }
}

#[async_trait]
impl Notifier for DiscordNotifier {
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
