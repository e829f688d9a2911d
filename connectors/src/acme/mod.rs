//! The ACME connector (RFC 8555): obtains certificates from any ACME CA
//! (Let's Encrypt, step-ca, a commercial CA's ACME endpoint) and revokes them.
//!
//! The protocol itself is `instant-acme`'s; this module adds what a daemon
//! that renews thousands of certificates unattended needs around it:
//!
//! - [`client`]: the HTTP client, with a timeout on every request and the
//!   operator's extra trusted roots, so a CA that stops answering is a
//!   transient error rather than a renewal stuck forever, and the address
//!   guard checked whenever it connects;
//! - [`account`]: the ACME account, created on first use and kept in the
//!   connector's [`StateStore`] so a restart reuses it;
//! - [`problem`]: how ACME problem documents and transport failures map to
//!   [`ErrorClass`](crate::ErrorClass) (permanent, transient, retry after T);
//! - [`http01`] and [`dns01`]: the challenge responders (a built-in HTTP
//!   server or a webroot; RFC 2136 updates signed with TSIG);
//! - [`order`]: one order from `newOrder` to the certificate, under a
//!   deadline, kept in the [`StateStore`] under the request's idempotency
//!   key so that a retry continues it rather than ordering again;
//! - [`ari`]: ACME Renewal Information (RFC 9773).
//!
//! The daemon maps a `[[connector]] type = "acme"` table onto
//! [`AcmeSettings`] and calls [`open`]; nothing touches the network until
//! the first operation, so a CA that is down at start-up does not stop the
//! daemon from starting. TLS-ALPN-01 is not offered.

pub mod account;
pub mod ari;
pub mod client;
pub mod dns01;
pub mod http01;
pub mod order;
pub mod problem;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use instant_acme::RevocationRequest;
use rustls::pki_types::CertificateDer;

use crate::{
    Connector, ConnectorError, IssueRequest, Issued, RenewalWindow, RevocationReason,
    RevokeRequest, StateStore,
};

use self::account::AccountSlot;
use self::client::TimeoutClient;
use self::dns01::Dns01Updater;
use self::http01::Http01Responder;

pub use crate::{AddressGuard, Secret};

/// External Account Binding (RFC 8555 section 7.3.4): how a commercial CA
/// ties a new ACME account to a customer account.
#[derive(Debug, Clone)]
pub struct ExternalAccountBinding {
    /// The key identifier the CA issued.
    pub key_id: String,
    /// The HMAC key the CA issued, base64url-encoded as CAs hand it out
    /// (standard base64 is accepted too).
    pub hmac_key: Secret,
}

/// How the connector proves control of the identifiers it orders.
#[derive(Debug, Clone)]
pub enum ChallengeSettings {
    /// HTTP-01 answered by a built-in HTTP server bound to `listen` while
    /// orders are in flight (one server shared by all of them). The CA must
    /// reach it on port 80 of each name, directly or through a forward.
    Http01 {
        /// Address the responder binds, e.g. `0.0.0.0:80`.
        listen: SocketAddr,
    },
    /// HTTP-01 answered by an existing web server: the token file is written
    /// under `webroot/.well-known/acme-challenge/` and removed afterwards.
    Http01Webroot {
        /// The web server's document root for every name ordered.
        webroot: PathBuf,
    },
    /// DNS-01 through RFC 2136 dynamic updates; the only choice that can
    /// obtain wildcard certificates.
    Dns01(Dns01Settings),
}

/// Settings of DNS-01 validation through RFC 2136 dynamic updates.
#[derive(Debug, Clone)]
pub struct Dns01Settings {
    /// The primary server that accepts the updates (TCP).
    pub primary: SocketAddr,
    /// The zones the primary serves; a challenge record goes into the longest
    /// one that contains it (e.g. `example.com`).
    pub zones: Vec<String>,
    /// Name of the TSIG key the primary knows (HMAC-SHA256).
    pub tsig_key_name: String,
    /// The TSIG key, base64-encoded as `tsig-keygen` prints it.
    pub tsig_secret: Secret,
    /// Resolvers queried until the record is visible before the CA is asked
    /// to validate; the primary itself when empty.
    pub resolvers: Vec<SocketAddr>,
    /// How long to wait for the record to become visible at every resolver.
    pub propagation_timeout: Duration,
    /// TTL of the challenge record, in seconds.
    pub ttl: u32,
}

impl Dns01Settings {
    /// Settings for `zones` on `primary` with key `tsig_key_name`, checking
    /// propagation at the primary for up to two minutes.
    pub fn new(
        primary: SocketAddr,
        zones: Vec<String>,
        tsig_key_name: impl Into<String>,
        tsig_secret: Secret,
    ) -> Self {
        Self {
            primary,
            zones,
            tsig_key_name: tsig_key_name.into(),
            tsig_secret,
            resolvers: Vec::new(),
            propagation_timeout: Duration::from_secs(120),
            ttl: 60,
        }
    }
}

/// Settings of one ACME connector (a `[[connector]] type = "acme"` table).
#[derive(Debug, Clone)]
pub struct AcmeSettings {
    /// The connector's configured name, used in errors and logs.
    pub name: String,
    /// The CA's directory URL. Must be `https`, except on a loopback address.
    pub directory_url: String,
    /// Extra roots (PEM) trusted for the directory's TLS certificate, on top
    /// of the system's, for an internal CA.
    pub extra_roots_pem: Option<String>,
    /// Contact e-mail addresses for the account (`mailto:` may be omitted).
    pub contacts: Vec<String>,
    /// External Account Binding, for CAs that require one.
    pub external_account: Option<ExternalAccountBinding>,
    /// ACME profile (draft-aaron-acme-profiles) sent with every order unless
    /// the request names its own.
    pub profile: Option<String>,
    /// Timeout of each HTTP request to the CA, connection included.
    pub request_timeout: Duration,
    /// Deadline of a whole order, from `newOrder` to the certificate.
    pub order_deadline: Duration,
    /// How control of identifiers is proven.
    pub challenge: ChallengeSettings,
    /// Which addresses requests to the CA may connect to, checked each time
    /// a connection is made (the directory's and every URL it hands out).
    /// The daemon sets its address policy here; [`AddressGuard::allow_all`]
    /// by default.
    pub address_guard: AddressGuard,
}

impl AcmeSettings {
    /// Settings with 30 s per request and 10 minutes per order, no contact,
    /// no EAB, no profile, no extra roots and no address restriction.
    pub fn new(
        name: impl Into<String>,
        directory_url: impl Into<String>,
        challenge: ChallengeSettings,
    ) -> Self {
        Self {
            name: name.into(),
            directory_url: directory_url.into(),
            extra_roots_pem: None,
            contacts: Vec::new(),
            external_account: None,
            profile: None,
            request_timeout: Duration::from_secs(30),
            order_deadline: Duration::from_secs(600),
            challenge,
            address_guard: AddressGuard::allow_all(),
        }
    }
}

/// How a running connector answers challenges.
pub(crate) enum Solver {
    /// The built-in HTTP-01 responder.
    Http01(Http01Responder),
    /// Token files under a web server's document root.
    Webroot(PathBuf),
    /// TXT records through RFC 2136.
    Dns01(Dns01Updater),
}

/// A connector to one ACME CA; cheap to share, safe for many concurrent
/// orders.
pub struct AcmeConnector {
    pub(crate) settings: AcmeSettings,
    pub(crate) http: TimeoutClient,
    pub(crate) account: AccountSlot,
    pub(crate) solver: Solver,
    /// Where orders in flight are kept under their idempotency key.
    pub(crate) state: Arc<dyn StateStore>,
}

impl fmt::Debug for AcmeConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcmeConnector")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Builds a connector from `settings`, keeping its account in `state`.
///
/// Checks the settings (URL, roots, keys) but does not contact the CA: the
/// account is loaded or created on first use.
pub async fn open(
    settings: AcmeSettings,
    state: Arc<dyn StateStore>,
) -> Result<AcmeConnector, ConnectorError> {
    let name = settings.name.clone();
    let refuse = |message: String| ConnectorError::permanent(&name, message);
    client::check_directory_url(&settings.directory_url).map_err(refuse)?;
    if settings.request_timeout.is_zero() || settings.order_deadline.is_zero() {
        return Err(refuse(
            "request_timeout and order_deadline must be longer than zero".into(),
        ));
    }
    let http = TimeoutClient::guarded(
        settings.extra_roots_pem.as_deref(),
        settings.request_timeout,
        settings.address_guard.clone(),
    )
    .map_err(refuse)?;
    let eab = settings
        .external_account
        .as_ref()
        .map(account::decode_eab)
        .transpose()
        .map_err(refuse)?;
    let solver = match &settings.challenge {
        ChallengeSettings::Http01 { listen } => Solver::Http01(Http01Responder::new(*listen)),
        ChallengeSettings::Http01Webroot { webroot } => Solver::Webroot(webroot.clone()),
        ChallengeSettings::Dns01(dns) => Solver::Dns01(
            Dns01Updater::new(&name, dns.clone(), settings.request_timeout).map_err(refuse)?,
        ),
    };
    let account = AccountSlot::new(state.clone(), eab);
    Ok(AcmeConnector {
        settings,
        http,
        account,
        solver,
        state,
    })
}

impl AcmeConnector {
    /// The URL of the ACME account in use, loading or creating it first.
    pub async fn account_url(&self) -> Result<String, ConnectorError> {
        let account = self.account().await?;
        Ok(account.id().to_owned())
    }

    /// The account, loaded or created on first use.
    pub(crate) async fn account(&self) -> Result<instant_acme::Account, ConnectorError> {
        self.account.get(&self.settings, &self.http).await
    }
}

#[async_trait]
impl Connector for AcmeConnector {
    fn name(&self) -> &str {
        &self.settings.name
    }

    async fn issue(&self, request: &IssueRequest) -> Result<Issued, ConnectorError> {
        order::issue(self, request).await
    }

    async fn recorded(&self, idempotency_key: &str) {
        order::forget(self, idempotency_key).await;
    }

    async fn revoke(&self, request: &RevokeRequest) -> Result<(), ConnectorError> {
        problem::scoped(async {
            let account = self.account().await?;
            let certificate = CertificateDer::from(request.certificate_der.as_slice());
            account
                .revoke(&RevocationRequest {
                    certificate: &certificate,
                    reason: Some(acme_reason(request.reason)),
                })
                .await
                .map_err(|e| problem::map(&self.settings.name, "revoking", e))
        })
        .await
    }

    async fn renewal_info(
        &self,
        certificate_der: &[u8],
    ) -> Result<Option<RenewalWindow>, ConnectorError> {
        problem::scoped(async {
            let account = self.account().await?;
            ari::renewal_info(&self.settings.name, &account, certificate_der).await
        })
        .await
    }

    async fn health(&self) -> Result<(), ConnectorError> {
        problem::scoped(async {
            self.http
                .fetch_directory(&self.settings.directory_url)
                .await
                .map_err(|e| problem::map(&self.settings.name, "fetching the directory", e))?;
            self.account.check(&self.settings, &self.http).await
        })
        .await
    }
}

fn acme_reason(reason: RevocationReason) -> instant_acme::RevocationReason {
    use instant_acme::RevocationReason as Acme;
    match reason {
        RevocationReason::Unspecified => Acme::Unspecified,
        RevocationReason::KeyCompromise => Acme::KeyCompromise,
        RevocationReason::AffiliationChanged => Acme::AffiliationChanged,
        RevocationReason::Superseded => Acme::Superseded,
        RevocationReason::CessationOfOperation => Acme::CessationOfOperation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let mut settings = AcmeSettings::new(
            "ca",
            "https://ca.example/dir",
            ChallengeSettings::Dns01(Dns01Settings::new(
                "127.0.0.1:53".parse().expect("address"),
                vec!["example.com".into()],
                "key.",
                Secret::new("dG9wLXNlY3JldC10c2ln"),
            )),
        );
        settings.external_account = Some(ExternalAccountBinding {
            key_id: "kid-1".into(),
            hmac_key: Secret::new("top-secret-hmac"),
        });
        let shown = format!("{settings:?}");
        assert!(!shown.contains("top-secret-hmac"), "{shown}");
        assert!(!shown.contains("dG9wLXNlY3JldC10c2ln"), "{shown}");
        assert!(shown.contains("[redacted]"));
        assert!(shown.contains("kid-1"));
    }

    #[tokio::test]
    async fn plain_http_directory_is_refused_unless_loopback() {
        let state: Arc<dyn StateStore> = Arc::new(crate::MemoryState::default());
        let settings = |url: &str| {
            AcmeSettings::new(
                "ca",
                url,
                ChallengeSettings::Http01Webroot {
                    webroot: "/tmp".into(),
                },
            )
        };
        let err = open(settings("http://ca.example/dir"), state.clone())
            .await
            .expect_err("plain http to a remote CA must be refused");
        assert_eq!(err.class, crate::ErrorClass::Permanent);
        assert!(err.message.contains("https"), "{}", err.message);
        open(settings("http://127.0.0.1:1/dir"), state)
            .await
            .expect("loopback stubs may use plain http");
    }
}
