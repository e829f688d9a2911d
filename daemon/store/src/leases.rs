//! Leases with fencing epochs, for side effects that must happen once
//! across every daemon sharing the store.
//!
//! A lease is one `lease:⟨key⟩` row (`managed:www`, a delivery, a discovery
//! shard) with its holder, its expiry and an epoch. Taking it is one
//! conditional update: it succeeds when the row is free, lapsed or already
//! ours, and a new holder moves the epoch on. The epoch is the fencing
//! token: whoever records the result of a side effect (an order's
//! certificate, a deployment, a revocation) checks in the same transaction
//! that the lease still carries the epoch it was taken at
//! ([`Store::save_managed_fenced`]), so a holder that stalled past its
//! lease (a paused VM, a partition) and wakes up finds its late write
//! refused instead of overwriting the new holder's.
//!
//! Times are the database's clock (`time::now()`), not each daemon's, so
//! nodes whose clocks drift still agree when a lease lapsed.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Store, StoreError, with_conflict_retry};

/// A lease this daemon holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// What it covers, e.g. `managed:www`.
    pub key: String,
    /// Who holds it.
    pub holder: String,
    /// The fencing token: moved on by every new holder.
    pub epoch: u64,
    /// When it lapses, Unix seconds on the database's clock.
    pub expires: i64,
}

impl Store {
    /// Takes the lease on `key` for `seconds`, or extends it when `holder`
    /// already has it. `None` when another holder's lease is still running.
    pub async fn acquire_lease(
        &self,
        key: &str,
        holder: &str,
        seconds: i64,
    ) -> Result<Option<Lease>, StoreError> {
        let vars = json!({ "key": key, "holder": holder, "seconds": seconds });
        self.claim_one(ACQUIRE, vars).await
    }

    /// Extends a lease this holder still has at its epoch; `None` when it
    /// was taken over (the caller must stop acting on it).
    pub async fn extend_lease(
        &self,
        lease: &Lease,
        seconds: i64,
    ) -> Result<Option<Lease>, StoreError> {
        let vars = json!({
            "key": lease.key, "holder": lease.holder, "epoch": lease.epoch, "seconds": seconds,
        });
        let rows: Vec<Lease> = with_conflict_retry(|| {
            self.rows(
                "UPDATE type::record('lease', $key)
                     SET expires = time::unix(time::now()) + $seconds
                     WHERE holder = $holder AND epoch = $epoch
                     RETURN key, holder, epoch, expires",
                vars.clone(),
                0,
            )
        })
        .await?;
        Ok(rows.into_iter().next())
    }

    /// Gives a lease up so another daemon may take it at once; a no-op when
    /// it was already taken over.
    pub async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        let vars = json!({ "key": lease.key, "holder": lease.holder, "epoch": lease.epoch });
        with_conflict_retry(|| {
            self.run(
                "UPDATE type::record('lease', $key) SET expires = time::unix(time::now()) - 1
                     WHERE holder = $holder AND epoch = $epoch RETURN NONE",
                vars.clone(),
            )
        })
        .await?;
        Ok(())
    }

    /// The lease on `key` as stored (held or lapsed), for operators and tests.
    pub async fn lease(&self, key: &str) -> Result<Option<Lease>, StoreError> {
        let rows: Vec<Lease> = self
            .rows(
                "SELECT key, holder, epoch, expires FROM type::record('lease', $key)",
                json!({ "key": key }),
                0,
            )
            .await?;
        Ok(rows.into_iter().next())
    }

    /// The database's clock, Unix seconds.
    pub async fn db_now(&self) -> Result<i64, StoreError> {
        let rows: Vec<i64> = self
            .rows("RETURN [time::unix(time::now())]", json!({}), 0)
            .await?;
        rows.into_iter()
            .next()
            .ok_or_else(|| StoreError::Url("the database returned no time".into()))
    }
}

/// Takes or extends `lease:⟨key⟩`: free (no row), lapsed, or ours. A new
/// holder moves the epoch on; the holder extending keeps it.
const ACQUIRE: &str = r#"
BEGIN TRANSACTION;
LET $id = type::record('lease', $key);
LET $now = time::unix(time::now());
LET $row = (SELECT * FROM ONLY $id);
IF $row = NONE {
    CREATE $id CONTENT { key: $key, holder: $holder, epoch: 1, expires: $now + $seconds } RETURN NONE;
} ELSE IF $row.holder = $holder AND $row.expires >= $now {
    UPDATE $id SET expires = $now + $seconds RETURN NONE;
} ELSE IF $row.expires < $now {
    UPDATE $id SET holder = $holder, epoch += 1, expires = $now + $seconds RETURN NONE;
};
SELECT key, holder, epoch, expires FROM $id WHERE holder = $holder AND expires >= $now;
COMMIT TRANSACTION;
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_holder_at_a_time_and_a_takeover_moves_the_epoch() {
        let store = Store::memory().await.unwrap();
        let a = store
            .acquire_lease("managed:www", "a", 30)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(a.epoch, 1);
        assert!(
            store
                .acquire_lease("managed:www", "b", 30)
                .await
                .unwrap()
                .is_none(),
            "held by a"
        );
        // a taking it again extends it and keeps the epoch.
        let again = store
            .acquire_lease("managed:www", "a", 30)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(again.epoch, 1);
        // Released, b takes it at once, with a new epoch.
        store.release_lease(&a).await.unwrap();
        let b = store
            .acquire_lease("managed:www", "b", 30)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((b.holder.as_str(), b.epoch), ("b", 2));
        // a's lease is gone: it cannot extend or release b's.
        assert!(store.extend_lease(&a, 30).await.unwrap().is_none());
        store.release_lease(&a).await.unwrap();
        assert_eq!(
            store.lease("managed:www").await.unwrap().unwrap().holder,
            "b"
        );
        assert!(store.extend_lease(&b, 60).await.unwrap().is_some());
        // Other keys are apart.
        assert!(
            store
                .acquire_lease("managed:api", "a", 30)
                .await
                .unwrap()
                .is_some()
        );
    }

    #[tokio::test]
    async fn a_lapsed_lease_is_taken_over() {
        let store = Store::memory().await.unwrap();
        // A zero-second lease lapses the next second on the database clock.
        let a = store.acquire_lease("k", "a", 0).await.unwrap().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let b = loop {
            if let Some(b) = store.acquire_lease("k", "b", 30).await.unwrap() {
                break b;
            }
            assert!(std::time::Instant::now() < deadline, "never lapsed");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        assert_eq!(b.epoch, a.epoch + 1);
        assert!(store.db_now().await.unwrap() > 1_700_000_000);
    }

    #[tokio::test]
    async fn concurrent_takers_have_one_winner() {
        let store = Store::memory().await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..8 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                s.acquire_lease("k", &format!("h{i}"), 30)
                    .await
                    .unwrap()
                    .is_some()
            }));
        }
        let mut winners = 0;
        for t in tasks {
            winners += usize::from(t.await.unwrap());
        }
        assert_eq!(winners, 1);
    }
}
