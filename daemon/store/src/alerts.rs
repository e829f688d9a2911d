//! The alert ledger and the delivery outbox.
//!
//! - `alert:⟨fingerprint_threshold⟩`: one row per (certificate, expiry
//!   threshold) ever crossed; threshold 0 is "expired". A row is created in
//!   the same transaction as the event it raises, and its id is the pair, so
//!   a threshold can neither fire twice nor be recorded without its event.
//! - `event` rows (the outbox the renewal worker, discovery and the ledger
//!   write) carry `routed`: false until the router has turned them into
//!   deliveries, in the same transaction that creates those.
//! - `delivery:⟨event|channel⟩`: one message to one channel, with its
//!   recipients, state (`pending`, `delivered`, `failed`), attempts, next
//!   attempt and a log of the last attempts. A claimed delivery has its
//!   `next_attempt` pushed one lease ahead, so after a SIGKILL it comes due
//!   again and is re-sent (at least once; receivers deduplicate by the
//!   event id each channel sends as its idempotency or dedup key).

use certkeeper_model::event::StoredEvent;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::inventory::ListError;
use super::ledger::{LedgerPage, Positioned};
use super::{Store, StoreError, take_rows, with_conflict_retry};

/// Threshold value of the "expired" ledger row.
pub const EXPIRED_THRESHOLD: u32 = 0;

/// Attempts kept in a delivery's log.
const LOG_ENTRIES: usize = 20;

/// One ledger row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRow {
    /// `fingerprint_threshold`.
    pub id: String,
    /// The certificate.
    pub fingerprint: String,
    /// Its subject, for listings.
    #[serde(default)]
    pub subject: String,
    /// Days; 0 means "expired".
    pub threshold: u32,
    /// When it was raised (Unix seconds).
    pub raised_at: i64,
    /// The certificate's `not_after` (Unix seconds).
    pub not_after: i64,
    /// `open`, `acknowledged` or `resolved` (renewed, revoked, taken out).
    pub state: String,
    /// Raised together with a tighter threshold and folded into its message.
    #[serde(default)]
    pub folded: bool,
    /// The event it raised (absent when folded).
    pub event: Option<String>,
    /// Who acknowledged it.
    pub acked_by: Option<String>,
    /// When (Unix seconds).
    pub acked_at: Option<i64>,
    /// When it escalated (Unix seconds).
    pub escalated_at: Option<i64>,
    /// When it was resolved (Unix seconds).
    pub resolved_at: Option<i64>,
}

impl Positioned for AlertRow {
    fn time(&self) -> i64 {
        self.raised_at
    }
    fn key(&self) -> &str {
        &self.id
    }
}

/// One attempt in a delivery's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptLog {
    /// When (Unix seconds).
    pub at: i64,
    /// `delivered`, `retry`, `failed` or `deferred` (rate limit).
    pub outcome: String,
    /// The channel's answer or error, never holding secrets.
    pub detail: Option<String>,
}

/// One message to one channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryRow {
    /// `event|channel`.
    pub id: String,
    /// The event id.
    pub event: String,
    /// The event's type.
    pub kind: String,
    /// The notifier name.
    pub channel: String,
    /// People and aliases it is addressed to (person channels).
    #[serde(default)]
    pub recipients: Vec<String>,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    /// Attempts made.
    #[serde(default)]
    pub attempts: u32,
    /// When it was created (Unix seconds).
    pub created: i64,
    /// When it is next due (Unix seconds).
    pub next_attempt: i64,
    /// When it was delivered (Unix seconds).
    pub delivered_at: Option<i64>,
    /// The last error.
    pub last_error: Option<String>,
    /// The last attempts, oldest first.
    #[serde(default)]
    pub log: Vec<AttemptLog>,
    /// The event, as `certkeeper_integrations::Event` serialises it.
    #[serde(default)]
    pub payload: Value,
    /// The token of the claim that leased it last: its fencing token. An
    /// outcome is recorded only under the claim it was sent under.
    #[serde(default)]
    pub claim: Option<String>,
}

/// The outcome of one attempt, to record.
#[derive(Debug, Clone)]
pub struct AttemptResult {
    /// The delivery.
    pub id: String,
    /// The claim it was sent under ([`DeliveryRow::claim`]).
    pub claim: Option<String>,
    /// New state.
    pub state: &'static str,
    /// Next due time.
    pub next_attempt: i64,
    /// Whether this counted as an attempt (a rate-limit deferral does not).
    pub attempted: bool,
    /// The log entry.
    pub entry: AttemptLog,
}

/// What an acknowledgement did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckOutcome {
    /// The alert is now acknowledged.
    Acknowledged(AlertRow),
    /// It was not open (acknowledged already, or resolved).
    NotOpen(AlertRow),
    /// No such alert.
    Missing,
}

/// An event waiting for the router.
#[derive(Debug, Clone, Deserialize)]
pub struct UnroutedEvent {
    /// Its id.
    pub id: String,
    /// The event.
    pub event: Value,
}

/// Which deliveries to list.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    /// Only this state.
    pub state: Option<String>,
    /// Only this event.
    pub event: Option<String>,
    /// Only this channel.
    pub channel: Option<String>,
    /// Most rows.
    pub limit: usize,
}

impl Store {
    /// Ledger rows of these certificates.
    pub async fn alerts_of(&self, fingerprints: &[String]) -> Result<Vec<AlertRow>, StoreError> {
        self.rows(
            "SELECT *, record::id(id) AS id FROM alert WHERE fingerprint IN $fps",
            json!({ "fps": fingerprints }),
            0,
        )
        .await
    }

    /// The ledger rows with these ids (`fingerprint_threshold`) that exist:
    /// point reads by record id, however large the ledger.
    pub async fn alerts_with_ids(&self, ids: &[String]) -> Result<Vec<AlertRow>, StoreError> {
        self.rows(
            "SELECT *, record::id(id) AS id FROM $ids.map(|$i| type::record('alert', $i))",
            json!({ "ids": ids }),
            0,
        )
        .await
    }

    /// Whether the ledger has finished a first pass over the inventory.
    pub async fn ledger_first_pass_done(&self) -> Result<bool, StoreError> {
        let rows: Vec<i64> = self
            .rows(
                "SELECT VALUE done_at FROM ledger_state:first_pass",
                json!({}),
                0,
            )
            .await?;
        Ok(!rows.is_empty())
    }

    /// Records that the ledger finished its first pass at `now`.
    pub async fn mark_ledger_first_pass(&self, now: i64) -> Result<(), StoreError> {
        with_conflict_retry(|| {
            self.run(
                "UPSERT ledger_state:first_pass SET done_at = done_at ?? $now RETURN NONE",
                json!({ "now": now }),
            )
        })
        .await?;
        Ok(())
    }

    /// Records ledger rows and the events they raise, all or nothing.
    pub async fn raise_alerts(
        &self,
        alerts: &[AlertRow],
        events: &[StoredEvent],
    ) -> Result<(), StoreError> {
        let alerts: Vec<Value> = alerts
            .iter()
            .map(|a| {
                let mut v = serde_json::to_value(a).unwrap_or_default();
                v["id"] = json!(a.id);
                v
            })
            .collect();
        let events: Vec<Value> = events
            .iter()
            .map(|e| json!({ "id": e.id, "time": e.time, "event": e.event, "routed": false }))
            .collect();
        let vars = json!({ "alerts": alerts, "events": events });
        with_conflict_retry(|| {
            self.run(
                "BEGIN TRANSACTION;
                 INSERT INTO alert $alerts RETURN NONE;
                 IF array::len($events) > 0 { INSERT INTO event $events RETURN NONE; };
                 COMMIT TRANSACTION;",
                vars.clone(),
            )
        })
        .await?;
        Ok(())
    }

    /// Marks every unresolved ledger row of these certificates resolved.
    pub async fn resolve_alerts(
        &self,
        fingerprints: &[String],
        now: i64,
    ) -> Result<(), StoreError> {
        let vars = json!({ "fps": fingerprints, "now": now });
        with_conflict_retry(|| {
            self.run(
                "UPDATE alert SET state = 'resolved', resolved_at = $now
                 WHERE fingerprint IN $fps AND state != 'resolved' RETURN NONE",
                vars.clone(),
            )
        })
        .await?;
        Ok(())
    }

    /// Open, unfolded alerts raised at or before `cutoff` that have not
    /// escalated.
    pub async fn alerts_to_escalate(&self, cutoff: i64) -> Result<Vec<AlertRow>, StoreError> {
        self.rows(
            "SELECT *, record::id(id) AS id FROM alert
             WHERE state = 'open' AND folded = false AND escalated_at = NONE AND raised_at <= $cutoff
             ORDER BY raised_at LIMIT 1000",
            json!({ "cutoff": cutoff }),
            0,
        )
        .await
    }

    /// Marks an alert escalated and records the escalation event, once.
    pub async fn escalate_alert(
        &self,
        alert: &str,
        now: i64,
        event: &StoredEvent,
    ) -> Result<(), StoreError> {
        let vars = json!({ "alert": alert, "now": now, "id": event.id, "event": event.event });
        with_conflict_retry(|| {
            self.run(
                "BEGIN TRANSACTION;
                 UPDATE type::record('alert', $alert) SET escalated_at = $now RETURN NONE;
                 CREATE type::record('event', $id) CONTENT { time: $now, event: $event, routed: false } RETURN NONE;
                 COMMIT TRANSACTION;",
                vars.clone(),
            )
        })
        .await?;
        Ok(())
    }

    /// Ledger rows, newest first, optionally only in `state`: `limit` of
    /// them after `cursor` (a previous page's `next_cursor`).
    pub async fn list_alerts(
        &self,
        state: Option<&str>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<LedgerPage<AlertRow>, ListError> {
        let conditions = if state.is_some() {
            vec!["state = $state"]
        } else {
            Vec::new()
        };
        self.ledger_page(
            "alert",
            "raised_at",
            conditions,
            json!({ "state": state }),
            limit,
            cursor,
        )
        .await
    }

    /// One ledger row.
    pub async fn alert(&self, id: &str) -> Result<Option<AlertRow>, StoreError> {
        let rows: Vec<AlertRow> = self
            .rows(
                "SELECT *, record::id(id) AS id FROM type::record('alert', $id)",
                json!({ "id": id }),
                0,
            )
            .await?;
        Ok(rows.into_iter().next())
    }

    /// Acknowledges an open alert and the open, looser-threshold alerts of
    /// the same certificate.
    pub async fn ack_alert(&self, id: &str, by: &str, now: i64) -> Result<AckOutcome, StoreError> {
        let Some(alert) = self.alert(id).await? else {
            return Ok(AckOutcome::Missing);
        };
        if alert.state != "open" {
            return Ok(AckOutcome::NotOpen(alert));
        }
        let vars = json!({
            "fp": alert.fingerprint, "threshold": alert.threshold, "id": id, "by": by, "now": now,
        });
        with_conflict_retry(|| {
            self.run(
                "UPDATE alert SET state = 'acknowledged', acked_by = $by, acked_at = $now
                 WHERE fingerprint = $fp AND state = 'open'
                   AND (threshold >= $threshold OR record::id(id) = $id) RETURN NONE",
                vars.clone(),
            )
        })
        .await?;
        Ok(match self.alert(id).await? {
            Some(a) => AckOutcome::Acknowledged(a),
            None => AckOutcome::Missing,
        })
    }

    /// Events the router has not turned into deliveries yet, oldest first.
    pub async fn unrouted_events(&self, limit: usize) -> Result<Vec<UnroutedEvent>, StoreError> {
        self.rows(
            "SELECT record::id(id) AS id, event, time FROM event WHERE routed = false ORDER BY time LIMIT $limit",
            json!({ "limit": limit }),
            0,
        )
        .await
    }

    /// Creates deliveries and marks their events routed, all or nothing. A
    /// delivery that exists already is kept as it is.
    pub async fn route_events(
        &self,
        events: &[String],
        deliveries: &[DeliveryRow],
    ) -> Result<(), StoreError> {
        let rows: Vec<Value> = deliveries
            .iter()
            .map(|d| {
                let mut v = serde_json::to_value(d).unwrap_or_default();
                v["id"] = json!(d.id);
                v
            })
            .collect();
        let vars = json!({ "events": events, "rows": rows });
        with_conflict_retry(|| {
            self.run(
                "BEGIN TRANSACTION;
                 INSERT IGNORE INTO delivery $rows.map(|$d| object::extend($d, { id: type::record('delivery', $d.id) })) RETURN NONE;
                 UPDATE $events.map(|$e| type::record('event', $e)) SET routed = true RETURN NONE;
                 COMMIT TRANSACTION;",
                vars.clone(),
            )
        })
        .await?;
        Ok(())
    }

    /// Claims up to `limit` due deliveries of `channel`, pushing their next
    /// attempt to `lease_until` and giving them a fresh claim token.
    pub async fn claim_deliveries(
        &self,
        channel: &str,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        let vars = json!({
            "channel": channel, "now": now, "until": lease_until, "limit": limit,
            "claim_token": uuid::Uuid::new_v4().simple().to_string(),
        });
        let mut response = with_conflict_retry(|| {
            self.run(
                "BEGIN TRANSACTION;
                 LET $due = (SELECT VALUE id FROM delivery WHERE state = 'pending' AND channel = $channel AND next_attempt <= $now ORDER BY next_attempt LIMIT $limit);
                 UPDATE $due SET next_attempt = $until, claim = $claim_token RETURN NONE;
                 SELECT *, record::id(id) AS id FROM $due;
                 COMMIT TRANSACTION;",
                vars.clone(),
            )
        })
        .await?;
        super::take_returned(&mut response)
    }

    /// Records attempts' outcomes, each only if its delivery is still under
    /// the claim it was sent under. Returns the ids refused because the
    /// delivery was claimed again meanwhile (this daemon stalled past the
    /// lease and another sent it): their outcome is not written over the
    /// newer one.
    pub async fn record_attempts(
        &self,
        results: &[AttemptResult],
    ) -> Result<Vec<String>, StoreError> {
        let items: Vec<Value> = results
            .iter()
            .map(|r| {
                json!({
                    "id": r.id,
                    "claim": r.claim,
                    "state": r.state,
                    "next": r.next_attempt,
                    "inc": u32::from(r.attempted),
                    "delivered_at": (r.state == "delivered").then_some(r.entry.at),
                    "error": (r.entry.outcome != "delivered").then(|| r.entry.detail.clone()).flatten(),
                    "entry": r.entry,
                })
            })
            .collect();
        let vars = json!({ "items": items, "keep": LOG_ENTRIES - 1 });
        let mut response = with_conflict_retry(|| {
            self.run(
                "BEGIN TRANSACTION;
                 LET $fresh = array::filter($items, |$r|
                     (SELECT VALUE claim FROM ONLY type::record('delivery', $r.id)) = $r.claim);
                 FOR $r IN $fresh {
                     UPDATE type::record('delivery', $r.id) SET
                         state = $r.state,
                         next_attempt = $r.next,
                         attempts += $r.inc,
                         delivered_at = $r.delivered_at,
                         last_error = $r.error,
                         log = array::append(array::slice(log, -$keep), $r.entry)
                     RETURN NONE;
                 };
                 RETURN array::complement($items.map(|$r| $r.id), $fresh.map(|$r| $r.id));
                 COMMIT TRANSACTION;",
                vars.clone(),
            )
        })
        .await?;
        super::take_returned(&mut response)
    }

    /// The delivery log, newest first.
    pub async fn list_deliveries(
        &self,
        filter: &DeliveryFilter,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        let mut conditions = Vec::new();
        if filter.state.is_some() {
            conditions.push("state = $state");
        }
        if filter.event.is_some() {
            conditions.push("event = $event");
        }
        if filter.channel.is_some() {
            conditions.push("channel = $channel");
        }
        let filter_sql = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let mut response = self
            .run(
                &format!(
                    "SELECT *, record::id(id) AS id OMIT payload FROM delivery {filter_sql} ORDER BY created DESC LIMIT $limit"
                ),
                json!({
                    "state": filter.state,
                    "event": filter.event,
                    "channel": filter.channel,
                    "limit": filter.limit,
                }),
            )
            .await?;
        take_rows(&mut response, 0)
    }

    /// Certificates that may need an expiry alert: in force or expired,
    /// not replaced, `not_after` between `from` and `horizon`; paged by
    /// `(not_after, fingerprint)` after `after`.
    pub async fn expiry_candidates(
        &self,
        from: i64,
        horizon: i64,
        after: (i64, &str),
        limit: usize,
    ) -> Result<Vec<certkeeper_model::inventory::CertificateRecord>, StoreError> {
        self.rows(
            // The PEM is the bulk of a row and alerts never need it.
            "SELECT *, '' AS pem OMIT id, search FROM certificate
             WHERE not_after >= $from AND not_after <= $horizon
               AND status IN ['valid', 'expiring', 'expired'] AND replaced_by = NONE
               AND not_after >= $t AND (not_after > $t OR fingerprint > $fp)
             ORDER BY not_after, fingerprint LIMIT $limit",
            json!({ "from": from, "horizon": horizon, "t": after.0, "fp": after.1, "limit": limit }),
            0,
        )
        .await
    }

    /// Of these certificates, those seen at an endpoint (served by a
    /// server) or issued through a connector.
    pub async fn served_or_issued(
        &self,
        fingerprints: &[&str],
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        if fingerprints.is_empty() {
            return Ok(std::collections::HashSet::new());
        }
        let rows: Vec<String> = self
            .rows(
                "SELECT VALUE fingerprint FROM sighting WHERE fingerprint IN $fps AND kind IN ['endpoint', 'connector']",
                json!({ "fps": fingerprints }),
                0,
            )
            .await?;
        Ok(rows.into_iter().collect())
    }

    /// Of these certificates, those renewed (replaced), revoked or taken out
    /// of management: their alerts are over.
    pub async fn finished_certificates(
        &self,
        fingerprints: &[String],
    ) -> Result<Vec<String>, StoreError> {
        self.rows(
            "SELECT VALUE fingerprint FROM certificate WHERE fingerprint IN $fps
               AND (replaced_by != NONE OR status IN ['revoked', 'deactivated'])",
            json!({ "fps": fingerprints }),
            0,
        )
        .await
    }

    /// Where each of these certificates has been seen, by fingerprint.
    pub async fn locations_of(
        &self,
        fingerprints: &[String],
    ) -> Result<std::collections::HashMap<String, Vec<String>>, StoreError> {
        #[derive(Deserialize)]
        struct Place {
            fingerprint: String,
            location: String,
        }
        // One equality lookup on the fingerprint index per certificate: an
        // `IN` over the page scans the whole sighting table instead.
        let rows: Vec<Vec<Place>> = self
            .rows(
                "RETURN $fps.map(|$f| (SELECT fingerprint, location FROM sighting WHERE fingerprint = $f))",
                json!({ "fps": fingerprints }),
                0,
            )
            .await?;
        let mut map = std::collections::HashMap::<String, Vec<String>>::new();
        for p in rows.into_iter().flatten() {
            map.entry(p.fingerprint).or_default().push(p.location);
        }
        Ok(map)
    }

    /// Forgets up to 5000 deliveries delivered before `before` (Unix
    /// seconds); returns how many went. Failed ones are kept.
    pub async fn prune_deliveries(&self, before: i64) -> Result<usize, StoreError> {
        let mut response = with_conflict_retry(|| {
            self.run(
                "BEGIN TRANSACTION;
                 LET $old = (SELECT VALUE id FROM delivery WHERE state = 'delivered' AND delivered_at < $before LIMIT 5000);
                 DELETE $old;
                 RETURN array::len($old);
                 COMMIT TRANSACTION;",
                json!({ "before": before }),
            )
        })
        .await?;
        let n: Vec<usize> = super::take_returned(&mut response).unwrap_or_default();
        Ok(n.first().copied().unwrap_or(0))
    }

    /// Deliveries by state: `{pending: n, delivered: n, failed: n}`.
    pub async fn delivery_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        #[derive(Deserialize)]
        struct Count {
            state: String,
            n: u64,
        }
        let rows: Vec<Count> = self
            .rows(
                "SELECT state, count() AS n FROM delivery GROUP BY state",
                json!({}),
                0,
            )
            .await?;
        Ok(rows.into_iter().map(|c| (c.state, c.n)).collect())
    }
}

#[cfg(test)]
mod fencing_tests {
    use super::*;

    fn pending(id: &str) -> DeliveryRow {
        DeliveryRow {
            id: id.into(),
            event: "e1".into(),
            kind: "certificate_expiring".into(),
            channel: "chat".into(),
            recipients: Vec::new(),
            state: "pending".into(),
            attempts: 0,
            created: 100,
            next_attempt: 100,
            delivered_at: None,
            last_error: None,
            log: Vec::new(),
            payload: json!({}),
            claim: None,
        }
    }

    fn outcome(row: &DeliveryRow, state: &'static str, at: i64) -> AttemptResult {
        AttemptResult {
            id: row.id.clone(),
            claim: row.claim.clone(),
            state,
            next_attempt: at + 60,
            attempted: true,
            entry: AttemptLog {
                at,
                outcome: if state == "delivered" {
                    "delivered"
                } else {
                    "retry"
                }
                .into(),
                detail: None,
            },
        }
    }

    #[tokio::test]
    async fn an_outcome_from_a_claim_that_lapsed_is_refused() {
        let store = Store::memory().await.unwrap();
        store
            .route_events(&[], &[pending("e1|chat"), pending("e2|chat")])
            .await
            .unwrap();
        // Daemon a claims both, then stalls past the lease.
        let a = store.claim_deliveries("chat", 100, 130, 10).await.unwrap();
        assert_eq!(a.len(), 2);
        assert!(
            store
                .claim_deliveries("chat", 120, 150, 10)
                .await
                .unwrap()
                .is_empty(),
            "leased"
        );
        // Daemon b claims them after the lease and delivers one.
        let b = store.claim_deliveries("chat", 131, 160, 10).await.unwrap();
        assert_eq!(b.len(), 2);
        let b1 = b.iter().find(|r| r.id == "e1|chat").unwrap();
        assert!(
            store
                .record_attempts(&[outcome(b1, "delivered", 132)])
                .await
                .unwrap()
                .is_empty()
        );
        // a wakes up and reports a failure for both: refused, logged by the caller.
        let mut refused = store
            .record_attempts(&[
                outcome(&a[0], "pending", 133),
                outcome(&a[1], "pending", 133),
            ])
            .await
            .unwrap();
        refused.sort();
        assert_eq!(refused, ["e1|chat", "e2|chat"]);
        let e1 = store
            .list_deliveries(&DeliveryFilter {
                limit: 10,
                ..DeliveryFilter::default()
            })
            .await
            .unwrap()
            .into_iter()
            .find(|d| d.id == "e1|chat")
            .unwrap();
        assert_eq!((e1.state.as_str(), e1.attempts), ("delivered", 1));
    }
}
