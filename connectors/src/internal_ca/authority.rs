//! The CA's own certificates and keys: creating a root and an issuing
//! intermediate, importing an existing pair from PEM, and sealing the
//! private keys for the state store.
//!
//! Keys are stored as PKCS#8 PEM encrypted with AES-256-CBC under the
//! daemon's passphrase (PBES2), so an operator can still take them out with
//! `openssl pkey` and the passphrase. The root key is only needed to sign the
//! intermediate: it is sealed in the store when Certkeeper created it, but is
//! never kept in memory, and an imported CA need not provide it at all.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, PKeyRef, Private};
use openssl::rsa::Rsa;
use openssl::symm::Cipher;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, KeyUsage, SubjectKeyIdentifier,
};
use openssl::x509::{X509, X509Builder, X509NameBuilder, X509Ref};
use serde::{Deserialize, Serialize};

use super::{CaError, Secret, der};

/// Key type of the CA's own keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaKeyType {
    /// ECDSA on NIST P-256, signing with SHA-256.
    EcdsaP256,
    /// ECDSA on NIST P-384, signing with SHA-384.
    EcdsaP384,
    /// RSA 2048, signing with SHA-256.
    Rsa2048,
    /// RSA 3072, signing with SHA-256.
    Rsa3072,
    /// RSA 4096, signing with SHA-256.
    Rsa4096,
}

/// Where the CA comes from the first time it is opened; once the state store
/// holds a CA, that CA is used and a `Generate` source is ignored.
#[derive(Debug, Clone)]
pub enum CaSource {
    /// Create a new root and intermediate.
    Generate(GenerateCa),
    /// Import an existing root and intermediate.
    Import(ImportCa),
}

/// How to create a new CA.
#[derive(Debug, Clone)]
pub struct GenerateCa {
    /// Common name of the root certificate.
    pub root_common_name: String,
    /// Common name of the issuing intermediate certificate.
    pub intermediate_common_name: String,
    /// Organisation (O) of both certificates, if any.
    pub organization: Option<String>,
    /// Key type of both keys.
    pub key_type: CaKeyType,
    /// Validity of the root certificate.
    pub root_validity: Duration,
    /// Validity of the intermediate (capped by the root's).
    pub intermediate_validity: Duration,
}

impl Default for GenerateCa {
    fn default() -> Self {
        Self {
            root_common_name: "Certkeeper Root CA".into(),
            intermediate_common_name: "Certkeeper Issuing CA".into(),
            organization: None,
            key_type: CaKeyType::EcdsaP256,
            root_validity: Duration::from_secs(20 * 365 * 86_400),
            intermediate_validity: Duration::from_secs(5 * 365 * 86_400),
        }
    }
}

/// An existing CA to import. The intermediate must be signed by the root and
/// carry a subjectKeyIdentifier (RFC 5280 requires one in CA certificates).
#[derive(Debug, Clone)]
pub struct ImportCa {
    /// The root certificate.
    pub root_certificate: PemSource,
    /// The root's private key; leave it out to keep the root offline.
    pub root_key: Option<PemSource>,
    /// The issuing intermediate certificate.
    pub intermediate_certificate: PemSource,
    /// The intermediate's private key (ECDSA P-256/P-384 or RSA >= 2048).
    pub intermediate_key: PemSource,
    /// Passphrase of the imported key files, if they are encrypted.
    pub key_passphrase: Option<Secret>,
}

/// PEM text, inline or in a file.
#[derive(Clone)]
pub enum PemSource {
    /// A file holding the PEM text.
    File(PathBuf),
    /// The PEM text itself.
    Inline(String),
}

impl std::fmt::Debug for PemSource {
    // Inline PEM may be a private key: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(path) => f.debug_tuple("File").field(path).finish(),
            Self::Inline(_) => f.write_str("Inline([redacted])"),
        }
    }
}

impl PemSource {
    pub(crate) async fn read(&self, what: &str) -> Result<Vec<u8>, CaError> {
        match self {
            Self::Inline(text) => Ok(text.as_bytes().to_vec()),
            Self::File(path) => tokio::fs::read(path).await.map_err(|e| {
                CaError::Config(format!(
                    "cannot read the {what} from {}: {e}",
                    path.display()
                ))
            }),
        }
    }
}

/// How the intermediate signs: the digest and the matching X.509
/// AlgorithmIdentifier (needed for the hand-encoded CRL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SigningAlg {
    EcdsaSha256,
    EcdsaSha384,
    RsaSha256,
}

impl SigningAlg {
    fn for_key(key: &PKeyRef<Private>) -> Result<Self, String> {
        match key.id() {
            Id::RSA if key.bits() >= 2048 => Ok(Self::RsaSha256),
            Id::EC => match key.ec_key().ok().and_then(|k| k.group().curve_name()) {
                Some(Nid::X9_62_PRIME256V1) => Ok(Self::EcdsaSha256),
                Some(Nid::SECP384R1) => Ok(Self::EcdsaSha384),
                _ => Err("the CA key is on a curve other than P-256 or P-384".into()),
            },
            _ => Err("the CA key is neither ECDSA P-256/P-384 nor RSA of 2048 bits or more".into()),
        }
    }

    pub(crate) fn digest(self) -> MessageDigest {
        match self {
            Self::EcdsaSha384 => MessageDigest::sha384(),
            Self::EcdsaSha256 | Self::RsaSha256 => MessageDigest::sha256(),
        }
    }

    /// The DER AlgorithmIdentifier (RFC 5758 for ECDSA, RFC 4055 for RSA).
    pub(crate) fn algorithm_identifier(self) -> Vec<u8> {
        match self {
            Self::EcdsaSha256 => der::sequence(&[&der::oid(&[1, 2, 840, 10045, 4, 3, 2])]),
            Self::EcdsaSha384 => der::sequence(&[&der::oid(&[1, 2, 840, 10045, 4, 3, 3])]),
            Self::RsaSha256 => {
                der::sequence(&[&der::oid(&[1, 2, 840, 113549, 1, 1, 11]), &der::null()])
            }
        }
    }
}

/// The loaded CA: what issuing, revoking and CRL signing need.
pub(crate) struct Authority {
    pub(crate) root: X509,
    pub(crate) intermediate: X509,
    pub(crate) key: PKey<Private>,
    pub(crate) alg: SigningAlg,
    /// The intermediate's subjectKeyIdentifier, for CRL authorityKeyIdentifier.
    pub(crate) key_id: Vec<u8>,
}

/// The CA as saved in the state store (key [`CA_KEY`]).
#[derive(Serialize, Deserialize)]
pub(crate) struct SealedCa {
    version: u32,
    root_certificate: String,
    /// Encrypted PKCS#8 PEM; absent when the root was imported without it.
    root_key: Option<String>,
    intermediate_certificate: String,
    /// Encrypted PKCS#8 PEM.
    intermediate_key: String,
}

/// State-store key of the sealed CA.
pub(crate) const CA_KEY: &str = "ca";

impl SealedCa {
    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<Self, CaError> {
        serde_json::from_slice(bytes)
            .map_err(|e| CaError::Config(format!("the stored CA record is unreadable: {e}")))
    }

    pub(crate) fn to_bytes(&self) -> Result<Vec<u8>, CaError> {
        serde_json::to_vec(self).map_err(|e| CaError::Config(e.to_string()))
    }

    /// The root certificate as stored.
    pub(crate) fn root(&self) -> Result<X509, CaError> {
        X509::from_pem(self.root_certificate.as_bytes())
            .map_err(|_| CaError::Config("the stored root certificate is unreadable".into()))
    }

    /// Decrypts the intermediate key and loads the CA.
    pub(crate) fn open(&self, passphrase: &Secret) -> Result<Authority, CaError> {
        let intermediate =
            X509::from_pem(self.intermediate_certificate.as_bytes()).map_err(|_| {
                CaError::Config("the stored intermediate certificate is unreadable".into())
            })?;
        let key = PKey::private_key_from_pem_passphrase(
            self.intermediate_key.as_bytes(),
            passphrase.expose().as_bytes(),
        )
        .map_err(|_| {
            CaError::Config(
                "cannot decrypt the stored CA key: wrong passphrase, or the state is corrupt"
                    .into(),
            )
        })?;
        Authority::new(self.root()?, intermediate, key)
    }
}

impl Authority {
    fn new(root: X509, intermediate: X509, key: PKey<Private>) -> Result<Self, CaError> {
        let alg = SigningAlg::for_key(&key).map_err(CaError::Config)?;
        if !intermediate.public_key()?.public_eq(&key) {
            return Err(CaError::Config(
                "the intermediate key does not match the intermediate certificate".into(),
            ));
        }
        let root_key = root.public_key()?;
        if !intermediate.verify(&root_key).unwrap_or(false) {
            return Err(CaError::Config(
                "the intermediate certificate is not signed by the root".into(),
            ));
        }
        let key_id = intermediate
            .subject_key_id()
            .map(|id| id.as_slice().to_vec())
            .ok_or_else(|| {
                CaError::Config("the intermediate certificate has no subjectKeyIdentifier".into())
            })?;
        Ok(Self {
            root,
            intermediate,
            key,
            alg,
            key_id,
        })
    }

    /// Creates a new root and intermediate and seals them.
    pub(crate) fn generate(
        settings: &GenerateCa,
        passphrase: &Secret,
        now: DateTime<Utc>,
    ) -> Result<(Self, SealedCa), CaError> {
        let root_key = new_key(settings.key_type)?;
        let root_until = now + chrono_duration(settings.root_validity);
        let root = ca_certificate(
            &settings.root_common_name,
            settings.organization.as_deref(),
            &root_key,
            None,
            now,
            root_until,
        )?;
        let key = new_key(settings.key_type)?;
        let until = (now + chrono_duration(settings.intermediate_validity)).min(root_until);
        let intermediate = ca_certificate(
            &settings.intermediate_common_name,
            settings.organization.as_deref(),
            &key,
            Some((&root, &root_key)),
            now,
            until,
        )?;
        let sealed = SealedCa {
            version: 1,
            root_certificate: pem_text(root.to_pem()?)?,
            root_key: Some(seal_key(&root_key, passphrase)?),
            intermediate_certificate: pem_text(intermediate.to_pem()?)?,
            intermediate_key: seal_key(&key, passphrase)?,
        };
        Ok((Self::new(root, intermediate, key)?, sealed))
    }

    /// Reads, checks and seals an existing CA.
    pub(crate) async fn import(
        settings: &ImportCa,
        passphrase: &Secret,
    ) -> Result<(Self, SealedCa), CaError> {
        let file_pass = settings
            .key_passphrase
            .as_ref()
            .map(|p| p.expose().as_bytes().to_vec())
            .unwrap_or_default();
        // Always go through the passphrase variant: without one, OpenSSL
        // would prompt on the terminal for an encrypted key.
        let read_key = |pem: &[u8], what: &str| {
            PKey::private_key_from_pem_passphrase(pem, &file_pass).map_err(|_| {
                CaError::Config(format!(
                    "cannot read the {what}: not a PEM private key, or encrypted and \
                     key_passphrase is missing or wrong"
                ))
            })
        };
        let root_pem = settings.root_certificate.read("root certificate").await?;
        let root = X509::from_pem(&root_pem)
            .map_err(|_| CaError::Config("the root certificate is not a PEM certificate".into()))?;
        let root_key = match &settings.root_key {
            Some(source) => {
                let key = read_key(&source.read("root key").await?, "root key")?;
                if !root.public_key()?.public_eq(&key) {
                    return Err(CaError::Config(
                        "the root key does not match the root certificate".into(),
                    ));
                }
                Some(seal_key(&key, passphrase)?)
            }
            None => None,
        };
        let pem = settings
            .intermediate_certificate
            .read("intermediate certificate")
            .await?;
        let intermediate = X509::from_pem(&pem).map_err(|_| {
            CaError::Config("the intermediate certificate is not a PEM certificate".into())
        })?;
        let key_pem = settings.intermediate_key.read("intermediate key").await?;
        let key = read_key(&key_pem, "intermediate key")?;
        let sealed = SealedCa {
            version: 1,
            root_certificate: pem_text(root.to_pem()?)?,
            root_key,
            intermediate_certificate: pem_text(intermediate.to_pem()?)?,
            intermediate_key: seal_key(&key, passphrase)?,
        };
        Ok((Self::new(root, intermediate, key)?, sealed))
    }
}

fn new_key(kind: CaKeyType) -> Result<PKey<Private>, CaError> {
    let ec = |nid| -> Result<PKey<Private>, CaError> {
        let group = EcGroup::from_curve_name(nid)?;
        Ok(PKey::from_ec_key(EcKey::generate(&group)?)?)
    };
    match kind {
        CaKeyType::EcdsaP256 => ec(Nid::X9_62_PRIME256V1),
        CaKeyType::EcdsaP384 => ec(Nid::SECP384R1),
        CaKeyType::Rsa2048 => Ok(PKey::from_rsa(Rsa::generate(2048)?)?),
        CaKeyType::Rsa3072 => Ok(PKey::from_rsa(Rsa::generate(3072)?)?),
        CaKeyType::Rsa4096 => Ok(PKey::from_rsa(Rsa::generate(4096)?)?),
    }
}

fn seal_key(key: &PKey<Private>, passphrase: &Secret) -> Result<String, CaError> {
    let pem = key.private_key_to_pem_pkcs8_passphrase(
        Cipher::aes_256_cbc(),
        passphrase.expose().as_bytes(),
    )?;
    pem_text(pem)
}

fn pem_text(pem: Vec<u8>) -> Result<String, CaError> {
    String::from_utf8(pem).map_err(|_| CaError::Config("OpenSSL produced non-ASCII PEM".into()))
}

/// A CA certificate: self-signed when `issuer` is `None`, else an
/// intermediate limited to issuing end-entity certificates (pathlen 0).
fn ca_certificate(
    common_name: &str,
    organization: Option<&str>,
    key: &PKey<Private>,
    issuer: Option<(&X509Ref, &PKey<Private>)>,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
) -> Result<X509, CaError> {
    let mut name = X509NameBuilder::new()?;
    if let Some(org) = organization {
        name.append_entry_by_nid(Nid::ORGANIZATIONNAME, org)?;
    }
    name.append_entry_by_nid(Nid::COMMONNAME, common_name)?;
    let name = name.build();
    let mut builder = X509Builder::new()?;
    builder.set_version(2)?;
    let serial = random_serial()?.to_asn1_integer()?;
    builder.set_serial_number(&serial)?;
    builder.set_subject_name(&name)?;
    match issuer {
        Some((cert, _)) => builder.set_issuer_name(cert.subject_name())?,
        None => builder.set_issuer_name(&name)?,
    }
    let (not_before, not_after) = (asn1_time(not_before)?, asn1_time(not_after)?);
    builder.set_not_before(&not_before)?;
    builder.set_not_after(&not_after)?;
    builder.set_pubkey(key)?;
    let mut constraints = BasicConstraints::new();
    constraints.critical().ca();
    if issuer.is_some() {
        constraints.pathlen(0);
    }
    builder.append_extension(constraints.build()?)?;
    builder.append_extension(
        KeyUsage::new()
            .critical()
            .key_cert_sign()
            .crl_sign()
            .digital_signature()
            .build()?,
    )?;
    let ski = SubjectKeyIdentifier::new().build(&builder.x509v3_context(None, None))?;
    builder.append_extension(ski)?;
    let signer = match issuer {
        Some((cert, issuer_key)) => {
            let aki = AuthorityKeyIdentifier::new()
                .keyid(true)
                .build(&builder.x509v3_context(Some(cert), None))?;
            builder.append_extension(aki)?;
            issuer_key
        }
        None => key,
    };
    let alg = SigningAlg::for_key(signer).map_err(CaError::Config)?;
    builder.sign(signer, alg.digest())?;
    Ok(builder.build())
}

/// A random positive 16-byte serial: the top bit is cleared so the DER
/// INTEGER stays positive and the next one set so it keeps all 16 bytes
/// (126 random bits, well above the 64 the CA/Browser Forum asks for).
pub(crate) fn random_serial() -> Result<BigNum, CaError> {
    let mut serial = BigNum::new()?;
    serial.rand(127, MsbOption::ONE, false)?;
    Ok(serial)
}

/// A UTC time as OpenSSL's type.
pub(crate) fn asn1_time(at: DateTime<Utc>) -> Result<Asn1Time, CaError> {
    Ok(Asn1Time::from_unix(at.timestamp())?)
}

/// An OpenSSL time as a UTC time.
pub(crate) fn utc_time(at: &openssl::asn1::Asn1TimeRef) -> Result<DateTime<Utc>, CaError> {
    let epoch = Asn1Time::from_unix(0)?;
    let diff = epoch.diff(at)?;
    let secs = i64::from(diff.days) * 86_400 + i64::from(diff.secs);
    DateTime::from_timestamp(secs, 0)
        .ok_or_else(|| CaError::Config("a certificate time is out of range".into()))
}

/// A std duration as chrono's, saturating at a century.
pub(crate) fn chrono_duration(d: Duration) -> chrono::Duration {
    let century = chrono::Duration::days(36_525);
    chrono::Duration::from_std(d).map_or(century, |d| d.min(century))
}
