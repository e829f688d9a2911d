//! Enrollment requests and the domain policy in the store.
//!
//! - `request:⟨id⟩`: one enrollment request and its state (`pending`,
//!   `approved` (issuance started), `rejected`), with who decided and why.
//!   A transition and its event are written in one transaction, and only
//!   from the state it expects, so two approvers racing cannot both win.
//! - `domain_rule:⟨domain⟩`: the managed domains (`certkeeper_model::admin::domains`).

use certkeeper_model::event::StoredEvent;
use certkeeper_model::request::RequestState;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::inventory::ListError;
use super::ledger::{LedgerPage, Positioned};
use super::{Store, StoreError, take_returned, with_conflict_retry};
use certkeeper_model::admin::domains::DomainRule;

/// An enrollment request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// `req-` and a random suffix.
    pub id: String,
    /// Who asked.
    pub requester: String,
    /// The org unit it is for.
    pub org_unit: String,
    /// The identifiers, normalised.
    pub identifiers: Vec<String>,
    /// The connector that issues it.
    pub connector: String,
    /// Key type.
    pub key_type: String,
    /// Requested validity.
    pub validity_days: Option<u32>,
    /// Requested validity in seconds (short-lived).
    #[serde(default)]
    pub validity_seconds: Option<u64>,
    /// Technical contact (gets its alerts).
    pub contact: String,
    /// Where it stands.
    pub state: RequestState,
    /// Who may decide it (assigned by an approver), if anyone in particular.
    pub assignee: Option<String>,
    /// Who decided (`rules` for a pre-approved domain).
    pub decided_by: Option<String>,
    /// Why it was rejected, or what the rules said.
    pub reason: Option<String>,
    /// The managed certificate it became.
    pub managed: Option<String>,
    /// When it was made (Unix seconds).
    pub created: i64,
    /// When it was decided (Unix seconds).
    pub decided: Option<i64>,
}

impl Positioned for Request {
    fn time(&self) -> i64 {
        self.created
    }
    fn key(&self) -> &str {
        &self.id
    }
}

impl Store {
    /// Records a new request with its event.
    pub async fn create_request(
        &self,
        request: &Request,
        event: &StoredEvent,
    ) -> Result<(), StoreError> {
        let vars = json!({
            "id": request.id,
            "doc": request,
            "event_id": event.id,
            "event": event.event,
            "now": request.created,
        });
        with_conflict_retry(|| {
            self.run(
                "BEGIN TRANSACTION;
                 CREATE type::record('request', $id) CONTENT $doc RETURN NONE;
                 CREATE type::record('event', $event_id) CONTENT { time: $now, event: $event, routed: false } RETURN NONE;
                 COMMIT TRANSACTION;",
                vars.clone(),
            )
        })
        .await?;
        Ok(())
    }

    /// A request by id.
    pub async fn request(&self, id: &str) -> Result<Option<Request>, StoreError> {
        let rows: Vec<Request> = self
            .rows(
                "SELECT *, record::id(id) AS id FROM type::record('request', $id)",
                json!({ "id": id }),
                0,
            )
            .await?;
        Ok(rows.into_iter().next())
    }

    /// Requests in `units` (all when `None`), by `requester`, in `state`,
    /// newest first: `limit` of them after `cursor`.
    pub async fn requests(
        &self,
        units: Option<&[String]>,
        requester: Option<&str>,
        state: Option<RequestState>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<LedgerPage<Request>, ListError> {
        let mut conditions = Vec::new();
        if units.is_some() {
            conditions.push("org_unit IN $units");
        }
        if requester.is_some() {
            conditions.push("requester = $requester");
        }
        if state.is_some() {
            conditions.push("state = $state");
        }
        self.ledger_page(
            "request",
            "created",
            conditions,
            json!({ "units": units, "requester": requester, "state": state }),
            limit,
            cursor,
        )
        .await
    }

    /// How many requests each org unit (of `units`, all when `None`) has in
    /// each state: `(org_unit, state, count)`.
    pub async fn request_counts(
        &self,
        units: Option<&[String]>,
    ) -> Result<Vec<(String, RequestState, u64)>, StoreError> {
        #[derive(Deserialize)]
        struct Row {
            org_unit: String,
            state: RequestState,
            n: u64,
        }
        let filter = if units.is_some() {
            "WHERE org_unit IN $units"
        } else {
            ""
        };
        let rows: Vec<Row> = self
            .rows(
                &format!(
                    "SELECT org_unit, state, count() AS n FROM request {filter} \
                     GROUP BY org_unit, state"
                ),
                json!({ "units": units }),
                0,
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.org_unit, r.state, r.n))
            .collect())
    }

    /// Moves a request from `from` to the state in `changes` (merged into
    /// the row) and records `event`, in one transaction. `Ok(None)` when the
    /// request is no longer in `from` (someone else decided first).
    pub async fn transition_request(
        &self,
        id: &str,
        from: RequestState,
        changes: Value,
        event: Option<&StoredEvent>,
        now: i64,
    ) -> Result<Option<Request>, StoreError> {
        let (event_id, event) = event
            .map(|e| (e.id.as_str(), e.event.clone()))
            .unwrap_or_default();
        let vars = json!({
            "id": id, "from": from, "changes": changes,
            "event_id": event_id, "event": event, "now": now,
        });
        let mut response = with_conflict_retry(|| {
            self.run(
                "BEGIN TRANSACTION;
                 LET $r = (SELECT state FROM ONLY type::record('request', $id));
                 IF $r.state != $from { THROW 'request not in the expected state' };
                 UPDATE type::record('request', $id) MERGE $changes RETURN NONE;
                 IF $event_id != '' {
                     CREATE type::record('event', $event_id) CONTENT { time: $now, event: $event, routed: false } RETURN NONE;
                 };
                 SELECT *, record::id(id) AS id FROM type::record('request', $id);
                 COMMIT TRANSACTION;",
                vars.clone(),
            )
        })
        .await;
        match response {
            Ok(ref mut r) => Ok(take_returned::<Request>(r)?.into_iter().next()),
            Err(e) if e.to_string().contains("not in the expected state") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The domain policy's rules.
    pub async fn domain_rules(&self) -> Result<Vec<DomainRule>, StoreError> {
        self.rows(
            "SELECT * OMIT id FROM domain_rule ORDER BY domain",
            json!({}),
            0,
        )
        .await
    }

    /// Adds or replaces the rule for `rule.domain`.
    pub async fn put_domain_rule(&self, rule: &DomainRule) -> Result<(), StoreError> {
        let vars = json!({ "domain": rule.domain.trim().to_lowercase(), "doc": rule });
        with_conflict_retry(|| {
            self.run(
                "UPSERT type::record('domain_rule', $domain) CONTENT $doc RETURN NONE",
                vars.clone(),
            )
        })
        .await?;
        Ok(())
    }

    /// Removes the rule for `domain`; `false` when there was none.
    pub async fn delete_domain_rule(&self, domain: &str) -> Result<bool, StoreError> {
        let rows: Vec<Value> = self
            .rows(
                "DELETE type::record('domain_rule', $domain) RETURN BEFORE",
                json!({ "domain": domain.trim().to_lowercase() }),
                0,
            )
            .await?;
        Ok(!rows.is_empty())
    }
}
