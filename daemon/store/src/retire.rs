//! Retiring certificates Certkeeper did not issue.
//!
//! A discovered certificate stays in the inventory after its server is
//! decommissioned or its file deleted; it would go on raising expiry alerts
//! for nothing. Three ways out:
//! - an administrator **deactivates** it ([`Store::deactivate`]): status
//!   `deactivated`, with who, when and why; alerts stop (the ledger treats it
//!   as finished). [`Store::reactivate`] undoes it, the status then follows
//!   the clock again;
//! - a certificate that discovery has **stopped seeing** becomes a candidate
//!   ([`Store::deactivation_candidates`]): every place it was seen is a
//!   sighting of a discovery source, and each of those sources has run a
//!   given number of times since (a sighting's `last_seen` is older than the
//!   start of that source's N-th newest successful run). A certificate seen
//!   by an upload or an import has no scans to miss it and is never one;
//! - a certificate **superseded** on an endpoint by a newer one with the same
//!   names (an ACME client renewing outside Certkeeper) is linked as replaced
//!   ([`Store::supersede_at`]), which ends its alerts the way a renewal does.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

pub use certkeeper_model::inventory::Deactivation;
use serde_json::json;

use super::{Store, StoreError, take_returned, with_conflict_retry};
use certkeeper_model::inventory::{CertificateRecord, Status};

/// A certificate discovery has stopped seeing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Candidate {
    /// Its fingerprint.
    pub fingerprint: String,
    /// Its subject.
    pub subject: String,
    /// Its owning unit, for scope.
    pub org_unit: Option<String>,
    /// Its contacts, for scope.
    pub contacts: Vec<String>,
    /// When it was last seen anywhere (Unix seconds).
    pub last_seen: i64,
    /// Each place it was seen: (source, location, last seen there).
    pub places: Vec<(String, String, i64)>,
}

impl Store {
    /// Retires `fingerprint`: status `deactivated`, recorded with who and
    /// why. Returns the status it had, or `None` for an unknown certificate.
    /// Deactivating a deactivated certificate changes nothing.
    pub async fn deactivate(
        &self,
        fingerprint: &str,
        by: &str,
        reason: Option<&str>,
        now: i64,
    ) -> Result<Option<Status>, StoreError> {
        let vars = json!({
            "fp": fingerprint,
            "to": Status::Deactivated,
            "record": { "at": now, "by": by, "reason": reason },
        });
        let before: Vec<Option<Status>> = with_conflict_retry(|| async {
            let mut response = self
                .run(
                    "BEGIN TRANSACTION;
                     LET $id = type::record('certificate', $fp);
                     LET $from = (SELECT VALUE status FROM $id)[0];
                     IF $from != NONE AND $from != $to {
                         UPDATE $id SET status = $to, deactivated = $record RETURN NONE;
                         UPSERT type::record('status_count', $from) SET n = (n ?? 0) - 1 RETURN NONE;
                         UPSERT type::record('status_count', $to) SET n = (n ?? 0) + 1 RETURN NONE;
                     };
                     RETURN [$from];
                     COMMIT TRANSACTION;",
                    vars.clone(),
                )
                .await?;
            take_returned(&mut response)
        })
        .await?;
        Ok(before.into_iter().next().flatten())
    }

    /// Undoes [`deactivate`](Self::deactivate): the status follows the clock
    /// again (`valid`, `expiring` or `expired` at `now`). Returns the status
    /// it now has, or `None` when the certificate is unknown or was not
    /// deactivated.
    pub async fn reactivate(
        &self,
        fingerprint: &str,
        now: i64,
        expiring_days: u32,
    ) -> Result<Option<Status>, StoreError> {
        let Some(record) = self.certificate_record(fingerprint).await? else {
            return Ok(None);
        };
        if record.status != Status::Deactivated {
            return Ok(None);
        }
        let to = Status::by_time(record.cert.not_after, now, expiring_days);
        let vars = json!({ "fp": fingerprint, "from": Status::Deactivated, "to": to });
        with_conflict_retry(|| {
            self.run(
                "BEGIN TRANSACTION;
                 LET $id = type::record('certificate', $fp);
                 IF (SELECT VALUE status FROM $id)[0] = $from {
                     UPDATE $id SET status = $to, deactivated = NONE RETURN NONE;
                     UPSERT type::record('status_count', $from) SET n = (n ?? 0) - 1 RETURN NONE;
                     UPSERT type::record('status_count', $to) SET n = (n ?? 0) + 1 RETURN NONE;
                 };
                 COMMIT TRANSACTION;",
                vars.clone(),
            )
        })
        .await?;
        Ok(Some(to))
    }

    /// Who deactivated `fingerprint`, if it is deactivated.
    pub async fn deactivation(
        &self,
        fingerprint: &str,
    ) -> Result<Option<Deactivation>, StoreError> {
        let rows: Vec<Option<Deactivation>> = self
            .rows(
                "SELECT VALUE deactivated FROM type::record('certificate', $fp)",
                json!({ "fp": fingerprint }),
                0,
            )
            .await?;
        Ok(rows.into_iter().next().flatten())
    }

    /// The certificate row without its sightings.
    async fn certificate_record(
        &self,
        fingerprint: &str,
    ) -> Result<Option<CertificateRecord>, StoreError> {
        let rows: Vec<CertificateRecord> = self
            .rows(
                "SELECT * OMIT id, search FROM type::record('certificate', $fp)",
                json!({ "fp": fingerprint }),
                0,
            )
            .await?;
        Ok(rows.into_iter().next())
    }

    /// Certificates discovery has stopped seeing. `cutoffs` gives, per
    /// discovery source, the start of its N-th newest successful run (a
    /// source that has not run N times yet is left out, and its sightings
    /// keep their certificates off the list). In force only: revoked,
    /// deactivated and replaced certificates are not listed. Oldest last
    /// seen first, at most `limit`.
    pub async fn deactivation_candidates(
        &self,
        cutoffs: &BTreeMap<String, i64>,
        limit: usize,
    ) -> Result<Vec<Candidate>, StoreError> {
        let Some(latest_cutoff) = cutoffs.values().copied().max() else {
            return Ok(Vec::new());
        };
        #[derive(Deserialize)]
        struct Row {
            fingerprint: String,
            subject: String,
            org_unit: Option<String>,
            contacts: Vec<String>,
            last_seen: i64,
        }
        #[derive(Deserialize)]
        struct Seen {
            fingerprint: String,
            source: Option<String>,
            location: String,
            last_seen: i64,
        }
        // Seen nowhere since the latest cutoff is necessary, not enough:
        // each sighting is then held to its own source's cutoff.
        let rows: Vec<Row> = self
            .rows(
                "SELECT fingerprint, subject, org_unit, contacts, last_seen FROM certificate
                 WHERE last_seen < $cutoff AND replaced_by = NONE
                   AND status IN ['valid', 'expiring', 'expired']
                 ORDER BY last_seen, fingerprint",
                json!({ "cutoff": latest_cutoff }),
                0,
            )
            .await?;
        let mut out = Vec::new();
        for chunk in rows.chunks(500) {
            let fps: Vec<&str> = chunk.iter().map(|r| r.fingerprint.as_str()).collect();
            let seen: Vec<Seen> = self
                .rows(
                    "SELECT fingerprint, source, location, last_seen FROM sighting WHERE fingerprint IN $fps",
                    json!({ "fps": fps }),
                    0,
                )
                .await?;
            let mut by_fp: HashMap<&str, Vec<&Seen>> = HashMap::new();
            for s in &seen {
                by_fp.entry(s.fingerprint.as_str()).or_default().push(s);
            }
            for row in chunk {
                let places = by_fp.remove(row.fingerprint.as_str()).unwrap_or_default();
                let missed = |s: &&Seen| {
                    s.source
                        .as_ref()
                        .and_then(|src| cutoffs.get(src))
                        .is_some_and(|&cutoff| s.last_seen < cutoff)
                };
                if places.is_empty() || !places.iter().all(missed) {
                    continue;
                }
                out.push(Candidate {
                    fingerprint: row.fingerprint.clone(),
                    subject: row.subject.clone(),
                    org_unit: row.org_unit.clone(),
                    contacts: row.contacts.clone(),
                    last_seen: row.last_seen,
                    places: places
                        .iter()
                        .map(|s| {
                            (
                                s.source.clone().unwrap_or_default(),
                                s.location.clone(),
                                s.last_seen,
                            )
                        })
                        .collect(),
                });
                if out.len() >= limit {
                    return Ok(out);
                }
            }
        }
        Ok(out)
    }

    /// `leaf` was just seen (at `now`) at the endpoint `location`: every
    /// other leaf seen there before (and not at `now`), in force, not yet
    /// replaced, valid from earlier and with exactly the same DNS and IP
    /// names is linked as replaced by it. Returns the fingerprints linked.
    ///
    /// A load balancer whose backends serve the old and the new certificate
    /// in turn would link the old one as soon as a scan meets the new one;
    /// the old one then no longer alerts although a backend still serves it.
    /// Its endpoint findings (`expiring`, `expired`) still report it.
    pub async fn supersede_at(
        &self,
        location: &str,
        leaf: &CertificateRecord,
        now: i64,
    ) -> Result<Vec<String>, StoreError> {
        if leaf.cert.is_ca {
            return Ok(Vec::new());
        }
        #[derive(Deserialize)]
        struct Row {
            fingerprint: String,
            not_before: i64,
            san_dns: Vec<String>,
            san_ip: Vec<String>,
            is_ca: bool,
        }
        let rows: Vec<Row> = self
            .rows(
                "SELECT fingerprint, not_before, san_dns, san_ip, is_ca FROM certificate
                 WHERE fingerprint IN (SELECT VALUE fingerprint FROM sighting
                                       WHERE location = $location AND kind = 'endpoint'
                                         AND last_seen < $now)
                   AND fingerprint != $fp AND replaced_by = NONE
                   AND status IN ['valid', 'expiring', 'expired']",
                json!({ "location": location, "fp": leaf.cert.fingerprint, "now": now }),
                0,
            )
            .await?;
        let names = |dns: &[String], ip: &[String]| {
            let mut n: Vec<String> = dns
                .iter()
                .map(|d| d.to_ascii_lowercase())
                .chain(ip.iter().cloned())
                .collect();
            n.sort();
            n.dedup();
            n
        };
        let wanted = names(&leaf.cert.san_dns, &leaf.cert.san_ip);
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let mut linked = Vec::new();
        for row in rows {
            if row.is_ca
                || row.not_before >= leaf.cert.not_before
                || names(&row.san_dns, &row.san_ip) != wanted
            {
                continue;
            }
            self.set_lineage(&row.fingerprint, &leaf.cert.fingerprint)
                .await?;
            linked.push(row.fingerprint);
        }
        Ok(linked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use certkeeper_model::inventory::SightingKind;
    use certkeeper_model::inventory::parse::parse_der;
    use openssl::asn1::Asn1Time;
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::x509::extension::SubjectAlternativeName;
    use openssl::x509::{X509Builder, X509NameBuilder};

    const NOW: i64 = 1_790_000_000;
    const DAY: i64 = 86_400;

    fn leaf(name: &str, not_before: i64) -> CertificateRecord {
        let key = PKey::ec_gen("prime256v1").unwrap();
        let mut subject = X509NameBuilder::new().unwrap();
        subject.append_entry_by_text("CN", name).unwrap();
        let subject = subject.build();
        let mut b = X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(&subject).unwrap();
        b.set_issuer_name(&subject).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::from_unix(not_before).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::from_unix(not_before + 90 * DAY).unwrap())
            .unwrap();
        let san = SubjectAlternativeName::new()
            .dns(name)
            .build(&b.x509v3_context(None, None))
            .unwrap();
        b.append_extension(san).unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        let parsed = parse_der(&b.build().to_der().unwrap()).unwrap();
        CertificateRecord::discovered(parsed, NOW, 30)
    }

    #[tokio::test]
    async fn deactivated_certificates_leave_the_counts_and_come_back() {
        let store = Store::memory().await.unwrap();
        let cert = leaf("old.example.test", NOW - 10 * DAY);
        let fp = cert.cert.fingerprint.clone();
        store
            .record_certificates(&[cert], SightingKind::Import, "upload", NOW)
            .await
            .unwrap();
        let before = store
            .deactivate(&fp, "alice", Some("server gone"), NOW)
            .await;
        assert_eq!(before.unwrap(), Some(Status::Valid));
        let counts = store.counts_by_status().await.unwrap();
        assert_eq!(
            (counts[&Status::Valid], counts[&Status::Deactivated]),
            (0, 1)
        );
        let who = store.deactivation(&fp).await.unwrap().unwrap();
        assert_eq!(
            (who.by.as_str(), who.reason.as_deref()),
            ("alice", Some("server gone"))
        );
        // Twice is once.
        store.deactivate(&fp, "bob", None, NOW).await.unwrap();
        assert_eq!(store.deactivation(&fp).await.unwrap().unwrap().by, "alice");
        assert_eq!(
            store.reactivate(&fp, NOW, 30).await.unwrap(),
            Some(Status::Valid)
        );
        let counts = store.counts_by_status().await.unwrap();
        assert_eq!(
            (counts[&Status::Valid], counts[&Status::Deactivated]),
            (1, 0)
        );
        assert_eq!(store.deactivation(&fp).await.unwrap(), None);
        assert_eq!(
            store.deactivate("00", "alice", None, NOW).await.unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn only_certificates_every_source_stopped_seeing_are_candidates() {
        let store = Store::memory().await.unwrap();
        let early = NOW - 5 * DAY;
        let seen_early = |mut c: CertificateRecord| {
            (c.first_seen, c.last_seen) = (early, early);
            c
        };
        let gone = seen_early(leaf("gone.example.test", NOW - 10 * DAY));
        let moved = seen_early(leaf("moved.example.test", NOW - 10 * DAY));
        let uploaded = seen_early(leaf("uploaded.example.test", NOW - 10 * DAY));
        for (cert, source, location) in [
            (&gone, "scan", "10.0.0.1:443"),
            (&moved, "scan", "10.0.0.2:443"),
            (&moved, "files", "/etc/ssl/moved.pem"),
        ] {
            store
                .record_certificates_from(
                    std::slice::from_ref(cert),
                    SightingKind::Endpoint,
                    location,
                    Some(source),
                    early,
                )
                .await
                .unwrap();
        }
        store
            .record_certificates(
                std::slice::from_ref(&uploaded),
                SightingKind::Import,
                "upload",
                early,
            )
            .await
            .unwrap();
        // The scan ran three times since; the file source has not, and
        // still sees `moved` now.
        let cutoffs = BTreeMap::from([("scan".to_owned(), early + DAY)]);
        let found = store.deactivation_candidates(&cutoffs, 100).await.unwrap();
        let fps: Vec<&str> = found.iter().map(|c| c.fingerprint.as_str()).collect();
        assert_eq!(fps, [gone.cert.fingerprint.as_str()], "{found:?}");
        assert_eq!(found[0].places[0].1, "10.0.0.1:443");
        let both = BTreeMap::from([
            ("scan".to_owned(), early + DAY),
            ("files".to_owned(), early + DAY),
        ]);
        let found = store.deactivation_candidates(&both, 100).await.unwrap();
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            !found
                .iter()
                .any(|c| c.fingerprint == uploaded.cert.fingerprint)
        );
    }

    #[tokio::test]
    async fn a_newer_certificate_with_the_same_names_supersedes_the_old_one() {
        let store = Store::memory().await.unwrap();
        let old = leaf("www.example.test", NOW - 60 * DAY);
        let new = leaf("www.example.test", NOW - DAY);
        let other = leaf("api.example.test", NOW - 60 * DAY);
        for (cert, at) in [(&old, NOW - DAY), (&other, NOW - DAY), (&new, NOW)] {
            store
                .record_certificates(
                    std::slice::from_ref(cert),
                    SightingKind::Endpoint,
                    "10.0.0.1:443",
                    at,
                )
                .await
                .unwrap();
        }
        let linked = store.supersede_at("10.0.0.1:443", &new, NOW).await.unwrap();
        assert_eq!(linked, std::slice::from_ref(&old.cert.fingerprint));
        // The old one does not supersede the new one back.
        let back = store.supersede_at("10.0.0.1:443", &old, NOW + DAY).await;
        assert!(back.unwrap().is_empty());
    }
}
