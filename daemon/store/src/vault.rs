//! Encryption at rest for secrets kept in the store: private keys of managed
//! certificates, ACME account keys, the internal CA's state.
//!
//! Values are sealed with AES-256-GCM under a 32-byte store key read from a
//! file (`[store] key_file`; by default `<store dir>.key` beside an embedded
//! store, created 0600 on first start). A sealed value is
//! `v1:` + base64(nonce ‖ ciphertext ‖ tag); the record it belongs to is bound
//! in as associated data, so a sealed value copied to another record does not
//! open. Losing the key file loses the sealed values (back it up with the
//! store); a store copied without its key leaks none of them.
//!
//! Several daemons on one store (a SurrealDB server) must share the key:
//! give each the same `key_file`, or the systemd credential `store-key`
//! (`LoadCredential=store-key:/etc/certkeeper/store.key`). The first daemon
//! to start seals a sample under `vault_check:current`; every start opens
//! it first ([`Store::check_vault`]), so a daemon holding another key stops
//! with an error naming its key file before it seals anything.
//! [`Store::rekey`] (`certkeeper rekey --new-key FILE`) moves every sealed
//! value to a new key, with the daemons stopped.

use std::io::Write;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use openssl::rand::rand_bytes;
use openssl::symm::{Cipher, decrypt_aead, encrypt_aead};

/// Seals and opens values under the store key. Its `Debug` shows nothing.
#[derive(Clone)]
pub struct Vault {
    key: [u8; 32],
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vault([redacted])")
    }
}

/// A vault that could not be opened or a value that could not be unsealed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct VaultError(String);

const PREFIX: &str = "v1:";

/// The name of the systemd credential holding the store key.
pub const CREDENTIAL: &str = "store-key";

/// The record the key check seals its sample under.
const CHECK_CONTEXT: &str = "vault_check:current";

impl Vault {
    /// Reads the key from `path`, creating it (mode 0600) if it does not exist.
    pub fn open_or_create(path: &Path) -> Result<Self, VaultError> {
        match std::fs::read(path) {
            Ok(bytes) => Self::from_file_bytes(&bytes, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rand_bytes(&mut key).map_err(|e| VaultError(format!("random key: {e}")))?;
                write_new_key(path, &key)?;
                Ok(Self { key })
            }
            Err(e) => Err(VaultError(format!(
                "cannot read the store key {}: {e}",
                path.display()
            ))),
        }
    }

    /// The vault for the store `config` describes: its key file, or a random
    /// key for an in-memory store.
    pub fn for_store(config: &crate::StoreConfig) -> Result<Self, VaultError> {
        use super::StoreUrl;
        let url = StoreUrl::parse(&config.url).map_err(|e| VaultError(e.to_string()))?;
        // A systemd credential (`LoadCredential=store-key:/path`) comes
        // before the defaults: it is how several daemons share one key.
        let credential = std::env::var_os("CREDENTIALS_DIRECTORY")
            .map(|d| std::path::PathBuf::from(d).join(CREDENTIAL))
            .filter(|p| p.is_file());
        let path = match (&config.key_file, credential, url) {
            (Some(path), _, _) => path.clone(),
            (None, Some(credential), _) => return Self::open_existing(&credential),
            (None, None, StoreUrl::Memory) => return Self::ephemeral(),
            (None, None, StoreUrl::SurrealKv(dir)) => {
                let mut name = dir.into_os_string();
                name.push(".key");
                name.into()
            }
            (None, None, StoreUrl::Remote(_)) => std::env::var_os("STATE_DIRECTORY")
                .map(std::path::PathBuf::from)
                .unwrap_or_default()
                .join("store.key"),
        };
        Self::open_or_create(&path)
    }

    /// Reads the key from `path`, which must exist (a credential is never
    /// created).
    pub fn open_existing(path: &Path) -> Result<Self, VaultError> {
        let bytes = std::fs::read(path).map_err(|e| {
            VaultError(format!("cannot read the store key {}: {e}", path.display()))
        })?;
        Self::from_file_bytes(&bytes, path)
    }

    /// A vault with a random key, for stores that do not outlive the process.
    pub fn ephemeral() -> Result<Self, VaultError> {
        let mut key = [0u8; 32];
        rand_bytes(&mut key).map_err(|e| VaultError(format!("random key: {e}")))?;
        Ok(Self { key })
    }

    fn from_file_bytes(bytes: &[u8], path: &Path) -> Result<Self, VaultError> {
        let text = std::str::from_utf8(bytes).unwrap_or_default().trim();
        let decoded = STANDARD.decode(text).unwrap_or_default();
        let key: [u8; 32] = decoded.try_into().map_err(|_| {
            VaultError(format!(
                "the store key {} is not 32 bytes of base64",
                path.display()
            ))
        })?;
        Ok(Self { key })
    }

    /// Seals `plain` for the record named `context`.
    pub fn seal(&self, context: &str, plain: &[u8]) -> Result<String, VaultError> {
        let mut nonce = [0u8; 12];
        rand_bytes(&mut nonce).map_err(|e| VaultError(format!("random nonce: {e}")))?;
        let mut tag = [0u8; 16];
        let sealed = encrypt_aead(
            Cipher::aes_256_gcm(),
            &self.key,
            Some(&nonce),
            context.as_bytes(),
            plain,
            &mut tag,
        )
        .map_err(|e| VaultError(format!("sealing failed: {e}")))?;
        let mut out = Vec::with_capacity(12 + sealed.len() + 16);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out.extend_from_slice(&tag);
        Ok(format!("{PREFIX}{}", STANDARD.encode(out)))
    }

    /// Opens a value [`Vault::seal`] sealed for the same `context`.
    pub fn open(&self, context: &str, sealed: &str) -> Result<Vec<u8>, VaultError> {
        let fail = || {
            VaultError(format!(
                "cannot unseal {context}: wrong store key or damaged value"
            ))
        };
        let body = sealed.strip_prefix(PREFIX).ok_or_else(fail)?;
        let raw = STANDARD.decode(body).map_err(|_| fail())?;
        if raw.len() < 28 {
            return Err(fail());
        }
        let (nonce, rest) = raw.split_at(12);
        let (cipher, tag) = rest.split_at(rest.len() - 16);
        decrypt_aead(
            Cipher::aes_256_gcm(),
            &self.key,
            Some(nonce),
            context.as_bytes(),
            cipher,
            tag,
        )
        .map_err(|_| fail())
    }
}

impl crate::Store {
    /// Checks that `vault` holds this store's key: opens the sample the
    /// first daemon sealed, or seals one when there is none yet. A vault
    /// with another key is refused before anything is sealed with it;
    /// `key_source` names its key (a file) in the error.
    pub async fn check_vault(&self, vault: &Vault, key_source: &str) -> Result<(), VaultError> {
        let store_error = |e: crate::StoreError| VaultError(format!("store: {e}"));
        let rows: Vec<String> = self
            .rows(
                "SELECT VALUE sample FROM type::record('vault_check', 'current')",
                serde_json::json!({}),
                0,
            )
            .await
            .map_err(store_error)?;
        match rows.into_iter().next() {
            Some(sample) => vault.open(CHECK_CONTEXT, &sample).map(|_| ()).map_err(|_| {
                VaultError(format!(
                    "the store key {key_source} is not this store's: its secrets were sealed with another key. \
                     Every daemon on one store needs the same key: copy the key file of the first daemon, \
                     or give all of them one [store] key_file or systemd credential `{CREDENTIAL}`"
                ))
            }),
            None => {
                let sample = vault.seal(CHECK_CONTEXT, b"certkeeper store key check")?;
                // CREATE: of two daemons starting at once with different
                // keys, one creates the sample and the other reads it back.
                let created = self
                    .run(
                        "CREATE type::record('vault_check', 'current') CONTENT { sample: $sample } RETURN NONE",
                        serde_json::json!({ "sample": sample }),
                    )
                    .await;
                if let Err(e) = created {
                    if !e.to_string().contains("already exists") {
                        return Err(store_error(e));
                    }
                    return Box::pin(self.check_vault(vault, key_source)).await;
                }
                Ok(())
            }
        }
    }
}

/// What [`Store::rekey`] resealed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RekeyReport {
    /// Private keys of managed certificates (current and in progress).
    pub managed_keys: u64,
    /// Connector state values (ACME accounts, the internal CA).
    pub connector_state: u64,
    /// Values already sealed with the new key (an interrupted run resumed).
    pub already: u64,
}

impl crate::Store {
    /// Reseals every secret in the store from `old` to `new`: managed
    /// certificates' private keys, connector state, and last the key check
    /// sample, after which only daemons holding `new` start. Run with every
    /// daemon on the store stopped. Each value is written on its own and a
    /// value that already opens with `new` is left alone, so a run that was
    /// interrupted is finished by running it again with the same two keys.
    pub async fn rekey(&self, old: &Vault, new: &Vault) -> Result<RekeyReport, VaultError> {
        let store_error = |e: crate::StoreError| VaultError(format!("store: {e}"));
        let mut report = RekeyReport::default();
        // Which vault a value opens with: `None` when it opens with the new
        // key already, the resealed value otherwise.
        let reseal = |context: &str, sealed: &str| -> Result<Option<String>, VaultError> {
            if new.open(context, sealed).is_ok() {
                return Ok(None);
            }
            let plain = old.open(context, sealed)?;
            new.seal(context, &plain).map(Some)
        };
        let samples: Vec<String> = self
            .rows(
                "SELECT VALUE sample FROM type::record('vault_check', 'current')",
                serde_json::json!({}),
                0,
            )
            .await
            .map_err(store_error)?;
        let sample = samples.into_iter().next();
        if let Some(sample) = &sample
            && old.open(CHECK_CONTEXT, sample).is_err()
            && new.open(CHECK_CONTEXT, sample).is_err()
        {
            return Err(VaultError(
                "neither key is this store's: the current key must be the one the daemons run with"
                    .into(),
            ));
        }

        #[derive(serde::Deserialize)]
        struct Managed {
            name: String,
            key_sealed: Option<String>,
            operation_key: Option<String>,
        }
        let managed: Vec<Managed> = self
            .rows(
                "SELECT name, key_sealed, operation.key_sealed AS operation_key FROM managed",
                serde_json::json!({}),
                0,
            )
            .await
            .map_err(store_error)?;
        for row in managed {
            let context = crate::managed::key_context(&row.name);
            let mut vars = serde_json::json!({ "name": row.name });
            let mut changed = false;
            for (field, sealed) in [
                ("sealed_key", &row.key_sealed),
                ("operation_key", &row.operation_key),
            ] {
                if let Some(sealed) = sealed {
                    match reseal(&context, sealed)? {
                        Some(resealed) => {
                            vars[field] = resealed.into();
                            changed = true;
                            report.managed_keys += 1;
                        }
                        None => report.already += 1,
                    }
                }
            }
            if changed {
                self.run(
                    "UPDATE type::record('managed', $name) SET
                         key_sealed = $sealed_key ?? key_sealed,
                         operation.key_sealed = IF operation = NONE { NONE } ELSE { $operation_key ?? operation.key_sealed }
                     RETURN NONE",
                    vars,
                )
                .await
                .map_err(store_error)?;
            }
        }

        #[derive(serde::Deserialize)]
        struct State {
            id: (String, String),
            value: String,
        }
        let states: Vec<State> = self
            .rows(
                "SELECT *, record::id(id) AS id FROM connector_state",
                serde_json::json!({}),
                0,
            )
            .await
            .map_err(store_error)?;
        for State {
            id: (connector, key),
            value,
        } in states
        {
            let context = format!("connector_state:{connector}:{key}");
            match reseal(&context, &value)? {
                Some(resealed) => {
                    self.run(
                        "UPDATE type::record('connector_state', [$c, $k]) SET value = $v, version = (version ?? 0) + 1 RETURN NONE",
                        serde_json::json!({ "c": connector, "k": key, "v": resealed }),
                    )
                    .await
                    .map_err(store_error)?;
                    report.connector_state += 1;
                }
                None => report.already += 1,
            }
        }

        // Last: from here on only the new key starts a daemon.
        let resealed = new.seal(CHECK_CONTEXT, b"certkeeper store key check")?;
        self.run(
            "UPSERT type::record('vault_check', 'current') CONTENT { sample: $sample } RETURN NONE",
            serde_json::json!({ "sample": resealed }),
        )
        .await
        .map_err(store_error)?;
        Ok(report)
    }
}

fn write_new_key(path: &Path, key: &[u8; 32]) -> Result<(), VaultError> {
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |e: std::io::Error| {
        VaultError(format!(
            "cannot create the store key {}: {e}",
            path.display()
        ))
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(fail)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(fail)?;
    file.write_all(STANDARD.encode(key).as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_only_for_the_same_record_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.key");
        let vault = Vault::open_or_create(&path).unwrap();
        let sealed = vault
            .seal("managed:www", b"-----BEGIN PRIVATE KEY-----")
            .unwrap();
        assert!(!sealed.contains("PRIVATE"));
        assert_eq!(
            vault.open("managed:www", &sealed).unwrap(),
            b"-----BEGIN PRIVATE KEY-----"
        );
        assert!(vault.open("managed:api", &sealed).is_err());
        // The same key file opens it again; another key does not.
        let again = Vault::open_or_create(&path).unwrap();
        assert!(again.open("managed:www", &sealed).is_ok());
        assert!(
            Vault::ephemeral()
                .unwrap()
                .open("managed:www", &sealed)
                .is_err()
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(!format!("{vault:?}").contains(&STANDARD.encode(vault.key)));
    }

    #[test]
    fn a_damaged_key_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.key");
        std::fs::write(&path, "short").unwrap();
        let err = Vault::open_or_create(&path).unwrap_err().to_string();
        assert!(err.contains("not 32 bytes"), "{err}");
    }
}
