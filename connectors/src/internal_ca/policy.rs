//! The issuance policy of the internal CA: which CSR keys, names, usages and
//! validities it accepts.
//!
//! A public CA proves control of a name before it signs; an internal CA has
//! no such check, so the policy is the only thing between a compromised or
//! buggy caller and a certificate for any name. Everything not explicitly
//! allowed is refused, and a refusal is a permanent error: retrying the same
//! request cannot succeed.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use openssl::nid::Nid;
use openssl::pkey::{Id, PKeyRef, Public};

use crate::{Identifier, Usage};

/// A key type the CA accepts in a CSR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeafKeyType {
    /// RSA of at least [`IssuancePolicy::min_rsa_bits`] bits.
    Rsa,
    /// ECDSA on NIST P-256.
    EcdsaP256,
    /// ECDSA on NIST P-384.
    EcdsaP384,
    /// Ed25519.
    Ed25519,
}

impl fmt::Display for LeafKeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Rsa => "RSA",
            Self::EcdsaP256 => "ECDSA P-256",
            Self::EcdsaP384 => "ECDSA P-384",
            Self::Ed25519 => "Ed25519",
        })
    }
}

/// What the CA will sign. The default accepts every supported key type
/// (RSA of 2048 bits or more), every usage, at most 90 days of validity, and
/// no names at all: an operator must say which names the CA may certify.
#[derive(Debug, Clone)]
pub struct IssuancePolicy {
    /// Key types accepted in a CSR.
    pub key_types: Vec<LeafKeyType>,
    /// Smallest RSA modulus accepted, in bits; values below 2048 are refused
    /// when the CA is opened.
    pub min_rsa_bits: u32,
    /// Longest validity granted; a longer request is capped to it.
    pub max_validity: Duration,
    /// Validity granted when the request names none (capped by
    /// `max_validity` too).
    pub default_validity: Duration,
    /// Usages the CA issues for.
    pub usages: Vec<Usage>,
    /// Names the CA may certify.
    pub names: NamePolicy,
}

impl Default for IssuancePolicy {
    fn default() -> Self {
        Self {
            key_types: vec![
                LeafKeyType::Rsa,
                LeafKeyType::EcdsaP256,
                LeafKeyType::EcdsaP384,
                LeafKeyType::Ed25519,
            ],
            min_rsa_bits: 2048,
            max_validity: Duration::from_secs(90 * 86_400),
            default_validity: Duration::from_secs(90 * 86_400),
            usages: vec![Usage::Server, Usage::Client, Usage::CodeSigning],
            names: NamePolicy::default(),
        }
    }
}

/// Largest RSA key accepted: bigger keys only cost verification time.
const MAX_RSA_BITS: u32 = 16_384;

/// Names the CA may put in a certificate; anything matching none of the
/// entries is refused.
#[derive(Debug, Clone, Default)]
pub struct NamePolicy {
    /// DNS name patterns, case-insensitive:
    /// - `host.example.com` allows exactly that name;
    /// - `.example.com` allows every name below `example.com`, at any depth
    ///   (but not `example.com` itself);
    /// - a `*` inside a label matches any run of characters within that one
    ///   label: `*.example.com` allows `www.example.com` but not
    ///   `a.b.example.com`, `web-*.example.com` allows `web-1.example.com`.
    pub dns: Vec<String>,
    /// Whether wildcard certificates (`*.example.com`) may be issued; the
    /// wildcard label must still be allowed by a pattern whose label there
    /// is exactly `*`, or by a `.suffix` pattern.
    pub allow_wildcards: bool,
    /// IP networks whose addresses may be certified.
    pub ip_networks: Vec<IpNetwork>,
    /// E-mail domains: `example.com` allows `anyone@example.com`,
    /// `.example.com` allows addresses at any subdomain of `example.com`.
    pub email_domains: Vec<String>,
}

/// An IP network in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNetwork {
    /// The network address.
    pub addr: IpAddr,
    /// The length of the network prefix in bits.
    pub prefix_len: u8,
}

impl IpNetwork {
    /// Whether `ip` lies in this network (never across address families).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix_len)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix_len)
            }
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], prefix_len: u8) -> bool {
    let bits = usize::from(prefix_len).min(a.len() * 8);
    let whole = bits / 8;
    if a[..whole] != b[..whole] {
        return false;
    }
    let rest = bits % 8;
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    a[whole] & mask == b[whole] & mask
}

impl FromStr for IpNetwork {
    type Err = String;

    /// Parses `addr/len`; a bare address is a single-host network.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, len) = match s.split_once('/') {
            Some((addr, len)) => (addr, Some(len)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not an IP network (expected e.g. 10.0.0.0/8)"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix_len = match len {
            Some(len) => len
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| format!("`{s}`: the prefix length must be 0 to {max}"))?,
            None => max,
        };
        Ok(Self { addr, prefix_len })
    }
}

impl fmt::Display for IpNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

impl IssuancePolicy {
    /// Checks the policy itself, so a bad configuration fails at start-up
    /// rather than on the first request.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.min_rsa_bits < 2048 {
            return Err(format!(
                "min_rsa_bits = {} is below 2048, which no longer resists factoring",
                self.min_rsa_bits
            ));
        }
        if self.max_validity.is_zero() {
            return Err("max_validity must be more than zero".into());
        }
        if self.default_validity.is_zero() {
            return Err("default_validity must be more than zero".into());
        }
        for pattern in &self.names.dns {
            let bare = pattern.strip_prefix('.').unwrap_or(pattern);
            if bare.is_empty()
                || bare.split('.').any(|label| {
                    label.is_empty()
                        || !label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'*')
                })
            {
                return Err(format!("`{pattern}` is not a DNS name pattern"));
            }
        }
        for domain in &self.names.email_domains {
            let bare = domain.strip_prefix('.').unwrap_or(domain);
            if check_dns_name(bare, false).is_err() {
                return Err(format!("`{domain}` is not an e-mail domain"));
            }
        }
        Ok(())
    }

    /// The key type of a CSR's key, if the policy accepts it.
    pub(crate) fn check_key(&self, key: &PKeyRef<Public>) -> Result<LeafKeyType, String> {
        let kind = match key.id() {
            Id::RSA => {
                let bits = key.bits();
                if bits < self.min_rsa_bits || bits > MAX_RSA_BITS {
                    return Err(format!(
                        "the CSR's RSA key has {bits} bits; the policy accepts {} to {MAX_RSA_BITS}",
                        self.min_rsa_bits
                    ));
                }
                LeafKeyType::Rsa
            }
            Id::EC => {
                let curve = key
                    .ec_key()
                    .ok()
                    .and_then(|ec| ec.group().curve_name())
                    .ok_or("the CSR's EC key is not on a named curve")?;
                match curve {
                    Nid::X9_62_PRIME256V1 => LeafKeyType::EcdsaP256,
                    Nid::SECP384R1 => LeafKeyType::EcdsaP384,
                    other => {
                        return Err(format!(
                            "the CSR's EC key is on curve {}, not P-256 or P-384",
                            other.short_name().unwrap_or("unknown")
                        ));
                    }
                }
            }
            Id::ED25519 => LeafKeyType::Ed25519,
            _ => return Err("the CSR's key type is not RSA, ECDSA or Ed25519".into()),
        };
        if self.key_types.contains(&kind) {
            Ok(kind)
        } else {
            Err(format!("the policy does not accept {kind} keys"))
        }
    }

    /// The validity to grant: the request's (or the default), capped.
    pub(crate) fn validity(&self, requested: Option<Duration>) -> Result<Duration, String> {
        let wanted = requested.unwrap_or(self.default_validity);
        if wanted.is_zero() {
            return Err("the requested validity is zero".into());
        }
        Ok(wanted.min(self.max_validity))
    }

    /// Checks that the usage is allowed.
    pub(crate) fn check_usage(&self, usage: Usage) -> Result<(), String> {
        if self.usages.contains(&usage) {
            Ok(())
        } else {
            Err(format!("the policy does not issue {usage:?} certificates"))
        }
    }

    /// Checks one identifier; returns it normalised (DNS names and e-mail
    /// domains lower-cased).
    pub(crate) fn check_identifier(&self, id: &Identifier) -> Result<Identifier, String> {
        match id {
            Identifier::Dns(name) => {
                let name = name.to_ascii_lowercase();
                check_dns_name(&name, true)?;
                if name.starts_with("*.") && !self.names.allow_wildcards {
                    return Err(format!("wildcard name {name} refused: wildcards are off"));
                }
                if self.names.dns.iter().any(|p| dns_matches(p, &name)) {
                    Ok(Identifier::Dns(name))
                } else {
                    Err(format!("DNS name {name} is not allowed by the policy"))
                }
            }
            Identifier::Ip(ip) => {
                if self.names.ip_networks.iter().any(|n| n.contains(*ip)) {
                    Ok(Identifier::Ip(*ip))
                } else {
                    Err(format!("IP address {ip} is not allowed by the policy"))
                }
            }
            Identifier::Email(address) => {
                let (local, domain) = address
                    .rsplit_once('@')
                    .filter(|(local, _)| {
                        !local.is_empty()
                            && local
                                .chars()
                                .all(|c| c.is_ascii_graphic() && c != '@' && c != '\\')
                    })
                    .ok_or_else(|| format!("`{address}` is not an e-mail address"))?;
                let domain = domain.to_ascii_lowercase();
                check_dns_name(&domain, false)
                    .map_err(|_| format!("`{address}` is not an e-mail address"))?;
                let allowed = self.names.email_domains.iter().any(|d| {
                    let d = d.to_ascii_lowercase();
                    match d.strip_prefix('.') {
                        Some(parent) => domain
                            .strip_suffix(parent)
                            .is_some_and(|head| head.ends_with('.')),
                        None => domain == d,
                    }
                });
                if allowed {
                    Ok(Identifier::Email(format!("{local}@{domain}")))
                } else {
                    Err(format!(
                        "e-mail address {address} is not allowed by the policy"
                    ))
                }
            }
        }
    }
}

/// Checks that `name` (lower-case) is a syntactically valid host name: LDH
/// labels of 1 to 63 characters, at most 253 in all, no trailing dot; with
/// `wildcard`, the leftmost label may be `*`.
fn check_dns_name(name: &str, wildcard: bool) -> Result<(), String> {
    let bad = || format!("`{name}` is not a valid DNS name");
    if name.is_empty() || name.len() > 253 {
        return Err(bad());
    }
    for (i, label) in name.split('.').enumerate() {
        if wildcard && i == 0 && label == "*" && name.len() > 2 {
            continue;
        }
        let ldh = label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if label.is_empty()
            || label.len() > 63
            || !ldh
            || label.starts_with('-')
            || label.ends_with('-')
        {
            return Err(bad());
        }
    }
    Ok(())
}

/// Whether `name` (valid, lower-case) matches the policy `pattern`.
fn dns_matches(pattern: &str, name: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    if let Some(parent) = pattern.strip_prefix('.') {
        return name
            .strip_suffix(parent)
            .is_some_and(|head| head.len() > 1 && head.ends_with('.'));
    }
    let mut wanted = pattern.split('.');
    let mut given = name.split('.');
    loop {
        match (wanted.next(), given.next()) {
            (None, None) => return true,
            (Some(p), Some(l)) if glob(p.as_bytes(), l.as_bytes()) => {}
            _ => return false,
        }
    }
}

/// Glob match of one label: `*` matches any run of bytes, everything else
/// itself. A requested wildcard label `*` thus only matches a pattern label
/// made of `*` alone.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| glob(rest, &text[skip..])),
        Some((p, rest)) => text
            .split_first()
            .is_some_and(|(t, text)| t == p && glob(rest, text)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> IssuancePolicy {
        IssuancePolicy {
            names: NamePolicy {
                dns: vec![
                    "exact.example.com".into(),
                    "*.one.example.com".into(),
                    ".deep.example.com".into(),
                    "web-*.example.net".into(),
                ],
                allow_wildcards: true,
                ip_networks: vec![
                    "10.1.0.0/16".parse().unwrap(),
                    "2001:db8::/32".parse().unwrap(),
                ],
                email_domains: vec!["example.org".into(), ".corp.example.org".into()],
            },
            ..IssuancePolicy::default()
        }
    }

    fn allowed(id: Identifier) -> bool {
        policy().check_identifier(&id).is_ok()
    }

    #[test]
    fn dns_patterns_allow_only_what_they_say() {
        let dns = |s: &str| allowed(Identifier::Dns(s.into()));
        assert!(dns("exact.example.com"));
        assert!(dns("EXACT.example.com"));
        assert!(!dns("other.example.com"));
        assert!(!dns("sub.exact.example.com"));
        assert!(dns("www.one.example.com"));
        assert!(dns("*.one.example.com"));
        assert!(!dns("a.b.one.example.com"));
        assert!(!dns("one.example.com"));
        assert!(dns("a.b.deep.example.com"));
        assert!(!dns("deep.example.com"));
        assert!(!dns("xdeep.example.com"));
        assert!(dns("web-1.example.net"));
        assert!(!dns("*.example.net"));
        assert!(!dns("web-1.example.net."));
        assert!(!dns("-bad.deep.example.com"));
    }

    #[test]
    fn wildcards_need_the_switch() {
        let mut p = policy();
        p.names.allow_wildcards = false;
        assert!(
            p.check_identifier(&Identifier::Dns("*.one.example.com".into()))
                .is_err()
        );
        assert!(
            p.check_identifier(&Identifier::Dns("w.one.example.com".into()))
                .is_ok()
        );
    }

    #[test]
    fn ip_networks_and_email_domains() {
        assert!(allowed(Identifier::Ip("10.1.2.3".parse().unwrap())));
        assert!(!allowed(Identifier::Ip("10.2.0.1".parse().unwrap())));
        assert!(allowed(Identifier::Ip("2001:db8::1".parse().unwrap())));
        assert!(!allowed(Identifier::Ip("::ffff:10.1.2.3".parse().unwrap())));
        assert!(allowed(Identifier::Email("dev@example.org".into())));
        assert!(allowed(Identifier::Email(
            "dev@build.corp.example.org".into()
        )));
        assert!(!allowed(Identifier::Email("dev@corp.example.org".into())));
        assert!(!allowed(Identifier::Email("dev@evil-example.org".into())));
        assert!(!allowed(Identifier::Email("@example.org".into())));
    }

    #[test]
    fn networks_parse_and_reject_bad_prefixes() {
        let net: IpNetwork = "192.168.0.0/23".parse().unwrap();
        assert!(net.contains("192.168.1.255".parse().unwrap()));
        assert!(!net.contains("192.168.2.0".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<IpNetwork>().is_err());
        assert_eq!("10.0.0.1".parse::<IpNetwork>().unwrap().prefix_len, 32);
    }

    #[test]
    fn validity_is_capped() {
        let p = policy();
        let day = Duration::from_secs(86_400);
        assert_eq!(p.validity(Some(day * 400)).unwrap(), day * 90);
        assert_eq!(p.validity(Some(day)).unwrap(), day);
        assert!(p.validity(Some(Duration::ZERO)).is_err());
    }

    #[test]
    fn weak_rsa_minimum_is_a_configuration_error() {
        let p = IssuancePolicy {
            min_rsa_bits: 1024,
            ..IssuancePolicy::default()
        };
        assert!(p.validate().unwrap_err().contains("min_rsa_bits"));
    }
}
