//! Runs Debian's `certspotter` (RFC 6962 logs only) against a test log, to
//! compare what it finds with the engine. certspotter has no run-once
//! mode: it is started with `-logs <list file> -watchlist <file>
//! -state_dir <dir> -stdout -no_save` (a brand new state starts at entry 0
//! unless `-start_at_end`), and stopped once its saved state
//! (`logs/<id>/state.json`, `verified_position.size`) covers the tree.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};

use super::Log;

/// What one certspotter run found.
pub struct CertspotterRun {
    /// SHA-256 fingerprints (hex) of the certificates and precertificates
    /// it reported.
    pub fingerprints: BTreeSet<String>,
    /// From start until its state covered the whole tree.
    pub elapsed: Duration,
}

/// certspotter's watchlist syntax for "this domain and every subdomain".
pub fn watchlist_line(domain: &str) -> String {
    format!(".{domain}")
}

/// Runs certspotter over `log` (already served and published) watching
/// `domains`, in `dir`; fails with a clear message when certspotter is not
/// installed. `deadline` bounds a run that never covers the tree.
pub async fn run_certspotter(
    log: &Log,
    domains: &[String],
    dir: &Path,
    deadline: Duration,
) -> Result<CertspotterRun, String> {
    let list = dir.join("certspotter-logs.json");
    log.write_log_list(&list);
    let watchlist = dir.join("certspotter-watchlist");
    let lines: Vec<String> = domains.iter().map(|d| watchlist_line(d)).collect();
    std::fs::write(&watchlist, lines.join("\n") + "\n").map_err(|e| e.to_string())?;
    let state = dir.join("certspotter-state");
    let size = log.published_size();
    let id = log
        .log_id_base64()
        .trim_end_matches('=')
        .replace('/', "_")
        .replace('+', "-");
    let state_file = state.join("logs").join(id).join("state.json");

    let started = Instant::now();
    let mut child = tokio::process::Command::new("certspotter")
        .arg("-logs")
        .arg(&list)
        .arg("-watchlist")
        .arg(&watchlist)
        .arg("-state_dir")
        .arg(&state)
        .arg("-stdout")
        .arg("-no_save")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                "certspotter is not installed: run `apt-get install -y certspotter` \
                 (tests/run.sh installs it)"
                    .to_owned()
            } else {
                format!("cannot start certspotter: {e}")
            }
        })?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let reader = tokio::spawn(async move {
        let mut found = BTreeSet::new();
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(fp) = line.strip_suffix(':')
                && fp.len() == 64
                && fp.bytes().all(|b| b.is_ascii_hexdigit())
            {
                found.insert(fp.to_owned());
            }
        }
        found
    });
    let elapsed = loop {
        if let Ok(text) = std::fs::read(&state_file)
            && let Ok(json) = serde_json::from_slice::<serde_json::Value>(&text)
            && json["verified_position"]["size"].as_u64() >= Some(size)
        {
            break started.elapsed();
        }
        if started.elapsed() > deadline {
            let _ = child.kill().await;
            return Err(format!(
                "certspotter did not cover the tree of {size} within {deadline:?}"
            ));
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("certspotter exited early: {status}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let _ = child.kill().await;
    let fingerprints = reader.await.map_err(|e| e.to_string())?;
    Ok(CertspotterRun {
        fingerprints,
        elapsed,
    })
}
