//! The static CT API (c2sp.org/static-ct-api) monitoring side: the
//! `checkpoint` (a signed note), data tiles (`tile/data/<N>`, 256
//! `TileLeaf`s, partial at the right edge), hash tiles (`tile/<L>/<N>`) and
//! `issuer/<fingerprint>` certificates. Tiled logs serve tree nodes rather
//! than proofs, so consistency proofs (RFC 6962 §2.1.2) are built here from
//! hash tiles and verified like a log's own: a lying tile fails the proof,
//! never passes it. Data tiles are fetched `parallel` at a time; hash tiles
//! and issuers are cached, as they are shared by many proofs and entries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt as _;
use sha2::{Digest, Sha256};

use super::Shared;
use crate::ct::CtError;
use crate::ct::entry::{Entry, Parser};
use crate::ct::merkle::{self, Hash};
use crate::ct::sig::{self, CheckpointError, TreeHead};
use crate::ct::tiles::{self, TILE_WIDTH};

/// Hash tiles kept before the cache is emptied.
const MAX_CACHED_TILES: usize = 4096;

/// Hash tiles by (level, index, width).
type TileCache = HashMap<(u8, u64, u64), Arc<Vec<Hash>>>;

/// A tiled log.
#[derive(Debug, Clone)]
pub struct Tiled {
    shared: Arc<Shared>,
    /// Monitoring prefix ending in `/`.
    base: Arc<str>,
    origin: Arc<str>,
    hash_tiles: Arc<Mutex<TileCache>>,
    issuers: Arc<Mutex<HashMap<Hash, Arc<Vec<u8>>>>>,
}

impl Tiled {
    pub(super) fn new(shared: Arc<Shared>, url: &str, origin: &str) -> Result<Self, String> {
        let parsed =
            url::Url::parse(url).map_err(|e| format!("bad monitoring URL {url:?}: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!("monitoring URL {url:?} is not http(s)"));
        }
        if origin.is_empty() {
            return Err("a tiled log needs its checkpoint origin".to_owned());
        }
        let base = if url.ends_with('/') {
            url.to_owned()
        } else {
            format!("{url}/")
        };
        Ok(Tiled {
            shared,
            base: base.into(),
            origin: origin.into(),
            hash_tiles: Arc::default(),
            issuers: Arc::default(),
        })
    }

    pub(super) async fn head(&self) -> Result<TreeHead, CtError> {
        let s = &self.shared;
        let url = format!("{}checkpoint", self.base);
        let body = s.client.get(&url).await.map_err(|e| s.http(e))?;
        sig::verify_checkpoint(&body, &self.origin, &s.id, &s.key).map_err(|e| match e {
            CheckpointError::Malformed(reason) => s.malformed("checkpoint", reason),
            CheckpointError::Signature(reason) => CtError::Signature {
                log: s.name.clone(),
                reason: format!("checkpoint: {reason}"),
            },
        })
    }

    /// Hash tile `index` at `level` of the tree of `tree_size` leaves.
    async fn hash_tile(
        &self,
        level: u8,
        index: u64,
        tree_size: u64,
    ) -> Result<Arc<Vec<Hash>>, CtError> {
        let s = &self.shared;
        let nodes = tree_size >> (8 * u32::from(level));
        let width = nodes.saturating_sub(index * TILE_WIDTH).min(TILE_WIDTH);
        if width == 0 {
            return Err(s.malformed(
                "hash tile",
                format!("tile {level}/{index} is beyond a tree of {tree_size}"),
            ));
        }
        let key = (level, index, width);
        if let Ok(cache) = self.hash_tiles.lock()
            && let Some(tile) = cache.get(&key)
        {
            return Ok(tile.clone());
        }
        let first_leaf = (index * TILE_WIDTH) << (8 * u32::from(level));
        let (body, served) = self
            .get_tile(Some(level), index, width, first_leaf, tree_size)
            .await?;
        let body = if body.len() as u64 == served * 32 {
            body
        } else {
            tiles::maybe_gunzip(body, s.options.client.max_body)
                .map_err(|r| s.malformed("hash tile", r))?
        };
        let mut hashes =
            tiles::parse_hash_tile(&body, served).map_err(|r| s.malformed("hash tile", r))?;
        hashes.truncate(width as usize);
        let tile = Arc::new(hashes);
        if let Ok(mut cache) = self.hash_tiles.lock() {
            if cache.len() >= MAX_CACHED_TILES {
                cache.clear();
            }
            cache.insert(key, tile.clone());
        }
        Ok(tile)
    }

    /// A tile of `width` entries (partial below 256) and the width served.
    /// A log that grew past a partial tile may have deleted it; the full
    /// tile then holds the same entries first (c2sp.org/tlog-tiles), so it
    /// is asked for before the partial one is retried.
    async fn get_tile(
        &self,
        level: Option<u8>,
        index: u64,
        width: u64,
        first_leaf: u64,
        tree_size: u64,
    ) -> Result<(Vec<u8>, u64), CtError> {
        let s = &self.shared;
        let url = format!("{}{}", self.base, tiles::tile_path(level, index, width));
        if width < TILE_WIDTH {
            match s.client.get(&url).await {
                Ok(body) => return Ok((body, width)),
                Err(e) if e.is_not_found() => {
                    let full = tiles::tile_path(level, index, TILE_WIDTH);
                    if let Ok(body) = s.client.get(&format!("{}{full}", self.base)).await {
                        return Ok((body, TILE_WIDTH));
                    }
                }
                Err(e) => return Err(s.http(e)),
            }
        }
        Ok((s.get_served(&url, first_leaf, tree_size).await?, width))
    }

    /// The hash of the complete subtree of `2^height` leaves starting at
    /// leaf `start`, from the hash tile holding its level-`8·L` nodes.
    async fn node(&self, start: u64, height: u32, tree_size: u64) -> Result<Hash, CtError> {
        let level = height / 8;
        let within = height % 8;
        let first = start >> (8 * level); // index among level-8L nodes
        let count = 1usize << within;
        let tile = self
            .hash_tile(level as u8, first / TILE_WIDTH, tree_size)
            .await?;
        let offset = (first % TILE_WIDTH) as usize;
        let Some(slice) = tile.get(offset..offset + count) else {
            return Err(self
                .shared
                .malformed("hash tile", "a node is beyond its tile's width"));
        };
        let mut layer = slice.to_vec();
        while layer.len() > 1 {
            layer = layer
                .chunks_exact(2)
                .map(|pair| merkle::node_hash(&pair[0], &pair[1]))
                .collect();
        }
        layer
            .first()
            .copied()
            .ok_or_else(|| self.shared.malformed("hash tile", "empty node"))
    }

    /// MTH of leaves `[start, end)` of the tree of `tree_size`, from its
    /// complete subtrees.
    async fn range_hash(&self, start: u64, end: u64, tree_size: u64) -> Result<Hash, CtError> {
        let mut nodes = Vec::new();
        for (lo, hi) in merkle::frontier_ranges(end - start) {
            let width = hi - lo;
            let at = start + lo;
            if !at.is_multiple_of(width) {
                return Err(self
                    .shared
                    .malformed("hash tile", "an unaligned subtree was asked for"));
            }
            nodes.push(self.node(at, width.trailing_zeros(), tree_size).await?);
        }
        Ok(merkle::root(&nodes))
    }

    pub(super) async fn consistency(&self, old: u64, new: u64) -> Result<Vec<Hash>, CtError> {
        let mut ranges = Vec::new();
        merkle::consistency_proof(old, new, &mut |a, b| {
            ranges.push((a, b));
            Ok::<_, ()>([0; 32])
        })
        .ok();
        let mut proof = Vec::with_capacity(ranges.len());
        for (a, b) in ranges {
            proof.push(self.range_hash(a, b, new).await?);
        }
        Ok(proof)
    }

    pub(super) async fn frontier(&self, head: &TreeHead) -> Result<Vec<Hash>, CtError> {
        let mut frontier = Vec::new();
        for (lo, hi) in merkle::frontier_ranges(head.tree_size) {
            frontier.push(
                self.node(lo, (hi - lo).trailing_zeros(), head.tree_size)
                    .await?,
            );
        }
        Ok(frontier)
    }

    async fn issuer(&self, fingerprint: Hash) -> Result<Arc<Vec<u8>>, CtError> {
        if let Ok(cache) = self.issuers.lock()
            && let Some(cert) = cache.get(&fingerprint)
        {
            return Ok(cert.clone());
        }
        let s = &self.shared;
        let url = format!("{}issuer/{}", self.base, hex::encode(fingerprint));
        let body = s.client.get(&url).await.map_err(|e| s.http(e))?;
        let body = tiles::maybe_gunzip(body, s.options.client.max_body)
            .map_err(|r| s.malformed("issuer", r))?;
        if <[u8; 32]>::from(Sha256::digest(&body)) != fingerprint {
            return Err(s.malformed(
                "issuer",
                format!(
                    "issuer/{} has another fingerprint",
                    hex::encode(fingerprint)
                ),
            ));
        }
        let cert = Arc::new(body);
        if let Ok(mut cache) = self.issuers.lock() {
            cache.insert(fingerprint, cert.clone());
        }
        Ok(cert)
    }

    /// Entries `[start, end)` of data tile `tile`.
    async fn tile_entries(
        &self,
        tile: u64,
        start: u64,
        end: u64,
        tree_size: u64,
    ) -> Result<Vec<Entry>, CtError> {
        let s = &self.shared;
        let first = tile * TILE_WIDTH;
        let width = (tree_size - first).min(TILE_WIDTH);
        let (body, served) = self.get_tile(None, tile, width, first, tree_size).await?;
        let body = tiles::maybe_gunzip(body, s.options.client.max_body)
            .map_err(|r| s.malformed("data tile", r))?;
        let leaves =
            tiles::parse_data_tile(&body, served).map_err(|r| s.malformed("data tile", r))?;
        let mut parser = Parser::default();
        let mut entries = Vec::with_capacity((end - start) as usize);
        for (offset, leaf) in leaves.iter().enumerate() {
            let index = first + offset as u64;
            if index < start || index >= end {
                continue;
            }
            let mut chain = Vec::with_capacity(leaf.chain.len() / 32);
            for fingerprint in leaf.chain.chunks_exact(32) {
                let fingerprint: Hash = fingerprint
                    .try_into()
                    .map_err(|_| s.malformed("data tile", "bad fingerprint"))?;
                chain.push(self.issuer(fingerprint).await?.as_ref().clone());
            }
            let entry = parser
                .tiled(index, leaf.timestamped_entry, leaf.precertificate, chain)
                .map_err(|reason| CtError::Entry {
                    log: s.name.clone(),
                    index,
                    reason,
                })?;
            entries.push(entry);
        }
        Ok(entries)
    }

    pub(super) async fn entries(
        &self,
        start: u64,
        end: u64,
        tree_size: u64,
    ) -> Result<Vec<Entry>, CtError> {
        if start >= end {
            return Ok(Vec::new());
        }
        let tasks = (start / TILE_WIDTH..=(end - 1) / TILE_WIDTH).map(|tile| {
            let log = self.clone();
            tokio::spawn(async move { log.tile_entries(tile, start, end, tree_size).await })
        });
        // Each batch request of `batch_size` entries covers several tiles.
        let parallel = self.shared.options.parallel.max(1);
        let mut results = futures_util::stream::iter(tasks).buffered(parallel);
        let mut entries = Vec::with_capacity((end - start) as usize);
        while let Some(joined) = results.next().await {
            let chunk = joined.map_err(|e| {
                self.shared
                    .malformed("data tile", format!("fetch task failed: {e}"))
            })??;
            entries.extend(chunk);
        }
        Ok(entries)
    }
}
