//! Revocation state and the CRL (RFC 5280 section 5) the intermediate signs.
//!
//! The revoked serials, the last CRL number and the current CRL itself live
//! in one state-store value, so a revocation and the CRL that publishes it
//! are saved together or not at all. Revocations are rare next to
//! issuances, and the CRL has to list every one of them anyway, so
//! rewriting this value on each revocation costs no more than the CRL.
//! Daemons sharing a store write it with one conditional update each
//! (`StateStore::save_versioned`), re-reading and redoing on a clash, so
//! two revoking at once both end up on the CRL and numbers never repeat.
//!
//! The `TBSCertList` is encoded by hand ([`der`]) because the `openssl`
//! crate cannot put a reasonCode on a CRL entry; OpenSSL only signs it.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use openssl::sign::Signer;
use serde::{Deserialize, Serialize};

use super::authority::Authority;
use super::{CaError, der};

/// State-store key of the revocation state.
pub(crate) const CRL_KEY: &str = "crl";

/// One revoked certificate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Revoked {
    /// Revocation time, seconds since the epoch.
    pub(crate) at: i64,
    /// RFC 5280 reason code.
    pub(crate) reason: u8,
}

/// Revocations and the CRL that publishes them, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Revocations {
    /// Revoked serials (lower-case hex) and when and why.
    pub(crate) revoked: BTreeMap<String, Revoked>,
    /// Number of the current CRL; the next one gets this plus one.
    pub(crate) crl_number: u64,
    /// thisUpdate of the current CRL, seconds since the epoch.
    pub(crate) this_update: i64,
    /// nextUpdate of the current CRL, seconds since the epoch.
    pub(crate) next_update: i64,
    /// The current CRL, DER, base64.
    crl: String,
}

impl Revocations {
    /// Empty state with its first CRL.
    pub(crate) fn first(
        authority: &Authority,
        this_update: DateTime<Utc>,
        next_update: DateTime<Utc>,
    ) -> Result<Self, CaError> {
        let mut state = Self {
            revoked: BTreeMap::new(),
            crl_number: 0,
            this_update: 0,
            next_update: 0,
            crl: String::new(),
        };
        state.reissue(authority, this_update, next_update)?;
        Ok(state)
    }

    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<Self, CaError> {
        serde_json::from_slice(bytes)
            .map_err(|e| CaError::Config(format!("the stored revocation list is unreadable: {e}")))
    }

    pub(crate) fn to_bytes(&self) -> Result<Vec<u8>, CaError> {
        serde_json::to_vec(self).map_err(|e| CaError::Config(e.to_string()))
    }

    /// The current CRL, DER.
    pub(crate) fn crl_der(&self) -> Result<Vec<u8>, CaError> {
        BASE64
            .decode(&self.crl)
            .map_err(|_| CaError::Config("the stored CRL is not base64".into()))
    }

    /// Signs the next CRL over the current revocations.
    pub(crate) fn reissue(
        &mut self,
        authority: &Authority,
        this_update: DateTime<Utc>,
        next_update: DateTime<Utc>,
    ) -> Result<(), CaError> {
        let number = self.crl_number + 1;
        let der = sign_crl(authority, &self.revoked, number, this_update, next_update)?;
        self.crl_number = number;
        self.this_update = this_update.timestamp();
        self.next_update = next_update.timestamp();
        self.crl = BASE64.encode(der);
        Ok(())
    }

    /// When the CRL should be replaced: once two thirds of its validity have
    /// passed, so relying parties that cache it until nextUpdate always find
    /// a fresh one well before theirs expires.
    pub(crate) fn due_at(&self) -> DateTime<Utc> {
        let span = self.next_update.saturating_sub(self.this_update);
        let due = self.this_update.saturating_add(span / 3 * 2);
        DateTime::from_timestamp(due, 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
    }
}

/// Encodes and signs a v2 CRL.
fn sign_crl(
    authority: &Authority,
    revoked: &BTreeMap<String, Revoked>,
    number: u64,
    this_update: DateTime<Utc>,
    next_update: DateTime<Utc>,
) -> Result<Vec<u8>, CaError> {
    let alg = authority.alg.algorithm_identifier();
    let issuer = authority.intermediate.subject_name().to_der()?;
    let mut entries = Vec::new();
    for (serial, entry) in revoked {
        let magnitude = hex_decode(serial)
            .ok_or_else(|| CaError::Config(format!("stored serial `{serial}` is not hex")))?;
        let at = DateTime::from_timestamp(entry.at, 0).ok_or_else(|| {
            CaError::Config(format!(
                "stored revocation time of {serial} is out of range"
            ))
        })?;
        let serial = der::unsigned_integer(&magnitude);
        let date = der::time(at);
        // RFC 5280 5.3.1: the reasonCode unspecified (0) SHOULD be absent.
        if entry.reason == 0 {
            entries.push(der::sequence(&[&serial, &date]));
        } else {
            let reason = der::extension(&[2, 5, 29, 21], false, &der::enumerated(entry.reason));
            entries.push(der::sequence(&[&serial, &date, &der::sequence(&[&reason])]));
        }
    }
    let crl_number = der::extension(&[2, 5, 29, 20], false, &der::integer(number));
    let key_id = der::sequence(&[&der::context_primitive(0, &authority.key_id)]);
    let aki = der::extension(&[2, 5, 29, 35], false, &key_id);
    let extensions = der::context_constructed(0, &der::sequence(&[&aki, &crl_number]));

    let version = der::integer(1); // v2
    let this = der::time(this_update);
    let next = der::time(next_update);
    let mut fields: Vec<&[u8]> = vec![&version, &alg, &issuer, &this, &next];
    let revoked_list;
    // An empty revokedCertificates must be left out, not encoded empty.
    if !entries.is_empty() {
        let refs: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
        revoked_list = der::sequence(&refs);
        fields.push(&revoked_list);
    }
    fields.push(&extensions);
    let tbs = der::sequence(&fields);

    let mut signer = Signer::new(authority.alg.digest(), &authority.key)?;
    signer.update(&tbs)?;
    let signature = signer.sign_to_vec()?;
    Ok(der::sequence(&[&tbs, &alg, &der::bit_string(&signature)]))
}

/// PEM armour of a DER CRL.
pub(crate) fn crl_pem(der: &[u8]) -> String {
    let body = BASE64.encode(der);
    let mut pem = String::with_capacity(body.len() + body.len() / 64 + 48);
    pem.push_str("-----BEGIN X509 CRL-----\n");
    for line in body.as_bytes().chunks(64) {
        // Base64 output is ASCII, so every chunk is valid UTF-8.
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END X509 CRL-----\n");
    pem
}

/// Lower-case hex of a serial's magnitude.
pub(crate) fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect()
}

/// Writes `bytes` to `path` so readers see the old or the new file, never a
/// partial one: a temporary file in the same directory, synced, renamed.
pub(crate) async fn write_atomically(path: &Path, bytes: Vec<u8>) -> std::io::Result<()> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let name = path
            .file_name()
            .ok_or_else(|| std::io::Error::other("the CRL path has no file name"))?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".tmp{}", std::process::id()));
        let tmp = path.with_file_name(tmp_name);
        let written = (|| {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    })
    .await
    .map_err(std::io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let bytes = [0x40, 0x00, 0xff, 0x12];
        assert_eq!(hex_encode(&bytes), "4000ff12");
        assert_eq!(hex_decode("4000ff12").unwrap(), bytes);
        assert!(hex_decode("abc").is_none());
        assert!(hex_decode("zz").is_none());
    }

    #[test]
    fn pem_lines_are_64_wide() {
        let pem = crl_pem(&[7u8; 100]);
        let lines: Vec<&str> = pem.lines().collect();
        assert_eq!(lines[0], "-----BEGIN X509 CRL-----");
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines.last().copied(), Some("-----END X509 CRL-----"));
        let body: String = lines[1..lines.len() - 1].concat();
        assert_eq!(BASE64.decode(body).unwrap(), vec![7u8; 100]);
    }
}
