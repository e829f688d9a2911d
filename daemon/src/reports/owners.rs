//! The reports that group certificates by time or by who owns them:
//! `history` (issued, renewed, revoked and expired per month over a
//! period), `org-units` (each unit with its administrators, certificates by
//! status and requests) and `findings` (discovery findings by owner).
//!
//! Each reads the inventory once, a page at a time, keeping only per-month
//! or per-unit counters, so memory does not grow with the inventory.

use certkeeper_model::request::RequestState;
use std::collections::{BTreeMap, HashMap};

use super::{DAY, Filters, Flush, ReportError, Sink, certificate_filter, date, each_certificate};
use certkeeper_model::admin::Role;
use certkeeper_model::inventory::{CertificateRecord, Status};
use certkeeper_store::Store;

/// The report's certificate filter without its `from`/`to` expiry range
/// (for reports whose date range means something else, or nothing).
fn without_expiry_range(
    filters: &Filters,
    now: i64,
) -> certkeeper_store::inventory::CertificateFilter {
    let mut filter = certificate_filter(filters, now);
    filter.not_after_from = None;
    filter.not_after_to = None;
    filter
}

fn store_err(e: certkeeper_store::StoreError) -> ReportError {
    ReportError::Store(e)
}

/// A finding code's stable name (`weak_key`, `unapproved_issuer`, ...).
fn code_name(code: certkeeper_discovery::FindingCode) -> String {
    serde_json::to_value(code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// `YYYY-MM` of a Unix time.
fn month(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m").to_string())
        .unwrap_or_default()
}

/// Every month from `from` to `to` (inclusive), as `YYYY-MM`.
fn months(from: i64, to: i64) -> Vec<String> {
    use chrono::Datelike;
    let (Some(start), Some(end)) = (
        chrono::DateTime::from_timestamp(from, 0),
        chrono::DateTime::from_timestamp(to, 0),
    ) else {
        return Vec::new();
    };
    let (mut y, mut m) = (start.year(), start.month());
    let mut out = Vec::new();
    while (y, m) <= (end.year(), end.month()) && out.len() < 600 {
        out.push(format!("{y:04}-{m:02}"));
        if m == 12 {
            y += 1;
            m = 1;
        } else {
            m += 1;
        }
    }
    out
}

#[derive(Default, Clone, Copy)]
struct MonthCounts {
    issued: u64,
    renewed: u64,
    revoked: u64,
    expired: u64,
}

/// `history`: per month between `filters.from` and `filters.to` (default:
/// the last 12 months up to today).
pub async fn history(
    store: &Store,
    filters: &Filters,
    sink: &mut Box<dyn Sink + Send>,
    subtitle: &str,
    now: i64,
    flush: Flush<'_>,
) -> Result<(), ReportError> {
    let to = filters.to.unwrap_or(now);
    let from = filters.from.unwrap_or(to - 365 * DAY);
    sink.start(
        &format!("Certificate history, {} to {}", date(from), date(to)),
        subtitle,
    )?;
    let mut by_month: BTreeMap<String, MonthCounts> = months(from, to)
        .into_iter()
        .map(|m| (m, MonthCounts::default()))
        .collect();
    // The date range is the period here, not an expiry range.
    let filter = without_expiry_range(filters, now);
    each_certificate(
        store,
        filter,
        |c| {
            let issued = c.cert.not_before;
            if (from..to).contains(&issued)
                && let Some(m) = by_month.get_mut(&month(issued))
            {
                m.issued += 1;
                if c.replaces.is_some() {
                    m.renewed += 1;
                }
            }
            let end = c.cert.not_after;
            if (from..to).contains(&end)
                && end <= now
                && let Some(m) = by_month.get_mut(&month(end))
            {
                m.expired += 1;
            }
            Ok(())
        },
        &mut super::no_flush(),
    )
    .await?;
    // Revocations come from the event outbox (their time is not on the
    // certificate); scoped callers count only their certificates'.
    let revocations = store
        .revocations_between(from, to)
        .await
        .map_err(store_err)?;
    let visible: Option<Vec<String>> = match &filters.org_units {
        Some(units) => {
            let fps: Vec<String> = revocations.iter().map(|(_, f)| f.clone()).collect();
            Some(
                store
                    .in_scope(&fps, units, filters.contact.as_deref())
                    .await
                    .map_err(store_err)?,
            )
        }
        None => None,
    };
    for (time, fp) in &revocations {
        if visible.as_ref().is_some_and(|v| !v.contains(fp)) {
            continue;
        }
        if let Some(m) = by_month.get_mut(&month(*time)) {
            m.revoked += 1;
        }
    }
    let total = by_month
        .values()
        .fold(MonthCounts::default(), |a, m| MonthCounts {
            issued: a.issued + m.issued,
            renewed: a.renewed + m.renewed,
            revoked: a.revoked + m.revoked,
            expired: a.expired + m.expired,
        });
    sink.summary(&[
        ("issued".to_owned(), total.issued.to_string()),
        ("renewed".to_owned(), total.renewed.to_string()),
        ("revoked".to_owned(), total.revoked.to_string()),
        ("expired".to_owned(), total.expired.to_string()),
    ])?;
    let bars: Vec<(String, u64)> = by_month
        .iter()
        .map(|(m, c)| (m.clone(), c.issued))
        .collect();
    sink.chart("Issued per month", &bars, true)?;
    let bars: Vec<(String, u64)> = by_month
        .iter()
        .map(|(m, c)| (m.clone(), c.expired))
        .collect();
    sink.chart("Expired per month", &bars, true)?;
    sink.columns(&["month", "issued", "renewed", "revoked", "expired"])?;
    for (m, c) in &by_month {
        sink.row(&[
            m.clone(),
            c.issued.to_string(),
            c.renewed.to_string(),
            c.revoked.to_string(),
            c.expired.to_string(),
        ])?;
    }
    flush().await?;
    Ok(())
}

#[derive(Default)]
struct UnitCounts {
    total: u64,
    by_status: BTreeMap<String, u64>,
    pending: u64,
    approved: u64,
    rejected: u64,
}

/// `org-units`: each org unit with its administrators, its certificates by
/// status and its enrollment requests (an `administrator` filter has
/// already narrowed the units to those that administrator looks after).
pub async fn org_units(
    store: &Store,
    filters: &Filters,
    sink: &mut Box<dyn Sink + Send>,
    subtitle: &str,
    now: i64,
    flush: Flush<'_>,
) -> Result<(), ReportError> {
    sink.start("Certificates by org unit and administrator", subtitle)?;
    let all_units = store.org_units().await.map_err(store_err)?;
    let users = store.users().await.map_err(store_err)?;
    // Department admins look after their units and every unit below them.
    let mut admins: HashMap<String, Vec<String>> = HashMap::new();
    for u in users
        .iter()
        .filter(|u| u.role == Role::DepartmentAdmin && !u.disabled)
    {
        for unit in certkeeper_store::accounts::OrgUnit::descendants(&all_units, &u.units) {
            admins.entry(unit).or_default().push(u.name.clone());
        }
    }
    // `generate` has narrowed `filters.org_units` to the scope and to the
    // administrator's units; the store query keeps to them.
    let keep = |unit: &str| {
        filters
            .org_units
            .as_ref()
            .is_none_or(|s| s.iter().any(|u| u == unit))
    };
    let mut counts: BTreeMap<String, UnitCounts> = all_units
        .iter()
        .filter(|u| keep(&u.name))
        .map(|u| (u.name.clone(), UnitCounts::default()))
        .collect();
    let filter = without_expiry_range(filters, now);
    each_certificate(
        store,
        filter,
        |c: &CertificateRecord| {
            let unit = c.org_unit.clone().unwrap_or_else(|| "(no unit)".into());
            let entry = counts.entry(unit).or_default();
            entry.total += 1;
            *entry.by_status.entry(c.status.to_string()).or_default() += 1;
            Ok(())
        },
        &mut super::no_flush(),
    )
    .await?;
    let requests = store
        .request_counts(filters.org_units.as_deref())
        .await
        .map_err(store_err)?;
    for (unit, state, n) in requests {
        if let Some(entry) = counts.get_mut(&unit) {
            match state {
                RequestState::Pending => entry.pending += n,
                RequestState::Approved => entry.approved += n,
                RequestState::Rejected => entry.rejected += n,
            }
        }
    }
    let total: u64 = counts.values().map(|c| c.total).sum();
    sink.summary(&[
        ("org units".to_owned(), counts.len().to_string()),
        ("certificates".to_owned(), total.to_string()),
    ])?;
    let bars: Vec<(String, u64)> = counts.iter().map(|(u, c)| (u.clone(), c.total)).collect();
    sink.chart("Certificates by org unit", &bars, false)?;
    let status_of = |c: &UnitCounts, s: Status| {
        c.by_status
            .get(&s.to_string())
            .copied()
            .unwrap_or(0)
            .to_string()
    };
    sink.columns(&[
        "org_unit",
        "administrators",
        "certificates",
        "valid",
        "expiring",
        "expired",
        "revoked",
        "requests_pending",
        "requests_approved",
        "requests_rejected",
    ])?;
    for (unit, c) in &counts {
        let mut names = admins.get(unit).cloned().unwrap_or_default();
        names.sort();
        sink.row(&[
            unit.clone(),
            names.join(" "),
            c.total.to_string(),
            status_of(c, Status::Valid),
            status_of(c, Status::Expiring),
            status_of(c, Status::Expired),
            status_of(c, Status::Revoked),
            c.pending.to_string(),
            c.approved.to_string(),
            c.rejected.to_string(),
        ])?;
    }
    flush().await?;
    Ok(())
}

/// Most findings a report lists.
const MAX_FINDINGS: usize = 200_000;

/// `findings`: discovery findings (unapproved issuers, weak keys, bad
/// installations) with the owner of each certificate, by org unit.
pub async fn findings(
    store: &Store,
    filters: &Filters,
    sink: &mut Box<dyn Sink + Send>,
    subtitle: &str,
    flush: Flush<'_>,
) -> Result<(), ReportError> {
    sink.start("Discovery findings by owner", subtitle)?;
    let mut found = store
        .findings(None, None, MAX_FINDINGS)
        .await
        .map_err(store_err)?;
    if let Some(units) = &filters.org_units {
        let fps: Vec<String> = found.iter().map(|f| f.fingerprint.clone()).collect();
        let visible = store
            .in_scope(&fps, units, filters.contact.as_deref())
            .await
            .map_err(store_err)?;
        found.retain(|f| visible.contains(&f.fingerprint));
    }
    // Owners, looked up once per certificate.
    let mut owners: HashMap<String, Option<CertificateRecord>> = HashMap::new();
    for f in &found {
        if !owners.contains_key(&f.fingerprint) {
            let cert = store
                .certificate(&f.fingerprint)
                .await
                .map_err(store_err)?
                .map(|(c, _)| c);
            owners.insert(f.fingerprint.clone(), cert);
        }
    }
    let unit_of = |fp: &str| {
        owners
            .get(fp)
            .and_then(|c| c.as_ref())
            .and_then(|c| c.org_unit.clone())
            .unwrap_or_else(|| "(no unit)".into())
    };
    if let Some(issuer) = &filters.issuer {
        let needle = issuer.to_lowercase();
        found.retain(|f| {
            owners
                .get(&f.fingerprint)
                .and_then(|c| c.as_ref())
                .is_some_and(|c| c.cert.issuer.to_lowercase().contains(&needle))
        });
    }
    found.sort_by(|a, b| {
        unit_of(&a.fingerprint)
            .cmp(&unit_of(&b.fingerprint))
            .then(code_name(a.code).cmp(&code_name(b.code)))
    });
    let mut by_code: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_unit: BTreeMap<String, u64> = BTreeMap::new();
    for f in &found {
        *by_code.entry(code_name(f.code)).or_default() += 1;
        *by_unit.entry(unit_of(&f.fingerprint)).or_default() += 1;
    }
    let mut items = vec![("findings".to_owned(), found.len().to_string())];
    items.extend(by_code.iter().map(|(c, n)| (c.clone(), n.to_string())));
    sink.summary(&items)?;
    let bars: Vec<(String, u64)> = by_unit.into_iter().collect();
    sink.chart("Findings by org unit", &bars, false)?;
    sink.columns(&[
        "org_unit",
        "contacts",
        "finding",
        "location",
        "subject",
        "issuer",
        "detail",
        "last_seen",
        "fingerprint",
    ])?;
    for (i, f) in found.iter().enumerate() {
        let cert = owners.get(&f.fingerprint).and_then(|c| c.as_ref());
        sink.row(&[
            unit_of(&f.fingerprint),
            cert.map(|c| c.contacts.join(" ")).unwrap_or_default(),
            code_name(f.code),
            f.location.clone(),
            cert.map(|c| c.cert.subject.clone()).unwrap_or_default(),
            cert.map(|c| c.cert.issuer.clone()).unwrap_or_default(),
            f.detail.clone().unwrap_or_default(),
            date(f.last_seen),
            f.fingerprint.clone(),
        ])?;
        if i % 1000 == 999 {
            flush().await?;
        }
    }
    flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_cover_the_period_inclusive() {
        // 2025-11-15 to 2026-02-01.
        let m = months(1_763_164_800, 1_769_904_000);
        assert_eq!(m, ["2025-11", "2025-12", "2026-01", "2026-02"]);
        assert_eq!(month(1_769_904_000), "2026-02");
    }
}
