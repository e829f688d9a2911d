//! The alert ledger: expiry thresholds that fire exactly once.
//!
//! The check is state-based, not edge-based: at every pass it asks which
//! thresholds each certificate has crossed *by now* and raises those the
//! ledger has no row for. So a daemon that was down on the day a threshold
//! was crossed raises it at its next pass (catch-up), a restart raises
//! nothing twice (the rows are there), and a certificate that was renewed
//! (`replaced_by` set), revoked or taken out of management is not a
//! candidate at all; its open alerts are resolved.
//!
//! When several thresholds are crossed at one pass (a certificate first seen
//! with 10 days left, or a daemon down for weeks), each gets its ledger row,
//! but only the tightest raises a message; the others are recorded as
//! `folded` into it. Nobody wants a "30 days left" message next to a "7 days
//! left" one.
//!
//! A first pass (the ledger has never finished one: alerting just turned on
//! over an existing estate, or a bulk import before the first start) is
//! different for the certificates already in the inventory when it began:
//! each gets the one threshold it is in now, not a row for every threshold
//! it crossed before anyone was watching. A million-certificate estate would
//! otherwise write two or three rows per certificate to say nothing.
//! Thresholds looser than one a certificate already has a row for are never
//! recorded later either: the tighter one has spoken.
//!
//! CA certificates that name no host (roots, intermediates) and were never
//! served by an endpoint are not candidates unless `alerts.ca_certificates`
//! is set: a CA bundle holds dozens of roots that expire on their own
//! schedule, and nobody renews them by hand.
//!
//! Escalation: an alert still `open` (not acknowledged, not resolved)
//! `after_days` after it was raised escalates once: `escalated_at` is set in
//! the same transaction as the `alert_escalated` event is written.

use certkeeper_integrations::{Event, EventKind};
use certkeeper_model::event::StoredEvent;
use chrono::DateTime;

use crate::config::alerts::AlertsConfig;
use certkeeper_model::inventory::CertificateRecord;
use certkeeper_store::alerts::{AlertRow, EXPIRED_THRESHOLD};
use certkeeper_store::inventory::ListError;
use certkeeper_store::{Store, StoreError};

const DAY: i64 = 86_400;
const PAGE: usize = 500;

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PassReport {
    /// Ledger rows created.
    pub raised: usize,
    /// Messages (events) raised.
    pub events: usize,
    /// Alerts resolved because their certificate was renewed or retired.
    pub resolved: usize,
    /// Alerts escalated.
    pub escalated: usize,
}

/// The ledger id of a (certificate, threshold) pair.
pub fn alert_id(fingerprint: &str, threshold: u32) -> String {
    format!("{fingerprint}_{threshold}")
}

/// One pass of the ledger at `now` (Unix seconds).
pub async fn pass(
    store: &Store,
    config: &AlertsConfig,
    now: i64,
) -> Result<PassReport, StoreError> {
    pass_until(
        store,
        config,
        now,
        &tokio_util::sync::CancellationToken::new(),
    )
    .await
}

/// [`pass`], stopping between pages once `stop` is cancelled (a shutdown
/// does not wait for a first pass over a large inventory). Every page is
/// committed as it goes, so the next pass carries on where this one
/// stopped.
pub async fn pass_until(
    store: &Store,
    config: &AlertsConfig,
    now: i64,
    stop: &tokio_util::sync::CancellationToken,
) -> Result<PassReport, StoreError> {
    let mut report = PassReport::default();
    let mut thresholds = config.thresholds_days.clone();
    thresholds.sort_unstable();
    thresholds.dedup();
    let widest = i64::from(thresholds.last().copied().unwrap_or(0));
    // Certificates that expired before the widest window are history, not
    // news: a backup file expired in 2019 raises nothing.
    let from = now - widest.max(1) * DAY;
    let horizon = now + widest * DAY;
    let first = !store.ledger_first_pass_done().await?;
    let mut after = (i64::MIN, String::new());
    loop {
        let page = store
            .expiry_candidates(from, horizon, (after.0, &after.1), PAGE)
            .await?;
        let Some(last) = page.last() else { break };
        after = (last.cert.not_after, last.cert.fingerprint.clone());
        let full = page.len() == PAGE;
        let page = if config.ca_certificates {
            page
        } else {
            without_bundled_cas(store, page).await?
        };
        raise_page(store, &thresholds, &page, now, first, &mut report).await?;
        if !full {
            break;
        }
        if stop.is_cancelled() {
            return Ok(report);
        }
    }
    if first {
        store.mark_ledger_first_pass(now).await?;
    }
    report.resolved = resolve_finished(store, now).await?;
    if let Some(escalation) = &config.escalation {
        report.escalated = escalate(store, escalation.after_days, now).await?;
    }
    Ok(report)
}

/// `page` without the roots and intermediates of CA bundles (on disk, or
/// imported whole like `ca-certificates.crt`), which nobody renews (see
/// `alerts.ca_certificates`): CA certificates that name no host (no DNS or
/// IP name, a subject CN that is not a DNS name) and were never seen at an
/// endpoint or issued through a connector. A CA certificate a server sends
/// in its chain still alerts, and so does a self-signed server certificate
/// (`openssl req -x509` marks those CA:TRUE; they name their host).
async fn without_bundled_cas(
    store: &Store,
    page: Vec<CertificateRecord>,
) -> Result<Vec<CertificateRecord>, StoreError> {
    let cas: Vec<&str> = page
        .iter()
        .filter(|c| bundled_kind(c))
        .map(|c| c.cert.fingerprint.as_str())
        .collect();
    if cas.is_empty() {
        return Ok(page);
    }
    let served = store.served_or_issued(&cas).await?;
    Ok(page
        .into_iter()
        .filter(|c| !bundled_kind(c) || served.contains(&c.cert.fingerprint))
        .collect())
}

/// A CA certificate that names no host: what CA bundles hold.
fn bundled_kind(c: &CertificateRecord) -> bool {
    let names_a_host = !c.cert.san_dns.is_empty()
        || !c.cert.san_ip.is_empty()
        || c.cert.subject_cn.as_deref().is_some_and(is_dns_name);
    c.cert.is_ca && !names_a_host
}

/// Whether `cn` is written like a DNS name (`www.example.com`,
/// `*.example.com`): labels of letters, digits and hyphens, at least two.
fn is_dns_name(cn: &str) -> bool {
    let cn = cn.strip_prefix("*.").unwrap_or(cn);
    let labels: Vec<&str> = cn.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

async fn raise_page(
    store: &Store,
    thresholds: &[u32],
    page: &[CertificateRecord],
    now: i64,
    first: bool,
    report: &mut PassReport,
) -> Result<(), StoreError> {
    let fps: Vec<String> = page.iter().map(|c| c.cert.fingerprint.clone()).collect();
    // Every row a certificate of the page could have, read by id.
    let ids: Vec<String> = fps
        .iter()
        .flat_map(|fp| {
            thresholds
                .iter()
                .chain(std::iter::once(&EXPIRED_THRESHOLD))
                .map(move |&t| alert_id(fp, t))
        })
        .collect();
    let known: std::collections::HashSet<String> = store
        .alerts_with_ids(&ids)
        .await?
        .into_iter()
        .map(|a| a.id)
        .collect();
    let mut places = store.locations_of(&fps).await?;
    let mut alerts = Vec::new();
    let mut events = Vec::new();
    for cert in page {
        let seen_at = places.remove(&cert.cert.fingerprint).unwrap_or_default();
        let backlog = first && cert.first_seen < now;
        let (new, event) = due(cert, thresholds, now, &known, seen_at, backlog);
        if let Some(event) = event {
            events.push(event);
        }
        alerts.extend(new);
    }
    if alerts.is_empty() {
        return Ok(());
    }
    match store.raise_alerts(&alerts, &events).await {
        Ok(()) => {}
        // Another daemon on the same store raised some of them between our
        // read and our write: the transaction raised nothing, so go one
        // certificate at a time and skip what exists.
        Err(e) if e.to_string().contains("already exists") => {
            for cert in page {
                let known: std::collections::HashSet<String> = store
                    .alerts_of(std::slice::from_ref(&cert.cert.fingerprint))
                    .await?
                    .into_iter()
                    .map(|a| a.id)
                    .collect();
                let backlog = first && cert.first_seen < now;
                let (new, event) = due(cert, thresholds, now, &known, Vec::new(), backlog);
                if new.is_empty() {
                    continue;
                }
                if let Err(e) = store.raise_alerts(&new, event.as_slice()).await
                    && !e.to_string().contains("already exists")
                {
                    return Err(e);
                }
            }
            return Ok(());
        }
        Err(e) => return Err(e),
    }
    report.raised += alerts.len();
    report.events += events.len();
    Ok(())
}

/// The ledger rows `cert` needs at `now` and the one event they raise.
/// A `backlog` certificate (in the inventory before the ledger's first pass
/// began) gets only the threshold it is in now.
fn due(
    cert: &CertificateRecord,
    thresholds: &[u32],
    now: i64,
    known: &std::collections::HashSet<String>,
    seen_at: Vec<String>,
    backlog: bool,
) -> (Vec<AlertRow>, Option<StoredEvent>) {
    let left = cert.cert.not_after - now;
    let mut crossed: Vec<u32> = if left <= 0 {
        vec![EXPIRED_THRESHOLD]
    } else {
        thresholds
            .iter()
            .copied()
            .filter(|&t| left <= i64::from(t) * DAY)
            .collect()
    };
    if backlog {
        crossed = crossed.into_iter().min().into_iter().collect();
    }
    let fp = &cert.cert.fingerprint;
    let tightest_known = thresholds
        .iter()
        .chain(std::iter::once(&EXPIRED_THRESHOLD))
        .filter(|&&t| known.contains(&alert_id(fp, t)))
        .min()
        .copied();
    // A threshold looser than one already recorded has nothing to add (the
    // tighter one spoke): it is not recorded, so a first pass that recorded
    // only the current threshold is not followed by rows for the others.
    let new: Vec<u32> = crossed
        .into_iter()
        .filter(|&t| !known.contains(&alert_id(fp, t)))
        .filter(|&t| tightest_known.is_none_or(|k| t < k))
        .collect();
    // The tightest new threshold speaks; the others fold into it.
    let speaker = new
        .iter()
        .copied()
        .min()
        .filter(|&t| tightest_known.is_none_or(|k| t < k));
    let days_left = left.div_euclid(DAY);
    let rows: Vec<AlertRow> = new
        .iter()
        .map(|&t| AlertRow {
            id: alert_id(fp, t),
            fingerprint: fp.clone(),
            subject: cert.cert.subject.clone(),
            threshold: t,
            raised_at: now,
            not_after: cert.cert.not_after,
            state: "open".into(),
            folded: Some(t) != speaker,
            event: (Some(t) == speaker).then(|| event_id(fp, t)),
            acked_by: None,
            acked_at: None,
            escalated_at: None,
            resolved_at: None,
        })
        .collect();
    let event = speaker.map(|t| {
        let kind = if t == EXPIRED_THRESHOLD {
            EventKind::CertificateExpired
        } else {
            EventKind::CertificateExpiring {
                threshold_days: t,
                days_left,
            }
        };
        let event = Event {
            id: event_id(fp, t),
            at: DateTime::from_timestamp(now, 0).unwrap_or_default(),
            kind,
            certificate: Some(cert.summary(seen_at)),
        };
        StoredEvent::from(&event)
    });
    (rows, event)
}

fn event_id(fingerprint: &str, threshold: u32) -> String {
    format!("expiry:{fingerprint}:{threshold}")
}

/// Resolves the open and acknowledged alerts of certificates renewed,
/// revoked or taken out of management. Each state is walked a page at a time
/// off the ledger's `(state, raised_at)` index.
async fn resolve_finished(store: &Store, now: i64) -> Result<usize, StoreError> {
    let mut resolved = 0;
    for state in ["open", "acknowledged"] {
        let mut cursor: Option<String> = None;
        loop {
            let page = store
                .list_alerts(Some(state), PAGE, cursor.as_deref())
                .await
                .map_err(|e| match e {
                    ListError::Store(e) => e,
                    ListError::Cursor(e) => StoreError::Engine(format!("alert ledger page: {e}")),
                })?;
            let mut fps: Vec<String> = page.items.iter().map(|a| a.fingerprint.clone()).collect();
            fps.sort_unstable();
            fps.dedup();
            let finished = store.finished_certificates(&fps).await?;
            if !finished.is_empty() {
                resolved += page
                    .items
                    .iter()
                    .filter(|a| finished.contains(&a.fingerprint))
                    .count();
                store.resolve_alerts(&finished, now).await?;
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
    Ok(resolved)
}

async fn escalate(store: &Store, after_days: u32, now: i64) -> Result<usize, StoreError> {
    let cutoff = now - i64::from(after_days) * DAY;
    let due = store.alerts_to_escalate(cutoff).await?;
    let mut escalated = 0;
    for alert in due {
        let Some((cert, sightings)) = store.certificate(&alert.fingerprint).await? else {
            continue;
        };
        let seen_at = sightings.into_iter().map(|s| s.location).collect();
        let event = Event {
            id: format!("escalation:{}", alert.id),
            at: DateTime::from_timestamp(now, 0).unwrap_or_default(),
            kind: EventKind::AlertEscalated {
                alert: alert.id.clone(),
                threshold_days: alert.threshold,
                days_left: (alert.not_after - now).div_euclid(DAY),
                unacknowledged_days: u32::try_from((now - alert.raised_at) / DAY).unwrap_or(0),
            },
            certificate: Some(cert.summary(seen_at)),
        };
        store
            .escalate_alert(&alert.id, now, &StoredEvent::from(&event))
            .await?;
        escalated += 1;
    }
    Ok(escalated)
}
