//! The outbox row of a lifecycle event.
//!
//! Every happening Certkeeper reports (a certificate expiring, a renewal
//! failing, a finding, a report written) is one
//! [`certkeeper_integrations::Event`]; the store keeps it in the `event`
//! outbox as a [`StoredEvent`] until the alert router has routed it. Build
//! one with `StoredEvent::from(&event)`, never by hand, so the id and time
//! of the row are always the event's own.

use certkeeper_integrations::Event;
use serde::{Deserialize, Serialize};

/// A lifecycle event waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Stable id: the event's own, so recording it twice is refused.
    pub id: String,
    /// When it happened (Unix seconds).
    pub time: i64,
    /// The event, as `certkeeper_integrations::Event` serialises it.
    pub event: serde_json::Value,
}

impl From<&Event> for StoredEvent {
    fn from(event: &Event) -> Self {
        Self {
            id: event.id.clone(),
            time: event.at.timestamp(),
            // An Event is plain data (strings, numbers, enums): serialising
            // it cannot fail, and a null would still be routed and logged.
            event: serde_json::to_value(event).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use certkeeper_integrations::EventKind;
    use chrono::DateTime;

    #[test]
    fn a_stored_event_carries_the_events_id_and_time() {
        let event = Event {
            id: "expiring:abc:30".into(),
            at: DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default(),
            kind: EventKind::CertificateExpiring {
                threshold_days: 30,
                days_left: 29,
            },
            certificate: None,
        };
        let stored = StoredEvent::from(&event);
        assert_eq!(stored.id, "expiring:abc:30");
        assert_eq!(stored.time, 1_700_000_000);
        assert_eq!(stored.event["kind"]["type"], "certificate_expiring");
        let back: Event = serde_json::from_value(stored.event).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, event);
    }
}
