//! Which entries concern the watched domains. A watched domain matches
//! itself and every name below it (watching `example.com` matches
//! `example.com` and `a.b.example.com`); a wildcard name in a certificate
//! (`*.example.com`, RFC 6125 §6.4.3) matches when a name it could stand
//! for is watched or below a watched domain, so `*.example.com` matches a
//! watch on `example.com` and on `www.example.com`. Comparison is ASCII
//! case-insensitive and ignores a trailing dot; names are compared as
//! logged (A-labels), so IDNs are watched by their `xn--` form.

use std::collections::HashSet;

use super::entry::Entry;

/// A set of watched domains.
#[derive(Debug, Clone, Default)]
pub struct Watch {
    domains: HashSet<String>,
    /// Longest watched domain, in labels: no suffix longer needs looking up.
    max_labels: usize,
}

fn normalise(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

impl Watch {
    /// Watches these domains (and everything below them).
    pub fn new(domains: &[String]) -> Watch {
        let domains: HashSet<String> = domains
            .iter()
            .map(|d| normalise(d.trim_start_matches("*.")))
            .filter(|d| !d.is_empty())
            .collect();
        let max_labels = domains
            .iter()
            .map(|d| d.split('.').count())
            .max()
            .unwrap_or(0);
        Watch {
            domains,
            max_labels,
        }
    }

    /// Whether nothing is watched.
    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }

    /// Whether one certificate name concerns a watched domain.
    pub fn matches_name(&self, name: &str) -> bool {
        if self.domains.is_empty() {
            return false;
        }
        let name = normalise(name);
        let (wildcard, base) = match name.strip_prefix("*.") {
            Some(base) => (true, base),
            None => (false, name.as_str()),
        };
        // The name or a domain above it is watched.
        let mut suffix = base;
        loop {
            if self.domains.contains(suffix) {
                return true;
            }
            match suffix.split_once('.') {
                Some((_, rest)) => suffix = rest,
                None => break,
            }
        }
        // A wildcard stands for one more label: `*.example.com` covers a
        // watched `www.example.com`.
        if wildcard && self.max_labels > base.split('.').count() {
            let depth = base.split('.').count() + 1;
            return self.domains.iter().any(|d| {
                d.len() > base.len()
                    && d.ends_with(base)
                    && d.as_bytes()[d.len() - base.len() - 1] == b'.'
                    && d.split('.').count() == depth
            });
        }
        false
    }

    /// Whether any of the entry's names concerns a watched domain.
    pub fn matches_entry(&self, entry: &Entry) -> bool {
        entry.dns_names.iter().any(|n| self.matches_name(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdomains_wildcards_case_and_dots() {
        let watch = Watch::new(&["Example.com.".to_owned(), "shop.other.test".to_owned()]);
        for yes in [
            "example.com",
            "a.b.example.com",
            "WWW.EXAMPLE.COM.",
            "*.example.com",
            "*.sub.example.com",
            "*.other.test",
            "*.com",
            "shop.other.test",
            "x.shop.other.test",
        ] {
            assert!(watch.matches_name(yes), "{yes}");
        }
        for no in [
            "notexample.com",
            "example.com.evil.test",
            "other.test",
            "www.other.test",
            "*.a.other.test",
            "",
        ] {
            assert!(!watch.matches_name(no), "{no}");
        }
        assert!(!Watch::new(&[]).matches_name("example.com"));
    }
}
