//! Contacts: the people and aliases certificates name (`ssladmin@`, `sam`),
//! with how to reach them and what they want to hear about.
//!
//! - `contact:⟨name⟩` `{ name, email, phone, events, channels }`
//!
//! A certificate's `contacts` are plain names; an entry here gives one of
//! them an e-mail address and a phone number, and narrows which event types
//! and which channels it gets (empty: all). A name with no entry is reached
//! as it is written (an e-mail address), through the contact channels. Users
//! carry an e-mail and phone of their own, used when no contact entry has
//! their name.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Store, StoreError, with_conflict_retry};

/// How to reach a contact and what it wants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// The name certificates give (compared ignoring case; stored lowercase).
    pub name: String,
    /// Where e-mail goes; the name itself when it is an address and this is
    /// unset.
    #[serde(default)]
    pub email: Option<String>,
    /// Where text messages go (E.164, `+4915112345678`).
    #[serde(default)]
    pub phone: Option<String>,
    /// Event types it gets (`certificate_expiring`, ...); empty: all.
    #[serde(default)]
    pub events: Vec<String>,
    /// Channels (notifier names) it is reached through; empty: the contact
    /// channels (`alerts.contact_channels`).
    #[serde(default)]
    pub channels: Vec<String>,
}

impl Store {
    /// Every contact entry, by name.
    pub async fn contacts(&self) -> Result<Vec<Contact>, StoreError> {
        self.rows("SELECT * OMIT id FROM contact ORDER BY name", json!({}), 0)
            .await
    }

    /// Creates or replaces the entry of `contact.name`.
    pub async fn put_contact(&self, contact: &Contact) -> Result<(), StoreError> {
        let mut doc = serde_json::to_value(contact)?;
        doc["name"] = json!(contact.name.to_lowercase());
        let vars = json!({ "id": contact.name.to_lowercase(), "doc": doc });
        with_conflict_retry(|| {
            self.run(
                "UPSERT type::record('contact', $id) CONTENT $doc RETURN NONE",
                vars.clone(),
            )
        })
        .await?;
        Ok(())
    }

    /// Removes the entry of `name`; false when there was none.
    pub async fn remove_contact(&self, name: &str) -> Result<bool, StoreError> {
        let removed: Vec<serde_json::Value> = self
            .rows(
                "DELETE type::record('contact', $id) RETURN BEFORE",
                json!({ "id": name.to_lowercase() }),
                0,
            )
            .await?;
        Ok(!removed.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn contacts_are_kept_by_lowercase_name() {
        let store = Store::memory().await.unwrap();
        let c = Contact {
            name: "SSLAdmin@Example.com".into(),
            email: Some("pki-team@example.com".into()),
            phone: Some("+4915112345678".into()),
            events: vec!["certificate_expiring".into()],
            channels: vec![],
        };
        store.put_contact(&c).await.unwrap();
        let all = store.contacts().await.unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].name, "ssladmin@example.com");
        assert_eq!(all[0].phone.as_deref(), Some("+4915112345678"));
        assert!(store.remove_contact("SSLADMIN@example.com").await.unwrap());
        assert!(!store.remove_contact("ssladmin@example.com").await.unwrap());
        assert!(store.contacts().await.unwrap().is_empty());
    }
}
