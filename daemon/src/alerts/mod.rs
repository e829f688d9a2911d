//! Alerting: the expiry ledger, routing and delivery that loses nothing.
//!
//! Three loops share the store and nothing else:
//! - [`ledger`] raises expiry alerts (each certificate and threshold once),
//!   resolves them when the certificate is renewed and escalates those left
//!   unacknowledged, writing `certificate_expiring`, `certificate_expired`
//!   and `alert_escalated` events to the outbox;
//! - [`delivery::route_loop`] turns every outbox event (from the ledger, the
//!   renewal worker, discovery) into deliveries through the [`routing`]
//!   rules;
//! - [`delivery::send_loops`] sends them, one loop per channel.

pub mod contacts;
pub mod delivery;
pub mod ledger;
pub mod routing;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use certkeeper_integrations::Notifier;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use certkeeper_store::Store;

/// The running alerting loops' inputs, built from the config.
pub struct Alerts {
    store: Store,
    config: crate::config::alerts::AlertsConfig,
    router: routing::Router,
    notifiers: HashMap<String, Arc<dyn Notifier>>,
}

impl Alerts {
    /// Builds the notifiers; the config has been checked.
    pub fn new(config: &Config, store: Store) -> anyhow::Result<Self> {
        let mut notifiers: HashMap<String, Arc<dyn Notifier>> = HashMap::new();
        let guard = config.security.address_guard();
        for (name, channel) in &config.notifiers {
            let built = channel
                .clone()
                .build_guarded(name, &guard)
                .map_err(|e| anyhow::anyhow!("notifier.{name}: {}", e.message))?;
            notifiers.insert(name.clone(), Arc::from(built));
        }
        Ok(Self {
            store,
            router: routing::Router::new(&config.alerts, &config.notifiers),
            config: config.alerts.clone(),
            notifiers,
        })
    }

    /// Runs the ledger, the router and the senders until cancelled.
    pub async fn run(self, cancel: CancellationToken) {
        let wake = Arc::new(Notify::new());
        let ledger = tokio::spawn(ledger_loop(
            self.store.clone(),
            self.config.clone(),
            cancel.clone(),
        ));
        let router = tokio::spawn(delivery::route_loop(
            self.store.clone(),
            self.router,
            wake.clone(),
            cancel.clone(),
        ));
        let rate_limits = self.config.rate_limits.clone().into_iter().collect();
        let senders = tokio::spawn(delivery::send_loops(
            self.store,
            self.notifiers,
            self.config.delivery,
            rate_limits,
            wake,
            cancel,
        ));
        let _ = tokio::join!(ledger, router, senders);
    }
}

async fn ledger_loop(
    store: Store,
    config: crate::config::alerts::AlertsConfig,
    cancel: CancellationToken,
) {
    let interval = Duration::from_secs(config.check_interval_seconds);
    loop {
        let now = chrono::Utc::now().timestamp();
        // A shutdown stops the pass after the page in flight (a page of
        // 500 commits in well under a second); dropping the page instead
        // would abandon its transaction mid-write, which the store logs as
        // an error. The next pass raises what this one had not reached (raising
        // is once per certificate and threshold).
        if cancel.is_cancelled() {
            return;
        }
        let pass = ledger::pass_until(&store, &config, now, &cancel).await;
        match pass {
            Ok(report) if report != ledger::PassReport::default() => {
                tracing::info!(
                    raised = report.raised,
                    messages = report.events,
                    resolved = report.resolved,
                    escalated = report.escalated,
                    "alert ledger pass"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "alert ledger pass failed; retrying"),
        }
        let keep = i64::try_from(config.delivery.keep_days).unwrap_or(i64::MAX / 4) * 86_400;
        if let Err(e) = store.prune_deliveries(now.saturating_sub(keep)).await {
            tracing::warn!(error = %e, "cannot prune the delivery log");
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}
