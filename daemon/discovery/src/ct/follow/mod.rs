//! Following one log: the [`Follower`] holds the verified [`Position`],
//! fetches and verifies new tree heads ([`Follower::update_head`]) and
//! reads entries in verified batches ([`Follower::next_batch`]). The two
//! APIs differ only in how heads, entries and tree nodes are fetched
//! ([`rfc6962`], [`tiled`]); the verification is the same for both:
//!
//! - a new head must be signed, no smaller than the last, and, when
//!   larger, consistent with it (RFC 6962 §2.1.2: the log's proof, or one
//!   built from hash tiles); the same size with another root is a fork;
//! - each batch's leaf hashes extend the frontier, and the frontier's root
//!   must be the signed root (at the head) or be proven a prefix of the
//!   signed tree by a consistency proof from the batch's end to the head.
//!   Only then does the position move past the batch.

pub mod rfc6962;
pub mod tiled;

use std::sync::Arc;
use std::time::Duration;

use super::client::{Client, ClientOptions};
use super::entry::Entry;
use super::merkle::{self, Hash};
use super::sig::{LogKey, TreeHead};
use super::{CtError, LogKind, LogSpec, Position};

/// Where a log seen for the first time is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Start {
    /// From its current head: only entries logged from now on.
    #[default]
    Head,
    /// From entry 0.
    Beginning,
}

/// How a log is followed.
#[derive(Debug, Clone)]
pub struct FollowOptions {
    /// Entries asked for per `get-entries` request (rounded to whole tiles
    /// for tiled logs).
    pub batch_size: u64,
    /// Where a log without a position starts.
    pub start: Start,
    /// Concurrent entry (or tile) requests; a batch is up to
    /// `batch_size × parallel` entries.
    pub parallel: usize,
    /// How many times entries the log signed for but does not serve are
    /// asked for again before giving up with [`CtError::NotServed`].
    pub max_missing: u32,
    /// Pause before asking again for entries not served.
    pub missing_backoff: Duration,
    /// HTTP client settings.
    pub client: ClientOptions,
}

impl Default for FollowOptions {
    fn default() -> Self {
        FollowOptions {
            batch_size: 1024,
            start: Start::Head,
            parallel: 4,
            max_missing: 5,
            missing_backoff: Duration::from_secs(2),
            client: ClientOptions::default(),
        }
    }
}

/// Verified entries and the position after them.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Entries in log order, without gaps, starting at the previous
    /// position's `next_index`.
    pub entries: Vec<Entry>,
    /// The position to persist once the entries are handled.
    pub position: Position,
}

/// What both log APIs share, for the fetchers.
#[derive(Debug)]
pub(crate) struct Shared {
    pub name: String,
    pub id: Hash,
    pub key: LogKey,
    pub client: Client,
    pub options: FollowOptions,
}

impl Shared {
    pub(crate) fn http(&self, source: super::client::ClientError) -> CtError {
        CtError::Http {
            log: self.name.clone(),
            source,
        }
    }

    pub(crate) fn malformed(&self, what: &'static str, reason: impl Into<String>) -> CtError {
        CtError::Malformed {
            log: self.name.clone(),
            what,
            reason: reason.into(),
        }
    }

    /// `GET url`, asking again (up to `max_missing` times, `missing_backoff`
    /// apart) while the log answers that it does not have it; `index` and
    /// `tree_size` say what is missing in the final error.
    pub(crate) async fn get_served(
        &self,
        url: &str,
        index: u64,
        tree_size: u64,
    ) -> Result<Vec<u8>, CtError> {
        let mut attempts = 0;
        loop {
            match self.client.get(url).await {
                Ok(body) => return Ok(body),
                Err(e) if e.is_not_found() => {
                    attempts += 1;
                    self.missing(attempts, index, tree_size).await?;
                }
                Err(e) => return Err(self.http(e)),
            }
        }
    }

    /// Counts one answer without the entries asked for: waits, or gives up.
    pub(crate) async fn missing(
        &self,
        attempts: u32,
        index: u64,
        tree_size: u64,
    ) -> Result<(), CtError> {
        if attempts > self.options.max_missing {
            return Err(CtError::NotServed {
                log: self.name.clone(),
                index,
                tree_size,
                attempts,
            });
        }
        tokio::time::sleep(self.options.missing_backoff).await;
        Ok(())
    }
}

#[derive(Debug, Clone)]
enum Backend {
    Rfc6962(rfc6962::Rfc6962),
    Tiled(tiled::Tiled),
}

impl Backend {
    async fn head(&self) -> Result<TreeHead, CtError> {
        match self {
            Backend::Rfc6962(b) => b.head().await,
            Backend::Tiled(b) => b.head().await,
        }
    }

    async fn consistency(&self, old: u64, new: u64) -> Result<Vec<Hash>, CtError> {
        match self {
            Backend::Rfc6962(b) => b.consistency(old, new).await,
            Backend::Tiled(b) => b.consistency(old, new).await,
        }
    }

    async fn frontier(&self, head: &TreeHead) -> Result<Vec<Hash>, CtError> {
        match self {
            Backend::Rfc6962(b) => b.frontier(head).await,
            Backend::Tiled(b) => b.frontier(head).await,
        }
    }

    async fn entries(&self, start: u64, end: u64, tree_size: u64) -> Result<Vec<Entry>, CtError> {
        match self {
            Backend::Rfc6962(b) => b.entries(start, end, tree_size).await,
            Backend::Tiled(b) => b.entries(start, end, tree_size).await,
        }
    }
}

/// Follows one log.
#[derive(Debug)]
pub struct Follower {
    shared: Arc<Shared>,
    backend: Backend,
    position: Option<Position>,
}

impl Follower {
    /// A follower of `log`, resuming at `position` (as returned in the last
    /// [`Batch`]) or, without one, starting as `options.start` says.
    pub fn new(
        log: LogSpec,
        position: Option<Position>,
        options: FollowOptions,
    ) -> Result<Follower, CtError> {
        let config = |reason: &str| CtError::Config {
            log: log.name.clone(),
            reason: reason.to_owned(),
        };
        let key = LogKey::from_der(&log.key_der).map_err(|r| config(&r))?;
        if let Some(p) = &position
            && (p.next_index > p.tree_size || !merkle::frontier_fits(&p.frontier, p.next_index))
        {
            return Err(config(
                "the saved position's frontier does not fit its next index",
            ));
        }
        if options.batch_size == 0 || options.parallel == 0 {
            return Err(config("batch_size and parallel must be at least 1"));
        }
        let shared = Arc::new(Shared {
            name: log.name.clone(),
            id: log.id,
            key,
            client: Client::new(options.client.clone()),
            options,
        });
        let backend = match &log.kind {
            LogKind::Rfc6962 { url } => Backend::Rfc6962(
                rfc6962::Rfc6962::new(shared.clone(), url).map_err(|r| config(&r))?,
            ),
            LogKind::Tiled {
                monitoring_url,
                origin,
            } => Backend::Tiled(
                tiled::Tiled::new(shared.clone(), monitoring_url, origin)
                    .map_err(|r| config(&r))?,
            ),
        };
        Ok(Follower {
            shared,
            backend,
            position,
        })
    }

    /// The log's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The verified position, once there is one.
    pub fn position(&self) -> Option<&Position> {
        self.position.as_ref()
    }

    /// Fetches the log's current tree head, verifies its signature and its
    /// consistency with the last verified head, and makes it the head that
    /// batches are read up to.
    pub async fn update_head(&mut self) -> Result<(), CtError> {
        let head = self.backend.head().await?;
        let name = || self.shared.name.clone();
        let Some(position) = &mut self.position else {
            let (next_index, frontier) = match self.shared.options.start {
                Start::Beginning => (0, Vec::new()),
                Start::Head => {
                    let frontier = self.backend.frontier(&head).await?;
                    if merkle::root(&frontier) != head.root_hash {
                        return Err(CtError::LeafMismatch {
                            log: name(),
                            tree_size: head.tree_size,
                            reason: "the tree's right edge does not hash to the signed root"
                                .to_owned(),
                        });
                    }
                    (head.tree_size, frontier)
                }
            };
            self.position = Some(Position {
                tree_size: head.tree_size,
                root_hash: head.root_hash,
                timestamp: head.timestamp,
                next_index,
                frontier,
            });
            return Ok(());
        };
        if head.tree_size < position.tree_size {
            return Err(CtError::Inconsistent {
                log: name(),
                reason: format!(
                    "the tree shrank from {} to {} entries",
                    position.tree_size, head.tree_size
                ),
            });
        }
        if head.tree_size == position.tree_size {
            if head.root_hash != position.root_hash {
                return Err(CtError::Fork {
                    log: name(),
                    reason: format!(
                        "two signed roots for size {}: {} and {}",
                        head.tree_size,
                        hex::encode(position.root_hash),
                        hex::encode(head.root_hash)
                    ),
                });
            }
            position.timestamp = position.timestamp.max(head.timestamp);
            return Ok(());
        }
        let proof = self
            .backend
            .consistency(position.tree_size, head.tree_size)
            .await?;
        merkle::verify_consistency(
            position.tree_size,
            head.tree_size,
            &position.root_hash,
            &head.root_hash,
            &proof,
        )
        .map_err(|reason| CtError::Fork {
            log: name(),
            reason: format!(
                "size {} is not consistent with size {}: {reason}",
                head.tree_size, position.tree_size
            ),
        })?;
        position.tree_size = head.tree_size;
        position.root_hash = head.root_hash;
        position.timestamp = head.timestamp;
        Ok(())
    }

    /// The next verified batch of entries up to the current head, or `None`
    /// when every entry of it was read (call [`Follower::update_head`] for
    /// more). Fetches the first head itself.
    pub async fn next_batch(&mut self) -> Result<Option<Batch>, CtError> {
        if self.position.is_none() {
            self.update_head().await?;
        }
        let Some(position) = &self.position else {
            return Ok(None);
        };
        if position.next_index >= position.tree_size {
            return Ok(None);
        }
        let options = &self.shared.options;
        let span = options.batch_size.saturating_mul(options.parallel as u64);
        let start = position.next_index;
        let end = start.saturating_add(span).min(position.tree_size);
        let entries = self.backend.entries(start, end, position.tree_size).await?;
        let mut frontier = position.frontier.clone();
        for (offset, entry) in entries.iter().enumerate() {
            merkle::push(&mut frontier, start + offset as u64, entry.leaf_hash);
        }
        let mismatch = |reason: String| CtError::LeafMismatch {
            log: self.shared.name.clone(),
            tree_size: position.tree_size,
            reason,
        };
        if entries.len() as u64 != end - start {
            return Err(mismatch(format!(
                "{} entries read for [{start}, {end})",
                entries.len()
            )));
        }
        let computed = merkle::root(&frontier);
        if end == position.tree_size {
            if computed != position.root_hash {
                return Err(mismatch(format!(
                    "entries [{start}, {end}) lead to root {}, the log signed {}",
                    hex::encode(computed),
                    hex::encode(position.root_hash)
                )));
            }
        } else {
            let proof = self.backend.consistency(end, position.tree_size).await?;
            merkle::verify_consistency(
                end,
                position.tree_size,
                &computed,
                &position.root_hash,
                &proof,
            )
            .map_err(|reason| {
                mismatch(format!(
                    "entries up to {end} are not a prefix of the signed tree: {reason}"
                ))
            })?;
        }
        let next = Position {
            next_index: end,
            frontier,
            ..position.clone()
        };
        self.position = Some(next.clone());
        Ok(Some(Batch {
            entries,
            position: next,
        }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    #[test]
    fn follower_futures_can_be_spawned_and_bad_positions_are_refused() {
        let key = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEPgkaY21C8yQU4JnmUnRn8xalHl+ANkOi\
                   cON0+kT0oBtr1RB5ueP1QV++cWCMxTwrXSie5vijvvs8LgYWzHaW/w==";
        let kind = LogKind::Rfc6962 {
            url: "http://127.0.0.1:9/".into(),
        };
        let spec = LogSpec::new("send test", kind, key).unwrap();
        // The daemon runs each log's follower as its own task.
        let mut follower = Follower::new(spec.clone(), None, FollowOptions::default()).unwrap();
        assert_send(&follower.next_batch());
        assert_send(&follower.update_head());
        // Three leaves need two frontier hashes.
        let bad = Position {
            tree_size: 3,
            root_hash: [0; 32],
            timestamp: 0,
            next_index: 3,
            frontier: vec![[0; 32]],
        };
        let error = Follower::new(spec, Some(bad), FollowOptions::default()).unwrap_err();
        assert!(matches!(error, CtError::Config { .. }), "{error}");
        assert!(error.to_string().contains("send test"));
    }
}
