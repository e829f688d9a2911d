//! Administration: who may do what.
//!
//! Four roles, as organisations delegate certificate work:
//!
//! | role | may |
//! |------|-----|
//! | `primary_admin` | everything: users, roles, org units, domains, every certificate |
//! | `department_admin` | the lifecycle of certificates in its org units (and their sub-units): read, enroll, approve and reject requests, renew, revoke, acknowledge alerts; nothing outside them |
//! | `auditor` | read everything (inventory, findings, alerts, deliveries, audit log); change nothing |
//! | `subscriber` | enroll, and renew or revoke its own certificates, within its unit's domains |
//!
//! Every API route declares one [`Permission`] (see `api::routes`); the
//! server checks it before the handler runs, and handlers that touch one
//! object check its org unit against the caller's [`Scope`]. An object out
//! of scope answers 404, as if it did not exist.

pub mod audit_chain;
pub mod domains;
pub mod password;
pub mod ratelimit;
pub mod ssrf;
pub mod token;

use serde::{Deserialize, Serialize};

/// A role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything.
    PrimaryAdmin,
    /// The lifecycle of its org units' certificates.
    DepartmentAdmin,
    /// Reads everything, changes nothing.
    Auditor,
    /// Enrolls and manages its own certificates.
    Subscriber,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [
        Role::PrimaryAdmin,
        Role::DepartmentAdmin,
        Role::Auditor,
        Role::Subscriber,
    ];

    /// The config and API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::PrimaryAdmin => "primary_admin",
            Role::DepartmentAdmin => "department_admin",
            Role::Auditor => "auditor",
            Role::Subscriber => "subscriber",
        }
    }

    /// Parses the config and API spelling.
    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Anyone, signed in or not (health, OpenAPI, CRLs).
    Public,
    /// Any signed-in user (who am I).
    Authenticated,
    /// Read certificates, findings, managed certificates, events and alerts
    /// (scoped).
    Read,
    /// Read operational data: jobs, deliveries, metrics (not scoped).
    ReadOperations,
    /// Read the audit log.
    ReadAudit,
    /// Add certificates to the inventory, and retire (deactivate) them
    /// (scoped).
    Import,
    /// Run jobs, renew everything.
    Operate,
    /// Create enrollment requests.
    Enroll,
    /// Approve, reject and assign requests (scoped).
    Approve,
    /// Renew, replace and revoke certificates (scoped; subscribers: their own).
    Lifecycle,
    /// Acknowledge alerts (scoped).
    Acknowledge,
    /// Users, roles, tokens of others, org units, domains, managed
    /// certificates from the API.
    Administer,
}

/// Whether `role` has `permission` at all (scope is checked per object).
pub fn allows(role: Role, permission: Permission) -> bool {
    use Permission as P;
    match role {
        Role::PrimaryAdmin => true,
        Role::DepartmentAdmin => matches!(
            permission,
            P::Public
                | P::Authenticated
                | P::Read
                | P::Import
                | P::Enroll
                | P::Approve
                | P::Lifecycle
                | P::Acknowledge
        ),
        Role::Auditor => matches!(
            permission,
            P::Public | P::Authenticated | P::Read | P::ReadOperations | P::ReadAudit
        ),
        Role::Subscriber => matches!(
            permission,
            P::Public | P::Authenticated | P::Read | P::Enroll | P::Lifecycle
        ),
    }
}

/// Which objects a principal reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every object.
    All,
    /// Objects of these org units (the principal's units and every unit
    /// below them).
    Units(Vec<String>),
    /// Objects of these units that the user owns (subscribers).
    Own {
        /// The user.
        user: String,
        /// Its units.
        units: Vec<String>,
    },
}

impl Scope {
    /// Whether an object of `org_unit` owned by `owner` is in scope.
    pub fn covers(&self, org_unit: Option<&str>, owner: Option<&str>) -> bool {
        match self {
            Scope::All => true,
            Scope::Units(units) => org_unit.is_some_and(|u| units.iter().any(|x| x == u)),
            Scope::Own { user, units } => {
                owner == Some(user.as_str())
                    && org_unit.is_some_and(|u| units.iter().any(|x| x == u))
            }
        }
    }

    /// The user whose own objects only are in scope (subscribers).
    pub fn owner(&self) -> Option<&str> {
        match self {
            Scope::Own { user, .. } => Some(user),
            _ => None,
        }
    }

    /// The units to filter lists by, or `None` for no filter.
    pub fn units(&self) -> Option<&[String]> {
        match self {
            Scope::All => None,
            Scope::Units(units) | Scope::Own { units, .. } => Some(units),
        }
    }
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// User name (`api-token` for the config's `api.token`, `anonymous`
    /// when no account exists yet and no token is set).
    pub user: String,
    /// Its role.
    pub role: Role,
    /// What it reaches.
    pub scope: Scope,
}

impl Principal {
    /// Whether this certificate is in scope: its org unit is, and for a
    /// subscriber it lists the subscriber among its contacts.
    pub fn can_see(&self, cert: &crate::inventory::CertificateRecord) -> bool {
        match &self.scope {
            Scope::All => true,
            Scope::Units(_) => self.scope.covers(cert.org_unit.as_deref(), None),
            Scope::Own { user, .. } => {
                let owner = cert.contacts.iter().find(|c| c.eq_ignore_ascii_case(user));
                self.scope
                    .covers(cert.org_unit.as_deref(), owner.map(|_| user.as_str()))
            }
        }
    }

    /// The all-powerful principal of `api.token`, or of an open API before
    /// the first account exists.
    pub fn root(user: &str) -> Self {
        Self {
            user: user.to_owned(),
            role: Role::PrimaryAdmin,
            scope: Scope::All,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auditors_change_nothing_and_subscribers_approve_nothing() {
        for p in [
            Permission::Import,
            Permission::Operate,
            Permission::Enroll,
            Permission::Approve,
            Permission::Lifecycle,
            Permission::Acknowledge,
            Permission::Administer,
        ] {
            assert!(!allows(Role::Auditor, p), "{p:?}");
        }
        assert!(!allows(Role::Subscriber, Permission::Approve));
        assert!(!allows(Role::DepartmentAdmin, Permission::Administer));
        assert!(!allows(Role::DepartmentAdmin, Permission::ReadAudit));
        assert!(Role::ALL.iter().all(|r| allows(*r, Permission::Public)));
    }

    #[test]
    fn scopes_cover_their_units_and_owners_only() {
        let units = Scope::Units(vec!["web".into(), "web/shop".into()]);
        assert!(units.covers(Some("web/shop"), None));
        assert!(!units.covers(Some("finance"), None));
        assert!(
            !units.covers(None, None),
            "unassigned is not in a unit's scope"
        );
        let own = Scope::Own {
            user: "sam".into(),
            units: vec!["web".into()],
        };
        assert!(own.covers(Some("web"), Some("sam")));
        assert!(!own.covers(Some("web"), Some("kim")));
        assert!(Scope::All.covers(None, None));
    }
}
