//! `certkeeper-alert-bench`: how fast the alert outbox delivers a burst of
//! events to a webhook, and whether it loses any, against `curl` posting
//! the same requests with no outbox at all, in the same run. It prints the
//! figures; it never asserts timings.
//!
//! - **receiver**: a local HTTP/1.1 server (hyper, keep-alive) on a free
//!   loopback port that counts requests and distinct `Idempotency-Key`s, and
//!   refuses a chosen fraction of requests at random with `503` (no
//!   `Retry-After`: the sender backs off on its own).
//! - **certkeeper**: `--events` events (default 10,000) are written to the
//!   outbox of an embedded store (untimed), then the daemon's alerting loops
//!   (router and webhook sender, `per_channel_concurrency` 64, retries
//!   after 1 s, then 2 s: the smallest backoff the config allows, so the
//!   run with refusals mostly measures the waits it asks for) start: timed until the receiver has every event, and until the
//!   store has recorded every delivery as delivered. Run once with no
//!   failures and once with `--fail-rate` (default 0.3).
//! - **curl**: `curl --parallel --parallel-max 64` posts the same number of
//!   signed-size JSON bodies to the receiver (no failures injected): the
//!   floor of sending that many requests with nothing written anywhere.
//!
//! ```sh
//! cargo build --release -p certkeeper --bins
//! target/release/certkeeper-alert-bench --dir /var/tmp/alert-bench
//! ```
//!
//! Flags: `--events N`, `--fail-rate F` (0 to 0.9), `--dir PATH` (work dir,
//! wiped at start, kept at exit; default a temporary directory).

// Shared with the other benchmarks; this one makes no certificates.
#[allow(dead_code)]
#[path = "bench/common.rs"]
mod common;

use std::collections::HashSet;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use certkeeper::config::Config;
use certkeeper_store::Store;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use serde_json::json;

struct Args {
    events: usize,
    fail_rate: f64,
    dir: Option<PathBuf>,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        events: 10_000,
        fail_rate: 0.3,
        dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--events" => a.events = value()?.parse().context("--events")?,
            "--fail-rate" => a.fail_rate = value()?.parse().context("--fail-rate")?,
            "--dir" => a.dir = Some(PathBuf::from(value()?)),
            other => bail!("unknown flag {other}; see the module doc"),
        }
    }
    if !(0.0..=0.9).contains(&a.fail_rate) || a.events == 0 {
        bail!("--fail-rate must be 0 to 0.9 and --events above 0");
    }
    Ok(a)
}

/// The local webhook receiver.
#[derive(Default)]
struct Receiver {
    requests: AtomicU64,
    refused: AtomicU64,
    keys: Mutex<HashSet<String>>,
    /// Refusal probability in millionths.
    fail_ppm: AtomicU64,
}

impl Receiver {
    fn distinct(&self) -> usize {
        self.keys.lock().map(|k| k.len()).unwrap_or(0)
    }

    fn reset(&self, fail_rate: f64) {
        self.requests.store(0, Ordering::SeqCst);
        self.refused.store(0, Ordering::SeqCst);
        if let Ok(mut k) = self.keys.lock() {
            k.clear();
        }
        self.fail_ppm
            .store((fail_rate * 1e6) as u64, Ordering::SeqCst);
    }

    async fn answer(&self, req: hyper::Request<Incoming>) -> hyper::Response<Full<Bytes>> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let key = req
            .headers()
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let _ = req.into_body().collect().await;
        let roll = (uuid::Uuid::new_v4().as_u128() % 1_000_000) as u64;
        let status = if roll < self.fail_ppm.load(Ordering::Relaxed) {
            self.refused.fetch_add(1, Ordering::Relaxed);
            503
        } else {
            if let (Some(key), Ok(mut keys)) = (key, self.keys.lock()) {
                keys.insert(key);
            }
            200
        };
        hyper::Response::builder()
            .status(status)
            .body(Full::new(Bytes::new()))
            .unwrap_or_default()
    }
}

async fn start_receiver(receiver: Arc<Receiver>) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let receiver = receiver.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let receiver = receiver.clone();
                    async move { Ok::<_, Infallible>(receiver.answer(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(format!("http://{addr}/hook"))
}

fn event(i: usize) -> serde_json::Value {
    json!({
        "id": format!("bench-{i}"),
        "at": "2026-11-27T00:00:00Z",
        "kind": { "type": "certificate_expiring", "threshold_days": 7, "days_left": 5 },
        "certificate": {
            "fingerprint": format!("{i:064x}"), "subject": format!("CN=host{i}.example.com"),
            "sans": [format!("host{i}.example.com")], "issuer": "CN=Example Issuing CA 1,O=Example Corp",
            "serial": format!("{i:x}"), "not_after": "2026-12-02T00:00:00Z",
            "seen_at": [format!("10.0.{}.{}:443", i / 250, i % 250)],
            "org_unit": "Web Platform", "contacts": ["web-oncall@example.com"], "tags": [],
        },
    })
}

struct Outcome {
    received: Duration,
    recorded: Duration,
    distinct: usize,
    requests: u64,
    refused: u64,
}

async fn run_certkeeper(
    dir: &std::path::Path,
    url: &str,
    receiver: &Arc<Receiver>,
    n: usize,
    fail_rate: f64,
) -> anyhow::Result<Outcome> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    let config: Config = serde_json::from_value(json!({
        "store": { "url": format!("surrealkv://{}", dir.join("store").display()) },
        "notifier": { "hook": { "type": "webhook", "url": url, "secret": "whsec-bench-0123456789" } },
        "alerts": {
            "check_interval_seconds": 3600,
            // One message per event: the throughput measured, not a digest.
            "digest_over": 0,
            "route": [{ "channels": ["hook"] }],
            "delivery": { "per_channel_concurrency": 64, "backoff_initial_seconds": 1, "backoff_max_seconds": 2 },
        },
    }))?;
    let store = Store::open(&config.store).await?;
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let events: Vec<certkeeper_model::event::StoredEvent> = chunk
            .iter()
            .map(|&i| certkeeper_model::event::StoredEvent {
                id: format!("bench-{i}"),
                time: i as i64,
                event: event(i),
            })
            .collect();
        store.raise_alerts(&[], &events).await?;
    }
    receiver.reset(fail_rate);
    let alerts = certkeeper::alerts::Alerts::new(&config, store.clone())?;
    let cancel = tokio_util::sync::CancellationToken::new();
    let start = Instant::now();
    let running = tokio::spawn(alerts.run(cancel.clone()));
    let deadline = start + Duration::from_secs(600);
    while receiver.distinct() < n {
        if Instant::now() > deadline {
            bail!(
                "only {} of {n} events arrived in 10 minutes",
                receiver.distinct()
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let received = start.elapsed();
    loop {
        let counts = store.delivery_counts().await?;
        let delivered = counts
            .iter()
            .find(|(s, _)| s == "delivered")
            .map_or(0, |c| c.1);
        if delivered as usize >= n {
            break;
        }
        if Instant::now() > deadline {
            bail!("the store recorded {delivered} of {n} deliveries");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let recorded = start.elapsed();
    cancel.cancel();
    let _ = running.await;
    store.close(Duration::from_secs(20)).await;
    Ok(Outcome {
        received,
        recorded,
        distinct: receiver.distinct(),
        requests: receiver.requests.load(Ordering::SeqCst),
        refused: receiver.refused.load(Ordering::SeqCst),
    })
}

fn run_curl(
    dir: &std::path::Path,
    url: &str,
    receiver: &Arc<Receiver>,
    n: usize,
) -> anyhow::Result<Duration> {
    let curl = common::find_tool("curl", &["/usr/bin/curl"])?;
    let body = dir.join("body.json");
    std::fs::write(&body, serde_json::to_vec(&event(0))?)?;
    let mut cfg = String::new();
    for i in 0..n {
        if i > 0 {
            cfg.push_str("next\n");
        }
        cfg.push_str(&format!(
            "url = \"{url}\"\ndata-binary = \"@{}\"\nheader = \"Content-Type: application/json\"\nheader = \"Idempotency-Key: curl-{i}\"\noutput = \"/dev/null\"\n",
            body.display()
        ));
    }
    let cfg_path = dir.join("curl.cfg");
    std::fs::write(&cfg_path, cfg)?;
    receiver.reset(0.0);
    let start = Instant::now();
    let status = std::process::Command::new(curl)
        .args([
            "--silent",
            "--no-progress-meter",
            "--parallel",
            "--parallel-max",
            "64",
            "--config",
        ])
        .arg(&cfg_path)
        .status()?;
    let took = start.elapsed();
    if !status.success() {
        bail!("curl failed: {status}");
    }
    if receiver.distinct() != n {
        bail!("curl delivered {} of {n}", receiver.distinct());
    }
    Ok(took)
}

fn main() -> anyhow::Result<()> {
    let args = args()?;
    let work = common::WorkDir::new(args.dir.as_deref(), "certkeeper-alert-bench")?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let receiver = Arc::new(Receiver::default());
        let url = start_receiver(receiver.clone()).await?;
        let n = args.events;
        println!("{n} events to one webhook receiver on this machine");
        let curl_dir = work.path.join("curl");
        std::fs::create_dir_all(&curl_dir)?;
        let curl = run_curl(&curl_dir, &url, &receiver, n)?;
        println!(
            "curl --parallel-max 64 (no outbox, no failures): {:.3} s, {:.0} requests/s",
            curl.as_secs_f64(),
            n as f64 / curl.as_secs_f64()
        );
        for fail_rate in [0.0, args.fail_rate] {
            let o =
                run_certkeeper(&work.path.join("store-run"), &url, &receiver, n, fail_rate).await?;
            let lost = n - o.distinct;
            println!(
                "certkeeper (retries after 1 s, then 2 s), receiver failing {:>2.0}% of requests: all {} received in {:.3} s \
                 ({:.0} events/s), all recorded delivered at {:.3} s; {} requests, {} refused; \
                 lost {lost}; {:.2}x curl's time",
                fail_rate * 100.0,
                o.distinct,
                o.received.as_secs_f64(),
                n as f64 / o.received.as_secs_f64(),
                o.recorded.as_secs_f64(),
                o.requests,
                o.refused,
                o.received.as_secs_f64() / curl.as_secs_f64(),
            );
        }
        anyhow::Ok(())
    })
}
