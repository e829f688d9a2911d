//! The CT follower against real logs on loopback (tests/ct_log): both APIs,
//! watched-domain matching, resumption, forks, bad signatures, hostile
//! logs, the log list, and agreement with Debian's certspotter.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../../tests/ct_log/mod.rs"]
mod ct_log;

use std::collections::BTreeSet;
use std::time::Duration;

use certkeeper_discovery::ct::{
    ClientOptions, CtError, Entry, EntryKind, FollowOptions, Follower, LogKind, LogSpec, Position,
    Start, Watch, fetch_log_list, parse_log_list,
};
use ct_log::{Api, Log, Misbehaviour, TestCa};

const APIS: [Api; 2] = [Api::Rfc6962, Api::Static];

fn spec(log: &Log) -> LogSpec {
    let specs = parse_log_list(log.log_list_json().as_bytes()).unwrap();
    assert_eq!(specs.len(), 1);
    specs.into_iter().next().unwrap()
}

fn options(start: Start) -> FollowOptions {
    FollowOptions {
        batch_size: 64,
        parallel: 3,
        start,
        max_missing: 2,
        missing_backoff: Duration::from_millis(10),
        ..FollowOptions::default()
    }
}

/// Reads every entry up to the current head.
async fn drain(follower: &mut Follower) -> Result<Vec<Entry>, CtError> {
    let mut entries = Vec::new();
    while let Some(batch) = follower.next_batch().await? {
        assert_eq!(
            batch.position.next_index,
            batch.entries.last().unwrap().index + 1
        );
        entries.extend(batch.entries);
    }
    Ok(entries)
}

fn fingerprints(entries: &[Entry]) -> BTreeSet<String> {
    entries.iter().map(Entry::fingerprint).collect()
}

fn sha256_hex(der: &[u8]) -> String {
    hex::encode(openssl::sha::sha256(der))
}

/// A log with watched and unwatched certificates; the fingerprints a watch
/// on `example.com` must find.
fn populate(log: &Log, ca: &TestCa) -> BTreeSet<String> {
    let chain = ca.chain();
    let mut expected = BTreeSet::new();
    let unwatched = ca.template(&["noise.example.net"], false);
    log.add_templated(&unwatched, 1000, 150);
    for (serial, names) in [
        (1, vec!["example.com"]),
        (2, vec!["www.example.com", "other.test"]),
        (3, vec!["*.example.com"]),
        (4, vec!["a.b.EXAMPLE.com"]),
    ] {
        let der = ca.issue(&names, serial);
        log.add_cert(&der, &chain);
        expected.insert(sha256_hex(&der));
    }
    for (serial, names) in [
        (5, vec!["example.org"]),
        (6, vec!["notexample.com"]),
        (7, vec!["example.com.evil.test"]),
    ] {
        log.add_cert(&ca.issue(&names, serial), &chain);
    }
    let pair = ca.precert_pair(&["shop.example.com"], 8);
    log.add_precert_pair(&pair);
    expected.insert(sha256_hex(&pair.precert));
    expected.insert(sha256_hex(&pair.final_cert));
    let watched_pairs = ca.template(&["api.example.com"], true);
    log.add_templated(&watched_pairs, 5000, 20);
    log.add_templated(&unwatched, 2000, 101);
    log.publish();
    expected
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finds_exactly_the_watched_certificates_on_both_apis() {
    for api in APIS {
        let ca = TestCa::new("Test CA");
        let log = Log::new(api);
        log.serve().await;
        log.set_page_limit(50); // short get-entries answers
        log.set_gzip(true); // gzip tiles, with and without Content-Encoding
        let mut expected = populate(&log, &ca);
        let mut follower = Follower::new(spec(&log), None, options(Start::Beginning)).unwrap();
        let entries = drain(&mut follower).await.unwrap();
        assert_eq!(entries.len() as u64, log.published_size(), "{api:?}");
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(e.index, i as u64, "{api:?}: gap or repeat");
        }
        let watch = Watch::new(&["example.com".to_owned()]);
        let found: Vec<Entry> = entries
            .iter()
            .filter(|e| watch.matches_entry(e))
            .cloned()
            .collect();
        // The templated pairs: 20 precertificates and 20 final certificates.
        let templated: Vec<&Entry> = found
            .iter()
            .filter(|e| e.dns_names == ["api.example.com"])
            .collect();
        assert_eq!(templated.len(), 40, "{api:?}");
        for e in &templated {
            expected.insert(e.fingerprint());
        }
        assert_eq!(fingerprints(&found), expected, "{api:?}");
        assert_eq!(found.len(), expected.len(), "{api:?}");

        // Every precertificate pairs with exactly its final certificate.
        let precerts: Vec<&Entry> = found.iter().filter(|e| e.is_precertificate()).collect();
        assert_eq!(precerts.len(), 21, "{api:?}");
        for p in &precerts {
            let partners: Vec<&Entry> = found
                .iter()
                .filter(|e| !e.is_precertificate() && e.pairing_key == p.pairing_key)
                .collect();
            assert_eq!(partners.len(), 1, "{api:?}: {}", p.serial);
            assert_eq!(partners[0].serial, p.serial);
            assert_eq!(partners[0].index, p.index + 1);
            let EntryKind::Precertificate { precert_der, .. } = &p.kind else {
                unreachable!()
            };
            assert!(precert_der.is_some(), "{api:?}");
        }
        let wildcard = found
            .iter()
            .find(|e| e.dns_names == ["*.example.com"])
            .unwrap();
        assert!(wildcard.issuer.contains("Test CA"), "{}", wildcard.issuer);
        assert!(wildcard.not_after > wildcard.not_before);
        assert_eq!(wildcard.chain, ca.chain());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_from_a_saved_position_without_gaps_or_repeats() {
    for api in APIS {
        let ca = TestCa::new("Resume CA");
        let log = Log::new(api);
        log.serve().await;
        log.add_templated(&ca.template(&["r.example.com"], false), 1, 700);
        log.publish();
        let mut follower = Follower::new(spec(&log), None, options(Start::Beginning)).unwrap();
        let first = follower.next_batch().await.unwrap().unwrap();
        assert_eq!(first.entries.len(), 192);
        // What the daemon stores, and reads back after a restart.
        let saved = serde_json::to_string(&first.position).unwrap();
        drop(follower);
        log.add_templated(&ca.template(&["r.example.com"], true), 800, 150);
        log.publish();
        let position: Position = serde_json::from_str(&saved).unwrap();
        let mut follower = Follower::new(spec(&log), Some(position), options(Start::Head)).unwrap();
        follower.update_head().await.unwrap();
        let rest = drain(&mut follower).await.unwrap();
        let indexes: Vec<u64> = first.entries.iter().chain(&rest).map(|e| e.index).collect();
        assert_eq!(indexes, (0..1000).collect::<Vec<_>>(), "{api:?}");
        assert!(follower.next_batch().await.unwrap().is_none());
        let position = follower.position().unwrap();
        assert_eq!((position.tree_size, position.next_index), (1000, 1000));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_log_starts_at_its_head() {
    for api in APIS {
        let ca = TestCa::new("Head CA");
        let log = Log::new(api);
        log.serve().await;
        log.add_templated(&ca.template(&["old.example.com"], false), 1, 333);
        log.publish();
        let mut follower = Follower::new(spec(&log), None, options(Start::Head)).unwrap();
        assert!(follower.next_batch().await.unwrap().is_none(), "{api:?}");
        assert_eq!(follower.position().unwrap().next_index, 333);
        let new = ca.issue(&["new.example.com"], 9);
        log.add_cert(&new, &ca.chain());
        log.publish();
        follower.update_head().await.unwrap();
        let entries = drain(&mut follower).await.unwrap();
        assert_eq!(entries.len(), 1, "{api:?}");
        assert_eq!(entries[0].index, 333);
        assert_eq!(entries[0].fingerprint(), sha256_hex(&new));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forks_and_bad_signatures_are_alerts() {
    for api in APIS {
        let ca = TestCa::new("Fork CA");
        let log = Log::new(api);
        log.serve().await;
        log.add_templated(&ca.template(&["f.example.com"], false), 1, 300);
        log.publish();
        let mut follower = Follower::new(spec(&log), None, options(Start::Beginning)).unwrap();
        drain(&mut follower).await.unwrap();

        log.fork();
        let error = follower.update_head().await.unwrap_err();
        assert!(matches!(error, CtError::Fork { .. }), "{api:?}: {error}");
        assert!(error.is_alert() && !error.is_transient());
        assert!(error.to_string().contains(log.name()), "{error}");

        // A larger tree over the forked history is not consistent with the
        // head the follower verified.
        log.add_templated(&ca.template(&["f.example.com"], false), 500, 10);
        log.publish();
        let error = follower.update_head().await.unwrap_err();
        assert!(matches!(error, CtError::Fork { .. }), "{api:?}: {error}");

        // A follower that never saw the old history reads the fork fine,
        // but not a head with a bad signature.
        let mut fresh = Follower::new(spec(&log), None, options(Start::Beginning)).unwrap();
        assert_eq!(drain(&mut fresh).await.unwrap().len(), 310);
        log.set_misbehaviour(Some(Misbehaviour::BadSignature));
        let error = fresh.update_head().await.unwrap_err();
        assert!(
            matches!(error, CtError::Signature { .. }),
            "{api:?}: {error}"
        );
        assert!(error.is_alert());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_serving_other_entries_than_it_signed_is_caught() {
    // Entries [0, n) are served, but the tree head signs another tree of
    // the same size: reading the entries must not verify.
    for api in APIS {
        let ca = TestCa::new("Mismatch CA");
        let log = Log::new(api);
        log.serve().await;
        log.add_templated(&ca.template(&["m.example.com"], false), 1, 100);
        log.publish();
        let mut follower = Follower::new(spec(&log), None, options(Start::Beginning)).unwrap();
        follower.update_head().await.unwrap();
        log.fork(); // entries change under the head the follower holds
        let error = drain(&mut follower).await.unwrap_err();
        assert!(
            matches!(error, CtError::LeafMismatch { .. }),
            "{api:?}: {error}"
        );
        assert!(error.is_alert());
        assert_eq!(follower.position().unwrap().next_index, 0, "{api:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_logs_give_clear_errors() {
    for api in APIS {
        for misbehaviour in [
            Misbehaviour::Stall,
            Misbehaviour::Garbage,
            Misbehaviour::HugeBody,
            Misbehaviour::ClaimBeyond(1_000_000_000),
        ] {
            let ca = TestCa::new("Hostile CA");
            let log = Log::new(api);
            log.serve().await;
            log.add_templated(&ca.template(&["h.example.com"], false), 1, 40);
            log.publish();
            log.set_misbehaviour(Some(misbehaviour));
            let mut options = options(Start::Beginning);
            options.client.timeout = Duration::from_millis(500);
            options.batch_size = 1000;
            let mut follower = Follower::new(spec(&log), None, options).unwrap();
            let error = drain(&mut follower).await.unwrap_err();
            let what = format!("{api:?} {misbehaviour:?}: {error}");
            assert!(error.to_string().contains(log.name()), "{what}");
            match misbehaviour {
                Misbehaviour::Stall => {
                    assert!(error.to_string().contains("no complete answer"), "{what}");
                    assert!(error.is_transient(), "{what}");
                }
                Misbehaviour::Garbage => {
                    assert!(matches!(error, CtError::Malformed { .. }), "{what}")
                }
                Misbehaviour::HugeBody => {
                    assert!(error.to_string().contains("byte cap"), "{what}")
                }
                Misbehaviour::ClaimBeyond(_) => {
                    // A tiled log is read by whole tiles: the first tile
                    // is full in the claimed tree, and not served.
                    let first_missing = if api == Api::Static { 0 } else { 40 };
                    assert!(
                        matches!(error, CtError::NotServed { attempts: 3, index, .. } if index == first_missing),
                        "{what}"
                    );
                    assert!(error.is_transient(), "{what}");
                }
                Misbehaviour::BadSignature => unreachable!(),
            }
            assert!(
                follower.position().is_some_and(|p| p.next_index == 0),
                "{what}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lists_name_both_kinds_and_skip_retired_logs() {
    let rfc = Log::new(Api::Rfc6962);
    let tiled = Log::new(Api::Static);
    let rfc_url = rfc.serve().await;
    let tiled_url = tiled.serve().await;
    let json = Log::log_list_json_for(&[&rfc, &tiled]);
    let specs = parse_log_list(json.as_bytes()).unwrap();
    assert_eq!(specs.len(), 2);
    assert_eq!(specs[0].kind, LogKind::Rfc6962 { url: rfc_url });
    assert_eq!(
        specs[1].kind,
        LogKind::Tiled {
            monitoring_url: tiled_url,
            origin: tiled.origin()
        }
    );
    assert_eq!(specs[0].mmd, Some(Duration::from_secs(86400)));
    assert_eq!(
        specs[1],
        LogSpec::new(tiled.name(), specs[1].kind.clone(), &tiled.key_base64())
            .map(|mut s| {
                s.mmd = specs[1].mmd;
                s
            })
            .unwrap()
    );
    let retired = json.replacen("\"usable\"", "\"retired\"", 1);
    assert_eq!(parse_log_list(retired.as_bytes()).unwrap().len(), 1);
    let wrong_id = json.replacen(&rfc.log_id_base64(), &tiled.log_id_base64(), 1);
    assert!(matches!(
        parse_log_list(wrong_id.as_bytes()),
        Err(CtError::Config { .. })
    ));
    assert!(parse_log_list(b"{\"operators\": 3}").is_err());

    // Fetched over HTTP, through the same bounded client as the logs.
    let fetched = fetch_log_list(
        &format!("{}log_list.json", rfc.url().unwrap()),
        &ClientOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(fetched.len(), 1);
    assert_eq!(fetched[0].name, rfc.name());
    let refused = ClientOptions {
        filter: std::sync::Arc::new(|ip: std::net::IpAddr| !ip.is_loopback()),
        ..ClientOptions::default()
    };
    let error = fetch_log_list(&format!("{}log_list.json", rfc.url().unwrap()), &refused)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("refused"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certspotter_and_the_engine_find_the_same_certificates() {
    let ca = TestCa::new("Spotter CA");
    let log = Log::new(Api::Rfc6962);
    log.serve().await;
    let mut expected = populate(&log, &ca);
    let domains = vec!["example.com".to_owned(), "other.test".to_owned()];
    let dir = tempfile::tempdir().unwrap();
    let run =
        ct_log::certspotter::run_certspotter(&log, &domains, dir.path(), Duration::from_secs(120))
            .await
            .unwrap_or_else(|e| panic!("{e}"));

    let mut follower = Follower::new(spec(&log), None, options(Start::Beginning)).unwrap();
    let watch = Watch::new(&domains);
    let found: Vec<Entry> = drain(&mut follower)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| watch.matches_entry(e))
        .collect();
    let ours = fingerprints(&found);
    assert_eq!(run.fingerprints, ours);
    // Not an empty agreement: the hand-picked certificates are in it, and
    // the 20 templated pairs.
    expected.retain(|fp| !ours.contains(fp));
    assert!(expected.is_empty(), "missed: {expected:?}");
    assert_eq!(ours.len(), 6 + 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiled_log_that_grew_past_a_partial_tile_is_read_from_the_full_tile() {
    let ca = TestCa::new("Partial CA");
    let log = Log::new(Api::Static);
    log.serve().await;
    log.add_templated(&ca.template(&["p.example.com"], false), 1, 300);
    log.publish();
    let mut follower = Follower::new(spec(&log), None, options(Start::Beginning)).unwrap();
    follower.update_head().await.unwrap();
    // The log grows and drops the partial tile of 44 entries the follower's
    // head of 300 needs; the full tile holds them first.
    log.add_templated(&ca.template(&["p.example.com"], false), 1000, 300);
    log.publish();
    let entries = drain(&mut follower).await.unwrap();
    assert_eq!(entries.len(), 300);
    follower.update_head().await.unwrap();
    assert_eq!(drain(&mut follower).await.unwrap().len(), 300);
}
