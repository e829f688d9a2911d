//! `[store]`: where the store is and how to reach it.
//!
//! The daemon's config embeds this section as it is; the store owns it so
//! that opening a store needs nothing from the layers above.

use std::path::PathBuf;

use certkeeper_base::Secret;
use serde::Deserialize;

use crate::{StoreError, StoreUrl};

/// `[store]`: the SurrealDB store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `surrealkv:///path` (embedded, the default), `mem://` (tests; lost on
    /// exit), or `ws://host:port` / `wss://host:port` (a remote SurrealDB server,
    /// which clusters on TiKV). Default: `surrealkv://` in `$STATE_DIRECTORY`
    /// under systemd, else `./certkeeper-data/store`.
    #[serde(default = "default_store_url")]
    pub url: String,
    /// SurrealDB namespace. Default `certkeeper`.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// SurrealDB database. Default `main`.
    #[serde(default = "default_database")]
    pub database: String,
    /// Root user for a remote server.
    pub username: Option<String>,
    /// Password for `username`.
    pub password: Option<Secret>,
    /// File holding the password (systemd `LoadCredential=`).
    pub password_file: Option<PathBuf>,
    /// File holding the 32-byte key that seals private keys and connector
    /// accounts in the store (created 0600 on first start). Default: beside an
    /// embedded store (`<dir>.key`); for a remote store, `store.key` in
    /// `$STATE_DIRECTORY` or the working directory. Back it up with the store.
    pub key_file: Option<PathBuf>,
    /// Embedded store: MiB of block cache (recently read data kept in
    /// memory). Default 64.
    #[serde(default = "default_cache_mib")]
    pub cache_mib: u64,
    /// Embedded store: MiB of writes buffered in memory before they are
    /// flushed to disk; one transaction must fit. Default 64.
    #[serde(default = "default_memtable_mib")]
    pub memtable_mib: u64,
}

impl StoreConfig {
    /// The parsed [`StoreUrl`] of `url`.
    pub fn parsed_url(&self) -> Result<StoreUrl, StoreError> {
        StoreUrl::parse(&self.url)
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: default_store_url(),
            namespace: default_namespace(),
            database: default_database(),
            username: None,
            password: None,
            password_file: None,
            key_file: None,
            cache_mib: default_cache_mib(),
            memtable_mib: default_memtable_mib(),
        }
    }
}

fn default_cache_mib() -> u64 {
    64
}

fn default_memtable_mib() -> u64 {
    64
}

fn default_store_url() -> String {
    // systemd sets STATE_DIRECTORY from `StateDirectory=`.
    let dir = std::env::var_os("STATE_DIRECTORY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("certkeeper-data"));
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    format!("surrealkv://{}", dir.join("store").display())
}

fn default_namespace() -> String {
    "certkeeper".into()
}

fn default_database() -> String {
    "main".into()
}
