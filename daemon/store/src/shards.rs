//! Discovery shards: one network job run split into pieces any daemon
//! sharing the store can scan.
//!
//! The daemon holding a network job's run ([`super::jobs`]) writes the
//! run's plan once, as `discovery_shard:[job, due, index]` rows (the
//! targets and SNI overrides of each piece), and waits for every row to be
//! done. Every daemon's scheduler claims pending shards of the jobs its
//! config knows through a lease per shard (`shard:⟨job⟩:⟨due⟩:⟨index⟩`,
//! [`super::leases`]), scans them, and marks them done in a transaction
//! that checks the lease's epoch: a daemon killed mid-shard loses only that
//! shard, which another daemon takes once the lease lapses, and a holder
//! that stalled past its lease cannot mark done a shard its successor is
//! scanning. What a shard records on the way (sightings, findings) merges
//! by fingerprint and place, so scanning a shard twice adds nothing twice.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::leases::Lease;
use super::{Store, StoreError, with_conflict_retry};

/// What one shard scans.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardPlan {
    /// Targets as the config writes them (addresses, CIDRs, ranges, names).
    pub targets: Vec<String>,
    /// `NAME:PORT:ADDRESS` overrides probed with the shard.
    pub resolves: Vec<String>,
}

/// What a finished shard found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardTally {
    /// Places where certificates were found.
    pub places: u64,
    /// Certificates new to the inventory.
    pub added: u64,
    /// Places that answered but could not be read.
    pub errors: u64,
}

/// A shard as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// The network job it belongs to.
    pub job: String,
    /// The due time of the job run.
    pub due: i64,
    /// Its place in the run's plan, from 0.
    #[serde(rename = "part")]
    pub index: u32,
    /// What it scans.
    pub plan: ShardPlan,
    /// Whether it was scanned to the end.
    pub done: bool,
    /// The daemon that took it last (scanning it, unless done).
    pub holder: Option<String>,
    /// The daemon that finished it.
    pub finished_by: Option<String>,
    /// How many times a daemon took it (more than 1 after a takeover).
    #[serde(default)]
    pub attempts: u32,
    /// What it found, once done.
    #[serde(default)]
    pub tally: ShardTally,
    /// Why the scan could not run, when it could not.
    pub error: Option<String>,
}

impl Shard {
    /// The lease key that guards it.
    pub fn lease_key(&self) -> String {
        lease_key(&self.job, self.due, self.index)
    }
}

fn lease_key(job: &str, due: i64, index: u32) -> String {
    format!("shard:{job}:{due}:{index}")
}

impl Store {
    /// Writes the plan of the run of `job` due at `due` unless one is
    /// written already (the run's earlier holder stopped after writing it),
    /// and returns the run's shards as stored.
    pub async fn plan_shards(
        &self,
        job: &str,
        due: i64,
        plans: &[ShardPlan],
    ) -> Result<Vec<Shard>, StoreError> {
        let existing = self.shards(job, due).await?;
        if !existing.is_empty() {
            return Ok(existing);
        }
        let rows: Vec<serde_json::Value> = plans
            .iter()
            .enumerate()
            .map(|(index, plan)| {
                json!({
                    "id": [job, due, index], "job": job, "due": due, "part": index,
                    "plan": plan, "done": false, "attempts": 0, "tally": ShardTally::default(),
                })
            })
            .collect();
        for chunk in rows.chunks(500) {
            with_conflict_retry(|| {
                self.run(
                    "INSERT IGNORE INTO discovery_shard $rows.map(|$d| object::extend($d, {
                         id: type::record('discovery_shard', $d.id) })) RETURN NONE;",
                    json!({ "rows": chunk }),
                )
            })
            .await?;
        }
        self.shards(job, due).await
    }

    /// The shards of the run of `job` due at `due`, in plan order.
    pub async fn shards(&self, job: &str, due: i64) -> Result<Vec<Shard>, StoreError> {
        self.rows(
            "SELECT job, due, part, plan, done, holder, finished_by, attempts, tally, error
                 FROM discovery_shard WHERE job = $job AND due = $due ORDER BY part",
            json!({ "job": job, "due": due }),
            0,
        )
        .await
    }

    /// The shards of `job`'s latest sharded run (kept until its next run),
    /// in plan order; empty when it has none.
    pub async fn latest_shards(&self, job: &str) -> Result<Vec<Shard>, StoreError> {
        self.rows(
            "LET $due = (SELECT VALUE due FROM discovery_shard WHERE job = $job
                 ORDER BY due DESC LIMIT 1)[0];
             SELECT job, due, part, plan, done, holder, finished_by, attempts, tally, error
                 FROM discovery_shard WHERE job = $job AND due = $due ORDER BY part",
            json!({ "job": job }),
            1,
        )
        .await
    }

    /// Claims a pending shard of one of `jobs` (the network jobs this
    /// daemon's config has) whose lease is free or lapsed, oldest run
    /// first; `None` when there is none to take.
    pub async fn claim_shard(
        &self,
        jobs: &[String],
        holder: &str,
        seconds: i64,
    ) -> Result<Option<(Shard, Lease)>, StoreError> {
        if jobs.is_empty() {
            return Ok(None);
        }
        let pending: Vec<Shard> = self
            .rows(
                "SELECT job, due, part, plan, done, holder, finished_by, attempts, tally, error
                     FROM discovery_shard WHERE done = false AND job IN $jobs
                     ORDER BY due, part LIMIT 64",
                json!({ "jobs": jobs }),
                0,
            )
            .await?;
        if pending.is_empty() {
            return Ok(None);
        }
        let now = self.db_now().await?;
        for shard in pending {
            let key = shard.lease_key();
            // Someone is on it (another daemon, or this one in another
            // task): its lease has not lapsed.
            if let Some(held) = self.lease(&key).await?
                && held.expires >= now
            {
                continue;
            }
            let Some(lease) = self.acquire_lease(&key, holder, seconds).await? else {
                continue;
            };
            // Counted under the lease, and re-read: it may have been
            // finished between the listing and the lease.
            let taken: Vec<Shard> = with_conflict_retry(|| {
                self.rows(
                    "UPDATE type::record('discovery_shard', [$job, $due, $part])
                         SET attempts += 1, holder = $holder WHERE done = false
                         RETURN job, due, part, plan, done, holder, finished_by, attempts, tally, error",
                    json!({
                        "job": shard.job, "due": shard.due, "part": shard.index, "holder": holder,
                    }),
                    0,
                )
            })
            .await?;
            match taken.into_iter().next() {
                Some(shard) => return Ok(Some((shard, lease))),
                None => self.release_lease(&lease).await?,
            }
        }
        Ok(None)
    }

    /// Marks the shard `lease` guards done with what it found (or why it
    /// could not run), if the lease still carries its epoch: a holder that
    /// lost it gets [`StoreError::Fenced`] and the shard stays as its
    /// successor leaves it. Releases the lease.
    pub async fn finish_shard(
        &self,
        shard: &Shard,
        lease: &Lease,
        tally: ShardTally,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let vars = json!({
            "job": shard.job, "due": shard.due, "part": shard.index, "tally": tally,
            "error": error, "lease": lease.key, "holder": lease.holder, "epoch": lease.epoch,
        });
        let result = with_conflict_retry(|| {
            self.run(
                "BEGIN TRANSACTION;
                 LET $held = (SELECT holder, epoch FROM ONLY type::record('lease', $lease));
                 IF $held.holder != $holder OR $held.epoch != $epoch { THROW 'lease fenced' };
                 UPDATE type::record('discovery_shard', [$job, $due, $part])
                     SET done = true, finished_by = $holder, tally = $tally, error = $error
                     RETURN NONE;
                 UPDATE type::record('lease', $lease) SET expires = time::unix(time::now()) - 1
                     RETURN NONE;
                 COMMIT TRANSACTION;",
                vars.clone(),
            )
        })
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.to_string().contains("lease fenced") => Err(StoreError::Fenced(format!(
                "discovery shard {} of job `{}`",
                shard.index, shard.job
            ))),
            Err(e) => Err(e),
        }
    }

    /// Forgets the shards, and their leases, of `job`'s runs due before
    /// `due` (a new run's plan replaces the last run's).
    pub async fn drop_shards_before(&self, job: &str, due: i64) -> Result<(), StoreError> {
        let shards: Vec<Shard> = self
            .rows(
                "SELECT job, due, part, plan, done, holder, finished_by, attempts, tally, error
                     FROM discovery_shard WHERE job = $job AND due < $due",
                json!({ "job": job, "due": due }),
                0,
            )
            .await?;
        for chunk in shards.chunks(500) {
            let ids: Vec<(&str, i64, u32)> = chunk
                .iter()
                .map(|s| (s.job.as_str(), s.due, s.index))
                .collect();
            let leases: Vec<String> = chunk.iter().map(Shard::lease_key).collect();
            with_conflict_retry(|| {
                self.run(
                    "BEGIN TRANSACTION;
                     FOR $id IN $ids { DELETE type::record('discovery_shard', $id) RETURN NONE; };
                     FOR $key IN $leases { DELETE type::record('lease', $key) RETURN NONE; };
                     COMMIT TRANSACTION;",
                    json!({ "ids": ids, "leases": leases }),
                )
            })
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plans(n: usize) -> Vec<ShardPlan> {
        (0..n)
            .map(|i| ShardPlan {
                targets: vec![format!("10.0.{i}.0/24")],
                resolves: Vec::new(),
            })
            .collect()
    }

    #[tokio::test]
    async fn each_shard_is_taken_once_and_finished_once() {
        let store = Store::memory().await.unwrap();
        let written = store.plan_shards("net", 100, &plans(3)).await.unwrap();
        assert_eq!(written.len(), 3);
        // Planning again (a resumed run) keeps the plan.
        let again = store.plan_shards("net", 100, &plans(5)).await.unwrap();
        assert_eq!(again.len(), 3);
        let jobs = vec!["net".to_string()];
        let (a0, la) = store.claim_shard(&jobs, "a", 30).await.unwrap().unwrap();
        let (b0, lb) = store.claim_shard(&jobs, "b", 30).await.unwrap().unwrap();
        assert_ne!(a0.index, b0.index, "a held shard is not handed out twice");
        assert_eq!((a0.attempts, a0.holder.as_deref()), (1, Some("a")));
        // A job this daemon does not know is left to others.
        assert!(
            store
                .claim_shard(&["other".into()], "c", 30)
                .await
                .unwrap()
                .is_none()
        );
        let tally = ShardTally {
            places: 2,
            added: 1,
            errors: 0,
        };
        store.finish_shard(&a0, &la, tally, None).await.unwrap();
        store.finish_shard(&b0, &lb, tally, None).await.unwrap();
        let (c0, lc) = store.claim_shard(&jobs, "a", 30).await.unwrap().unwrap();
        store
            .finish_shard(&c0, &lc, ShardTally::default(), Some("no resolver"))
            .await
            .unwrap();
        assert!(store.claim_shard(&jobs, "a", 30).await.unwrap().is_none());
        let shards = store.shards("net", 100).await.unwrap();
        assert!(shards.iter().all(|s| s.done));
        assert_eq!(store.latest_shards("net").await.unwrap(), shards);
        assert!(store.latest_shards("other").await.unwrap().is_empty());
        assert_eq!(shards.iter().map(|s| s.tally.places).sum::<u64>(), 4);
        assert_eq!(
            shards[c0.index as usize].error.as_deref(),
            Some("no resolver")
        );
        // The next run's plan replaces this one's, leases and all.
        store.drop_shards_before("net", 100).await.unwrap();
        assert_eq!(store.shards("net", 100).await.unwrap().len(), 3);
        store.drop_shards_before("net", 160).await.unwrap();
        assert!(store.shards("net", 100).await.unwrap().is_empty());
        assert!(store.lease(&a0.lease_key()).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_lapsed_shard_is_taken_over_and_the_late_holder_is_fenced() {
        let store = Store::memory().await.unwrap();
        store.plan_shards("net", 7, &plans(1)).await.unwrap();
        let jobs = vec!["net".to_string()];
        // a's lease lapses at once (as if a was killed or paused).
        let (shard, a) = store.claim_shard(&jobs, "a", 0).await.unwrap().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let (taken, b) = loop {
            if let Some(taken) = store.claim_shard(&jobs, "b", 30).await.unwrap() {
                break taken;
            }
            assert!(std::time::Instant::now() < deadline, "never lapsed");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        assert_eq!(taken.index, shard.index);
        assert_eq!(taken.attempts, 2);
        assert_eq!(b.epoch, a.epoch + 1);
        let err = store
            .finish_shard(&shard, &a, ShardTally::default(), None)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Fenced(_)), "{err}");
        assert!(!store.shards("net", 7).await.unwrap()[0].done);
        store
            .finish_shard(&taken, &b, ShardTally::default(), None)
            .await
            .unwrap();
        let done = &store.shards("net", 7).await.unwrap()[0];
        assert_eq!((done.done, done.finished_by.as_deref()), (true, Some("b")));
    }
}
