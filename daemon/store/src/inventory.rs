//! Inventory queries: recording certificates and sightings, listing with
//! filters and keyset pagination, and counts by status.
//!
//! Counts by status are kept in `status_count` rows updated in the same
//! transaction as every status change, so the dashboard reads nine rows
//! instead of grouping a million (a `GROUP BY` over 1M rows takes seconds in
//! SurrealDB). Lists are ordered by `(not_after, fingerprint)`, most urgent
//! first, and paged with an opaque cursor holding the last row's sort key, so
//! page N costs the same as page 1.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::json;

use super::{Store, StoreError, take_returned, take_rows, with_conflict_retry};
use crate::import::ImportOutcome;
use certkeeper_model::inventory::{CertificateRecord, Sighting, SightingKind, Status};

/// The order of a certificate listing; ties go by fingerprint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SortKey {
    /// `not_after`, the expiry.
    #[default]
    Expiry,
    /// The subject DN.
    Subject,
    /// The issuer DN.
    Issuer,
}

impl SortKey {
    /// The field sorted on.
    fn field(self) -> &'static str {
        match self {
            SortKey::Expiry => "not_after",
            SortKey::Subject => "subject",
            SortKey::Issuer => "issuer",
        }
    }

    /// A certificate's value of the key, as its cursor carries it.
    fn of(self, c: &CertificateRecord) -> serde_json::Value {
        match self {
            SortKey::Expiry => json!(c.cert.not_after),
            SortKey::Subject => json!(c.cert.subject),
            SortKey::Issuer => json!(c.cert.issuer),
        }
    }
}

impl std::str::FromStr for SortKey {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "expiry" => Ok(SortKey::Expiry),
            "subject" => Ok(SortKey::Subject),
            "issuer" => Ok(SortKey::Issuer),
            other => Err(format!("expected expiry, subject or issuer, got `{other}`")),
        }
    }
}

/// Which certificates to list.
#[derive(Debug, Clone, Default)]
pub struct CertificateFilter {
    /// Only this status.
    pub status: Option<Status>,
    /// Only certificates in force that expire within this many seconds of `now`.
    pub expiring_within: Option<i64>,
    /// Issuer substring (case-insensitive) of the issuer DN.
    pub issuer: Option<String>,
    /// Only this organisation unit.
    pub org_unit: Option<String>,
    /// Text search over names, issuer, serial and fingerprint.
    pub q: Option<String>,
    /// Only these organisation units (the caller's scope).
    pub org_units: Option<Vec<String>>,
    /// Only certificates listing this contact (a subscriber's own).
    pub contact: Option<String>,
    /// Page size.
    pub limit: usize,
    /// Opaque cursor from the previous page.
    pub cursor: Option<String>,
    /// The time "expiring within" counts from (Unix seconds).
    pub now: i64,
    /// Only certificates expiring at or after this time (Unix seconds).
    pub not_after_from: Option<i64>,
    /// Only certificates expiring before this time (Unix seconds).
    pub not_after_to: Option<i64>,
    /// What the page is ordered by.
    pub sort: SortKey,
    /// Descending order (the cursor then walks backwards).
    pub descending: bool,
    /// Leave out each certificate's PEM (reports, which never print it,
    /// read a third of the bytes).
    pub without_pem: bool,
}

/// One page of certificates.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Page {
    /// The certificates, ordered by `not_after`, then fingerprint.
    pub items: Vec<CertificateRecord>,
    /// Cursor for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A certificate's expiry, as `/metrics` exports it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ExpirySeries {
    /// SHA-256 fingerprint.
    pub fingerprint: String,
    /// Subject DN.
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// Serial, lowercase hex.
    pub serial: String,
    /// Lifecycle status.
    pub status: Status,
    /// End of validity (Unix seconds).
    pub not_after: i64,
}

/// A cursor that is not one this server handed out.
#[derive(Debug, thiserror::Error)]
#[error("invalid cursor: pass back the next_cursor of a previous page unchanged")]
pub struct BadCursor;

/// A page's cursor: the last row's sort key and fingerprint.
fn encode_cursor(key: &serde_json::Value, fingerprint: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json!([key, fingerprint]).to_string())
}

fn decode_cursor(cursor: &str, sort: SortKey) -> Result<(serde_json::Value, String), BadCursor> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| BadCursor)?;
    let (key, fp): (serde_json::Value, String) =
        serde_json::from_slice(&raw).map_err(|_| BadCursor)?;
    if fp.len() != 64 || !fp.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(BadCursor);
    }
    // A cursor of another order is refused, not misread.
    let fits = match sort {
        SortKey::Expiry => key.is_i64(),
        SortKey::Subject | SortKey::Issuer => key.is_string(),
    };
    if !fits {
        return Err(BadCursor);
    }
    Ok((key, fp))
}

/// Error from [`Store::list_certificates`].
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// The cursor was not valid.
    #[error(transparent)]
    Cursor(#[from] BadCursor),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Store {
    /// Records certificates seen at one place: new ones are added with their
    /// status counted, known ones get `last_seen` refreshed; either way the
    /// sighting `(fingerprint, kind, location)` is created or refreshed.
    pub async fn record_certificates(
        &self,
        records: &[CertificateRecord],
        kind: SightingKind,
        location: &str,
        now: i64,
    ) -> Result<ImportOutcome, StoreError> {
        self.record_certificates_from(records, kind, location, None, now)
            .await
    }

    /// [`record_certificates`](Self::record_certificates), the sightings
    /// marked as made by the discovery source `source` (its job name), so
    /// that a certificate the source stops seeing can be found (see
    /// `retire.rs`).
    pub async fn record_certificates_from(
        &self,
        records: &[CertificateRecord],
        kind: SightingKind,
        location: &str,
        source: Option<&str>,
        now: i64,
    ) -> Result<ImportOutcome, StoreError> {
        let mut outcome = ImportOutcome::default();
        // A file may hold the same certificate twice; record it once.
        let mut seen = std::collections::HashSet::new();
        let records: Vec<&CertificateRecord> = records
            .iter()
            .filter(|r| seen.insert(r.cert.fingerprint.as_str()))
            .collect();
        for chunk in records.chunks(RECORD_BATCH) {
            let fps: Vec<&str> = chunk.iter().map(|r| r.cert.fingerprint.as_str()).collect();
            // Known certificates are not sent again: a re-import sends only
            // fingerprints. The transaction still inserts with IGNORE, so a
            // certificate another writer adds meanwhile is neither written
            // twice nor counted twice.
            let known: std::collections::HashSet<String> = self
                .rows::<String>(
                    "SELECT VALUE fingerprint FROM $fps.map(|$f| type::record('certificate', $f))",
                    json!({ "fps": fps }),
                    0,
                )
                .await?
                .into_iter()
                .collect();
            // The rows are built here, ids and all, so the transaction never
            // maps a closure over whole certificates: SurrealDB copies the
            // bound value into every closure call, and a row is mostly PEM.
            let rows: Vec<serde_json::Value> = chunk
                .iter()
                .filter(|r| !known.contains(&r.cert.fingerprint))
                .map(|r| {
                    let mut row = serde_json::to_value(r)?;
                    row["search"] = json!(r.search_text());
                    row["id"] = json!(r.cert.fingerprint);
                    Ok(row)
                })
                .collect::<Result<_, serde_json::Error>>()?;
            let vars = json!({ "certs": rows, "fps": fps, "kind": kind, "location": location, "source": source, "now": now });
            let added: Vec<String> = with_conflict_retry(|| async {
                let mut response = self.run(RECORD, vars.clone()).await?;
                take_returned(&mut response)
            })
            .await?;
            let added: std::collections::HashSet<String> = added.into_iter().collect();
            for r in chunk {
                let fp = r.cert.fingerprint.clone();
                if added.contains(&fp) {
                    outcome.added.push(fp);
                } else {
                    outcome.known.push(fp);
                }
            }
        }
        Ok(outcome)
    }

    /// One certificate and every place it was seen.
    pub async fn certificate(
        &self,
        fingerprint: &str,
    ) -> Result<Option<(CertificateRecord, Vec<Sighting>)>, StoreError> {
        let mut response = self
            .run(
                "SELECT * OMIT id, search FROM type::record('certificate', $fp);
                 SELECT * OMIT id FROM sighting WHERE fingerprint = $fp ORDER BY last_seen DESC;",
                json!({ "fp": fingerprint }),
            )
            .await?;
        let cert: Vec<CertificateRecord> = take_rows(&mut response, 0)?;
        let sightings: Vec<Sighting> = take_rows(&mut response, 1)?;
        Ok(cert.into_iter().next().map(|c| (c, sightings)))
    }

    /// A page of certificates matching `filter`.
    pub async fn list_certificates(&self, filter: &CertificateFilter) -> Result<Page, ListError> {
        let (filter_sql, vars) = where_clause(filter)?;
        let omit = if filter.without_pem {
            "id, search, pem"
        } else {
            "id, search"
        };
        let field = filter.sort.field();
        let order = if filter.descending {
            format!("{field} DESC, fingerprint DESC")
        } else {
            format!("{field}, fingerprint")
        };
        let sql = format!(
            "SELECT * OMIT {omit} FROM certificate {filter_sql} ORDER BY {order} LIMIT $limit"
        );
        let mut items: Vec<CertificateRecord> = self.rows(&sql, vars, 0).await?;
        let next_cursor = if items.len() > filter.limit {
            items.truncate(filter.limit);
            items
                .last()
                .map(|last| encode_cursor(&filter.sort.of(last), &last.cert.fingerprint))
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    /// How many certificates of `filter` expire in each period of `seconds`
    /// from `filter.now` (period 0 is the first): one aggregate over the
    /// expiry index instead of reading the rows.
    pub async fn expiries_per_period(
        &self,
        filter: &CertificateFilter,
        seconds: i64,
    ) -> Result<BTreeMap<i64, u64>, ListError> {
        #[derive(serde::Deserialize)]
        struct Row {
            week: i64,
            n: u64,
        }
        let mut unpaged = filter.clone();
        unpaged.cursor = None;
        let (filter_sql, mut vars) = where_clause(&unpaged)?;
        vars["period"] = json!(seconds.max(1));
        let rows: Vec<Row> = self
            .rows(
                &format!(
                    "SELECT <int> math::floor((not_after - $now) / $period) AS week, count() AS n \
                     FROM certificate {filter_sql} GROUP BY week"
                ),
                vars,
                0,
            )
            .await?;
        Ok(rows.into_iter().map(|r| (r.week, r.n)).collect())
    }

    /// The first `limit` certificates with `not_after >= since`, soonest
    /// first, with only the fields a metrics series needs (no PEM), straight
    /// off the expiry index.
    pub async fn expiry_series(
        &self,
        since: i64,
        limit: usize,
    ) -> Result<Vec<ExpirySeries>, StoreError> {
        self.rows(
            "SELECT fingerprint, subject, issuer, serial, status, not_after FROM certificate
             WHERE not_after >= $since ORDER BY not_after, fingerprint LIMIT $limit",
            json!({ "since": since, "limit": limit }),
            0,
        )
        .await
    }

    /// Counts by status of the certificates of these org units (and, for a
    /// subscriber, listing this contact): a scoped caller's dashboard.
    pub async fn counts_in_scope(
        &self,
        units: &[String],
        contact: Option<&str>,
    ) -> Result<BTreeMap<Status, u64>, StoreError> {
        #[derive(serde::Deserialize)]
        struct Row {
            status: Status,
            n: u64,
        }
        let contact_sql = if contact.is_some() {
            "AND $contact IN contacts"
        } else {
            ""
        };
        let rows: Vec<Row> = self
            .rows(
                &format!(
                    "SELECT status, count() AS n FROM certificate WHERE org_unit IN $units {contact_sql} GROUP BY status"
                ),
                json!({ "units": units, "contact": contact }),
                0,
            )
            .await?;
        let mut counts: BTreeMap<Status, u64> = Status::ALL.iter().map(|s| (*s, 0)).collect();
        for row in rows {
            counts.insert(row.status, row.n);
        }
        Ok(counts)
    }

    /// Of these certificates, those in these org units (and listing this
    /// contact, when given).
    pub async fn in_scope(
        &self,
        fingerprints: &[String],
        units: &[String],
        contact: Option<&str>,
    ) -> Result<Vec<String>, StoreError> {
        let contact_sql = if contact.is_some() {
            "AND $contact IN contacts"
        } else {
            ""
        };
        self.rows(
            &format!(
                "SELECT VALUE fingerprint FROM certificate WHERE fingerprint IN $fps AND org_unit IN $units {contact_sql}"
            ),
            json!({ "fps": fingerprints, "units": units, "contact": contact }),
            0,
        )
        .await
    }

    /// Sets the org unit, contacts and/or tags of these certificates, in
    /// transactions of 1000; returns how many were changed.
    pub async fn assign_certificates(
        &self,
        fingerprints: &[String],
        org_unit: Option<&str>,
        contacts: Option<&[String]>,
        tags: Option<&[String]>,
    ) -> Result<usize, StoreError> {
        let mut sets = Vec::new();
        if org_unit.is_some() {
            sets.push("org_unit = $org_unit");
        }
        if contacts.is_some() {
            sets.push("contacts = $contacts");
        }
        if tags.is_some() {
            sets.push("tags = $tags");
        }
        if sets.is_empty() {
            return Ok(0);
        }
        let sql = format!(
            "UPDATE certificate SET {} WHERE fingerprint IN $fps RETURN VALUE fingerprint",
            sets.join(", ")
        );
        let mut changed = 0;
        for chunk in fingerprints.chunks(1000) {
            let vars =
                json!({ "fps": chunk, "org_unit": org_unit, "contacts": contacts, "tags": tags });
            let rows: Vec<String> =
                with_conflict_retry(|| self.rows(&sql, vars.clone(), 0)).await?;
            changed += rows.len();
        }
        Ok(changed)
    }

    /// How many certificates have each status (every status present, zeros too).
    pub async fn counts_by_status(&self) -> Result<BTreeMap<Status, u64>, StoreError> {
        #[derive(serde::Deserialize)]
        struct Row {
            status: Status,
            n: i64,
        }
        let rows: Vec<Row> = self
            .rows(
                "SELECT record::id(id) AS status, n FROM status_count",
                json!({}),
                0,
            )
            .await?;
        let mut counts: BTreeMap<Status, u64> = Status::ALL.iter().map(|s| (*s, 0)).collect();
        for row in rows {
            counts.insert(row.status, u64::try_from(row.n).unwrap_or(0));
        }
        Ok(counts)
    }

    /// Moves in-force certificates between `valid`, `expiring` and `expired`
    /// as the clock passes their thresholds; returns how many moved.
    pub async fn refresh_statuses(&self, now: i64, expiring_days: u32) -> Result<u64, StoreError> {
        let moved = self
            .refresh_statuses_until(now, expiring_days, &|| false)
            .await?;
        Ok(moved.unwrap_or(0))
    }

    /// [`refresh_statuses`](Self::refresh_statuses), asking `stop` between
    /// batches (each a transaction of its own): `None` when it stopped
    /// early; what it moved so far stays moved, and the next refresh moves
    /// the rest.
    pub async fn refresh_statuses_until(
        &self,
        now: i64,
        expiring_days: u32,
        stop: &(dyn Fn() -> bool + Sync),
    ) -> Result<Option<u64>, StoreError> {
        let soon = now + i64::from(expiring_days) * 86_400;
        // (from, to, lowest not_after, highest not_after (exclusive))
        let moves = [
            (Status::Valid, Status::Expired, i64::MIN, now),
            (Status::Expiring, Status::Expired, i64::MIN, now),
            (Status::Valid, Status::Expiring, now, soon + 1),
            (Status::Expiring, Status::Valid, soon + 1, i64::MAX),
        ];
        const BATCH: i64 = 5_000;
        let mut moved = 0u64;
        for (from, to, lo, hi) in moves {
            let vars = json!({ "from": from, "to": to, "lo": lo, "hi": hi, "batch": BATCH });
            loop {
                let n: Vec<i64> = with_conflict_retry(|| async {
                    let mut response = self.run(REFRESH, vars.clone()).await?;
                    take_returned(&mut response)
                })
                .await?;
                let n = n.first().copied().unwrap_or(0).max(0);
                moved += n as u64;
                if n < BATCH {
                    break;
                }
                if stop() {
                    return Ok(None);
                }
            }
        }
        Ok(Some(moved))
    }
}

/// Certificates recorded per transaction: large enough that the commit is
/// a small part of a batch, small enough to stay well inside the memtable.
const RECORD_BATCH: usize = 2_000;

/// Records a batch of certificates and one sighting each, keeping the status
/// counters in step. Returns (last statement) the fingerprints added.
///
/// `INSERT IGNORE` writes the new certificates and answers only those, so
/// the known ones are found without reading them first; their `last_seen`
/// is refreshed only when it moved.
const RECORD: &str = r#"
BEGIN TRANSACTION;
LET $added = IF array::len($certs) > 0 { (INSERT IGNORE INTO certificate $certs RETURN fingerprint, status) } ELSE { [] };
LET $fresh = $added.fingerprint;
FOR $status IN array::distinct($added.status) {
    UPSERT type::record('status_count', $status) SET n = (n ?? 0) + array::len($added[WHERE status = $status]) RETURN NONE;
};
LET $known = array::complement($fps, $fresh);
IF array::len($known) > 0 {
    UPDATE $known.map(|$f| type::record('certificate', $f)) SET last_seen = $now WHERE last_seen < $now RETURN NONE;
};
INSERT INTO sighting $fps.map(|$f| {
    id: type::record('sighting', [$f, $kind, $location]),
    fingerprint: $f, kind: $kind, location: $location, source: $source,
    first_seen: $now, last_seen: $now
}) ON DUPLICATE KEY UPDATE last_seen = $now, source = $source RETURN NONE;
RETURN $fresh;
COMMIT TRANSACTION;
"#;

/// Moves up to `$batch` certificates of status `$from` whose `not_after` lies
/// in `[$lo, $hi)` to `$to`, adjusting both counters. Returns how many moved.
/// Batches keep each transaction well inside the embedded memtable.
const REFRESH: &str = r#"
BEGIN TRANSACTION;
LET $moved = (SELECT VALUE id FROM certificate
    WHERE status = $from AND not_after >= $lo AND not_after < $hi LIMIT $batch);
UPDATE $moved SET status = $to RETURN NONE;
UPSERT type::record('status_count', $from) SET n = (n ?? 0) - array::len($moved) RETURN NONE;
UPSERT type::record('status_count', $to) SET n = (n ?? 0) + array::len($moved) RETURN NONE;
RETURN [array::len($moved)];
COMMIT TRANSACTION;
"#;

/// The `WHERE` clause and its variables for `filter` (with `$limit` and
/// `$now`), shared by the page query and the aggregates over the same set.
fn where_clause(filter: &CertificateFilter) -> Result<(String, serde_json::Value), ListError> {
    let mut conditions = Vec::new();
    let mut vars = json!({ "limit": filter.limit + 1, "now": filter.now });
    if let Some(status) = filter.status {
        conditions.push("status = $status");
        vars["status"] = json!(status);
    }
    if let Some(within) = filter.expiring_within {
        conditions.push("not_after >= $now AND not_after <= $until");
        vars["until"] = json!(filter.now.saturating_add(within));
    }
    if let Some(from) = filter.not_after_from {
        conditions.push("not_after >= $from");
        vars["from"] = json!(from);
    }
    if let Some(to) = filter.not_after_to {
        conditions.push("not_after < $to");
        vars["to"] = json!(to);
    }
    if let Some(issuer) = &filter.issuer {
        conditions.push("string::contains(string::lowercase(issuer), $issuer)");
        vars["issuer"] = json!(issuer.to_lowercase());
    }
    if let Some(org_unit) = &filter.org_unit {
        conditions.push("org_unit = $org_unit");
        vars["org_unit"] = json!(org_unit);
    }
    if let Some(units) = &filter.org_units {
        conditions.push("org_unit IN $org_units");
        vars["org_units"] = json!(units);
    }
    if let Some(contact) = &filter.contact {
        conditions.push("$contact IN contacts");
        vars["contact"] = json!(contact);
    }
    if let Some(q) = &filter.q {
        conditions.push("string::contains(search, $q)");
        vars["q"] = json!(q.to_lowercase());
    }
    let keyset;
    if let Some(cursor) = &filter.cursor {
        let (after, fp) = decode_cursor(cursor, filter.sort)?;
        let (field, op) = (
            filter.sort.field(),
            if filter.descending { "<" } else { ">" },
        );
        // The range on the sort field comes first and alone, so the store
        // walks the index from the cursor instead of filtering every row.
        keyset =
            format!("{field} {op}= $after AND ({field} {op} $after OR fingerprint {op} $after_fp)");
        conditions.push(&keyset);
        vars["after"] = after;
        vars["after_fp"] = json!(fp);
    }
    let filter_sql = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    Ok((filter_sql, vars))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use certkeeper_model::inventory::ParsedCertificate;

    pub(crate) fn synthetic(i: u64, not_after: i64) -> ParsedCertificate {
        ParsedCertificate {
            fingerprint: format!("{i:064x}"),
            subject: format!("CN=host{i}.example.com"),
            subject_cn: Some(format!("host{i}.example.com")),
            issuer: "CN=Example Issuing CA, O=Example".into(),
            issuer_cn: Some("Example Issuing CA".into()),
            serial: format!("{i:x}"),
            not_before: not_after - 90 * 86_400,
            not_after,
            san_dns: vec![format!("host{i}.example.com")],
            san_ip: vec![],
            san_email: vec![],
            san_uri: vec![],
            key_algorithm: "EC".into(),
            key_bits: 256,
            key_curve: Some("P-256".into()),
            signature_algorithm: "ecdsa-with-SHA256".into(),
            key_usage: vec!["digitalSignature".into()],
            extended_key_usage: vec!["serverAuth".into()],
            is_ca: false,
            self_signed: false,
            certificate_policies: vec![],
            pem: String::new(),
        }
    }

    fn records(n: u64, now: i64) -> Vec<CertificateRecord> {
        (0..n)
            .map(|i| {
                CertificateRecord::discovered(
                    synthetic(i, now + (i as i64 - 5) * 86_400 * 10),
                    now,
                    30,
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn record_counts_dedups_and_pages() {
        let store = Store::memory().await.unwrap();
        let now = 1_800_000_000;
        let recs = records(20, now);
        let mut twice = recs.clone();
        twice.push(recs[0].clone());
        let out = store
            .record_certificates(&twice, SightingKind::File, "/a.pem", now)
            .await
            .unwrap();
        assert_eq!(
            out.added.len(),
            20,
            "a certificate twice in one file is one"
        );
        // Again from another place: nothing new, a second sighting each.
        let out = store
            .record_certificates(&recs[..3], SightingKind::File, "/b.pem", now + 5)
            .await
            .unwrap();
        assert_eq!(out.known.len(), 3);
        assert!(out.added.is_empty());
        let (cert, sightings) = store
            .certificate(&recs[0].cert.fingerprint)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(cert.last_seen, now + 5);
        assert_eq!(sightings.len(), 2);

        // i in 0..5 expired, 5..8 expiring (0, 10, 20, 30 days? 30 is expiring), rest valid
        let counts = store.counts_by_status().await.unwrap();
        assert_eq!(counts[&Status::Expired], 5);
        assert_eq!(counts[&Status::Expiring], 4);
        assert_eq!(counts[&Status::Valid], 11);
        assert_eq!(
            counts.values().sum::<u64>(),
            20,
            "a re-import does not double count"
        );

        // Pages of 6 walk everything once, in not_after order.
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = store
                .list_certificates(&CertificateFilter {
                    limit: 6,
                    cursor,
                    now,
                    ..Default::default()
                })
                .await
                .unwrap();
            seen.extend(page.items.iter().map(|c| c.cert.not_after));
            cursor = page.next_cursor;
            if cursor.is_none() {
                break;
            }
        }
        assert_eq!(seen.len(), 20);
        assert!(seen.windows(2).all(|w| w[0] <= w[1]));
        // Descending pages walk the same twenty backwards.
        let mut back = Vec::new();
        let mut cursor = None;
        loop {
            let page = store
                .list_certificates(&CertificateFilter {
                    limit: 7,
                    cursor,
                    now,
                    descending: true,
                    ..Default::default()
                })
                .await
                .unwrap();
            back.extend(page.items.iter().map(|c| c.cert.not_after));
            cursor = page.next_cursor;
            if cursor.is_none() {
                break;
            }
        }
        back.reverse();
        assert_eq!(back, seen);

        let expiring = store
            .list_certificates(&CertificateFilter {
                limit: 100,
                expiring_within: Some(30 * 86_400),
                now,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(expiring.items.len(), 4);
        assert!(matches!(
            store
                .list_certificates(&CertificateFilter {
                    limit: 1,
                    cursor: Some("zz".into()),
                    now,
                    ..Default::default()
                })
                .await,
            Err(ListError::Cursor(_))
        ));
    }

    #[tokio::test]
    async fn refresh_moves_statuses_and_counters() {
        let store = Store::memory().await.unwrap();
        let now = 1_800_000_000;
        let recs = records(20, now);
        store
            .record_certificates(&recs, SightingKind::Import, "upload", now)
            .await
            .unwrap();
        // 25 days later: one more expired (i=5), i=8 (30 days→5 left) becomes expiring, ...
        let later = now + 25 * 86_400;
        let moved = store.refresh_statuses(later, 30).await.unwrap();
        assert!(moved > 0);
        let counts = store.counts_by_status().await.unwrap();
        let expected: BTreeMap<Status, u64> = {
            let mut m: BTreeMap<Status, u64> = Status::ALL.iter().map(|s| (*s, 0)).collect();
            for r in &recs {
                *m.entry(Status::by_time(r.cert.not_after, later, 30))
                    .or_default() += 1;
            }
            m
        };
        assert_eq!(counts, expected);
        assert_eq!(
            store.refresh_statuses(later, 30).await.unwrap(),
            0,
            "idempotent"
        );
    }
}
