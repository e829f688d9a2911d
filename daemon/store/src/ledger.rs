//! Newest-first pages over the ledgers people work through by hand: the
//! alert ledger and the enrollment requests.
//!
//! A page is a keyset walk on `(time, id)`, both descending, so a row raised
//! while someone pages is never shown twice nor skipped further down. The
//! cursor is the last row's position, base64 so callers treat it as opaque.

use base64::Engine;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::Store;
use super::inventory::{BadCursor, ListError};

/// One page of a ledger, newest first.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LedgerPage<T> {
    /// The rows.
    pub items: Vec<T>,
    /// Cursor for the next (older) page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A row's place in its ledger.
pub trait Positioned {
    /// The time the ledger is ordered by (Unix seconds).
    fn time(&self) -> i64;
    /// The row's id (the record key).
    fn key(&self) -> &str;
}

/// A cursor for the row at `(time, id)`.
fn encode(time: i64, id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{time}:{id}"))
}

/// The `(time, id)` of a cursor made by [`encode`].
fn decode(cursor: &str) -> Result<(i64, String), BadCursor> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| BadCursor)?;
    let raw = String::from_utf8(raw).map_err(|_| BadCursor)?;
    let (time, id) = raw.split_once(':').ok_or(BadCursor)?;
    if id.is_empty() || id.len() > 200 {
        return Err(BadCursor);
    }
    Ok((time.parse().map_err(|_| BadCursor)?, id.to_owned()))
}

impl Store {
    /// Rows of `table` matching `conditions` (SQL over `vars`), newest
    /// `time_field` first, `limit` of them after `cursor`.
    pub(crate) async fn ledger_page<T: DeserializeOwned + Positioned>(
        &self,
        table: &str,
        time_field: &str,
        mut conditions: Vec<&str>,
        mut vars: Value,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<LedgerPage<T>, ListError> {
        // The range on the time comes first and alone, so the store walks
        // the index from the cursor instead of filtering every row.
        let before = format!(
            "{time_field} <= $before_time AND ({time_field} < $before_time \
             OR id < type::record($table, $before_id))"
        );
        if let Some(cursor) = cursor {
            let (time, id) = decode(cursor)?;
            vars["before_time"] = json!(time);
            vars["before_id"] = json!(id);
            conditions.push(&before);
        }
        vars["table"] = json!(table);
        vars["limit"] = json!(limit + 1);
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT *, record::id(id) AS id FROM type::table($table) {filter} \
             ORDER BY {time_field} DESC, id DESC LIMIT $limit"
        );
        let mut items: Vec<T> = self.rows(&sql, vars, 0).await?;
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|last| encode(last.time(), last.key()))
        } else {
            None
        };
        Ok(LedgerPage { items, next_cursor })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::AlertRow;

    #[test]
    fn cursors_round_trip_and_refuse_junk() {
        assert_eq!(
            decode(&encode(42, "ab_30")).unwrap(),
            (42, "ab_30".to_owned())
        );
        for junk in ["", "!!", "bm9jb2xvbg", &encode(1, "")] {
            assert!(decode(junk).is_err(), "{junk}");
        }
    }

    /// Pages of 3 over 10 alerts, some raised in the same second, list
    /// each alert once, newest first, and a state filter holds across pages.
    #[tokio::test]
    async fn pages_walk_the_ledger_once_newest_first() {
        let store = Store::memory().await.unwrap();
        for i in 0..10i64 {
            store
                .run(
                    "CREATE type::record('alert', $id) CONTENT { fingerprint: $fp, \
                     threshold: 30, raised_at: $t, not_after: 0, state: $state }",
                    json!({
                        "id": format!("a{i}"),
                        "fp": format!("{i:064}"),
                        "t": 1000 + i / 3,
                        "state": if i % 2 == 0 { "open" } else { "resolved" },
                    }),
                )
                .await
                .unwrap();
        }
        let walk = |state: Option<&'static str>| {
            let store = store.clone();
            async move {
                let mut seen = Vec::new();
                let mut cursor = None;
                loop {
                    let page: LedgerPage<AlertRow> = store
                        .list_alerts(state, 3, cursor.as_deref())
                        .await
                        .unwrap();
                    assert!(page.items.len() <= 3);
                    seen.extend(page.items.into_iter().map(|a| (a.raised_at, a.id)));
                    match page.next_cursor {
                        Some(c) => cursor = Some(c),
                        None => return seen,
                    }
                }
            }
        };
        let all = walk(None).await;
        assert_eq!(all.len(), 10);
        let mut sorted = all.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(all, sorted, "newest first, ties by id, none twice");
        let open = walk(Some("open")).await;
        assert_eq!(
            open.iter().map(|(_, id)| id.as_str()).collect::<Vec<_>>(),
            ["a8", "a6", "a4", "a2", "a0"]
        );
        assert!(matches!(
            store.list_alerts(None, 3, Some("junk!")).await,
            Err(ListError::Cursor(_))
        ));
    }
}
