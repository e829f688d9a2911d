//! Benchmark of the CT follower against Debian's certspotter, run in the
//! same process on the same test log: builds an RFC 6962 log of `--count`
//! entries (default 1,000,000; 1% for watched domains, a mix of
//! certificates and precertificate/final pairs), serves it on loopback,
//! times the engine following it from entry 0, then certspotter on the
//! same log and watchlist, and prints both times, the ratio and each
//! tool's matches. `--static` also times the engine on the same entries in
//! a static-ct-api log (certspotter 0.16 reads RFC 6962 logs only).
//!
//! `cargo run --release -p certkeeper-discovery --features bench --bin certkeeper-ct-bench`

#[path = "../../../../tests/ct_log/mod.rs"]
mod ct_log;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use certkeeper_discovery::ct::{FollowOptions, Follower, LogSpec, Start, Watch, parse_log_list};
use ct_log::{Api, Log, TestCa};

struct Args {
    count: u64,
    tiled: bool,
}

fn args() -> Result<Args, String> {
    let mut parsed = Args {
        count: 1_000_000,
        tiled: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--count" => {
                parsed.count = args
                    .next()
                    .and_then(|n| n.replace('_', "").parse().ok())
                    .ok_or("--count needs a number")?;
            }
            "--static" => parsed.tiled = true,
            other => {
                return Err(format!(
                    "unknown argument {other}; usage: certkeeper-ct-bench [--count N] [--static]"
                ));
            }
        }
    }
    Ok(parsed)
}

/// Fills `log` with `count` entries, 1% of them watched; the watched
/// domains.
fn build(log: &Log, ca: &TestCa, count: u64) -> Vec<String> {
    let noise = ca.template(
        &["www.unwatched.example.net", "unwatched.example.net"],
        false,
    );
    let watched_cert = ca.template(&["shop.watched.example", "watched.example"], false);
    let watched_pair = ca.template(&["*.api.watched.example"], true);
    let other_cert = ca.template(&["mail.second.test"], false);
    let mut serial = 1u64;
    let mut added = 0u64;
    // Each block of 1,000 entries: 990 unwatched, then 4 watched
    // certificates, 3 watched pairs (6 entries) and ... 10 watched in all.
    while added < count {
        let block = (count - added).min(1000);
        let watched = block / 100;
        let noise_count = block - watched;
        log.add_templated(&noise, serial, noise_count);
        serial += noise_count;
        let pairs = watched * 3 / 10;
        let certs = watched - 2 * pairs;
        log.add_templated(&watched_pair, serial, pairs);
        serial += pairs;
        let second = certs / 4;
        log.add_templated(&watched_cert, serial, certs - second);
        serial += certs - second;
        log.add_templated(&other_cert, serial, second);
        serial += second;
        added += block;
    }
    log.publish();
    vec!["watched.example".to_owned(), "second.test".to_owned()]
}

/// Follows `spec` from entry 0; matching fingerprints and the time taken.
async fn follow(spec: LogSpec, watch: &Watch) -> Result<(BTreeSet<String>, u64, Duration), String> {
    let options = FollowOptions {
        start: Start::Beginning,
        ..FollowOptions::default()
    };
    let started = Instant::now();
    let mut follower = Follower::new(spec, None, options).map_err(|e| e.to_string())?;
    let mut found = BTreeSet::new();
    let mut read = 0u64;
    while let Some(batch) = follower.next_batch().await.map_err(|e| e.to_string())? {
        read += batch.entries.len() as u64;
        for entry in &batch.entries {
            if watch.matches_entry(entry) {
                found.insert(entry.fingerprint());
            }
        }
    }
    Ok((found, read, started.elapsed()))
}

fn spec_of(log: &Log) -> Result<LogSpec, String> {
    parse_log_list(log.log_list_json().as_bytes())
        .map_err(|e| e.to_string())?
        .into_iter()
        .next()
        .ok_or_else(|| "the log list is empty".to_owned())
}

async fn run() -> Result<(), String> {
    let args = args()?;
    let ca = TestCa::new("Bench CA");
    let built = Instant::now();
    let log = Log::new(Api::Rfc6962);
    let domains = build(&log, &ca, args.count);
    log.serve().await;
    println!(
        "log: {} entries (RFC 6962), built in {:.2} s",
        log.published_size(),
        built.elapsed().as_secs_f64()
    );
    let watch = Watch::new(&domains);

    let (ours, read, engine) = follow(spec_of(&log)?, &watch).await?;
    println!(
        "certkeeper: {read} entries in {:.2} s ({:.0} entries/s), {} matches",
        engine.as_secs_f64(),
        read as f64 / engine.as_secs_f64(),
        ours.len()
    );

    let dir = std::env::temp_dir().join(format!("certkeeper-ct-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let spotted =
        ct_log::certspotter::run_certspotter(&log, &domains, &dir, Duration::from_secs(3600)).await;
    let _ = std::fs::remove_dir_all(&dir);
    let spotted = spotted?;
    println!(
        "certspotter: {} entries in {:.2} s ({:.0} entries/s), {} matches",
        log.published_size(),
        spotted.elapsed.as_secs_f64(),
        log.published_size() as f64 / spotted.elapsed.as_secs_f64(),
        spotted.fingerprints.len()
    );
    println!(
        "ratio: certkeeper is {:.2}x certspotter; matches {}",
        spotted.elapsed.as_secs_f64() / engine.as_secs_f64(),
        if spotted.fingerprints == ours {
            "identical".to_owned()
        } else {
            format!(
                "DIFFER ({} only certkeeper, {} only certspotter)",
                ours.difference(&spotted.fingerprints).count(),
                spotted.fingerprints.difference(&ours).count()
            )
        }
    );

    if args.tiled {
        let tiled = Log::new(Api::Static);
        build(&tiled, &ca, args.count);
        tiled.serve().await;
        let (found, read, took) = follow(spec_of(&tiled)?, &watch).await?;
        println!(
            "certkeeper (static-ct-api): {read} entries in {:.2} s ({:.0} entries/s), {} matches",
            took.as_secs_f64(),
            read as f64 / took.as_secs_f64(),
            found.len()
        );
    }
    if spotted.fingerprints != ours {
        return Err("the tools found different certificates".to_owned());
    }
    Ok(())
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("certkeeper-ct-bench: {e}");
        std::process::exit(1);
    }
}
