//! The connectors the renewal worker issues through, built from
//! `[[connector]]`, each with its `max_concurrent_orders` bound.

use std::collections::HashMap;
use std::sync::Arc;

use certkeeper_connectors::Connector;
use certkeeper_connectors::internal_ca::InternalCa;
use tokio::sync::Semaphore;

use super::*;
use crate::config::{Config, ConnectorConfig};
use certkeeper_store::Store;
use certkeeper_store::vault::Vault;

/// A connector with its per-CA concurrency bound.
pub struct ConnectorEntry {
    /// The connector.
    pub connector: Arc<dyn Connector>,
    /// Orders in flight on it.
    pub limit: Arc<Semaphore>,
    /// The internal CA behind it, for its CRL.
    pub internal: Option<Arc<InternalCa>>,
}

/// Every configured connector, by name.
#[derive(Default)]
pub struct Registry {
    /// Connectors by name.
    pub connectors: HashMap<String, ConnectorEntry>,
}

impl Registry {
    /// Builds every `[[connector]]` with its state in the store (sealed by
    /// `vault`). ACME connectors do not contact their CA here; an internal CA
    /// is created on first start.
    pub async fn build(config: &Config, store: &Store, vault: &Vault) -> anyhow::Result<Self> {
        let mut connectors = HashMap::new();
        for c in &config.connectors {
            let state = store.connector_state(c.name(), vault.clone());
            let (connector, internal): (Arc<dyn Connector>, _) = match c {
                ConnectorConfig::Acme(acme) => {
                    let roots = match &acme.roots_file {
                        Some(path) => Some(std::fs::read_to_string(path).map_err(|e| {
                            anyhow::anyhow!(
                                "connector {}: cannot read roots_file {}: {e}",
                                acme.name,
                                path.display()
                            )
                        })?),
                        None => None,
                    };
                    let mut settings = acme
                        .settings(roots)
                        .map_err(|e| anyhow::anyhow!("connector {}: {e}", acme.name))?;
                    settings.address_guard = config.security.address_guard();
                    let connector = certkeeper_connectors::acme::open(settings, state).await?;
                    (Arc::new(connector), None)
                }
                ConnectorConfig::InternalCa(ca) => {
                    let settings = ca
                        .settings()
                        .map_err(|e| anyhow::anyhow!("connector {}: {e}", ca.name))?;
                    let ca = Arc::new(InternalCa::open(settings, state).await?);
                    (ca.clone(), Some(ca))
                }
                ConnectorConfig::Vault(vault) => {
                    let mut settings = vault
                        .settings()
                        .map_err(|e| anyhow::anyhow!("connector {}: {e}", vault.name))?;
                    settings.address_guard = config.security.address_guard();
                    let connector = certkeeper_connectors::vault::VaultConnector::new(settings)?;
                    (Arc::new(connector), None)
                }
                ConnectorConfig::Digicert(digicert) => {
                    let mut settings = digicert
                        .settings()
                        .map_err(|e| anyhow::anyhow!("connector {}: {e}", digicert.name))?;
                    settings.address_guard = config.security.address_guard();
                    let connector =
                        certkeeper_connectors::digicert::DigicertConnector::new(settings, state)?;
                    (Arc::new(connector), None)
                }
                ConnectorConfig::Sectigo(sectigo) => {
                    let mut settings = sectigo
                        .settings()
                        .map_err(|e| anyhow::anyhow!("connector {}: {e}", sectigo.name))?;
                    settings.address_guard = config.security.address_guard();
                    let connector =
                        certkeeper_connectors::sectigo::SectigoConnector::new(settings, state)?;
                    (Arc::new(connector), None)
                }
                ConnectorConfig::AwsPca(pca) => {
                    let mut settings = pca
                        .settings()
                        .map_err(|e| anyhow::anyhow!("connector {}: {e}", pca.name))?;
                    settings.address_guard = config.security.address_guard();
                    let connector =
                        certkeeper_connectors::aws_pca::AwsPcaConnector::open(settings, state)?;
                    (Arc::new(connector), None)
                }
                ConnectorConfig::Command(command) => {
                    let settings = command
                        .settings()
                        .map_err(|e| anyhow::anyhow!("connector {}: {e}", command.name))?;
                    let connector =
                        certkeeper_connectors::command::CommandConnector::new(settings)?;
                    (Arc::new(connector), None)
                }
            };
            connectors.insert(
                c.name().to_owned(),
                ConnectorEntry {
                    connector,
                    limit: Arc::new(Semaphore::new(c.max_concurrent_orders())),
                    internal,
                },
            );
        }
        Ok(Self { connectors })
    }

    pub(super) fn get(&self, name: &str) -> Result<&ConnectorEntry, Failure> {
        self.connectors
            .get(name)
            .ok_or_else(|| Failure::permanent(format!("no connector named `{name}`")))
    }
}
