//! Which network addresses outbound requests may connect to, checked at the
//! moment of connecting.
//!
//! The daemon checks every configured URL (webhooks, ticket systems, ACME
//! directories) against its address policy when the config loads. That alone
//! does not stop server-side request forgery: a name that resolved to a
//! public address at start can resolve to `127.0.0.1` or `169.254.169.254`
//! a minute later (DNS rebinding). So the HTTP clients of connectors and
//! integrations resolve names through [`AddressGuard::resolve`], which checks
//! every address the name resolves to and hands back exactly the checked
//! ones for the connection; a host written as an IP address is checked with
//! [`AddressGuard::check_host`] before the request, since HTTP clients do not
//! resolve those.
//!
//! The policy itself belongs to the daemon (`security.allowed_networks`,
//! the built-in denied ranges); this crate only carries it as a function, so
//! connectors and integrations need not know how it is configured. The
//! default, [`AddressGuard::allow_all`], allows every address.
//!
//! Errors ([`AddressRefused`]) name the host and the address, never a URL:
//! URL paths and queries often carry tokens.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

type Check = dyn Fn(IpAddr) -> Result<(), String> + Send + Sync;

/// Decides whether an outbound connection may go to an address.
///
/// Cheap to clone (one `Arc`); share one guard between every client.
#[derive(Clone)]
pub struct AddressGuard {
    check: Option<Arc<Check>>,
}

impl AddressGuard {
    /// A guard that allows every address: what clients use unless the daemon
    /// hands them its policy.
    pub fn allow_all() -> Self {
        Self { check: None }
    }

    /// A guard that asks `check` about every address; `check` returns why
    /// an address is refused (`"a loopback address (127.0.0.0/8); allow it
    /// with security.allowed_networks"`), which error messages carry.
    pub fn new(check: impl Fn(IpAddr) -> Result<(), String> + Send + Sync + 'static) -> Self {
        Self {
            check: Some(Arc::new(check)),
        }
    }

    /// Whether this guard allows everything (no check configured).
    pub fn allows_all(&self) -> bool {
        self.check.is_none()
    }

    /// Whether `ip` may be connected to; the error says why not.
    pub fn check(&self, ip: IpAddr) -> Result<(), String> {
        match &self.check {
            Some(check) => check(ip),
            None => Ok(()),
        }
    }

    /// Checks a URL's host when it is an IP address (`192.0.2.7`, `[::1]`);
    /// a name passes here and is checked when it is resolved.
    pub fn check_host(&self, host: &str) -> Result<(), AddressRefused> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        match bare.parse::<IpAddr>() {
            Ok(ip) => self.check(ip).map_err(|reason| AddressRefused::Denied {
                host: host.to_owned(),
                address: ip,
                reason,
            }),
            Err(_) => Ok(()),
        }
    }

    /// Resolves `host` and checks every address it resolves to: all must be
    /// allowed, or none is returned, so a name that mixes a public and an
    /// internal address is refused rather than tried in turn. `port` is put
    /// into the addresses returned.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, AddressRefused> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
            .await
            .map_err(|e| AddressRefused::Lookup {
                host: host.to_owned(),
                reason: e.to_string(),
            })?
            .collect();
        if addresses.is_empty() {
            return Err(AddressRefused::Lookup {
                host: host.to_owned(),
                reason: "no address found".into(),
            });
        }
        for address in &addresses {
            self.check(address.ip())
                .map_err(|reason| AddressRefused::Denied {
                    host: host.to_owned(),
                    address: address.ip(),
                    reason,
                })?;
        }
        Ok(addresses)
    }
}

impl Default for AddressGuard {
    fn default() -> Self {
        Self::allow_all()
    }
}

impl fmt::Debug for AddressGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.allows_all() {
            "AddressGuard(allow all)"
        } else {
            "AddressGuard(policy)"
        })
    }
}

/// Why a connection to a host was not made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressRefused {
    /// The host (or an address it resolves to) is not allowed.
    Denied {
        /// The host as the URL names it.
        host: String,
        /// The refused address.
        address: IpAddr,
        /// Why the guard refused it.
        reason: String,
    },
    /// The name did not resolve.
    Lookup {
        /// The host as the URL names it.
        host: String,
        /// The resolver's answer.
        reason: String,
    },
}

impl AddressRefused {
    /// Whether the guard refused the address (as opposed to a failed lookup,
    /// which may pass).
    pub fn is_denied(&self) -> bool {
        matches!(self, Self::Denied { .. })
    }
}

impl fmt::Display for AddressRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Denied {
                host,
                address,
                reason,
            } if host.trim_start_matches('[').trim_end_matches(']') == address.to_string() => {
                write!(f, "the address {host} is not allowed: {reason}")
            }
            Self::Denied {
                host,
                address,
                reason,
            } => write!(
                f,
                "{host} resolves to {address}, an address that is not allowed: {reason}"
            ),
            Self::Lookup { host, reason } => write!(f, "cannot resolve {host}: {reason}"),
        }
    }
}

impl std::error::Error for AddressRefused {}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_loopback() -> AddressGuard {
        AddressGuard::new(|ip| {
            if ip.is_loopback() {
                Err("a loopback address".into())
            } else {
                Ok(())
            }
        })
    }

    #[test]
    fn literal_hosts_are_checked_names_are_left_to_resolve() {
        let guard = no_loopback();
        let err = guard.check_host("127.0.0.1").unwrap_err();
        assert!(err.is_denied());
        assert_eq!(
            err.to_string(),
            "the address 127.0.0.1 is not allowed: a loopback address"
        );
        assert!(guard.check_host("[::1]").unwrap_err().is_denied());
        guard.check_host("192.0.2.1").unwrap();
        guard.check_host("localhost").unwrap();
        AddressGuard::allow_all().check_host("127.0.0.1").unwrap();
    }

    #[tokio::test]
    async fn a_name_resolving_to_a_denied_address_is_refused() {
        let err = no_loopback().resolve("localhost", 80).await.unwrap_err();
        assert!(err.is_denied(), "{err}");
        let text = err.to_string();
        assert!(text.starts_with("localhost resolves to "), "{text}");
        assert!(text.contains("not allowed: a loopback address"), "{text}");

        let allowed = AddressGuard::allow_all()
            .resolve("localhost", 8080)
            .await
            .unwrap();
        assert!(
            allowed
                .iter()
                .all(|a| a.port() == 8080 && a.ip().is_loopback())
        );
    }

    #[test]
    fn debug_shows_no_closure() {
        assert_eq!(
            format!("{:?}", AddressGuard::default()),
            "AddressGuard(allow all)"
        );
        assert_eq!(format!("{:?}", no_loopback()), "AddressGuard(policy)");
    }
}
