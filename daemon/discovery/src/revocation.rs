//! Revocation checks: whether a leaf's CA has revoked it, asked of its OCSP
//! responder (the AIA OCSP URL, RFC 6960) and, failing that, read from its
//! CRL distribution point (RFC 5280 §4.2.1.13). A revoked leaf is the
//! `revoked` finding.
//!
//! Off unless the policy holds a [`Checker`]
//! ([`crate::findings::Policy::revocation`]); [`crate::scan::check_online`]
//! runs it after the synchronous check, or call [`Checker::check`] with a
//! chain and its issuer. Only a *verified* answer counts: the OCSP response
//! must be signed by the issuer (or a responder it delegated to) and cover
//! the leaf, the CRL must be the issuer's and signed by it. Anything else,
//! and every network failure, is a [`RevocationError`], never a finding: a
//! responder that is down is not evidence that a certificate is revoked.
//!
//! Bounds, since the URLs come from certificates: each request has its own
//! timeout and the whole check an overall one, OCSP answers and CRLs have
//! size caps, fetches are plain HTTP without redirects and go only to
//! addresses the [`AddressFilter`] allows ([`crate::fetch`]). Answers are
//! cached: CRLs by URL until their nextUpdate, OCSP answers by (issuer,
//! serial) until theirs, both at most [`RevocationOptions::max_ttl`].

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openssl::asn1::{Asn1GeneralizedTimeRef, Asn1Time, Asn1TimeRef};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::ocsp::{
    OcspCertId, OcspCertStatus, OcspFlag, OcspRequest, OcspResponse, OcspResponseStatus,
};
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::{CrlStatus, ReasonCode, X509, X509Crl};

use crate::fetch::{self, AddressFilter, FetchError, Limits};
use crate::findings::issued_by;
use crate::model::{Finding, FindingCode};
use certkeeper_model::inventory::ParsedCertificate;

/// Cached answers kept at once, per kind; a cache is cleared when full.
const MAX_CACHED: usize = 16_384;

/// Clock skew allowed on an OCSP answer's thisUpdate/nextUpdate, in seconds.
const OCSP_LEEWAY: u32 = 300;

/// How the [`Checker`] checks.
#[derive(Clone)]
pub struct RevocationOptions {
    /// One OCSP request or CRL download, connect to last byte. Default 5 s.
    pub request_timeout: Duration,
    /// The whole check of one certificate, every source tried. Default 15 s.
    pub overall_timeout: Duration,
    /// Largest CRL accepted, in bytes. Default 4 MiB.
    pub max_crl_bytes: usize,
    /// Largest OCSP answer accepted, in bytes. Default 64 KiB.
    pub max_ocsp_bytes: usize,
    /// How long an answer without nextUpdate is kept. Default 1 hour.
    pub default_ttl: Duration,
    /// The longest an answer is kept, whatever its nextUpdate. Default 24
    /// hours.
    pub max_ttl: Duration,
    /// Addresses that may be connected to. Default: all; the daemon passes
    /// its outbound-URL policy.
    pub address_filter: AddressFilter,
}

impl Default for RevocationOptions {
    fn default() -> Self {
        RevocationOptions {
            request_timeout: Duration::from_secs(5),
            overall_timeout: Duration::from_secs(15),
            max_crl_bytes: 4 * 1024 * 1024,
            max_ocsp_bytes: 64 * 1024,
            default_ttl: Duration::from_secs(3600),
            max_ttl: Duration::from_secs(24 * 3600),
            address_filter: fetch::allow_all(),
        }
    }
}

impl fmt::Debug for RevocationOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevocationOptions")
            .field("request_timeout", &self.request_timeout)
            .field("overall_timeout", &self.overall_timeout)
            .field("max_crl_bytes", &self.max_crl_bytes)
            .field("max_ocsp_bytes", &self.max_ocsp_bytes)
            .field("default_ttl", &self.default_ttl)
            .field("max_ttl", &self.max_ttl)
            .finish_non_exhaustive()
    }
}

/// Where an answer came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An OCSP responder, by URL.
    Ocsp(String),
    /// A CRL, by URL.
    Crl(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Ocsp(url) => write!(f, "the OCSP responder {url}"),
            Source::Crl(url) => write!(f, "the CRL {url}"),
        }
    }
}

/// A revocation, as the CA published it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// When the CA revoked the certificate, in Unix seconds, if readable.
    pub revoked_at: Option<i64>,
    /// The RFC 5280 reason (`keyCompromise`, `superseded`, ...), if given.
    pub reason: Option<&'static str>,
    /// Who said so.
    pub source: Source,
}

/// A certificate's verified revocation status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Not revoked, according to this source.
    Good(Source),
    /// Revoked.
    Revoked(Revocation),
}

/// Why no verified answer was had. Cheap to clone, so that caches and
/// reports can keep it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RevocationError {
    /// The issuer certificate, needed to verify any answer, is not at hand.
    #[error(
        "revocation not checked: the leaf's issuer {issuer} was not sent and is no known intermediate"
    )]
    NoIssuer {
        /// The issuer DN.
        issuer: String,
    },
    /// The certificate names no `http://` OCSP responder or CRL.
    #[error("revocation not checked: the certificate names no http:// OCSP responder or CRL")]
    NoSource,
    /// A request failed.
    #[error("revocation check: {0}")]
    Fetch(#[from] FetchError),
    /// An answer came but cannot be trusted or used.
    #[error("revocation check: the answer of {from} is unusable: {reason}")]
    Unverifiable {
        /// Who answered.
        from: Source,
        /// Why it does not count.
        reason: String,
    },
    /// The OCSP responder does not know the certificate.
    #[error("revocation check: {from} answers that it does not know the certificate")]
    Unknown {
        /// Who answered.
        from: Source,
    },
    /// A certificate could not be read by OpenSSL.
    #[error("revocation check: cannot read the certificate {fingerprint}")]
    Certificate {
        /// Its SHA-256 fingerprint.
        fingerprint: String,
    },
    /// The overall bound passed before any verified answer.
    #[error("revocation check: no verified answer within {secs} s")]
    Timeout {
        /// The bound, in seconds.
        secs: u64,
    },
    /// Every source failed, each for its reason.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    AllFailed(Vec<RevocationError>),
}

impl RevocationError {
    /// Whether a later check may succeed (network trouble, a timeout, a
    /// responder that answered badly this time).
    pub fn is_transient(&self) -> bool {
        match self {
            RevocationError::Fetch(error) => error.is_transient(),
            RevocationError::Timeout { .. } | RevocationError::Unverifiable { .. } => true,
            RevocationError::AllFailed(errors) => errors.iter().any(Self::is_transient),
            RevocationError::NoIssuer { .. }
            | RevocationError::NoSource
            | RevocationError::Unknown { .. }
            | RevocationError::Certificate { .. } => false,
        }
    }
}

/// A CRL in the cache, until its nextUpdate (bounded).
struct CachedCrl {
    until: i64,
    crl: Arc<X509Crl>,
}

/// An OCSP status in the cache.
struct CachedStatus {
    until: i64,
    status: Status,
}

/// Checks revocation and caches the answers. Share one between scans (in an
/// `Arc`) to share the cache.
pub struct Checker {
    options: RevocationOptions,
    crls: Mutex<HashMap<String, CachedCrl>>,
    /// By (issuer fingerprint, serial).
    ocsp: Mutex<HashMap<(String, String), CachedStatus>>,
}

impl fmt::Debug for Checker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checker")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Checker {
    /// A checker with empty caches.
    pub fn new(options: RevocationOptions) -> Self {
        Checker {
            options,
            crls: Mutex::default(),
            ocsp: Mutex::default(),
        }
    }

    /// The `revoked` finding for `chain`'s leaf, or `None` when a verified
    /// answer says it is not revoked (or the leaf is self-signed, so no CA
    /// can revoke it). `issuer` is the leaf's issuer; `None` looks for it in
    /// the rest of the chain.
    ///
    /// # Errors
    ///
    /// [`RevocationError`] when no source gave a verified answer: then
    /// nothing is known, and nothing is a finding.
    pub async fn check(
        &self,
        chain: &[ParsedCertificate],
        issuer: Option<&ParsedCertificate>,
    ) -> Result<Option<Finding>, RevocationError> {
        let Some(leaf) = chain.first() else {
            return Ok(None);
        };
        if leaf.self_signed {
            return Ok(None);
        }
        let issuer = issuer
            .or_else(|| chain.iter().skip(1).find(|ca| issued_by(leaf, ca)))
            .ok_or_else(|| RevocationError::NoIssuer {
                issuer: leaf.issuer.clone(),
            })?;
        Ok(match self.status(leaf, issuer).await? {
            Status::Good(_) => None,
            Status::Revoked(revocation) => Some(finding(&revocation)),
        })
    }

    /// The verified revocation status of `leaf`, issued by `issuer`: its
    /// OCSP responders first, then its CRLs, until one gives a verified
    /// answer; all within [`RevocationOptions::overall_timeout`].
    ///
    /// # Errors
    ///
    /// As [`Checker::check`].
    pub async fn status(
        &self,
        leaf: &ParsedCertificate,
        issuer: &ParsedCertificate,
    ) -> Result<Status, RevocationError> {
        let decode = |cert: &ParsedCertificate| {
            X509::from_pem(cert.pem.as_bytes()).map_err(|_| RevocationError::Certificate {
                fingerprint: cert.fingerprint.clone(),
            })
        };
        let (leaf_x509, issuer_x509) = (decode(leaf)?, decode(issuer)?);
        let ocsp_urls = crate::aia::access_urls(leaf, Nid::AD_OCSP);
        let crl_urls = crl_urls(&leaf_x509);
        let work = async {
            let mut errors = Vec::new();
            for url in ocsp_urls.iter().filter(|u| u.starts_with("http://")) {
                match self.ocsp(&leaf_x509, &issuer_x509, issuer, leaf, url).await {
                    Ok(status) => return Ok(status),
                    Err(error) => errors.push(error),
                }
            }
            for url in crl_urls.iter().filter(|u| u.starts_with("http://")) {
                match self.crl(&leaf_x509, &issuer_x509, url).await {
                    Ok(status) => return Ok(status),
                    Err(error) => errors.push(error),
                }
            }
            Err(match errors.len() {
                0 => RevocationError::NoSource,
                1 => errors.remove(0),
                _ => RevocationError::AllFailed(errors),
            })
        };
        tokio::time::timeout(self.options.overall_timeout, work)
            .await
            .map_err(|_| RevocationError::Timeout {
                secs: self.options.overall_timeout.as_secs().max(1),
            })?
    }

    fn limits(&self, max_bytes: usize) -> Limits {
        Limits {
            timeout: self.options.request_timeout,
            max_bytes,
            filter: self.options.address_filter.clone(),
        }
    }

    /// Until when an answer is kept: its nextUpdate, at most `max_ttl` away;
    /// `default_ttl` without one.
    fn keep_until(&self, now: i64, next_update: Option<i64>) -> i64 {
        let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        next_update
            .unwrap_or(now.saturating_add(secs(self.options.default_ttl)))
            .min(now.saturating_add(secs(self.options.max_ttl)))
    }

    async fn ocsp(
        &self,
        leaf: &X509,
        issuer: &X509,
        issuer_cert: &ParsedCertificate,
        leaf_cert: &ParsedCertificate,
        url: &str,
    ) -> Result<Status, RevocationError> {
        let now = chrono::Utc::now().timestamp();
        let key = (issuer_cert.fingerprint.clone(), leaf_cert.serial.clone());
        if let Some(status) = self.ocsp.lock().ok().and_then(|c| {
            c.get(&key)
                .filter(|e| e.until > now)
                .map(|e| e.status.clone())
        }) {
            return Ok(status);
        }
        let from = Source::Ocsp(url.to_owned());
        let unusable = |reason: String| RevocationError::Unverifiable {
            from: from.clone(),
            reason,
        };
        let request = (|| {
            let mut request = OcspRequest::new()?;
            request.add_id(OcspCertId::from_cert(MessageDigest::sha1(), leaf, issuer)?)?;
            request.to_der()
        })()
        .map_err(|e| unusable(format!("cannot build the request: {e}")))?;
        let body = fetch::post(
            url,
            "application/ocsp-request",
            &request,
            &self.limits(self.options.max_ocsp_bytes),
        )
        .await?;

        let response = OcspResponse::from_der(&body)
            .map_err(|_| unusable("not an OCSP response".to_owned()))?;
        if response.status() != OcspResponseStatus::SUCCESSFUL {
            return Err(unusable(format!(
                "the responder answered status {} ({})",
                response.status().as_raw(),
                response_status_name(response.status())
            )));
        }
        let basic = response
            .basic()
            .map_err(|e| unusable(format!("no basic response: {e}")))?;
        let verified = (|| {
            let mut store = X509StoreBuilder::new()?;
            store.add_cert(issuer.clone())?;
            // The issuer is the anchor, root or not.
            store.set_flags(X509VerifyFlags::PARTIAL_CHAIN)?;
            let store = store.build();
            let mut certs = Stack::new()?;
            certs.push(issuer.clone())?;
            basic.verify(&certs, &store, OcspFlag::empty())
        })();
        verified.map_err(|e| unusable(format!("its signature does not verify: {e}")))?;
        let id = OcspCertId::from_cert(MessageDigest::sha1(), leaf, issuer)
            .map_err(|e| unusable(format!("cannot build the certificate id: {e}")))?;
        let single = basic
            .find_status(&id)
            .ok_or_else(|| unusable("it does not cover this certificate".to_owned()))?;
        single
            .check_validity(OCSP_LEEWAY, None)
            .map_err(|_| unusable("it is out of date or not yet valid".to_owned()))?;
        let status = if single.status == OcspCertStatus::GOOD {
            Status::Good(from.clone())
        } else if single.status == OcspCertStatus::REVOKED {
            Status::Revoked(Revocation {
                revoked_at: single.revocation_time.and_then(generalized_unix),
                reason: reason_name(i64::from(single.reason.as_raw())),
                source: from.clone(),
            })
        } else {
            return Err(RevocationError::Unknown { from });
        };
        let until = self.keep_until(now, single.next_update().and_then(generalized_unix));
        if let Ok(mut cache) = self.ocsp.lock() {
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
            cache.insert(
                key,
                CachedStatus {
                    until,
                    status: status.clone(),
                },
            );
        }
        Ok(status)
    }

    async fn crl(&self, leaf: &X509, issuer: &X509, url: &str) -> Result<Status, RevocationError> {
        let now = chrono::Utc::now().timestamp();
        let from = Source::Crl(url.to_owned());
        let unusable = |reason: String| RevocationError::Unverifiable {
            from: from.clone(),
            reason,
        };
        let cached = self
            .crls
            .lock()
            .ok()
            .and_then(|c| c.get(url).filter(|e| e.until > now).map(|e| e.crl.clone()));
        let crl = match cached {
            Some(crl) => crl,
            None => {
                let body = fetch::get(url, &self.limits(self.options.max_crl_bytes)).await?;
                let crl = X509Crl::from_der(&body)
                    .or_else(|_| X509Crl::from_pem(&body))
                    .map_err(|_| unusable("not a CRL (DER or PEM)".to_owned()))?;
                let next_update = crl.next_update().and_then(asn1_unix);
                if next_update.is_some_and(|next| next < now) {
                    return Err(unusable(
                        "it is out of date (its nextUpdate has passed)".to_owned(),
                    ));
                }
                let crl = Arc::new(crl);
                if let Ok(mut cache) = self.crls.lock() {
                    if cache.len() >= MAX_CACHED {
                        cache.clear();
                    }
                    cache.insert(
                        url.to_owned(),
                        CachedCrl {
                            until: self.keep_until(now, next_update),
                            crl: crl.clone(),
                        },
                    );
                }
                crl
            }
        };
        // Whose CRL it is, and signed by them: checked on every use, since
        // one URL may be named by certificates of different issuers.
        let same_issuer = match (crl.issuer_name().to_der(), issuer.subject_name().to_der()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        if !same_issuer {
            return Err(unusable(
                "it is not the CRL of the leaf's issuer".to_owned(),
            ));
        }
        let signed = issuer
            .public_key()
            .and_then(|key| crl.verify(&key))
            .unwrap_or(false);
        if !signed {
            return Err(unusable("its signature does not verify".to_owned()));
        }
        Ok(match crl.get_by_serial(leaf.serial_number()) {
            CrlStatus::Revoked(entry) => Status::Revoked(Revocation {
                revoked_at: asn1_unix(entry.revocation_date()),
                reason: entry
                    .extension::<ReasonCode>()
                    .ok()
                    .flatten()
                    .and_then(|(_, code)| code.get_i64().ok())
                    .and_then(reason_name),
                source: from,
            }),
            CrlStatus::NotRevoked | CrlStatus::RemoveFromCrl(_) => Status::Good(from),
        })
    }
}

/// The `revoked` finding, saying when, why, who said so and what to do.
fn finding(revocation: &Revocation) -> Finding {
    let when = revocation
        .revoked_at
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map(|t| format!(" on {}", t.format("%Y-%m-%d %H:%M:%S UTC")))
        .unwrap_or_default();
    let why = revocation
        .reason
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    Finding {
        code: FindingCode::Revoked,
        days: None,
        detail: Some(format!(
            "revoked{when}{why} according to {}: install a new certificate (and a new key if the key was compromised)",
            revocation.source
        )),
    }
}

/// The HTTP URIs of a certificate's CRL distribution points, in order.
pub fn crl_urls(cert: &X509) -> Vec<String> {
    cert.crl_distribution_points()
        .map(|points| {
            points
                .iter()
                .filter_map(|p| p.distpoint())
                .filter_map(|name| name.fullname())
                .flat_map(|names| {
                    names
                        .iter()
                        .filter_map(|n| n.uri().map(str::to_owned))
                        .collect::<Vec<_>>()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// RFC 5280 §5.3.1 reason names.
fn reason_name(code: i64) -> Option<&'static str> {
    Some(match code {
        0 => "unspecified",
        1 => "keyCompromise",
        2 => "cACompromise",
        3 => "affiliationChanged",
        4 => "superseded",
        5 => "cessationOfOperation",
        6 => "certificateHold",
        8 => "removeFromCRL",
        9 => "privilegeWithdrawn",
        10 => "aACompromise",
        _ => return None,
    })
}

fn response_status_name(status: OcspResponseStatus) -> &'static str {
    match status {
        OcspResponseStatus::MALFORMED_REQUEST => "malformedRequest",
        OcspResponseStatus::INTERNAL_ERROR => "internalError",
        OcspResponseStatus::TRY_LATER => "tryLater",
        OcspResponseStatus::SIG_REQUIRED => "sigRequired",
        OcspResponseStatus::UNAUTHORIZED => "unauthorized",
        _ => "unknown status",
    }
}

/// An ASN.1 time in Unix seconds.
fn asn1_unix(time: &Asn1TimeRef) -> Option<i64> {
    let epoch = Asn1Time::from_unix(0).ok()?;
    let diff = epoch.diff(time).ok()?;
    Some(i64::from(diff.days) * 86_400 + i64::from(diff.secs))
}

/// A GeneralizedTime in Unix seconds, read from how OpenSSL prints it
/// (`Jan  1 00:00:00 2026 GMT`): the crate offers no other way out.
fn generalized_unix(time: &Asn1GeneralizedTimeRef) -> Option<i64> {
    let text = time.to_string();
    let text = text.trim().trim_end_matches(" GMT");
    // Fractional seconds, which OpenSSL prints when present, are dropped.
    let (head, year) = text.rsplit_once(' ')?;
    let head = head.split('.').next()?;
    let text = format!("{head} {year}");
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    chrono::NaiveDateTime::parse_from_str(&text, "%b %d %H:%M:%S %Y")
        .ok()
        .map(|t| t.and_utc().timestamp())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use openssl::asn1::Asn1GeneralizedTime;

    #[test]
    fn times_and_reasons() {
        assert_eq!(
            asn1_unix(&Asn1Time::from_unix(1_767_225_600).unwrap()),
            Some(1_767_225_600)
        );
        let time = Asn1GeneralizedTime::from_str("20260101093005Z").unwrap();
        assert_eq!(generalized_unix(&time), Some(1_767_259_805));
        assert_eq!(reason_name(1), Some("keyCompromise"));
        assert_eq!(reason_name(7), None);
        assert_eq!(reason_name(-1), None);
    }

    #[test]
    fn finding_says_when_why_who_and_what_to_do() {
        let finding = finding(&Revocation {
            revoked_at: Some(1_767_225_600),
            reason: Some("keyCompromise"),
            source: Source::Crl("http://crl.example.test/ca.crl".to_owned()),
        });
        assert_eq!(finding.code, FindingCode::Revoked);
        assert_eq!(
            finding.detail.as_deref(),
            Some(
                "revoked on 2026-01-01 00:00:00 UTC (keyCompromise) according to the CRL http://crl.example.test/ca.crl: install a new certificate (and a new key if the key was compromised)"
            )
        );
    }
}
