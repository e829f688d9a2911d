//! Purchased units per connector account: each issuance through a metered
//! connector consumes one; falling below the threshold raises one
//! `units_low` event until the account is replenished.
//!
//! - `units:⟨connector⟩` `{ connector, purchased, used, threshold, low }`
//! - `unit_use:⟨fingerprint⟩`: the issuance that consumed a unit, so a
//!   certificate recorded twice (a retried step) is counted once.
//!
//! A connector without a `units` row is not metered (an internal CA, ACME).

use certkeeper_model::event::StoredEvent;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Store, StoreError, with_conflict_retry};

/// A connector account's units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Units {
    /// The connector.
    pub connector: String,
    /// Units bought, in total.
    pub purchased: i64,
    /// Units consumed by issuances.
    pub used: i64,
    /// Below this many left, `units_low` fires (once until replenished).
    pub threshold: i64,
    /// Whether `units_low` has fired since the last replenishment.
    #[serde(default)]
    pub low: bool,
}

impl Units {
    /// Units left.
    pub fn remaining(&self) -> i64 {
        self.purchased - self.used
    }
}

impl Store {
    /// Every metered connector's units.
    pub async fn units(&self) -> Result<Vec<Units>, StoreError> {
        self.rows(
            "SELECT * OMIT id FROM units ORDER BY connector",
            json!({}),
            0,
        )
        .await
    }

    /// One connector's units, if it is metered.
    pub async fn units_of(&self, connector: &str) -> Result<Option<Units>, StoreError> {
        let rows: Vec<Units> = self
            .rows(
                "SELECT * OMIT id FROM type::record('units', $c)",
                json!({ "c": connector }),
                0,
            )
            .await?;
        Ok(rows.into_iter().next())
    }

    /// Adds `bought` units (and sets the threshold); re-arms the low-units
    /// event when the account is back at or above the threshold.
    pub async fn add_units(
        &self,
        connector: &str,
        bought: i64,
        threshold: i64,
    ) -> Result<Units, StoreError> {
        let vars = json!({ "c": connector, "bought": bought, "threshold": threshold });
        let mut response = with_conflict_retry(|| {
            self.run(
                "BEGIN TRANSACTION;
                 LET $u = (SELECT * FROM ONLY type::record('units', $c));
                 LET $purchased = ($u.purchased ?? 0) + $bought;
                 LET $used = $u.used ?? 0;
                 UPSERT type::record('units', $c) CONTENT {
                     connector: $c, purchased: $purchased, used: $used, threshold: $threshold,
                     low: ($purchased - $used) < $threshold AND ($u.low ?? false),
                 } RETURN NONE;
                 SELECT * OMIT id FROM type::record('units', $c);
                 COMMIT TRANSACTION;",
                vars.clone(),
            )
        })
        .await?;
        let rows: Vec<Units> = super::take_returned(&mut response)?;
        rows.into_iter()
            .next()
            .ok_or_else(|| StoreError::Engine("units: row vanished".into()))
    }

    /// Per connector, how many certificates in service it issued (a
    /// `connector` sighting, not replaced) expire by `horizon`: the units
    /// their renewals will use.
    pub async fn renewals_due_by_connector(
        &self,
        horizon: i64,
    ) -> Result<std::collections::BTreeMap<String, u64>, StoreError> {
        #[derive(Deserialize)]
        struct Place {
            fingerprint: String,
            location: String,
        }
        let places: Vec<Place> = self
            .rows(
                "SELECT fingerprint, location FROM sighting WHERE kind = 'connector'",
                json!({}),
                0,
            )
            .await?;
        let mut due = std::collections::BTreeMap::new();
        for chunk in places.chunks(1000) {
            let fps: Vec<&str> = chunk.iter().map(|p| p.fingerprint.as_str()).collect();
            let expiring: Vec<String> = self
                .rows(
                    "SELECT VALUE fingerprint FROM certificate WHERE fingerprint IN $fps
                       AND not_after <= $horizon AND replaced_by = NONE
                       AND status IN ['valid', 'expiring']",
                    json!({ "fps": fps, "horizon": horizon }),
                    0,
                )
                .await?;
            for p in chunk.iter().filter(|p| expiring.contains(&p.fingerprint)) {
                // The location reads "CONNECTOR: NAME".
                let connector = p.location.split(": ").next().unwrap_or_default().to_owned();
                *due.entry(connector).or_default() += 1;
            }
        }
        Ok(due)
    }

    /// Consumes one unit of `connector` for the certificate `fingerprint`
    /// (once per certificate); when that takes the account below its
    /// threshold for the first time since replenishment, records `event`.
    /// Returns the account after, or `None` when it is not metered.
    pub async fn consume_unit(
        &self,
        connector: &str,
        fingerprint: &str,
        now: i64,
        event: impl Fn(&Units) -> StoredEvent,
    ) -> Result<Option<Units>, StoreError> {
        let Some(before) = self.units_of(connector).await? else {
            return Ok(None);
        };
        let mut after = before.clone();
        after.used += 1;
        let fire = !before.low && after.remaining() < after.threshold;
        let (event_id, event_doc) = if fire {
            let e = event(&after);
            (e.id, e.event)
        } else {
            (String::new(), serde_json::Value::Null)
        };
        let vars = json!({
            "c": connector, "fp": fingerprint, "now": now, "fire": fire,
            "event_id": event_id, "event": event_doc,
        });
        let result = self
            .run(
                "BEGIN TRANSACTION;
                 CREATE type::record('unit_use', $fp) CONTENT { connector: $c, at: $now } RETURN NONE;
                 UPDATE type::record('units', $c) SET used += 1 RETURN NONE;
                 IF $fire {
                     UPDATE type::record('units', $c) SET low = true RETURN NONE;
                     CREATE type::record('event', $event_id) CONTENT { time: $now, event: $event, routed: false } RETURN NONE;
                 };
                 COMMIT TRANSACTION;",
                vars,
            )
            .await;
        match result {
            Ok(_) => Ok(Some(after)),
            // Counted already (the step was retried after a restart).
            Err(e) if e.to_string().contains("already exists") => self.units_of(connector).await,
            Err(e) => Err(e),
        }
    }
}
