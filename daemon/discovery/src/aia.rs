//! Fetching a leaf's issuer from its Authority Information Access caIssuers
//! URL (RFC 5280 §4.2.2.1), so that a server that leaves out an
//! intermediate is told to send it (`incomplete_chain`) rather than told its
//! CA is unknown (`untrusted`).
//!
//! Off unless the policy holds a [`Fetcher`] ([`crate::findings::Policy::aia`]).
//! [`crate::scan::check_online`] calls [`Fetcher::issuers`] only for a chain
//! that came out `untrusted`, and checks it again with what was fetched as
//! [`crate::findings::Context::fetched`]: a fetched certificate is never
//! trusted by itself, the chain must still reach a root of the trust store.
//!
//! The URL comes from the certificate, so from whoever made it: fetches are
//! plain HTTP through [`crate::fetch`] (no redirects, the address filter on
//! every resolved address, a short timeout, a 64 KiB cap by default), and
//! answers are cached by URL (failures for a shorter time), so an estate of
//! endpoints under one CA fetches its issuer once. The answer is one DER
//! certificate or a PKCS#7 certs-only bundle (DER or PEM), as CAs publish.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openssl::nid::Nid;
use openssl::pkcs7::Pkcs7;
use openssl::x509::X509;

use crate::fetch::{self, AddressFilter, FetchError, Limits};
use certkeeper_model::inventory::ParsedCertificate;
use certkeeper_model::inventory::parse::parse_der;

/// URLs whose answers are kept at once; the cache is cleared when full.
const MAX_CACHED: usize = 4096;

/// How the [`Fetcher`] fetches.
#[derive(Clone)]
pub struct AiaOptions {
    /// Resolving, connecting and reading one URL, all together. Default 3 s.
    pub timeout: Duration,
    /// Largest answer accepted, in bytes. Default 64 KiB.
    pub max_bytes: usize,
    /// How long a fetched issuer is kept. Default 24 hours.
    pub cache_ttl: Duration,
    /// How long a failed fetch is remembered (not retried). Default 10 minutes.
    pub failure_ttl: Duration,
    /// Addresses that may be connected to. Default: all; the daemon passes
    /// its outbound-URL policy.
    pub address_filter: AddressFilter,
}

impl Default for AiaOptions {
    fn default() -> Self {
        AiaOptions {
            timeout: Duration::from_secs(3),
            max_bytes: 64 * 1024,
            cache_ttl: Duration::from_secs(24 * 3600),
            failure_ttl: Duration::from_secs(600),
            address_filter: fetch::allow_all(),
        }
    }
}

impl fmt::Debug for AiaOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AiaOptions")
            .field("timeout", &self.timeout)
            .field("max_bytes", &self.max_bytes)
            .field("cache_ttl", &self.cache_ttl)
            .field("failure_ttl", &self.failure_ttl)
            .finish_non_exhaustive()
    }
}

/// Why an issuer could not be fetched.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AiaError {
    /// The fetch itself failed.
    #[error("AIA caIssuers: {0}")]
    Fetch(#[from] FetchError),
    /// The answer is neither a DER certificate nor a PKCS#7 bundle.
    #[error("AIA caIssuers {url}: the answer is not a DER certificate or a PKCS#7 bundle")]
    Malformed {
        /// The URL fetched.
        url: String,
    },
}

impl AiaError {
    /// Whether a later fetch may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            AiaError::Fetch(error) => error.is_transient(),
            AiaError::Malformed { .. } => false,
        }
    }
}

/// A cached answer.
struct Cached {
    until: Instant,
    answer: Result<Arc<[ParsedCertificate]>, AiaError>,
}

/// Fetches and caches issuers at caIssuers URLs. Share one between scans
/// (in an `Arc`) to share the cache.
pub struct Fetcher {
    options: AiaOptions,
    cache: Mutex<HashMap<String, Cached>>,
}

impl fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fetcher")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Fetcher {
    /// A fetcher with an empty cache.
    pub fn new(options: AiaOptions) -> Self {
        Fetcher {
            options,
            cache: Mutex::default(),
        }
    }

    /// The certificates published at `cert`'s caIssuers URLs (`http://`
    /// ones; others are skipped), from the cache where fetched before.
    /// Empty when the certificate names none.
    ///
    /// # Errors
    ///
    /// The first URL's error when no URL gave a certificate.
    pub async fn issuers(
        &self,
        cert: &ParsedCertificate,
    ) -> Result<Vec<ParsedCertificate>, AiaError> {
        let mut found = Vec::new();
        let mut first_error = None;
        for url in ca_issuers_urls(cert)
            .into_iter()
            .filter(|u| u.starts_with("http://"))
        {
            match self.fetch(&url).await {
                Ok(certs) => found.extend(certs.iter().cloned()),
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        match first_error {
            Some(error) if found.is_empty() => Err(error),
            _ => Ok(found),
        }
    }

    /// The certificates at `url`, from the cache when fresh there.
    ///
    /// # Errors
    ///
    /// [`AiaError`] when the fetch fails or the answer is not certificates
    /// (remembered for [`AiaOptions::failure_ttl`]).
    pub async fn fetch(&self, url: &str) -> Result<Arc<[ParsedCertificate]>, AiaError> {
        let now = Instant::now();
        if let Some(cached) = self.cache.lock().ok().and_then(|c| {
            c.get(url)
                .filter(|e| e.until > now)
                .map(|e| e.answer.clone())
        }) {
            return cached;
        }
        let limits = Limits {
            timeout: self.options.timeout,
            max_bytes: self.options.max_bytes,
            filter: self.options.address_filter.clone(),
        };
        let answer = match fetch::get(url, &limits).await {
            Ok(body) => parse_issuers(&body)
                .map(Arc::from)
                .ok_or_else(|| AiaError::Malformed {
                    url: url.to_owned(),
                }),
            Err(error) => Err(AiaError::from(error)),
        };
        let ttl = if answer.is_ok() {
            self.options.cache_ttl
        } else {
            self.options.failure_ttl
        };
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
            cache.insert(
                url.to_owned(),
                Cached {
                    until: now + ttl,
                    answer: answer.clone(),
                },
            );
        }
        answer
    }
}

/// The caIssuers URLs of a certificate's AIA extension, in order.
pub fn ca_issuers_urls(cert: &ParsedCertificate) -> Vec<String> {
    access_urls(cert, Nid::AD_CA_ISSUERS)
}

/// The URLs of one access method (caIssuers, OCSP) of a certificate's AIA
/// extension.
pub(crate) fn access_urls(cert: &ParsedCertificate, method: Nid) -> Vec<String> {
    let Ok(x509) = X509::from_pem(cert.pem.as_bytes()) else {
        return Vec::new();
    };
    x509.authority_info()
        .map(|access| {
            access
                .iter()
                .filter(|d| d.method().nid() == method)
                .filter_map(|d| d.location().uri().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A DER certificate, or the certificates of a PKCS#7 bundle (DER or PEM);
/// `None` when the bytes are neither or hold no certificate.
fn parse_issuers(body: &[u8]) -> Option<Vec<ParsedCertificate>> {
    if let Ok(cert) = parse_der(body) {
        return Some(vec![cert]);
    }
    let pkcs7 = Pkcs7::from_der(body)
        .or_else(|_| Pkcs7::from_pem(body))
        .ok()?;
    let stack = pkcs7.signed().and_then(|s| s.certificates())?;
    let certs: Vec<ParsedCertificate> = stack
        .iter()
        .filter_map(|x509| x509.to_der().ok())
        .filter_map(|der| parse_der(&der).ok())
        .collect();
    (!certs.is_empty()).then_some(certs)
}
