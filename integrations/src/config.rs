//! Channel configuration: one closed enum tagged by `type`.
//!
//! ```toml
//! [notifier.ops-slack]
//! type = "slack"
//! webhook_url = "https://hooks.slack.com/services/..."
//! ```
//!
//! Each variant's settings struct refuses unknown keys, so a misspelt key is
//! an error naming it rather than a silently ignored setting.
//! [`ChannelConfig::build`] turns a configuration into a running
//! [`Notifier`].

use serde::Deserialize;

use crate::discord::{DiscordNotifier, DiscordSettings};
use crate::email::{EmailNotifier, EmailSettings};
use crate::jira::{JiraNotifier, JiraSettings};
use crate::mattermost::{MattermostNotifier, MattermostSettings};
use crate::opsgenie::{OpsgenieNotifier, OpsgenieSettings};
use crate::pagerduty::{PagerDutyNotifier, PagerDutySettings};
use crate::servicenow::{ServiceNowNotifier, ServiceNowSettings};
use crate::slack::{SlackNotifier, SlackSettings};
use crate::sms::{SmsNotifier, SmsSettings};
use crate::teams::{TeamsNotifier, TeamsSettings};
use crate::webhook::{WebhookNotifier, WebhookSettings};
use crate::{AddressGuard, Notifier, NotifyError};

/// The settings of one channel, by `type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChannelConfig {
    /// Signed JSON or CloudEvents POST.
    Webhook(WebhookSettings),
    /// Slack incoming webhook.
    Slack(SlackSettings),
    /// Microsoft Teams Workflows webhook.
    Teams(TeamsSettings),
    /// Mattermost incoming webhook.
    Mattermost(MattermostSettings),
    /// Discord webhook.
    Discord(DiscordSettings),
    /// PagerDuty Events API v2.
    Pagerduty(PagerDutySettings),
    /// Opsgenie Alert API.
    Opsgenie(OpsgenieSettings),
    /// SMS through a Twilio-shaped Messages API.
    Sms(SmsSettings),
    /// Jira issues (REST API v2 or v3).
    Jira(JiraSettings),
    /// ServiceNow incidents (Table API).
    Servicenow(ServiceNowSettings),
    /// E-mail through an SMTP relay.
    Email(EmailSettings),
}

impl ChannelConfig {
    /// The channel's `type`, as written in the config.
    pub fn kind(&self) -> &'static str {
        match self {
            ChannelConfig::Webhook(_) => "webhook",
            ChannelConfig::Slack(_) => "slack",
            ChannelConfig::Teams(_) => "teams",
            ChannelConfig::Mattermost(_) => "mattermost",
            ChannelConfig::Discord(_) => "discord",
            ChannelConfig::Pagerduty(_) => "pagerduty",
            ChannelConfig::Opsgenie(_) => "opsgenie",
            ChannelConfig::Sms(_) => "sms",
            ChannelConfig::Jira(_) => "jira",
            ChannelConfig::Servicenow(_) => "servicenow",
            ChannelConfig::Email(_) => "email",
        }
    }

    /// Whether the channel addresses people (each message goes to the
    /// recipients it is given) rather than one fixed destination.
    pub fn addresses_people(&self) -> bool {
        matches!(self, ChannelConfig::Email(_))
    }

    /// The URL the channel sends to (its host is what matters for an
    /// outbound allow-list), or `None` for SMTP. Secret URLs are exposed
    /// here; callers must not log them.
    pub fn endpoint(&self) -> Option<&str> {
        Some(match self {
            ChannelConfig::Webhook(s) => &s.url,
            ChannelConfig::Slack(s) => s.webhook_url.expose(),
            ChannelConfig::Teams(s) => s.webhook_url.expose(),
            ChannelConfig::Mattermost(s) => s.webhook_url.expose(),
            ChannelConfig::Discord(s) => s.webhook_url.expose(),
            ChannelConfig::Pagerduty(s) => &s.url,
            ChannelConfig::Opsgenie(s) => &s.url,
            ChannelConfig::Sms(s) => &s.url,
            ChannelConfig::Jira(s) => &s.base_url,
            ChannelConfig::Servicenow(s) => &s.instance_url,
            ChannelConfig::Email(_) => return None,
        })
    }

    /// The running notifier called `name`, connecting anywhere; the daemon
    /// uses [`Self::build_guarded`] with its address policy.
    pub fn build(self, name: &str) -> Result<Box<dyn Notifier>, NotifyError> {
        self.build_guarded(name, &AddressGuard::allow_all())
    }

    /// The running notifier called `name`, its HTTP requests connecting only
    /// to addresses `guard` allows, checked at connect time (against DNS
    /// rebinding). E-mail's SMTP connection is not guarded (see [`crate::email`]).
    pub fn build_guarded(
        self,
        name: &str,
        guard: &AddressGuard,
    ) -> Result<Box<dyn Notifier>, NotifyError> {
        Ok(match self {
            ChannelConfig::Webhook(s) => Box::new(WebhookNotifier::new(name, s)?.guarded(guard)?),
            ChannelConfig::Slack(s) => Box::new(SlackNotifier::new(name, s)?.guarded(guard)?),
            ChannelConfig::Teams(s) => Box::new(TeamsNotifier::new(name, s)?.guarded(guard)?),
            ChannelConfig::Mattermost(s) => {
                Box::new(MattermostNotifier::new(name, s)?.guarded(guard)?)
            }
            ChannelConfig::Discord(s) => Box::new(DiscordNotifier::new(name, s)?.guarded(guard)?),
            ChannelConfig::Pagerduty(s) => {
                Box::new(PagerDutyNotifier::new(name, s)?.guarded(guard)?)
            }
            ChannelConfig::Opsgenie(s) => Box::new(OpsgenieNotifier::new(name, s)?.guarded(guard)?),
            ChannelConfig::Sms(s) => Box::new(SmsNotifier::new(name, s)?.guarded(guard)?),
            ChannelConfig::Jira(s) => Box::new(JiraNotifier::new(name, s)?.guarded(guard)?),
            ChannelConfig::Servicenow(s) => {
                Box::new(ServiceNowNotifier::new(name, s)?.guarded(guard)?)
            }
            ChannelConfig::Email(s) => Box::new(EmailNotifier::new(name, s)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: serde_json::Value) -> Result<ChannelConfig, serde_json::Error> {
        serde_json::from_value(value)
    }

    #[test]
    fn every_type_builds_from_its_minimal_settings() {
        let configs = [
            json!({"type": "webhook", "url": "https://example.com/h", "secret": "s"}),
            json!({"type": "slack", "webhook_url": "https://hooks.slack.com/services/x"}),
            json!({"type": "teams", "webhook_url": "https://example.com/workflows/x"}),
            json!({"type": "mattermost", "webhook_url": "https://chat.example.com/hooks/x"}),
            json!({"type": "discord", "webhook_url": "https://discord.com/api/webhooks/1/x"}),
            json!({"type": "pagerduty", "routing_key": "k"}),
            json!({"type": "opsgenie", "api_key": "k"}),
            json!({"type": "sms", "account_sid": "AC1", "auth_token": "t", "from": "+1", "to": "+2"}),
            json!({"type": "jira", "base_url": "https://example.atlassian.net", "project": "OPS",
                   "auth": {"type": "basic", "username": "ops@example.com", "token": "t"}}),
            json!({"type": "servicenow", "instance_url": "https://example.service-now.com",
                   "auth": {"type": "bearer", "token": "t"}}),
            json!({"type": "email", "host": "smtp.example.com", "from": "certkeeper@example.com"}),
        ];
        for config in configs {
            let built = parse(config.clone())
                .unwrap_or_else(|e| panic!("{config}: {e}"))
                .build("n")
                .unwrap();
            assert_eq!(built.name(), "n");
        }
    }

    #[tokio::test]
    async fn built_guarded_every_http_channel_refuses_a_denied_address() {
        let guard = AddressGuard::new(|ip| {
            if ip.is_loopback() {
                Err("a loopback address".into())
            } else {
                Ok(())
            }
        });
        let event = crate::conformance::sample_event("certificate_expired").unwrap();
        let configs = [
            json!({"type": "webhook", "url": "http://localhost:9/h", "secret": "webhook-secret"}),
            json!({"type": "slack", "webhook_url": "http://localhost:9/services/x"}),
            json!({"type": "teams", "webhook_url": "http://localhost:9/workflows/x"}),
            json!({"type": "jira", "base_url": "http://localhost:9", "project": "OPS",
                   "auth": {"type": "basic", "username": "ops@example.com", "token": "jira-api-token"}}),
        ];
        for config in configs {
            let notifier = parse(config.clone())
                .unwrap()
                .build_guarded("n", &guard)
                .unwrap();
            let err = notifier.send(&event).await.unwrap_err();
            assert!(
                err.message.contains("localhost resolves to")
                    && err.message.contains("not allowed"),
                "{config}: {}",
                err.message
            );
        }
    }

    #[test]
    fn a_misspelt_key_is_refused_with_its_name() {
        let err = parse(json!({
            "type": "slack",
            "webhook_url": "https://hooks.slack.com/services/x",
            "timeout_sec": 5,
        }))
        .unwrap_err();
        assert!(err.to_string().contains("timeout_sec"), "{err}");
        let err =
            parse(json!({"type": "pagerduty", "routing_key": "k", "rooting": 1})).unwrap_err();
        assert!(err.to_string().contains("rooting"), "{err}");
    }

    #[test]
    fn an_unknown_type_is_refused() {
        let err = parse(json!({"type": "pager", "routing_key": "k"})).unwrap_err();
        assert!(err.to_string().contains("pager"), "{err}");
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let config = parse(json!({"type": "opsgenie", "api_key": "genie-secret-key"})).unwrap();
        assert!(!format!("{config:?}").contains("genie-secret-key"));
    }
}
