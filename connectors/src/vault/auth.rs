//! The Vault token the connector sends: the operator's own, or one from an
//! AppRole login.
//!
//! An AppRole token is held until two thirds of its lease have passed and
//! then replaced by logging in again (simpler and sturdier than renewing:
//! a renewal fails anyway once the token's max TTL is reached). A 403 to it
//! drops it at once (the caller retries once with a fresh one), since a
//! token can be revoked or expire before Vault's lease said. Concurrent
//! requests share one login: the slot is locked while logging in.

use std::time::Duration;

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;
use tokio::time::Instant;

use super::{VaultAuth, VaultConnector, vault_errors};
use crate::{ConnectorError, Secret};

/// A token in use and when to replace it.
struct Held {
    token: Secret,
    renew_at: Option<Instant>,
}

/// The token the connector sends, logging in when needed.
pub(super) struct TokenSlot {
    auth: VaultAuth,
    held: tokio::sync::Mutex<Option<Held>>,
}

impl std::fmt::Debug for TokenSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSlot([redacted])")
    }
}

/// What an AppRole login answers under `auth`.
#[derive(Deserialize)]
struct Login {
    auth: LoginAuth,
}

#[derive(Deserialize)]
struct LoginAuth {
    client_token: Secret,
    #[serde(default)]
    lease_duration: u64,
}

impl TokenSlot {
    /// A slot for `auth`; nothing is fetched until the first request.
    pub(super) fn new(auth: VaultAuth) -> Self {
        Self {
            auth,
            held: tokio::sync::Mutex::new(None),
        }
    }

    /// Whether a refused token can be replaced by logging in again.
    pub(super) fn can_login(&self) -> bool {
        matches!(self.auth, VaultAuth::AppRole { .. })
    }

    /// The token to send now.
    pub(super) async fn get(&self, connector: &VaultConnector) -> Result<Secret, ConnectorError> {
        let (mount, role_id, secret_id) = match &self.auth {
            VaultAuth::Token { token } => return Ok(token.clone()),
            VaultAuth::AppRole {
                mount,
                role_id,
                secret_id,
            } => (mount, role_id, secret_id),
        };
        let mut held = self.held.lock().await;
        if let Some(current) = held.as_ref()
            && current.renew_at.is_none_or(|at| Instant::now() < at)
        {
            return Ok(current.token.clone());
        }
        let url = connector.http.endpoint(&["v1", "auth", mount, "login"]);
        let body = json!({ "role_id": role_id, "secret_id": secret_id.expose() });
        let doing = "logging in with AppRole";
        let request = connector.unauthenticated(Method::POST, url).json(&body);
        let answer = connector.http.send(request, doing).await?;
        if !answer.is_success() {
            let mut error = connector
                .http
                .refused(&answer, doing, vault_errors(&answer.body));
            if answer.status.is_client_error() {
                error
                    .message
                    .push_str(" — check the AppRole mount, role_id and secret_id");
            }
            return Err(error);
        }
        let login: Login = connector.http.decode(&answer, doing)?;
        let lease = Duration::from_secs(login.auth.lease_duration);
        let renew_at = (!lease.is_zero()).then(|| Instant::now() + lease * 2 / 3);
        tracing::debug!(connector = %connector.settings.name, lease = ?lease, "logged in to Vault with AppRole");
        let token = login.auth.client_token;
        *held = Some(Held {
            token: token.clone(),
            renew_at,
        });
        Ok(token)
    }

    /// Drops `stale` if it is still the token held (another request may
    /// have replaced it already).
    pub(super) async fn invalidate(&self, stale: &Secret) {
        let mut held = self.held.lock().await;
        if held.as_ref().is_some_and(|h| &h.token == stale) {
            *held = None;
        }
    }
}
