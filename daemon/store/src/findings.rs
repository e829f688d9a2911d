//! Installation-check findings, per place a certificate was seen.
//!
//! A scan of a place replaces that place's findings in one transaction:
//! findings that no longer apply disappear, those that still apply keep
//! their `first_seen`. Rows are `finding:[location, code]`.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Store, StoreError, take_returned, with_conflict_retry};
use certkeeper_model::discovery::{Finding, FindingCode};

/// A finding as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredFinding {
    /// The certificate (the leaf of what the place presented).
    pub fingerprint: String,
    /// Where (same text as the sighting's location).
    pub location: String,
    /// What is wrong.
    pub code: FindingCode,
    /// Days left or since expiry, where relevant.
    pub days: Option<i64>,
    /// Explanation.
    pub detail: Option<String>,
    /// First scan that found it (Unix seconds).
    pub first_seen: i64,
    /// Last scan that found it (Unix seconds).
    pub last_seen: i64,
}

/// A certificate with everything known about where it is: what the API's
/// `/certificates/{fingerprint}` and `certkeeper certificates show` give.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CertificateDetail {
    /// The certificate.
    pub certificate: certkeeper_model::inventory::CertificateRecord,
    /// Every place it was seen.
    pub sightings: Vec<certkeeper_model::inventory::Sighting>,
    /// Installation-check findings where it is served or stored.
    #[serde(default)]
    pub findings: Vec<StoredFinding>,
}

impl Store {
    /// A certificate, its sightings and its findings.
    pub async fn certificate_detail(
        &self,
        fingerprint: &str,
    ) -> Result<Option<CertificateDetail>, StoreError> {
        let Some((certificate, sightings)) = self.certificate(fingerprint).await? else {
            return Ok(None);
        };
        let findings = self.findings(Some(fingerprint), None, 1000).await?;
        Ok(Some(CertificateDetail {
            certificate,
            sightings,
            findings,
        }))
    }

    /// Replaces the findings of `location` with `findings` about `fingerprint`.
    pub async fn record_findings(
        &self,
        location: &str,
        fingerprint: &str,
        findings: &[Finding],
        now: i64,
    ) -> Result<(), StoreError> {
        self.record_findings_new(location, fingerprint, findings, now)
            .await
            .map(|_| ())
    }

    /// Like [`Store::record_findings`], returning the codes that are new at
    /// this place (not raised by its previous scan).
    pub async fn record_findings_new(
        &self,
        location: &str,
        fingerprint: &str,
        findings: &[Finding],
        now: i64,
    ) -> Result<Vec<FindingCode>, StoreError> {
        let rows: Vec<serde_json::Value> = findings
            .iter()
            .map(|f| json!({ "code": f.code, "days": f.days, "detail": f.detail }))
            .collect();
        let vars =
            json!({ "location": location, "fingerprint": fingerprint, "rows": rows, "now": now });
        let new: Vec<Vec<FindingCode>> = with_conflict_retry(|| async {
            let mut response = self.run(REPLACE, vars.clone()).await?;
            take_returned(&mut response)
        })
        .await?;
        Ok(new.into_iter().flatten().collect())
    }

    /// Names seen on endpoints: `(address, name)` for every endpoint sighting
    /// made with SNI, so a rescan of an address tries the names it served.
    pub async fn endpoint_names(&self) -> Result<Vec<(std::net::SocketAddr, String)>, StoreError> {
        let locations: Vec<String> = self
            .rows(
                "SELECT VALUE location FROM sighting WHERE kind = 'endpoint' AND string::ends_with(location, ')')",
                json!({}),
                0,
            )
            .await?;
        let mut names: Vec<(std::net::SocketAddr, String)> = locations
            .iter()
            .filter_map(|l| {
                let (addr, name) = l.strip_suffix(')')?.split_once(" (")?;
                Some((addr.parse().ok()?, name.to_string()))
            })
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Findings, optionally of one certificate and/or one code, newest first.
    pub async fn findings(
        &self,
        fingerprint: Option<&str>,
        code: Option<FindingCode>,
        limit: usize,
    ) -> Result<Vec<StoredFinding>, StoreError> {
        let mut conditions = Vec::new();
        if fingerprint.is_some() {
            conditions.push("fingerprint = $fingerprint");
        }
        if code.is_some() {
            conditions.push("code = $code");
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        self.rows(
            &format!("SELECT * OMIT id FROM finding {filter} ORDER BY last_seen DESC LIMIT $limit"),
            json!({ "fingerprint": fingerprint, "code": code, "limit": limit }),
            0,
        )
        .await
    }
}

const REPLACE: &str = r#"
BEGIN TRANSACTION;
LET $old = (SELECT code, first_seen FROM finding WHERE location = $location);
DELETE finding WHERE location = $location;
FOR $f IN $rows {
    CREATE type::record('finding', [$location, $f.code]) CONTENT {
        fingerprint: $fingerprint, location: $location, code: $f.code,
        days: $f.days, detail: $f.detail,
        first_seen: ($old[WHERE code = $f.code].first_seen)[0] ?? $now,
        last_seen: $now
    } RETURN NONE;
};
RETURN [$rows.filter(|$f| $f.code NOT IN $old.code).map(|$f| $f.code)];
COMMIT TRANSACTION;
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn endpoint_names_come_from_sni_sightings() {
        use certkeeper_model::inventory::{CertificateRecord, SightingKind};
        let store = Store::memory().await.unwrap();
        let cert = crate::inventory::tests::synthetic(1, 2_000_000_000);
        let record = vec![CertificateRecord::discovered(cert, 100, 30)];
        for (kind, location) in [
            (SightingKind::Endpoint, "10.0.0.1:443 (shop.test)"),
            (SightingKind::Endpoint, "10.0.0.1:443"),
            (SightingKind::Endpoint, "[::1]:8443 (v6.test)"),
            (SightingKind::File, "/etc/ssl/a (copy).pem"),
        ] {
            store
                .record_certificates(&record, kind, location, 100)
                .await
                .unwrap();
        }
        let names = store.endpoint_names().await.unwrap();
        assert_eq!(
            names,
            vec![
                ("10.0.0.1:443".parse().unwrap(), "shop.test".to_string()),
                ("[::1]:8443".parse().unwrap(), "v6.test".to_string()),
            ]
        );
    }

    #[tokio::test]
    async fn a_rescan_replaces_a_places_findings() {
        let store = Store::memory().await.unwrap();
        let weak = Finding {
            detail: Some("RSA 1024 bits".into()),
            ..Finding::new(FindingCode::WeakKey)
        };
        let expiring = Finding {
            days: Some(9),
            ..Finding::new(FindingCode::Expiring)
        };
        store
            .record_findings("10.0.0.1:443", "aa", &[weak.clone(), expiring], 100)
            .await
            .unwrap();
        store
            .record_findings("10.0.0.2:443", "aa", std::slice::from_ref(&weak), 100)
            .await
            .unwrap();
        assert_eq!(store.findings(Some("aa"), None, 10).await.unwrap().len(), 3);
        // The expiring certificate was renewed: only the weak key remains, first seen kept.
        store
            .record_findings("10.0.0.1:443", "aa", &[weak], 200)
            .await
            .unwrap();
        let at_one: Vec<StoredFinding> = store
            .findings(Some("aa"), Some(FindingCode::WeakKey), 10)
            .await
            .unwrap()
            .into_iter()
            .filter(|f| f.location == "10.0.0.1:443")
            .collect();
        assert_eq!(at_one.len(), 1);
        assert_eq!((at_one[0].first_seen, at_one[0].last_seen), (100, 200));
        assert!(
            store
                .findings(None, Some(FindingCode::Expiring), 10)
                .await
                .unwrap()
                .is_empty()
        );
    }
}
