//! The tamper-evident audit log: hash chaining, verification and export.
//!
//! Every audit entry carries the SHA-256 of its own content and the hash of
//! the entry before it, so editing, deleting or reordering entries in the
//! store breaks the chain where it happened, and [`verify`] says where. This
//! module is pure logic; the store appends what [`seal`] returns.
//!
//! # The canonical form (for re-verification elsewhere, e.g. in a SIEM)
//!
//! `hash` is the lowercase hex SHA-256 of the UTF-8 bytes of [`canonical_json`]:
//! a JSON object holding every field of the entry except `hash` (`action`,
//! `actor`, `after`, `before`, `object`, `outcome`, `prev_hash`, `seq`,
//! `source`, `time`), absent values written as `null`, with the keys of this
//! and every nested object sorted by their UTF-16 code units, no whitespace,
//! strings escaped as `\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t` and
//! `\u00xx` (lowercase hex) for other control characters, everything else
//! (including non-ASCII) literal. That is RFC 8785 (JCS) for every entry
//! whose numbers are integers of magnitude below 2^53, so any JCS library
//! reproduces it: parse a [`to_json_line`] line, drop `hash`, canonicalise,
//! hash. Floats inside `before`/`after` are written in Rust's shortest
//! round-trip form, which can differ from JCS; `None` and `Some(null)` hash
//! alike. The first entry has `seq` 1 and `prev_hash` [`GENESIS_HASH`].
//!
//! A chain only proves that nothing changed *before* its last entry: cutting
//! off the newest entries, or rewriting and re-sealing the whole log, leaves
//! a valid chain. Exporting entries as they happen ([`to_cef`],
//! [`to_json_line`]) to a system that the daemon cannot rewrite anchors them.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

/// `prev_hash` of the first entry: 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audited action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the log, from 1, without gaps.
    pub seq: u64,
    /// When, in milliseconds since the Unix epoch.
    pub time: i64,
    /// Who: a user name, `api-token:<id>`, or `system`.
    pub actor: String,
    /// The client's IP address, when the action came over the network.
    pub source: Option<String>,
    /// What, e.g. `login`, `login_failed`, `role_change`, `request_create`,
    /// `request_approve`, `certificate_revoke`, `key_export`, `config_reload`.
    pub action: String,
    /// What it was done to (a user, a request id, a certificate fingerprint).
    pub object: Option<String>,
    /// `success`, `failure` or `denied`.
    pub outcome: String,
    /// The object's state before the change, when it is one.
    pub before: Option<Value>,
    /// The object's state after the change.
    pub after: Option<Value>,
    /// `hash` of the previous entry ([`GENESIS_HASH`] for the first).
    pub prev_hash: String,
    /// Lowercase hex SHA-256 of the canonical form (see the module docs).
    pub hash: String,
}

impl AuditEntry {
    /// A successful action by `actor` on `object`, now, not yet sealed:
    /// set the other fields with struct update syntax.
    pub fn new(actor: impl Into<String>, action: &str, object: Option<String>) -> AuditEntry {
        AuditEntry {
            seq: 0,
            time: chrono::Utc::now().timestamp_millis(),
            actor: actor.into(),
            source: None,
            action: action.to_owned(),
            object,
            outcome: "success".into(),
            before: None,
            after: None,
            prev_hash: String::new(),
            hash: String::new(),
        }
    }
}

/// Chains `entry` after the entry whose hash is `prev_hash`: sets
/// `prev_hash` and computes `hash`. The caller sets `seq` (one more than the
/// previous entry's).
pub fn seal(mut entry: AuditEntry, prev_hash: &str) -> AuditEntry {
    entry.prev_hash = prev_hash.to_owned();
    entry.hash = content_hash(&entry);
    entry
}

/// The canonical JSON that `hash` is computed over (see the module docs).
pub fn canonical_json(entry: &AuditEntry) -> String {
    let mut out = String::new();
    write_canonical(&mut out, &Value::Object(fields(entry)));
    out
}

fn content_hash(entry: &AuditEntry) -> String {
    hex::encode(Sha256::digest(canonical_json(entry).as_bytes()))
}

/// Every field but `hash`, as JSON values.
fn fields(e: &AuditEntry) -> Map<String, Value> {
    let object = serde_json::json!({
        "seq": e.seq, "time": e.time, "actor": e.actor, "source": e.source,
        "action": e.action, "object": e.object, "outcome": e.outcome,
        "before": e.before, "after": e.after, "prev_hash": e.prev_hash,
    });
    match object {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Writes `value` with sorted keys and JCS string escaping.
fn write_canonical(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                out.push_str(if i == 0 { "" } else { "," });
                write_canonical(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|(a, _), (b, _)| a.encode_utf16().cmp(b.encode_utf16()));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                out.push_str(if i == 0 { "" } else { "," });
                write_string(out, key);
                out.push(':');
                write_canonical(out, item);
            }
            out.push('}');
        }
    }
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Where and how a chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    /// The entry's content does not match its hash: it was edited.
    #[error("audit entry {seq} was altered: its content does not match its hash")]
    HashMismatch {
        /// The entry.
        seq: u64,
    },
    /// The entry does not name the previous entry's hash: an entry before it
    /// was deleted, replaced or moved (and the sequence numbers patched up).
    #[error(
        "audit entry {seq} does not follow the entry before it: \
         an earlier entry was deleted, replaced or reordered"
    )]
    PrevHashMismatch {
        /// The entry.
        seq: u64,
    },
    /// Entries `expected..found` are missing (after the first entry).
    #[error(
        "audit entry {found} comes right after entry {}: the entries in between were deleted",
        expected - 1
    )]
    Gap {
        /// The sequence number that should have come next.
        expected: u64,
        /// The one that came.
        found: u64,
    },
    /// An entry came again or too early: the log was reordered.
    #[error("audit entry {found} appears where entry {expected} should be: the log was reordered")]
    OutOfOrder {
        /// The sequence number that should have come next.
        expected: u64,
        /// The one that came.
        found: u64,
    },
    /// The log does not start at entry 1: its beginning was removed.
    #[error("the audit log starts at entry {seq}, not 1: its beginning was removed")]
    BadStart {
        /// The first entry's sequence number.
        seq: u64,
    },
}

impl ChainBreak {
    /// The sequence number of the entry at which the break was found.
    pub fn seq(&self) -> u64 {
        match self {
            ChainBreak::HashMismatch { seq }
            | ChainBreak::PrevHashMismatch { seq }
            | ChainBreak::BadStart { seq } => *seq,
            ChainBreak::Gap { found, .. } | ChainBreak::OutOfOrder { found, .. } => *found,
        }
    }
}

/// Checks entries one at a time, holding only the last hash: for verifying a
/// log as it streams from the store, or each entry as it is appended.
#[derive(Debug, Clone)]
pub struct Verifier {
    next_seq: u64,
    prev_hash: String,
    count: u64,
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier::new()
    }
}

impl Verifier {
    /// Expects the log's first entry next.
    pub fn new() -> Verifier {
        Verifier::resume(0, GENESIS_HASH)
    }

    /// Expects the entry after `last_seq`, whose hash was `last_hash`: for
    /// checking the rest of a log from a trusted checkpoint.
    pub fn resume(last_seq: u64, last_hash: &str) -> Verifier {
        Verifier {
            next_seq: last_seq.saturating_add(1),
            prev_hash: last_hash.to_owned(),
            count: 0,
        }
    }

    /// Checks the next entry: its own hash, its sequence number, then its
    /// link to the entry before.
    pub fn push(&mut self, entry: &AuditEntry) -> Result<(), ChainBreak> {
        let seq = entry.seq;
        if content_hash(entry) != entry.hash {
            return Err(ChainBreak::HashMismatch { seq });
        }
        if seq != self.next_seq {
            return Err(if self.next_seq == 1 {
                ChainBreak::BadStart { seq }
            } else if seq > self.next_seq {
                ChainBreak::Gap {
                    expected: self.next_seq,
                    found: seq,
                }
            } else {
                ChainBreak::OutOfOrder {
                    expected: self.next_seq,
                    found: seq,
                }
            });
        }
        if entry.prev_hash != self.prev_hash {
            return Err(ChainBreak::PrevHashMismatch { seq });
        }
        self.next_seq = seq.saturating_add(1);
        self.prev_hash.clone_from(&entry.hash);
        self.count += 1;
        Ok(())
    }

    /// How many entries have been checked.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The hash of the last entry checked (the checkpoint to resume from).
    pub fn last_hash(&self) -> &str {
        &self.prev_hash
    }
}

/// Verifies a whole log from entry 1, in order; returns how many entries it
/// holds, or the first break.
pub fn verify<'a>(entries: impl Iterator<Item = &'a AuditEntry>) -> Result<u64, ChainBreak> {
    let mut verifier = Verifier::new();
    for entry in entries {
        verifier.push(entry)?;
    }
    Ok(verifier.count())
}

/// The entry as one line of JSON (no trailing newline), in the canonical
/// form plus `hash`: what a SIEM ingests and can re-verify.
pub fn to_json_line(entry: &AuditEntry) -> String {
    let mut map = fields(entry);
    map.insert("hash".to_owned(), entry.hash.as_str().into());
    let mut out = String::new();
    write_canonical(&mut out, &Value::Object(map));
    out
}

/// The entry as an ArcSight CEF:0 event (no syslog prefix), per
/// "Implementing ArcSight Common Event Format (CEF)", version 23 (2016):
/// `CEF:0|Certkeeper|certkeeper|{version}|{action}|{name}|{severity}|{extension}`.
///
/// Header fields escape `\` and `|`; extension values escape `\`, `=`, and
/// line breaks as `\n`/`\r`. Severity is 3 for `success`, 6 otherwise.
/// Extensions: `rt` (ms since the epoch), `suser`, `src` (IPv4) or `c6a2`
/// (IPv6) or `shost` (anything else), `act`, `outcome`, `cs1`=object,
/// `cs2`=hash (with their labels), `externalId`=seq. `before`/`after` are
/// left to the JSON export.
pub fn to_cef(entry: &AuditEntry, version: &str) -> String {
    let severity = if entry.outcome == "success" { 3 } else { 6 };
    let source_key = entry.source.as_deref().map(|s| match s.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => "src",
        Ok(IpAddr::V6(_)) => "c6a2",
        Err(_) => "shost",
    });
    let e = entry;
    let extension: Vec<String> = [
        Some(("rt", e.time.to_string())),
        Some(("suser", e.actor.clone())),
        (source_key == Some("c6a2")).then(|| ("c6a2Label", "Source IPv6 Address".to_owned())),
        source_key.zip(e.source.clone()),
        Some(("act", e.action.clone())),
        Some(("outcome", e.outcome.clone())),
        e.object.as_ref().map(|_| ("cs1Label", "object".to_owned())),
        e.object.clone().map(|object| ("cs1", object)),
        Some(("cs2Label", "hash".to_owned())),
        Some(("cs2", e.hash.clone())),
        Some(("externalId", e.seq.to_string())),
    ]
    .into_iter()
    .flatten()
    .map(|(key, value)| format!("{key}={}", cef_value(&value)))
    .collect();
    format!(
        "CEF:0|Certkeeper|certkeeper|{}|{}|{}|{severity}|{}",
        cef_header(version),
        cef_header(&entry.action),
        cef_header(&event_name(&entry.action)),
        extension.join(" ")
    )
}

/// A readable event name for an action.
fn event_name(action: &str) -> String {
    let known = match action {
        "login" => "User signed in",
        "login_failed" => "Sign-in failed",
        "role_change" => "Role changed",
        "request_create" => "Certificate request created",
        "request_approve" => "Certificate request approved",
        "certificate_revoke" => "Certificate revoked",
        "key_export" => "Private key exported",
        "config_reload" => "Configuration reloaded",
        other => return other.replace('_', " "),
    };
    known.to_owned()
}

/// Escapes a header field; a CEF event is one line, so breaks become spaces.
fn cef_header(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\r', '\n'], " ")
}

/// Escapes an extension value.
fn cef_value(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('=', "\\=")
        .replace('\r', "\\r")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn entry(seq: u64) -> AuditEntry {
        AuditEntry {
            seq,
            time: 1_700_000_000_000 + seq as i64,
            actor: format!("user{}", seq % 7),
            source: seq.is_multiple_of(2).then(|| "192.0.2.10".to_owned()),
            action: "request_approve".to_owned(),
            object: Some(format!("request-{seq}")),
            outcome: "success".to_owned(),
            before: Some(json!({"state": "pending", "names": ["a.example"]})),
            after: Some(json!({"state": "approved", "by": {"user": "kim", "at": seq}})),
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    fn chain(n: u64) -> Vec<AuditEntry> {
        let mut prev = GENESIS_HASH.to_owned();
        (1..=n)
            .map(|seq| {
                let sealed = seal(entry(seq), &prev);
                prev.clone_from(&sealed.hash);
                sealed
            })
            .collect()
    }

    /// Seals a chain of 100, lets `f` tamper with it, verifies it.
    fn tamper(f: impl FnOnce(&mut Vec<AuditEntry>)) -> Result<u64, ChainBreak> {
        let mut log = chain(100);
        f(&mut log);
        verify(log.iter())
    }

    #[test]
    fn a_sealed_chain_verifies() {
        let log = chain(100);
        assert_eq!(log[0].prev_hash, GENESIS_HASH);
        assert_eq!(log[1].prev_hash, log[0].hash);
        assert_eq!(verify(log.iter()), Ok(100));
        assert_eq!(verify([].iter()), Ok(0));
        // From a checkpoint, only the tail is needed.
        let mut tail = Verifier::resume(60, &log[59].hash);
        log[60..].iter().for_each(|e| tail.push(e).unwrap());
        assert_eq!((tail.count(), tail.last_hash()), (40, &*log[99].hash));
    }

    #[test]
    fn edits_deletions_and_reordering_name_the_entry() {
        use ChainBreak::*;
        let edited = tamper(|log| log[41].actor = "mallory".to_owned());
        assert_eq!(edited, Err(HashMismatch { seq: 42 }));
        let nested = tamper(|log| log[9].after = Some(json!({"state": "approved", "by": {}})));
        assert_eq!(nested, Err(HashMismatch { seq: 10 }));
        // Re-sealing an edited entry moves the break to the next one.
        let resealed = tamper(|log| {
            log[41].outcome = "denied".to_owned();
            log[41] = seal(log[41].clone(), &log[40].hash.clone());
        });
        assert_eq!(resealed, Err(PrevHashMismatch { seq: 43 }));
        let deleted = tamper(|log| drop(log.remove(49))).unwrap_err();
        assert_eq!(
            deleted,
            Gap {
                expected: 50,
                found: 51
            }
        );
        assert_eq!(
            deleted.to_string(),
            "audit entry 51 comes right after entry 49: the entries in between were deleted"
        );
        assert_eq!(tamper(|log| drop(log.remove(0))), Err(BadStart { seq: 2 }));
        let swapped = tamper(|log| log.swap(10, 11)).unwrap_err();
        assert_eq!(
            (swapped.clone(), swapped.seq()),
            (
                Gap {
                    expected: 11,
                    found: 12
                },
                12
            )
        );
        // Swapped with their sequence numbers patched: the hashes break.
        let renumbered = tamper(|log| {
            log.swap(10, 11);
            (log[10].seq, log[11].seq) = (11, 12);
        });
        assert_eq!(renumbered, Err(HashMismatch { seq: 11 }));
        let duplicated = tamper(|log| log.insert(3, log[2].clone()));
        assert_eq!(
            duplicated,
            Err(OutOfOrder {
                expected: 4,
                found: 3
            })
        );
    }

    #[test]
    fn canonical_form_is_pinned() {
        let mut e = entry(1);
        e.source = None;
        e.before = Some(json!({"z": 1, "a": "line\nbreak \u{1} é", "é": null, "B": [true]}));
        e.after = None;
        let e = seal(e, GENESIS_HASH);
        let expected = concat!(
            r#"{"action":"request_approve","actor":"user1","after":null,"#,
            r#""before":{"B":[true],"a":"line\nbreak \u0001 é","z":1,"é":null},"#,
            r#""object":"request-1","outcome":"success","#,
            r#""prev_hash":"0000000000000000000000000000000000000000000000000000000000000000","#,
            r#""seq":1,"source":null,"time":1700000000001}"#
        );
        assert_eq!(canonical_json(&e), expected);
        assert_eq!(e.hash, hex::encode(Sha256::digest(expected.as_bytes())));
        // The JSON line round-trips and still verifies.
        let line = to_json_line(&e);
        assert!(!line.contains('\n'));
        let back: AuditEntry = serde_json::from_str(&line).unwrap();
        assert_eq!(back, e);
        assert_eq!(verify([back].iter()), Ok(1));
    }

    #[test]
    fn cef_escapes_header_and_extension() {
        let mut e = entry(7);
        e.actor = "a=b\\c\nd".to_owned();
        e.action = "login_failed".to_owned();
        e.outcome = "failure".to_owned();
        e.source = Some("2001:db8::1".to_owned());
        e.object = Some("x|y".to_owned());
        let e = seal(e, GENESIS_HASH);
        let cef = to_cef(&e, "1.2|3\\4");
        assert_eq!(
            cef,
            format!(
                "CEF:0|Certkeeper|certkeeper|1.2\\|3\\\\4|login_failed|Sign-in failed|6|\
                 rt=1700000000007 suser=a\\=b\\\\c\\nd c6a2Label=Source IPv6 Address \
                 c6a2=2001:db8::1 act=login_failed outcome=failure cs1Label=object cs1=x|y \
                 cs2Label=hash cs2={} externalId=7",
                e.hash
            )
        );
        let mut ok = entry(2);
        ok.action = "odd|custom_action".to_owned();
        let cef = to_cef(&seal(ok, GENESIS_HASH), "0.1.0");
        assert!(
            cef.starts_with(
                "CEF:0|Certkeeper|certkeeper|0.1.0|odd\\|custom_action|odd\\|custom action|3|rt="
            ),
            "{cef}"
        );
        assert!(cef.contains(" src=192.0.2.10 "), "{cef}");
    }
}
