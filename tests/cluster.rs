//! Three daemons on one SurrealDB server, as an organisation that outgrew
//! one machine runs Certkeeper: real `certkeeper` processes sharing the
//! store and its key, issuing from Debian's pebble (HTTP-01 answered from a
//! webroot that one nginx serves, so whichever daemon orders, the challenge
//! is found), alerting to one webhook receiver.
//!
//! What is asserted is what an operator would check: every certificate is
//! issued once and renewed once (pebble's own count of orders and of
//! certificates issued), every
//! event reaches the receiver once while all daemons run, a daemon killed
//! with SIGKILL in the middle of a renewal wave leaves nothing undone (the
//! others finish within the lease time, and no order is placed twice), and
//! a daemon frozen with SIGSTOP past its lease (a partition) has its late
//! write refused by the lease's epoch when it wakes, and says so in its log.
//! A network scan's shards are shared by the three daemons, and the shard a
//! daemon was scanning when it was killed is scanned by another.

#![allow(clippy::unwrap_used)]

#[path = "../connectors/tests/acme_support/mod.rs"]
#[allow(dead_code, unreachable_pub, unused_imports)]
mod acme_support;
mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::nginx::Nginx;
use common::surreal::{Server, make_key};
use common::{Daemon, eventually, free_port};
use serde_json::Value;

const TOKEN: &str = "cluster-test-token-0123456789abcdef";
/// Lease on a managed certificate: how long a dead daemon's work waits.
const LEASE_SECONDS: u64 = 6;

/// Managed certificates in the estate (`CERTKEEPER_CLUSTER_CERTS`).
fn certificates() -> usize {
    std::env::var("CERTKEEPER_CLUSTER_CERTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

/// nginx serving `root` over plain HTTP on `port`: the webroot pebble
/// fetches HTTP-01 tokens from.
fn webroot(dir: &Path, root: &Path, port: u16) -> Nginx {
    std::fs::create_dir_all(root).unwrap();
    let servers = format!(
        "server {{ listen 127.0.0.1:{port}; root {}; }}\n",
        root.display()
    );
    Nginx::start(dir, &servers, &[("127.0.0.1", port)])
}

/// A webhook receiver: counts each event id (`Idempotency-Key`) it is sent.
#[derive(Default)]
struct Receiver {
    seen: Mutex<HashMap<String, usize>>,
}

impl Receiver {
    fn start() -> (Arc<Receiver>, u16) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let receiver = Arc::new(Receiver::default());
        let r = receiver.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let r = r.clone();
                std::thread::spawn(move || r.serve(stream));
            }
        });
        (receiver, port)
    }

    fn serve(&self, stream: TcpStream) {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut stream = stream;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let (mut length, mut key) = (0usize, None);
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 {
                    return;
                }
                let header = header.trim_end();
                if header.is_empty() {
                    break;
                }
                let (name, value) = header.split_once(':').unwrap_or((header, ""));
                match name.to_ascii_lowercase().as_str() {
                    "content-length" => length = value.trim().parse().unwrap_or(0),
                    "idempotency-key" => key = Some(value.trim().to_owned()),
                    _ => {}
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            if let Some(key) = key {
                *self.seen.lock().unwrap().entry(key).or_default() += 1;
            }
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
        }
    }

    /// Event ids containing `kind`, with how often each came.
    fn counts(&self, kind: &str) -> HashMap<String, usize> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.contains(kind))
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }
}

/// How many orders pebble has placed, and how many certificates it has
/// issued, from its own log.
fn pebble_counts(pebble: &acme_support::Pebble) -> (usize, usize) {
    let log = std::fs::read_to_string(&pebble.log).unwrap_or_default();
    (
        log.matches("Added order").count(),
        log.matches("Issued certificate serial").count(),
    )
}

/// The managed certificates as one daemon's API lists them, by name.
fn managed(daemon: &Daemon) -> HashMap<String, Value> {
    let (status, body) = common::http(
        "GET",
        &daemon.url("/api/v1/managed"),
        None,
        &[("Authorization", &format!("Bearer {TOKEN}"))],
    );
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap().to_owned(), m.clone()))
        .collect()
}

fn all_at_generation(daemon: &Daemon, n: usize, generation: u64) -> bool {
    let managed = managed(daemon);
    managed.len() == n
        && managed
            .values()
            .all(|m| m["generation"] == generation && m["operation"].is_null())
}

#[test]
fn three_daemons_renew_each_certificate_once_and_survive_kill_and_stop() {
    let n = certificates();
    let server = Server::start();
    let shared = tempfile::tempdir().unwrap();
    let key = shared.path().join("store.key");
    make_key(&key);
    let http_port = free_port();
    let root = shared.path().join("webroot");
    let _nginx = webroot(&shared.path().join("nginx"), &root, http_port);
    let pebble = acme_support::Pebble::start(http_port, acme_support::PebbleDns::ChallTestSrv);
    let roots = shared.path().join("pebble-roots.pem");
    std::fs::write(&roots, &pebble.root_pem).unwrap();
    let (receiver, hook_port) = Receiver::start();
    let deployed = shared.path().join("deployed");

    let mut certificates = String::new();
    for i in 0..n {
        let dir = deployed.join(format!("c{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        certificates.push_str(&format!(
            "[[certificate]]\nname = \"c{i}\"\nidentifiers = [\"c{i}.cluster.test\"]\n\
             connector = \"pebble\"\n[[certificate.deploy]]\nfullchain = \"{d}/fullchain.pem\"\n\
             key = \"{d}/key.pem\"\n",
            d = dir.display()
        ));
    }
    // One more, whose deployment takes a while (its reload hook sleeps and
    // records the daemon running it), to freeze a daemon in the middle of it.
    let marks = shared.path().join("marks");
    std::fs::create_dir_all(&marks).unwrap();
    let slow = deployed.join("slow");
    std::fs::create_dir_all(&slow).unwrap();
    certificates.push_str(&format!(
        "[[certificate]]\nname = \"slow\"\nidentifiers = [\"slow.cluster.test\"]\n\
         connector = \"pebble\"\n[[certificate.deploy]]\nfullchain = \"{d}/fullchain.pem\"\n\
         key = \"{d}/key.pem\"\nreload = [\"sh\", \"-c\", \"[ -e {go} ] && touch {m}/$PPID; sleep 1\"]\n",
        d = slow.display(),
        m = marks.display(),
        go = shared.path().join("go").display(),
    ));
    let mut daemons: Vec<Daemon> = (0..3)
        .map(|_| {
            let daemon = Daemon::new("");
            std::fs::write(
                &daemon.config,
                format!(
                    "[api]\nlisten = \"127.0.0.1:{port}\"\ntoken = \"{TOKEN}\"\n\n{store}\n\
                     [scheduler]\nlease_seconds = {LEASE_SECONDS}\n\n\
                     [renewal]\ncheck_interval_seconds = 1\nconcurrency = 16\n\n\
                     [[connector]]\nname = \"pebble\"\ntype = \"acme\"\n\
                     directory_url = \"{dir}\"\nroots_file = \"{roots}\"\n\
                     contacts = [\"ops@example.com\"]\nrequest_timeout_seconds = 10\n\
                     [connector.challenge]\ntype = \"webroot\"\npath = \"{root}\"\n\n\
                     [notifier.hook]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{hook_port}/hook\"\n\
                     secret = \"whsec-cluster-0123456789\"\n\n\
                     [alerts]\ncheck_interval_seconds = 1\n\n\
                     [[alerts.route]]\nevents = [\"certificate_issued\", \"renewal_succeeded\"]\n\
                     channels = [\"hook\"]\n\n{certificates}",
                    port = daemon.port,
                    store = server.store_table(&key),
                    dir = pebble.directory_url,
                    roots = roots.display(),
                    root = root.display(),
                ),
            )
            .unwrap();
            daemon
        })
        .collect();
    for daemon in &mut daemons {
        daemon.start();
    }
    let total = n + 1;
    let logs = |daemons: &[Daemon]| {
        daemons
            .iter()
            .map(|d| d.log())
            .collect::<Vec<_>>()
            .join("\n--- next daemon ---\n")
    };

    // Issuance: every certificate once, whichever daemon took it.
    let started = Instant::now();
    eventually(Duration::from_secs(300), || {
        all_at_generation(&daemons[0], total, 1).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "issuance did not finish: {:?}\n{}",
            managed(&daemons[0]),
            logs(&daemons)
        )
    });
    let issued_in = started.elapsed();
    assert_eq!(
        pebble_counts(&pebble),
        (total, total),
        "one order and one certificate per managed certificate"
    );
    for daemon in &daemons[1..] {
        assert!(all_at_generation(daemon, total, 1), "one view of the store");
    }
    // Every issuance event delivered, once.
    let delivered = eventually(Duration::from_secs(60), || {
        let counts = receiver.counts("issued:");
        (counts.len() == total).then_some(counts)
    })
    .unwrap_or_else(|| {
        panic!(
            "issuance events missing: {} of {total}\n{}",
            receiver.counts("issued:").len(),
            logs(&daemons)
        )
    });
    let twice: Vec<_> = delivered.iter().filter(|(_, c)| **c > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    let drivers = daemons
        .iter()
        .filter(|d| d.log().contains("certificate issued"))
        .count();
    eprintln!(
        "{total} certificates issued by 3 daemons in {:.1} s ({drivers} daemons issued)",
        issued_in.as_secs_f64()
    );

    // A renewal wave, and SIGKILL of one daemon in the middle of it.
    let wave = Instant::now();
    daemons[1].cli_ok(&["renew", "--all"]);
    eventually(Duration::from_secs(120), || {
        let managed = managed(&daemons[1]);
        let done = managed.values().filter(|m| m["generation"] == 2).count();
        (done >= total / 4).then_some(())
    })
    .unwrap_or_else(|| panic!("the renewal wave did not start\n{}", logs(&daemons)));
    daemons[0].signal("KILL");
    daemons[0].wait_exit(Duration::from_secs(10));
    let killed_at = Instant::now();
    eventually(Duration::from_secs(300), || {
        all_at_generation(&daemons[1], total, 2).then_some(())
    })
    .unwrap_or_else(|| panic!("the renewal wave did not finish\n{}", logs(&daemons)));
    for daemon in &daemons[1..] {
        for line in daemon.log().lines().filter(|l| l.contains("ERROR")) {
            eprintln!("logged by a surviving daemon: {line}");
        }
    }
    eprintln!(
        "renewal wave of {total} in {:.1} s; {:.1} s after the SIGKILL",
        wave.elapsed().as_secs_f64(),
        killed_at.elapsed().as_secs_f64()
    );
    // Each renewed exactly once: one more certificate each at the CA, the
    // killed daemon's orders resumed from their saved URLs by the others.
    // ACME has no client-chosen idempotency key, so an order the CA created
    // in the instant before the killed daemon saved its URL is abandoned
    // unfinalised (no certificate); at most one per order in flight.
    let (orders, issued) = pebble_counts(&pebble);
    assert_eq!(issued, 2 * total, "a certificate issued twice");
    let abandoned = orders - 2 * total;
    assert!(abandoned <= 16, "{abandoned} orders abandoned");
    eprintln!("{abandoned} orders abandoned unfinalised by the SIGKILL");
    // Every renewal reached the receiver; a repeat only for what was in
    // flight to it when the daemon died (at-least-once, deduplicated by
    // the receiver through Idempotency-Key).
    // A claim the killed daemon held comes due again after its lease (the
    // webhook's is 45 s).
    let renewed = eventually(Duration::from_secs(120), || {
        let counts = receiver.counts("renewed:");
        (counts.len() == total).then_some(counts)
    })
    .unwrap_or_else(|| {
        panic!(
            "renewal events missing: {} of {total}\n{}",
            receiver.counts("renewed:").len(),
            logs(&daemons)
        )
    });
    let repeats: usize = renewed.values().map(|c| c - 1).sum();
    assert!(repeats <= 16, "{repeats} repeated deliveries");
    eprintln!("{repeats} renewal events delivered again after the SIGKILL");

    // A partition: freeze the daemon deploying `slow` past its lease. The
    // other takes over with a new epoch and finishes; the frozen one, woken,
    // finds its write refused and logs it.
    std::fs::write(shared.path().join("go"), "").unwrap();
    daemons[1].cli_ok(&["renew", "slow"]);
    let frozen_pid: u32 = eventually(Duration::from_secs(60), || {
        let entry = std::fs::read_dir(&marks).ok()?.flatten().next()?;
        entry.file_name().to_str()?.parse().ok()
    })
    .unwrap_or_else(|| panic!("slow was never deployed\n{}", logs(&daemons)));
    let frozen = daemons[1..]
        .iter()
        .position(|d| d.pid() == frozen_pid)
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("{frozen_pid} is not a running daemon"));
    let other = if frozen == 1 { 2 } else { 1 };
    daemons[frozen].signal("STOP");
    let finished = eventually(Duration::from_secs(60), || {
        let m = managed(&daemons[other]).remove("slow")?;
        (m["generation"] == 3 && m["operation"].is_null()).then_some(m)
    });
    daemons[frozen].signal("CONT");
    let finished =
        finished.unwrap_or_else(|| panic!("slow was not taken over\n{}", logs(&daemons)));
    eventually(Duration::from_secs(30), || {
        daemons[frozen]
            .log()
            .contains("late write after losing the lease was refused")
            .then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "the woken daemon did not report its refused write\n{}",
            daemons[frozen].log()
        )
    });
    let after = managed(&daemons[frozen]).remove("slow").unwrap();
    assert_eq!(
        after["fingerprint"], finished["fingerprint"],
        "the takeover stands"
    );
    assert_eq!(after["generation"], 3);
    assert_eq!(
        pebble_counts(&pebble),
        (orders + 1, issued + 1),
        "the takeover deployed the frozen daemon's certificate, ordering nothing"
    );

    // Three daemons appended to one audit chain all along: it is intact,
    // and holds every issuance (201 + 201 + 1) exactly once.
    for daemon in [&daemons[1], &daemons[2]] {
        let (status, verify) = common::http(
            "GET",
            &daemon.url("/api/v1/audit/verify"),
            None,
            &[("Authorization", &format!("Bearer {TOKEN}"))],
        );
        assert_eq!(status, 200, "{verify}");
        let verify: Value = serde_json::from_str(&verify).unwrap();
        assert_eq!(verify["intact"], true, "{verify}");
    }
    let mut issues = 0;
    let mut after = 0;
    loop {
        let (_, page) = common::http(
            "GET",
            &daemons[2].url(&format!("/api/v1/audit?limit=1000&after={after}")),
            None,
            &[("Authorization", &format!("Bearer {TOKEN}"))],
        );
        let page: Value = serde_json::from_str(&page).unwrap();
        let items = page["items"].as_array().unwrap();
        issues += items
            .iter()
            .filter(|e| e["action"] == "certificate_issue")
            .count();
        match items.iter().filter_map(|e| e["seq"].as_u64()).max() {
            Some(last) if items.len() == 1000 => after = last,
            _ => break,
        }
    }
    assert_eq!(issues, issued + 1, "one audit entry per certificate issued");
    drop(server);
}

/// Listeners that accept and never answer, holding each connection: a
/// probe of one waits out its handshake timeout, so a shard holding some
/// takes seconds, long enough to kill its daemon in the middle of it.
fn tarpits(addresses: &[String], port: u16) -> Vec<std::thread::JoinHandle<()>> {
    addresses
        .iter()
        .map(|address| {
            let listener = TcpListener::bind((address.as_str(), port)).unwrap();
            std::thread::spawn(move || {
                let mut held = Vec::new();
                for stream in listener.incoming().flatten() {
                    held.push(stream);
                }
            })
        })
        .collect()
}

/// The shards of the `estate` job's latest run, as `certkeeper jobs
/// --shards` shows them.
fn shards(daemon: &Daemon) -> Vec<Value> {
    daemon
        .cli_json(&["jobs", "--shards", "estate"])
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn three_daemons_share_a_network_scan_and_a_killed_daemons_shards_are_rescanned() {
    let server = Server::start();
    let shared = tempfile::tempdir().unwrap();
    let key = shared.path().join("store.key");
    make_key(&key);
    let port = free_port();
    // Eight shards of eight addresses: six nginx endpoints with a
    // certificate each, and two tarpits that make the shard take ~2 s.
    let (shards_n, per_shard, live) = (8, 8, 6);
    let certs = shared.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let mut servers = String::new();
    let mut listening = Vec::new();
    let mut targets = Vec::new();
    let mut pits = Vec::new();
    for s in 0..shards_n {
        for i in 0..per_shard {
            if i < live {
                let n = s * live + i;
                let address = format!("127.0.2.{}", n + 1);
                let cn = format!("host{n}.scan.test");
                common::self_signed(&certs, &cn, 90);
                servers.push_str(&format!(
                    "server {{ listen {address}:{port} ssl; ssl_certificate {d}/{cn}.pem; \
                     ssl_certificate_key {d}/{cn}.key; }}\n",
                    d = certs.display()
                ));
                listening.push(address.clone());
                targets.push(address);
            } else {
                let address = format!("127.0.3.{}", s * per_shard + i + 1);
                pits.push(address.clone());
                targets.push(address);
            }
        }
    }
    let listening_at: Vec<(&str, u16)> = listening.iter().map(|a| (a.as_str(), port)).collect();
    let _nginx = Nginx::start(&shared.path().join("nginx"), &servers, &listening_at);
    let _tarpits = tarpits(&pits, port);
    let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();

    let mut daemons: Vec<Daemon> = (0..3)
        .map(|i| {
            let daemon = Daemon::new("");
            std::fs::write(
                &daemon.config,
                format!(
                    "[api]\nlisten = \"127.0.0.1:{api}\"\ntoken = \"{TOKEN}\"\n\n{store}\n\
                     [scheduler]\nlease_seconds = {LEASE_SECONDS}\nshard_workers = 1\nholder = \"d{i}\"\n\n\
                     [[discovery.network]]\nname = \"estate\"\nschedule = \"0 0 0 1 1 * 2099\"\n\
                     ports = [{port}]\ntimeout_seconds = 1\nshard_size = {per_shard}\n\
                     targets = [{targets}]\n",
                    api = daemon.port,
                    store = server.store_table(&key),
                    targets = targets.join(", "),
                ),
            )
            .unwrap();
            daemon
        })
        .collect();
    for daemon in &mut daemons {
        daemon.start();
    }
    let logs = |daemons: &[Daemon]| {
        daemons
            .iter()
            .map(|d| d.log())
            .collect::<Vec<_>>()
            .join("\n--- next daemon ---\n")
    };

    let started = Instant::now();
    daemons[0].cli_ok(&["jobs", "--run-now", "estate"]);
    // Kill a daemon while it scans a shard.
    let (victim, held) = eventually(Duration::from_secs(60), || {
        let shards = shards(&daemons[1]);
        shards.iter().find_map(|s| {
            let holder = s["holder"].as_str()?;
            (s["done"] == false && holder != "d1").then(|| {
                let i: usize = holder[1..].parse().unwrap();
                (i, s["part"].as_u64().unwrap())
            })
        })
    })
    .unwrap_or_else(|| panic!("no shard was taken\n{}", logs(&daemons)));
    daemons[victim].signal("KILL");
    daemons[victim].wait_exit(Duration::from_secs(10));
    let killed_at = Instant::now();
    let survivor = if victim == 1 { 2 } else { 1 };

    // The run finishes on the others, the killed daemon's shard rescanned.
    let job = eventually(Duration::from_secs(120), || {
        let jobs = daemons[survivor].cli_json(&["jobs"]);
        let job = jobs
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["name"] == "estate")?
            .clone();
        (job["runs"].as_i64() >= Some(1)).then_some(job)
    })
    .unwrap_or_else(|| panic!("the scan did not finish\n{}", logs(&daemons)));
    assert_eq!(job["failures"], 0, "{job}");
    let finished = started.elapsed();
    let after_kill = killed_at.elapsed();
    let shards = shards(&daemons[survivor]);
    assert_eq!(shards.len(), shards_n, "{shards:?}");
    assert!(shards.iter().all(|s| s["done"] == true), "{shards:?}");
    let retaken = &shards[held as usize];
    assert_eq!(retaken["attempts"], 2, "{retaken}");
    assert_ne!(retaken["finished_by"], format!("d{victim}"));
    let by: std::collections::BTreeSet<&str> = shards
        .iter()
        .filter_map(|s| s["finished_by"].as_str())
        .collect();
    assert!(by.len() >= 2, "the scan was shared: {by:?}");
    let places: u64 = shards
        .iter()
        .map(|s| s["tally"]["places"].as_u64().unwrap())
        .sum();
    assert_eq!(places, (shards_n * live) as u64, "{shards:?}");
    // Every endpoint's certificate is in the shared inventory, once.
    let found = daemons[survivor].cli_json(&["certificates", "list", "-q", "scan.test", "--all"]);
    let mut names: Vec<String> = found["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["subject_cn"].as_str().unwrap_or_default().to_owned())
        .collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), shards_n * live, "{names:?}");
    eprintln!(
        "{} endpoints in {shards_n} shards scanned by {} daemons in {:.1} s; \
         d{victim} killed holding shard {held}, the scan finished {:.1} s later",
        shards_n * per_shard,
        by.len(),
        finished.as_secs_f64(),
        after_kill.as_secs_f64()
    );
    drop(server);
}
