//! Test Certificate Transparency logs, served on loopback: an RFC 6962 log
//! (§4.3 `get-sth`, §4.4 `get-sth-consistency`, §4.5 `get-proof-by-hash`,
//! §4.6 `get-entries`; leaves per §3.4, tree heads signed per §3.5, trees
//! and proofs per §2.1) or a static-ct-api log (c2sp.org/static-ct-api:
//! `checkpoint` as a c2sp.org/signed-note with an RFC6962NoteSignature,
//! data tiles of `TileLeaf`s with the `leaf_index` extension, hash tiles and
//! partial tiles per c2sp.org/tlog-tiles, `issuer/<fingerprint>`).
//!
//! Written independently of the engine it tests (its own tree code), so a
//! shared mistake does not hide. A log can misbehave on purpose
//! ([`Misbehaviour`]) and fork ([`Log::fork`]). Used by the discovery
//! crate's tests and benchmark and, with `mod ct_log;`, the daemon's.

#![allow(dead_code)]

pub mod certs;
pub mod certspotter;
mod server;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use base64::Engine as _;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::sign::Signer;

pub use certs::{PrecertPair, Template, TestCa};

type Hash = [u8; 32];
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The API a test log serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// RFC 6962.
    Rfc6962,
    /// static-ct-api (tiles).
    Static,
}

/// Ways a log misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misbehaviour {
    /// Entry requests (get-entries, data tiles) never answer.
    Stall,
    /// Entry requests answer 200 with bytes that are not what was asked.
    Garbage,
    /// Entry requests answer a 10 MB body.
    HugeBody,
    /// The tree head claims this many more entries than are served.
    ClaimBeyond(u64),
    /// The tree head's signature is wrong.
    BadSignature,
}

/// One entry as stored: certificates by value, templated ones by serial.
#[derive(Clone)]
enum Body {
    Cert(Arc<(Vec<u8>, Vec<Vec<u8>>)>),
    Precert(Arc<PrecertPair>),
    /// Template index, serial, and whether this is the pair's final
    /// certificate (else its precertificate or a plain certificate).
    Templated(u32, u64, bool),
}

#[derive(Clone)]
struct Stored {
    timestamp: u64,
    body: Body,
}

struct PreparedTemplate {
    template: Template,
    /// Marker offsets in: the certificate (or final certificate), the TBS,
    /// and the precertificate.
    cert_offsets: Vec<usize>,
    tbs_offsets: Vec<usize>,
    precert_offsets: Vec<usize>,
}

/// A published tree head and the tree it covers.
#[derive(Clone)]
pub(crate) struct Published {
    pub size: u64,
    /// The size the head claims (larger under `ClaimBeyond`).
    pub claimed: u64,
    pub root: Hash,
    pub timestamp: u64,
    /// `levels[h][i]`: the hash of complete subtree `i` of height `h`.
    pub levels: Arc<Vec<Vec<Hash>>>,
    pub sth_json: String,
    pub checkpoint: String,
}

struct State {
    entries: Vec<Stored>,
    hashes: Vec<Hash>,
    templates: Vec<PreparedTemplate>,
    published: Option<Published>,
    clock: u64,
}

pub(crate) struct Inner {
    pub api: Api,
    name: String,
    key: PKey<Private>,
    key_der: Vec<u8>,
    state: RwLock<State>,
    pub misbehaviour: Mutex<Option<Misbehaviour>>,
    pub page_limit: AtomicUsize,
    /// Tiles are served gzip-compressed: with `Content-Encoding: gzip` for
    /// data tiles, without for hash tiles (both happen in the wild).
    pub gzip: std::sync::atomic::AtomicBool,
    pub url: Mutex<Option<String>>,
    /// Requests answered, by kind, for tests that check what was asked.
    pub requests: AtomicUsize,
}

/// A test log (cheap to clone; clones share the log).
#[derive(Clone)]
pub struct Log {
    pub(crate) inner: Arc<Inner>,
}

fn node(left: &Hash, right: &Hash) -> Hash {
    let mut buf = [0u8; 65];
    buf[0] = 1;
    buf[1..33].copy_from_slice(left);
    buf[33..].copy_from_slice(right);
    openssl::sha::sha256(&buf)
}

fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut h = openssl::sha::Sha256::new();
    h.update(&[0]);
    h.update(leaf);
    h.finish()
}

fn largest_power_below(n: u64) -> u64 {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// MTH over leaves `[a, b)` from the complete-subtree levels.
pub(crate) fn mth(levels: &[Vec<Hash>], a: u64, b: u64) -> Hash {
    let n = b - a;
    if n == 0 {
        return openssl::sha::sha256(b"");
    }
    if n.is_power_of_two() && a.is_multiple_of(n) {
        let h = n.trailing_zeros() as usize;
        return levels[h][(a >> h) as usize];
    }
    let k = largest_power_below(n);
    node(&mth(levels, a, a + k), &mth(levels, a + k, b))
}

/// RFC 6962 §2.1.2 PROOF(m, D[0:n]).
pub(crate) fn consistency(levels: &[Vec<Hash>], m: u64, n: u64) -> Vec<Hash> {
    fn sub(levels: &[Vec<Hash>], m: u64, a: u64, b: u64, whole: bool, out: &mut Vec<Hash>) {
        let n = b - a;
        if m == n {
            if !whole {
                out.push(mth(levels, a, b));
            }
            return;
        }
        let k = largest_power_below(n);
        if m <= k {
            sub(levels, m, a, a + k, whole, out);
            out.push(mth(levels, a + k, b));
        } else {
            sub(levels, m - k, a + k, b, false, out);
            out.push(mth(levels, a, a + k));
        }
    }
    let mut out = Vec::new();
    if 0 < m && m < n {
        sub(levels, m, 0, n, true, &mut out);
    }
    out
}

/// RFC 6962 §2.1.1 PATH(m, D[0:n]).
pub(crate) fn audit_path(levels: &[Vec<Hash>], m: u64, n: u64) -> Vec<Hash> {
    fn sub(levels: &[Vec<Hash>], m: u64, a: u64, b: u64, out: &mut Vec<Hash>) {
        let n = b - a;
        if n <= 1 {
            return;
        }
        let k = largest_power_below(n);
        if m < k {
            sub(levels, m, a, a + k, out);
            out.push(mth(levels, a + k, b));
        } else {
            sub(levels, m - k, a + k, b, out);
            out.push(mth(levels, a, a + k));
        }
    }
    let mut out = Vec::new();
    sub(levels, m, 0, n, &mut out);
    out
}

fn u24(out: &mut Vec<u8>, data: &[u8]) {
    let n = data.len();
    out.extend_from_slice(&[(n >> 16) as u8, (n >> 8) as u8, n as u8]);
    out.extend_from_slice(data);
}

/// What an entry logs, materialised.
pub(crate) struct Materialised {
    pub timestamp: u64,
    /// Certificate DER, or the precertificate's TBS.
    pub body: Vec<u8>,
    pub issuer_key_hash: Option<Hash>,
    pub precert: Option<Vec<u8>>,
    pub chain: Vec<Vec<u8>>,
}

impl Materialised {
    /// `TimestampedEntry` (RFC 6962 §3.4), with the static-ct-api
    /// `leaf_index` extension when `index` is given.
    pub fn timestamped_entry(&self, index: Option<u64>) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 64);
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        match &self.issuer_key_hash {
            None => {
                out.extend_from_slice(&[0, 0]);
            }
            Some(hash) => {
                out.extend_from_slice(&[0, 1]);
                out.extend_from_slice(hash);
            }
        }
        u24(&mut out, &self.body);
        match index {
            Some(i) => {
                out.extend_from_slice(&[0, 8, 0, 0, 5]);
                out.extend_from_slice(&i.to_be_bytes()[3..]);
            }
            None => out.extend_from_slice(&[0, 0]),
        }
        out
    }

    /// The RFC 6962 `MerkleTreeLeaf`.
    pub fn leaf_input(&self, index: Option<u64>) -> Vec<u8> {
        let mut out = vec![0, 0];
        out.extend_from_slice(&self.timestamped_entry(index));
        out
    }

    /// The RFC 6962 `extra_data` of get-entries.
    pub fn extra_data(&self) -> Vec<u8> {
        let mut chain = Vec::new();
        for cert in &self.chain {
            u24(&mut chain, cert);
        }
        let mut out = Vec::new();
        if let Some(precert) = &self.precert {
            u24(&mut out, precert);
        }
        u24(&mut out, &chain);
        out
    }
}

impl Log {
    /// A new empty log with a fresh ECDSA P-256 key.
    pub fn new(api: Api) -> Log {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("P-256");
        let key = PKey::from_ec_key(EcKey::generate(&group).expect("key")).expect("key");
        let key_der = key.public_key_to_der().expect("SPKI");
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        Log {
            inner: Arc::new(Inner {
                api,
                name: format!("test-log-{n}"),
                key,
                key_der,
                state: RwLock::new(State {
                    entries: Vec::new(),
                    hashes: Vec::new(),
                    templates: Vec::new(),
                    published: None,
                    clock: 1_760_000_000_000,
                }),
                misbehaviour: Mutex::new(None),
                page_limit: AtomicUsize::new(usize::MAX),
                gzip: std::sync::atomic::AtomicBool::new(false),
                url: Mutex::new(None),
                requests: AtomicUsize::new(0),
            }),
        }
    }

    /// The log's name (its description in the log list).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The checkpoint origin of a static log (`ct-test.example/<name>`).
    pub fn origin(&self) -> String {
        format!("ct-test.example/{}", self.inner.name)
    }

    /// The public key, base64 DER.
    pub fn key_base64(&self) -> String {
        B64.encode(&self.inner.key_der)
    }

    /// The log ID, base64.
    pub fn log_id_base64(&self) -> String {
        B64.encode(openssl::sha::sha256(&self.inner.key_der))
    }

    /// The served URL, once [`Log::serve`] ran.
    pub fn url(&self) -> Option<String> {
        self.inner.url.lock().ok().and_then(|u| u.clone())
    }

    /// Serves the log on a free loopback port; its base URL (ending `/`).
    pub async fn serve(&self) -> String {
        server::serve(self.clone()).await
    }

    /// Answers to get-entries hold at most this many entries.
    pub fn set_page_limit(&self, limit: usize) {
        self.inner.page_limit.store(limit.max(1), Ordering::Relaxed);
    }

    /// Serves tiles gzip-compressed (static logs).
    pub fn set_gzip(&self, gzip: bool) {
        self.inner.gzip.store(gzip, Ordering::Relaxed);
    }

    /// Makes the log misbehave (or, with `None`, behave).
    pub fn set_misbehaviour(&self, misbehaviour: Option<Misbehaviour>) {
        *self.inner.misbehaviour.lock().expect("lock") = misbehaviour;
        let published = self.inner.state.read().expect("lock").published.clone();
        if let Some(p) = published {
            // Re-sign the current tree as the misbehaviour wants it.
            let mut state = self.inner.state.write().expect("lock");
            let signed = self.sign(p.size, p.levels.clone(), p.timestamp);
            state.published = Some(signed);
        }
    }

    /// Number of entries added (published or not).
    pub fn len(&self) -> u64 {
        self.inner.state.read().expect("lock").entries.len() as u64
    }

    /// Size of the published tree.
    pub fn published_size(&self) -> u64 {
        self.published().map(|p| p.size).unwrap_or(0)
    }

    pub(crate) fn published(&self) -> Option<Published> {
        self.inner.state.read().expect("lock").published.clone()
    }

    fn push(&self, state: &mut State, body: Body) {
        state.clock += 1;
        let stored = Stored {
            timestamp: state.clock,
            body,
        };
        let index = state.entries.len() as u64;
        state.entries.push(stored);
        let m = materialise(state, index);
        let leaf = m.leaf_input(self.leaf_index(index));
        state.hashes.push(leaf_hash(&leaf));
    }

    fn leaf_index(&self, index: u64) -> Option<u64> {
        (self.inner.api == Api::Static).then_some(index)
    }

    /// Adds a certificate entry; its index.
    pub fn add_cert(&self, der: &[u8], chain: &[Vec<u8>]) -> u64 {
        let mut state = self.inner.state.write().expect("lock");
        let index = state.entries.len() as u64;
        self.push(
            &mut state,
            Body::Cert(Arc::new((der.to_vec(), chain.to_vec()))),
        );
        index
    }

    /// Adds a precertificate entry and then its final certificate's entry;
    /// the precertificate's index.
    pub fn add_precert_pair(&self, pair: &PrecertPair) -> u64 {
        let mut state = self.inner.state.write().expect("lock");
        let index = state.entries.len() as u64;
        self.push(&mut state, Body::Precert(Arc::new(pair.clone())));
        self.push(
            &mut state,
            Body::Cert(Arc::new((pair.final_cert.clone(), pair.chain.clone()))),
        );
        index
    }

    /// Adds `count` entries from `template` with serials `first_serial..`
    /// (a pair template adds two entries per serial); fast: each entry's
    /// leaf is the template's with the serial bytes patched.
    pub fn add_templated(&self, template: &Template, first_serial: u64, count: u64) {
        let mut state = self.inner.state.write().expect("lock");
        let prepared = match template {
            Template::Cert { der, .. } => PreparedTemplate {
                template: template.clone(),
                cert_offsets: certs::marker_offsets(der),
                tbs_offsets: Vec::new(),
                precert_offsets: Vec::new(),
            },
            Template::Pair(pair) => PreparedTemplate {
                template: template.clone(),
                cert_offsets: certs::marker_offsets(&pair.final_cert),
                tbs_offsets: certs::marker_offsets(&pair.tbs),
                precert_offsets: certs::marker_offsets(&pair.precert),
            },
        };
        let t = state.templates.len() as u32;
        state.templates.push(prepared);
        let is_pair = matches!(template, Template::Pair(_));
        let static_api = self.inner.api == Api::Static;
        state
            .entries
            .reserve(count as usize * if is_pair { 2 } else { 1 });
        // One leaf buffer per entry kind, patched in place: the serial's
        // offset within the leaf is fixed.
        let mut kinds: Vec<(bool, Vec<u8>, Vec<usize>)> = Vec::new();
        for final_cert in if is_pair {
            vec![false, true]
        } else {
            vec![false]
        } {
            let body = Body::Templated(t, 0, final_cert);
            let index = state.entries.len() as u64;
            state.entries.push(Stored { timestamp: 0, body });
            let m = materialise(&state, index);
            state.entries.pop();
            let leaf = m.leaf_input(static_api.then_some(0));
            let offsets = certs::marker_offsets(&leaf);
            kinds.push((final_cert, leaf, offsets));
        }
        for i in 0..count {
            let serial = first_serial + i;
            for (final_cert, leaf, offsets) in kinds.iter_mut() {
                state.clock += 1;
                let index = state.entries.len() as u64;
                certs::patch(leaf, offsets, serial);
                leaf[2..10].copy_from_slice(&state.clock.to_be_bytes());
                if static_api {
                    let n = leaf.len();
                    leaf[n - 5..].copy_from_slice(&index.to_be_bytes()[3..]);
                }
                let hash = leaf_hash(leaf);
                let clock = state.clock;
                state.entries.push(Stored {
                    timestamp: clock,
                    body: Body::Templated(t, serial, *final_cert),
                });
                state.hashes.push(hash);
            }
        }
    }

    /// Signs a new tree head over every entry added so far.
    pub fn publish(&self) {
        let mut state = self.inner.state.write().expect("lock");
        let size = state.hashes.len() as u64;
        let levels = Arc::new(build_levels(&state.hashes));
        state.clock += 1;
        let timestamp = state.clock;
        state.published = Some(self.sign(size, levels, timestamp));
    }

    /// Serves another history at the same size: the last published entry
    /// gets another timestamp, so its leaf, and the root, change; the new
    /// tree head is signed as usual.
    pub fn fork(&self) {
        let mut state = self.inner.state.write().expect("lock");
        let Some(published) = state.published.clone() else {
            return;
        };
        let last = published.size.saturating_sub(1);
        state.entries[last as usize].timestamp += 7;
        let m = materialise(&state, last);
        let leaf = m.leaf_input(self.leaf_index(last));
        state.hashes[last as usize] = leaf_hash(&leaf);
        let size = published.size;
        let levels = Arc::new(build_levels(&state.hashes[..size as usize]));
        state.clock += 1;
        let timestamp = state.clock;
        state.published = Some(self.sign(size, levels, timestamp));
    }

    fn digitally_signed(&self, data: &[u8]) -> Vec<u8> {
        let mut signer = Signer::new(MessageDigest::sha256(), &self.inner.key).expect("signer");
        signer.update(data).expect("sign");
        let sig = signer.sign_to_vec().expect("sign");
        let mut out = vec![4, 3];
        out.extend_from_slice(&(sig.len() as u16).to_be_bytes());
        out.extend_from_slice(&sig);
        out
    }

    fn sign(&self, size: u64, levels: Arc<Vec<Vec<Hash>>>, timestamp: u64) -> Published {
        let misbehaviour = *self.inner.misbehaviour.lock().expect("lock");
        let (claimed, root) = match misbehaviour {
            Some(Misbehaviour::ClaimBeyond(extra)) => {
                (size + extra, openssl::sha::sha256(b"a tree nobody serves"))
            }
            _ => (size, mth(&levels, 0, size)),
        };
        let mut input = vec![0u8, 1];
        input.extend_from_slice(&timestamp.to_be_bytes());
        input.extend_from_slice(&claimed.to_be_bytes());
        input.extend_from_slice(&root);
        let mut signed = self.digitally_signed(&input);
        if misbehaviour == Some(Misbehaviour::BadSignature) {
            let n = signed.len();
            signed[n - 3] ^= 0x55;
        }
        let sth_json = serde_json::json!({
            "tree_size": claimed,
            "timestamp": timestamp,
            "sha256_root_hash": B64.encode(root),
            "tree_head_signature": B64.encode(&signed),
        })
        .to_string();
        let origin = self.origin();
        let body = format!("{origin}\n{claimed}\n{}\n", B64.encode(root));
        let mut id_input = origin.as_bytes().to_vec();
        id_input.extend_from_slice(&[b'\n', 0x05]);
        id_input.extend_from_slice(&openssl::sha::sha256(&self.inner.key_der));
        let mut note_sig = openssl::sha::sha256(&id_input)[..4].to_vec();
        note_sig.extend_from_slice(&timestamp.to_be_bytes());
        note_sig.extend_from_slice(&signed);
        let checkpoint = format!("{body}\n\u{2014} {origin} {}\n", B64.encode(&note_sig));
        Published {
            size,
            claimed,
            root,
            timestamp,
            levels,
            sth_json,
            checkpoint,
        }
    }

    pub(crate) fn materialise(&self, index: u64) -> Materialised {
        let state = self.inner.state.read().expect("lock");
        materialise(&state, index)
    }

    /// Entries `[start, end)` materialised (one lock for all).
    pub(crate) fn materialise_range(&self, start: u64, end: u64) -> Vec<Materialised> {
        let state = self.inner.state.read().expect("lock");
        (start..end).map(|i| materialise(&state, i)).collect()
    }

    /// A v3 log list (Chrome's `log_list.json` format) naming these logs,
    /// which must have been served.
    pub fn log_list_json_for(logs: &[&Log]) -> String {
        let mut rfc = Vec::new();
        let mut tiled = Vec::new();
        for log in logs {
            let url = log.url().expect("serve the log before listing it");
            let mut entry = serde_json::json!({
                "description": log.name(),
                "log_id": log.log_id_base64(),
                "key": log.key_base64(),
                "mmd": 86400,
                "state": {"usable": {"timestamp": "2025-01-01T00:00:00Z"}},
                "temporal_interval": {
                    "start_inclusive": "2020-01-01T00:00:00Z",
                    "end_exclusive": "2040-01-01T00:00:00Z"
                }
            });
            match log.inner.api {
                Api::Rfc6962 => {
                    entry["url"] = url.into();
                    rfc.push(entry);
                }
                Api::Static => {
                    entry["submission_url"] = format!("https://{}/", log.origin()).into();
                    entry["monitoring_url"] = url.into();
                    tiled.push(entry);
                }
            }
        }
        serde_json::json!({
            "version": "1.0",
            "log_list_timestamp": "2026-01-01T00:00:00Z",
            "operators": [{
                "name": "Certkeeper tests",
                "email": ["tests@certkeeper.invalid"],
                "logs": rfc,
                "tiled_logs": tiled,
            }]
        })
        .to_string()
    }

    /// A v3 log list naming this log.
    pub fn log_list_json(&self) -> String {
        Log::log_list_json_for(&[self])
    }

    /// Writes [`Log::log_list_json`] to `path`.
    pub fn write_log_list(&self, path: &std::path::Path) {
        std::fs::write(path, self.log_list_json()).expect("write the log list");
    }
}

fn build_levels(hashes: &[Hash]) -> Vec<Vec<Hash>> {
    let mut levels = vec![hashes.to_vec()];
    while levels.last().map(|l| l.len()).unwrap_or(0) > 1 {
        let below = levels.last().expect("a level");
        let above: Vec<Hash> = below
            .chunks_exact(2)
            .map(|pair| node(&pair[0], &pair[1]))
            .collect();
        levels.push(above);
    }
    levels
}

fn materialise(state: &State, index: u64) -> Materialised {
    let stored = &state.entries[index as usize];
    match &stored.body {
        Body::Cert(cert) => Materialised {
            timestamp: stored.timestamp,
            body: cert.0.clone(),
            issuer_key_hash: None,
            precert: None,
            chain: cert.1.clone(),
        },
        Body::Precert(pair) => Materialised {
            timestamp: stored.timestamp,
            body: pair.tbs.clone(),
            issuer_key_hash: Some(pair.issuer_key_hash),
            precert: Some(pair.precert.clone()),
            chain: pair.chain.clone(),
        },
        Body::Templated(t, serial, final_cert) => {
            let prepared = &state.templates[*t as usize];
            match &prepared.template {
                Template::Cert { der, chain } => {
                    let mut body = der.clone();
                    certs::patch(&mut body, &prepared.cert_offsets, *serial);
                    Materialised {
                        timestamp: stored.timestamp,
                        body,
                        issuer_key_hash: None,
                        precert: None,
                        chain: chain.clone(),
                    }
                }
                Template::Pair(pair) if *final_cert => {
                    let mut body = pair.final_cert.clone();
                    certs::patch(&mut body, &prepared.cert_offsets, *serial);
                    Materialised {
                        timestamp: stored.timestamp,
                        body,
                        issuer_key_hash: None,
                        precert: None,
                        chain: pair.chain.clone(),
                    }
                }
                Template::Pair(pair) => {
                    let mut body = pair.tbs.clone();
                    certs::patch(&mut body, &prepared.tbs_offsets, *serial);
                    let mut precert = pair.precert.clone();
                    certs::patch(&mut precert, &prepared.precert_offsets, *serial);
                    Materialised {
                        timestamp: stored.timestamp,
                        body,
                        issuer_key_hash: Some(pair.issuer_key_hash),
                        precert: Some(precert),
                        chain: pair.chain.clone(),
                    }
                }
            }
        }
    }
}

/// CRC-32 (ISO 3309, as gzip uses it), bit by bit: test data is small.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A gzip member (RFC 1952) holding `data`.
pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    out.extend_from_slice(&miniz_oxide::deflate::compress_to_vec(data, 6));
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}
