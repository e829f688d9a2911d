//! The command connector's wire protocol, version 1: one JSON object to the
//! program's stdin, one JSON object back on its stdout.
//!
//! `contrib/command-connector/README.md` is the specification programs are
//! written against; this module is its implementation, and the two must
//! change together. Within version 1 new request fields and new operations
//! may appear (programs ignore unknown fields and answer an unknown
//! operation with `"unsupported": true`); answers may carry fields this
//! version does not read. Anything that would change the meaning of an
//! existing field is a new version.

use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use openssl::x509::X509;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    ErrorClass, IssueRequest, Issued, IssuedPage, IssuedRecord, RenewalWindow, RevocationReason,
    RevokeRequest,
};

/// The protocol version this connector speaks, sent in every request and
/// required in every answer.
pub const PROTOCOL_VERSION: u64 = 1;

/// The operations a request can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Issue a certificate from a CSR.
    Issue,
    /// The daemon recorded the certificate issued under an idempotency key.
    Recorded,
    /// Revoke a certificate.
    Revoke,
    /// The CA's suggested renewal window for a certificate.
    RenewalInfo,
    /// A page of the certificates the CA issued.
    ListIssued,
    /// Whether the CA is usable.
    Health,
}

impl Operation {
    /// The name in the request's `operation` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Issue => "issue",
            Self::Recorded => "recorded",
            Self::Revoke => "revoke",
            Self::RenewalInfo => "renewal_info",
            Self::ListIssued => "list_issued",
            Self::Health => "health",
        }
    }
}

/// PEM armour around `der`, 64 characters a line.
pub(crate) fn pem(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn envelope(connector: &str, operation: Operation) -> serde_json::Map<String, Value> {
    let mut map = serde_json::Map::new();
    map.insert("version".into(), json!(PROTOCOL_VERSION));
    map.insert("operation".into(), json!(operation.as_str()));
    map.insert("connector".into(), json!(connector));
    map
}

/// The `issue` request.
pub(crate) fn issue_request(connector: &str, request: &IssueRequest) -> Value {
    let mut map = envelope(connector, Operation::Issue);
    map.insert(
        "csr_pem".into(),
        json!(pem("CERTIFICATE REQUEST", &request.csr_der)),
    );
    map.insert("identifiers".into(), json!(request.identifiers));
    map.insert(
        "validity_seconds".into(),
        json!(request.validity.map(|v| v.as_secs())),
    );
    map.insert("profile".into(), json!(request.profile));
    map.insert("usage".into(), json!(request.usage));
    map.insert(
        "replaces_pem".into(),
        json!(request.replaces.as_deref().map(|d| pem("CERTIFICATE", d))),
    );
    map.insert("idempotency_key".into(), json!(request.idempotency_key));
    Value::Object(map)
}

/// The `recorded` request: the daemon saved what `issue` returned under
/// `idempotency_key`.
pub(crate) fn recorded_request(connector: &str, idempotency_key: &str) -> Value {
    let mut map = envelope(connector, Operation::Recorded);
    map.insert("idempotency_key".into(), json!(idempotency_key));
    Value::Object(map)
}

/// The RFC 5280 name of a reason, as `openssl ca -crl_reason` takes it.
fn reason_name(reason: RevocationReason) -> &'static str {
    match reason {
        RevocationReason::Unspecified => "unspecified",
        RevocationReason::KeyCompromise => "keyCompromise",
        RevocationReason::AffiliationChanged => "affiliationChanged",
        RevocationReason::Superseded => "superseded",
        RevocationReason::CessationOfOperation => "cessationOfOperation",
    }
}

/// The `revoke` request.
pub(crate) fn revoke_request(connector: &str, request: &RevokeRequest) -> Value {
    let mut map = envelope(connector, Operation::Revoke);
    map.insert(
        "certificate_pem".into(),
        json!(pem("CERTIFICATE", &request.certificate_der)),
    );
    map.insert("reason".into(), json!(reason_name(request.reason)));
    map.insert("reason_code".into(), json!(request.reason.code()));
    Value::Object(map)
}

/// The `renewal_info` request.
pub(crate) fn renewal_info_request(connector: &str, certificate_der: &[u8]) -> Value {
    let mut map = envelope(connector, Operation::RenewalInfo);
    map.insert(
        "certificate_pem".into(),
        json!(pem("CERTIFICATE", certificate_der)),
    );
    Value::Object(map)
}

/// The `list_issued` request.
pub(crate) fn list_request(connector: &str, cursor: Option<&str>) -> Value {
    let mut map = envelope(connector, Operation::ListIssued);
    map.insert("cursor".into(), json!(cursor));
    Value::Object(map)
}

/// The `health` request.
pub(crate) fn health_request(connector: &str) -> Value {
    Value::Object(envelope(connector, Operation::Health))
}

/// What an answer said, before it is read as one operation's result.
#[derive(Debug)]
pub(crate) enum Answer {
    /// The operation's result fields.
    Success(Value),
    /// The program does not implement the operation.
    Unsupported,
    /// The program reports a failure.
    Failed(ProgramError),
}

/// A failure the program reported in its `error` object.
#[derive(Debug, Clone)]
pub(crate) struct ProgramError {
    /// Whether retrying can help.
    pub class: ErrorClass,
    /// The program's message (not yet sanitised).
    pub message: String,
    /// A revocation refused because the certificate is already revoked.
    pub already_revoked: bool,
}

#[derive(Deserialize)]
struct ErrorObject {
    class: String,
    message: String,
    #[serde(default)]
    retry_after_seconds: Option<u64>,
    #[serde(default)]
    already_revoked: bool,
}

/// Reads stdout as a version 1 answer; `Err` says, for an operator, what
/// was wrong with it (the caller quotes what the program wrote).
pub(crate) fn parse_answer(stdout: &[u8]) -> Result<Answer, String> {
    if stdout.iter().all(u8::is_ascii_whitespace) {
        return Err("nothing on stdout (expected one JSON object)".into());
    }
    let value: Value =
        serde_json::from_slice(stdout).map_err(|e| format!("something that is not JSON ({e})"))?;
    let Value::Object(map) = value else {
        return Err("JSON that is not an object".into());
    };
    match map.get("version") {
        Some(Value::Number(n)) if n.as_u64() == Some(PROTOCOL_VERSION) => {}
        Some(Value::Number(n)) => {
            return Err(format!(
                "with protocol version {n}, but this connector speaks version {PROTOCOL_VERSION}"
            ));
        }
        Some(other) => return Err(format!("a version that is not a number ({other})")),
        None => {
            return Err(format!(
                "without a \"version\" (this connector speaks version {PROTOCOL_VERSION})"
            ));
        }
    }
    if let Some(error) = map.get("error") {
        let error: ErrorObject = serde_json::from_value(error.clone())
            .map_err(|e| format!("an \"error\" that does not fit the protocol ({e})"))?;
        let class = match (error.class.as_str(), error.retry_after_seconds) {
            ("permanent", _) => ErrorClass::Permanent,
            ("transient", _) => ErrorClass::Transient,
            ("retry_after", Some(seconds)) => ErrorClass::RetryAfter(Duration::from_secs(seconds)),
            ("retry_after", None) => {
                return Err("an error of class retry_after without retry_after_seconds".into());
            }
            (other, _) => {
                return Err(format!(
                    "an error of unknown class `{other}` (expected permanent, transient or retry_after)"
                ));
            }
        };
        return Ok(Answer::Failed(ProgramError {
            class,
            message: error.message,
            already_revoked: error.already_revoked,
        }));
    }
    if map.get("unsupported") == Some(&Value::Bool(true)) {
        return Ok(Answer::Unsupported);
    }
    Ok(Answer::Success(Value::Object(map)))
}

fn fields<T: for<'de> Deserialize<'de>>(value: Value, what: &str) -> Result<T, String> {
    serde_json::from_value(value)
        .map_err(|e| format!("{what} that does not fit the protocol ({e})"))
}

/// The certificates of a PEM chain, re-encoded (leaf first).
fn chain(text: &str, field: &str) -> Result<Vec<X509>, String> {
    let certs = X509::stack_from_pem(text.as_bytes())
        .map_err(|_| format!("a {field} that is not PEM certificates"))?;
    if certs.is_empty() {
        return Err(format!("a {field} that holds no certificate"));
    }
    Ok(certs)
}

#[derive(Deserialize)]
struct IssueFields {
    chain_pem: String,
    #[serde(default)]
    ca_reference: Option<String>,
}

/// The result of `issue`: the chain, checked to be PEM certificates.
pub(crate) fn issued(value: Value) -> Result<Issued, String> {
    let fields: IssueFields = fields(value, "an issue answer")?;
    let mut chain_pem = String::new();
    for cert in chain(&fields.chain_pem, "chain_pem")? {
        let pem = cert
            .to_pem()
            .map_err(|_| "a chain_pem certificate that cannot be re-encoded".to_owned())?;
        chain_pem.push_str(&String::from_utf8_lossy(&pem));
    }
    Ok(Issued::new(chain_pem, fields.ca_reference))
}

#[derive(Deserialize)]
struct OkFields {
    ok: bool,
}

/// The result of `revoke`, `recorded` and `health`: `"ok": true`.
pub(crate) fn ok(value: Value) -> Result<(), String> {
    let fields: OkFields = fields(value, "an answer")?;
    if fields.ok {
        Ok(())
    } else {
        Err("\"ok\": false without an \"error\"".into())
    }
}

#[derive(Deserialize)]
struct RecordFields {
    certificate_pem: String,
    #[serde(default)]
    revoked: bool,
    #[serde(default)]
    ca_reference: Option<String>,
    #[serde(default)]
    requester: Option<String>,
    #[serde(default)]
    organization: Option<String>,
}

#[derive(Deserialize)]
struct ListFields {
    records: Vec<RecordFields>,
    #[serde(default)]
    cursor: Option<String>,
    more: bool,
}

/// The result of `list_issued`.
pub(crate) fn page(value: Value) -> Result<IssuedPage, String> {
    let fields: ListFields = fields(value, "a list_issued answer")?;
    let mut records = Vec::with_capacity(fields.records.len());
    for record in fields.records {
        let cert = chain(&record.certificate_pem, "certificate_pem")?.swap_remove(0);
        let der = cert
            .to_der()
            .map_err(|_| "a certificate_pem that cannot be re-encoded".to_owned())?;
        let mut listed = IssuedRecord::new(der, record.revoked)
            .with_owner(record.requester, record.organization);
        listed.ca_reference = record.ca_reference;
        records.push(listed);
    }
    if fields.more && fields.cursor.is_none() {
        return Err("\"more\": true without a \"cursor\" to continue from".into());
    }
    Ok(IssuedPage::new(records, fields.cursor, fields.more))
}

#[derive(Deserialize)]
struct WindowFields {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    #[serde(default)]
    retry_after_seconds: Option<u64>,
}

#[derive(Deserialize)]
struct RenewalFields {
    window: Option<WindowFields>,
}

/// The result of `renewal_info`.
pub(crate) fn renewal_window(value: Value) -> Result<Option<RenewalWindow>, String> {
    let fields: RenewalFields = fields(value, "a renewal_info answer")?;
    let Some(window) = fields.window else {
        return Ok(None);
    };
    if window.end < window.start {
        return Err("a renewal window that ends before it starts".into());
    }
    Ok(Some(RenewalWindow {
        start: window.start,
        end: window.end,
        retry_after: window.retry_after_seconds.map(Duration::from_secs),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Identifier;

    #[test]
    fn requests_carry_the_version_and_the_documented_fields() {
        let mut request = IssueRequest::new(vec![1, 2, 3], vec![Identifier::Dns("a.test".into())]);
        request.validity = Some(Duration::from_secs(86_400));
        request.idempotency_key = Some("op-1".into());
        let value = issue_request("ca", &request);
        assert_eq!(value["version"], 1);
        assert_eq!(value["operation"], "issue");
        assert_eq!(value["connector"], "ca");
        assert_eq!(
            value["identifiers"],
            json!([{"type": "dns", "value": "a.test"}])
        );
        assert_eq!(value["validity_seconds"], 86_400);
        assert_eq!(value["usage"], "server");
        assert_eq!(value["profile"], Value::Null);
        assert_eq!(value["replaces_pem"], Value::Null);
        assert_eq!(value["idempotency_key"], "op-1");
        assert!(
            value["csr_pem"]
                .as_str()
                .is_some_and(|p| p.starts_with("-----BEGIN CERTIFICATE REQUEST-----\nAQID\n"))
        );
        let revoke = revoke_request(
            "ca",
            &RevokeRequest::new(vec![1], RevocationReason::KeyCompromise),
        );
        assert_eq!(revoke["reason"], "keyCompromise");
        assert_eq!(revoke["reason_code"], 1);
    }

    #[test]
    fn answers_are_checked_for_version_and_error_class() {
        assert!(parse_answer(b"").unwrap_err().contains("nothing"));
        assert!(parse_answer(b"[1]").unwrap_err().contains("not an object"));
        assert!(
            parse_answer(br#"{"ok":true}"#)
                .unwrap_err()
                .contains("version")
        );
        assert!(
            parse_answer(br#"{"version":2,"ok":true}"#)
                .unwrap_err()
                .contains("version 2")
        );
        let Ok(Answer::Failed(e)) = parse_answer(
            br#"{"version":1,"error":{"class":"retry_after","message":"busy","retry_after_seconds":30}}"#,
        ) else {
            panic!("expected a failure");
        };
        assert_eq!(e.class, ErrorClass::RetryAfter(Duration::from_secs(30)));
        assert!(
            parse_answer(br#"{"version":1,"error":{"class":"fatal","message":"x"}}"#)
                .unwrap_err()
                .contains("unknown class")
        );
        assert!(matches!(
            parse_answer(br#"{"version":1,"unsupported":true}"#),
            Ok(Answer::Unsupported)
        ));
    }

    #[test]
    fn a_page_that_says_more_needs_a_cursor() {
        let err = page(json!({"records": [], "more": true})).unwrap_err();
        assert!(err.contains("cursor"), "{err}");
        let last = page(json!({"records": [], "more": false, "cursor": "7"})).unwrap();
        assert_eq!(last.cursor.as_deref(), Some("7"));
    }
}
