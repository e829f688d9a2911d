//! Keeps URLs that users supply (webhooks, ACME directories, CRL and OCSP
//! URLs) from making the daemon reach internal services: server-side request
//! forgery.
//!
//! The daemon usually runs inside the network it manages, next to admin
//! consoles, databases and the cloud metadata service (169.254.169.254, which
//! hands out credentials). A URL that points there would let anyone who may
//! configure a webhook read or poke at those. So every such URL passes two
//! checks:
//! 1. [`UrlPolicy::check_url`] when it is configured: http or https only, no
//!    user name or password in it, and a host given as an IP address must be
//!    allowed. IPv4 written in decimal, octal or hex (`http://2130706433/`,
//!    `http://0x7f.1/`) is normalised by the `url` crate's WHATWG host parser
//!    before the check, and IPv4-mapped IPv6 (`[::ffff:127.0.0.1]`) is checked
//!    as the IPv4 address it maps to.
//! 2. [`UrlPolicy::resolve_checked`]: every address the name resolves to
//!    must be allowed. The daemon runs it once per configured URL at start,
//!    so a bad config fails early; and every connection checks again when it
//!    connects: the daemon hands the channels, the ACME client and
//!    discovery's AIA/revocation fetches an address guard built from this
//!    policy (`SecurityConfig::address_guard`), which resolves the name and
//!    connects only to addresses that pass (no DNS rebinding between check
//!    and use). No client follows redirects.
//!
//! Which addresses are allowed: the operator's `security.allowed_networks` and
//! `security.denied_networks` come first, the most specific network containing
//! the address deciding (deny wins a tie). Only an address neither list
//! mentions falls to the built-in list, which denies loopback, private,
//! link-local, shared (CGNAT), unspecified, multicast, broadcast and other
//! reserved ranges, and allows the rest. So allowing `127.0.0.0/8` (for tests)
//! or `10.1.0.0/16` (for an internal Jira) opens exactly that network.
//!
//! Error messages name the host and the reason, never the URL's path or query,
//! which often carry a token.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use url::{Host, Url};

/// The setting that allows networks, as error messages name it.
pub const ALLOW_SETTING: &str = "security.allowed_networks";
/// The setting that denies networks, as error messages name it.
pub const DENY_SETTING: &str = "security.denied_networks";

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> IpNet {
    IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), len))
}

const fn v6(bits: u128, len: u8) -> IpNet {
    IpNet::V6(Ipv6Net::new_assert(Ipv6Addr::from_bits(bits), len))
}

/// Networks denied unless the operator allows them, with what to call them.
const BUILTIN_DENIED: &[(IpNet, &str)] = &[
    (v4(0, 0, 0, 0, 8), "a \"this network\" address"),
    (v4(10, 0, 0, 0, 8), "a private address"),
    (v4(100, 64, 0, 0, 10), "a shared (CGNAT) address"),
    (v4(127, 0, 0, 0, 8), "a loopback address"),
    // Cloud metadata services (169.254.169.254) live here.
    (v4(169, 254, 0, 0, 16), "a link-local address"),
    (v4(172, 16, 0, 0, 12), "a private address"),
    (v4(192, 0, 0, 0, 24), "a reserved address"),
    (v4(192, 168, 0, 0, 16), "a private address"),
    (v4(198, 18, 0, 0, 15), "a benchmarking address"),
    (v4(224, 0, 0, 0, 4), "a multicast address"),
    (v4(240, 0, 0, 0, 4), "a reserved address"),
    (v4(255, 255, 255, 255, 32), "the broadcast address"),
    (v6(0, 128), "the unspecified address"),
    (v6(1, 128), "a loopback address"),
    (v6(0, 96), "an IPv4-compatible address (deprecated)"),
    (v6(0x64_ff9b_0001 << 80, 48), "a local-use NAT64 address"),
    (v6(0xfc00 << 112, 7), "a private address"),
    (v6(0xfe80 << 112, 10), "a link-local address"),
    (v6(0xfec0 << 112, 10), "a site-local address"),
    (v6(0xff00 << 112, 8), "a multicast address"),
];

/// The well-known NAT64 prefix (RFC 6052): `64:ff9b::a.b.c.d` reaches the
/// IPv4 address `a.b.c.d` through a translator, so that address is checked too.
const NAT64: Ipv6Net = Ipv6Net::new_assert(Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96);

/// Why an address is not allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// It lies in a network the built-in list denies.
    Builtin {
        /// The denied network containing the address.
        network: IpNet,
        /// What kind of address it is, as in "a private address".
        what: &'static str,
    },
    /// It lies in a network of `security.denied_networks`.
    Configured {
        /// The configured network containing the address.
        network: IpNet,
    },
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denial::Builtin { network, what } => {
                write!(f, "{what} ({network}); allow it with {ALLOW_SETTING}")
            }
            Denial::Configured { network } => write!(f, "denied by {DENY_SETTING} ({network})"),
        }
    }
}

/// Why a URL may not be used. Only the host appears in a message, never the
/// path or query.
#[derive(Debug, thiserror::Error)]
pub enum SsrfError {
    /// The text is not a URL at all.
    #[error("not a valid URL: {0}")]
    Parse(#[from] url::ParseError),
    /// The scheme is neither http nor https.
    #[error("URL scheme {0:?} is not allowed: use http or https")]
    Scheme(String),
    /// The URL has a user name or password in it.
    #[error(
        "the URL for {host} has a user name or password in it; configure credentials separately"
    )]
    UserInfo {
        /// The URL's host.
        host: String,
    },
    /// The URL has no host.
    #[error("the URL has no host")]
    NoHost,
    /// The host is an IP address that is not allowed.
    #[error("{addr} is {denial}")]
    DeniedAddress {
        /// The address, as the URL gives it (normalised).
        addr: IpAddr,
        /// Why it is denied.
        denial: Denial,
    },
    /// The host name resolves to an address that is not allowed.
    #[error("{host} resolves to {addr}, {denial}")]
    DeniedResolution {
        /// The host name.
        host: String,
        /// The first denied address it resolves to.
        addr: IpAddr,
        /// Why it is denied.
        denial: Denial,
    },
    /// Resolving the host name failed.
    #[error("resolving {host} failed: {error}")]
    Resolve {
        /// The host name.
        host: String,
        /// The resolver's error.
        error: std::io::Error,
    },
    /// The host name resolves to no address.
    #[error("{host} resolves to no address")]
    NoAddresses {
        /// The host name.
        host: String,
    },
}

impl SsrfError {
    /// True when trying again later may succeed with no change to the URL or
    /// the configuration: the name could not be resolved now. Every other
    /// error stays until someone changes the URL or the policy.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            SsrfError::Resolve { .. } | SsrfError::NoAddresses { .. }
        )
    }
}

/// Which addresses outgoing requests to user-supplied URLs may reach.
///
/// `Default` is the built-in list alone (see the module documentation).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UrlPolicy {
    /// Networks allowed even though the built-in list denies them.
    allowed: Vec<IpNet>,
    /// Networks denied in addition to the built-in list.
    denied: Vec<IpNet>,
}

impl UrlPolicy {
    /// A policy from the configured `security.allowed_networks` and
    /// `security.denied_networks`, on top of the built-in list.
    pub fn new(allowed: Vec<IpNet>, denied: Vec<IpNet>) -> Self {
        let normalise = |nets: Vec<IpNet>| nets.into_iter().map(|n| n.trunc()).collect();
        Self {
            allowed: normalise(allowed),
            denied: normalise(denied),
        }
    }

    /// Whether requests may go to `addr`. IPv4-mapped IPv6 addresses are
    /// judged as the IPv4 address, and NAT64 ones (`64:ff9b::/96`) must pass as
    /// both the IPv6 address and the IPv4 address they embed.
    pub fn check_ip(&self, addr: IpAddr) -> Result<(), Denial> {
        let addr = addr.to_canonical();
        if let IpAddr::V6(v6) = addr
            && NAT64.contains(&v6)
        {
            let [.., a, b, c, d] = v6.octets();
            self.judge(IpAddr::V4(Ipv4Addr::new(a, b, c, d)))?;
        }
        self.judge(addr)
    }

    /// The decision for one canonical address.
    fn judge(&self, addr: IpAddr) -> Result<(), Denial> {
        let allow = most_specific(self.allowed.iter().copied(), addr);
        let deny = most_specific(self.denied.iter().copied(), addr);
        match (allow, deny) {
            (Some(a), Some(d)) if a.prefix_len() > d.prefix_len() => return Ok(()),
            (_, Some(network)) => return Err(Denial::Configured { network }),
            (Some(_), None) => return Ok(()),
            (None, None) => {}
        }
        let builtin = BUILTIN_DENIED
            .iter()
            .filter(|(net, _)| net.contains(&addr))
            .max_by_key(|(net, _)| net.prefix_len());
        match builtin {
            Some(&(network, what)) => Err(Denial::Builtin { network, what }),
            None => Ok(()),
        }
    }

    /// Parses `url` and checks what can be checked without DNS: the scheme is
    /// http or https, there is no user name or password, there is a host, and
    /// a host given as an IP address (in any IPv4 spelling, or IPv6) is
    /// allowed. Use it when a URL is configured, to refuse it early with a
    /// clear message; [`resolve_checked`](Self::resolve_checked) must still run
    /// before each connection.
    pub fn check_url(&self, url: &str) -> Result<Url, SsrfError> {
        let url = Url::parse(url)?;
        self.check_parsed(&url)?;
        Ok(url)
    }

    /// [`check_url`](Self::check_url) for a URL already parsed.
    fn check_parsed<'u>(&self, url: &'u Url) -> Result<Host<&'u str>, SsrfError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(SsrfError::Scheme(url.scheme().to_owned()));
        }
        let host = url.host().ok_or(SsrfError::NoHost)?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(SsrfError::UserInfo {
                host: host.to_string(),
            });
        }
        let literal = match host {
            Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
            Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
            Host::Domain(_) => None,
        };
        if let Some(addr) = literal {
            self.check_ip(addr)
                .map_err(|denial| SsrfError::DeniedAddress { addr, denial })?;
        }
        Ok(host)
    }

    /// Checks `url` as [`check_url`](Self::check_url) does, resolves its host
    /// and returns the addresses (with the URL's port) to connect to, or an
    /// error if any of them is denied.
    ///
    /// **Connect to exactly these addresses**, for example with reqwest's
    /// `ClientBuilder::resolve_to_addrs(host, &addrs)`, and do not let the
    /// HTTP client resolve the name again: DNS can answer with a public address
    /// for this check and an internal one a moment later (DNS rebinding).
    /// For the same reason, do not let the client follow redirects on its own:
    /// check each `Location` with this function too.
    ///
    /// Every address must pass, not just one, because the client may pick any
    /// of them. Resolution uses the system resolver
    /// (`tokio::net::lookup_host`) and has no deadline of its own: wrap the
    /// call in `tokio::time::timeout`.
    pub async fn resolve_checked(&self, url: &Url) -> Result<Vec<SocketAddr>, SsrfError> {
        let host = self.check_parsed(url)?;
        // http and https always have a default port.
        let port = url.port_or_known_default().unwrap_or(443);
        let name = match host {
            Host::Ipv4(v4) => return Ok(vec![SocketAddr::new(IpAddr::V4(v4), port)]),
            Host::Ipv6(v6) => return Ok(vec![SocketAddr::new(IpAddr::V6(v6), port)]),
            Host::Domain(name) => name,
        };
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name, port))
            .await
            .map_err(|error| SsrfError::Resolve {
                host: name.to_owned(),
                error,
            })?
            .collect();
        if addrs.is_empty() {
            return Err(SsrfError::NoAddresses {
                host: name.to_owned(),
            });
        }
        for addr in &addrs {
            self.check_ip(addr.ip())
                .map_err(|denial| SsrfError::DeniedResolution {
                    host: name.to_owned(),
                    addr: addr.ip(),
                    denial,
                })?;
        }
        Ok(addrs)
    }
}

/// The network with the longest prefix among `nets` that contains `addr`.
fn most_specific(nets: impl Iterator<Item = IpNet>, addr: IpAddr) -> Option<IpNet> {
    nets.filter(|net| net.contains(&addr))
        .max_by_key(|net| net.prefix_len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn denied_url(policy: &UrlPolicy, url: &str) -> String {
        match policy.check_url(url) {
            Err(e @ SsrfError::DeniedAddress { .. }) => e.to_string(),
            other => panic!("{url}: expected a denied address, got {other:?}"),
        }
    }

    #[test]
    fn builtin_list_denies_internal_addresses() {
        let policy = UrlPolicy::default();
        let denied = "127.0.0.1 127.255.0.9 10.0.0.5 172.16.0.1 172.31.255.254 192.168.1.1 \
            169.254.169.254 100.64.0.1 100.127.255.255 0.0.0.0 0.1.2.3 224.0.0.1 \
            239.255.255.250 255.255.255.255 240.0.0.1 :: ::1 fc00::1 fd12:3456::1 fe80::1 \
            ff02::1 ::ffff:127.0.0.1 ::ffff:10.0.0.1 ::ffff:169.254.169.254 64:ff9b::a00:1 \
            64:ff9b:1::808:808 ::7f00:1";
        for addr in denied.split_whitespace() {
            assert!(policy.check_ip(addr.parse().unwrap()).is_err(), "{addr}");
        }
        let allowed = "8.8.8.8 1.1.1.1 172.32.0.1 100.128.0.1 169.255.0.1 2001:4860::8888 \
            ::ffff:8.8.8.8 64:ff9b::808:808";
        for addr in allowed.split_whitespace() {
            assert_eq!(policy.check_ip(addr.parse().unwrap()), Ok(()), "{addr}");
        }
    }

    #[test]
    fn ipv4_spelling_tricks_are_normalised() {
        let policy = UrlPolicy::default();
        for url in [
            "http://2130706433/",
            "http://0x7f.1/",
            "http://0177.0.0.1/",
            "http://127.1/",
            "http://127.0.0.1./",
            "http://[::ffff:127.0.0.1]/",
            "http://[::1]:8080/",
            "http://%31%32%37.0.0.1/",
            "http://\u{ff11}\u{ff12}\u{ff17}.0.0.1/",
        ] {
            let message = denied_url(&policy, url);
            assert!(message.contains("a loopback address"), "{url}: {message}");
            assert!(message.contains(ALLOW_SETTING), "{url}: {message}");
        }
        let message = denied_url(&policy, "http://0xa9fea9fe/latest/meta-data/");
        assert!(
            message.starts_with("169.254.169.254 is a link-local"),
            "{message}"
        );
    }

    #[test]
    fn explicit_allow_overrides_the_builtin_list_for_that_network_only() {
        let policy = UrlPolicy::new(vec![net("127.0.0.0/8"), net("10.1.0.0/16")], vec![]);
        assert!(policy.check_url("http://127.0.0.1:8080/hook").is_ok());
        assert!(policy.check_url("http://[::ffff:127.0.0.1]/").is_ok());
        assert!(policy.check_url("https://10.1.2.3/jira").is_ok());
        let message = denied_url(&policy, "https://10.2.0.1/");
        assert!(
            message.contains("a private address (10.0.0.0/8)"),
            "{message}"
        );
        // ::1 is a different network from 127.0.0.0/8.
        denied_url(&policy, "http://[::1]/");
    }

    #[test]
    fn the_most_specific_configured_entry_wins() {
        let policy = UrlPolicy::new(
            vec![net("10.0.0.0/8"), net("203.0.113.7/32")],
            vec![net("10.1.2.0/24"), net("203.0.113.0/24"), net("10.0.0.0/8")],
        );
        assert_eq!(policy.check_ip("203.0.113.7".parse().unwrap()), Ok(()));
        let message = denied_url(&policy, "http://203.0.113.8/");
        assert_eq!(
            message,
            "203.0.113.8 is denied by security.denied_networks (203.0.113.0/24)"
        );
        // A tie goes to the deny.
        denied_url(&policy, "http://10.9.9.9/");
        // Host bits in a configured network are ignored.
        let policy = UrlPolicy::new(vec![net("10.1.2.3/16")], vec![]);
        assert!(policy.check_url("http://10.1.200.1/").is_ok());
    }

    #[test]
    fn only_plain_http_and_https_urls_pass() {
        let policy = UrlPolicy::default();
        assert!(
            policy
                .check_url("https://example.com/acme/directory")
                .is_ok()
        );
        assert!(policy.check_url("http://example.com:8080/crl.pem").is_ok());
        for (url, want) in [
            ("file:///etc/passwd", "scheme \"file\""),
            ("gopher://example.com/", "scheme \"gopher\""),
            ("ftp://example.com/", "scheme \"ftp\""),
            (
                "https://user:hunter2@example.com/",
                "the URL for example.com has a user name",
            ),
            (
                "https://user@example.com/",
                "the URL for example.com has a user name",
            ),
            ("not a url", "not a valid URL"),
            ("https://", "not a valid URL"),
        ] {
            let message = policy.check_url(url).unwrap_err().to_string();
            assert!(message.contains(want), "{url}: {message}");
            assert!(!message.contains("hunter2"), "{message}");
        }
    }

    #[test]
    fn errors_never_show_the_path_or_query() {
        let policy = UrlPolicy::default();
        for url in [
            "http://10.0.0.5/hooks/SECRET?token=SECRET",
            "https://bad host/SECRET?token=SECRET",
            "https://u:SECRET@example.com/SECRET",
        ] {
            let message = policy.check_url(url).unwrap_err().to_string();
            assert!(!message.contains("SECRET"), "{message}");
        }
        let message = denied_url(&policy, "http://10.0.0.5/hooks/SECRET?token=SECRET");
        assert_eq!(
            message,
            "10.0.0.5 is a private address (10.0.0.0/8); allow it with security.allowed_networks"
        );
    }

    #[tokio::test]
    async fn names_resolving_to_denied_addresses_are_refused() {
        let policy = UrlPolicy::default();
        let url = policy
            .check_url("http://localhost:8080/hook?token=SECRET")
            .unwrap();
        let err = policy.resolve_checked(&url).await.unwrap_err();
        assert!(!err.is_transient());
        let message = err.to_string();
        assert!(message.starts_with("localhost resolves to "), "{message}");
        assert!(message.contains("a loopback address"), "{message}");
        assert!(message.contains(ALLOW_SETTING), "{message}");
        assert!(!message.contains("SECRET"), "{message}");
    }

    #[tokio::test]
    async fn allowed_hosts_resolve_to_the_addresses_to_use() {
        let policy = UrlPolicy::new(vec![net("127.0.0.0/8"), net("::1/128")], vec![]);
        let url = policy.check_url("http://localhost:8080/").unwrap();
        let addrs = policy.resolve_checked(&url).await.unwrap();
        assert!(!addrs.is_empty());
        assert!(
            addrs
                .iter()
                .all(|a| a.port() == 8080 && a.ip().is_loopback()),
            "{addrs:?}"
        );
        // IP literals need no DNS and get the scheme's default port.
        let url = Url::parse("https://127.0.0.2/").unwrap();
        let addrs = policy.resolve_checked(&url).await.unwrap();
        assert_eq!(
            addrs,
            vec!["127.0.0.2:443".parse::<std::net::SocketAddr>().unwrap()]
        );
        // The URL itself is checked again.
        let url = Url::parse("http://[fe80::1]/").unwrap();
        let message = policy.resolve_checked(&url).await.unwrap_err().to_string();
        assert!(
            message.contains("a link-local address (fe80::/10)"),
            "{message}"
        );
        let url = Url::parse("ftp://127.0.0.1/").unwrap();
        let result = policy.resolve_checked(&url).await;
        assert!(matches!(result, Err(SsrfError::Scheme(_))), "{result:?}");
    }
}
