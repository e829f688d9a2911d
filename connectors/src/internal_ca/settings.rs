//! Settings of the internal CA connector, which the daemon fills from its
//! `[[connector]] type = "internal_ca"` configuration, the key passphrase being a
//! [`Secret`] whose `Debug` never shows it.
//!
//! The settings are checked once, when the CA is opened, so a bad
//! configuration fails at start-up rather than on the first request.

use std::path::PathBuf;
use std::time::Duration;

use super::{CaError, CaSource, IssuancePolicy};

pub use crate::Secret;

/// Where and how the CRL is published.
#[derive(Debug, Clone)]
pub struct CrlSettings {
    /// URL put in every certificate's cRLDistributionPoints, if any; where
    /// relying parties fetch the CRL (`http://pki.example.com/issuing.crl`).
    pub distribution_url: Option<String>,
    /// File the DER CRL is written to (atomically) whenever it changes, for
    /// a web server to serve; `None` to only expose it through the API.
    pub path: Option<PathBuf>,
    /// Time from thisUpdate to nextUpdate; a new CRL is signed once two
    /// thirds of it have passed.
    pub validity: Duration,
}

impl Default for CrlSettings {
    fn default() -> Self {
        Self {
            distribution_url: None,
            path: None,
            validity: Duration::from_secs(7 * 86_400),
        }
    }
}

/// Settings of an internal CA connector (`[[connector]] type = "internal_ca"`).
#[derive(Debug, Clone)]
pub struct InternalCaSettings {
    /// The connector's configured name, used in errors and logs.
    pub name: String,
    /// Passphrase the CA's private keys are encrypted under in the state
    /// store. Changing it makes the stored keys unreadable.
    pub passphrase: Secret,
    /// How the CA is created the first time; ignored once the store holds
    /// one, except that an `Import` must match the stored CA.
    pub ca: CaSource,
    /// What the CA will sign.
    pub policy: IssuancePolicy,
    /// CRL publication.
    pub crl: CrlSettings,
    /// How far notBefore (and a CRL's thisUpdate) is set in the past, so
    /// relying parties whose clocks run slow accept a fresh certificate.
    pub backdate: Duration,
}

impl InternalCaSettings {
    /// Settings with the default policy (which allows no names yet), CRL
    /// settings and a five-minute backdate.
    pub fn new(name: impl Into<String>, passphrase: Secret, ca: CaSource) -> Self {
        Self {
            name: name.into(),
            passphrase,
            ca,
            policy: IssuancePolicy::default(),
            crl: CrlSettings::default(),
            backdate: Duration::from_secs(300),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), CaError> {
        if self.passphrase.expose().is_empty() {
            return Err(CaError::Config("the CA key passphrase is empty".into()));
        }
        self.policy.validate().map_err(CaError::Config)?;
        if self.crl.validity < Duration::from_secs(3600) {
            return Err(CaError::Config(
                "the CRL validity must be at least an hour".into(),
            ));
        }
        if let Some(url) = &self.crl.distribution_url {
            let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
            if !scheme_ok || !url.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(CaError::Config(format!(
                    "CRL distribution URL `{url}` is not an http(s) URL"
                )));
            }
        }
        if self.backdate > Duration::from_secs(86_400) {
            return Err(CaError::Config("backdate must be at most a day".into()));
        }
        Ok(())
    }
}
