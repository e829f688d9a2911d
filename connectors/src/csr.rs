//! Keys and certificate signing requests, as the daemon and the conformance
//! suite make them for connectors.

use openssl::ec::{EcGroup, EcKey};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::stack::Stack;
use openssl::x509::extension::SubjectAlternativeName;
use openssl::x509::{X509NameBuilder, X509Req};

use crate::Identifier;

/// A key algorithm for a new certificate key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// RSA with this many bits.
    Rsa(u32),
    /// ECDSA on P-256.
    EcdsaP256,
    /// ECDSA on P-384.
    EcdsaP384,
    /// Ed25519.
    Ed25519,
}

/// Generates a new private key.
pub fn generate_key(algorithm: KeyAlgorithm) -> Result<PKey<Private>, ErrorStack> {
    match algorithm {
        KeyAlgorithm::Rsa(bits) => PKey::from_rsa(Rsa::generate(bits)?),
        KeyAlgorithm::EcdsaP256 => {
            let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
            PKey::from_ec_key(EcKey::generate(&group)?)
        }
        KeyAlgorithm::EcdsaP384 => {
            let group = EcGroup::from_curve_name(Nid::SECP384R1)?;
            PKey::from_ec_key(EcKey::generate(&group)?)
        }
        KeyAlgorithm::Ed25519 => PKey::generate_ed25519(),
    }
}

/// A DER CSR for `identifiers` signed with `key`; the first DNS name (or the
/// first identifier) becomes the subject CN when it fits.
pub fn build_csr(key: &PKey<Private>, identifiers: &[Identifier]) -> Result<Vec<u8>, ErrorStack> {
    let mut req = X509Req::builder()?;
    req.set_pubkey(key)?;
    let mut name = X509NameBuilder::new()?;
    let cn = identifiers
        .iter()
        .find_map(|id| match id {
            Identifier::Dns(d) => Some(d.clone()),
            _ => None,
        })
        .or_else(|| {
            identifiers.first().map(|id| match id {
                Identifier::Dns(d) | Identifier::Email(d) => d.clone(),
                Identifier::Ip(ip) => ip.to_string(),
            })
        });
    if let Some(cn) = cn.filter(|cn| cn.len() <= 64) {
        name.append_entry_by_nid(Nid::COMMONNAME, &cn)?;
    }
    req.set_subject_name(&name.build())?;
    let mut san = SubjectAlternativeName::new();
    for id in identifiers {
        match id {
            Identifier::Dns(d) => san.dns(d),
            Identifier::Ip(ip) => san.ip(&ip.to_string()),
            Identifier::Email(m) => san.email(m),
        };
    }
    let mut extensions = Stack::new()?;
    extensions.push(san.build(&req.x509v3_context(None))?)?;
    req.add_extensions(&extensions)?;
    // Ed25519 signs without a separate digest.
    let digest = if key.id() == openssl::pkey::Id::ED25519 {
        MessageDigest::null()
    } else {
        MessageDigest::sha256()
    };
    req.sign(key, digest)?;
    req.build().to_der()
}
