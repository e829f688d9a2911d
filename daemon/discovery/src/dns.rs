//! DNS resolution for discovery: turns the managed names of the estate into
//! the addresses to probe.
//!
//! A [`Resolver`] asks either the system's name servers (`/etc/resolv.conf`)
//! or configured ones for the A and AAAA records of a name, following CNAME
//! chains, and returns a [`Resolution`]: the addresses, sorted and
//! deduplicated, plus the CNAMEs met on the way (so the inventory can say
//! that `shop.example.com` is really served by `lb.example.net`).
//!
//! Both record types are asked for concurrently. Each query is bounded by the
//! configured timeout and retried once, and the whole lookup is cut off at
//! twice the timeout, so a silent or unreachable server costs a scan at most
//! `2 × timeout` per name. Built on `hickory-resolver`; each [`Resolver`]
//! has its own cache, shared by its clones.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::lookup::Lookup;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError as NetDnsError, NetError, NoRecords};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, RecordType};

/// How many CNAMEs are followed before a chain is taken to be a loop.
const MAX_CNAME_HOPS: usize = 16;

/// Why a name could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// The name does not exist (NXDOMAIN), or has neither A nor AAAA records.
    #[error("{0} has no A or AAAA records")]
    NoSuchName(String),
    /// No name server answered in time.
    #[error("no answer for {0} in time")]
    Timeout(String),
    /// A name server answered with an error (SERVFAIL, REFUSED, ...) or could
    /// not be reached.
    #[error("looking up {name} failed: {error}")]
    Failed {
        /// The name looked up.
        name: String,
        /// What went wrong.
        error: String,
    },
    /// The resolver configuration, or a name to look up, is unusable.
    #[error("DNS configuration: {0}")]
    Config(String),
}

impl DnsError {
    /// True when asking again later may succeed without anyone changing the
    /// configuration or the zone: timeouts and server failures. A missing
    /// name or a bad configuration stays so until someone acts.
    pub fn is_transient(&self) -> bool {
        matches!(self, DnsError::Timeout(_) | DnsError::Failed { .. })
    }
}

/// A DNS stub resolver for discovery.
///
/// Cheap to clone: clones share the connections and the cache.
#[derive(Clone, Debug)]
pub struct Resolver {
    /// hickory's resolver, with retries and per-query timeout configured.
    inner: TokioResolver,
    /// The per-query timeout; a whole [`Resolver::lookup`] is cut off at twice this.
    timeout: Duration,
}

/// The outcome of a successful [`Resolver::lookup`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// The name's IPv4 and IPv6 addresses, sorted (IPv4 first) and deduplicated.
    pub addresses: Vec<IpAddr>,
    /// The CNAME targets followed, in order, lowercase, without the trailing
    /// dot; empty when the name has address records itself.
    pub cnames: Vec<String>,
}

impl Resolver {
    /// The system's resolvers (/etc/resolv.conf), each query bounded by `timeout`.
    ///
    /// Search domains, `ndots` and `/etc/hosts` apply as for any program on
    /// the host.
    pub fn system(timeout: Duration) -> Result<Resolver, DnsError> {
        check_timeout(timeout)?;
        let mut builder = TokioResolver::builder_tokio()
            .map_err(|e| DnsError::Config(format!("cannot read the system resolver: {e}")))?;
        bound(builder.options_mut(), timeout);
        let inner = builder
            .build()
            .map_err(|e| DnsError::Config(format!("cannot build the system resolver: {e}")))?;
        Ok(Resolver { inner, timeout })
    }

    /// These name servers (UDP, falling back to TCP), each query bounded by `timeout`; no search domains.
    ///
    /// TCP is used when an answer over UDP is truncated. `/etc/hosts` is not
    /// consulted: these servers are the only source of truth.
    pub fn with_servers(servers: &[SocketAddr], timeout: Duration) -> Result<Resolver, DnsError> {
        check_timeout(timeout)?;
        if servers.is_empty() {
            return Err(DnsError::Config("no DNS servers configured".to_owned()));
        }
        let name_servers = servers
            .iter()
            .map(|server| {
                let mut udp = ConnectionConfig::udp();
                udp.port = server.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = server.port();
                NameServerConfig::new(server.ip(), true, vec![udp, tcp])
            })
            .collect();
        let config = ResolverConfig::from_name_servers(name_servers);
        let mut builder =
            TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
        let options = builder.options_mut();
        bound(options, timeout);
        options.use_hosts_file = ResolveHosts::Never;
        let inner = builder
            .build()
            .map_err(|e| DnsError::Config(format!("cannot build the resolver: {e}")))?;
        Ok(Resolver { inner, timeout })
    }

    /// The underlying hickory resolver (for other record types: CAA).
    pub fn hickory(&self) -> &TokioResolver {
        &self.inner
    }

    /// The addresses of `name` (A and AAAA, CNAMEs followed), sorted and deduplicated, with the CNAME chain met on the way.
    ///
    /// An IP address literal resolves to itself. A name that is not a valid
    /// DNS name is a [`DnsError::Config`] error (managed names come from the
    /// configuration). When one record type fails (timeout, SERVFAIL) the
    /// lookup fails, even if the other type answered: a partial answer would
    /// make the inventory's addresses flap between scans.
    pub async fn lookup(&self, name: &str) -> Result<Resolution, DnsError> {
        if let Ok(ip) = name.parse::<IpAddr>() {
            return Ok(Resolution {
                addresses: vec![ip],
                cnames: Vec::new(),
            });
        }
        let query = parse_name(name)?;
        let both = async {
            tokio::join!(
                self.inner.lookup(query.clone(), RecordType::A),
                self.inner.lookup(query.clone(), RecordType::AAAA),
            )
        };
        // hickory bounds each query, but retries, several servers and the
        // TCP fallback add up: this is the promise callers plan with.
        let (v4, v6) = tokio::time::timeout(self.timeout.saturating_mul(2), both)
            .await
            .map_err(|_| DnsError::Timeout(name.to_owned()))?;
        let v4 = found(name, v4)?;
        let v6 = found(name, v6)?;

        let mut addresses = Vec::new();
        let mut cnames = Vec::new();
        for lookup in [&v4, &v6].into_iter().flatten() {
            addresses.extend(lookup.answers().iter().filter_map(|r| match &r.data {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
                _ => None,
            }));
            let chain = cname_chain(lookup);
            if chain.len() > cnames.len() {
                cnames = chain;
            }
        }
        addresses.sort();
        addresses.dedup();
        if addresses.is_empty() {
            return Err(DnsError::NoSuchName(name.to_owned()));
        }
        Ok(Resolution { addresses, cnames })
    }
}

/// Refuses a zero timeout, which would make every lookup time out.
fn check_timeout(timeout: Duration) -> Result<(), DnsError> {
    if timeout.is_zero() {
        return Err(DnsError::Config(
            "the DNS timeout must be positive".to_owned(),
        ));
    }
    Ok(())
}

/// Sets the per-query bound and keeps the CNAME records in answers.
fn bound(options: &mut ResolverOpts, timeout: Duration) {
    options.timeout = timeout;
    // One retry (for a lost UDP packet) still fits in the 2 × timeout budget.
    options.attempts = 1;
    // cname_chain reads the CNAMEs from the answers.
    options.preserve_intermediates = true;
}

/// Parses a name to look up; internationalised names become their `xn--` form.
fn parse_name(name: &str) -> Result<Name, DnsError> {
    let invalid =
        |why: String| DnsError::Config(format!("{name:?} is not a valid DNS name: {why}"));
    if name.trim().is_empty() || name == "." {
        return Err(invalid("empty".to_owned()));
    }
    Name::from_utf8(name).map_err(|e| invalid(e.to_string()))
}

/// Maps one record type's outcome: `Ok(None)` when the name or the type does
/// not exist, an error when the servers failed.
fn found(name: &str, result: Result<Lookup, NetError>) -> Result<Option<Lookup>, DnsError> {
    match result {
        Ok(lookup) => Ok(Some(lookup)),
        Err(NetError::Dns(NetDnsError::NoRecordsFound(NoRecords {
            response_code: ResponseCode::NXDomain | ResponseCode::NoError,
            ..
        }))) => Ok(None),
        Err(NetError::Timeout) => Err(DnsError::Timeout(name.to_owned())),
        Err(e) => Err(DnsError::Failed {
            name: name.to_owned(),
            error: e.to_string(),
        }),
    }
}

/// The CNAME targets in `lookup`'s answers, followed from the name asked.
fn cname_chain(lookup: &Lookup) -> Vec<String> {
    let mut current = lookup.query().name().clone();
    let mut chain = Vec::new();
    while chain.len() < MAX_CNAME_HOPS {
        let next = lookup.answers().iter().find_map(|r| match &r.data {
            RData::CNAME(target) if r.name.eq_ignore_root(&current) => Some(target.0.clone()),
            _ => None,
        });
        let Some(next) = next else { break };
        chain.push(display(&next));
        current = next;
    }
    chain
}

/// A name as the inventory stores it: lowercase ASCII, no trailing dot.
fn display(name: &Name) -> String {
    name.to_lowercase()
        .to_ascii()
        .trim_end_matches('.')
        .to_owned()
}

/// A name server given as neither `ADDRESS` nor `ADDRESS:PORT`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not ADDRESS or ADDRESS:PORT")]
pub struct DnsServerError(pub String);

/// Parses name servers given as `ADDRESS` or `ADDRESS:PORT` (`[v6]:PORT`);
/// port 53 by default.
pub fn parse_dns_servers(servers: &[String]) -> Result<Vec<SocketAddr>, DnsServerError> {
    servers
        .iter()
        .map(|s| {
            s.parse::<SocketAddr>()
                .or_else(|_| {
                    s.trim_start_matches('[')
                        .trim_end_matches(']')
                        .parse::<IpAddr>()
                        .map(|ip| SocketAddr::new(ip, 53))
                })
                .map_err(|_| DnsServerError(s.clone()))
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    //! Against a real BIND (`named` from Debian's bind9) started per test on
    //! a free loopback port, with a private config and zone in a tempdir.

    use std::fs;
    use std::net::{Ipv4Addr, Ipv6Addr, TcpListener, UdpSocket};
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::Instant;

    use super::*;

    /// The test zone, `estate.test`.
    const ZONE: &str = "\
$TTL 60
@      IN SOA   ns hostmaster 1 3600 600 86400 60
@      IN NS    ns
ns     IN A     127.0.0.1
www    IN A     127.0.20.1
www    IN AAAA  ::1
shop   IN CNAME www
chain  IN CNAME shop
upper  IN CNAME WWW.Estate.Test.
multi  IN A     127.0.20.2
multi  IN A     127.0.20.3
text   IN TXT   \"no address here\"
";

    /// A running `named`, killed on drop.
    struct Named {
        child: Child,
        port: u16,
        /// Holds the config, zone and log until named is gone.
        dir: tempfile::TempDir,
    }

    impl Named {
        fn start() -> Named {
            let binary = ["/usr/sbin/named", "/usr/bin/named"]
                .into_iter()
                .map(PathBuf::from)
                .find(|p| p.exists())
                .unwrap_or_else(|| {
                    panic!("named not found: install Debian's bind9 (tests/run.sh does)")
                });
            // Another process may take the port between the probe and named's
            // bind; named then exits and the next attempt picks another.
            for _ in 0..5 {
                let dir = tempfile::tempdir().unwrap();
                let port = free_port();
                let conf = write_config(dir.path(), port);
                let log = fs::File::create(dir.path().join("named.log")).unwrap();
                // -g: foreground, log to stderr. As root, named keeps running
                // as root when no -u is given, so it can read the tempdir.
                let child = Command::new(&binary)
                    .arg("-g")
                    .args(["-n", "1"])
                    .arg("-c")
                    .arg(&conf)
                    .stdin(Stdio::null())
                    .stdout(log.try_clone().unwrap())
                    .stderr(log)
                    .spawn()
                    .unwrap();
                let mut named = Named { child, port, dir };
                if named.wait_until_running() {
                    return named;
                }
            }
            panic!("named did not start on any port");
        }

        /// Waits for named to say it is serving; false if it exited.
        fn wait_until_running(&mut self) -> bool {
            let log = self.dir.path().join("named.log");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                let text = fs::read_to_string(&log).unwrap_or_default();
                if text.contains("all zones loaded") && text.contains("running") {
                    return true;
                }
                if self.child.try_wait().unwrap().is_some() {
                    eprintln!("named exited:\n{text}");
                    return false;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            panic!(
                "named did not start within 10 s:\n{}",
                fs::read_to_string(&log).unwrap_or_default()
            );
        }

        fn resolver(&self) -> Resolver {
            let server = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
            Resolver::with_servers(&[server], Duration::from_secs(2)).unwrap()
        }
    }

    impl Drop for Named {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// A port free for both UDP and TCP on 127.0.0.1.
    fn free_port() -> u16 {
        loop {
            let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            let port = udp.local_addr().unwrap().port();
            if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
                return port;
            }
        }
    }

    /// A named.conf that touches nothing outside `dir`: no command channel
    /// (port 953, /etc/bind/rndc.key), session key and managed keys in `dir`.
    fn write_config(dir: &Path, port: u16) -> PathBuf {
        let d = dir.display();
        fs::write(dir.join("estate.test.zone"), ZONE).unwrap();
        let conf = format!(
            r#"options {{
    directory "{d}";
    pid-file "{d}/named.pid";
    session-keyfile "{d}/session.key";
    managed-keys-directory "{d}";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    notify no;
}};
controls {{ }};
zone "estate.test" {{ type primary; file "{d}/estate.test.zone"; }};
"#
        );
        let path = dir.join("named.conf");
        fs::write(&path, conf).unwrap();
        path
    }

    const WWW: [IpAddr; 2] = [
        IpAddr::V4(Ipv4Addr::new(127, 0, 20, 1)),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ];

    #[tokio::test]
    async fn resolves_a_and_aaaa() {
        let named = Named::start();
        let found = named.resolver().lookup("www.estate.test").await.unwrap();
        assert_eq!(
            found,
            Resolution {
                addresses: WWW.to_vec(),
                cnames: vec![]
            }
        );
        // A fully qualified, mixed-case name is the same name.
        let found = named.resolver().lookup("WWW.Estate.Test.").await.unwrap();
        assert_eq!(found.addresses, WWW);
    }

    #[tokio::test]
    async fn follows_cnames() {
        let named = Named::start();
        let resolver = named.resolver();

        let shop = resolver.lookup("shop.estate.test").await.unwrap();
        assert_eq!(shop.addresses, WWW);
        assert_eq!(shop.cnames, ["www.estate.test"]);

        let chain = resolver.lookup("chain.estate.test").await.unwrap();
        assert_eq!(chain.addresses, WWW);
        assert_eq!(chain.cnames, ["shop.estate.test", "www.estate.test"]);

        // Targets are reported lowercase, whatever the zone's spelling.
        let upper = resolver.lookup("upper.estate.test").await.unwrap();
        assert_eq!(upper.cnames, ["www.estate.test"]);
    }

    #[tokio::test]
    async fn returns_every_address_sorted() {
        let named = Named::start();
        let multi = named.resolver().lookup("multi.estate.test").await.unwrap();
        assert_eq!(
            multi.addresses,
            [
                IpAddr::V4(Ipv4Addr::new(127, 0, 20, 2)),
                IpAddr::V4(Ipv4Addr::new(127, 0, 20, 3)),
            ]
        );
        assert!(multi.cnames.is_empty());
    }

    #[tokio::test]
    async fn missing_names_and_names_without_addresses() {
        let named = Named::start();
        let resolver = named.resolver();
        let gone = resolver.lookup("gone.estate.test").await.unwrap_err();
        assert!(
            matches!(&gone, DnsError::NoSuchName(n) if n == "gone.estate.test"),
            "{gone:?}"
        );
        assert!(!gone.is_transient());
        let text = resolver.lookup("text.estate.test").await.unwrap_err();
        assert!(matches!(text, DnsError::NoSuchName(_)), "{text:?}");
    }

    #[tokio::test]
    async fn silent_server_times_out_within_twice_the_timeout() {
        // Bound, so queries arrive, but never read: nothing ever answers.
        let silent = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let timeout = Duration::from_millis(500);
        let resolver = Resolver::with_servers(&[silent.local_addr().unwrap()], timeout).unwrap();
        let started = Instant::now();
        let error = resolver.lookup("www.estate.test").await.unwrap_err();
        let took = started.elapsed();
        assert!(
            matches!(&error, DnsError::Timeout(n) if n == "www.estate.test"),
            "{error:?}"
        );
        assert!(error.is_transient());
        // Bounded (the lookup gives up at 2 × timeout); the margin is wide so
        // a loaded test machine does not flake, yet far below "never".
        assert!(took < Duration::from_secs(20), "took {took:?}");
    }

    #[tokio::test]
    async fn ip_literals_resolve_to_themselves() {
        let silent = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let resolver =
            Resolver::with_servers(&[silent.local_addr().unwrap()], Duration::from_secs(1))
                .unwrap();
        let found = resolver.lookup("::1").await.unwrap();
        assert_eq!(found.addresses, [IpAddr::V6(Ipv6Addr::LOCALHOST)]);
    }

    #[test]
    fn refuses_unusable_configuration() {
        let server = SocketAddr::from((Ipv4Addr::LOCALHOST, 53));
        assert!(matches!(
            Resolver::with_servers(&[], Duration::from_secs(1)),
            Err(DnsError::Config(_))
        ));
        assert!(matches!(
            Resolver::with_servers(&[server], Duration::ZERO),
            Err(DnsError::Config(_))
        ));
        assert!(matches!(
            Resolver::system(Duration::ZERO),
            Err(DnsError::Config(_))
        ));
        // Building needs no runtime: config is parsed at startup, before one runs.
        let resolver = Resolver::with_servers(&[server], Duration::from_secs(1)).unwrap();
        fn shareable<T: Send + Sync + Clone + 'static>(_: &T) {}
        shareable(&resolver);
    }

    #[tokio::test]
    async fn refuses_invalid_names() {
        let server = SocketAddr::from((Ipv4Addr::LOCALHOST, 53));
        let resolver = Resolver::with_servers(&[server], Duration::from_secs(1)).unwrap();
        for bad in ["", "a..b", &"x".repeat(64)] {
            let error = resolver.lookup(bad).await.unwrap_err();
            assert!(matches!(error, DnsError::Config(_)), "{bad:?}: {error:?}");
        }
    }
}
