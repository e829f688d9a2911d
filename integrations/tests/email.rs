//! The e-mail channel against a real Postfix (and Dovecot for SMTP AUTH),
//! each test with a private instance on free loopback ports (see
//! `mta/mod.rs`): messages are read back from the Maildirs Postfix
//! delivered them to, and refusals are Postfix's own replies.

#![allow(clippy::unwrap_used)]

mod mta;

use std::collections::BTreeSet;

use certkeeper_integrations::Secret;
use certkeeper_integrations::conformance::{sample_event, sample_events};
use certkeeper_integrations::email::{EmailNotifier, EmailSettings, TlsMode, message_id};
use certkeeper_integrations::render::render;
use certkeeper_integrations::{ErrorClass, Event, Notifier};
use mailparse::{MailHeaderMap, ParsedMail};
use mta::{DOMAIN, Mta, Sasl};

const FROM: &str = "Certkeeper <certkeeper@certkeeper.test>";

fn settings(mta: &Mta, tls: TlsMode) -> EmailSettings {
    let mut s = EmailSettings::new("127.0.0.1", FROM);
    s.tls = tls;
    s.port = Some(match tls {
        TlsMode::Implicit => mta.smtps_port,
        _ => mta.smtp_port,
    });
    if tls != TlsMode::None {
        s.ca_file = Some(mta.ca_file());
    }
    s.timeout_secs = 5;
    s
}

fn header(mail: &ParsedMail<'_>, name: &str) -> String {
    mail.headers
        .get_first_value(name)
        .unwrap_or_else(|| panic!("no {name} header"))
}

/// The text and HTML bodies of a multipart/alternative message.
fn alternative_parts(mail: &ParsedMail<'_>) -> (String, String) {
    assert_eq!(mail.ctype.mimetype, "multipart/alternative");
    let part = |mime: &str| {
        mail.subparts
            .iter()
            .find(|p| p.ctype.mimetype == mime)
            .unwrap_or_else(|| panic!("no {mime} part"))
            .get_body()
            .unwrap()
    };
    (part("text/plain"), part("text/html"))
}

fn sample(kind: &str) -> Event {
    sample_event(kind).unwrap()
}

#[tokio::test]
async fn starttls_delivers_one_multipart_message_to_every_recipient() {
    let users = ["pki-team", "ssladmin", "web-oncall"];
    let mta = Mta::start(&users, None);
    let mut s = settings(&mta, TlsMode::Starttls);
    s.to = vec![format!("pki-team@{DOMAIN}")];
    let notifier = EmailNotifier::new("mail", s).unwrap();

    let mut event = sample("certificate_expiring");
    // A value that must be escaped in the HTML part.
    event.certificate.as_mut().unwrap().org_unit = Some("R&D <Web> \"Platform\"".into());
    let recipients = [
        format!("ssladmin@{DOMAIN}"),
        format!("web-oncall@{DOMAIN}"),
        // Duplicates (by case), a phone number for SMS and a broken
        // address: none of these gets a second message or an error.
        format!("SSLAdmin@{}", DOMAIN.to_uppercase()),
        "+15551234".into(),
        "broken@".into(),
    ];
    notifier.send_to(&event, &recipients).await.unwrap();

    let rendered = render(&event);
    let expected_id = message_id(&event.id, &notifier.recipients(&recipients).unwrap());
    for user in users {
        let mail = mta.wait_for_mail(user, 1);
        assert_eq!(mail.len(), 1, "{user} got one message");
        let mail = mailparse::parse_mail(&mail[0]).unwrap();
        assert_eq!(header(&mail, "From"), FROM);
        let to: BTreeSet<String> = header(&mail, "To")
            .split(',')
            .map(|a| a.trim().to_lowercase())
            .collect();
        let all: BTreeSet<String> = users.iter().map(|u| format!("{u}@{DOMAIN}")).collect();
        assert_eq!(to, all, "one To header with each recipient once");
        let subject = header(&mail, "Subject");
        assert_eq!(subject, format!("[Certkeeper] {}", rendered.title));
        assert!(subject.contains("www.example.com"), "{subject}");
        assert_eq!(header(&mail, "Message-ID"), expected_id);
        assert_eq!(header(&mail, "X-Certkeeper-Event"), event.id);
        assert_eq!(header(&mail, "X-Certkeeper-Severity"), "critical");
        assert_eq!(header(&mail, "Auto-Submitted"), "auto-generated");
        // Postfix says the message came in over TLS.
        let received = header(&mail, "Received");
        assert!(received.contains("ESMTPS"), "{received}");

        let (text, html) = alternative_parts(&mail);
        assert_eq!(text.replace("\r\n", "\n").trim_end(), rendered.plain_text());
        assert!(text.contains("Owner: R&D <Web> \"Platform\""), "{text}");
        assert!(
            html.contains(&format!("<h2>{}</h2>", rendered.title)),
            "{html}"
        );
        assert!(html.contains("<table class=\"details\">"), "{html}");
        assert!(
            html.contains(">Fingerprint (SHA-256)</th>")
                && html.contains(&event.certificate.as_ref().unwrap().fingerprint),
            "{html}"
        );
        assert!(
            html.contains("R&amp;D &lt;Web&gt; &quot;Platform&quot; (web-oncall@example.com)"),
            "{html}"
        );
        assert!(!html.contains("<Web>"), "{html}");
    }

    // A retried delivery is the same message to mail clients: same Message-ID.
    notifier.send_to(&event, &recipients).await.unwrap();
    let again = mta.wait_for_mail("ssladmin", 2);
    let again = mailparse::parse_mail(&again[1]).unwrap();
    assert_eq!(header(&again, "Message-ID"), expected_id);
}

#[tokio::test]
async fn implicit_tls_delivers_and_an_untrusted_certificate_is_transient() {
    let mta = Mta::start(&["ssladmin"], None);
    let mut s = settings(&mta, TlsMode::Implicit);
    s.to = vec![format!("ssladmin@{DOMAIN}")];
    let event = sample("certificate_expired");
    EmailNotifier::new("mail", s.clone())
        .unwrap()
        .send(&event)
        .await
        .unwrap();
    let mail = mta.wait_for_mail("ssladmin", 1);
    let mail = mailparse::parse_mail(&mail[0]).unwrap();
    assert_eq!(header(&mail, "X-Certkeeper-Event"), event.id);

    // Without `ca_file` the test CA is unknown: refused, and not for good
    // (the relay's certificate may yet be fixed).
    s.ca_file = None;
    let err = EmailNotifier::new("mail", s.clone())
        .unwrap()
        .send(&event)
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Transient, "{err}");
    assert!(err.message.contains("invalid peer certificate"), "{err}");
    // `accept_invalid_certs` (tests only) takes any certificate.
    s.accept_invalid_certs = true;
    EmailNotifier::new("mail", s)
        .unwrap()
        .send(&event)
        .await
        .unwrap();
    mta.wait_for_mail("ssladmin", 2);
}

#[tokio::test]
async fn plain_smtp_delivers_every_sample_and_refusals_are_permanent() {
    let mta = Mta::start(&["ssladmin"], None);
    let mut s = settings(&mta, TlsMode::None);
    s.to = vec![format!("ssladmin@{DOMAIN}")];
    let notifier = EmailNotifier::new("mail", s.clone()).unwrap();

    // Every kind of event makes a message that Postfix accepts and delivers.
    let events = sample_events();
    for event in &events {
        notifier.send(event).await.unwrap();
    }
    let mail = mta.wait_for_mail("ssladmin", events.len());
    let delivered: BTreeSet<String> = mail
        .iter()
        .map(|m| {
            let m = mailparse::parse_mail(m).unwrap();
            assert!(!header(&m, "Received").contains("ESMTPS"), "plain SMTP");
            let (text, html) = alternative_parts(&m);
            assert!(!text.trim().is_empty() && html.contains("<h2>"));
            header(&m, "X-Certkeeper-Event")
        })
        .collect();
    let sent: BTreeSet<String> = events.iter().map(|e| e.id.clone()).collect();
    assert_eq!(delivered, sent);

    let event = sample("certificate_expiring");
    // Relaying to another domain: 554 5.7.1 Relay access denied.
    let err = notifier
        .send_to(&event, &["someone@elsewhere.example".into()])
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent, "{err}");
    assert!(err.message.contains("Relay access denied"), "{err}");
    // A mailbox the domain does not have: 550 5.1.1 User unknown.
    let err = notifier
        .send_to(&event, &[format!("nobody-here@{DOMAIN}")])
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent, "{err}");
    assert!(err.message.contains("User unknown"), "{err}");
    // Nothing was delivered for the refused transactions, not even to `to`.
    assert_eq!(mta.mailbox("ssladmin").len(), events.len());

    // A port nobody listens on: a connection failure is transient.
    s.port = Some(mta::free_port());
    let err = EmailNotifier::new("mail", s)
        .unwrap()
        .send(&event)
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Transient, "{err}");
}

#[tokio::test]
async fn smtp_auth_delivers_with_the_right_password_only() {
    const PASSWORD: &str = "s3cret-Mail-Passw0rd";
    let mta = Mta::start(
        &["ssladmin"],
        Some(Sasl {
            user: "certkeeper",
            password: PASSWORD,
        }),
    );
    let mut s = settings(&mta, TlsMode::Starttls);
    s.to = vec![format!("ssladmin@{DOMAIN}")];
    let event = sample("renewal_failed");

    // Without credentials this relay takes nothing: 554 5.7.1 refused.
    let err = EmailNotifier::new("mail", s.clone())
        .unwrap()
        .send(&event)
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent, "{err}");
    assert!(err.message.contains("Access denied"), "{err}");

    // The right password: delivered, and Postfix logged the login.
    s.username = Some("certkeeper".into());
    s.password = Some(Secret::new(PASSWORD));
    let notifier = EmailNotifier::new("mail", s.clone()).unwrap();
    assert!(!format!("{notifier:?}").contains(PASSWORD));
    notifier.send(&event).await.unwrap();
    let mail = mta.wait_for_mail("ssladmin", 1);
    let mail = mailparse::parse_mail(&mail[0]).unwrap();
    assert_eq!(header(&mail, "X-Certkeeper-Event"), event.id);
    assert!(
        mta.log()
            .contains("sasl_method=PLAIN, sasl_username=certkeeper"),
        "{}",
        mta.log()
    );

    // A wrong password (tried last: Dovecot delays the attempts that follow
    // a failure): 535 5.7.8 authentication failed, permanent, and the
    // password is nowhere in the error.
    s.password = Some(Secret::new("wrong-Passw0rd-guess"));
    let err = EmailNotifier::new("mail", s)
        .unwrap()
        .send(&event)
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent, "{err}");
    assert!(err.message.contains("535"), "{err}");
    assert!(!err.to_string().contains("wrong-Passw0rd-guess"), "{err}");
    assert!(!format!("{err:?}").contains("wrong-Passw0rd-guess"));
    assert_eq!(
        mta.mailbox("ssladmin").len(),
        1,
        "the refused ones were not delivered"
    );
}

/// A scheduled report reaches its readers as an attachment, byte for byte;
/// one too large to attach is announced with where it is.
#[tokio::test]
async fn a_ready_report_arrives_attached() {
    let mta = Mta::start(&["finance"], None);
    let notifier = EmailNotifier::new("mail", settings(&mta, TlsMode::None)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("weekly-expiring-20261127-060000.csv");
    let csv = "subject,not_after\r\n\"CN=a, O=Ex\u{e4}mple\",2026-12-01\r\n";
    std::fs::write(&file, csv).unwrap();
    let mut event = sample("report_ready");
    event.kind = certkeeper_integrations::EventKind::ReportReady {
        report: "expiring".into(),
        location: file.display().to_string(),
        url: None,
    };
    notifier
        .send_to(&event, &[format!("finance@{DOMAIN}")])
        .await
        .unwrap();
    let mail = mta.wait_for_mail("finance", 1);
    let mail = mailparse::parse_mail(&mail[0]).unwrap();
    assert_eq!(mail.ctype.mimetype, "multipart/mixed");
    let (text, _) = alternative_parts(&mail.subparts[0]);
    assert!(text.contains("expiring"), "{text}");
    let attachment = &mail.subparts[1];
    assert_eq!(attachment.ctype.mimetype, "text/csv");
    let disposition = attachment.get_content_disposition();
    assert_eq!(
        disposition.params.get("filename").map(String::as_str),
        Some("weekly-expiring-20261127-060000.csv")
    );
    assert_eq!(attachment.get_body_raw().unwrap(), csv.as_bytes());

    // Over the limit: the message says where the report is instead.
    let big = dir.path().join("huge.pdf");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(certkeeper_integrations::email::MAX_ATTACHMENT_BYTES + 1)
        .unwrap();
    event.id = "report:huge".into();
    event.kind = certkeeper_integrations::EventKind::ReportReady {
        report: "inventory".into(),
        location: big.display().to_string(),
        url: Some("https://certkeeper.example.com/api/v1/reports/files/huge/huge.pdf".into()),
    };
    notifier
        .send_to(&event, &[format!("finance@{DOMAIN}")])
        .await
        .unwrap();
    let mail = mta.wait_for_mail("finance", 2);
    let mail = mailparse::parse_mail(&mail[1]).unwrap();
    assert_eq!(mail.ctype.mimetype, "multipart/alternative");
    let (text, _) = alternative_parts(&mail);
    assert!(
        text.contains("not attached") && text.contains("huge.pdf"),
        "{text}"
    );
    // With the download link, for whoever may read reports.
    assert!(
        text.contains("https://certkeeper.example.com/api/v1/reports/files/huge/huge.pdf"),
        "{text}"
    );
}
