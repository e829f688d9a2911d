//! Domain policy: which org unit may obtain certificates for which names.
//!
//! An organisation lists its domains (and IP networks) as [`DomainRule`]s,
//! each owned by an org unit and marked pre-approved, requiring approval or
//! blocked. Before an enrollment request is created, its names are
//! normalised with [`normalise_identifier`] (so `Bücher.Example.` and
//! `xn--bcher-kva.example` are the same name) and [`DomainPolicy::decide`]
//! says whether the request may go ahead, must wait for an approver, or is
//! refused, with a reason an end user can act on.
//!
//! How a name finds its rule:
//! - A rule for `example.com` covers `example.com` itself and, with
//!   `include_subdomains` (the default), every name below it. Matching is on
//!   label boundaries: `badexample.com` is not under `example.com`.
//! - The most specific rule wins (the longest matching domain), except that a
//!   block is absolute: a name under any blocked rule is refused whatever
//!   narrower rule exists. To allow part of a blocked tree, block narrower
//!   names instead. Blocks apply to every unit; a blocked rule's unit only
//!   records who placed it.
//! - A rule owned by the requesting unit or one of its ancestors applies to
//!   it (a parent's domains are its sub-units' domains). When the most
//!   specific rule belongs to another unit only, the name is that unit's.
//! - A wildcard `*.a.example` is matched by the rules for `a.example` and its
//!   parents; a rule for exactly `a.example` without subdomains still governs
//!   `*.a.example`, so its `allow_wildcards` decides. A wildcard also covers
//!   every name one label below it, so it is refused when one of those names
//!   is blocked or belongs to another unit, and needs approval when one of
//!   them does.
//! - IP addresses match rules whose domain is an address or a CIDR network.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// How requests for names under a rule are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DomainMode {
    /// Certificates are issued without an approver.
    PreApproved,
    /// An approver must accept each request first.
    RequiresApproval,
    /// Nobody gets certificates for these names.
    Blocked,
}

/// One entry of the domain policy, as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainRule {
    /// A DNS name (`example.com`, IDNs allowed), an IP address or a CIDR
    /// network (`10.1.0.0/16`).
    pub domain: String,
    /// The owning org unit; `None` means organisation-wide, which only a
    /// blocked rule may be.
    #[serde(default)]
    pub org_unit: Option<String>,
    /// What happens to requests for names under this rule.
    pub mode: DomainMode,
    /// Whether wildcard names (`*.example.com`) may be requested under it.
    #[serde(default)]
    pub allow_wildcards: bool,
    /// Whether the rule covers names below `domain` too (default true).
    #[serde(default = "default_true")]
    pub include_subdomains: bool,
}

fn default_true() -> bool {
    true
}

/// A name a certificate is requested for, normalised.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identifier {
    /// A DNS name.
    Dns {
        /// Lowercase A-label form without a trailing dot, and without the
        /// `*.` of a wildcard.
        name: String,
        /// Whether the name is `*.` followed by `name`.
        wildcard: bool,
    },
    /// An IP address.
    Ip(IpAddr),
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identifier::Dns { name, wildcard } if *wildcard => write!(f, "*.{name}"),
            Identifier::Dns { name, .. } => f.write_str(name),
            Identifier::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// Normalises a requested name: trims it, lowercases it, drops one trailing
/// dot, turns internationalised labels into their `xn--` form (UTS #46) and
/// checks the result is a host name (letters, digits and inner hyphens,
/// labels of 1–63 characters, at most 253 in all, a top-level label that is
/// not all digits). `*.` is accepted as the whole leftmost label only. IPv4
/// and IPv6 literals (the latter optionally in brackets) become
/// [`Identifier::Ip`]. The error says what is wrong, for the requester.
pub fn normalise_identifier(raw: &str) -> Result<Identifier, String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err("The name is empty.".to_owned());
    }
    let unbracketed = trimmed
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(trimmed);
    if let Ok(ip) = unbracketed.parse::<IpAddr>() {
        return Ok(Identifier::Ip(ip));
    }
    let lower = trimmed.to_lowercase();
    let name = lower.strip_suffix('.').unwrap_or(&lower);
    let (wildcard, base) = (name.strip_prefix("*.")).map_or((false, name), |rest| (true, rest));
    if base.contains('*') {
        return Err(format!(
            "{trimmed:?}: a wildcard '*' is only allowed as the whole leftmost label, \
             as in *.example.com."
        ));
    }
    let ascii = idna::domain_to_ascii(base)
        .map_err(|_| format!("{trimmed:?} is not a valid internationalised domain name."))?;
    check_host_name(&ascii, if wildcard { 2 } else { 0 })
        .map_err(|why| format!("{trimmed:?} is not a valid domain name: {why}."))?;
    Ok(Identifier::Dns {
        name: ascii,
        wildcard,
    })
}

/// Checks LDH syntax; `extra` is the length of a `*.` prefix.
fn check_host_name(name: &str, extra: usize) -> Result<(), String> {
    if name.len() + extra > 253 {
        return Err("it is longer than 253 characters".to_owned());
    }
    for label in name.split('.') {
        let why = if label.is_empty() {
            return Err("it has an empty label".to_owned());
        } else if label.len() > 63 {
            "is longer than 63 characters"
        } else if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            "may only hold letters, digits and hyphens"
        } else if label.starts_with('-') || label.ends_with('-') {
            "starts or ends with a hyphen"
        } else {
            continue;
        };
        return Err(format!("the label {label:?} {why}"));
    }
    match name.rsplit('.').next() {
        Some(tld) if tld.bytes().all(|b| b.is_ascii_digit()) => {
            Err("the top-level label is all digits".to_owned())
        }
        _ => Ok(()),
    }
}

/// The outcome of [`DomainPolicy::decide`] for a whole request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Every name is pre-approved: issue without an approver.
    PreApproved,
    /// Allowed once an approver accepts it.
    RequiresApproval {
        /// The names (as displayed) that need the approval.
        names: Vec<String>,
    },
    /// Refused.
    Rejected {
        /// Why, in sentences for the requester (one per refused name).
        reason: String,
    },
}

/// A validated rule: `domain` normalised, `net` set for address rules.
#[derive(Debug, Clone)]
struct Rule {
    domain: String,
    net: Option<IpNet>,
    unit: Option<String>,
    mode: DomainMode,
    allow_wildcards: bool,
    include_subdomains: bool,
}

impl Rule {
    /// Whether the rule governs `id` (see the module docs).
    fn matches(&self, id: &Identifier) -> bool {
        match (id, self.net) {
            (Identifier::Ip(ip), Some(net)) => net.contains(ip),
            (Identifier::Dns { name, .. }, None) if self.include_subdomains => {
                within(name, &self.domain)
            }
            // `*.d` is governed by d's own rule; a block of d alone is not a block of *.d.
            (Identifier::Dns { name, wildcard }, None) => {
                *name == self.domain && (!wildcard || self.mode != DomainMode::Blocked)
            }
            _ => false,
        }
    }

    /// Longer domains and longer prefixes are more specific.
    fn specificity(&self) -> usize {
        self.net.map_or_else(
            || self.domain.split('.').count(),
            |net| net.prefix_len().into(),
        )
    }
}

/// Whether `name` is `domain` or below it, on label boundaries.
fn within(name: &str, domain: &str) -> bool {
    name.strip_suffix(domain)
        .is_some_and(|head| head.is_empty() || head.ends_with('.'))
}

/// The organisation's domain rules, validated; answers who may have which names.
#[derive(Debug, Clone)]
pub struct DomainPolicy {
    rules: Vec<Rule>,
}

impl DomainPolicy {
    /// Validates and normalises `rules`: every domain must be a host name
    /// (no wildcard), an IP address or a CIDR network; every rule but a
    /// blocked one must name a non-blank org unit. The error names the rule.
    pub fn new(rules: Vec<DomainRule>) -> Result<DomainPolicy, String> {
        let mut compiled = Vec::with_capacity(rules.len());
        for rule in rules {
            let raw = rule.domain.trim();
            let fail = |why: &str| Err(format!("domain rule {raw:?}: {why}"));
            let (domain, net) = match (raw.parse::<IpNet>(), normalise_identifier(raw)) {
                (Ok(net), _) => (net.trunc().to_string(), Some(net.trunc())),
                (_, Ok(Identifier::Ip(ip))) => (ip.to_string(), Some(IpNet::from(ip))),
                (_, Ok(Identifier::Dns { name, wildcard })) if !wildcard => (name, None),
                (_, Ok(Identifier::Dns { .. })) => {
                    return fail("write it without '*.'; allow_wildcards permits wildcards");
                }
                (_, Err(e)) => return fail(&e),
            };
            let unit = rule.org_unit.as_deref().map(str::trim);
            if unit == Some("") {
                return fail("org_unit is blank");
            }
            if unit.is_none() && rule.mode != DomainMode::Blocked {
                return fail("only a blocked rule may omit org_unit");
            }
            compiled.push(Rule {
                domain,
                net,
                unit: unit.map(str::to_owned),
                mode: rule.mode,
                allow_wildcards: rule.allow_wildcards,
                include_subdomains: rule.include_subdomains,
            });
        }
        Ok(DomainPolicy { rules: compiled })
    }

    /// Decides a request by `org_unit` (whose ancestors, nearest first, are
    /// `ancestors`) for `identifiers`. Any refused name refuses the request,
    /// with one sentence per refused name; otherwise the request needs
    /// approval when any name does. Unit names compare exactly, after trimming.
    pub fn decide(
        &self,
        org_unit: &str,
        ancestors: &[String],
        identifiers: &[Identifier],
    ) -> Decision {
        if identifiers.is_empty() {
            let reason = "The request names no domain or IP address.".to_owned();
            return Decision::Rejected { reason };
        }
        let mut units = vec![org_unit.trim()];
        units.extend(ancestors.iter().map(|a| a.trim()));
        let (mut reasons, mut names) = (Vec::new(), Vec::new());
        for id in identifiers {
            match self.judge(&units, id) {
                Err(why) if !reasons.contains(&why) => reasons.push(why),
                Ok(DomainMode::RequiresApproval) if !names.contains(&id.to_string()) => {
                    names.push(id.to_string());
                }
                _ => {}
            }
        }
        match (reasons.is_empty(), names.is_empty()) {
            (false, _) => Decision::Rejected {
                reason: reasons.join(" "),
            },
            (true, true) => Decision::PreApproved,
            (true, false) => Decision::RequiresApproval { names },
        }
    }

    /// One identifier: the mode that applies, or why it is refused.
    /// `units[0]` is the requester, then its ancestors.
    fn judge(&self, units: &[&str], id: &Identifier) -> Result<DomainMode, String> {
        let requester = units.first().copied().unwrap_or_default();
        let matching: Vec<&Rule> = self.rules.iter().filter(|r| r.matches(id)).collect();
        if let Some(block) = matching.iter().find(|r| r.mode == DomainMode::Blocked) {
            let domain = &block.domain;
            return Err(format!(
                "{id} is blocked by the domain policy for {domain}."
            ));
        }
        let best = matching.iter().map(|r| r.specificity()).max();
        let top: Vec<&Rule> = matching
            .into_iter()
            .filter(|r| Some(r.specificity()) == best)
            .collect();
        let Some(rule) = nearest(&top, units) else {
            let why = match (best, id) {
                (Some(_), _) => format!("belongs to {}, not to", owners(&top)),
                (None, Identifier::Ip(_)) => "is not in a network managed by".to_owned(),
                (None, Identifier::Dns { .. }) => "is not a managed domain of".to_owned(),
            };
            return Err(format!("{id} {why} unit {requester:?}."));
        };
        let name = match id {
            Identifier::Dns { name, wildcard } if *wildcard => name,
            _ => return Ok(rule.mode),
        };
        if !rule.allow_wildcards {
            let domain = &rule.domain;
            return Err(format!(
                "{id} is refused: wildcard certificates are not allowed under {domain}."
            ));
        }
        // The wildcard also stands for each name one label below it.
        let mut children: Vec<&str> = (self.rules.iter())
            .filter(|r| r.net.is_none() && r.domain.split_once('.').map(|p| p.1) == Some(name))
            .map(|r| r.domain.as_str())
            .collect();
        children.sort_unstable();
        children.dedup();
        let mut mode = rule.mode;
        for child in children {
            let here: Vec<&Rule> = self.rules.iter().filter(|r| r.domain == child).collect();
            if here.iter().any(|r| r.mode == DomainMode::Blocked) {
                return Err(format!("{id} would also cover {child}, which is blocked."));
            }
            match nearest(&here, units) {
                None => {
                    let owners = owners(&here);
                    return Err(format!(
                        "{id} would also cover {child}, which belongs to {owners}."
                    ));
                }
                Some(r) if r.mode == DomainMode::RequiresApproval => mode = r.mode,
                Some(_) => {}
            }
        }
        Ok(mode)
    }
}

/// The rule of the unit nearest the requester (itself, then its parent, ...).
fn nearest<'r>(rules: &[&'r Rule], units: &[&str]) -> Option<&'r Rule> {
    let near = |r: &Rule| units.iter().position(|u| Some(*u) == r.unit.as_deref());
    (rules.iter().copied())
        .filter(|r| near(r).is_some())
        .min_by_key(|r| near(r))
}

/// "unit \"a\"" or "units \"a\" and \"b\"".
fn owners(rules: &[&Rule]) -> String {
    let mut units: Vec<String> = (rules.iter())
        .filter_map(|r| Some(format!("{:?}", r.unit.as_deref()?)))
        .collect();
    units.sort();
    units.dedup();
    let plural = if units.len() == 1 { "" } else { "s" };
    format!("unit{plural} {}", units.join(" and "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use DomainMode::*;

    /// Rules as (domain, unit or "", mode, flags): `w` allows wildcards,
    /// `x` leaves out subdomains.
    fn policy(rules: &[(&str, &str, DomainMode, &str)]) -> Result<DomainPolicy, String> {
        let rules = rules.iter().map(|(domain, unit, mode, flags)| DomainRule {
            domain: domain.to_string(),
            org_unit: (!unit.is_empty()).then(|| unit.to_string()),
            mode: *mode,
            allow_wildcards: flags.contains('w'),
            include_subdomains: !flags.contains('x'),
        });
        DomainPolicy::new(rules.collect())
    }

    /// The decision in short: "pre", "approval: a, b" or the reason.
    fn decide(policy: &DomainPolicy, unit: &str, ancestors: &[&str], names: &[&str]) -> String {
        let ids: Vec<Identifier> = names
            .iter()
            .map(|n| normalise_identifier(n).unwrap())
            .collect();
        let ancestors: Vec<String> = ancestors.iter().map(|a| a.to_string()).collect();
        match policy.decide(unit, &ancestors, &ids) {
            Decision::PreApproved => "pre".to_owned(),
            Decision::RequiresApproval { names } => format!("approval: {}", names.join(", ")),
            Decision::Rejected { reason } => reason,
        }
    }

    #[test]
    fn normalises_names_idns_and_addresses() {
        let long = format!("{}.example", "a".repeat(63));
        for (raw, normal) in [
            ("  WWW.Example.COM. ", "www.example.com"),
            ("Bücher.example", "xn--bcher-kva.example"),
            ("*.Bücher.example", "*.xn--bcher-kva.example"),
            ("[2001:DB8::1]", "2001:db8::1"),
            ("192.0.2.7", "192.0.2.7"),
            (&long, &long),
        ] {
            assert_eq!(normalise_identifier(raw).unwrap().to_string(), normal);
        }
        let wild = Identifier::Dns {
            name: "a.example".into(),
            wildcard: true,
        };
        assert_eq!(normalise_identifier("*.a.example").unwrap(), wild);
    }

    #[test]
    fn refuses_malformed_names_saying_why() {
        let long_label = format!("{}.example", "a".repeat(64));
        let long_name = ["abcdefghi"; 26].join(".");
        for (raw, why) in [
            ("", "empty"),
            ("www.*.example.com", "leftmost label"),
            ("*example.com", "leftmost label"),
            ("**.example.com", "leftmost label"),
            ("a..example", "empty label"),
            ("example.com..", "empty label"),
            ("-a.example", "hyphen"),
            ("a-.example", "hyphen"),
            ("under_score.example", "letters, digits and hyphens"),
            ("192.168.1.300", "all digits"),
            (&long_label, "63"),
            (&long_name, "253"),
        ] {
            let error = normalise_identifier(raw).unwrap_err();
            assert!(error.contains(why), "{raw:?}: {error}");
        }
    }

    #[test]
    fn decides_by_owner_mode_and_specificity() {
        let p = policy(&[
            ("Example.COM.", " web ", PreApproved, "w"),
            ("shop.example.com", "web/shop", RequiresApproval, ""),
            ("pay.example.com", "finance", PreApproved, ""),
            ("secret.example.com", "", Blocked, ""),
            ("x.secret.example.com", "web", PreApproved, ""),
            ("shared.test", "a", PreApproved, ""),
            ("shared.test", "b", PreApproved, ""),
            ("app.test", "web", PreApproved, "wx"),
            ("admin.app.test", "web", RequiresApproval, "x"),
            ("old.test", "", Blocked, "x"),
            ("old.test", "web", PreApproved, "w"),
            ("10.1.0.0/16", "web", PreApproved, ""),
            ("10.1.2.3", "finance", PreApproved, ""),
        ])
        .unwrap();
        // Each case's outcome ends with its expectation ("pre", "approval: …" or a reason).
        #[rustfmt::skip]
        let cases: &[(&str, &[&str], &[&str], &str)] = &[
            // Own domains, inherited by sub-units; approval where the rule says.
            ("web", &[], &["example.com", "a.b.example.com"], "pre"),
            ("web/blog", &["web"], &["www.example.com"], "pre"),
            (" web/shop ", &["web"], &["shop.example.com", "SHOP.example.com"],
                "approval: shop.example.com"),
            // A more specific rule of another unit wins, also over a parent's.
            ("web", &[], &["api.pay.example.com"],
                "belongs to unit \"finance\", not to unit \"web\"."),
            ("web", &[], &["shop.example.com"],
                "belongs to unit \"web/shop\", not to unit \"web\"."),
            ("web/blog", &["web"], &["pay.example.com"], "not to unit \"web/blog\"."),
            ("b", &[], &["shared.test"], "pre"),
            ("c", &[], &["shared.test"], "belongs to units \"a\" and \"b\", not to unit \"c\"."),
            // Matching is on label boundaries.
            ("finance", &[], &["badexample.com"], "is not a managed domain of unit \"finance\"."),
            // A block wins over narrower rules.
            ("web", &[], &["x.secret.example.com"],
                "blocked by the domain policy for secret.example.com."),
            // Wildcards: allowed by the governing rule; refused or held for
            // approval by the names one label below that they also cover.
            ("web", &[], &["*.www.example.com"], "pre"),
            ("web", &[], &["*.example.com"],
                "cover pay.example.com, which belongs to unit \"finance\"."),
            ("finance", &[], &["*.pay.example.com"], "not allowed under pay.example.com."),
            ("web", &[], &["app.test", "*.app.test"], "approval: *.app.test"),
            ("web", &[], &["www.app.test"], "is not a managed domain of unit \"web\"."),
            // Blocking a name alone leaves the names below it alone.
            ("web", &[], &["*.old.test", "a.old.test"], "pre"),
            ("web", &[], &["old.test"], "old.test is blocked by the domain policy for old.test."),
            // Addresses need a covering network; the longest prefix wins.
            ("web", &[], &["10.1.9.9"], "pre"),
            ("web", &[], &["10.1.2.3"], "belongs to unit \"finance\", not to unit \"web\"."),
            ("web", &[], &["::1"], "::1 is not in a network managed by unit \"web\"."),
        ];
        for (unit, ancestors, names, expected) in cases {
            let got = decide(&p, unit, ancestors, names);
            assert!(got.ends_with(expected), "{unit} {names:?}: {got}");
        }
        // One refused name refuses the request; every refused name is named.
        assert_eq!(
            decide(
                &p,
                "web",
                &[],
                &["www.example.com", "secret.example.com", "o.test"]
            ),
            "secret.example.com is blocked by the domain policy for secret.example.com. \
             o.test is not a managed domain of unit \"web\"."
        );
        let none = p.decide("web", &[], &[]);
        let reason = "The request names no domain or IP address.".to_owned();
        assert_eq!(none, Decision::Rejected { reason });
    }

    #[test]
    fn rules_are_validated_and_deserialised() {
        let error = |rule| policy(&[rule]).unwrap_err();
        assert!(error(("example.com", "", PreApproved, "")).contains("only a blocked"));
        assert!(error(("example.com", "  ", Blocked, "")).contains("blank"));
        assert!(error(("*.example.com", "a", Blocked, "")).contains("'*.'"));
        assert!(error(("a_b.example", "a", Blocked, "")).contains("\"a_b.example\""));
        let json = r#"{"domain":"a.test","org_unit":"web","mode":"requires_approval"}"#;
        let parsed: DomainRule = serde_json::from_str(json).unwrap();
        assert!(parsed.include_subdomains && !parsed.allow_wildcards);
        let misspelt = r#"{"domain":"a.test","mode":"blocked","subdomains":true}"#;
        let error = serde_json::from_str::<DomainRule>(misspelt).unwrap_err();
        assert!(
            error.to_string().contains("unknown field `subdomains`"),
            "{error}"
        );
    }
}
