//! The ACME account: created on first use, kept in the connector's
//! [`StateStore`] and reused after every restart.
//!
//! The stored value is `instant-acme`'s [`AccountCredentials`] (the account
//! URL and its private key) with the directory it belongs to; the daemon
//! encrypts it at rest. A connector pointed at another directory creates a
//! new account rather than presenting a key the new CA has never seen.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use instant_acme::{Account, AccountCredentials, ExternalAccountKey, Key, NewAccount};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use super::client::TimeoutClient;
use super::{AcmeSettings, ExternalAccountBinding, problem};
use crate::{ConnectorError, StateStore};

/// Key under which the account is kept in the connector's state.
pub const STATE_KEY: &str = "acme_account";

#[derive(Serialize, Deserialize)]
struct Stored {
    directory_url: String,
    credentials: AccountCredentials,
}

struct Loaded {
    account: Account,
    key_pkcs8: Vec<u8>,
}

/// The connector's account, loaded or created once however many orders ask
/// for it at the same time.
pub struct AccountSlot {
    state: Arc<dyn StateStore>,
    eab: Option<ExternalAccountKey>,
    loaded: OnceCell<Loaded>,
}

impl AccountSlot {
    /// An empty slot backed by `state`, binding new accounts with `eab`.
    pub fn new(state: Arc<dyn StateStore>, eab: Option<ExternalAccountKey>) -> Self {
        Self {
            state,
            eab,
            loaded: OnceCell::new(),
        }
    }

    /// The account, loading it from the state or creating it at the CA.
    pub async fn get(
        &self,
        settings: &AcmeSettings,
        http: &TimeoutClient,
    ) -> Result<Account, ConnectorError> {
        let loaded = self
            .loaded
            .get_or_try_init(|| self.load_or_create(settings, http))
            .await?;
        Ok(loaded.account.clone())
    }

    /// Asks the CA whether it still knows the account (a `newAccount` with
    /// `onlyReturnExisting`, which changes nothing).
    pub async fn check(
        &self,
        settings: &AcmeSettings,
        http: &TimeoutClient,
    ) -> Result<(), ConnectorError> {
        let name = settings.name.as_str();
        let account = self.get(settings, http).await?;
        let Some(loaded) = self.loaded.get() else {
            return Err(ConnectorError::transient(name, "account not loaded"));
        };
        let pkcs8 = PrivatePkcs8KeyDer::from(loaded.key_pkcs8.clone());
        let key = Key::from_pkcs8_der(pkcs8.clone_key())
            .map_err(|e| problem::map(name, "reading the account key", e))?;
        let (found, _) = Account::builder_with_http(http.boxed())
            .from_key(
                (key, PrivateKeyDer::Pkcs8(pkcs8)),
                settings.directory_url.clone(),
            )
            .await
            .map_err(|e| problem::map(name, "looking up the account", e))?;
        if found.id() != account.id() {
            tracing::warn!(
                connector = name,
                stored = account.id(),
                found = found.id(),
                "the CA reports another URL for the account key"
            );
        }
        Ok(())
    }

    async fn load_or_create(
        &self,
        settings: &AcmeSettings,
        http: &TimeoutClient,
    ) -> Result<Loaded, ConnectorError> {
        let name = settings.name.as_str();
        let saved =
            self.state.load(STATE_KEY).await.map_err(|e| {
                ConnectorError::transient(name, format!("loading the account: {e}"))
            })?;
        if let Some(bytes) = saved {
            let stored: Stored = serde_json::from_slice(&bytes).map_err(|e| {
                ConnectorError::permanent(name, format!("the stored account is unreadable: {e}"))
            })?;
            if stored.directory_url == settings.directory_url {
                let key_pkcs8 = stored.credentials.private_key().secret_pkcs8_der().to_vec();
                let account = Account::builder_with_http(http.boxed())
                    .from_credentials(stored.credentials)
                    .await
                    .map_err(|e| problem::map(name, "restoring the account", e))?;
                tracing::debug!(
                    connector = name,
                    account = account.id(),
                    "ACME account loaded"
                );
                return Ok(Loaded { account, key_pkcs8 });
            }
            tracing::info!(
                connector = name,
                old = %stored.directory_url,
                new = %settings.directory_url,
                "directory changed; creating a new ACME account"
            );
        }
        self.create(settings, http).await
    }

    async fn create(
        &self,
        settings: &AcmeSettings,
        http: &TimeoutClient,
    ) -> Result<Loaded, ConnectorError> {
        let name = settings.name.as_str();
        let contacts: Vec<String> = settings
            .contacts
            .iter()
            .map(|c| match c.starts_with("mailto:") {
                true => c.clone(),
                false => format!("mailto:{c}"),
            })
            .collect();
        let contact: Vec<&str> = contacts.iter().map(String::as_str).collect();
        let (account, credentials) = Account::builder_with_http(http.boxed())
            .create(
                &NewAccount {
                    contact: &contact,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                settings.directory_url.clone(),
                self.eab.as_ref(),
            )
            .await
            .map_err(|e| problem::map(name, "creating the account", e))?;
        let key_pkcs8 = credentials.private_key().secret_pkcs8_der().to_vec();
        let stored = Stored {
            directory_url: settings.directory_url.clone(),
            credentials,
        };
        let bytes = serde_json::to_vec(&stored)
            .map_err(|e| ConnectorError::permanent(name, format!("encoding the account: {e}")))?;
        self.state.save(STATE_KEY, &bytes).await.map_err(|e| {
            ConnectorError::transient(name, format!("the new account could not be saved: {e}"))
        })?;
        tracing::info!(
            connector = name,
            account = account.id(),
            "ACME account created"
        );
        Ok(Loaded { account, key_pkcs8 })
    }
}

/// Decodes the EAB HMAC key (base64url as CAs issue it, or standard base64).
pub fn decode_eab(eab: &ExternalAccountBinding) -> Result<ExternalAccountKey, String> {
    let text = eab.hmac_key.expose().trim();
    let key = [URL_SAFE_NO_PAD, URL_SAFE, STANDARD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .ok_or_else(|| format!("the EAB HMAC key of key id `{}` is not base64", eab.key_id))?;
    if key.is_empty() {
        return Err("the EAB HMAC key is empty".into());
    }
    Ok(ExternalAccountKey::new(eab.key_id.clone(), &key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acme::Secret;

    #[test]
    fn eab_key_errors_do_not_show_the_key() {
        let err = decode_eab(&ExternalAccountBinding {
            key_id: "kid-1".into(),
            hmac_key: Secret::new("not*base64*secret"),
        })
        .err()
        .expect("not base64");
        assert!(err.contains("kid-1"));
        assert!(!err.contains("not*base64*secret"));
        decode_eab(&ExternalAccountBinding {
            key_id: "kid-1".into(),
            hmac_key: Secret::new(
                "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W",
            ),
        })
        .expect("pebble's example key decodes");
    }
}
