//! Connectors' own durable state: `connector_state:[connector, key]` rows
//! back each connector's [`StateStore`] (ACME accounts, the internal CA's
//! keys and ledger), sealed by the [`Vault`] with the row's name as
//! associated data, so a row copied under another name does not open.

use std::sync::Arc;

use async_trait::async_trait;
use certkeeper_connectors::StateStore;
use serde_json::json;

use crate::vault::Vault;
use crate::{Store, with_conflict_retry};

impl Store {
    /// A connector's [`StateStore`], sealed under `vault`.
    pub fn connector_state(&self, connector: &str, vault: Vault) -> Arc<dyn StateStore> {
        Arc::new(ConnectorState {
            store: self.clone(),
            connector: connector.to_owned(),
            vault,
        })
    }
}

/// A connector's state in `connector_state:[connector, key]`, sealed.
struct ConnectorState {
    store: Store,
    connector: String,
    vault: Vault,
}

impl ConnectorState {
    fn context(&self, key: &str) -> String {
        format!("connector_state:{}:{key}", self.connector)
    }
}

#[async_trait]
impl StateStore for ConnectorState {
    async fn load(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        let rows: Vec<String> = self
            .store
            .rows(
                "SELECT VALUE value FROM type::record('connector_state', [$c, $k])",
                json!({ "c": self.connector, "k": key }),
                0,
            )
            .await
            .map_err(|e| format!("store: {e}"))?;
        match rows.into_iter().next() {
            Some(sealed) => self
                .vault
                .open(&self.context(key), &sealed)
                .map(Some)
                .map_err(|e| e.to_string()),
            None => Ok(None),
        }
    }

    async fn save(&self, key: &str, value: &[u8]) -> Result<(), String> {
        let sealed = self
            .vault
            .seal(&self.context(key), value)
            .map_err(|e| e.to_string())?;
        let vars = json!({ "c": self.connector, "k": key, "v": sealed });
        with_conflict_retry(|| {
            self.store.run(
                "UPSERT type::record('connector_state', [$c, $k]) CONTENT { value: $v } RETURN NONE",
                vars.clone(),
            )
        })
        .await
        .map_err(|e| format!("store: {e}"))?;
        Ok(())
    }

    async fn remove(&self, key: &str) -> Result<(), String> {
        let vars = json!({ "c": self.connector, "k": key });
        with_conflict_retry(|| {
            self.store.run(
                "DELETE type::record('connector_state', [$c, $k]) RETURN NONE",
                vars.clone(),
            )
        })
        .await
        .map_err(|e| format!("store: {e}"))?;
        Ok(())
    }
}
