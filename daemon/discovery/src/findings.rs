//! The installation check: what is wrong with the chain a place presented.
//!
//! Discovery hands [`check`] the chain found at a network endpoint (leaf
//! first, in the order the server sent it) or in a file, with a [`Context`]
//! saying when, under which name and over which protocol it was seen. The
//! [`Policy`] carries the thresholds (expiry warning, key sizes, maximum
//! validity), the optional list of approved issuing CAs and the [`Trust`]
//! store chains must verify against. The result is exactly the
//! [`Finding`]s that apply, sorted by code, each code at most once, so that
//! the scan output, alerts and reports can compare runs.
//!
//! Chain verification is OpenSSL's (`X509_verify_cert`) against the system
//! roots and the configured private roots; expiry is left out of it because
//! `expired` and `not_yet_valid` are findings of their own. Hostname matching
//! follows RFC 6125 as browsers apply it (one-label wildcards, subject CN
//! only when there is no SAN). [`validation_level`] and [`certificate_type`]
//! classify a certificate for the inventory.
//!
//! When an endpoint's chain does not verify because an issuer is missing,
//! the check tells the two causes apart, since they have different fixes:
//! - `incomplete_chain`: the missing issuer is a *known* intermediate (one
//!   configured with [`Trust::with_intermediates`], or fetched from the
//!   leaf's AIA caIssuers URL and passed in [`Context::fetched`]) and with it
//!   the chain verifies. The detail names the intermediate the server must
//!   send.
//! - `untrusted`: the issuer is known nowhere. The detail names it and says
//!   to add its root to the trust store (`discovery.policy.trusted_roots`)
//!   or to use a certificate from a trusted CA.
//!
//! A file's chain is only ever `untrusted` (certificate files are often kept
//! apart from their chain). Also raised here: `wildcard` (a wildcard name,
//! when [`Policy::allow_wildcards`] is off) and `chain_order` (an endpoint
//! that sends its chain out of order or with certificates that are not on
//! the leaf's path; a trailing root is fine).
//!
//! Raised elsewhere: `unprotected` (plain HTTP, no TLS) by the network
//! scanner, since it has no chain to check; `revoked` by
//! [`crate::revocation::Checker`], and the AIA fetch by [`crate::aia`], which
//! need the network and so run after this synchronous check
//! ([`crate::scan::check_online`] runs all three).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::stack::Stack;
use openssl::x509::store::{X509Store, X509StoreBuilder};
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::{X509, X509StoreContext};
use x509_parser::extensions::ParsedExtension;

use crate::model::{Finding, FindingCode};
use certkeeper_model::hostname;
use certkeeper_model::inventory::ParsedCertificate;
pub use certkeeper_model::inventory::classify::{
    CertificateType, ValidationLevel, certificate_type, validation_level,
};

/// Seconds in a day, for the day counts of findings and policy thresholds.
const DAY: i64 = 86_400;

/// `X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT`: the issuer of a certificate taken
/// from the trust store was not found.
const ERR_UNABLE_TO_GET_ISSUER_CERT: i32 = 2;
/// `X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY`: the issuer of a presented
/// certificate is neither presented nor in the trust store.
const ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY: i32 = 20;
/// `X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN`: the presented chain ends at a
/// root that is not in the trust store.
const ERR_SELF_SIGNED_CERT_IN_CHAIN: i32 = 19;

/// Protocol versions, as OpenSSL's `SSL_get_version` spells them, that raise
/// `legacy_protocol`.
const LEGACY_PROTOCOLS: [&str; 4] = ["SSLv2", "SSLv3", "TLSv1", "TLSv1.1"];

/// Fragments of OpenSSL signature algorithm names that mark a broken hash
/// (matched case-insensitively): SHA-1 and MD5, and the older MD2/MD4.
const WEAK_HASHES: [&str; 4] = ["sha1", "md5", "md4", "md2"];

/// Why a [`Trust`] store could not be built.
#[derive(Debug, thiserror::Error)]
pub enum FindingsError {
    /// OpenSSL could not create the store or load the system roots.
    #[error("cannot build the trust store: {0}")]
    Store(#[source] ErrorStack),
    /// A configured private root is not a certificate OpenSSL can load.
    #[error("private root {fingerprint} cannot be added to the trust store: {source}")]
    Root {
        /// SHA-256 fingerprint of the offending root, as the inventory has it.
        fingerprint: String,
        /// OpenSSL's reason.
        #[source]
        source: ErrorStack,
    },
    /// A configured intermediate is not a certificate OpenSSL can load.
    #[error(
        "known intermediate {fingerprint} cannot be loaded: {source}; remove it or replace it with its PEM"
    )]
    Intermediate {
        /// SHA-256 fingerprint of the offending certificate.
        fingerprint: String,
        /// OpenSSL's reason.
        #[source]
        source: ErrorStack,
    },
}

impl FindingsError {
    /// Always true: building the same store again fails the same way until
    /// the configuration (or the system's OpenSSL) changes, so retrying is
    /// pointless.
    pub fn is_permanent(&self) -> bool {
        match self {
            FindingsError::Store(_)
            | FindingsError::Root { .. }
            | FindingsError::Intermediate { .. } => true,
        }
    }
}

/// The roots chains are verified against: the system's (OpenSSL's default
/// paths, `/etc/ssl/certs` on Debian, honouring `SSL_CERT_FILE` and
/// `SSL_CERT_DIR`) plus configured private roots, or only given roots.
///
/// Cheap to clone (the OpenSSL store is shared). Any certificate in the store
/// is a trust anchor, even one that is not self-signed, so an organisation
/// may configure its issuing CA rather than its offline root.
///
/// A trust may also know intermediates ([`Trust::with_intermediates`]):
/// they are no anchors, but a chain that verifies once they are added lacks
/// only what the server should have sent (`incomplete_chain`, not
/// `untrusted`). System root bundles rarely hold intermediates, so the
/// configured ones are what matters.
#[derive(Clone)]
pub struct Trust {
    /// The OpenSSL store, with time checks off (expiry is its own finding);
    /// `None` only when even an empty store could not be made, and then
    /// nothing is trusted.
    store: Option<Arc<X509Store>>,
    /// Whether the system roots are in the store.
    system: bool,
    /// Number of private roots added.
    private_roots: usize,
    /// Known intermediates, decoded once.
    intermediates: Arc<Vec<Known>>,
    /// Verdicts of chains already checked, keyed by their fingerprints: the
    /// same certificate behind many endpoints (load balancers, wildcards,
    /// copies on disk) is verified once. Cleared when full.
    verdicts: Arc<Mutex<HashMap<String, Verdict>>>,
}

/// Chains whose verdicts are kept at once.
const VERDICT_CACHE: usize = 16_384;

impl Trust {
    /// The system roots only.
    ///
    /// # Errors
    ///
    /// [`FindingsError::Store`] when OpenSSL cannot build the store.
    pub fn system() -> Result<Trust, FindingsError> {
        Self::build(true, &[])
    }

    /// The system roots plus `roots` (an organisation's private CAs).
    ///
    /// # Errors
    ///
    /// [`FindingsError::Store`] when OpenSSL cannot build the store,
    /// [`FindingsError::Root`] naming the first root it cannot load.
    pub fn with_private_roots(roots: &[ParsedCertificate]) -> Result<Trust, FindingsError> {
        Self::build(true, roots)
    }

    /// Exactly `roots`, without the system's: for tests and closed networks.
    ///
    /// # Errors
    ///
    /// As [`Trust::with_private_roots`].
    pub fn only(roots: &[ParsedCertificate]) -> Result<Trust, FindingsError> {
        Self::build(false, roots)
    }

    fn build(system: bool, roots: &[ParsedCertificate]) -> Result<Trust, FindingsError> {
        /// The system's CA bundle file: `$SSL_CERT_FILE`, else `cert.pem` in
        /// OpenSSL's directory, else Debian's bundle.
        fn system_bundle() -> Option<std::path::PathBuf> {
            let openssl_dir = openssl::version::dir()
                .split('"')
                .nth(1)
                .map(|d| std::path::Path::new(d).join("cert.pem"));
            std::env::var_os("SSL_CERT_FILE")
                .map(std::path::PathBuf::from)
                .into_iter()
                .chain(openssl_dir)
                .chain(Some("/etc/ssl/certs/ca-certificates.crt".into()))
                .find(|p| p.is_file())
        }

        let mut builder = X509StoreBuilder::new().map_err(FindingsError::Store)?;
        if system {
            // The system bundle loaded once into the store: OpenSSL's default
            // paths add a directory lookup that rereads /etc/ssl/certs on
            // every miss, which is most of a scan's CPU when CAs are private.
            match system_bundle() {
                Some(bundle) => builder
                    .add_lookup(openssl::x509::store::X509Lookup::file())
                    .map_err(FindingsError::Store)?
                    .load_cert_file(&bundle, openssl::ssl::SslFiletype::PEM)
                    .map_err(FindingsError::Store)?,
                None => builder.set_default_paths().map_err(FindingsError::Store)?,
            }
        }
        for root in roots {
            let root_error = |source| FindingsError::Root {
                fingerprint: root.fingerprint.clone(),
                source,
            };
            let cert = X509::from_pem(root.pem.as_bytes()).map_err(root_error)?;
            builder.add_cert(cert).map_err(root_error)?;
        }
        // NO_CHECK_TIME: `expired`/`not_yet_valid` report validity, so an
        // expired chain must not also come out `untrusted`. PARTIAL_CHAIN:
        // a configured private CA is an anchor even if it is an intermediate.
        builder
            .set_flags(X509VerifyFlags::NO_CHECK_TIME | X509VerifyFlags::PARTIAL_CHAIN)
            .map_err(FindingsError::Store)?;
        Ok(Trust {
            store: Some(Arc::new(builder.build())),
            system,
            private_roots: roots.len(),
            intermediates: Arc::default(),
            verdicts: Arc::default(),
        })
    }

    /// This trust, knowing `intermediates` too (replacing any known before):
    /// a network chain missing one of them is `incomplete_chain`. They are
    /// not trusted themselves; a chain through one must still reach a root.
    ///
    /// # Errors
    ///
    /// [`FindingsError::Intermediate`] naming the first certificate OpenSSL
    /// cannot load.
    pub fn with_intermediates(
        self,
        intermediates: &[ParsedCertificate],
    ) -> Result<Trust, FindingsError> {
        let known = intermediates
            .iter()
            .map(|cert| {
                X509::from_pem(cert.pem.as_bytes())
                    .map(|x509| Known {
                        parsed: cert.clone(),
                        x509,
                    })
                    .map_err(|source| FindingsError::Intermediate {
                        fingerprint: cert.fingerprint.clone(),
                        source,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Trust {
            intermediates: Arc::new(known),
            // Verdicts depend on the intermediates: start afresh.
            verdicts: Arc::default(),
            ..self
        })
    }

    /// The known intermediates, as given to [`Trust::with_intermediates`].
    pub fn intermediates(&self) -> impl Iterator<Item = &ParsedCertificate> {
        self.intermediates.iter().map(|known| &known.parsed)
    }
}

/// A known intermediate, as given and as OpenSSL decoded it.
struct Known {
    parsed: ParsedCertificate,
    x509: X509,
}

impl fmt::Debug for Trust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trust")
            .field("system", &self.system)
            .field("private_roots", &self.private_roots)
            .field("intermediates", &self.intermediates.len())
            .finish_non_exhaustive()
    }
}

/// What the installation check holds certificates to.
#[derive(Debug, Clone)]
pub struct Policy {
    /// `expiring` is raised this many days or fewer before `not_after`.
    pub expiring_days: u32,
    /// Minimum RSA (and DSA) key size in bits.
    pub min_rsa_bits: u32,
    /// Minimum EC key size in bits (curve order size: 256 for P-256).
    pub min_ec_bits: u32,
    /// Longest allowed validity of a leaf that is not a CA, in days
    /// (398: the CA/Browser Forum limit for TLS server certificates).
    pub max_validity_days: u32,
    /// CAs allowed to issue leaves; `None` turns the `unapproved_issuer`
    /// check off. A leaf is approved when its issuer DN equals the subject
    /// of one of these and, when both are present, its authority key
    /// identifier equals that CA's subject key identifier; or when the cert
    /// that issued it in the presented chain is one of these (by
    /// fingerprint). A self-signed leaf is approved only if it is listed.
    pub approved_issuers: Option<Vec<ParsedCertificate>>,
    /// Roots chains must verify to, and the known intermediates.
    pub trust: Trust,
    /// Whether a leaf may name wildcards (`*.example.com`); when false, one
    /// that does is `wildcard`. Default true (no finding).
    pub allow_wildcards: bool,
    /// Fetches a missing issuer from the leaf's AIA caIssuers URL, so that a
    /// chain missing only that is `incomplete_chain` rather than `untrusted`;
    /// `None` (the default) fetches nothing. Used by
    /// [`crate::scan::check_online`], not by [`check`].
    pub aia: Option<Arc<crate::aia::Fetcher>>,
    /// Checks the leaf's CRL and OCSP responder for `revoked`; `None` (the
    /// default) checks nothing. Used by [`crate::scan::check_online`], not
    /// by [`check`]. Share one checker between scans to share its cache.
    pub revocation: Option<Arc<crate::revocation::Checker>>,
}

impl Default for Policy {
    /// 30 days, RSA 2048, EC 256, 398 days, no issuer list, system roots,
    /// no known intermediates, wildcards allowed, no AIA fetching and no
    /// revocation checks.
    /// Should the system store fail to build, nothing is trusted (every
    /// chain comes out `untrusted`) and a warning is logged.
    fn default() -> Self {
        let trust = Trust::system().unwrap_or_else(|error| {
            tracing::warn!(error = %error, "system trust store unavailable; nothing will be trusted");
            Trust::only(&[]).unwrap_or(Trust {
                store: None,
                system: false,
                private_roots: 0,
                intermediates: Arc::default(),
                verdicts: Arc::default(),
            })
        });
        Policy {
            expiring_days: 30,
            min_rsa_bits: 2048,
            min_ec_bits: 256,
            max_validity_days: 398,
            approved_issuers: None,
            trust,
            allow_wildcards: true,
            aia: None,
            revocation: None,
        }
    }
}

/// Where and how a chain was seen.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The time to judge validity at, in Unix seconds.
    pub now: i64,
    /// The name the chain must cover: the SNI sent or the name scanned.
    /// `None` skips the hostname check (files, bare IP scans).
    pub name: Option<&'a str>,
    /// The negotiated protocol as OpenSSL names it (`TLSv1.3`); `None` for
    /// files.
    pub tls_version: Option<&'a str>,
    /// True for a chain an endpoint sent: a missing known intermediate is
    /// then `incomplete_chain`, and the order is checked (`chain_order`).
    /// For a file it is only `untrusted`, since chain files are often kept
    /// apart from leaves.
    pub network: bool,
    /// The same chain as OpenSSL already decoded it (a probe's handshake),
    /// so the chain check does not decode it again; `None` decodes from PEM.
    pub presented: Option<&'a [X509]>,
    /// Intermediates known for this chain only, beside the trust's: the
    /// issuer fetched from the leaf's AIA caIssuers URL. Usually empty.
    pub fetched: &'a [ParsedCertificate],
}

/// Checks the chain a place presented (`chain[0]` is the leaf, the rest in
/// the order sent) and returns the findings that apply, sorted by code, each
/// code at most once. An empty chain has no findings.
pub fn check(chain: &[ParsedCertificate], context: &Context<'_>, policy: &Policy) -> Vec<Finding> {
    let Some(leaf) = chain.first() else {
        return Vec::new();
    };
    let mut findings = Vec::new();
    validity(leaf, context.now, policy, &mut findings);

    let weak_keys: Vec<String> = certificates_that_matter(chain)
        .filter_map(|(role, cert)| weak_key(cert, policy).map(|what| describe(role, cert, what)))
        .collect();
    if !weak_keys.is_empty() {
        findings.push(detailed(FindingCode::WeakKey, weak_keys.join("; ")));
    }

    let weak_signatures: Vec<String> = certificates_that_matter(chain)
        .filter(|(_, cert)| has_weak_signature(cert))
        .map(|(role, cert)| describe(role, cert, cert.signature_algorithm.clone()))
        .collect();
    if !weak_signatures.is_empty() {
        findings.push(detailed(
            FindingCode::WeakSignature,
            weak_signatures.join("; "),
        ));
    }

    if leaf.self_signed {
        // `untrusted` and `incomplete_chain` would only restate this. A
        // self-signed CA in a file is a trust anchor kept on disk (a root
        // bundle, a private CA), which is what roots are, not a defect.
        if context.network || !leaf.is_ca {
            findings.push(Finding::new(FindingCode::SelfSigned));
        }
    } else {
        findings.extend(chain_finding(chain, context, &policy.trust));
    }

    if context.network
        && let Some(detail) = chain_order(chain, &policy.trust, context.fetched)
    {
        findings.push(detailed(FindingCode::ChainOrder, detail));
    }

    if !policy.allow_wildcards && !leaf.is_ca {
        let names = wildcard_names(leaf);
        if !names.is_empty() {
            findings.push(detailed(
                FindingCode::Wildcard,
                format!(
                    "wildcard {} {}: the policy allows no wildcards; use a certificate that names each host",
                    if names.len() == 1 { "name" } else { "names" },
                    names.join(", ")
                ),
            ));
        }
    }

    if let Some(name) = context.name
        && !leaf.is_ca
        && !has_eku(leaf, "codeSigning")
        && !hostname::covers(leaf, name)
    {
        findings.push(detailed(
            FindingCode::HostnameMismatch,
            format!("{name} is not among the certificate's names"),
        ));
    }

    if let Some(approved) = &policy.approved_issuers
        && !issuer_approved(chain, leaf, approved)
    {
        findings.push(detailed(
            FindingCode::UnapprovedIssuer,
            format!("issued by {}", leaf.issuer),
        ));
    }

    if let Some(version) = context.tls_version
        && LEGACY_PROTOCOLS.contains(&version)
    {
        findings.push(detailed(FindingCode::LegacyProtocol, version.to_owned()));
    }

    let lifetime = leaf.not_after.saturating_sub(leaf.not_before);
    // The CA/Browser Forum limit is for TLS server certificates; code-signing
    // and client certificates routinely live for years.
    if certificate_type(leaf) == CertificateType::Server
        && lifetime > i64::from(policy.max_validity_days) * DAY
    {
        findings.push(detailed(
            FindingCode::ValidityTooLong,
            format!(
                "{} days (maximum {})",
                lifetime / DAY,
                policy.max_validity_days
            ),
        ));
    }

    findings.sort_by_key(|finding| finding.code);
    findings.dedup_by_key(|finding| finding.code);
    findings
}

// ---------------------------------------------------------------------------
// Validity

fn validity(leaf: &ParsedCertificate, now: i64, policy: &Policy, findings: &mut Vec<Finding>) {
    if now > leaf.not_after {
        findings.push(Finding {
            code: FindingCode::Expired,
            days: Some((now - leaf.not_after) / DAY),
            detail: None,
        });
    } else {
        let left = leaf.not_after - now;
        if left <= i64::from(policy.expiring_days) * DAY {
            findings.push(Finding {
                code: FindingCode::Expiring,
                days: Some(left / DAY),
                detail: None,
            });
        }
    }
    if now < leaf.not_before {
        findings.push(Finding::new(FindingCode::NotYetValid));
    }
}

// ---------------------------------------------------------------------------
// Keys and signatures

/// Where a certificate stands in the presented chain, for finding details.
#[derive(Clone, Copy)]
enum Role {
    Leaf,
    Chain,
}

/// The certificates whose keys and signatures matter: the leaf, and every
/// other presented certificate but self-signed roots (whose trust comes from
/// the store, not from their own signature).
fn certificates_that_matter(
    chain: &[ParsedCertificate],
) -> impl Iterator<Item = (Role, &ParsedCertificate)> {
    let (leaf, rest) = chain
        .split_first()
        .map_or((None, &[][..]), |(l, r)| (Some(l), r));
    leaf.map(|l| (Role::Leaf, l)).into_iter().chain(
        rest.iter()
            .filter(|cert| !cert.self_signed)
            .map(|cert| (Role::Chain, cert)),
    )
}

/// "RSA 1024 bits" when the key is under the policy's minimum.
fn weak_key(cert: &ParsedCertificate, policy: &Policy) -> Option<String> {
    let minimum = match cert.key_algorithm.as_str() {
        "RSA" | "DSA" => policy.min_rsa_bits,
        "EC" => policy.min_ec_bits,
        _ => return None,
    };
    // 0 means the parser could not tell: no evidence of weakness.
    (cert.key_bits != 0 && cert.key_bits < minimum)
        .then(|| format!("{} {} bits", cert.key_algorithm, cert.key_bits))
}

fn has_weak_signature(cert: &ParsedCertificate) -> bool {
    let name = cert.signature_algorithm.to_ascii_lowercase();
    WEAK_HASHES.iter().any(|hash| name.contains(hash))
}

/// A finding detail, naming the certificate when it is not the leaf.
fn describe(role: Role, cert: &ParsedCertificate, what: String) -> String {
    match role {
        Role::Leaf => what,
        Role::Chain => {
            let name = cert.subject_cn.as_deref().unwrap_or(&cert.subject);
            format!("{what} (chain certificate {name})")
        }
    }
}

fn detailed(code: FindingCode, detail: String) -> Finding {
    Finding {
        code,
        days: None,
        detail: Some(detail),
    }
}

// ---------------------------------------------------------------------------
// Chain verification

/// `incomplete_chain`, `untrusted` or nothing, for a leaf that is not
/// self-signed.
fn chain_finding(
    chain: &[ParsedCertificate],
    context: &Context<'_>,
    trust: &Trust,
) -> Option<Finding> {
    match trust.verdict(chain, context) {
        Ok(Verdict::Trusted) => None,
        Ok(Verdict::Incomplete(missing)) => Some(detailed(
            FindingCode::IncompleteChain,
            format!(
                "the server does not send the intermediate {} {}, which the chain needs: configure it to send {} after the leaf",
                if missing.len() == 1 {
                    "certificate"
                } else {
                    "certificates"
                },
                missing.join(", then "),
                if missing.len() == 1 { "it" } else { "them" },
            ),
        )),
        // A certificate file kept without its chain is normal; the endpoint
        // that serves it is where a missing issuer matters.
        Ok(Verdict::IssuerUnknown { depth: 0, .. }) if !context.network => None,
        Ok(Verdict::IssuerUnknown {
            depth,
            cert,
            issuer,
        }) => {
            let of = if depth == 0 {
                "the leaf".to_owned()
            } else {
                format!("the chain certificate {cert}")
            };
            Some(detailed(
                FindingCode::Untrusted,
                format!(
                    "the issuer {issuer} of {of} is in no trust store, was not sent and is no known intermediate: add its root CA to the trust store (discovery.policy.trusted_roots) or use a certificate from a trusted CA"
                ),
            ))
        }
        Ok(Verdict::Failed(reason)) => Some(detailed(FindingCode::Untrusted, reason)),
        Err(error) => {
            tracing::warn!(error = %error, "chain verification failed to run");
            Some(detailed(
                FindingCode::Untrusted,
                format!("cannot verify the chain: {error}"),
            ))
        }
    }
}

impl Trust {
    /// The chain's verdict, from the cache when this chain was verified
    /// before (in the same hour: verification ignores time, but the cache
    /// should not outlive a changed trust store by much in a daemon).
    fn verdict(
        &self,
        chain: &[ParsedCertificate],
        context: &Context<'_>,
    ) -> Result<Verdict, ErrorStack> {
        let mut key = (context.now / 3600).to_string();
        key.push_str(if context.network { ":n" } else { ":f" });
        for cert in chain {
            key.push(':');
            key.push_str(&cert.fingerprint);
        }
        for cert in context.fetched {
            key.push_str(":+");
            key.push_str(&cert.fingerprint);
        }
        if let Some(verdict) = self.verdicts.lock().ok().and_then(|v| v.get(&key).cloned()) {
            return Ok(verdict);
        }
        let verdict = verify(chain, context, self)?;
        if let Ok(mut cache) = self.verdicts.lock() {
            if cache.len() >= VERDICT_CACHE {
                cache.clear();
            }
            cache.insert(key, verdict.clone());
        }
        Ok(verdict)
    }
}

/// The outcome of the chain check.
#[derive(Debug, Clone)]
enum Verdict {
    /// The chain verifies to the trust store.
    Trusted,
    /// It verifies once these known intermediates (subject DNs, from the
    /// leaf up) are added: the server does not send them.
    Incomplete(Vec<String>),
    /// The issuer of the certificate at `depth` (0: the leaf) is neither
    /// presented, nor in the trust store, nor a known intermediate.
    IssuerUnknown {
        /// 0 for the leaf.
        depth: u32,
        /// Subject of the certificate whose issuer is missing.
        cert: String,
        /// The missing issuer's DN.
        issuer: String,
    },
    /// Anything else: unknown root, bad signature, a non-CA issuer, ...
    Failed(String),
}

/// One run of OpenSSL's verification.
enum Attempt {
    /// Verified; SHA-256 fingerprints of the chain OpenSSL built.
    Trusted(Vec<String>),
    /// The issuer of the certificate at `depth` was not found.
    IssuerMissing {
        depth: u32,
        /// Fingerprint of that certificate.
        cert: String,
        reason: String,
    },
    /// Any other failure, described.
    Failed(String),
}

fn verify(
    chain: &[ParsedCertificate],
    context: &Context<'_>,
    trust: &Trust,
) -> Result<Verdict, ErrorStack> {
    let Some((leaf, rest)) = chain.split_first() else {
        return Ok(Verdict::Trusted);
    };
    let Some(store) = &trust.store else {
        return Ok(Verdict::Failed("no trust store could be built".to_owned()));
    };
    let mut presented = Vec::with_capacity(rest.len());
    let leaf = match context.presented.filter(|d| d.len() == chain.len()) {
        // The handshake's own objects: no second decode.
        Some(decoded) => {
            presented.extend(decoded[1..].iter().cloned());
            decoded[0].clone()
        }
        None => {
            for cert in rest {
                match X509::from_pem(cert.pem.as_bytes()) {
                    Ok(x509) => presented.push(x509),
                    // Treated as not sent: the chain then fails on the gap it leaves.
                    Err(error) => {
                        tracing::debug!(cert = %cert.fingerprint, error = %error, "chain certificate unreadable by OpenSSL");
                    }
                }
            }
            X509::from_pem(leaf.pem.as_bytes())?
        }
    };

    let first = attempt(store, &leaf, &presented)?;
    let retried = match &first {
        Attempt::Trusted(_) => return Ok(Verdict::Trusted),
        Attempt::Failed(reason) => return Ok(Verdict::Failed(reason.clone())),
        // Only what an endpoint sends can lack an intermediate; a file keeps
        // today's verdicts.
        Attempt::IssuerMissing { .. } if !context.network => None,
        Attempt::IssuerMissing { .. } => {
            let mut untrusted = presented.clone();
            untrusted.extend(trust.intermediates.iter().map(|k| k.x509.clone()));
            for cert in context.fetched {
                match X509::from_pem(cert.pem.as_bytes()) {
                    Ok(x509) => untrusted.push(x509),
                    Err(error) => {
                        tracing::debug!(cert = %cert.fingerprint, error = %error, "fetched issuer unreadable by OpenSSL");
                    }
                }
            }
            Some(attempt(store, &leaf, &untrusted)?)
        }
    };

    let known = |fingerprint: &str| {
        trust
            .intermediates
            .iter()
            .map(|k| &k.parsed)
            .chain(context.fetched)
            .find(|c| c.fingerprint == fingerprint)
    };
    let find = |fingerprint: &str| {
        chain
            .iter()
            .find(|c| c.fingerprint == fingerprint)
            .or_else(|| known(fingerprint))
    };
    let unknown = |attempt: &Attempt| match attempt {
        Attempt::IssuerMissing {
            depth,
            cert,
            reason,
        } => match find(cert) {
            Some(found) => Verdict::IssuerUnknown {
                depth: *depth,
                cert: found.subject.clone(),
                issuer: found.issuer.clone(),
            },
            None => Verdict::Failed(reason.clone()),
        },
        Attempt::Failed(reason) => Verdict::Failed(reason.clone()),
        Attempt::Trusted(_) => Verdict::Trusted,
    };
    Ok(match retried {
        None => unknown(&first),
        Some(Attempt::Trusted(built)) => {
            let sent = |fp: &str| chain.iter().any(|c| c.fingerprint == fp);
            let missing: Vec<String> = built
                .iter()
                .filter(|fp| !sent(fp))
                .filter_map(|fp| known(fp))
                .map(|c| c.subject.clone())
                .collect();
            if missing.is_empty() {
                Verdict::Trusted
            } else {
                Verdict::Incomplete(missing)
            }
        }
        // Name the issuer found missing last: the deepest the chain reached.
        Some(again @ Attempt::IssuerMissing { .. }) => unknown(&again),
        Some(Attempt::Failed(_)) => unknown(&first),
    })
}

/// Runs OpenSSL's verification of `leaf` with `untrusted` as the presented
/// chain.
fn attempt(store: &X509Store, leaf: &X509, untrusted: &[X509]) -> Result<Attempt, ErrorStack> {
    let fingerprint =
        |x509: &openssl::x509::X509Ref| x509.digest(MessageDigest::sha256()).map(hex::encode);
    let mut stack = Stack::new()?;
    for x509 in untrusted {
        stack.push(x509.clone())?;
    }
    let mut context = X509StoreContext::new()?;
    context.init(store, leaf, &stack, |context| {
        if context.verify_cert()? {
            let mut built = Vec::new();
            for x509 in context.chain().into_iter().flatten() {
                built.push(fingerprint(x509)?);
            }
            return Ok(Attempt::Trusted(built));
        }
        let error = context.error();
        let reason = error.error_string().to_owned();
        let issuer_not_found = matches!(
            error.as_raw(),
            ERR_UNABLE_TO_GET_ISSUER_CERT | ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
        );
        let depth = context.error_depth();
        Ok(match context.current_cert() {
            Some(cert) if issuer_not_found => Attempt::IssuerMissing {
                depth,
                cert: fingerprint(cert)?,
                reason,
            },
            Some(cert) => {
                let at = cert
                    .subject_name()
                    .entries_by_nid(openssl::nid::Nid::COMMONNAME)
                    .next()
                    .and_then(|e| e.data().to_string().ok());
                let name = at.unwrap_or_else(|| "a certificate without a common name".to_owned());
                Attempt::Failed(if error.as_raw() == ERR_SELF_SIGNED_CERT_IN_CHAIN {
                    format!(
                        "the chain ends at the root {name}, which is in no trust store: add it to the trust store (discovery.policy.trusted_roots) if you trust it, or use a certificate from a trusted CA"
                    )
                } else {
                    format!("{reason} (at {name})")
                })
            }
            None => Attempt::Failed(reason),
        })
    })
}

// ---------------------------------------------------------------------------
// Approved issuers

fn issuer_approved(
    chain: &[ParsedCertificate],
    leaf: &ParsedCertificate,
    approved: &[ParsedCertificate],
) -> bool {
    let listed =
        |cert: &ParsedCertificate| approved.iter().any(|a| a.fingerprint == cert.fingerprint);
    if leaf.self_signed {
        return listed(leaf);
    }
    let by = |ca: &ParsedCertificate| issued_by(leaf, ca);
    approved.iter().any(by) || chain.iter().skip(1).any(|c| by(c) && listed(c))
}

/// Whether `ca` is, by name, the issuer of `cert`: its subject DN is
/// `cert`'s issuer DN and, when both are present, its subject key identifier
/// is `cert`'s authority key identifier. Signatures are not checked: that is
/// the chain verification's work.
pub fn issued_by(cert: &ParsedCertificate, ca: &ParsedCertificate) -> bool {
    ca.subject == cert.issuer
        && match (key_ids(cert).authority, key_ids(ca).subject) {
            (Some(aki), Some(ski)) => aki == ski,
            _ => true,
        }
}

// ---------------------------------------------------------------------------
// Chain order

/// `chain_order`'s detail, or `None` when every certificate after the leaf
/// is followed by its issuer and all are on the leaf's path (a trailing root
/// included). The path is followed through the presented certificates, and
/// through known intermediates where the server left one out (that gap is
/// `incomplete_chain`'s business, not this check's).
fn chain_order(
    chain: &[ParsedCertificate],
    trust: &Trust,
    fetched: &[ParsedCertificate],
) -> Option<String> {
    let leaf = chain.first()?;
    if chain.len() < 2 {
        return None;
    }
    let name = |cert: &ParsedCertificate| cert.subject_cn.clone().unwrap_or(cert.subject.clone());
    // Positions (in `chain`) of the presented certificates on the path, in
    // path order.
    let mut path: Vec<usize> = Vec::new();
    let mut current = leaf;
    let mut at = 0;
    let mut complete = false;
    for _ in 0..chain.len() + trust.intermediates.len() + fetched.len() {
        if current.self_signed {
            complete = true;
            break;
        }
        let unused = |i: &usize| !path.contains(i);
        // The next position first, so a duplicate sent in order is the extra.
        let next = (at + 1..chain.len())
            .chain(1..=at)
            .filter(|i| *i > 0 && unused(i))
            .find(|&i| issued_by(current, &chain[i]));
        if let Some(i) = next {
            path.push(i);
            current = &chain[i];
            at = i;
            continue;
        }
        match trust
            .intermediates()
            .chain(fetched)
            .find(|ca| issued_by(current, ca) && ca.fingerprint != current.fingerprint)
        {
            Some(bridge) => current = bridge,
            None => break,
        }
    }

    let mut problems = Vec::new();
    if let Some(k) = (1..path.len()).find(|&k| path[k] < path[k - 1]) {
        problems.push(format!(
            "certificate {} ({}) is sent before certificate {} ({}), which it must follow",
            path[k] + 1,
            name(&chain[path[k]]),
            path[k - 1] + 1,
            name(&chain[path[k - 1]]),
        ));
    }
    let last = chain.len() - 1;
    for (i, cert) in chain.iter().enumerate().skip(1) {
        if path.contains(&i) {
            continue;
        }
        // A root after a path that stopped short (its intermediate is not
        // sent and not known) may well be this chain's root: not flagged.
        if i == last && cert.self_signed && !complete {
            continue;
        }
        let twice = path
            .iter()
            .any(|&p| chain[p].fingerprint == cert.fingerprint)
            || leaf.fingerprint == cert.fingerprint;
        problems.push(if twice {
            format!("certificate {} ({}) is sent twice", i + 1, name(cert))
        } else {
            format!(
                "certificate {} ({}) is not part of the leaf's chain",
                i + 1,
                name(cert)
            )
        });
    }
    if problems.is_empty() {
        return None;
    }
    let order: Vec<String> = std::iter::once(leaf)
        .chain(path.iter().map(|&i| &chain[i]))
        .map(name)
        .collect();
    Some(format!(
        "{}: send the leaf, then each issuer in turn, and nothing else: {}",
        problems.join("; "),
        order.join(", ")
    ))
}

// ---------------------------------------------------------------------------
// Wildcards

/// The leaf's wildcard names: DNS SANs, or the subject CN when it has no SAN
/// (the names [`hostname::covers`] matches).
fn wildcard_names(leaf: &ParsedCertificate) -> Vec<String> {
    let no_san = leaf.san_dns.is_empty()
        && leaf.san_ip.is_empty()
        && leaf.san_email.is_empty()
        && leaf.san_uri.is_empty();
    let cn = leaf.subject_cn.iter().filter(|_| no_san);
    leaf.san_dns
        .iter()
        .chain(cn)
        .filter(|name| name.contains('*'))
        .cloned()
        .collect()
}

/// Authority and subject key identifiers of a certificate.
#[derive(Default)]
struct KeyIds {
    authority: Option<Vec<u8>>,
    subject: Option<Vec<u8>>,
}

fn key_ids(cert: &ParsedCertificate) -> KeyIds {
    with_x509(cert, |x509| {
        let mut ids = KeyIds::default();
        for ext in x509.tbs_certificate.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(aki) => {
                    ids.authority = aki.key_identifier.as_ref().map(|id| id.0.to_vec());
                }
                ParsedExtension::SubjectKeyIdentifier(ski) => ids.subject = Some(ski.0.to_vec()),
                _ => {}
            }
        }
        ids
    })
    .unwrap_or_default()
}

/// Runs `read` on the certificate decoded from its PEM copy; `None` when
/// that does not decode (the record did not come from the parser).
fn with_x509<T>(
    cert: &ParsedCertificate,
    read: impl FnOnce(&x509_parser::certificate::X509Certificate<'_>) -> T,
) -> Option<T> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert.pem.as_bytes()).ok()?;
    let x509 = pem.parse_x509().ok()?;
    Some(read(&x509))
}

// ---------------------------------------------------------------------------
// Names

fn has_eku(cert: &ParsedCertificate, usage: &str) -> bool {
    cert.extended_key_usage.iter().any(|u| u == usage)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU32, Ordering};

    use openssl::asn1::{Asn1Object, Asn1OctetString, Asn1Time};
    use openssl::bn::BigNum;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::pkey::{PKey, Private};
    use openssl::rsa::Rsa;
    use openssl::x509::extension::{
        AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage,
        SubjectAlternativeName, SubjectKeyIdentifier,
    };
    use openssl::x509::{X509Builder, X509Extension, X509NameBuilder};

    use super::*;
    use certkeeper_model::inventory::parse::parse_der;

    /// 2026-01-01T00:00:00Z: tests judge validity at a fixed time.
    const NOW: i64 = 1_767_225_600;

    #[derive(Clone, Copy)]
    enum Key {
        Rsa(u32),
        Ec(Nid),
    }

    fn key(kind: Key) -> PKey<Private> {
        match kind {
            Key::Rsa(bits) => PKey::from_rsa(Rsa::generate(bits).unwrap()).unwrap(),
            Key::Ec(curve) => {
                let group = EcGroup::from_curve_name(curve).unwrap();
                PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
            }
        }
    }

    /// A certificate with its key, as generated and as parsed.
    struct Issued {
        x509: X509,
        key: PKey<Private>,
        parsed: ParsedCertificate,
    }

    /// What to put in a generated certificate.
    struct Spec<'a> {
        cn: &'a str,
        key: Key,
        /// Signer; `None` for self-signed.
        issuer: Option<&'a Issued>,
        not_before: i64,
        not_after: i64,
        ca: bool,
        dns: &'a [&'a str],
        ips: &'a [&'a str],
        eku: &'a [&'a str],
        digest: fn() -> MessageDigest,
        /// DER content of one policy OID for certificatePolicies.
        policy: Option<&'a [u8]>,
    }

    impl Default for Spec<'_> {
        fn default() -> Self {
            Spec {
                cn: "www.example.test",
                key: Key::Ec(Nid::X9_62_PRIME256V1),
                issuer: None,
                not_before: NOW - 10 * DAY,
                not_after: NOW + 80 * DAY,
                ca: false,
                dns: &["www.example.test", "*.apps.example.test"],
                ips: &["192.0.2.10", "2001:db8::10"],
                eku: &["serverAuth"],
                digest: MessageDigest::sha256,
                policy: None,
            }
        }
    }

    fn issue(spec: Spec<'_>) -> Issued {
        static SERIAL: AtomicU32 = AtomicU32::new(1);
        let key = key(spec.key);
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_nid(Nid::ORGANIZATIONNAME, "Certkeeper Tests")
            .unwrap();
        name.append_entry_by_nid(Nid::COMMONNAME, spec.cn).unwrap();
        let name = name.build();

        let mut builder = X509Builder::new().unwrap();
        builder.set_version(2).unwrap();
        let serial = BigNum::from_u32(SERIAL.fetch_add(1, Ordering::Relaxed)).unwrap();
        builder
            .set_serial_number(&serial.to_asn1_integer().unwrap())
            .unwrap();
        builder.set_subject_name(&name).unwrap();
        let issuer_name = spec.issuer.map_or(&*name, |i| i.x509.subject_name());
        builder.set_issuer_name(issuer_name).unwrap();
        builder.set_pubkey(&key).unwrap();
        builder
            .set_not_before(&Asn1Time::from_unix(spec.not_before).unwrap())
            .unwrap();
        builder
            .set_not_after(&Asn1Time::from_unix(spec.not_after).unwrap())
            .unwrap();

        let mut constraints = BasicConstraints::new();
        constraints.critical();
        if spec.ca {
            constraints.ca();
        }
        builder
            .append_extension(constraints.build().unwrap())
            .unwrap();
        let mut usage = KeyUsage::new();
        usage.critical().digital_signature();
        if spec.ca {
            usage.key_cert_sign().crl_sign();
        }
        builder.append_extension(usage.build().unwrap()).unwrap();
        let ski = SubjectKeyIdentifier::new()
            .build(&builder.x509v3_context(spec.issuer.map(|i| &*i.x509), None))
            .unwrap();
        builder.append_extension(ski).unwrap();
        if let Some(issuer) = spec.issuer {
            let aki = AuthorityKeyIdentifier::new()
                .keyid(true)
                .build(&builder.x509v3_context(Some(&issuer.x509), None))
                .unwrap();
            builder.append_extension(aki).unwrap();
        }
        if !spec.dns.is_empty() || !spec.ips.is_empty() {
            let mut san = SubjectAlternativeName::new();
            for dns in spec.dns {
                san.dns(dns);
            }
            for ip in spec.ips {
                san.ip(ip);
            }
            let san = san
                .build(&builder.x509v3_context(spec.issuer.map(|i| &*i.x509), None))
                .unwrap();
            builder.append_extension(san).unwrap();
        }
        if !spec.eku.is_empty() {
            let mut eku = ExtendedKeyUsage::new();
            for usage in spec.eku {
                match *usage {
                    "serverAuth" => eku.server_auth(),
                    "clientAuth" => eku.client_auth(),
                    "codeSigning" => eku.code_signing(),
                    "emailProtection" => eku.email_protection(),
                    other => panic!("no EKU {other} in tests"),
                };
            }
            builder.append_extension(eku.build().unwrap()).unwrap();
        }
        if let Some(oid) = spec.policy {
            // certificatePolicies ::= SEQUENCE OF PolicyInformation ::=
            // SEQUENCE { policyIdentifier OBJECT IDENTIFIER }
            let mut info = vec![0x30, u8::try_from(oid.len() + 2).unwrap(), 0x06];
            info.push(u8::try_from(oid.len()).unwrap());
            info.extend_from_slice(oid);
            let mut der = vec![0x30, u8::try_from(info.len()).unwrap()];
            der.extend(info);
            let extension = X509Extension::new_from_der(
                &Asn1Object::from_str("2.5.29.32").unwrap(),
                false,
                &Asn1OctetString::new_from_bytes(&der).unwrap(),
            )
            .unwrap();
            builder.append_extension(extension).unwrap();
        }
        let signer = spec.issuer.map_or(&key, |i| &i.key);
        builder.sign(signer, (spec.digest)()).unwrap();
        let x509 = builder.build();
        let parsed = parse_der(&x509.to_der().unwrap()).unwrap();
        Issued { x509, key, parsed }
    }

    /// A private root, an intermediate under it, and a good leaf under that.
    struct Fixture {
        root: Issued,
        intermediate: Issued,
        leaf: Issued,
    }

    fn fixture() -> &'static Fixture {
        static FIXTURE: OnceLock<Fixture> = OnceLock::new();
        FIXTURE.get_or_init(|| {
            let root = issue(Spec {
                cn: "Certkeeper Test Root",
                key: Key::Rsa(2048),
                not_before: NOW - 1000 * DAY,
                not_after: NOW + 3000 * DAY,
                ca: true,
                dns: &[],
                ips: &[],
                eku: &[],
                ..Spec::default()
            });
            let intermediate = issue(intermediate_spec(&root));
            let leaf = issue(Spec {
                issuer: Some(&intermediate),
                ..Spec::default()
            });
            Fixture {
                root,
                intermediate,
                leaf,
            }
        })
    }

    fn intermediate_spec(root: &Issued) -> Spec<'_> {
        Spec {
            cn: "Certkeeper Test Issuing CA",
            key: Key::Ec(Nid::SECP384R1),
            issuer: Some(root),
            not_before: NOW - 500 * DAY,
            not_after: NOW + 1500 * DAY,
            ca: true,
            dns: &[],
            ips: &[],
            eku: &[],
            ..Spec::default()
        }
    }

    /// A leaf under the fixture's intermediate, with `spec`'s changes.
    fn leaf(spec: Spec<'_>) -> ParsedCertificate {
        issue(Spec {
            issuer: Some(&fixture().intermediate),
            ..spec
        })
        .parsed
    }

    fn policy() -> Policy {
        Policy {
            trust: Trust::only(&[fixture().root.parsed.clone()]).unwrap(),
            ..Policy::default()
        }
    }

    fn network(name: &str) -> Context<'_> {
        Context {
            now: NOW,
            name: Some(name),
            tls_version: Some("TLSv1.3"),
            network: true,
            presented: None,
            fetched: &[],
        }
    }

    /// The leaf and the fixture's intermediate, as a server sends them.
    fn sent(leaf: ParsedCertificate) -> Vec<ParsedCertificate> {
        vec![leaf, fixture().intermediate.parsed.clone()]
    }

    fn codes(findings: &[Finding]) -> Vec<FindingCode> {
        findings.iter().map(|f| f.code).collect()
    }

    fn check_sent(leaf: ParsedCertificate) -> Vec<Finding> {
        check(&sent(leaf), &network("www.example.test"), &policy())
    }

    #[test]
    fn good_chain_has_no_findings() {
        let fx = fixture();
        let chain = sent(fx.leaf.parsed.clone());
        assert_eq!(
            check(&chain, &network("www.example.test"), &policy()),
            vec![]
        );
        // Root sent too, and a file read with no name: still nothing.
        let with_root = [chain.clone(), vec![fx.root.parsed.clone()]].concat();
        assert_eq!(
            check(&with_root, &network("www.example.test"), &policy()),
            vec![]
        );
        let file = Context {
            now: NOW,
            name: None,
            tls_version: None,
            network: false,
            presented: None,
            fetched: &[],
        };
        assert_eq!(check(&chain, &file, &policy()), vec![]);
        assert_eq!(check(&[], &file, &policy()), vec![]);
    }

    #[test]
    fn expired() {
        let cert = leaf(Spec {
            not_before: NOW - 90 * DAY,
            not_after: NOW - 3 * DAY - DAY / 2,
            ..Spec::default()
        });
        let findings = check_sent(cert);
        assert_eq!(
            findings,
            vec![Finding {
                code: FindingCode::Expired,
                days: Some(3),
                detail: None
            }]
        );
        let json = serde_json::to_value(&findings[0]).unwrap();
        assert_eq!(json, serde_json::json!({"code": "expired", "days": 3}));
    }

    #[test]
    fn not_yet_valid() {
        let cert = leaf(Spec {
            not_before: NOW + DAY,
            not_after: NOW + 80 * DAY,
            ..Spec::default()
        });
        assert_eq!(codes(&check_sent(cert)), vec![FindingCode::NotYetValid]);
    }

    #[test]
    fn expiring_counts_whole_days_left() {
        let cert = leaf(Spec {
            not_after: NOW + 10 * DAY + DAY / 2,
            ..Spec::default()
        });
        assert_eq!(
            check_sent(cert),
            vec![Finding {
                code: FindingCode::Expiring,
                days: Some(10),
                detail: None
            }]
        );
        // The threshold itself is inside; a second more is not.
        let at = leaf(Spec {
            not_after: NOW + 30 * DAY,
            ..Spec::default()
        });
        assert_eq!(codes(&check_sent(at)), vec![FindingCode::Expiring]);
        let past = leaf(Spec {
            not_after: NOW + 30 * DAY + 1,
            ..Spec::default()
        });
        assert_eq!(check_sent(past), vec![]);
    }

    #[test]
    fn weak_rsa_key_on_leaf() {
        let cert = leaf(Spec {
            key: Key::Rsa(1024),
            ..Spec::default()
        });
        let findings = check_sent(cert);
        assert_eq!(codes(&findings), vec![FindingCode::WeakKey]);
        assert_eq!(findings[0].detail.as_deref(), Some("RSA 1024 bits"));
    }

    #[test]
    fn weak_ec_key_against_stricter_policy() {
        let strict = Policy {
            min_ec_bits: 384,
            ..policy()
        };
        let findings = check(
            &sent(fixture().leaf.parsed.clone()),
            &network("www.example.test"),
            &strict,
        );
        assert_eq!(codes(&findings), vec![FindingCode::WeakKey]);
        assert_eq!(findings[0].detail.as_deref(), Some("EC 256 bits"));
    }

    #[test]
    fn weak_key_on_intermediate_but_not_on_root() {
        let fx = fixture();
        let weak_ca = issue(Spec {
            key: Key::Rsa(1024),
            ..intermediate_spec(&fx.root)
        });
        let cert = issue(Spec {
            issuer: Some(&weak_ca),
            ..Spec::default()
        });
        let findings = check(
            &[cert.parsed.clone(), weak_ca.parsed.clone()],
            &network("www.example.test"),
            &policy(),
        );
        assert_eq!(codes(&findings), vec![FindingCode::WeakKey]);
        assert_eq!(
            findings[0].detail.as_deref(),
            Some("RSA 1024 bits (chain certificate Certkeeper Test Issuing CA)")
        );

        // A weak self-signed root, even sent along, is the store's business.
        let weak_root = issue(Spec {
            cn: "Weak Root",
            key: Key::Rsa(1024),
            ca: true,
            dns: &[],
            ips: &[],
            eku: &[],
            ..Spec::default()
        });
        let ca = issue(intermediate_spec(&weak_root));
        let cert = issue(Spec {
            issuer: Some(&ca),
            ..Spec::default()
        });
        let trust = Policy {
            trust: Trust::only(std::slice::from_ref(&weak_root.parsed)).unwrap(),
            ..Policy::default()
        };
        let chain = [cert.parsed, ca.parsed, weak_root.parsed];
        assert_eq!(check(&chain, &network("www.example.test"), &trust), vec![]);
    }

    #[test]
    fn weak_signature_on_leaf() {
        let cert = leaf(Spec {
            digest: MessageDigest::sha1,
            ..Spec::default()
        });
        assert_eq!(cert.signature_algorithm, "ecdsa-with-SHA1");
        let findings = check_sent(cert);
        assert_eq!(codes(&findings), vec![FindingCode::WeakSignature]);
        assert_eq!(findings[0].detail.as_deref(), Some("ecdsa-with-SHA1"));

        // MD5 with RSA, issued straight by the root.
        let fx = fixture();
        let md5 = issue(Spec {
            issuer: Some(&fx.root),
            digest: MessageDigest::md5,
            ..Spec::default()
        });
        assert_eq!(md5.parsed.signature_algorithm, "md5WithRSAEncryption");
        let findings = check(&[md5.parsed], &network("www.example.test"), &policy());
        assert_eq!(codes(&findings), vec![FindingCode::WeakSignature]);
    }

    #[test]
    fn weak_signature_on_intermediate_but_not_on_root() {
        let fx = fixture();
        let sha1_ca = issue(Spec {
            digest: MessageDigest::sha1,
            ..intermediate_spec(&fx.root)
        });
        assert_eq!(sha1_ca.parsed.signature_algorithm, "sha1WithRSAEncryption");
        let cert = issue(Spec {
            issuer: Some(&sha1_ca),
            ..Spec::default()
        });
        let findings = check(
            &[cert.parsed, sha1_ca.parsed],
            &network("www.example.test"),
            &policy(),
        );
        assert_eq!(codes(&findings), vec![FindingCode::WeakSignature]);

        let sha1_root = issue(Spec {
            cn: "SHA-1 Root",
            key: Key::Rsa(2048),
            ca: true,
            dns: &[],
            ips: &[],
            eku: &[],
            digest: MessageDigest::sha1,
            ..Spec::default()
        });
        assert_eq!(
            sha1_root.parsed.signature_algorithm,
            "sha1WithRSAEncryption"
        );
        let ca = issue(intermediate_spec(&sha1_root));
        let cert = issue(Spec {
            issuer: Some(&ca),
            ..Spec::default()
        });
        let trust = Policy {
            trust: Trust::only(std::slice::from_ref(&sha1_root.parsed)).unwrap(),
            ..Policy::default()
        };
        let chain = [cert.parsed, ca.parsed, sha1_root.parsed];
        assert_eq!(check(&chain, &network("www.example.test"), &trust), vec![]);
    }

    #[test]
    fn self_signed_leaf_is_not_also_untrusted() {
        let cert = issue(Spec::default()).parsed;
        assert!(cert.self_signed);
        let findings = check(
            std::slice::from_ref(&cert),
            &network("www.example.test"),
            &policy(),
        );
        assert_eq!(codes(&findings), vec![FindingCode::SelfSigned]);
        // Nor incomplete, nor untrusted, when read from a file.
        let file = Context {
            network: false,
            ..network("www.example.test")
        };
        assert_eq!(
            codes(&check(&[cert], &file, &policy())),
            vec![FindingCode::SelfSigned]
        );
    }

    /// The fixture's policy, knowing `intermediates` too.
    fn knowing(intermediates: &[ParsedCertificate]) -> Policy {
        Policy {
            trust: Trust::only(&[fixture().root.parsed.clone()])
                .unwrap()
                .with_intermediates(intermediates)
                .unwrap(),
            ..Policy::default()
        }
    }

    fn detail(finding: &Finding) -> &str {
        finding.detail.as_deref().unwrap_or_default()
    }

    #[test]
    fn missing_known_intermediate_is_incomplete_chain_on_network_not_in_a_file() {
        let fx = fixture();
        let known = knowing(std::slice::from_ref(&fx.intermediate.parsed));
        let alone = [fx.leaf.parsed.clone()];
        let findings = check(&alone, &network("www.example.test"), &known);
        assert_eq!(codes(&findings), vec![FindingCode::IncompleteChain]);
        let text = detail(&findings[0]);
        assert!(text.contains(&fx.intermediate.parsed.subject), "{text}");
        assert!(text.contains("configure it to send it"), "{text}");

        let file = Context {
            network: false,
            ..network("www.example.test")
        };
        assert_eq!(codes(&check(&alone, &file, &known)), vec![]);

        // Sent with only the root: the intermediate is still missing, and
        // the root is where it belongs.
        let root_only = [fx.leaf.parsed.clone(), fx.root.parsed.clone()];
        assert_eq!(
            codes(&check(&root_only, &network("www.example.test"), &known)),
            vec![FindingCode::IncompleteChain]
        );

        // Sent: nothing is missing, whatever is known.
        let chain = sent(fx.leaf.parsed.clone());
        assert_eq!(check(&chain, &network("www.example.test"), &known), vec![]);

        // The issuing CA in the store itself: nothing is missing.
        let trusts_issuer = Policy {
            trust: Trust::only(std::slice::from_ref(&fx.intermediate.parsed)).unwrap(),
            ..Policy::default()
        };
        assert_eq!(
            check(&alone, &network("www.example.test"), &trusts_issuer),
            vec![]
        );
    }

    #[test]
    fn missing_unknown_issuer_is_untrusted_and_names_it() {
        let fx = fixture();
        let alone = [fx.leaf.parsed.clone()];
        for policy in [policy(), knowing(&[])] {
            let findings = check(&alone, &network("www.example.test"), &policy);
            assert_eq!(codes(&findings), vec![FindingCode::Untrusted]);
            let text = detail(&findings[0]);
            assert!(
                text.starts_with(&format!(
                    "the issuer {} of the leaf is in no trust store, was not sent and is no known intermediate",
                    fx.leaf.parsed.issuer
                )),
                "{text}"
            );
            assert!(
                text.contains("add its root CA to the trust store (discovery.policy.trusted_roots) or use a certificate from a trusted CA"),
                "{text}"
            );
        }
        let root_only = [fx.leaf.parsed.clone(), fx.root.parsed.clone()];
        assert_eq!(
            codes(&check(&root_only, &network("www.example.test"), &policy())),
            vec![FindingCode::Untrusted]
        );
        // In a file, a leaf kept without its chain is no finding.
        let file = Context {
            network: false,
            ..network("www.example.test")
        };
        assert_eq!(codes(&check(&alone, &file, &policy())), vec![]);

        // Known by name, not by key (same subject, other key): the chain
        // does not verify with it, so the issuer is still unknown.
        let impostor = issue(intermediate_spec(&fx.root));
        assert_eq!(impostor.parsed.subject, fx.intermediate.parsed.subject);
        let findings = check(
            &alone,
            &network("www.example.test"),
            &knowing(&[impostor.parsed]),
        );
        assert_eq!(codes(&findings), vec![FindingCode::Untrusted]);
        assert!(detail(&findings[0]).contains(&fx.leaf.parsed.issuer));

        // A known intermediate under an unknown root: the root is named.
        let other_root = issue(Spec {
            cn: "Unknown Root",
            key: Key::Rsa(2048),
            ca: true,
            dns: &[],
            ips: &[],
            eku: &[],
            ..Spec::default()
        });
        let ca = issue(Spec {
            cn: "Unknown Issuing CA",
            ..intermediate_spec(&other_root)
        });
        let cert = issue(Spec {
            issuer: Some(&ca),
            ..Spec::default()
        });
        let findings = check(
            std::slice::from_ref(&cert.parsed),
            &network("www.example.test"),
            &knowing(std::slice::from_ref(&ca.parsed)),
        );
        assert_eq!(codes(&findings), vec![FindingCode::Untrusted]);
        let text = detail(&findings[0]);
        assert!(
            text.starts_with(&format!(
                "the issuer {} of the chain certificate {} is in no trust store",
                other_root.parsed.subject, ca.parsed.subject
            )),
            "{text}"
        );
        assert!(text.contains("discovery.policy.trusted_roots"), "{text}");
    }

    #[test]
    fn intermediates_that_cannot_load_are_an_error() {
        let mut bad = fixture().intermediate.parsed.clone();
        bad.pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_owned();
        let error = Trust::only(&[])
            .unwrap()
            .with_intermediates(&[bad.clone()])
            .unwrap_err();
        assert!(
            matches!(&error, FindingsError::Intermediate { fingerprint, .. } if *fingerprint == bad.fingerprint)
        );
        assert!(error.to_string().contains("remove it or replace it"));
    }

    #[test]
    fn chain_to_unknown_root_is_untrusted() {
        let other_root = issue(Spec {
            cn: "Unknown Root",
            key: Key::Rsa(2048),
            ca: true,
            dns: &[],
            ips: &[],
            eku: &[],
            ..Spec::default()
        });
        let ca = issue(intermediate_spec(&other_root));
        let cert = issue(Spec {
            issuer: Some(&ca),
            ..Spec::default()
        });
        let context = network("www.example.test");
        let chain = [cert.parsed.clone(), ca.parsed.clone()];
        let findings = check(&chain, &context, &policy());
        assert_eq!(codes(&findings), vec![FindingCode::Untrusted]);
        let text = detail(&findings[0]);
        assert!(text.contains(&other_root.parsed.subject), "{text}");
        assert!(text.contains("discovery.policy.trusted_roots"), "{text}");

        // Sending the unknown root along does not make it trusted.
        let with_root = [cert.parsed, ca.parsed, other_root.parsed];
        let findings = check(&with_root, &context, &policy());
        assert_eq!(codes(&findings), vec![FindingCode::Untrusted]);
        let text = detail(&findings[0]);
        assert!(
            text.starts_with("the chain ends at the root Unknown Root, which is in no trust store: add it to the trust store (discovery.policy.trusted_roots) if you trust it"),
            "{text}"
        );

        // The system store does not know the private root either, and adding
        // it as a private root fixes that.
        let fx = fixture();
        let chain = sent(fx.leaf.parsed.clone());
        let system = Policy {
            trust: Trust::system().unwrap(),
            ..Policy::default()
        };
        assert_eq!(
            codes(&check(&chain, &context, &system)),
            vec![FindingCode::Untrusted]
        );
        let private = Policy {
            trust: Trust::with_private_roots(std::slice::from_ref(&fx.root.parsed)).unwrap(),
            ..Policy::default()
        };
        assert_eq!(check(&chain, &context, &private), vec![]);
    }

    #[test]
    fn expired_chain_is_not_untrusted() {
        let fx = fixture();
        let old_ca = issue(Spec {
            not_before: NOW - 900 * DAY,
            not_after: NOW - 100 * DAY,
            ..intermediate_spec(&fx.root)
        });
        let cert = issue(Spec {
            issuer: Some(&old_ca),
            not_before: NOW - 200 * DAY,
            not_after: NOW - 120 * DAY,
            ..Spec::default()
        });
        let findings = check(
            &[cert.parsed, old_ca.parsed],
            &network("www.example.test"),
            &policy(),
        );
        assert_eq!(codes(&findings), vec![FindingCode::Expired]);
        assert_eq!(findings[0].days, Some(120));
    }

    #[test]
    fn hostname_mismatch() {
        let fx = fixture();
        let chain = sent(fx.leaf.parsed.clone());
        let findings = check(&chain, &network("mail.example.test"), &policy());
        assert_eq!(codes(&findings), vec![FindingCode::HostnameMismatch]);
        assert!(
            findings[0]
                .detail
                .as_deref()
                .unwrap()
                .contains("mail.example.test")
        );
        for covered in [
            "www.example.test",
            "WWW.Example.Test.",
            "api.apps.example.test",
        ] {
            assert_eq!(
                check(&chain, &network(covered), &policy()),
                vec![],
                "{covered}"
            );
        }
        // No name, no check.
        let nameless = Context {
            name: None,
            ..network("x")
        };
        assert_eq!(check(&chain, &nameless, &policy()), vec![]);
    }

    #[test]
    fn hostname_of_ip_address() {
        let chain = sent(fixture().leaf.parsed.clone());
        for covered in ["192.0.2.10", "2001:db8::10", "[2001:db8:0::10]"] {
            assert_eq!(
                check(&chain, &network(covered), &policy()),
                vec![],
                "{covered}"
            );
        }
        for other in ["192.0.2.11", "2001:db8::11"] {
            assert_eq!(
                codes(&check(&chain, &network(other), &policy())),
                vec![FindingCode::HostnameMismatch],
                "{other}"
            );
        }
    }

    #[test]
    fn subject_cn_counts_only_without_san() {
        let no_san = leaf(Spec {
            cn: "legacy.example.test",
            dns: &[],
            ips: &[],
            ..Spec::default()
        });
        assert_eq!(
            check(
                &sent(no_san.clone()),
                &network("legacy.example.test"),
                &policy()
            ),
            vec![]
        );
        assert_eq!(
            codes(&check(
                &sent(no_san),
                &network("www.example.test"),
                &policy()
            )),
            vec![FindingCode::HostnameMismatch]
        );
        // CN www.example.test is ignored when SANs exist.
        let san = leaf(Spec {
            dns: &["other.example.test"],
            ips: &[],
            ..Spec::default()
        });
        assert_eq!(codes(&check_sent(san)), vec![FindingCode::HostnameMismatch]);
    }

    #[test]
    fn hostname_not_checked_for_ca_or_code_signing() {
        let fx = fixture();
        let code = leaf(Spec {
            cn: "Certkeeper Release Signing",
            dns: &[],
            ips: &[],
            eku: &["codeSigning"],
            ..Spec::default()
        });
        assert_eq!(check_sent(code), vec![]);
        let chain = [fx.intermediate.parsed.clone()];
        assert_eq!(
            check(&chain, &network("www.example.test"), &policy()),
            vec![]
        );
    }

    #[test]
    fn wildcard_matching() {
        assert!(hostname::pattern_covers("*.example.com", "www.example.com"));
        assert!(hostname::pattern_covers(
            "*.Example.COM.",
            "WWW.example.com"
        ));
        assert!(!hostname::pattern_covers("*.example.com", "example.com"));
        assert!(!hostname::pattern_covers(
            "*.example.com",
            "a.b.example.com"
        ));
        assert!(!hostname::pattern_covers("*.example.com", ".example.com"));
        assert!(!hostname::pattern_covers(
            "*.example.com",
            "www.example.org"
        ));
        assert!(!hostname::pattern_covers("*.com", "example.com"));
        assert!(!hostname::pattern_covers(
            "w*.example.com",
            "www.example.com"
        ));
        assert!(!hostname::pattern_covers(
            "*.*.example.com",
            "a.b.example.com"
        ));
        assert!(!hostname::pattern_covers("", ""));
        assert!(hostname::pattern_covers("example.com", "example.com"));
        assert!(!hostname::pattern_covers("example.com", "www.example.com"));

        let wild = leaf(Spec {
            dns: &["*.example.test"],
            ips: &[],
            ..Spec::default()
        });
        let chain = sent(wild);
        assert_eq!(
            check(&chain, &network("shop.example.test."), &policy()),
            vec![]
        );
        for uncovered in ["example.test", "a.shop.example.test"] {
            assert_eq!(
                codes(&check(&chain, &network(uncovered), &policy())),
                vec![FindingCode::HostnameMismatch],
                "{uncovered}"
            );
        }
    }

    #[test]
    fn wildcards_allowed_or_denied_by_policy() {
        // The fixture's leaf names *.apps.example.test: allowed by default.
        let chain = sent(fixture().leaf.parsed.clone());
        let context = network("www.example.test");
        assert_eq!(check(&chain, &context, &policy()), vec![]);

        let strict = Policy {
            allow_wildcards: false,
            ..policy()
        };
        let findings = check(&chain, &context, &strict);
        assert_eq!(codes(&findings), vec![FindingCode::Wildcard]);
        assert_eq!(
            detail(&findings[0]),
            "wildcard name *.apps.example.test: the policy allows no wildcards; use a certificate that names each host"
        );
        // The same in a file: a wildcard is the certificate's, wherever it is.
        let file = Context {
            network: false,
            ..context
        };
        assert_eq!(
            codes(&check(&chain, &file, &strict)),
            vec![FindingCode::Wildcard]
        );

        let plain = leaf(Spec {
            dns: &["www.example.test"],
            ..Spec::default()
        });
        assert_eq!(check(&sent(plain), &context, &strict), vec![]);

        // The subject CN counts when there is no SAN.
        let cn_only = leaf(Spec {
            cn: "*.legacy.example.test",
            dns: &[],
            ips: &[],
            ..Spec::default()
        });
        let findings = check(&sent(cn_only), &network("a.legacy.example.test"), &strict);
        assert_eq!(codes(&findings), vec![FindingCode::Wildcard]);
        assert!(detail(&findings[0]).contains("*.legacy.example.test"));
    }

    #[test]
    fn chain_order_out_of_order_unrelated_or_twice() {
        let fx = fixture();
        let (leaf, int, root) = (
            fx.leaf.parsed.clone(),
            fx.intermediate.parsed.clone(),
            fx.root.parsed.clone(),
        );
        let context = network("www.example.test");
        let fix = "send the leaf, then each issuer in turn, and nothing else: www.example.test, Certkeeper Test Issuing CA, Certkeeper Test Root";

        // In order, with or without the trailing root: nothing.
        for chain in [
            vec![leaf.clone(), int.clone()],
            vec![leaf.clone(), int.clone(), root.clone()],
        ] {
            assert_eq!(check(&chain, &context, &policy()), vec![]);
        }

        // The root before the intermediate: verifies, but out of order.
        let reversed = [leaf.clone(), root.clone(), int.clone()];
        let findings = check(&reversed, &context, &policy());
        assert_eq!(codes(&findings), vec![FindingCode::ChainOrder]);
        assert_eq!(
            detail(&findings[0]),
            format!(
                "certificate 2 (Certkeeper Test Root) is sent before certificate 3 (Certkeeper Test Issuing CA), which it must follow: {fix}"
            )
        );
        // A file's order is nobody's business.
        let file = Context {
            network: false,
            ..context
        };
        assert_eq!(check(&reversed, &file, &policy()), vec![]);

        // A certificate of another chain, after or inside the path.
        let other = issue(Spec {
            cn: "Other Issuing CA",
            ..intermediate_spec(&fx.root)
        })
        .parsed;
        for (chain, position) in [
            (vec![leaf.clone(), int.clone(), other.clone()], 3),
            (
                vec![leaf.clone(), other.clone(), int.clone(), root.clone()],
                2,
            ),
        ] {
            let findings = check(&chain, &context, &policy());
            assert_eq!(codes(&findings), vec![FindingCode::ChainOrder]);
            let text = detail(&findings[0]);
            assert!(
                text.starts_with(&format!(
                    "certificate {position} (Other Issuing CA) is not part of the leaf's chain"
                )),
                "{text}"
            );
            assert!(
                text.contains("send the leaf, then each issuer in turn"),
                "{text}"
            );
        }
        // An unrelated root at the end of a complete path is flagged too.
        let other_root = issue(Spec {
            cn: "Other Root",
            key: Key::Rsa(2048),
            ca: true,
            dns: &[],
            ips: &[],
            eku: &[],
            ..Spec::default()
        })
        .parsed;
        let chain = [leaf.clone(), int.clone(), root.clone(), other_root];
        let findings = check(&chain, &context, &policy());
        assert_eq!(codes(&findings), vec![FindingCode::ChainOrder]);
        assert!(detail(&findings[0]).starts_with("certificate 4 (Other Root) is not part"));

        // The intermediate twice.
        let findings = check(
            &[leaf.clone(), int.clone(), int.clone()],
            &context,
            &policy(),
        );
        assert_eq!(codes(&findings), vec![FindingCode::ChainOrder]);
        assert!(
            detail(&findings[0])
                .starts_with("certificate 3 (Certkeeper Test Issuing CA) is sent twice"),
            "{}",
            detail(&findings[0])
        );

        // Intermediate missing and root sent: incomplete, not out of order,
        // whether the intermediate is known or not.
        let root_only = [leaf.clone(), root.clone()];
        assert_eq!(
            codes(&check(
                &root_only,
                &context,
                &knowing(std::slice::from_ref(&int))
            )),
            vec![FindingCode::IncompleteChain]
        );
        assert_eq!(
            codes(&check(&root_only, &context, &policy())),
            vec![FindingCode::Untrusted]
        );
    }

    #[test]
    fn approved_issuers() {
        let fx = fixture();
        let chain = sent(fx.leaf.parsed.clone());
        let context = network("www.example.test");
        let with = |list: Vec<ParsedCertificate>| Policy {
            approved_issuers: Some(list),
            ..policy()
        };

        // Off, approved by subject and key id, approved by the sent chain.
        assert_eq!(check(&chain, &context, &policy()), vec![]);
        let approved = with(vec![fx.intermediate.parsed.clone()]);
        assert_eq!(check(&chain, &context, &approved), vec![]);
        // Approval does not make the issuer known to the chain check.
        assert_eq!(
            codes(&check(&chain[..1], &context, &approved)),
            vec![FindingCode::Untrusted]
        );

        // Only the root listed: the leaf's issuer is not.
        let findings = check(&chain, &context, &with(vec![fx.root.parsed.clone()]));
        assert_eq!(codes(&findings), vec![FindingCode::UnapprovedIssuer]);
        assert_eq!(
            findings[0].detail.as_deref(),
            Some(format!("issued by {}", fx.leaf.parsed.issuer).as_str())
        );
        assert_eq!(
            codes(&check(&chain, &context, &with(vec![]))),
            vec![FindingCode::UnapprovedIssuer]
        );

        // Same name as the issuing CA, other key: not the issuer.
        let impostor = issue(intermediate_spec(&fx.root));
        assert_eq!(impostor.parsed.subject, fx.intermediate.parsed.subject);
        assert_eq!(
            codes(&check(&chain, &context, &with(vec![impostor.parsed]))),
            vec![FindingCode::UnapprovedIssuer]
        );
    }

    #[test]
    fn self_signed_leaf_approved_only_when_listed() {
        let cert = issue(Spec::default()).parsed;
        let context = network("www.example.test");
        let listed = Policy {
            approved_issuers: Some(vec![cert.clone()]),
            ..policy()
        };
        assert_eq!(
            codes(&check(std::slice::from_ref(&cert), &context, &listed)),
            vec![FindingCode::SelfSigned]
        );
        let other = Policy {
            approved_issuers: Some(vec![fixture().intermediate.parsed.clone()]),
            ..policy()
        };
        assert_eq!(
            codes(&check(&[cert], &context, &other)),
            vec![FindingCode::SelfSigned, FindingCode::UnapprovedIssuer]
        );
    }

    #[test]
    fn legacy_protocol() {
        let chain = sent(fixture().leaf.parsed.clone());
        for version in ["SSLv3", "TLSv1", "TLSv1.1"] {
            let context = Context {
                tls_version: Some(version),
                ..network("www.example.test")
            };
            let findings = check(&chain, &context, &policy());
            assert_eq!(codes(&findings), vec![FindingCode::LegacyProtocol]);
            assert_eq!(findings[0].detail.as_deref(), Some(version));
        }
        for version in ["TLSv1.2", "TLSv1.3"] {
            let context = Context {
                tls_version: Some(version),
                ..network("www.example.test")
            };
            assert_eq!(check(&chain, &context, &policy()), vec![]);
        }
    }

    #[test]
    fn validity_too_long() {
        let long = leaf(Spec {
            not_before: NOW - 10 * DAY,
            not_after: NOW - 10 * DAY + 825 * DAY,
            ..Spec::default()
        });
        let findings = check_sent(long);
        assert_eq!(codes(&findings), vec![FindingCode::ValidityTooLong]);
        assert_eq!(
            findings[0].detail.as_deref(),
            Some("825 days (maximum 398)")
        );

        let limit = leaf(Spec {
            not_before: NOW - 10 * DAY,
            not_after: NOW - 10 * DAY + 398 * DAY,
            ..Spec::default()
        });
        assert_eq!(check_sent(limit), vec![]);
        // CAs live long by design (the fixture's intermediate: 2000 days).
        let fx = fixture();
        let ca_only = [fx.intermediate.parsed.clone()];
        assert_eq!(check(&ca_only, &network("ca"), &policy()), vec![]);
    }

    #[test]
    fn several_findings_sorted_once_each() {
        let fx = fixture();
        let cert = issue(Spec {
            issuer: Some(&fx.root),
            key: Key::Rsa(1024),
            digest: MessageDigest::sha1,
            not_before: NOW - 900 * DAY,
            not_after: NOW - 5 * DAY,
            dns: &["old.example.test"],
            ips: &[],
            ..Spec::default()
        });
        let weak_ca = issue(Spec {
            key: Key::Rsa(1024),
            digest: MessageDigest::sha1,
            ..intermediate_spec(&fx.root)
        });
        let context = Context {
            tls_version: Some("TLSv1"),
            ..network("www.example.test")
        };
        let strict = Policy {
            approved_issuers: Some(vec![fx.intermediate.parsed.clone()]),
            ..policy()
        };
        let findings = check(&[cert.parsed, weak_ca.parsed], &context, &strict);
        assert_eq!(
            codes(&findings),
            vec![
                FindingCode::Expired,
                FindingCode::WeakKey,
                FindingCode::WeakSignature,
                FindingCode::HostnameMismatch,
                FindingCode::UnapprovedIssuer,
                FindingCode::LegacyProtocol,
                FindingCode::ValidityTooLong,
                // The weak CA is not the leaf's issuer.
                FindingCode::ChainOrder,
            ]
        );
        assert_eq!(
            findings[1].detail.as_deref(),
            Some("RSA 1024 bits; RSA 1024 bits (chain certificate Certkeeper Test Issuing CA)")
        );
    }

    #[test]
    fn validation_levels() {
        let cases: [(&[u8], ValidationLevel); 4] = [
            (&[0x67, 0x81, 0x0c, 0x01, 0x02, 0x01], ValidationLevel::Dv),
            (&[0x67, 0x81, 0x0c, 0x01, 0x02, 0x02], ValidationLevel::Ov),
            (&[0x67, 0x81, 0x0c, 0x01, 0x02, 0x03], ValidationLevel::Iv),
            (&[0x67, 0x81, 0x0c, 0x01, 0x01], ValidationLevel::Ev),
        ];
        for (oid, level) in cases {
            let cert = leaf(Spec {
                policy: Some(oid),
                ..Spec::default()
            });
            assert_eq!(validation_level(&cert), Some(level));
        }
        assert_eq!(validation_level(&fixture().leaf.parsed), None);
        // A private policy OID (1.3.6.1.4.1.99999.1) is no level.
        let private = leaf(Spec {
            policy: Some(&[0x2b, 0x06, 0x01, 0x04, 0x01, 0x86, 0x8d, 0x1f, 0x01]),
            ..Spec::default()
        });
        assert_eq!(validation_level(&private), None);
        assert_eq!(
            serde_json::to_string(&ValidationLevel::Ev).unwrap(),
            "\"ev\""
        );
    }

    #[test]
    fn certificate_types() {
        let fx = fixture();
        let of = |eku: &'static [&'static str], dns: &'static [&'static str]| {
            certificate_type(&leaf(Spec {
                eku,
                dns,
                ips: &[],
                ..Spec::default()
            }))
        };
        assert_eq!(certificate_type(&fx.leaf.parsed), CertificateType::Server);
        assert_eq!(certificate_type(&fx.root.parsed), CertificateType::Ca);
        assert_eq!(
            certificate_type(&fx.intermediate.parsed),
            CertificateType::Ca
        );
        assert_eq!(of(&["codeSigning"], &[]), CertificateType::CodeSigning);
        assert_eq!(of(&["clientAuth"], &[]), CertificateType::Client);
        assert_eq!(
            of(&["serverAuth", "clientAuth"], &["a.example.test"]),
            CertificateType::Server
        );
        assert_eq!(of(&[], &["a.example.test"]), CertificateType::Server);
        assert_eq!(of(&[], &[]), CertificateType::Other);
        assert_eq!(of(&["emailProtection"], &[]), CertificateType::Other);
        assert_eq!(
            serde_json::to_string(&CertificateType::CodeSigning).unwrap(),
            "\"code_signing\""
        );
    }

    #[test]
    fn unloadable_private_root_is_an_error() {
        let mut bad = fixture().root.parsed.clone();
        bad.pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_owned();
        let error = Trust::only(&[bad.clone()]).unwrap_err();
        assert!(
            matches!(&error, FindingsError::Root { fingerprint, .. } if *fingerprint == bad.fingerprint)
        );
        assert!(error.is_permanent());
        assert!(Trust::with_private_roots(&[bad]).is_err());
    }
}
