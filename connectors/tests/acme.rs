//! The ACME connector against real servers: Debian's pebble validating
//! HTTP-01 against the built-in responder or a webroot, BIND 9 taking
//! TSIG-signed updates for DNS-01, and, for what pebble 2.4 lacks (ARI,
//! profiles), a small stub that follows RFC 8555/9773 (`acme_support`).

mod acme_support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use acme_support::{AcmeStub, Bind, Pebble, PebbleDns, SilentCa, TestPki, free_port};
use certkeeper_connectors::acme::client::TimeoutClient;
use certkeeper_connectors::acme::order::order_state_key;
use certkeeper_connectors::acme::{
    AcmeConnector, AcmeSettings, AddressGuard, ChallengeSettings, Dns01Settings, Secret, open,
};
use certkeeper_connectors::conformance::{self, Fixture, key_and_csr};
use certkeeper_connectors::{
    Connector, ErrorClass, Identifier, IssueRequest, MemoryState, StateStore,
};
use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use openssl::x509::X509;

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn settings(
    name: &str,
    directory_url: &str,
    root_pem: &str,
    challenge: ChallengeSettings,
) -> AcmeSettings {
    let mut settings = AcmeSettings::new(name, directory_url, challenge);
    settings.extra_roots_pem = Some(root_pem.to_owned());
    settings.contacts = vec!["ops@example.org".into()];
    // The product's default: pebble answering 16 orders at once on a loaded
    // 2-core machine has taken over 10 s (a CI flake); tests that exercise the
    // timeout set their own short one.
    settings.request_timeout = Duration::from_secs(30);
    settings.order_deadline = Duration::from_secs(120);
    settings
}

async fn connector(settings: AcmeSettings) -> AcmeConnector {
    open(settings, Arc::new(MemoryState::default()))
        .await
        .expect("open the connector")
}

fn request_for(identifiers: Vec<Identifier>) -> IssueRequest {
    let (_, csr) = key_and_csr(&identifiers).expect("csr");
    IssueRequest::new(csr, identifiers)
}

fn leaf_of(chain_pem: &str) -> X509 {
    X509::stack_from_pem(chain_pem.as_bytes())
        .expect("PEM chain")
        .into_iter()
        .next()
        .expect("a leaf")
}

fn dns_names(cert: &X509) -> Vec<String> {
    cert.subject_alt_names()
        .map(|names| {
            names
                .iter()
                .filter_map(|n| n.dnsname().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_against_pebble_with_http01_validation() {
    let http_port = free_port();
    let pebble = Pebble::start(http_port, PebbleDns::ChallTestSrv);
    let working = connector(settings(
        "pebble",
        &pebble.directory_url,
        &pebble.root_pem,
        ChallengeSettings::Http01 {
            listen: loopback(http_port),
        },
    ))
    .await;
    // A directory on a port nobody listens on.
    let mut down = settings(
        "down",
        &format!("https://127.0.0.1:{}/dir", free_port()),
        &pebble.root_pem,
        ChallengeSettings::Http01 {
            listen: loopback(free_port()),
        },
    );
    down.request_timeout = Duration::from_secs(2);
    let down = connector(down).await;

    conformance::run(&Fixture {
        connector: &working,
        identifiers: vec![
            Identifier::Dns("conformance.test".into()),
            Identifier::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        ],
        refused: vec![
            Identifier::Dns("blocked.test".into()),
            Identifier::Email("someone@example.org".into()),
        ],
        unreachable: Some(&down),
    })
    .await
    .unwrap();

    // Pebble 2.4 offers no renewal information: no window, not an error.
    let issued = working
        .issue(&request_for(vec![Identifier::Dns("ari.test".into())]))
        .await
        .unwrap();
    let der = leaf_of(&issued.chain_pem).to_der().unwrap();
    assert_eq!(working.renewal_info(&der).await.unwrap(), None);
    assert!(
        issued
            .ca_reference
            .is_some_and(|r| r.starts_with("https://127.0.0.1"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_orders_share_one_responder() {
    let http_port = free_port();
    let pebble = Pebble::start(http_port, PebbleDns::ChallTestSrv);
    let connector = Arc::new(
        connector(settings(
            "pebble",
            &pebble.directory_url,
            &pebble.root_pem,
            ChallengeSettings::Http01 {
                listen: loopback(http_port),
            },
        ))
        .await,
    );
    let mut orders = tokio::task::JoinSet::new();
    for i in 0..16 {
        let connector = connector.clone();
        orders.spawn(async move {
            let name = format!("host{i}.many.test");
            let issued = connector
                .issue(&request_for(vec![Identifier::Dns(name.clone())]))
                .await;
            (name, issued)
        });
    }
    let mut serials = std::collections::HashSet::new();
    while let Some(joined) = orders.join_next().await {
        let (name, issued) = joined.unwrap();
        let issued = issued.unwrap_or_else(|e| panic!("{name}: {e}"));
        let leaf = leaf_of(&issued.chain_pem);
        assert_eq!(dns_names(&leaf), vec![name]);
        serials.insert(
            leaf.serial_number()
                .to_bn()
                .unwrap()
                .to_hex_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(serials.len(), 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_the_same_state_reuses_the_account() {
    let http_port = free_port();
    let pebble = Pebble::start(http_port, PebbleDns::ChallTestSrv);
    let settings = settings(
        "pebble",
        &pebble.directory_url,
        &pebble.root_pem,
        ChallengeSettings::Http01 {
            listen: loopback(http_port),
        },
    );
    let state = Arc::new(MemoryState::default());

    let first = open(settings.clone(), state.clone()).await.unwrap();
    let account = first.account_url().await.unwrap();
    drop(first);
    assert!(state.load("acme_account").await.unwrap().is_some());

    let restarted = open(settings.clone(), state.clone()).await.unwrap();
    assert_eq!(restarted.account_url().await.unwrap(), account);
    restarted
        .issue(&request_for(vec![Identifier::Dns("restart.test".into())]))
        .await
        .expect("the restored account can order");
    restarted.health().await.unwrap();

    let elsewhere = open(settings, Arc::new(MemoryState::default()))
        .await
        .unwrap();
    assert_ne!(elsewhere.account_url().await.unwrap(), account);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_that_never_answers_is_a_transient_error() {
    let silent = SilentCa::start();
    let mut settings = settings(
        "silent",
        &format!("https://{}/dir", silent.addr),
        &TestPki::new().ca_pem(),
        ChallengeSettings::Http01 {
            listen: loopback(free_port()),
        },
    );
    settings.request_timeout = Duration::from_secs(1);
    let connector = connector(settings).await;

    // Generous bound: without request timeouts this would hang forever.
    let outcome = tokio::time::timeout(
        Duration::from_secs(60),
        connector.issue(&request_for(vec![Identifier::Dns("silent.test".into())])),
    )
    .await
    .expect("the issue call returns instead of hanging");
    let err = outcome.expect_err("nothing can be issued");
    assert_eq!(err.class, ErrorClass::Transient, "{err}");
    assert!(err.message.contains("no complete answer"), "{err}");

    let health = tokio::time::timeout(Duration::from_secs(60), connector.health())
        .await
        .expect("health returns");
    assert_eq!(health.expect_err("down").class, ErrorClass::Transient);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http01_webroot_writes_then_removes_the_token_file() {
    let http_port = free_port();
    let webroot = tempfile::tempdir().unwrap();
    let server =
        acme_support::serve_directory(loopback(http_port), webroot.path().to_owned()).await;
    let pebble = Pebble::start(http_port, PebbleDns::ChallTestSrv);
    let connector = connector(settings(
        "webroot",
        &pebble.directory_url,
        &pebble.root_pem,
        ChallengeSettings::Http01Webroot {
            webroot: webroot.path().to_owned(),
        },
    ))
    .await;

    let issued = connector
        .issue(&request_for(vec![Identifier::Dns("webroot.test".into())]))
        .await
        .unwrap();
    assert_eq!(dns_names(&leaf_of(&issued.chain_pem)), vec!["webroot.test"]);
    let tokens = webroot.path().join(".well-known/acme-challenge");
    let left: Vec<_> = std::fs::read_dir(&tokens).unwrap().collect();
    assert!(left.is_empty(), "token files left behind: {left:?}");
    server.abort();
}

/// `_acme-challenge` TXT values `server` answers for `name`.
async fn txt_values(server: SocketAddr, name: &str) -> Vec<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut query = Message::query();
    query.add_query(Query::query(
        Name::from_ascii(name).expect("name"),
        RecordType::TXT,
    ));
    let bytes = query.to_vec().expect("encode");
    let mut stream = tokio::net::TcpStream::connect(server)
        .await
        .expect("connect");
    stream
        .write_all(&(bytes.len() as u16).to_be_bytes())
        .await
        .expect("send");
    stream.write_all(&bytes).await.expect("send");
    let mut length = [0u8; 2];
    stream.read_exact(&mut length).await.expect("receive");
    let mut answer = vec![0u8; u16::from_be_bytes(length) as usize];
    stream.read_exact(&mut answer).await.expect("receive");
    Message::from_vec(&answer)
        .expect("answer")
        .answers
        .iter()
        .filter_map(|rr| match &rr.data {
            RData::TXT(txt) => Some(String::from_utf8_lossy(&txt.txt_data.concat()).into_owned()),
            _ => None,
        })
        .collect()
}

fn dns01(bind: &Bind, secret: &str) -> ChallengeSettings {
    let mut dns = Dns01Settings::new(
        bind.addr,
        vec![bind.zone.clone()],
        bind.key_name.clone(),
        Secret::new(secret),
    );
    dns.resolvers = vec![bind.addr];
    dns.propagation_timeout = Duration::from_secs(20);
    ChallengeSettings::Dns01(dns)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns01_issues_a_wildcard_through_bind_and_removes_the_record() {
    let bind = Bind::start("acme.test");
    let pebble = Pebble::start(free_port(), PebbleDns::Server(bind.addr));
    let connector = connector(settings(
        "bind",
        &pebble.directory_url,
        &pebble.root_pem,
        dns01(&bind, &bind.secret),
    ))
    .await;

    let issued = connector
        .issue(&request_for(vec![
            Identifier::Dns("*.acme.test".into()),
            Identifier::Dns("acme.test".into()),
        ]))
        .await
        .unwrap();
    let mut names = dns_names(&leaf_of(&issued.chain_pem));
    names.sort();
    assert_eq!(names, vec!["*.acme.test", "acme.test"]);
    assert_eq!(
        txt_values(bind.addr, "_acme-challenge.acme.test.").await,
        Vec::<String>::new(),
        "the challenge record is removed after the order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns01_failures_say_what_went_wrong() {
    let bind = Bind::start("acme.test");
    let pebble = Pebble::start(free_port(), PebbleDns::Server(bind.addr));

    // A key the primary does not know: refused, and retrying will not help.
    let wrong = connector(settings(
        "bind",
        &pebble.directory_url,
        &pebble.root_pem,
        dns01(&bind, "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXkhIQ=="),
    ))
    .await;
    let err = wrong
        .issue(&request_for(vec![Identifier::Dns(
            "refused.acme.test".into(),
        )]))
        .await
        .expect_err("the update is refused");
    assert_eq!(err.class, ErrorClass::Permanent, "{err}");
    assert!(err.message.contains("refused the update"), "{err}");
    assert!(
        !err.message.contains("d3Jvbmcta2V5"),
        "the secret leaked: {err}"
    );

    // The record never shows at the resolver (another server for the zone).
    let elsewhere = Bind::start("acme.test");
    let mut settings = settings(
        "bind",
        &pebble.directory_url,
        &pebble.root_pem,
        dns01(&bind, &bind.secret),
    );
    if let ChallengeSettings::Dns01(dns) = &mut settings.challenge {
        dns.resolvers = vec![elsewhere.addr];
        dns.propagation_timeout = Duration::from_secs(2);
    }
    let stale = connector(settings).await;
    let err = stale
        .issue(&request_for(vec![Identifier::Dns("slow.acme.test".into())]))
        .await
        .expect_err("the record never propagates");
    assert_eq!(err.class, ErrorClass::Transient, "{err}");
    assert!(err.message.contains("not visible"), "{err}");
    assert!(
        err.message.contains("_acme-challenge.slow.acme.test"),
        "{err}"
    );
    assert_eq!(
        txt_values(bind.addr, "_acme-challenge.slow.acme.test.").await,
        Vec::<String>::new(),
        "the record is removed even when the order fails"
    );
}

/// Against the stub (pebble 2.4 has no ARI): the window comes from the
/// directory's `renewalInfo` endpoint, asked with the RFC 9773 identifier.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ari_renewal_window_comes_from_the_directorys_renewal_info() {
    let stub = AcmeStub::start().await;
    let pki = TestPki::new();
    let connector = connector(settings(
        "stub",
        &stub.directory_url,
        &pki.ca_pem(),
        ChallengeSettings::Http01 {
            listen: loopback(free_port()),
        },
    ))
    .await;

    let window = connector
        .renewal_info(&pki.leaf.to_der().unwrap())
        .await
        .unwrap()
        .expect("the stub offers ARI");
    assert_eq!(window.start.to_rfc3339(), "2030-01-01T00:00:00+00:00");
    assert_eq!(window.end.to_rfc3339(), "2030-01-02T00:00:00+00:00");
    let retry = window.retry_after.expect("Retry-After is passed on");
    assert!(retry > Duration::from_secs(21000) && retry <= Duration::from_secs(21600));
    assert_eq!(
        stub.log.lock().unwrap().renewal_queries,
        vec![pki.leaf_ari_id()]
    );
}

/// Against the stub (pebble 2.4 has neither profiles nor ARI): newOrder
/// carries the profile and the replaced certificate's identifier, and the
/// stub's `rateLimited` with `Retry-After: 120` tells the scheduler when to
/// come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_carry_the_profile_and_the_replaced_certificate() {
    let stub = AcmeStub::start().await;
    let pki = TestPki::new();
    let mut settings = settings(
        "stub",
        &stub.directory_url,
        &pki.ca_pem(),
        ChallengeSettings::Http01 {
            listen: loopback(free_port()),
        },
    );
    settings.profile = Some("shortlived".into());
    let connector = connector(settings).await;

    let mut request = request_for(vec![Identifier::Dns("renew.test".into())]);
    request.replaces = Some(pki.leaf.to_der().unwrap());
    let err = connector.issue(&request).await.expect_err("rate limited");
    match err.class {
        ErrorClass::RetryAfter(wait) => {
            assert!(
                wait > Duration::from_secs(100) && wait <= Duration::from_secs(120),
                "{wait:?}"
            )
        }
        other => panic!("a rate limit must say when to retry, got {other:?}: {err}"),
    }

    request.profile = Some("classic".into());
    request.replaces = None;
    connector.issue(&request).await.expect_err("rate limited");

    let log = stub.log.lock().unwrap();
    assert_eq!(log.accounts, 1, "one account for both orders");
    let [first, second] = log.new_orders.as_slice() else {
        panic!("expected two orders, saw {:?}", log.new_orders);
    };
    assert_eq!(first["profile"], "shortlived");
    assert_eq!(first["replaces"], pki.leaf_ari_id());
    assert_eq!(first["identifiers"][0]["value"], "renew.test");
    assert_eq!(second["profile"], "classic", "the request's profile wins");
    assert!(second.get("replaces").is_none());
}

/// A loopback "CA" answering every request with `answer`; the counter is how
/// many connections it accepted.
async fn answering(answer: String) -> (u16, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (port, accepted)
}

fn no_loopback() -> AddressGuard {
    AddressGuard::new(|ip| {
        if ip.is_loopback() {
            Err("a loopback address (127.0.0.0/8)".into())
        } else {
            Ok(())
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_address_guard_is_applied_when_connecting_to_the_ca() {
    let directory = r#"{"newNonce":"http://127.0.0.1:1/n","newAccount":"http://127.0.0.1:1/a","newOrder":"http://127.0.0.1:1/o"}"#;
    let (port, hits) = answering(format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{directory}",
        directory.len()
    ))
    .await;
    let url = format!("http://localhost:{port}/dir-secret?token=abc123");

    // Denied: a name (not a literal) resolving to loopback is never connected to.
    let denied = TimeoutClient::guarded(None, Duration::from_secs(5), no_loopback()).unwrap();
    let err = denied.fetch_directory(&url).await.unwrap_err().to_string();
    assert!(err.contains("localhost resolves to"), "{err}");
    assert!(err.contains("not allowed: a loopback address"), "{err}");
    assert!(
        !err.contains("dir-secret") && !err.contains("abc123"),
        "{err}"
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the denied CA was connected to"
    );

    // Through the connector: a permanent error naming the host.
    let mut denied = settings(
        "guarded",
        &url,
        &TestPki::new().ca_pem(),
        ChallengeSettings::Http01 {
            listen: loopback(free_port()),
        },
    );
    denied.address_guard = no_loopback();
    let err = connector(denied).await.health().await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent, "{err}");
    assert!(err.message.contains("localhost resolves to"), "{err}");
    assert!(err.message.contains("not allowed"), "{err}");
    assert!(!err.message.contains("dir-secret"), "{err}");
    // An IP-address host is refused before any connection, too.
    let literal = format!("http://127.0.0.1:{port}/dir");
    let err = TimeoutClient::guarded(None, Duration::from_secs(5), no_loopback())
        .unwrap()
        .fetch_directory(&literal)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("the address 127.0.0.1 is not allowed"),
        "{err}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0);

    // Allowed: the same name is fetched.
    let only_private = AddressGuard::new(|ip| match ip {
        IpAddr::V4(v4) if v4.is_private() => Err("a private address".into()),
        _ => Ok(()),
    });
    TimeoutClient::guarded(None, Duration::from_secs(5), only_private)
        .unwrap()
        .fetch_directory(&url)
        .await
        .unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirecting_directory_is_not_followed() {
    let (target, target_hits) =
        answering("HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}".into())
            .await;
    let (port, _) = answering(format!(
        "HTTP/1.1 301 Moved Permanently\r\nlocation: http://127.0.0.1:{target}/dir\r\n\
         content-length: 0\r\nconnection: close\r\n\r\n"
    ))
    .await;
    let client = TimeoutClient::new(None, Duration::from_secs(5)).unwrap();
    let err = client
        .fetch_directory(&format!("http://127.0.0.1:{port}/dir"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("301"), "{err}");
    assert_eq!(
        target_hits.load(Ordering::SeqCst),
        0,
        "the redirect was followed"
    );
}

/// A [`StateStore`] that records every order URL saved and says when the
/// first one is.
#[derive(Default)]
struct RecordingState {
    inner: MemoryState,
    orders_saved: std::sync::Mutex<Vec<String>>,
    order_saved: tokio::sync::Notify,
    /// Refuse removals, as a crash between download and removal would.
    keep: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl StateStore for RecordingState {
    async fn load(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        self.inner.load(key).await
    }

    async fn save(&self, key: &str, value: &[u8]) -> Result<(), String> {
        self.inner.save(key, value).await?;
        if key.starts_with("acme_order_") {
            let saved: serde_json::Value = serde_json::from_slice(value).expect("JSON");
            let url = saved["order_url"].as_str().expect("order_url").to_owned();
            self.orders_saved.lock().expect("orders lock").push(url);
            self.order_saved.notify_one();
        }
        Ok(())
    }

    async fn remove(&self, key: &str) -> Result<(), String> {
        if self.keep.load(Ordering::SeqCst) {
            return Err("the store is down".into());
        }
        self.inner.remove(key).await
    }
}

impl RecordingState {
    fn orders(&self) -> Vec<String> {
        self.orders_saved.lock().expect("orders lock").clone()
    }
}

fn keyed_request(
    identifiers: Vec<Identifier>,
    key: &str,
) -> (openssl::pkey::PKey<openssl::pkey::Private>, IssueRequest) {
    let (private, csr) = key_and_csr(&identifiers).expect("csr");
    let mut request = IssueRequest::new(csr, identifiers);
    request.idempotency_key = Some(key.to_owned());
    (private, request)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issue_cut_short_after_ordering_is_continued_not_ordered_again() {
    let http_port = free_port();
    let pebble = Pebble::start(http_port, PebbleDns::ChallTestSrv);
    let state = Arc::new(RecordingState::default());
    let connector = open(
        settings(
            "pebble",
            &pebble.directory_url,
            &pebble.root_pem,
            ChallengeSettings::Http01 {
                listen: loopback(http_port),
            },
        ),
        state.clone(),
    )
    .await
    .unwrap();
    let (private, request) =
        keyed_request(vec![Identifier::Dns("crash.test".into())], "renewal-42");

    // The daemon dies (the future is dropped) just after the order is saved.
    tokio::select! {
        outcome = connector.issue(&request) => panic!("the issue finished first: {outcome:?}"),
        () = state.order_saved.notified() => {}
    }
    let first = state.orders();
    assert_eq!(first.len(), 1, "{first:?}");
    let key = order_state_key("renewal-42");
    assert!(state.load(&key).await.unwrap().is_some());

    let issued = connector.issue(&request).await.unwrap();
    assert_eq!(state.orders(), first, "a second order was placed");
    assert_eq!(
        issued
            .ca_reference
            .as_deref()
            .map(|r| r.starts_with("https://127.0.0.1")),
        Some(true)
    );
    let leaf = leaf_of(&issued.chain_pem);
    assert!(
        leaf.public_key().unwrap().public_eq(&private),
        "not the CSR's key"
    );
    assert_eq!(dns_names(&leaf), vec!["crash.test"]);
    // Kept until the caller has recorded the certificate: a crash before
    // that fetches the same certificate again.
    assert!(state.load(&key).await.unwrap().is_some());
    let again = connector.issue(&request).await.unwrap();
    assert_eq!(again.chain_pem, issued.chain_pem);
    assert_eq!(state.orders(), first, "a second order was placed");
    connector.recorded("renewal-42").await;
    assert_eq!(
        state.load(&key).await.unwrap(),
        None,
        "the saved order is kept after the caller recorded it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_or_unknown_saved_order_is_replaced_by_a_new_one() {
    let http_port = free_port();
    let pebble = Pebble::start(http_port, PebbleDns::ChallTestSrv);
    let state = Arc::new(RecordingState::default());
    // A responder on a port pebble does not validate against: the
    // challenge fails and the CA declares the order invalid.
    let mut unreachable = settings(
        "pebble",
        &pebble.directory_url,
        &pebble.root_pem,
        ChallengeSettings::Http01 {
            listen: loopback(free_port()),
        },
    );
    unreachable.order_deadline = Duration::from_secs(60);
    let failing = open(unreachable, state.clone()).await.unwrap();
    let (private, request) =
        keyed_request(vec![Identifier::Dns("invalid.test".into())], "renewal-7");
    let err = failing.issue(&request).await.expect_err("validation fails");
    assert!(err.message.contains("validation"), "{err}");
    let first = state.orders();
    assert_eq!(first.len(), 1, "{first:?}");
    drop(failing);

    let working = open(
        settings(
            "pebble",
            &pebble.directory_url,
            &pebble.root_pem,
            ChallengeSettings::Http01 {
                listen: loopback(http_port),
            },
        ),
        state.clone(),
    )
    .await
    .unwrap();
    let issued = working.issue(&request).await.unwrap();
    let orders = state.orders();
    assert_eq!(orders.len(), 2, "{orders:?}");
    assert_ne!(orders[0], orders[1], "the invalid order was reused");
    let leaf = leaf_of(&issued.chain_pem);
    assert!(leaf.public_key().unwrap().public_eq(&private));

    // An order the CA has never heard of (404) is replaced as well.
    let base = pebble.directory_url.trim_end_matches("/dir");
    let gone = serde_json::json!({
        "directory_url": pebble.directory_url,
        "identifiers": ["dns:gone.test"],
        "order_url": format!("{base}/my-order/no-such-order"),
    });
    state
        .inner
        .save(&order_state_key("renewal-8"), gone.to_string().as_bytes())
        .await
        .unwrap();
    let (_, request) = keyed_request(vec![Identifier::Dns("gone.test".into())], "renewal-8");
    working.issue(&request).await.unwrap();
    assert_eq!(
        state.orders().len(),
        3,
        "a new order replaces the unknown one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_downloaded_but_not_recorded_is_fetched_again_only_for_the_same_key() {
    let http_port = free_port();
    let pebble = Pebble::start(http_port, PebbleDns::ChallTestSrv);
    let state = Arc::new(RecordingState::default());
    let connector = open(
        settings(
            "pebble",
            &pebble.directory_url,
            &pebble.root_pem,
            ChallengeSettings::Http01 {
                listen: loopback(http_port),
            },
        ),
        state.clone(),
    )
    .await
    .unwrap();
    let names = vec![Identifier::Dns("downloaded.test".into())];
    let (_, request) = keyed_request(names.clone(), "renewal-9");

    // The certificate arrives but the saved order cannot be removed.
    state.keep.store(true, Ordering::SeqCst);
    let first = connector.issue(&request).await.unwrap();
    // A retry with the same CSR gets the same certificate, no new order.
    let again = connector.issue(&request).await.unwrap();
    assert_eq!(
        leaf_of(&again.chain_pem).to_der().unwrap(),
        leaf_of(&first.chain_pem).to_der().unwrap()
    );
    assert_eq!(state.orders().len(), 1);

    // A retry with another key must not get a certificate for the old one.
    state.keep.store(false, Ordering::SeqCst);
    let (private, other) = keyed_request(names, "renewal-9");
    let err = connector.issue(&other).await.expect_err("another key");
    assert!(err.is_retryable(), "{err}");
    assert!(err.message.contains("finalized with another key"), "{err}");
    let issued = connector.issue(&other).await.unwrap();
    assert!(
        leaf_of(&issued.chain_pem)
            .public_key()
            .unwrap()
            .public_eq(&private)
    );
    assert_eq!(
        state.orders().len(),
        2,
        "the next attempt places a new order"
    );
}
