//! Whether a certificate's names cover a host name: the one check, used by
//! the installation check (hostname mismatch), the CLI's `--name` filter and
//! anything else that asks "is this certificate for that host?".
//!
//! The rules are those of RFC 6125 §6.4 as browsers apply them: names compare
//! case-insensitively without a trailing dot; a wildcard stands for exactly
//! one whole, non-empty leftmost label and needs at least two labels after it
//! (`*.com` covers nothing, `*.example.com` does not cover `example.com` or
//! `a.b.example.com`); an IP address is covered only by an IP SAN; the
//! subject CN counts only when the certificate has no SAN at all.

use std::net::IpAddr;

use crate::inventory::ParsedCertificate;

/// Whether the certificate's names cover `name` (a DNS name, or an IP address
/// with or without brackets).
pub fn covers(cert: &ParsedCertificate, name: &str) -> bool {
    let name = normalise(name);
    let no_san = cert.san_dns.is_empty()
        && cert.san_ip.is_empty()
        && cert.san_email.is_empty()
        && cert.san_uri.is_empty();
    let ip = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(&name)
        .parse::<IpAddr>()
        .ok();
    if let Some(ip) = ip {
        let same_ip = |text: &str| text.parse::<IpAddr>().is_ok_and(|other| other == ip);
        return cert.san_ip.iter().any(|san| same_ip(san))
            || (no_san && cert.subject_cn.as_deref().is_some_and(same_ip));
    }
    if no_san {
        return cert
            .subject_cn
            .as_deref()
            .is_some_and(|cn| pattern_covers(cn, &name));
    }
    cert.san_dns
        .iter()
        .any(|pattern| pattern_covers(pattern, &name))
}

/// Lowercase, trimmed, without the trailing dot of a fully qualified name.
pub fn normalise(name: &str) -> String {
    let name = name.trim();
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// Whether one certificate name (possibly `*.example.com`) covers `name`.
pub fn pattern_covers(pattern: &str, name: &str) -> bool {
    let pattern = normalise(pattern);
    let name = normalise(name);
    if pattern.is_empty() || name.is_empty() {
        return false;
    }
    match pattern.strip_prefix("*.") {
        Some(suffix) if suffix.contains('.') && !suffix.contains('*') => name
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && label != "*" && rest == suffix),
        Some(_) => false,
        None => !pattern.contains('*') && pattern == name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_given_with_a_trailing_dot_or_in_capitals_is_the_same_name() {
        assert!(pattern_covers("www.example.com", "WWW.Example.com."));
        assert!(pattern_covers("*.example.com", " www.example.com "));
        assert!(!pattern_covers("*.example.com", "*.example.com"));
    }
}
