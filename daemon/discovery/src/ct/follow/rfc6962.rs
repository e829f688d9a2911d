//! The RFC 6962 API (§4): `get-sth` (§4.3), `get-sth-consistency` (§4.4),
//! `get-proof-by-hash` (§4.5, only to learn the right edge of a tree whose
//! leaves were not read) and `get-entries` (§4.6), which may answer with
//! fewer entries than asked for: the rest is asked for again. Ranges are
//! fetched `parallel` at a time, each parsed on the runtime's threads.

use std::borrow::Cow;
use std::sync::Arc;

use base64::Engine as _;
use futures_util::StreamExt as _;
use serde::Deserialize;

use super::Shared;
use crate::ct::CtError;
use crate::ct::entry::{Entry, Parser};
use crate::ct::merkle::{self, Hash};
use crate::ct::sig::TreeHead;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// An RFC 6962 log.
#[derive(Debug, Clone)]
pub struct Rfc6962 {
    shared: Arc<Shared>,
    /// Base URL ending in `/`.
    base: Arc<str>,
}

#[derive(Deserialize)]
struct Sth<'a> {
    tree_size: u64,
    timestamp: u64,
    #[serde(borrow)]
    sha256_root_hash: Cow<'a, str>,
    #[serde(borrow)]
    tree_head_signature: Cow<'a, str>,
}

#[derive(Deserialize)]
struct Consistency<'a> {
    #[serde(borrow)]
    consistency: Vec<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ProofByHash<'a> {
    leaf_index: u64,
    #[serde(borrow)]
    audit_path: Vec<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Entries<'a> {
    #[serde(borrow)]
    entries: Vec<RawEntry<'a>>,
}

#[derive(Deserialize)]
struct RawEntry<'a> {
    #[serde(borrow)]
    leaf_input: Cow<'a, str>,
    #[serde(borrow)]
    extra_data: Cow<'a, str>,
}

fn hash(text: &str) -> Result<Hash, String> {
    let bytes = B64.decode(text).map_err(|e| format!("not base64: {e}"))?;
    <[u8; 32]>::try_from(bytes).map_err(|_| "a hash is not 32 bytes".to_owned())
}

fn hashes(texts: &[Cow<'_, str>]) -> Result<Vec<Hash>, String> {
    if texts.len() > 64 {
        return Err("proof longer than 64 hashes".to_owned());
    }
    texts.iter().map(|t| hash(t)).collect()
}

fn query_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

impl Rfc6962 {
    pub(super) fn new(shared: Arc<Shared>, url: &str) -> Result<Self, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("bad log URL {url:?}: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!("log URL {url:?} is not http(s)"));
        }
        let base = if url.ends_with('/') {
            url.to_owned()
        } else {
            format!("{url}/")
        };
        Ok(Rfc6962 {
            shared,
            base: base.into(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}ct/v1/{path}", self.base)
    }

    pub(super) async fn head(&self) -> Result<TreeHead, CtError> {
        let s = &self.shared;
        let body = s
            .client
            .get(&self.url("get-sth"))
            .await
            .map_err(|e| s.http(e))?;
        let sth: Sth<'_> =
            serde_json::from_slice(&body).map_err(|e| s.malformed("get-sth", e.to_string()))?;
        let head = TreeHead {
            tree_size: sth.tree_size,
            root_hash: hash(&sth.sha256_root_hash).map_err(|r| s.malformed("get-sth", r))?,
            timestamp: sth.timestamp,
        };
        let signature = B64
            .decode(sth.tree_head_signature.as_ref())
            .map_err(|e| s.malformed("get-sth", format!("signature not base64: {e}")))?;
        s.key
            .verify_sth(&head, &signature)
            .map_err(|reason| CtError::Signature {
                log: s.name.clone(),
                reason: format!("STH of size {}: {reason}", head.tree_size),
            })?;
        Ok(head)
    }

    pub(super) async fn consistency(&self, old: u64, new: u64) -> Result<Vec<Hash>, CtError> {
        if old == 0 || old >= new {
            return Ok(Vec::new());
        }
        let s = &self.shared;
        let url = self.url(&format!("get-sth-consistency?first={old}&second={new}"));
        let body = s.client.get(&url).await.map_err(|e| s.http(e))?;
        let proof: Consistency<'_> = serde_json::from_slice(&body)
            .map_err(|e| s.malformed("get-sth-consistency", e.to_string()))?;
        hashes(&proof.consistency).map_err(|r| s.malformed("get-sth-consistency", r))
    }

    pub(super) async fn frontier(&self, head: &TreeHead) -> Result<Vec<Hash>, CtError> {
        if head.tree_size == 0 {
            return Ok(Vec::new());
        }
        let s = &self.shared;
        let last = head.tree_size - 1;
        let mut last_leaf = None;
        self.fetch_each(last, head.tree_size, head.tree_size, |_, leaf, _| {
            last_leaf = Some(merkle::leaf_hash(leaf));
            Ok(())
        })
        .await?;
        let Some(leaf) = last_leaf else {
            return Err(s.malformed("get-entries", "no last entry"));
        };
        let url = self.url(&format!(
            "get-proof-by-hash?hash={}&tree_size={}",
            query_escape(&B64.encode(leaf)),
            head.tree_size
        ));
        let body = s.client.get(&url).await.map_err(|e| s.http(e))?;
        let proof: ProofByHash<'_> = serde_json::from_slice(&body)
            .map_err(|e| s.malformed("get-proof-by-hash", e.to_string()))?;
        if proof.leaf_index != last {
            return Err(s.malformed(
                "get-proof-by-hash",
                format!("leaf index {} for the last leaf {last}", proof.leaf_index),
            ));
        }
        let path = hashes(&proof.audit_path).map_err(|r| s.malformed("get-proof-by-hash", r))?;
        merkle::frontier_from_last_leaf(head.tree_size, leaf, &path).map_err(|reason| {
            CtError::LeafMismatch {
                log: s.name.clone(),
                tree_size: head.tree_size,
                reason,
            }
        })
    }

    /// Calls `each(index, leaf_input, extra_data)` for entries `[start,
    /// end)` in order, asking again for the rest after a short answer. The
    /// base64 is decoded into two buffers reused for every entry.
    async fn fetch_each(
        &self,
        start: u64,
        end: u64,
        tree_size: u64,
        mut each: impl FnMut(u64, &[u8], &[u8]) -> Result<(), CtError> + Send,
    ) -> Result<(), CtError> {
        let s = &self.shared;
        let mut next = start;
        let mut attempts = 0;
        let mut leaf = Vec::new();
        let mut extra = Vec::new();
        while next < end {
            let url = self.url(&format!("get-entries?start={next}&end={}", end - 1));
            let body = match s.client.get(&url).await {
                Ok(body) => body,
                Err(e) if e.is_not_found() => {
                    attempts += 1;
                    s.missing(attempts, next, tree_size).await?;
                    continue;
                }
                Err(e) => return Err(s.http(e)),
            };
            let parsed: Entries<'_> = serde_json::from_slice(&body)
                .map_err(|e| s.malformed("get-entries", e.to_string()))?;
            if parsed.entries.is_empty() {
                attempts += 1;
                s.missing(attempts, next, tree_size).await?;
                continue;
            }
            attempts = 0;
            let wanted = (end - next) as usize;
            for raw in parsed.entries.iter().take(wanted) {
                leaf.clear();
                extra.clear();
                B64.decode_vec(raw.leaf_input.as_bytes(), &mut leaf)
                    .map_err(|e| s.malformed("get-entries", format!("leaf_input: {e}")))?;
                B64.decode_vec(raw.extra_data.as_bytes(), &mut extra)
                    .map_err(|e| s.malformed("get-entries", format!("extra_data: {e}")))?;
                each(next, &leaf, &extra)?;
                next += 1;
            }
        }
        Ok(())
    }

    async fn range(&self, start: u64, end: u64, tree_size: u64) -> Result<Vec<Entry>, CtError> {
        let name = &self.shared.name;
        let mut parser = Parser::default();
        let mut entries = Vec::with_capacity((end - start) as usize);
        self.fetch_each(start, end, tree_size, |index, leaf, extra| {
            let entry = parser
                .rfc6962(index, leaf, extra)
                .map_err(|reason| CtError::Entry {
                    log: name.clone(),
                    index,
                    reason,
                })?;
            entries.push(entry);
            Ok(())
        })
        .await?;
        Ok(entries)
    }

    pub(super) async fn entries(
        &self,
        start: u64,
        end: u64,
        tree_size: u64,
    ) -> Result<Vec<Entry>, CtError> {
        let size = self.shared.options.batch_size.max(1);
        let mut ranges = Vec::new();
        let mut at = start;
        while at < end {
            let stop = (at + size).min(end);
            ranges.push((at, stop));
            at = stop;
        }
        let tasks = ranges.into_iter().map(|(a, b)| {
            let log = self.clone();
            tokio::spawn(async move { log.range(a, b, tree_size).await })
        });
        let mut results = futures_util::stream::iter(tasks).buffered(self.shared.options.parallel);
        let mut entries = Vec::with_capacity((end - start) as usize);
        while let Some(joined) = results.next().await {
            let chunk = joined.map_err(|e| {
                self.shared
                    .malformed("get-entries", format!("fetch task failed: {e}"))
            })??;
            entries.extend(chunk);
        }
        Ok(entries)
    }
}
