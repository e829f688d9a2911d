//! Delivery: the router turns outbox events into deliveries, one sender
//! loop per channel sends them.
//!
//! - **Nothing is lost.** An event is in the store before anything is sent;
//!   the router creates its deliveries and marks it routed in one
//!   transaction; a delivery is claimed by pushing its `next_attempt` one
//!   lease ahead, and its outcome is written after the send. A SIGKILL at
//!   any point leaves either an unrouted event (routed again) or a due or
//!   leased delivery (sent again once due): at least once, with the event id
//!   as the idempotency or dedup key every channel sends.
//! - **One channel down blocks no other.** Each channel has its own loop,
//!   its own concurrency and its own backoff; a channel that times out only
//!   holds its own slots.
//! - **Retries.** Transient failures back off exponentially
//!   (`backoff_initial_seconds`, doubling, capped at `backoff_max_seconds`,
//!   with jitter) until `give_up_after_hours`; a vendor's `Retry-After` is
//!   honoured; a permanent refusal (bad credentials, bad payload) fails at
//!   once. Every attempt is logged on the delivery.
//! - **Rate limits.** A channel with `[alerts.rate_limits]` sends at most
//!   that many messages per minute; the rest wait their turn.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use certkeeper_integrations::render::kind_name;
use certkeeper_integrations::{ErrorClass, Event, Notifier};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::routing::Router;
use crate::config::alerts::DeliveryConfig;
use certkeeper_store::Store;
use certkeeper_store::alerts::{AttemptLog, AttemptResult, DeliveryRow};

/// How long a claimed delivery is held before it comes due again, at the
/// least; a channel whose send can take longer holds it for that plus
/// [`LEASE_MARGIN_SECONDS`] (see [`lease_seconds`]).
pub const LEASE_SECONDS: i64 = 30;

/// How much longer than a channel's longest send its lease lasts (writing
/// the outcome back, a busy store).
pub const LEASE_MARGIN_SECONDS: i64 = 15;

/// The lease on a delivery to `notifier`: longer than its longest send, so
/// no other sender (another daemon, this one after a restart) picks the
/// delivery up while a send may still be under way, which is what made
/// slow ticket systems open two tickets.
pub fn lease_seconds(notifier: &dyn Notifier) -> i64 {
    let send = i64::try_from(notifier.max_send_time().as_secs()).unwrap_or(i64::MAX / 2);
    LEASE_SECONDS.max(send.saturating_add(LEASE_MARGIN_SECONDS))
}

/// Events routed per transaction.
const ROUTE_BATCH: usize = 500;

/// Outcomes written per transaction.
const WRITE_BATCH: usize = 500;

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Routes outbox events into deliveries until cancelled.
pub async fn route_loop(
    store: Store,
    router: Router,
    wake: Arc<Notify>,
    cancel: CancellationToken,
) {
    loop {
        let routed = match route_pass(&store, &router).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "cannot route events; retrying");
                0
            }
        };
        if routed > 0 {
            wake.notify_waiters();
            if routed == ROUTE_BATCH {
                continue;
            }
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

/// Routes one batch of events; returns how many.
pub async fn route_pass(
    store: &Store,
    router: &Router,
) -> Result<usize, certkeeper_store::StoreError> {
    let events = store.unrouted_events(ROUTE_BATCH).await?;
    if events.is_empty() {
        return Ok(0);
    }
    let now = now();
    let directory = super::contacts::Directory::new(store.contacts().await?, &store.users().await?);
    let mut ids = Vec::with_capacity(events.len());
    let mut rows = Vec::new();
    for stored in events {
        ids.push(stored.id.clone());
        let event: Event = match serde_json::from_value(stored.event.clone()) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(event = %stored.id, error = %e, "event cannot be read; not delivered");
                continue;
            }
        };
        for super::contacts::Resolved { target, person } in
            router.deliveries(&event, now, &directory)
        {
            let id = match &person {
                Some(who) => format!("{}|{}|{who}", stored.id, target.channel),
                None => format!("{}|{}", stored.id, target.channel),
            };
            rows.push(DeliveryRow {
                id,
                event: stored.id.clone(),
                kind: kind_name(&event.kind).to_owned(),
                channel: target.channel,
                recipients: target.recipients,
                state: "pending".into(),
                attempts: 0,
                created: now,
                next_attempt: target.not_before,
                delivered_at: None,
                last_error: None,
                log: Vec::new(),
                payload: stored.event.clone(),
                claim: None,
            });
        }
    }
    if router.digest_over > 0 {
        rows = digest(rows, router.digest_over, now);
    }
    store.route_events(&ids, &rows).await?;
    Ok(ids.len())
}

/// Replaces a channel's (or person's) expiry deliveries with one
/// `expiry_digest` delivery when there are more than `over` of them. The
/// digest's id is made of the first event's, so routing the same batch
/// again (after a crash, before it was recorded) makes the same digest,
/// and the events are marked routed in the transaction that writes it.
fn digest(rows: Vec<DeliveryRow>, over: usize, now: i64) -> Vec<DeliveryRow> {
    const LINES: usize = 100;
    let is_expiry =
        |r: &DeliveryRow| r.kind == "certificate_expiring" || r.kind == "certificate_expired";
    // `event|channel[|person]` → what follows the event id.
    let audience = |r: &DeliveryRow| r.id[r.event.len()..].to_owned();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for row in rows.iter().filter(|r| is_expiry(r)) {
        *counts.entry(audience(row)).or_default() += 1;
    }
    let mut groups: HashMap<String, Vec<DeliveryRow>> = HashMap::new();
    let mut kept = Vec::with_capacity(rows.len());
    for row in rows {
        if is_expiry(&row) && counts.get(&audience(&row)).is_some_and(|n| *n > over) {
            groups.entry(audience(&row)).or_default().push(row);
        } else {
            kept.push(row);
        }
    }
    for (audience, mut group) in groups {
        let mut events: Vec<Event> = group
            .iter()
            .filter_map(|r| serde_json::from_value(r.payload.clone()).ok())
            .collect();
        events.sort_by_key(|e| e.certificate.as_ref().and_then(|c| c.not_after));
        let expired = events
            .iter()
            .filter(|e| {
                matches!(
                    e.kind,
                    certkeeper_integrations::EventKind::CertificateExpired
                )
            })
            .count() as u64;
        let lines = events
            .iter()
            .take(LINES)
            .map(|e| certkeeper_integrations::render::render(e).title)
            .collect();
        group.sort_by(|a, b| a.event.cmp(&b.event));
        let first = group.swap_remove(0);
        let id = format!("digest:{}", first.event);
        let event = Event {
            id: id.clone(),
            at: chrono::DateTime::from_timestamp(now, 0).unwrap_or_default(),
            kind: certkeeper_integrations::EventKind::ExpiryDigest {
                alerts: events.len() as u64,
                expired,
                lines,
            },
            certificate: None,
        };
        kept.push(DeliveryRow {
            id: format!("{id}{audience}"),
            event: id,
            kind: "expiry_digest".into(),
            payload: serde_json::to_value(&event).unwrap_or_default(),
            next_attempt: first.next_attempt.min(
                group
                    .iter()
                    .map(|r| r.next_attempt)
                    .min()
                    .unwrap_or(i64::MAX),
            ),
            ..first
        });
    }
    kept
}

/// Sends every channel's deliveries until cancelled.
pub async fn send_loops(
    store: Store,
    notifiers: HashMap<String, Arc<dyn Notifier>>,
    config: DeliveryConfig,
    rate_limits: HashMap<String, u32>,
    wake: Arc<Notify>,
    cancel: CancellationToken,
) {
    let (tx, rx) = mpsc::channel::<AttemptResult>(4096);
    let writer = tokio::spawn(write_loop(store.clone(), rx));
    let mut loops = Vec::new();
    for (name, notifier) in notifiers {
        loops.push(tokio::spawn(channel_loop(ChannelLoop {
            store: store.clone(),
            rate: rate_limits.get(&name).copied(),
            name,
            notifier,
            config: config.clone(),
            results: tx.clone(),
            wake: wake.clone(),
            cancel: cancel.clone(),
        })));
    }
    drop(tx);
    for l in loops {
        let _ = l.await;
    }
    let _ = writer.await;
}

struct ChannelLoop {
    store: Store,
    name: String,
    notifier: Arc<dyn Notifier>,
    config: DeliveryConfig,
    rate: Option<u32>,
    results: mpsc::Sender<AttemptResult>,
    wake: Arc<Notify>,
    cancel: CancellationToken,
}

async fn channel_loop(ch: ChannelLoop) {
    let limit = ch.config.per_channel_concurrency;
    let in_flight = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(Notify::new());
    let mut window = (now() / 60, 0u32);
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        while tasks.try_join_next().is_some() {}
        let mut free = limit.saturating_sub(in_flight.load(Ordering::Acquire));
        if let Some(rate) = ch.rate {
            let minute = now() / 60;
            if minute != window.0 {
                window = (minute, 0);
            }
            free = free.min(rate.saturating_sub(window.1) as usize);
        }
        let mut claimed = 0;
        if free > 0 {
            let t = now();
            match ch
                .store
                .claim_deliveries(&ch.name, t, t + lease_seconds(ch.notifier.as_ref()), free)
                .await
            {
                Ok(rows) => {
                    claimed = rows.len();
                    window.1 += claimed as u32;
                    for row in rows {
                        in_flight.fetch_add(1, Ordering::AcqRel);
                        let notifier = ch.notifier.clone();
                        let results = ch.results.clone();
                        let config = ch.config.clone();
                        let in_flight = in_flight.clone();
                        let done = done.clone();
                        tasks.spawn(async move {
                            let result = attempt(notifier.as_ref(), &row, &config).await;
                            let _ = results.send(result).await;
                            in_flight.fetch_sub(1, Ordering::AcqRel);
                            done.notify_one();
                        });
                    }
                }
                Err(e) => tracing::warn!(channel = %ch.name, error = %e, "cannot claim deliveries"),
            }
        }
        if claimed > 0 && claimed == free {
            continue;
        }
        tokio::select! {
            () = ch.cancel.cancelled() => break,
            () = ch.wake.notified() => {}
            () = done.notified(), if free == 0 => {}
            () = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
    // Sends in flight finish (they time out on their own); unsent claims
    // come due again after the lease.
    while tasks.join_next().await.is_some() {}
}

/// Sends one delivery and decides what happens next.
async fn attempt(
    notifier: &dyn Notifier,
    row: &DeliveryRow,
    config: &DeliveryConfig,
) -> AttemptResult {
    let started = now();
    let result =
        |state: &'static str, next: i64, outcome: &str, detail: Option<String>| AttemptResult {
            id: row.id.clone(),
            claim: row.claim.clone(),
            state,
            next_attempt: next,
            attempted: true,
            entry: AttemptLog {
                at: started,
                outcome: outcome.to_owned(),
                detail,
            },
        };
    let event: Event = match serde_json::from_value(row.payload.clone()) {
        Ok(e) => e,
        Err(e) => {
            return result(
                "failed",
                started,
                "failed",
                Some(format!("unreadable event: {e}")),
            );
        }
    };
    // A send that outlasts the channel's own budget is given up (and comes
    // due again) before its lease can run out.
    let budget = notifier.max_send_time();
    let sent = match tokio::time::timeout(budget, notifier.send_to(&event, &row.recipients)).await {
        Ok(sent) => sent,
        Err(_) => Err(certkeeper_integrations::NotifyError {
            notifier: notifier.name().to_owned(),
            message: format!("no outcome within {} s; will try again", budget.as_secs()),
            class: ErrorClass::Transient,
        }),
    };
    match sent {
        Ok(()) => result("delivered", started, "delivered", None),
        Err(e) => {
            let finished = now();
            let give_up = row.created + (config.give_up_after_hours as i64) * 3600;
            match e.class {
                ErrorClass::Permanent => result("failed", finished, "failed", Some(e.message)),
                _ if finished >= give_up => result(
                    "failed",
                    finished,
                    "failed",
                    Some(format!(
                        "{} (gave up after {} hours)",
                        e.message, config.give_up_after_hours
                    )),
                ),
                ErrorClass::RetryAfter(delay) => result(
                    "pending",
                    finished + (delay.as_secs().clamp(1, 86_400) as i64),
                    "retry",
                    Some(e.message),
                ),
                ErrorClass::Transient => {
                    let next = finished + backoff(row.attempts, config);
                    result("pending", next, "retry", Some(e.message))
                }
            }
        }
    }
}

/// Seconds before retry number `attempts + 1`: doubling from the initial
/// delay, capped, plus up to one initial delay of jitter so a recovered
/// receiver is not hit by every retry in the same second.
fn backoff(attempts: u32, config: &DeliveryConfig) -> i64 {
    let base = config
        .backoff_initial_seconds
        .saturating_mul(1u64 << attempts.min(30))
        .min(config.backoff_max_seconds);
    let jitter = (uuid::Uuid::new_v4().as_u128() as u64) % config.backoff_initial_seconds.max(1);
    (base + jitter) as i64
}

async fn write_loop(store: Store, mut rx: mpsc::Receiver<AttemptResult>) {
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        // Whatever else is ready goes in the same transaction.
        while batch.len() < WRITE_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let mut tries = 0;
        loop {
            let e = match store.record_attempts(&batch).await {
                Ok(refused) => {
                    for id in refused {
                        tracing::warn!(
                            delivery = %id,
                            "a late delivery outcome was refused: the delivery was claimed again (by this daemon after a stall, or another) since it was sent"
                        );
                    }
                    break;
                }
                Err(e) => e,
            };
            tries += 1;
            tracing::warn!(error = %e, tries, "cannot record delivery outcomes; retrying");
            if tries >= 5 {
                // The deliveries stay leased and are sent again once due.
                break;
            }
            tokio::time::sleep(Duration::from_millis(200 * tries)).await;
        }
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let config = DeliveryConfig {
            backoff_initial_seconds: 2,
            backoff_max_seconds: 60,
            ..DeliveryConfig::default()
        };
        for (attempts, low) in [(0, 2), (1, 4), (2, 8), (3, 16), (10, 60), (40, 60)] {
            let b = backoff(attempts, &config);
            assert!(b >= low && b < low + 2, "attempt {attempts}: {b}");
        }
    }

    /// A channel that answers after `delay`, and says its sends take at
    /// most `budget`.
    struct Slow {
        delay: Duration,
        budget: Duration,
    }

    #[async_trait::async_trait]
    impl Notifier for Slow {
        fn name(&self) -> &str {
            "slow-tickets"
        }
        async fn send(&self, _: &Event) -> Result<(), certkeeper_integrations::NotifyError> {
            tokio::time::sleep(self.delay).await;
            Ok(())
        }
        fn max_send_time(&self) -> Duration {
            self.budget
        }
    }

    fn expiring(event: &str, audience: &str, days_left: i64) -> DeliveryRow {
        let payload = Event {
            id: event.into(),
            at: chrono::DateTime::from_timestamp(0, 0).unwrap_or_default(),
            kind: certkeeper_integrations::EventKind::CertificateExpiring {
                threshold_days: 30,
                days_left,
            },
            certificate: None,
        };
        DeliveryRow {
            id: format!("{event}{audience}"),
            event: event.into(),
            kind: "certificate_expiring".into(),
            payload: serde_json::to_value(&payload).unwrap(),
            ..row()
        }
    }

    #[test]
    fn a_channel_over_the_limit_gets_one_digest_and_the_others_their_messages() {
        let mut rows = Vec::new();
        for i in 0..60 {
            rows.push(expiring(&format!("e{i:02}"), "|chat", 20));
        }
        for i in 0..10 {
            rows.push(expiring(&format!("e{i:02}"), "|mail|alice", 20));
        }
        rows.push(DeliveryRow {
            kind: "renewal_failed".into(),
            ..expiring("r1", "|chat", 0)
        });
        let out = digest(rows.clone(), 50, 1_000);
        let chat: Vec<_> = out.iter().filter(|r| r.id.ends_with("|chat")).collect();
        assert_eq!(chat.len(), 2, "one digest and the renewal failure");
        let digest_row = chat.iter().find(|r| r.kind == "expiry_digest").unwrap();
        assert_eq!(digest_row.id, "digest:e00|chat");
        let event: Event = serde_json::from_value(digest_row.payload.clone()).unwrap();
        match event.kind {
            certkeeper_integrations::EventKind::ExpiryDigest {
                alerts,
                expired,
                lines,
            } => {
                assert_eq!((alerts, expired, lines.len()), (60, 0, 60));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            out.iter().filter(|r| r.id.ends_with("|mail|alice")).count(),
            10
        );
        // The same batch routed again makes the same digest.
        let again = digest(rows, 50, 2_000);
        assert!(again.iter().any(|r| r.id == "digest:e00|chat"));
        // At the limit, no digest.
        let at_limit: Vec<_> = (0..50)
            .map(|i| expiring(&format!("e{i}"), "|chat", 5))
            .collect();
        assert_eq!(digest(at_limit, 50, 0).len(), 50);
    }

    fn row() -> DeliveryRow {
        let event = Event {
            id: "e1".into(),
            at: chrono::DateTime::from_timestamp(0, 0).unwrap_or_default(),
            kind: certkeeper_integrations::EventKind::CertificateExpiring {
                threshold_days: 30,
                days_left: 29,
            },
            certificate: None,
        };
        DeliveryRow {
            id: "e1|slow-tickets".into(),
            event: "e1".into(),
            kind: "certificate_expiring".into(),
            channel: "slow-tickets".into(),
            recipients: Vec::new(),
            state: "pending".into(),
            attempts: 0,
            created: now(),
            next_attempt: now(),
            delivered_at: None,
            last_error: None,
            log: Vec::new(),
            payload: serde_json::to_value(&event).unwrap(),
            claim: None,
        }
    }

    #[test]
    fn a_delivery_is_leased_for_longer_than_its_slowest_send() {
        let slow = Slow {
            delay: Duration::ZERO,
            budget: Duration::from_secs(90),
        };
        assert_eq!(lease_seconds(&slow), 90 + LEASE_MARGIN_SECONDS);
        let quick = Slow {
            delay: Duration::ZERO,
            budget: Duration::from_secs(5),
        };
        assert_eq!(lease_seconds(&quick), LEASE_SECONDS);
    }

    #[tokio::test]
    async fn a_send_that_outlasts_its_budget_is_given_up_before_the_lease_ends() {
        let notifier = Slow {
            delay: Duration::from_secs(600),
            budget: Duration::from_secs(1),
        };
        let started = std::time::Instant::now();
        let result = attempt(&notifier, &row(), &DeliveryConfig::default()).await;
        // Given up at its 1 s budget; the lease (30 s) was far off. The
        // bound is loose on purpose: without the budget this waits 600 s.
        let took = started.elapsed();
        assert!(took < Duration::from_secs(20), "waited {took:?}");
        assert_eq!(result.state, "pending", "tried again later");
        assert_eq!(result.entry.outcome, "retry");
        let detail = result.entry.detail.unwrap_or_default();
        assert!(detail.contains("no outcome within 1 s"), "{detail}");
        // A send within its budget is delivered.
        let fine = Slow {
            delay: Duration::from_millis(50),
            budget: Duration::from_secs(30),
        };
        let result = attempt(&fine, &row(), &DeliveryConfig::default()).await;
        assert_eq!(result.state, "delivered");
    }
}
