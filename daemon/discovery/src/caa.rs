//! CAA checks (RFC 8659): which certificate authorities a managed domain's
//! DNS allows to issue for it.
//!
//! The domain report (`GET /api/v1/domains/caa`) asks whether each
//! connector's CA may issue for each managed domain at all (enrollments are
//! not checked against it yet): a CA
//! that honours CAA refuses names whose records do not list it, and the
//! refusal arrives late and cryptically from the CA. [`lookup_caa`] finds the
//! relevant record set the way a CA does (RFC 8659 §3: the name itself, then
//! each parent up to the top-level domain, stopping at the first non-empty
//! CAA RRset; the resolver follows CNAMEs), [`evaluate`] applies it to a CA's
//! identities (RFC 8659 §4), and [`report`] does both for every managed
//! domain and connector.
//!
//! A lookup that fails (timeout, SERVFAIL, REFUSED) is an error, never "no
//! records": a CA must not issue then either (RFC 8659 §3), so the daemon
//! must not promise that it will.

use std::collections::BTreeMap;

use hickory_resolver::TokioResolver;
use hickory_resolver::net::{DnsError, NetError, NoRecords};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::rdata::CAA;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use serde::Serialize;
use tokio::task::JoinSet;

/// How many domains [`report`] looks up at once.
const LOOKUP_CONCURRENCY: usize = 16;

/// The relevant CAA record set of a name, digested.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CaaSet {
    /// The name whose records apply (lowercase, no trailing dot), or `None`
    /// when neither the name nor any parent has CAA records: any CA may issue.
    pub found_at: Option<String>,
    /// Issuer domain names of the `issue` records, lowercased, parameters
    /// stripped, sorted. `None` when there is no `issue` record; `Some(vec![])`
    /// when there are only records naming no CA (`issue ";"`, or a
    /// malformed value, RFC 8659 §4.2), which forbid every CA.
    pub issue: Option<Vec<String>>,
    /// The same for `issuewild` records.
    pub issuewild: Option<Vec<String>>,
    /// The `iodef` URLs, where CAs report refused requests.
    pub iodef: Vec<String>,
    /// Whether a record with an unknown tag has the issuer-critical flag
    /// (128): then no CA may issue.
    pub critical_unknown: bool,
}

impl CaaSet {
    /// Digests the records found at `found_at`.
    fn from_records<'a>(found_at: String, records: impl Iterator<Item = &'a CAA>) -> CaaSet {
        let mut set = CaaSet {
            found_at: Some(found_at),
            ..CaaSet::default()
        };
        for record in records {
            let tag = record.tag.to_ascii_lowercase();
            let list = match tag.as_str() {
                "issue" => &mut set.issue,
                "issuewild" => &mut set.issuewild,
                "iodef" => {
                    set.iodef
                        .push(String::from_utf8_lossy(&record.value).into_owned());
                    continue;
                }
                // Any other tag is unknown here; if critical, it forbids
                // issuance (RFC 8659 §4.1), else it is ignored.
                _ => {
                    set.critical_unknown |= record.issuer_critical;
                    continue;
                }
            };
            let list = list.get_or_insert_with(Vec::new);
            list.extend(issuer_domain(&record.value));
        }
        // Sorted: DNS returns an RRset in any order, reports should not flap.
        for list in [&mut set.issue, &mut set.issuewild].into_iter().flatten() {
            list.sort();
            list.dedup();
        }
        set.iodef.sort();
        set
    }
}

/// The issuer domain name of an `issue`/`issuewild` value, lowercased;
/// `None` for `;` alone and for values that are not well formed.
fn issuer_domain(value: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(value).ok()?;
    let domain = text.split(';').next()?.trim().trim_end_matches('.');
    let well_formed = !domain.is_empty()
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    well_formed.then(|| domain.to_ascii_lowercase())
}

/// Why the CAA records of a name could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaaError {
    /// The domain is not a valid DNS name.
    #[error("{0:?} is not a valid domain name")]
    InvalidName(String),
    /// No name server answered in time.
    #[error("no answer for the CAA records of {0} in time")]
    Timeout(String),
    /// A name server answered with an error (SERVFAIL, REFUSED, ...) or could
    /// not be reached.
    #[error("looking up the CAA records of {name} failed: {error}")]
    Failed {
        /// The name being looked up when it failed (the domain or a parent).
        name: String,
        /// What went wrong.
        error: String,
    },
}

impl CaaError {
    /// True when asking again later may succeed without anyone acting.
    pub fn is_transient(&self) -> bool {
        !matches!(self, CaaError::InvalidName(_))
    }
}

/// Finds the relevant CAA record set of `domain` (RFC 8659 §3). A wildcard
/// `*.example.com` uses the records of `example.com`. Names may be IDNs.
pub async fn lookup_caa(resolver: &TokioResolver, domain: &str) -> Result<CaaSet, CaaError> {
    let trimmed = domain.trim();
    let base = trimmed.strip_prefix("*.").unwrap_or(trimmed);
    let invalid = || CaaError::InvalidName(domain.to_owned());
    if base.is_empty() || base == "." {
        return Err(invalid());
    }
    let mut name = Name::from_utf8(base).map_err(|_| invalid())?;
    // Fully qualified: search domains must not turn example.com into example.com.corp.
    name.set_fqdn(true);
    while !name.is_root() {
        let shown = display(&name);
        match resolver.lookup(name.clone(), RecordType::CAA).await {
            Ok(lookup) => {
                let mut records = lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::CAA(caa) => Some(caa),
                        _ => None,
                    })
                    .peekable();
                if records.peek().is_some() {
                    return Ok(CaaSet::from_records(shown, records));
                }
            }
            Err(NetError::Dns(DnsError::NoRecordsFound(NoRecords {
                response_code: ResponseCode::NXDomain | ResponseCode::NoError,
                ..
            }))) => {}
            Err(NetError::Timeout) => return Err(CaaError::Timeout(shown)),
            Err(e) => {
                return Err(CaaError::Failed {
                    name: shown,
                    error: e.to_string(),
                });
            }
        }
        name = name.base_name();
    }
    Ok(CaaSet::default())
}

/// A name as messages show it: lowercase ASCII, no trailing dot.
fn display(name: &Name) -> String {
    name.to_lowercase()
        .to_ascii()
        .trim_end_matches('.')
        .to_owned()
}

/// Whether a CA may issue, by the records of one name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum CaaVerdict {
    /// The records list one of the CA's identities (or restrict nothing
    /// that applies, e.g. only `iodef`, or only `issuewild` for a plain name).
    Allowed,
    /// There are no CAA records: any CA may issue.
    AllowedNoRecords,
    /// The records do not list the CA.
    Forbidden {
        /// The issuer domain names they do list (empty: no CA may issue).
        allowed: Vec<String>,
    },
    /// A critical record with an unknown tag: no CA may issue.
    Critical,
}

/// Applies `set` to a CA known by `ca_identities` (its CAA issuer domain
/// names, e.g. `letsencrypt.org`) for a plain or a `wildcard` name.
///
/// For a wildcard the `issuewild` records apply when there are any, else the
/// `issue` records; for a plain name only `issue` records apply (RFC 8659
/// §4.2, §4.3). Identities compare case-insensitively.
pub fn evaluate(set: &CaaSet, ca_identities: &[String], wildcard: bool) -> CaaVerdict {
    if set.critical_unknown {
        return CaaVerdict::Critical;
    }
    if set.found_at.is_none() {
        return CaaVerdict::AllowedNoRecords;
    }
    let Some(allowed) = applicable(set, wildcard) else {
        return CaaVerdict::Allowed;
    };
    let listed = ca_identities.iter().any(|ca| {
        let ca = ca.trim().trim_end_matches('.').to_ascii_lowercase();
        allowed.contains(&ca)
    });
    if listed {
        CaaVerdict::Allowed
    } else {
        CaaVerdict::Forbidden {
            allowed: allowed.clone(),
        }
    }
}

/// The issuer list that governs a plain or wildcard name, if any restricts it.
fn applicable(set: &CaaSet, wildcard: bool) -> Option<&Vec<String>> {
    if wildcard {
        set.issuewild.as_ref().or(set.issue.as_ref())
    } else {
        set.issue.as_ref()
    }
}

/// One line of the CAA report: may this connector's CA issue for this domain?
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaaReportRow {
    /// The managed domain, as given (`*.` for a wildcard).
    pub domain: String,
    /// The connector's name.
    pub connector: String,
    /// The verdict, or why the records could not be read.
    pub verdict: Result<CaaVerdict, CaaError>,
    /// The CAs the records allow for this name: `None` when they restrict
    /// nothing (or could not be read), `Some(vec![])` when they forbid all.
    pub allowed_cas: Option<Vec<String>>,
}

/// Checks every domain against every connector: one row per pair, in the
/// order given, domains outer. Each domain is looked up once, at most
/// 16 at a time.
pub async fn report(
    resolver: &TokioResolver,
    domains: &[String],
    connectors: &[(String, Vec<String>)],
) -> Vec<CaaReportRow> {
    let mut sets: BTreeMap<usize, Result<CaaSet, CaaError>> = BTreeMap::new();
    let mut tasks = JoinSet::new();
    let mut pending = domains.iter().enumerate();
    loop {
        while tasks.len() < LOOKUP_CONCURRENCY {
            let Some((index, domain)) = pending.next() else {
                break;
            };
            let (resolver, domain) = (resolver.clone(), domain.clone());
            tasks.spawn(async move { (index, lookup_caa(&resolver, &domain).await) });
        }
        match tasks.join_next().await {
            Some(Ok((index, set))) => {
                sets.insert(index, set);
            }
            // A lookup task panicked: its domain gets an error row below.
            Some(Err(_)) => {}
            None => break,
        }
    }
    let mut rows = Vec::with_capacity(domains.len() * connectors.len());
    for (index, domain) in domains.iter().enumerate() {
        let wildcard = domain.trim().starts_with("*.");
        let set = sets.remove(&index).unwrap_or_else(|| {
            Err(CaaError::Failed {
                name: domain.clone(),
                error: "the lookup task failed".to_owned(),
            })
        });
        for (connector, identities) in connectors {
            let (verdict, allowed_cas) = match &set {
                Ok(set) => (
                    Ok(evaluate(set, identities, wildcard)),
                    applicable(set, wildcard).cloned(),
                ),
                Err(e) => (Err(e.clone()), None),
            };
            rows.push(CaaReportRow {
                domain: domain.clone(),
                connector: connector.clone(),
                verdict,
                allowed_cas,
            });
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caa(flags: u8, tag: &str, value: &str) -> CAA {
        let mut record = CAA::new_issue(false, None, Vec::new());
        record.issuer_critical = flags & 128 != 0;
        record.tag = tag.to_owned();
        record.value = value.as_bytes().to_vec();
        record
    }

    fn set(records: &[CAA]) -> CaaSet {
        CaaSet::from_records("example.test".into(), records.iter())
    }

    fn ids(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn digests_issuer_values() {
        let s = set(&[
            caa(0, "issue", "LetsEncrypt.org; validationmethods=dns-01"),
            caa(0, "ISSUE", " pki.goog "),
            caa(0, "issue", "letsencrypt.org"),
            caa(0, "issuewild", ";"),
            caa(0, "iodef", "mailto:security@example.test"),
            caa(0, "tbs", "ignored, not critical"),
        ]);
        assert_eq!(s.issue, Some(ids(&["letsencrypt.org", "pki.goog"])));
        assert_eq!(s.issuewild, Some(vec![]));
        assert_eq!(s.iodef, ids(&["mailto:security@example.test"]));
        assert!(!s.critical_unknown);
        assert_eq!(issuer_domain(b"%%%%%"), None, "malformed names no CA");
        assert_eq!(
            issuer_domain(b"ca.example.; account=1"),
            Some("ca.example".into())
        );
    }

    #[test]
    fn issue_and_issuewild_precedence() {
        let le = ids(&["letsencrypt.org"]);
        let s = set(&[
            caa(0, "issue", "letsencrypt.org"),
            caa(0, "issuewild", "pki.goog"),
        ]);
        assert_eq!(evaluate(&s, &le, false), CaaVerdict::Allowed);
        assert_eq!(
            evaluate(&s, &le, true),
            CaaVerdict::Forbidden {
                allowed: ids(&["pki.goog"])
            }
        );
        assert_eq!(
            evaluate(&s, &ids(&["PKI.goog."]), true),
            CaaVerdict::Allowed
        );
        // Without issuewild, issue governs wildcards too.
        let s = set(&[caa(0, "issue", "letsencrypt.org")]);
        assert_eq!(evaluate(&s, &le, true), CaaVerdict::Allowed);
        // issuewild alone does not restrict plain names.
        let s = set(&[caa(0, "issuewild", "pki.goog")]);
        assert_eq!(evaluate(&s, &le, false), CaaVerdict::Allowed);
    }

    #[test]
    fn empty_issuers_and_critical_tags_forbid() {
        let le = ids(&["letsencrypt.org"]);
        let s = set(&[caa(0, "issue", ";")]);
        assert_eq!(
            evaluate(&s, &le, false),
            CaaVerdict::Forbidden { allowed: vec![] }
        );
        let s = set(&[caa(0, "issue", "letsencrypt.org"), caa(128, "tbs", "x")]);
        assert_eq!(evaluate(&s, &le, false), CaaVerdict::Critical);
        // A critical known tag is fine.
        let s = set(&[caa(128, "issue", "letsencrypt.org")]);
        assert_eq!(evaluate(&s, &le, false), CaaVerdict::Allowed);
        assert_eq!(
            evaluate(&CaaSet::default(), &le, true),
            CaaVerdict::AllowedNoRecords
        );
        assert_eq!(evaluate(&set(&[]), &[], false), CaaVerdict::Allowed);
    }
}
