//! The store: SurrealDB through the `surrealdb` crate, embedded or remote.
//!
//! One code path serves every deployment: `surrealkv://PATH` (embedded, the
//! default; one process at a time), `mem://` (tests), and `ws://`/`wss://` to a
//! SurrealDB server, which organisations that outgrow one machine run on TiKV.
//! The schema is explicit (see [`migrations`]) and versioned; [`Store::open`]
//! applies what is missing, so every start brings an old store up to date.
//!
//! Submodules hold the queries of one concept each: [`inventory`] for
//! certificates and sightings, [`import`] for files and uploads into them,
//! [`findings`] for installation findings, [`jobs`] for scheduled job runs and
//! leases, [`leases`] for fenced leases on side effects, [`managed`] for
//! managed certificates' lifecycle state, [`outbox`] for lifecycle events,
//! [`connector_state`] for connectors' own state, [`alerts`] for the alert
//! ledger and deliveries, [`accounts`], [`audit`], [`requests`] and [`units`]
//! for administration, [`vault`] for sealing.
//! The store sits on `certkeeper-model` and knows nothing of the daemon's
//! config, API or scheduler.
//! Timestamps are stored as Unix seconds (`int`), which index and compare
//! cheaply and cross the JSON boundary unchanged.

pub mod accounts;
pub mod alerts;
pub mod audit;
pub mod ca_import;
mod config;
pub mod connector_state;
pub mod contacts;
pub mod ct;
pub mod findings;
pub mod import;
pub mod inventory;
pub mod jobs;
pub mod leases;
pub mod ledger;
pub mod managed;
pub mod migrations;
pub mod outbox;
pub mod requests;
pub mod retire;
pub mod shards;
pub mod units;
pub mod vault;

use std::sync::Arc;

use serde::de::DeserializeOwned;
use surrealdb::Surreal;
use surrealdb::engine::any::Any;
use surrealdb::engine::local::Db;

pub use config::StoreConfig;

/// An error from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store URL is not one Certkeeper can use.
    #[error("store url: {0}")]
    Url(String),
    /// SurrealDB refused a query or the connection failed.
    #[error("store: {0}")]
    Db(#[from] surrealdb::Error),
    /// A row did not have the shape the schema promises.
    #[error("store returned an unexpected row: {0}")]
    Decode(#[from] serde_json::Error),
    /// The embedded engine could not be started.
    #[error("store engine: {0}")]
    Engine(String),
    /// A record was changed by another writer since it was read (its
    /// version moved on); nothing was written. Read it again and redo.
    #[error("{0} was changed by another writer since it was read")]
    Changed(String),
    /// A write under a lease that another holder has taken since (its
    /// epoch moved on); nothing was written. Stop acting on it.
    #[error("{0}: the lease was taken over by another daemon; this late write was refused")]
    Fenced(String),
    /// The embedded store is held by another process (a running daemon).
    #[error(
        "the embedded store at {0} is in use by another process (is the daemon running? use the API, or stop it)"
    )]
    Locked(String),
}

impl StoreError {
    /// Whether retrying may help (a transaction conflict between writers).
    pub fn is_conflict(&self) -> bool {
        match self {
            Self::Db(e) => {
                let m = e.to_string().to_lowercase();
                m.contains("conflict") || m.contains("retry")
            }
            _ => false,
        }
    }
}

/// A parsed store URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// Embedded SurrealKV at this directory.
    SurrealKv(std::path::PathBuf),
    /// In memory; lost on exit.
    Memory,
    /// A remote SurrealDB server.
    Remote(String),
}

impl StoreUrl {
    /// Parses `surrealkv://PATH`, `mem://`, `ws://HOST:PORT`, `wss://HOST:PORT`.
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        if let Some(path) = url.strip_prefix("surrealkv://") {
            if path.is_empty() {
                return Err(StoreError::Url(format!(
                    "`{url}` names no directory; expected surrealkv:///absolute/path"
                )));
            }
            Ok(Self::SurrealKv(path.into()))
        } else if url == "mem://" || url == "memory" {
            Ok(Self::Memory)
        } else if url.starts_with("ws://") || url.starts_with("wss://") {
            Ok(Self::Remote(url.to_string()))
        } else {
            Err(StoreError::Url(format!(
                "`{url}` is not supported; expected surrealkv:///path, mem://, ws://host:port or wss://host:port"
            )))
        }
    }
}

/// The SDK handle: an engine in this process, or a client of a server.
///
/// Held in an `Arc` so that cloning the [`Store`] shares one session: cloning
/// a `Surreal` handle opens a new session (an RPC `attach` on a remote
/// server), and a server caps the sessions one connection may attach (256
/// by default), beyond which every query is refused with "Method not allowed".
#[derive(Clone)]
enum Connection {
    Embedded(Arc<Surreal<Db>>),
    Remote(Arc<Surreal<Any>>),
}

/// A connection to the store, cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: Connection,
    /// For an embedded store, an exclusive lock on `<dir>.lock` held while
    /// the store is open, so a second process (a CLI next to a running
    /// daemon) is refused instead of corrupting it.
    _lock: Option<Arc<std::fs::File>>,
    /// The embedded store's directory, to wait for its engine on close.
    embedded: Option<std::path::PathBuf>,
}

impl Store {
    /// Connects, signs in where the server needs it, and applies migrations.
    pub async fn open(config: &StoreConfig) -> Result<Self, StoreError> {
        let url = config.parsed_url()?;
        let lock = match &url {
            StoreUrl::SurrealKv(dir) => Some(Arc::new(lock_embedded(dir)?)),
            _ => None,
        };
        let db = match &url {
            StoreUrl::Remote(_) => {
                let db = surrealdb::engine::any::connect(config.url.as_str()).await?;
                if let (Some(username), Some(password)) = (&config.username, &config.password) {
                    db.signin(surrealdb::opt::auth::Root {
                        username: username.clone(),
                        password: password.expose().to_string(),
                    })
                    .await?;
                }
                Connection::Remote(Arc::new(db))
            }
            StoreUrl::SurrealKv(_) | StoreUrl::Memory => {
                Connection::Embedded(Arc::new(open_embedded(&url, config).await?))
            }
        };
        let define = format!(
            "DEFINE NAMESPACE IF NOT EXISTS `{}`; USE NS `{}`; DEFINE DATABASE IF NOT EXISTS `{}`;",
            config.namespace, config.namespace, config.database
        );
        match &db {
            Connection::Embedded(db) => {
                db.query(define).await?.check()?;
                db.use_ns(&config.namespace)
                    .use_db(&config.database)
                    .await?;
            }
            Connection::Remote(db) => {
                db.query(define).await?.check()?;
                db.use_ns(&config.namespace)
                    .use_db(&config.database)
                    .await?;
            }
        }
        let embedded = match url {
            StoreUrl::SurrealKv(dir) => Some(dir),
            _ => None,
        };
        let store = Self {
            db,
            _lock: lock,
            embedded,
        };
        migrations::apply(&store).await?;
        Ok(store)
    }

    /// Closes the store and, for an embedded one, waits (up to `timeout`)
    /// until the engine has flushed its memtable and released the directory,
    /// so the next start does not replay the write-ahead log into memory.
    /// Every other clone must be dropped first; otherwise this waits in vain
    /// and the engine closes when the process exits (nothing is lost: the
    /// write-ahead log is replayed on the next start).
    pub async fn close(self, timeout: std::time::Duration) {
        let Self {
            db,
            _lock,
            embedded,
        } = self;
        drop(db);
        let Some(dir) = embedded else { return };
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // SurrealKV holds an exclusive lock on <dir>/LOCK while open.
            let released = std::fs::File::open(dir.join("LOCK"))
                .map(|f| f.try_lock().is_ok())
                .unwrap_or(true);
            if released {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(dir = %dir.display(), "the store did not close in time; it will recover from its log on the next start");
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// An in-memory store with the schema applied, for tests.
    pub async fn memory() -> Result<Self, StoreError> {
        Self::open(&StoreConfig {
            url: "mem://".into(),
            ..StoreConfig::default()
        })
        .await
    }

    /// Runs SurrealQL with variables bound from a JSON object and returns the
    /// raw response.
    pub(crate) async fn run(
        &self,
        sql: &str,
        mut vars: serde_json::Value,
    ) -> Result<surrealdb::IndexedResults, StoreError> {
        strip_nulls(&mut vars);
        let mut response = match &self.db {
            Connection::Embedded(db) => db.query(sql).bind(vars).await?,
            Connection::Remote(db) => db.query(sql).bind(vars).await?,
        };
        let mut errors: Vec<(usize, surrealdb::Error)> =
            response.take_errors().into_iter().collect();
        if errors.is_empty() {
            return Ok(response);
        }
        // In a failed transaction every statement reports "not executed";
        // the one worth showing is the statement that actually failed.
        errors.sort_by_key(|(i, e)| {
            (
                e.to_string()
                    .contains("not executed due to a failed transaction"),
                *i,
            )
        });
        Err(StoreError::Db(errors.swap_remove(0).1))
    }

    /// Runs SurrealQL as given, for maintenance: repairs by hand, and tests
    /// that tamper with the store to prove the audit log notices.
    pub async fn execute(&self, sql: &str, vars: serde_json::Value) -> Result<(), StoreError> {
        self.run(sql, vars).await.map(|_| ())
    }

    /// Runs a claiming transaction (`BEGIN ...; SELECT what was claimed;
    /// COMMIT`) and returns the row it claimed, or `None` when another
    /// writer has it: a conflict still there after the retries counts as
    /// losing the race.
    pub(crate) async fn claim_one<T: DeserializeOwned>(
        &self,
        sql: &str,
        vars: serde_json::Value,
    ) -> Result<Option<T>, StoreError> {
        let result = with_conflict_retry(|| async {
            let mut response = self.run(sql, vars.clone()).await?;
            take_returned::<T>(&mut response)
        })
        .await;
        match result {
            Ok(rows) => Ok(rows.into_iter().next()),
            Err(e) if e.is_conflict() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Runs SurrealQL and decodes statement `index`'s rows.
    pub(crate) async fn rows<T: DeserializeOwned>(
        &self,
        sql: &str,
        vars: serde_json::Value,
        index: usize,
    ) -> Result<Vec<T>, StoreError> {
        let mut response = self.run(sql, vars).await?;
        take_rows(&mut response, index)
    }
}

/// Decodes what a `BEGIN ...; RETURN x; COMMIT` query returned: the
/// statement before the `COMMIT` (which counts as a statement of its own).
pub(crate) fn take_returned<T: DeserializeOwned>(
    response: &mut surrealdb::IndexedResults,
) -> Result<Vec<T>, StoreError> {
    let index = response.num_statements().saturating_sub(2);
    take_rows(response, index)
}

/// Removes `null` members from objects, recursively. SurrealDB tells `NULL`
/// from `NONE` and an `option<T>` field takes only `NONE`, which is what an
/// absent member or an unbound variable is.
pub(crate) fn strip_nulls(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// Decodes statement `index` of a response into rows.
pub(crate) fn take_rows<T: DeserializeOwned>(
    response: &mut surrealdb::IndexedResults,
    index: usize,
) -> Result<Vec<T>, StoreError> {
    let rows: Vec<serde_json::Value> = response.take(index)?;
    rows.into_iter()
        .map(|row| serde_json::from_value(row).map_err(StoreError::from))
        .collect()
}

/// Starts the embedded engine with its memory bounded by `[store]`.
///
/// `surrealdb::engine::any::connect` would size SurrealKV's memtable and block
/// cache from the host's RAM (1 GiB and half of RAM on a 24 GiB machine),
/// and takes no option to change that; a certificate daemon should stay
/// small whatever machine it shares. So the datastore is built here, the way
/// the SDK's own local engine builds it, with the sizes from the config.
async fn open_embedded(url: &StoreUrl, config: &StoreConfig) -> Result<Surreal<Db>, StoreError> {
    const MIB: u64 = 1024 * 1024;
    let engine = |e: anyhow::Error| StoreError::Engine(format!("{e:#}"));
    let path = match url {
        StoreUrl::SurrealKv(dir) => format!("surrealkv://{}", dir.display()),
        _ => "memory".to_string(),
    };
    let settings = surrealdb_cnf::ConfigMap::empty()
        .with_key_value(
            "surrealkv_block_cache_capacity",
            (config.cache_mib * MIB).to_string(),
        )
        .with_key_value(
            "surrealkv_max_memtable_size",
            (config.memtable_mib * MIB).to_string(),
        );
    let kvs = surrealdb_engine_local::Datastore::builder()
        .with_config(settings)
        .without_maintenance_tasks()
        .build_with_path(&path)
        .await
        .map_err(engine)?;
    kvs.check_version().await.map_err(engine)?;
    kvs.bootstrap().await.map_err(engine)?;
    kvs.start_maintenance_tasks();
    Ok(Surreal::<Db>::unstable_from_datastore(Arc::clone(&kvs), None).await?)
}

/// Takes the exclusive lock of an embedded store directory.
fn lock_embedded(dir: &std::path::Path) -> Result<std::fs::File, StoreError> {
    let io = |e: std::io::Error| StoreError::Url(format!("cannot prepare {}: {e}", dir.display()));
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let mut name = dir.as_os_str().to_owned();
    name.push(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(std::path::PathBuf::from(name))
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(StoreError::Locked(dir.display().to_string()))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
    }
}

/// Retries `op` a few times when it fails on a transaction conflict, which
/// happens when two writers touch the same rows (counters, leases).
pub(crate) async fn with_conflict_retry<T, F, Fut>(mut op: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut attempt = 0u32;
    loop {
        match op().await {
            Err(e) if e.is_conflict() && attempt < 8 => {
                attempt += 1;
                let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0]) % 20;
                tokio::time::sleep(std::time::Duration::from_millis(
                    5 * u64::from(attempt) + jitter,
                ))
                .await;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_embedded_store_admits_one_holder() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        let held = lock_embedded(&store).unwrap();
        let err = lock_embedded(&store).unwrap_err().to_string();
        assert!(err.contains("in use by another process"), "{err}");
        drop(held);
        assert!(lock_embedded(&store).is_ok());
    }

    #[test]
    fn urls() {
        assert_eq!(StoreUrl::parse("mem://").unwrap(), StoreUrl::Memory);
        assert_eq!(
            StoreUrl::parse("surrealkv:///var/lib/certkeeper/store").unwrap(),
            StoreUrl::SurrealKv("/var/lib/certkeeper/store".into())
        );
        assert!(matches!(
            StoreUrl::parse("ws://db:8000").unwrap(),
            StoreUrl::Remote(_)
        ));
        let err = StoreUrl::parse("postgres://x").unwrap_err().to_string();
        assert!(err.contains("surrealkv://"), "{err}");
    }
}
