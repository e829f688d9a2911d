//! The event outbox: `event` rows, one per lifecycle event, written in the
//! same transaction as what caused them where the store can, and routed to
//! deliveries by the alert router (`routed` flips once).

use certkeeper_model::event::StoredEvent;
use serde_json::json;

use crate::{Store, StoreError, take_rows, with_conflict_retry};

impl Store {
    /// Appends an event to the outbox.
    pub async fn push_event(&self, event: &StoredEvent) -> Result<(), StoreError> {
        let mut doc = serde_json::to_value(event)?;
        doc["routed"] = json!(false);
        let vars = json!({ "id": event.id, "doc": doc });
        with_conflict_retry(|| {
            self.run(
                "CREATE type::record('event', $id) CONTENT $doc RETURN NONE",
                vars.clone(),
            )
        })
        .await?;
        Ok(())
    }

    /// Records `event` unless one with its id is recorded already; answers
    /// whether it was new. For events whose id names the happening, so
    /// that doing the same work again (after a crash) alerts no twice.
    pub async fn push_event_once(&self, event: &StoredEvent) -> Result<bool, StoreError> {
        match self.push_event(event).await {
            Ok(()) => Ok(true),
            Err(e) if e.to_string().contains("already exists") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Times and fingerprints of the revocations recorded in the event
    /// outbox between `from` and `to` (Unix seconds, `to` excluded).
    pub async fn revocations_between(
        &self,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        #[derive(serde::Deserialize)]
        struct Row {
            time: i64,
            fingerprint: Option<String>,
        }
        let rows: Vec<Row> = self
            .rows(
                "SELECT time, event.certificate.fingerprint AS fingerprint FROM event \
                 WHERE time >= $from AND time < $to AND event.kind.type = 'certificate_revoked'",
                json!({ "from": from, "to": to }),
                0,
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.time, r.fingerprint.unwrap_or_default()))
            .collect())
    }

    /// The newest events, newest first.
    pub async fn recent_events(&self, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let mut response = self
            .run(
                "SELECT record::id(id) AS id, time, event FROM event ORDER BY time DESC LIMIT $limit",
                json!({ "limit": limit }),
            )
            .await?;
        take_rows(&mut response, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn events_are_kept_once_and_listed_newest_first() {
        let store = Store::memory().await.unwrap();
        for (id, time) in [("a", 10), ("b", 30), ("c", 20)] {
            let event = StoredEvent {
                id: id.into(),
                time,
                event: json!({ "id": id, "kind": { "type": "certificate_revoked" } }),
            };
            store.push_event(&event).await.unwrap();
        }
        let again = StoredEvent {
            id: "a".into(),
            time: 40,
            event: json!({}),
        };
        assert!(
            store.push_event(&again).await.is_err(),
            "an id is recorded once"
        );
        let ids: Vec<String> = store
            .recent_events(10)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(ids, ["b", "c", "a"]);
    }
}
