//! Importing certificate files and uploads into the inventory.
//!
//! [`import_path`] is the one entry point for files, used by the CLI, the API
//! and `import` jobs alike: it parses with `certkeeper_model::inventory::parse`
//! and records through [`Store::record_certificates`], so an import is one
//! store operation (certificates, sightings and counters in one transaction).

use std::path::Path;

use certkeeper_model::inventory::parse::{ParseError, parse_certificates};
use certkeeper_model::inventory::{CertificateRecord, SightingKind};
use serde::{Deserialize, Serialize};

use crate::{Store, StoreError};

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportOutcome {
    /// Certificates new to the inventory.
    pub added: Vec<String>,
    /// Certificates already known (a sighting was added or refreshed).
    pub known: Vec<String>,
}

/// Imports the certificates in one file, recording a `file` sighting (or
/// `import` for hand uploads).
pub async fn import_path(
    store: &Store,
    path: &Path,
    kind: SightingKind,
    expiring_days: u32,
) -> Result<ImportOutcome, ImportError> {
    let bytes = std::fs::read(path).map_err(|source| ImportError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let location = std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string();
    import_bytes(store, &bytes, kind, &location, expiring_days).await
}

/// Imports certificates from bytes (PEM or DER) seen at `location`.
pub async fn import_bytes(
    store: &Store,
    bytes: &[u8],
    kind: SightingKind,
    location: &str,
    expiring_days: u32,
) -> Result<ImportOutcome, ImportError> {
    let certs = parse_certificates(bytes).map_err(|source| ImportError::Parse {
        location: location.to_string(),
        source,
    })?;
    let now = chrono::Utc::now().timestamp();
    let records: Vec<CertificateRecord> = certs
        .into_iter()
        .map(|c| CertificateRecord::discovered(c, now, expiring_days))
        .collect();
    Ok(store
        .record_certificates(&records, kind, location, now)
        .await?)
}

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The input held no certificate, or a malformed one.
    #[error("{location}: {source}")]
    Parse {
        /// Where the input came from.
        location: String,
        /// What was wrong.
        source: ParseError,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
