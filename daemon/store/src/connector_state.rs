//! Connectors' own durable state: `connector_state:[connector, key]` rows
//! back each connector's [`StateStore`] (ACME accounts, the internal CA's
//! keys and ledger), sealed by the [`Vault`] with the row's name as
//! associated data, so a row copied under another name does not open.
//! Each row carries a `version`, moved on by every write, so that values
//! several daemons share (the internal CA's revocations and CRL number) are
//! written with one conditional update ([`StateStore::save_versioned`]) and
//! never overwrite each other.

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
                "UPSERT type::record('connector_state', [$c, $k]) SET value = $v, version = (version ?? 0) + 1 RETURN NONE",
                vars.clone(),
            )
        })
        .await
        .map_err(|e| format!("store: {e}"))?;
        Ok(())
    }

    async fn load_versioned(&self, key: &str) -> Result<(Option<Vec<u8>>, u64), String> {
        #[derive(serde::Deserialize)]
        struct Row {
            value: String,
            version: Option<u64>,
        }
        let rows: Vec<Row> = self
            .store
            .rows(
                "SELECT * OMIT id FROM type::record('connector_state', [$c, $k])",
                json!({ "c": self.connector, "k": key }),
                0,
            )
            .await
            .map_err(|e| format!("store: {e}"))?;
        match rows.into_iter().next() {
            Some(row) => {
                let value = self
                    .vault
                    .open(&self.context(key), &row.value)
                    .map_err(|e| e.to_string())?;
                // Rows written before versions existed count as version 1.
                Ok((Some(value), row.version.unwrap_or(1)))
            }
            None => Ok((None, 0)),
        }
    }

    async fn save_versioned(&self, key: &str, value: &[u8], expected: u64) -> Result<bool, String> {
        let sealed = self
            .vault
            .seal(&self.context(key), value)
            .map_err(|e| e.to_string())?;
        let vars = json!({ "c": self.connector, "k": key, "v": sealed, "expected": expected });
        let result = with_conflict_retry(|| {
            self.store.run(
                "BEGIN TRANSACTION;
                 LET $id = type::record('connector_state', [$c, $k]);
                 LET $row = (SELECT version FROM ONLY $id);
                 LET $now = IF $row = NONE { 0 } ELSE { $row.version ?? 1 };
                 IF $now != $expected { THROW 'connector state version moved on' };
                 UPSERT $id SET value = $v, version = $expected + 1 RETURN NONE;
                 COMMIT TRANSACTION;",
                vars.clone(),
            )
        })
        .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if e.to_string().contains("connector state version moved on") => Ok(false),
            Err(e) => Err(format!("store: {e}")),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_versioned_write_from_a_stale_read_is_refused() {
        let store = Store::memory().await.unwrap();
        let vault = Vault::ephemeral().unwrap();
        let (a, b) = (
            store.connector_state("ca", vault.clone()),
            store.connector_state("ca", vault),
        );
        assert_eq!(a.load_versioned("crl").await.unwrap(), (None, 0));
        assert!(a.save_versioned("crl", b"first", 0).await.unwrap());
        assert!(
            !b.save_versioned("crl", b"also first", 0).await.unwrap(),
            "not new any more"
        );
        let (value, version) = b.load_versioned("crl").await.unwrap();
        assert_eq!(value.as_deref(), Some(&b"first"[..]));
        // Both read the same version; the second writer is refused.
        assert!(b.save_versioned("crl", b"by b", version).await.unwrap());
        assert!(!a.save_versioned("crl", b"by a", version).await.unwrap());
        assert_eq!(a.load("crl").await.unwrap().as_deref(), Some(&b"by b"[..]));
        // A plain save moves the version on too.
        a.save("crl", b"plain").await.unwrap();
        assert!(
            !b.save_versioned("crl", b"stale", version + 1)
                .await
                .unwrap()
        );
    }
}
