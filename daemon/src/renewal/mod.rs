//! The renewal worker: keeps every `[[certificate]]` issued, renewed,
//! deployed and verified, and runs revoke-and-replace.
//!
//! One loop checks every managed certificate each `check_interval_seconds`
//! (or at once when woken by the API) and drives the due ones, at most
//! `[renewal] concurrency` at a time and `max_concurrent_orders` per
//! connector. Driving an operation walks its steps, persisting each before
//! acting on the next (see `certkeeper_store::managed`):
//!
//! 1. **ordering**: a fresh key (sealed in the store), a CSR, the order;
//!    the issued chain is saved as soon as the CA returns it;
//! 2. **issued**: deploy to every target (atomic files, reload, live
//!    verification on several probes in a row, rollback on failure), and
//!    for a replacement also verify
//!    every endpoint where the old certificate was seen;
//! 3. **deployed**: for a replacement, revoke the old certificate (a CA that
//!    answers "already revoked" means a previous run did it);
//! 4. done: the new certificate becomes current, the lineage is recorded
//!    and the next renewal time set from the CA's window or the lifetime.
//!
//! Several daemons may share one store: a certificate is driven only under
//! the store lease `managed:NAME` (`certkeeper_store::leases`), taken before
//! its state is read and extended while it runs, and each step's result is
//! saved fenced by the lease's epoch, so a daemon that stalled past its
//! lease has its late write refused (and logged) instead of undoing the new
//! holder's. The CA order's idempotency key is saved before the call, so
//! the new holder resumes the order rather than placing another.
//!
//! A failure leaves the operation at its step with a persisted backoff
//! (`timing`), records a `renewal_failed` or `deployment_failed` event in
//! the outbox, and is logged at ERROR: never a silent retry loop.
//!
//! The parts: [`registry`] builds the connectors; `worker.rs` is the loop
//! (what is due, claiming, driving, failures); `steps.rs` the steps above;
//! `operations.rs` what the API and CLI ask (renew, replace, revoke, create,
//! remove); [`timing`] when to renew and how long to back off. This file
//! holds the [`Renewer`] they all extend.

mod adopt;
mod operations;
pub mod registry;
pub use adopt::Adopted;
mod steps;
pub mod timing;
mod worker;

pub use registry::{ConnectorEntry, Registry};

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use certkeeper_connectors::{ConnectorError, ErrorClass};
use certkeeper_discovery::probe::Prober;
use certkeeper_store::leases::Lease;
use certkeeper_store::vault::Vault;
use certkeeper_store::{Store, StoreError};
use tokio::sync::{Notify, Semaphore};

use crate::config::{CertificateConfig, RenewalConfig};

/// How often the CA's renewal window is asked for (RFC 9773 asks for at
/// least twice a day).
const WINDOW_REFRESH: i64 = 6 * 3600;
/// Earlier certificates kept per managed certificate, for `revoke`.
const KEEP_PREVIOUS: usize = 5;
/// Probes in a row that must see the new certificate before a deployment
/// counts as verified, spread over [`VERIFY_SETTLE`].
const VERIFY_STREAK: u32 = 4;
/// How long the new certificate must be served without a lapse.
const VERIFY_SETTLE: Duration = Duration::from_millis(750);

/// Why a step failed, and whether retrying can help.
#[derive(Debug)]
struct Failure {
    message: String,
    class: ErrorClass,
    /// The managed state was changed by another writer (a replace request,
    /// another daemon) while this step ran, or this daemon's lease on it was
    /// taken over: drop the step, read again.
    superseded: bool,
}

impl From<ConnectorError> for Failure {
    fn from(e: ConnectorError) -> Self {
        Self {
            message: e.to_string(),
            class: e.class,
            superseded: false,
        }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Self {
            superseded: matches!(e, StoreError::Changed(_) | StoreError::Fenced(_)),
            message: format!("store: {e}"),
            class: ErrorClass::Transient,
        }
    }
}

impl Failure {
    fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            class: ErrorClass::Permanent,
            superseded: false,
        }
    }

    fn transient(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            class: ErrorClass::Transient,
            superseded: false,
        }
    }
}

/// A refused request from the API or CLI.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Nothing matches.
    #[error("{0}")]
    NotFound(String),
    /// The request cannot be done in this state.
    #[error("{0}")]
    Conflict(String),
    /// The request itself is wrong.
    #[error("{0}")]
    Invalid(String),
    /// The CA or store failed.
    #[error("{0}")]
    Failed(String),
}

/// The renewal worker and the lifecycle requests it serves.
pub struct Renewer {
    store: Store,
    vault: Vault,
    registry: Arc<Registry>,
    /// Managed certificates by name: the config's and those created
    /// through the API (`from_api`).
    certificates: std::sync::RwLock<HashMap<String, CertificateConfig>>,
    from_api: std::sync::RwLock<HashSet<String>>,
    connector_names: HashSet<String>,
    settings: RenewalConfig,
    expiring_days: u32,
    /// Whether renewals of certificates enrolled through requests go ahead
    /// without an approver (`[admin] auto_approve_renewals`).
    auto_approve_renewals: bool,
    prober: Prober,
    wake: Notify,
    running: Mutex<HashSet<String>>,
    /// The store leases held on the certificates being driven, by name:
    /// every step's result is saved fenced by its epoch.
    leases: Mutex<HashMap<String, Lease>>,
    /// This daemon's identity in leases (`[scheduler] holder`).
    holder: String,
    /// How long a lease on a managed certificate runs before another daemon
    /// may take it over (`[scheduler] lease_seconds`); extended every third.
    lease_seconds: i64,
    limit: Arc<Semaphore>,
    inventory_writes: tokio::sync::Mutex<()>,
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::steps::*;
    use super::worker::*;
    use super::*;
    use crate::deploy;
    use certkeeper_discovery::probe::ProbeOptions;
    use certkeeper_store::managed::{Held, ManagedState};

    #[test]
    fn sighting_locations_parse() {
        let (addr, sni) = parse_location("127.0.0.1:443 (www.example.com)").unwrap();
        assert_eq!(addr.port(), 443);
        assert_eq!(sni.as_deref(), Some("www.example.com"));
        assert_eq!(parse_location("[::1]:8443").unwrap().1, None);
        assert!(parse_location("/etc/ssl/cert.pem").is_none());
    }

    /// A TLS server on loopback answering its `n`th connection with
    /// `script(n)`'s certificate; returns its port and a connection counter.
    async fn flapping_server(
        script: impl Fn(usize) -> usize + Send + 'static,
    ) -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
        use openssl::ssl::{SslAcceptor, SslMethod};
        use std::sync::atomic::{AtomicUsize, Ordering};
        let identities = [
            deploy::test_cert("new.test", None),
            deploy::test_cert("old.test", None),
        ];
        let acceptors: Vec<_> = identities
            .iter()
            .map(|(cert, key)| {
                let mut a = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).unwrap();
                a.set_certificate(cert).unwrap();
                a.set_private_key(key).unwrap();
                a.build()
            })
            .collect();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let count = Arc::new(AtomicUsize::new(0));
        let seen = count.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let n = seen.fetch_add(1, Ordering::SeqCst);
                let ssl = openssl::ssl::Ssl::new(acceptors[script(n)].context()).unwrap();
                tokio::spawn(async move {
                    let mut tls = tokio_openssl::SslStream::new(ssl, tcp).unwrap();
                    let _ = std::pin::Pin::new(&mut tls).accept().await;
                });
            }
        });
        (port, count)
    }

    /// After a reload, old and new workers answer side by side for a moment:
    /// a single good probe must not count as verified.
    #[tokio::test]
    async fn verification_waits_for_a_steady_streak() {
        let prober = Prober::new(ProbeOptions::default()).unwrap();
        // Connection 0 gets the new certificate, 1 the old, then new again.
        let (port, count) = flapping_server(|n| usize::from(n == 1)).await;
        // The server's own new certificate, read from a first probe.
        let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
        let first = prober.probe(addr, None, None).await.unwrap();
        let served_new = hex::encode(Sha256::digest(&first.chain_der[0]));
        let endpoints = [("127.0.0.1".to_owned(), port)];
        serves_steadily(
            &prober,
            &endpoints,
            None,
            &served_new,
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        // Connection 1 (old) broke the streak: verified only after four
        // more new answers in a row (connections 2 to 5).
        let connections = count.load(std::sync::atomic::Ordering::SeqCst);
        assert!(connections >= 6, "verified after {connections} connections");

        // A server that never settles is refused once the timeout passes,
        // with the old certificate named.
        let (port, _) = flapping_server(|n| n % 2).await;
        let endpoints = [("127.0.0.1".to_owned(), port)];
        let first = prober
            .probe(([127, 0, 0, 1], port).into(), None, None)
            .await
            .unwrap();
        let flapping_new = hex::encode(Sha256::digest(&first.chain_der[0]));
        let error = serves_steadily(
            &prober,
            &endpoints,
            None,
            &flapping_new,
            Duration::from_secs(2),
        )
        .await
        .unwrap_err();
        assert!(
            error.contains("serves") && error.contains(&flapping_new),
            "{error}"
        );
    }

    #[test]
    fn due_rules() {
        let mut s = ManagedState::new("a", "x");
        assert!(is_due(&s, "x", 0), "never issued");
        s.current = Some(Held {
            fingerprint: "f".into(),
            chain_pem: String::new(),
            not_before: 0,
            not_after: 100,
        });
        s.renew_at = Some(50);
        assert!(!is_due(&s, "x", 10));
        assert!(is_due(&s, "x", 50));
        assert!(is_due(&s, "y", 10), "spec changed");
        s.next_attempt = Some(60);
        assert!(!is_due(&s, "x", 55), "backing off");
        s.force = true;
        assert!(!is_due(&s, "x", 55), "even forced, backoff holds");
    }
}
