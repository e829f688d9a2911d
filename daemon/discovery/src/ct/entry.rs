//! Log entries: the TLS structures of RFC 6962 §3.4 (`MerkleTreeLeaf`,
//! `TimestampedEntry`, and the `extra_data` of `get-entries`, §4.6) and of
//! static-ct-api data tiles, read into [`Entry`]s.
//!
//! A log holds millions of certificates and a follower reads them all, so
//! the certificate fields a watcher needs (names, serial, issuer, validity)
//! are read by a small DER walker over the TBSCertificate (RFC 5280 §4.1)
//! rather than a full X.509 parse; only the issuer name is formatted, once
//! per issuer. A precertificate and its final certificate share a
//! [`Entry::pairing_key`]: SHA-256 of the issuer's key hash and the
//! TBSCertificate without the CT poison (RFC 6962 §3.1) and SCT list
//! (§3.3) extensions, which is what a CA signs twice.

use std::borrow::Cow;

use chrono::{DateTime, NaiveDate, Utc};
use sha2::{Digest, Sha256};

use super::merkle::{Hash, leaf_hash};

/// One entry of a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its index in the log.
    pub index: u64,
    /// The log's timestamp for it, ms since the epoch.
    pub timestamp: u64,
    /// Its Merkle leaf hash (verified against the signed tree).
    pub leaf_hash: Hash,
    /// Certificate or precertificate.
    pub kind: EntryKind,
    /// DNS names: the subjectAltName dNSNames, and the subject CN when it
    /// looks like a host name and is not among them; lower case as logged.
    pub dns_names: Vec<String>,
    /// Serial number, lower-case hex of the DER integer's bytes.
    pub serial: String,
    /// Issuer distinguished name (RFC 4514 style).
    pub issuer: String,
    /// Start of validity, if it parses.
    pub not_before: Option<DateTime<Utc>>,
    /// End of validity, if it parses.
    pub not_after: Option<DateTime<Utc>>,
    /// Shared by a precertificate and its final certificate (see the
    /// module documentation); falls back to SHA-256 of issuer name and
    /// serial when the issuer's key is unknown.
    pub pairing_key: Hash,
    /// The chain the log holds for it, DER, issuer first.
    pub chain: Vec<Vec<u8>>,
}

/// What an entry logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A certificate (`x509_entry`).
    Certificate {
        /// The certificate, DER.
        der: Vec<u8>,
    },
    /// A precertificate (`precert_entry`).
    Precertificate {
        /// The TBSCertificate as logged (poison removed), DER.
        tbs_der: Vec<u8>,
        /// SHA-256 of the final issuer's SubjectPublicKeyInfo.
        issuer_key_hash: Hash,
        /// The precertificate as submitted, when the log returns it.
        precert_der: Option<Vec<u8>>,
    },
}

impl Entry {
    /// SHA-256 (hex) of the certificate's DER; for a precertificate, of the
    /// precertificate's DER (or of its TBS when the log did not return it).
    pub fn fingerprint(&self) -> String {
        let der = match &self.kind {
            EntryKind::Certificate { der } => der,
            EntryKind::Precertificate {
                precert_der: Some(der),
                ..
            } => der,
            EntryKind::Precertificate { tbs_der, .. } => tbs_der,
        };
        hex::encode(Sha256::digest(der))
    }

    /// Whether this is a precertificate.
    pub fn is_precertificate(&self) -> bool {
        matches!(self.kind, EntryKind::Precertificate { .. })
    }
}

/// Reads the TLS presentation language (RFC 5246 §4) from a byte slice.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data, at: 0 }
    }

    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.at >= self.data.len()
    }

    /// Bytes read so far.
    pub fn offset(&self) -> usize {
        self.at
    }

    /// What is left.
    pub fn rest(&self) -> &'a [u8] {
        &self.data[self.at.min(self.data.len())..]
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| "truncated".to_owned())?;
        let out = &self.data[self.at..end];
        self.at = end;
        Ok(out)
    }

    /// Skips `n` bytes.
    pub fn skip(&mut self, n: usize) -> Result<(), String> {
        self.take(n).map(|_| ())
    }

    fn uint(&mut self, n: usize) -> Result<u64, String> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |v, &b| (v << 8) | u64::from(b)))
    }

    /// A big-endian `uint8`.
    pub fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    /// A big-endian `uint16`.
    pub fn u16(&mut self) -> Result<u16, String> {
        Ok(self.uint(2)? as u16)
    }

    /// A big-endian `uint64`.
    pub fn u64(&mut self) -> Result<u64, String> {
        self.uint(8)
    }

    /// An `opaque <0..2^16-1>`.
    pub fn vec16(&mut self) -> Result<&'a [u8], String> {
        let n = self.uint(2)? as usize;
        self.take(n)
    }

    /// An `opaque <0..2^24-1>`.
    pub fn vec24(&mut self) -> Result<&'a [u8], String> {
        let n = self.uint(3)? as usize;
        self.take(n)
    }
}

/// A `TimestampedEntry` (RFC 6962 §3.4), borrowed.
struct Timestamped<'a> {
    timestamp: u64,
    /// The certificate DER, or the precertificate's TBS.
    body: &'a [u8],
    issuer_key_hash: Option<Hash>,
}

fn timestamped<'a>(reader: &mut Reader<'a>) -> Result<Timestamped<'a>, String> {
    let timestamp = reader.u64()?;
    let entry_type = reader.u16()?;
    let (body, issuer_key_hash) = match entry_type {
        0 => (reader.vec24()?, None),
        1 => {
            let hash: Hash = reader
                .take(32)?
                .try_into()
                .map_err(|_| "truncated".to_owned())?;
            (reader.vec24()?, Some(hash))
        }
        other => return Err(format!("unknown entry type {other}")),
    };
    reader.vec16()?;
    Ok(Timestamped {
        timestamp,
        body,
        issuer_key_hash,
    })
}

fn certificate_list(data: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut reader = Reader::new(data);
    let mut certs = Vec::new();
    while !reader.is_empty() {
        certs.push(reader.vec24()?.to_vec());
    }
    Ok(certs)
}

/// Builds [`Entry`]s, remembering the last issuer seen: entries come in
/// runs from the same CA, and formatting its name or hashing its key once
/// a run keeps a batch from allocating per entry for them.
#[derive(Debug, Default)]
pub struct Parser {
    issuer_name: Option<(Vec<u8>, String)>,
    issuer_key: Option<(Vec<u8>, Hash)>,
}

impl Parser {
    /// An entry of `get-entries` (RFC 6962 §4.6): `leaf_input` is the
    /// `MerkleTreeLeaf`, `extra_data` the chain.
    pub fn rfc6962(
        &mut self,
        index: u64,
        leaf_input: &[u8],
        extra_data: &[u8],
    ) -> Result<Entry, String> {
        let mut reader = Reader::new(leaf_input);
        let version = reader.u8()?;
        let leaf_type = reader.u8()?;
        if version != 0 || leaf_type != 0 {
            return Err(format!(
                "unknown leaf version {version} or type {leaf_type}"
            ));
        }
        let entry = timestamped(&mut reader)?;
        if !reader.is_empty() {
            return Err("trailing bytes after the leaf".to_owned());
        }
        let mut extra = Reader::new(extra_data);
        let (precert, chain) = if entry.issuer_key_hash.is_some() {
            let precert = extra.vec24()?.to_vec();
            (Some(precert), certificate_list(extra.vec24()?)?)
        } else {
            (None, certificate_list(extra.vec24()?)?)
        };
        Ok(self.build(index, leaf_hash(leaf_input), entry, precert, chain))
    }

    /// A leaf of a static-ct-api data tile, its chain already fetched by
    /// fingerprint.
    pub fn tiled(
        &mut self,
        index: u64,
        timestamped_entry: &[u8],
        precertificate: Option<&[u8]>,
        chain: Vec<Vec<u8>>,
    ) -> Result<Entry, String> {
        let mut hasher = Sha256::new();
        hasher.update([0u8, 0, 0]);
        hasher.update(timestamped_entry);
        let hash: Hash = hasher.finalize().into();
        let mut reader = Reader::new(timestamped_entry);
        let entry = timestamped(&mut reader)?;
        Ok(self.build(
            index,
            hash,
            entry,
            precertificate.map(<[u8]>::to_vec),
            chain,
        ))
    }

    fn build(
        &mut self,
        index: u64,
        leaf_hash: Hash,
        entry: Timestamped<'_>,
        precert: Option<Vec<u8>>,
        chain: Vec<Vec<u8>>,
    ) -> Entry {
        let tbs = match entry.issuer_key_hash {
            Some(_) => Some(entry.body),
            None => der_tlv(entry.body)
                .ok()
                .and_then(|(_, cert, _)| der_whole(cert).ok()),
        };
        let fields = tbs.and_then(|t| tbs_fields(t).ok());
        let issuer_key_hash = match entry.issuer_key_hash {
            Some(hash) => Some(hash),
            None => chain.first().and_then(|issuer| self.key_hash(issuer)),
        };
        let mut entry_out = Entry {
            index,
            timestamp: entry.timestamp,
            leaf_hash,
            kind: match entry.issuer_key_hash {
                Some(issuer_key_hash) => EntryKind::Precertificate {
                    tbs_der: entry.body.to_vec(),
                    issuer_key_hash,
                    precert_der: precert,
                },
                None => EntryKind::Certificate {
                    der: entry.body.to_vec(),
                },
            },
            dns_names: Vec::new(),
            serial: String::new(),
            issuer: String::new(),
            not_before: None,
            not_after: None,
            pairing_key: [0; 32],
            chain,
        };
        let Some((tbs, fields)) = tbs.zip(fields) else {
            // Not a certificate this walker reads: still delivered, keyed
            // by its bytes so it pairs with nothing.
            entry_out.pairing_key = Sha256::digest(entry.body).into();
            return entry_out;
        };
        entry_out.serial = hex::encode(fields.serial);
        entry_out.issuer = self.issuer_name(fields.issuer);
        entry_out.not_before = fields.not_before;
        entry_out.not_after = fields.not_after;
        entry_out.dns_names = fields.dns_names;
        entry_out.pairing_key = match issuer_key_hash {
            Some(key_hash) => {
                let stripped = strip_ct_extensions(tbs).unwrap_or(Cow::Borrowed(tbs));
                let mut h = Sha256::new();
                h.update(key_hash);
                h.update(&stripped);
                h.finalize().into()
            }
            None => {
                let mut h = Sha256::new();
                h.update(b"serial+issuer");
                h.update(fields.issuer);
                h.update(fields.serial);
                h.finalize().into()
            }
        };
        entry_out
    }

    fn issuer_name(&mut self, der: &[u8]) -> String {
        if let Some((cached, name)) = &self.issuer_name
            && cached == der
        {
            return name.clone();
        }
        use x509_parser::prelude::FromDer as _;
        let name = match x509_parser::x509::X509Name::from_der(der) {
            Ok((_, name)) => name.to_string(),
            Err(_) => hex::encode(der),
        };
        self.issuer_name = Some((der.to_vec(), name.clone()));
        name
    }

    fn key_hash(&mut self, issuer_der: &[u8]) -> Option<Hash> {
        if let Some((cached, hash)) = &self.issuer_key
            && cached == issuer_der
        {
            return Some(*hash);
        }
        let (_, cert, _) = der_tlv(issuer_der).ok()?;
        let (_, tbs, _) = der_tlv(cert).ok()?;
        let spki = tbs_elements(tbs).ok()?.spki;
        let hash: Hash = Sha256::digest(spki).into();
        self.issuer_key = Some((issuer_der.to_vec(), hash));
        Some(hash)
    }
}

/// One DER element: tag, content, and what follows it.
fn der_tlv(input: &[u8]) -> Result<(u8, &[u8], &[u8]), String> {
    let bad = || "bad DER".to_owned();
    let (&tag, rest) = input.split_first().ok_or_else(bad)?;
    let (&first, rest) = rest.split_first().ok_or_else(bad)?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return Err(bad());
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |v, &b| (v << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err(bad());
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

/// The whole first element (tag and length included) of `input`.
fn der_whole(input: &[u8]) -> Result<&[u8], String> {
    let (_, _, rest) = der_tlv(input)?;
    Ok(&input[..input.len() - rest.len()])
}

/// The TBSCertificate's elements, by position (RFC 5280 §4.1).
struct TbsElements<'a> {
    serial: &'a [u8],
    issuer: &'a [u8],
    validity: &'a [u8],
    subject: &'a [u8],
    spki: &'a [u8],
    /// Content of the `[3]` extensions wrapper, and the offset of that
    /// wrapper within the TBS content.
    extensions: Option<(&'a [u8], usize)>,
}

/// `tbs` is the content of the TBSCertificate SEQUENCE.
fn tbs_elements(tbs: &[u8]) -> Result<TbsElements<'_>, String> {
    let mut rest = tbs;
    if rest.first() == Some(&0xa0) {
        rest = der_tlv(rest)?.2;
    }
    let (tag, serial, r) = der_tlv(rest)?;
    if tag != 0x02 {
        return Err("no serial number".to_owned());
    }
    let (_, _, r) = der_tlv(r)?; // signature algorithm
    let issuer = der_whole(r)?;
    let r = &r[issuer.len()..];
    let (_, validity, r) = der_tlv(r)?;
    let subject = der_whole(r)?;
    let r = &r[subject.len()..];
    let spki = der_whole(r)?;
    let mut r = &r[spki.len()..];
    let mut extensions = None;
    while !r.is_empty() {
        let offset = tbs.len() - r.len();
        let (tag, content, next) = der_tlv(r)?;
        if tag == 0xa3 {
            extensions = Some((content, offset));
        }
        r = next;
    }
    Ok(TbsElements {
        serial,
        issuer,
        validity,
        subject,
        spki,
        extensions,
    })
}

struct TbsFields<'a> {
    serial: &'a [u8],
    issuer: &'a [u8],
    not_before: Option<DateTime<Utc>>,
    not_after: Option<DateTime<Utc>>,
    dns_names: Vec<String>,
}

const SAN_OID: &[u8] = &[0x55, 0x1d, 0x11];
const CN_OID: &[u8] = &[0x55, 0x04, 0x03];
const POISON_OID: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0xd6, 0x79, 0x02, 0x04, 0x03];
const SCT_LIST_OID: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0xd6, 0x79, 0x02, 0x04, 0x02];

/// `tbs` is the whole TBSCertificate element.
fn tbs_fields(tbs: &[u8]) -> Result<TbsFields<'_>, String> {
    let (_, content, _) = der_tlv(tbs)?;
    let elements = tbs_elements(content)?;
    let (_, not_before, r) = der_tlv(elements.validity).map(|(t, c, r)| (t, der_time(t, c), r))?;
    let not_after = der_tlv(r).ok().and_then(|(t, c, _)| der_time(t, c));
    let mut dns_names = Vec::new();
    if let Some((extensions, _)) = elements.extensions {
        let (_, mut list, _) = der_tlv(extensions)?;
        while !list.is_empty() {
            let (_, extension, next) = der_tlv(list)?;
            list = next;
            let (_, oid, mut rest) = der_tlv(extension)?;
            if oid != SAN_OID {
                continue;
            }
            if rest.first() == Some(&0x01) {
                rest = der_tlv(rest)?.2;
            }
            let (_, value, _) = der_tlv(rest)?;
            let (_, mut names, _) = der_tlv(value)?;
            while !names.is_empty() {
                let (tag, name, next) = der_tlv(names)?;
                names = next;
                if tag == 0x82
                    && let Ok(name) = std::str::from_utf8(name)
                {
                    dns_names.push(name.to_owned());
                }
            }
        }
    }
    if let Some(cn) = common_name(elements.subject)
        && looks_like_host(cn)
        && !dns_names.iter().any(|n| n.eq_ignore_ascii_case(cn))
    {
        dns_names.push(cn.to_owned());
    }
    Ok(TbsFields {
        serial: elements.serial,
        issuer: elements.issuer,
        not_before,
        not_after,
        dns_names,
    })
}

fn common_name(subject: &[u8]) -> Option<&str> {
    let (_, mut rdns, _) = der_tlv(subject).ok()?;
    while !rdns.is_empty() {
        let (_, mut set, next) = der_tlv(rdns).ok()?;
        rdns = next;
        while !set.is_empty() {
            let (_, attribute, next) = der_tlv(set).ok()?;
            set = next;
            let (_, oid, value) = der_tlv(attribute).ok()?;
            if oid == CN_OID {
                let (_, text, _) = der_tlv(value).ok()?;
                return std::str::from_utf8(text).ok();
            }
        }
    }
    None
}

fn looks_like_host(name: &str) -> bool {
    name.contains('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'*' | b'_'))
}

fn der_time(tag: u8, text: &[u8]) -> Option<DateTime<Utc>> {
    let text = std::str::from_utf8(text).ok()?;
    let text = text.strip_suffix('Z')?;
    let (year, rest) = match tag {
        0x17 => {
            let yy: i32 = text.get(..2)?.parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, text.get(2..)?)
        }
        0x18 => (text.get(..4)?.parse().ok()?, text.get(4..)?),
        _ => return None,
    };
    let field = |i: usize| rest.get(i..i + 2).and_then(|s| s.parse::<u32>().ok());
    NaiveDate::from_ymd_opt(year, field(0)?, field(2)?)?
        .and_hms_opt(field(4)?, field(6)?, field(8).unwrap_or(0))
        .map(|t| t.and_utc())
}

fn der_length(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// The TBSCertificate (whole element) without the poison and SCT list
/// extensions; borrowed when it has neither.
fn strip_ct_extensions(tbs: &[u8]) -> Result<Cow<'_, [u8]>, String> {
    let (_, content, _) = der_tlv(tbs)?;
    let elements = tbs_elements(content)?;
    let Some((wrapper, offset)) = elements.extensions else {
        return Ok(Cow::Borrowed(tbs));
    };
    let (_, mut list, _) = der_tlv(wrapper)?;
    let mut kept = Vec::with_capacity(list.len());
    let mut dropped = false;
    while !list.is_empty() {
        let whole = der_whole(list)?;
        let (_, extension, next) = der_tlv(list)?;
        list = next;
        let (_, oid, _) = der_tlv(extension)?;
        if oid == POISON_OID || oid == SCT_LIST_OID {
            dropped = true;
        } else {
            kept.extend_from_slice(whole);
        }
    }
    if !dropped {
        return Ok(Cow::Borrowed(tbs));
    }
    let mut inner = content[..offset].to_vec();
    if !kept.is_empty() {
        let mut sequence = vec![0x30];
        der_length(kept.len(), &mut sequence);
        sequence.extend_from_slice(&kept);
        inner.push(0xa3);
        der_length(sequence.len(), &mut inner);
        inner.extend_from_slice(&sequence);
    }
    let mut out = vec![0x30];
    der_length(inner.len(), &mut out);
    out.extend_from_slice(&inner);
    Ok(Cow::Owned(out))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        let t = der_time(0x17, b"250102030405Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2025-01-02T03:04:05+00:00");
        let t = der_time(0x18, b"20491231235959Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2049-12-31T23:59:59+00:00");
        assert!(der_time(0x17, b"garbage").is_none());
    }

    #[test]
    fn readers_refuse_truncation() {
        let mut r = Reader::new(&[0, 3, 1, 2]);
        assert!(r.vec16().is_err());
        let mut r = Reader::new(&[0, 0, 1, 9]);
        assert_eq!(r.vec24().unwrap(), &[9]);
        assert!(r.is_empty());
        assert!(der_tlv(&[0x30, 0x85, 1, 1, 1, 1, 1]).is_err());
        assert!(Parser::default().rfc6962(0, &[0, 0, 1, 2, 3], &[]).is_err());
    }
}
