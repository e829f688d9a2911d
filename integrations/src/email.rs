//! E-mail over SMTP: one message per event, to the configured addresses and
//! the people an event names.
//!
//! Each event becomes one `multipart/alternative` message
//! ([RFC 2046 §5.1.4](https://www.rfc-editor.org/rfc/rfc2046#section-5.1.4)):
//! a `text/plain` part ([`Rendered::plain_text`]) and a `text/html` part with
//! the title as heading, the summary as a paragraph and the details as a
//! table, every value HTML-escaped. The subject is `{subject_prefix} {title}`.
//! `Message-ID` is derived from the event id and the recipients, so a retried
//! delivery carries the same id and mail clients show it once;
//! `X-Certkeeper-Event` carries the event id and `X-Certkeeper-Severity`
//! the severity, for mail filters, and `Auto-Submitted: auto-generated`
//! ([RFC 3834](https://www.rfc-editor.org/rfc/rfc3834)) keeps vacation
//! responders from answering.
//!
//! The message goes to a relay in one SMTP transaction
//! ([RFC 5321](https://www.rfc-editor.org/rfc/rfc5321)): by default message
//! submission on port 587 with STARTTLS
//! ([RFC 6409](https://www.rfc-editor.org/rfc/rfc6409)), or implicit TLS on
//! port 465 ([RFC 8314](https://www.rfc-editor.org/rfc/rfc8314)), or plain
//! SMTP on port 25 for a relay on the same host or network. STARTTLS is
//! required, never opportunistic: a relay that does not offer it is an
//! error, not a plain-text delivery. Credentials (`AUTH PLAIN` or `LOGIN`)
//! are only ever sent over TLS. The client is
//! [lettre](https://docs.rs/lettre/0.11/lettre/) with rustls; the server
//! certificate is checked against the platform's trust roots plus
//! `ca_file`.
//!
//! A relay's 5xx reply (bad credentials, relaying denied, no such mailbox)
//! is [`ErrorClass::Permanent`]; 4xx replies, connection failures, TLS
//! failures and timeouts are [`ErrorClass::Transient`]. As SMTP makes one
//! transaction of all recipients, one refused recipient fails the delivery
//! for all of them, and the error names it.
//!
//! The relay's connection is not checked against an [`crate::AddressGuard`]
//! yet: lettre resolves the relay's name itself and offers no resolver hook,
//! so only the daemon's check of the host at start applies to it.
//!
//! ```toml
//! [notifier.ops-mail]
//! type = "email"
//! host = "smtp.example.com"
//! # port = 587                  # default by tls: 587 starttls, 465 implicit, 25 none
//! # tls = "starttls"            # or "implicit", "none"
//! username = "certkeeper"
//! password = "..."
//! from = "Certkeeper <certkeeper@example.com>"
//! to = ["pki-team@example.com"]
//! # ca_file = "/etc/certkeeper/mail-relay-ca.pem"
//! # timeout_secs = 10
//! # subject_prefix = "[Certkeeper]"
//! ```

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Deserialize;

use crate::Secret;
use crate::http::default_timeout_secs;
use crate::render::{Rendered, render};
use crate::{ErrorClass, Event, Notifier, NotifyError};

/// Subject prefix unless configured otherwise.
pub const DEFAULT_SUBJECT_PREFIX: &str = "[Certkeeper]";

/// Right-hand side of every `Message-ID`.
const MESSAGE_ID_DOMAIN: &str = "certkeeper";

/// Longest event-id part of a `Message-ID`; the hash keeps it unique.
const MESSAGE_ID_EVENT_CHARS: usize = 64;

/// How the connection to the relay is protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// Plain SMTP upgraded with STARTTLS, which the relay must offer
    /// (RFC 3207); port 587 by default.
    #[default]
    Starttls,
    /// TLS from the first byte (RFC 8314); port 465 by default.
    Implicit,
    /// No TLS at all, for a relay on the same host or a trusted network;
    /// port 25 by default. Refuses credentials.
    None,
}

impl TlsMode {
    /// The port used when `port` is not set.
    pub fn default_port(self) -> u16 {
        match self {
            TlsMode::Starttls => 587,
            TlsMode::Implicit => 465,
            TlsMode::None => 25,
        }
    }
}

/// Settings of an e-mail channel (`type = "email"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailSettings {
    /// The SMTP relay's host name (also the name its certificate must carry).
    pub host: String,
    /// The relay's port; by `tls` when unset: 587, 465 or 25.
    #[serde(default)]
    pub port: Option<u16>,
    /// `starttls` (default), `implicit` or `none`.
    #[serde(default)]
    pub tls: TlsMode,
    /// SMTP AUTH user; set together with `password`, or neither.
    #[serde(default)]
    pub username: Option<String>,
    /// SMTP AUTH password; set together with `username`, or neither.
    #[serde(default)]
    pub password: Option<Secret>,
    /// The sender: `certkeeper@example.com` or `Certkeeper <certkeeper@example.com>`.
    pub from: String,
    /// Addresses every message goes to. May be empty when every event
    /// brings its own recipients (owners, contacts).
    #[serde(default)]
    pub to: Vec<String>,
    /// PEM file of extra trust roots, for a relay with a private CA.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate. For tests only: anyone on the path
    /// can then read the messages and the password.
    #[serde(default)]
    pub accept_invalid_certs: bool,
    /// Seconds to wait for the connection and for each reply of the relay.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Put before every subject.
    #[serde(default = "default_subject_prefix")]
    pub subject_prefix: String,
}

fn default_subject_prefix() -> String {
    DEFAULT_SUBJECT_PREFIX.into()
}

impl EmailSettings {
    /// Settings for a relay and a sender, other fields at their defaults
    /// (STARTTLS on 587, no credentials, no default recipients).
    pub fn new(host: impl Into<String>, from: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            port: None,
            tls: TlsMode::default(),
            username: None,
            password: None,
            from: from.into(),
            to: Vec::new(),
            ca_file: None,
            accept_invalid_certs: false,
            timeout_secs: default_timeout_secs(),
            subject_prefix: default_subject_prefix(),
        }
    }

    /// The port connected to: `port`, else the default of `tls`.
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or_else(|| self.tls.default_port())
    }
}

/// Mails events through an SMTP relay.
pub struct EmailNotifier {
    name: String,
    host: String,
    port: u16,
    tls: TlsMode,
    authenticated: bool,
    from: Mailbox,
    to: Vec<Mailbox>,
    subject_prefix: String,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    /// The longest one message can take: each SMTP command of a
    /// transaction (connect, EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA...)
    /// at `timeout_secs`.
    max_send: Duration,
    /// The password in every form a relay could echo it, longest first.
    scrub: Vec<String>,
}

impl fmt::Debug for EmailNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailNotifier")
            .field("name", &self.name)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("authenticated", &self.authenticated)
            .field("from", &self.from.to_string())
            .field(
                "to",
                &self.to.iter().map(ToString::to_string).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// SMTP commands of one transaction, each bounded by `timeout_secs`: the
/// connection and greeting, EHLO, STARTTLS, EHLO again, AUTH, MAIL, RCPT
/// (a few), DATA and the message, QUIT.
const SMTP_COMMANDS: u64 = 12;

impl EmailNotifier {
    /// An e-mail notifier called `name`; checks the settings and reads
    /// `ca_file`, but does not connect.
    pub fn new(name: impl Into<String>, settings: EmailSettings) -> Result<Self, NotifyError> {
        let name = name.into();
        let refuse = |message: String| NotifyError {
            notifier: name.clone(),
            message,
            class: ErrorClass::Permanent,
        };
        if settings.host.trim().is_empty() {
            return Err(refuse("`host` is empty".into()));
        }
        if settings.timeout_secs == 0 {
            return Err(refuse("`timeout_secs` must be at least 1".into()));
        }
        let credentials = match (&settings.username, &settings.password) {
            (Some(user), Some(password)) => Some((user.clone(), password.clone())),
            (None, None) => None,
            _ => {
                return Err(refuse(
                    "`username` and `password` go together: set both or neither".into(),
                ));
            }
        };
        if settings.tls == TlsMode::None {
            let unused = [
                (credentials.is_some(), "`username` and `password`"),
                (settings.ca_file.is_some(), "`ca_file`"),
                (settings.accept_invalid_certs, "`accept_invalid_certs`"),
            ];
            if let Some((_, what)) = unused.iter().find(|(set, _)| *set) {
                return Err(refuse(format!(
                    "{what} need tls = \"starttls\" or \"implicit\" (tls = \"none\" would \
                     send credentials in clear text, and has no certificate to check)"
                )));
            }
        }
        let from: Mailbox = settings
            .from
            .parse()
            .map_err(|e| refuse(format!("invalid `from` address {:?}: {e}", settings.from)))?;
        let mut to = Vec::new();
        for address in &settings.to {
            let mailbox: Mailbox = address
                .parse()
                .map_err(|e| refuse(format!("invalid `to` address {address:?}: {e}")))?;
            to.push(mailbox);
        }
        let to = merge(to, Vec::new());

        let port = settings.effective_port();
        let host = settings.host.trim().to_owned();
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
            .port(port)
            .timeout(Some(Duration::from_secs(settings.timeout_secs)));
        if settings.tls != TlsMode::None {
            let mut params = TlsParameters::builder(host.clone())
                .dangerous_accept_invalid_certs(settings.accept_invalid_certs);
            if let Some(path) = &settings.ca_file {
                params = params.add_root_certificate(read_ca_file(path).map_err(refuse)?);
            }
            let params = params
                .build_rustls()
                .map_err(|e| refuse(format!("cannot set up TLS: {e}")))?;
            builder = builder.tls(match settings.tls {
                TlsMode::Implicit => Tls::Wrapper(params),
                _ => Tls::Required(params),
            });
        }
        let mut scrub = Vec::new();
        if let Some((user, password)) = &credentials {
            builder =
                builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
            scrub = scrub_forms(user, password);
        }
        Ok(Self {
            name,
            host,
            port,
            tls: settings.tls,
            authenticated: credentials.is_some(),
            from,
            to,
            subject_prefix: settings.subject_prefix,
            transport: builder.build(),
            max_send: Duration::from_secs(settings.timeout_secs.saturating_mul(SMTP_COMMANDS)),
            scrub,
        })
    }

    /// The recipients of a delivery: the configured `to` and the e-mail
    /// addresses among `extra`, once each (compared case-insensitively).
    /// Entries without `@` (phone numbers, for SMS) are ignored; malformed
    /// addresses are skipped with a warning.
    pub fn recipients(&self, extra: &[String]) -> Result<Vec<Mailbox>, NotifyError> {
        let mut parsed = Vec::new();
        for recipient in extra.iter().map(|r| r.trim()) {
            if !recipient.contains('@') {
                continue;
            }
            match recipient.parse::<Mailbox>() {
                Ok(mailbox) => parsed.push(mailbox),
                Err(e) => tracing::warn!(
                    notifier = %self.name,
                    recipient = %recipient,
                    error = %e,
                    "skipping an invalid e-mail recipient"
                ),
            }
        }
        let all = merge(self.to.clone(), parsed);
        if all.is_empty() {
            return Err(self.error(
                ErrorClass::Permanent,
                "no valid e-mail recipient: `to` is empty and the event named none",
            ));
        }
        Ok(all)
    }

    /// The message for `event` to `recipients`, as it is sent.
    pub fn message(&self, event: &Event, recipients: &[Mailbox]) -> Result<Message, NotifyError> {
        let rendered = render(event);
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(subject(&self.subject_prefix, &rendered.title))
            .message_id(Some(message_id(&event.id, recipients)))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("X-Certkeeper-Event"),
                single_line(&event.id),
            ))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("X-Certkeeper-Severity"),
                rendered.severity.as_str().to_owned(),
            ))
            // RFC 3834: machine-sent, so vacation responders stay quiet.
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("Auto-Submitted"),
                "auto-generated".to_owned(),
            ));
        for mailbox in recipients {
            builder = builder.to(mailbox.clone());
        }
        let mut text = format!("{}\n", rendered.plain_text());
        let attachment = match &event.kind {
            crate::EventKind::ReportReady { location, .. } => match report_attachment(location) {
                Ok(part) => Some(part),
                Err(why) => {
                    text.push_str(&format!("\nThe report is not attached: {why}.\n"));
                    None
                }
            },
            _ => None,
        };
        let body = MultiPart::alternative_plain_html(text, html(&rendered, &event.id));
        let body = match attachment {
            Some(part) => MultiPart::mixed().multipart(body).singlepart(part),
            None => body,
        };
        builder.multipart(body).map_err(|e| {
            self.error(
                ErrorClass::Permanent,
                format!("cannot build the message: {e}"),
            )
        })
    }

    /// An error of this notifier, with the password scrubbed in every form.
    fn error(&self, class: ErrorClass, message: impl Into<String>) -> NotifyError {
        let mut message = message.into();
        for secret in &self.scrub {
            message = message.replace(secret.as_str(), "[redacted]");
        }
        NotifyError {
            notifier: self.name.clone(),
            message,
            class,
        }
    }
}

#[async_trait]
impl Notifier for EmailNotifier {
    fn name(&self) -> &str {
        &self.name
    }

    fn max_send_time(&self) -> Duration {
        self.max_send
    }

    async fn send(&self, event: &Event) -> Result<(), NotifyError> {
        self.send_to(event, &[]).await
    }

    async fn send_to(&self, event: &Event, recipients: &[String]) -> Result<(), NotifyError> {
        let recipients = self.recipients(recipients)?;
        let message = self.message(event, &recipients)?;
        match self.transport.send(message).await {
            Ok(response) => {
                tracing::debug!(
                    notifier = %self.name,
                    event = %event.id,
                    recipients = recipients.len(),
                    reply = %response.code(),
                    "mailed"
                );
                Ok(())
            }
            Err(e) => {
                let class = classify(&e);
                Err(self.error(class, format!("{}:{}: {e}", self.host, self.port)))
            }
        }
    }
}

/// Largest report attached to a `report_ready` message; bigger ones are
/// announced with their location only (mail relays commonly refuse
/// messages over 10–25 MB).
pub const MAX_ATTACHMENT_BYTES: u64 = 10 * 1024 * 1024;

/// The report file at `location` as an attachment, or why it is not one.
fn report_attachment(location: &str) -> Result<SinglePart, String> {
    let path = std::path::Path::new(location);
    let size = std::fs::metadata(path)
        .map_err(|e| format!("cannot read {location}: {e}"))?
        .len();
    if size > MAX_ATTACHMENT_BYTES {
        return Err(format!(
            "it is {size} bytes, over the {MAX_ATTACHMENT_BYTES}-byte limit; it is at {location}"
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {location}: {e}"))?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("report")
        .to_owned();
    let mime = match path.extension().and_then(|e| e.to_str()) {
        Some("csv") => "text/csv; charset=utf-8",
        Some("json") => "application/json",
        Some("html") => "text/html; charset=utf-8",
        Some("pdf") => "application/pdf",
        _ => "application/octet-stream",
    };
    let content_type = lettre::message::header::ContentType::parse(mime)
        .map_err(|e| format!("content type {mime}: {e}"))?;
    Ok(Attachment::new(name).body(bytes, content_type))
}

/// The delivery class of a failed SMTP delivery.
fn classify(error: &lettre::transport::smtp::Error) -> ErrorClass {
    if error.is_permanent() || error.is_client() {
        // A 5xx reply, or a relay lacking what the settings require
        // (STARTTLS, an AUTH mechanism): the same again fails the same way.
        ErrorClass::Permanent
    } else {
        // 4xx replies, connection, network and TLS failures, timeouts.
        ErrorClass::Transient
    }
}

/// The extra trust roots of `ca_file`.
fn read_ca_file(path: &std::path::Path) -> Result<Certificate, String> {
    let pem = std::fs::read(path)
        .map_err(|e| format!("cannot read `ca_file` {}: {e}", path.display()))?;
    // lettre takes any PEM, even one without a certificate; say so here.
    let count = openssl::x509::X509::stack_from_pem(&pem).map_or(0, |certs| certs.len());
    if count == 0 {
        return Err(format!(
            "`ca_file` {} holds no PEM certificate",
            path.display()
        ));
    }
    Certificate::from_pem(&pem).map_err(|e| format!("cannot use `ca_file` {}: {e}", path.display()))
}

/// The password as a relay might echo it: itself, and base64 of the
/// AUTH PLAIN and LOGIN exchanges.
fn scrub_forms(user: &str, password: &Secret) -> Vec<String> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let password = password.expose();
    let mut forms: Vec<String> = [
        password.to_owned(),
        b64(password),
        b64(&format!("\0{user}\0{password}")),
    ]
    .into_iter()
    .filter(|s| !s.is_empty())
    .collect();
    forms.sort_by_key(|s| std::cmp::Reverse(s.len()));
    forms.dedup();
    forms
}

/// `first` then `more`, each address once (compared case-insensitively),
/// in order of first appearance.
fn merge(first: Vec<Mailbox>, more: Vec<Mailbox>) -> Vec<Mailbox> {
    let mut seen = std::collections::HashSet::new();
    first
        .into_iter()
        .chain(more)
        .filter(|m| seen.insert(m.email.to_string().to_lowercase()))
        .collect()
}

/// `{prefix} {title}` on one line.
fn subject(prefix: &str, title: &str) -> String {
    let prefix = single_line(prefix);
    let title = single_line(title);
    if prefix.is_empty() {
        title
    } else {
        format!("{prefix} {title}")
    }
}

/// `text` with line breaks and other control characters turned into single
/// spaces: header values must not carry them.
fn single_line(text: &str) -> String {
    text.split(|c: char| c.is_control() || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `<{event id}.{hash}@certkeeper>`: the event id reduced to characters a
/// Message-ID may hold, and a hash of the exact id and the recipients, so the
/// same delivery retried has the same id and different ones never share it.
pub fn message_id(event_id: &str, recipients: &[Mailbox]) -> String {
    let mut local: String = event_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(MESSAGE_ID_EVENT_CHARS)
        .collect();
    if local.is_empty() {
        local.push_str("event");
    }
    let mut addresses: Vec<String> = recipients
        .iter()
        .map(|m| m.email.to_string().to_lowercase())
        .collect();
    addresses.sort();
    addresses.dedup();
    let digest = openssl::sha::sha256(format!("{event_id}\n{}", addresses.join("\n")).as_bytes());
    let hash = hex::encode(&digest[..8]);
    format!("<{local}.{hash}@{MESSAGE_ID_DOMAIN}>")
}

/// The HTML part: title, summary, details table and a footer naming the
/// event, every value escaped.
fn html(rendered: &Rendered, event_id: &str) -> String {
    let mut rows = String::new();
    for (label, value) in &rendered.details {
        rows.push_str(&format!(
            "<tr><th style=\"text-align:left;vertical-align:top;padding:2px 12px 2px 0\">{}</th>\
             <td style=\"padding:2px 0\">{}</td></tr>\n",
            escape_html(label),
            escape_html(value)
        ));
    }
    format!(
        "<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\"><title>{title}</title></head>\n\
         <body style=\"font-family:sans-serif\">\n<h2>{title}</h2>\n<p>{summary}</p>\n\
         <table class=\"details\">\n{rows}</table>\n\
         <p style=\"color:#666;font-size:small\">Certkeeper event {id}, severity {severity}.</p>\n\
         </body>\n</html>\n",
        title = escape_html(&rendered.title),
        summary = escape_html(&rendered.summary),
        id = escape_html(event_id),
        severity = rendered.severity,
    )
}

/// `text` safe inside HTML elements and quoted attribute values.
fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::sample_event;

    fn settings() -> EmailSettings {
        let mut s = EmailSettings::new("smtp.example.com", "Certkeeper <ck@example.com>");
        s.to = vec!["pki@example.com".into()];
        s
    }

    fn notifier(s: EmailSettings) -> EmailNotifier {
        EmailNotifier::new("mail", s).unwrap()
    }

    fn addresses(mailboxes: &[Mailbox]) -> Vec<String> {
        mailboxes.iter().map(|m| m.email.to_string()).collect()
    }

    #[test]
    fn ports_default_by_tls_mode() {
        let mut s = settings();
        assert_eq!(s.effective_port(), 587);
        s.tls = TlsMode::Implicit;
        assert_eq!(s.effective_port(), 465);
        s.tls = TlsMode::None;
        assert_eq!(s.effective_port(), 25);
        s.port = Some(2525);
        assert_eq!(s.effective_port(), 2525);
    }

    #[test]
    fn settings_are_checked_when_built() {
        let err = |s: EmailSettings| EmailNotifier::new("mail", s).unwrap_err();

        let mut s = settings();
        s.username = Some("ck".into());
        let e = err(s);
        assert!(e.message.contains("set both or neither"), "{}", e.message);
        assert_eq!(e.class, ErrorClass::Permanent);

        let mut s = settings();
        s.password = Some(Secret::new("pw"));
        assert!(err(s).message.contains("set both or neither"));

        let mut s = settings();
        s.from = "not an address".into();
        assert!(err(s).message.contains("invalid `from` address"));

        let mut s = settings();
        s.to.push("nobody@".into());
        assert!(err(s).message.contains("invalid `to` address \"nobody@\""));

        let mut s = settings();
        (s.tls, s.username, s.password) =
            (TlsMode::None, Some("ck".into()), Some(Secret::new("pw")));
        assert!(err(s).message.contains("clear text"));

        let mut s = settings();
        s.ca_file = Some("/nonexistent/ca.pem".into());
        assert!(err(s).message.contains("cannot read `ca_file`"));

        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").unwrap();
        let mut s = settings();
        s.ca_file = Some(empty);
        assert!(err(s).message.contains("holds no PEM certificate"));

        let mut s = settings();
        s.to.clear();
        assert!(EmailNotifier::new("mail", s).is_ok(), "`to` may be empty");
    }

    #[test]
    fn a_misspelt_key_is_refused_with_its_name() {
        let e = serde_json::from_value::<EmailSettings>(serde_json::json!({
            "host": "smtp.example.com", "from": "ck@example.com", "subject_prefx": "x",
        }))
        .unwrap_err();
        assert!(e.to_string().contains("subject_prefx"), "{e}");
        let e = serde_json::from_value::<EmailSettings>(serde_json::json!({
            "host": "smtp.example.com", "from": "ck@example.com", "tls": "ssl",
        }))
        .unwrap_err();
        assert!(e.to_string().contains("ssl"), "{e}");
    }

    #[test]
    fn html_escaping_covers_markup_and_quotes() {
        assert_eq!(
            escape_html(r#"<a href="x">R&D's</a>"#),
            "&lt;a href=&quot;x&quot;&gt;R&amp;D&#39;s&lt;/a&gt;"
        );
        let event = sample_event("job_failed").unwrap();
        let body = html(&render(&event), "id<1>");
        assert!(body.contains("&lt;scanner&gt; &amp; co"), "{body}");
        assert!(!body.contains("<scanner>"));
        assert!(body.contains("event id&lt;1&gt;"));
    }

    #[test]
    fn recipients_merge_without_duplicates_and_skip_what_is_not_email() {
        let n = notifier(settings());
        let got = n
            .recipients(&[
                "PKI@Example.com".into(),
                "+15551234".into(),
                "Web Oncall <web-oncall@example.com>".into(),
                "broken@".into(),
                "web-oncall@EXAMPLE.com".into(),
            ])
            .unwrap();
        assert_eq!(
            addresses(&got),
            ["pki@example.com", "web-oncall@example.com"]
        );

        let mut s = settings();
        s.to.clear();
        let n = notifier(s);
        let e = n
            .recipients(&["+15551234".into(), "x@".into()])
            .unwrap_err();
        assert_eq!(e.class, ErrorClass::Permanent);
        assert!(
            e.message.contains("no valid e-mail recipient"),
            "{}",
            e.message
        );
    }

    #[test]
    fn message_id_is_stable_and_depends_on_event_and_recipients() {
        let a: Vec<Mailbox> = vec!["a@example.com".parse().unwrap()];
        let ab: Vec<Mailbox> = vec![
            "B@example.com".parse().unwrap(),
            "a@example.com".parse().unwrap(),
        ];
        let ba: Vec<Mailbox> = vec![
            "a@example.com".parse().unwrap(),
            "b@example.com".parse().unwrap(),
        ];
        let id = message_id("sample-certificate_expiring", &a);
        assert_eq!(id, message_id("sample-certificate_expiring", &a));
        assert!(id.starts_with("<sample-certificate_expiring."), "{id}");
        assert!(id.ends_with("@certkeeper>"), "{id}");
        assert_eq!(message_id("e", &ab), message_id("e", &ba));
        assert_ne!(message_id("e", &a), message_id("e", &ab));
        // Sanitising maps both to `a-b`; the hash still tells them apart.
        assert_ne!(message_id("a/b", &a), message_id("a:b", &a));
        let odd = message_id("<x y>\r\n@z", &a);
        assert!(
            odd[1..odd.len() - 1]
                .chars()
                .all(|c| c != '<' && c != '>' && !c.is_whitespace())
        );

        // The built message carries it, the same on every build.
        let n = notifier(settings());
        let event = sample_event("certificate_expiring").unwrap();
        let recipients = n.recipients(&[]).unwrap();
        let first = String::from_utf8(n.message(&event, &recipients).unwrap().formatted()).unwrap();
        let again = String::from_utf8(n.message(&event, &recipients).unwrap().formatted()).unwrap();
        let header = |m: &str| {
            m.lines()
                .find(|l| l.starts_with("Message-ID:"))
                .map(str::to_owned)
        };
        assert!(header(&first).is_some(), "{first}");
        assert_eq!(header(&first), header(&again));
        assert!(
            first.contains("X-Certkeeper-Event: sample-certificate_expiring"),
            "{first}"
        );
        assert!(first.contains("X-Certkeeper-Severity: critical"), "{first}");
        assert!(
            first.contains("Subject: [Certkeeper] Certificate expires in 5 days: www.example.com"),
            "{first}"
        );
    }

    #[test]
    fn subjects_and_headers_stay_on_one_line() {
        assert_eq!(subject("[CK]", "a\r\nb\tc"), "[CK] a b c");
        assert_eq!(subject("", "title"), "title");
        assert_eq!(
            single_line("id\r\nBcc: x@example.com"),
            "id Bcc: x@example.com"
        );
    }

    #[test]
    fn credentials_reach_the_transport_but_no_debug_output() {
        let mut s = settings();
        (s.username, s.password) = (Some("ck".into()), Some(Secret::new("hunter2-smtp")));
        assert!(!format!("{s:?}").contains("hunter2-smtp"));
        let n = notifier(s);
        let debug = format!("{n:?}");
        assert!(debug.contains("authenticated: true"), "{debug}");
        assert!(!debug.contains("hunter2-smtp"), "{debug}");
        // lettre's own Debug shows that credentials are set, never their value.
        let transport = format!("{:?}", n.transport);
        assert!(
            transport.contains("credentials: Some(Credentials"),
            "{transport}"
        );
        assert!(!transport.contains("hunter2-smtp"), "{transport}");
        assert!(!format!("{:?}", notifier(settings()).transport).contains("credentials: Some"));
    }

    #[test]
    fn errors_never_carry_the_password() {
        let mut s = settings();
        (s.username, s.password) = (Some("ck".into()), Some(Secret::new("hunter2-smtp")));
        let n = notifier(s);
        let plain = base64::engine::general_purpose::STANDARD.encode("\0ck\0hunter2-smtp");
        let e = n.error(
            ErrorClass::Permanent,
            format!("535 5.7.8 bad: hunter2-smtp {plain}"),
        );
        assert!(!e.message.contains("hunter2-smtp"), "{}", e.message);
        assert!(!e.message.contains(&plain), "{}", e.message);
    }
}
