//! Where each CA import job's listing stands: the cursor its connector
//! gave with the last page recorded (`ca_import:⟨job⟩`), so the next run
//! asks only for what the CA issued since, and a run stopped mid-listing
//! continues after the last page it recorded.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Store, StoreError, with_conflict_retry};

/// A CA import job's position.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaImportState {
    /// The job.
    pub job: String,
    /// The connector's cursor after the last page recorded.
    pub cursor: Option<String>,
    /// Certificates the job has recorded, all runs together.
    #[serde(default)]
    pub listed: u64,
    /// When the last run finished its listing (Unix seconds).
    pub finished: Option<i64>,
}

impl Store {
    /// Where `job`'s listing stands (a default, empty state before its
    /// first run).
    pub async fn ca_import_state(&self, job: &str) -> Result<CaImportState, StoreError> {
        let rows: Vec<CaImportState> = self
            .rows(
                "SELECT job, cursor, listed, finished FROM type::record('ca_import', $job)",
                json!({ "job": job }),
                0,
            )
            .await?;
        Ok(rows.into_iter().next().unwrap_or_else(|| CaImportState {
            job: job.to_owned(),
            ..CaImportState::default()
        }))
    }

    /// Records that a page of `count` certificates up to `cursor` is in the
    /// inventory; `finished` when it was the listing's last page.
    pub async fn advance_ca_import(
        &self,
        job: &str,
        cursor: Option<&str>,
        count: u64,
        finished: Option<i64>,
    ) -> Result<(), StoreError> {
        let vars = json!({ "job": job, "cursor": cursor, "count": count, "finished": finished });
        with_conflict_retry(|| {
            self.run(
                "UPSERT type::record('ca_import', $job) SET job = $job, cursor = $cursor,
                     listed = (listed ?? 0) + $count,
                     finished = $finished ?? finished
                     RETURN NONE",
                vars.clone(),
            )
        })
        .await?;
        Ok(())
    }
}

/// Where CA import records `unmanaged_account` findings: across every
/// configured account, not at one.
pub const ALL_ACCOUNTS: &str = "ca:*";

impl Store {
    /// The certificates held at `place` (a CA account's `ca:NAME`), split
    /// into those in force and seen at no endpoint or file nor deployed by
    /// a managed certificate, and the rest.
    pub async fn held_not_deployed(
        &self,
        place: &str,
    ) -> Result<(Vec<String>, Vec<String>), StoreError> {
        let rows: Vec<Vec<String>> = self
            .rows(
                "LET $held = array::distinct((SELECT VALUE fingerprint FROM sighting WHERE location = $place));
                 LET $in_force = (SELECT VALUE fingerprint
                     FROM $held.map(|$f| type::record('certificate', $f))
                     WHERE status IN ['valid', 'expiring']);
                 LET $deployed = array::distinct((SELECT VALUE fingerprint FROM sighting
                     WHERE fingerprint IN $in_force AND (kind IN ['endpoint', 'file']
                         OR (kind = 'connector' AND !string::starts_with(location, 'ca:')))));
                 LET $lonely = array::complement($in_force, $deployed);
                 RETURN [$lonely, array::complement($held, $lonely)];",
                json!({ "place": place }),
                4,
            )
            .await?;
        let mut rows = rows.into_iter();
        Ok((
            rows.next().unwrap_or_default(),
            rows.next().unwrap_or_default(),
        ))
    }

    /// Certificates in force seen at an endpoint, issued by a CA whose
    /// certificates some configured account holds (`ca:` sightings), but
    /// held by no account.
    pub async fn unmanaged_account(&self) -> Result<Vec<String>, StoreError> {
        self.rows(
            "LET $held = array::distinct((SELECT VALUE fingerprint FROM sighting
                 WHERE kind = 'connector' AND string::starts_with(location, 'ca:')));
             LET $issuers = array::distinct((SELECT VALUE issuer
                 FROM $held.map(|$f| type::record('certificate', $f))));
             LET $deployed = array::distinct((SELECT VALUE fingerprint FROM sighting
                 WHERE kind = 'endpoint'));
             LET $candidates = (SELECT VALUE fingerprint
                 FROM $deployed.map(|$f| type::record('certificate', $f))
                 WHERE issuer IN $issuers AND status IN ['valid', 'expiring'] AND is_ca = false);
             RETURN array::complement($candidates, $held);",
            json!({}),
            4,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_cursor_moves_with_each_page_and_survives_a_reopen() {
        let store = Store::memory().await.unwrap();
        let fresh = store.ca_import_state("corp").await.unwrap();
        assert_eq!(
            (fresh.cursor, fresh.listed, fresh.finished),
            (None, 0, None)
        );
        store
            .advance_ca_import("corp", Some("256"), 256, None)
            .await
            .unwrap();
        store
            .advance_ca_import("corp", Some("300"), 44, Some(1_700_000_000))
            .await
            .unwrap();
        let state = store.ca_import_state("corp").await.unwrap();
        assert_eq!(state.cursor.as_deref(), Some("300"));
        assert_eq!(state.listed, 300);
        assert_eq!(state.finished, Some(1_700_000_000));
        // Another page later keeps the finish time until it finishes again.
        store
            .advance_ca_import("corp", Some("301"), 1, None)
            .await
            .unwrap();
        assert_eq!(
            store.ca_import_state("corp").await.unwrap().finished,
            Some(1_700_000_000)
        );
        assert_eq!(store.ca_import_state("other").await.unwrap().listed, 0);
    }

    #[tokio::test]
    async fn held_but_not_deployed_and_deployed_but_held_by_no_account() {
        use certkeeper_model::inventory::{CertificateRecord, SightingKind};
        let store = Store::memory().await.unwrap();
        let now = 1_800_000_000;
        let record = |i: u64, issuer: &str| {
            let mut cert = crate::inventory::tests::synthetic(i, now + 60 * 86_400);
            cert.issuer = issuer.to_owned();
            CertificateRecord::discovered(cert, now, 30)
        };
        let vendor = "CN=Vendor CA";
        let (held_only, held_deployed, managed, stray, other_ca) = (
            record(1, vendor),
            record(2, vendor),
            record(3, vendor),
            record(4, vendor),
            record(5, "CN=Someone Else"),
        );
        let sight = |r: &CertificateRecord, kind: SightingKind, place: &str| {
            let (r, place) = (r.clone(), place.to_owned());
            let store = store.clone();
            async move {
                store
                    .record_certificates(&[r], kind, &place, now)
                    .await
                    .unwrap();
            }
        };
        for r in [&held_only, &held_deployed, &managed] {
            sight(r, SightingKind::Connector, "ca:vendor").await;
        }
        sight(&held_deployed, SightingKind::Endpoint, "10.0.0.2:443").await;
        sight(&managed, SightingKind::Connector, "vendor: www").await;
        sight(&stray, SightingKind::Endpoint, "10.0.0.4:443").await;
        sight(&other_ca, SightingKind::Endpoint, "10.0.0.5:443").await;

        let (lonely, rest) = store.held_not_deployed("ca:vendor").await.unwrap();
        assert_eq!(lonely, vec![held_only.cert.fingerprint.clone()]);
        assert_eq!(rest.len(), 2);
        assert!(
            store
                .held_not_deployed("ca:none")
                .await
                .unwrap()
                .0
                .is_empty()
        );
        // Issued by the account's CA, deployed, held by no account; one
        // from a CA no account uses is none of this check's business.
        assert_eq!(
            store.unmanaged_account().await.unwrap(),
            vec![stray.cert.fingerprint.clone()]
        );
    }
}
