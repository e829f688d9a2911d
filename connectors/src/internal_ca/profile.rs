//! The end-entity certificate profile: which extensions a server, client or
//! code-signing certificate carries.
//!
//! Everything in the certificate except the public key comes from the
//! (policy-checked) request, never from the CSR, so nothing a requester
//! slips into a CSR's attributes reaches a certificate.

use chrono::{DateTime, Utc};
use openssl::asn1::{Asn1Object, Asn1OctetString};
use openssl::bn::BigNumRef;
use openssl::nid::Nid;
use openssl::pkey::{PKeyRef, Public};
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{X509, X509Builder, X509Extension, X509NameBuilder};

use super::authority::{Authority, asn1_time};
use super::policy::LeafKeyType;
use super::{CaError, der};
use crate::{Identifier, Usage};

/// What goes into one end-entity certificate.
pub(crate) struct Leaf<'a> {
    /// Names, already checked and normalised by the policy; at least one.
    pub(crate) identifiers: &'a [Identifier],
    /// The CSR's public key.
    pub(crate) key: &'a PKeyRef<Public>,
    /// Its type, which decides the keyUsage bits.
    pub(crate) key_type: LeafKeyType,
    /// What the certificate is for.
    pub(crate) usage: Usage,
    /// Start of validity (already backdated).
    pub(crate) not_before: DateTime<Utc>,
    /// End of validity.
    pub(crate) not_after: DateTime<Utc>,
    /// URL of the CRL, for the cRLDistributionPoints extension.
    pub(crate) crl_url: Option<&'a str>,
}

/// Longest common name X.509 allows (RFC 5280 ub-common-name).
const MAX_COMMON_NAME: usize = 64;

/// Builds and signs the certificate with the intermediate.
pub(crate) fn sign(
    authority: &Authority,
    leaf: &Leaf<'_>,
    serial: &BigNumRef,
) -> Result<X509, CaError> {
    let mut builder = X509Builder::new()?;
    builder.set_version(2)?;
    let serial = serial.to_asn1_integer()?;
    builder.set_serial_number(&serial)?;

    // The first name doubles as the common name for software that still
    // looks there; if it is too long the subject stays empty and the SAN
    // becomes critical, as RFC 5280 section 4.2.1.6 requires.
    let common_name = leaf.identifiers.first().map(identifier_text);
    let mut subject = X509NameBuilder::new()?;
    let has_subject = match &common_name {
        Some(cn) if cn.len() <= MAX_COMMON_NAME => {
            subject.append_entry_by_nid(Nid::COMMONNAME, cn)?;
            true
        }
        _ => false,
    };
    builder.set_subject_name(&subject.build())?;
    builder.set_issuer_name(authority.intermediate.subject_name())?;
    let (not_before, not_after) = (asn1_time(leaf.not_before)?, asn1_time(leaf.not_after)?);
    builder.set_not_before(&not_before)?;
    builder.set_not_after(&not_after)?;
    builder.set_pubkey(leaf.key)?;

    builder.append_extension(BasicConstraints::new().critical().build()?)?;
    let mut key_usage = KeyUsage::new();
    key_usage.critical().digital_signature();
    // TLS 1.2 RSA key exchange encrypts the premaster secret to the server key.
    if leaf.usage == Usage::Server && leaf.key_type == LeafKeyType::Rsa {
        key_usage.key_encipherment();
    }
    builder.append_extension(key_usage.build()?)?;
    let mut eku = ExtendedKeyUsage::new();
    match leaf.usage {
        Usage::Server => eku.server_auth(),
        Usage::Client => eku.client_auth(),
        Usage::CodeSigning => eku.code_signing(),
    };
    builder.append_extension(eku.build()?)?;

    let mut san = SubjectAlternativeName::new();
    if !has_subject {
        san.critical();
    }
    for id in leaf.identifiers {
        match id {
            Identifier::Dns(name) => san.dns(name),
            Identifier::Ip(ip) => san.ip(&ip.to_string()),
            Identifier::Email(address) => san.email(address),
        };
    }
    let san = san.build(&builder.x509v3_context(Some(&authority.intermediate), None))?;
    builder.append_extension(san)?;
    let ski = SubjectKeyIdentifier::new()
        .build(&builder.x509v3_context(Some(&authority.intermediate), None))?;
    builder.append_extension(ski)?;
    let aki = AuthorityKeyIdentifier::new()
        .keyid(true)
        .build(&builder.x509v3_context(Some(&authority.intermediate), None))?;
    builder.append_extension(aki)?;
    if let Some(url) = leaf.crl_url {
        builder.append_extension(crl_distribution_point(url)?)?;
    }

    builder.sign(&authority.key, authority.alg.digest())?;
    Ok(builder.build())
}

/// cRLDistributionPoints (RFC 5280 section 4.2.1.13) with one full-name URI:
/// `SEQUENCE { SEQUENCE { [0] { [0] { [6] uri } } } }`. The outer `[0]` tags
/// the DistributionPointName CHOICE, hence explicit; `fullName` and the URI
/// are implicitly tagged.
fn crl_distribution_point(url: &str) -> Result<X509Extension, CaError> {
    let uri = der::context_primitive(6, url.as_bytes());
    let full_name = der::context_constructed(0, &uri);
    let point_name = der::context_constructed(0, &full_name);
    let value = der::sequence(&[&der::sequence(&[&point_name])]);
    let oid = Asn1Object::from_str("2.5.29.31")?;
    let value = Asn1OctetString::new_from_bytes(&value)?;
    Ok(X509Extension::new_from_der(&oid, false, &value)?)
}

/// The text of an identifier, as it appears in a common name.
pub(crate) fn identifier_text(id: &Identifier) -> String {
    match id {
        Identifier::Dns(name) => name.clone(),
        Identifier::Ip(ip) => ip.to_string(),
        Identifier::Email(address) => address.clone(),
    }
}
