//! `certkeeper managed`, `renew`, `replace` and `revoke`: the lifecycle
//! commands. They go through the running daemon's API, which holds the
//! connectors; `managed` also reads a stopped daemon's store.

use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use serde_json::{Value, json};

use super::{ApiClient, Backend, Format};
use crate::api::lifecycle::ManagedView;

/// `certkeeper replace` arguments.
#[derive(Debug, Args)]
pub struct ReplaceArgs {
    /// SHA-256 fingerprint of the certificate in service (colons allowed).
    pub fingerprint: String,
    /// RFC 5280 revocation reason for the old certificate.
    #[arg(long, default_value = "superseded")]
    pub reason: String,
    /// Return once the replacement is started instead of waiting for it.
    #[arg(long)]
    pub no_wait: bool,
    /// Longest wait for the replacement, e.g. `10m`.
    #[arg(long, default_value = "10m")]
    pub timeout: String,
}

/// `certkeeper adopt` arguments.
#[derive(Debug, Args)]
pub struct AdoptArgs {
    /// SHA-256 fingerprint of the certificate (colons allowed).
    pub fingerprint: String,
    /// The `[[connector]]` its renewals go through.
    #[arg(long)]
    pub connector: String,
    /// The managed certificate's name (default: its first name).
    #[arg(long)]
    pub name: Option<String>,
}

/// `certkeeper adopt`: through the daemon, whose worker renews it.
pub async fn adopt(backend: &Backend, args: &AdoptArgs) -> anyhow::Result<()> {
    let client = api(backend)?;
    let fp = compact(&args.fingerprint)?;
    let response = client
        .request(reqwest::Method::POST, "/api/v1/managed/adopt")
        .json(&json!({ "fingerprint": fp, "connector": args.connector, "name": args.name }))
        .send()
        .await?;
    let body: Value = client.json(response).await?;
    let renew_at = body["renew_at"]
        .as_i64()
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default();
    eprintln!(
        "{fp} is managed as `{}`, renewing through {} from {renew_at}",
        text(&body["managed"]),
        args.connector
    );
    eprintln!(
        "to deploy its renewals where it was seen, add this to the config file (fill in the key and reload) and restart:"
    );
    println!("{}", text(&body["config"]));
    Ok(())
}

/// `certkeeper revoke` arguments.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// SHA-256 fingerprint of a certificate Certkeeper issued.
    pub fingerprint: String,
    /// RFC 5280 revocation reason.
    #[arg(long, default_value = "cessationOfOperation")]
    pub reason: String,
}

fn api(backend: &Backend) -> anyhow::Result<&ApiClient> {
    match backend {
        Backend::Api(client) => Ok(client),
        Backend::Local(..) => bail!(
            "this needs the running daemon (it holds the connectors); start it with \
             `certkeeper run` or `systemctl start certkeeper`"
        ),
    }
}

fn compact(fingerprint: &str) -> anyhow::Result<String> {
    let fp = fingerprint.replace(':', "").to_ascii_lowercase();
    if fp.len() != 64 || !fp.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("`{fingerprint}` is not a SHA-256 fingerprint (64 hex digits)");
    }
    Ok(fp)
}

async fn managed_items(backend: &Backend) -> anyhow::Result<Vec<Value>> {
    match backend {
        Backend::Api(client) => {
            let response = client
                .request(reqwest::Method::GET, "/api/v1/managed")
                .send()
                .await?;
            let body: Value = client.json(response).await?;
            Ok(body["items"].as_array().cloned().unwrap_or_default())
        }
        Backend::Local(store, _) => Ok(store
            .managed_all()
            .await?
            .iter()
            .map(|s| serde_json::to_value(ManagedView::from(s)).unwrap_or_default())
            .collect()),
    }
}

/// `certkeeper managed`.
pub async fn managed(backend: &Backend, format: Format) -> anyhow::Result<()> {
    let items = managed_items(backend).await?;
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "items": items }))?
        ),
        Format::Csv => {
            println!("name,state,generation,fingerprint,not_after,renew_at,last_error");
            for i in &items {
                println!(
                    "{},{},{},{},{},{},{}",
                    text(&i["name"]),
                    text(&i["state"]),
                    i["generation"],
                    text(&i["fingerprint"]),
                    time(&i["not_after"]),
                    time(&i["renew_at"]),
                    csv_field(&text(&i["last_error"]))
                );
            }
        }
        Format::Table => {
            println!(
                "{:<24} {:<10} {:>4}  {:<16} {:<20} {:<20} ERROR",
                "NAME", "STATE", "GEN", "FINGERPRINT", "EXPIRES", "RENEWS"
            );
            for i in &items {
                let fp = text(&i["fingerprint"]);
                println!(
                    "{:<24} {:<10} {:>4}  {:<16} {:<20} {:<20} {}",
                    text(&i["name"]),
                    text(&i["state"]),
                    i["generation"],
                    fp.get(..16).unwrap_or(&fp),
                    time(&i["not_after"]),
                    time(&i["renew_at"]),
                    text(&i["last_error"])
                );
            }
        }
    }
    Ok(())
}

/// `certkeeper renew [NAME...] [--all]`.
pub async fn renew(backend: &Backend, names: &[String], all: bool) -> anyhow::Result<()> {
    let client = api(backend)?;
    if names.is_empty() && !all {
        bail!("name the managed certificates to renew, or give --all");
    }
    let mut total = 0;
    if all {
        let response = client
            .request(reqwest::Method::POST, "/api/v1/managed/renew-all")
            .send()
            .await?;
        let body: Value = client.json(response).await?;
        total += body["renewing"].as_u64().unwrap_or(0);
    } else {
        for name in names {
            let path = format!("/api/v1/managed/{}/renew", encode(name));
            let response = client.request(reqwest::Method::POST, &path).send().await?;
            let body: Value = client.json(response).await?;
            total += body["renewing"].as_u64().unwrap_or(0);
        }
    }
    println!("{total} certificate(s) marked for renewal; see `certkeeper managed`");
    Ok(())
}

/// `certkeeper replace FINGERPRINT`.
pub async fn replace(backend: &Backend, args: &ReplaceArgs) -> anyhow::Result<()> {
    let client = api(backend)?;
    let fp = compact(&args.fingerprint)?;
    let timeout =
        crate::api::parse_duration(&args.timeout).map_err(|e| anyhow::anyhow!("--timeout: {e}"))?;
    args.reason
        .parse::<certkeeper_connectors::RevocationReason>()
        .map_err(|e| anyhow::anyhow!("--reason: {e}"))?;
    let response = client
        .request(
            reqwest::Method::POST,
            &format!("/api/v1/certificates/{fp}/replace"),
        )
        .json(&json!({ "reason": args.reason }))
        .send()
        .await?;
    let body: Value = client.json(response).await?;
    let name = text(&body["managed"]);
    eprintln!("replacing {fp} ({name})");
    if args.no_wait {
        return Ok(());
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout.max(1) as u64);
    let mut last_step = String::new();
    loop {
        let items = managed_items(backend).await?;
        let item = items
            .iter()
            .find(|i| i["name"] == json!(name))
            .with_context(|| format!("`{name}` disappeared from the managed certificates"))?;
        let step = text(&item["operation"]["step"]);
        if !step.is_empty() && step != last_step {
            eprintln!("  step: {step}");
            last_step = step;
        }
        let current = text(&item["fingerprint"]);
        if item["operation"].is_null() && current != fp {
            println!("{current}");
            eprintln!("{name}: {fp} revoked, {current} in service");
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "the replacement is still running (step {last_step}, last error: {}); \
                 it goes on in the daemon, see `certkeeper managed`",
                text(&item["last_error"])
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `certkeeper revoke FINGERPRINT`.
pub async fn revoke(backend: &Backend, args: &RevokeArgs) -> anyhow::Result<()> {
    let client = api(backend)?;
    let fp = compact(&args.fingerprint)?;
    args.reason
        .parse::<certkeeper_connectors::RevocationReason>()
        .map_err(|e| anyhow::anyhow!("--reason: {e}"))?;
    let response = client
        .request(
            reqwest::Method::POST,
            &format!("/api/v1/certificates/{fp}/revoke"),
        )
        .json(&json!({ "reason": args.reason }))
        .send()
        .await?;
    let body: Value = client.json(response).await?;
    println!("{fp} revoked ({})", text(&body["managed"]));
    Ok(())
}

/// `certkeeper deactivate`: retire a certificate Certkeeper does not manage.
#[derive(Debug, clap::Args)]
pub struct DeactivateArgs {
    /// SHA-256 fingerprint of the certificate.
    pub fingerprint: String,
    /// Why (kept in the inventory and the audit log).
    #[arg(long)]
    pub reason: Option<String>,
    /// Undo an earlier deactivation instead.
    #[arg(long)]
    pub undo: bool,
}

/// Deactivates (or with `--undo` reactivates) a certificate.
pub async fn deactivate(backend: &Backend, args: &DeactivateArgs) -> anyhow::Result<()> {
    let client = api(backend)?;
    let fp = compact(&args.fingerprint)?;
    let (action, body) = if args.undo {
        ("reactivate", json!({}))
    } else {
        ("deactivate", json!({ "reason": args.reason }))
    };
    let response = client
        .request(
            reqwest::Method::POST,
            &format!("/api/v1/certificates/{fp}/{action}"),
        )
        .json(&body)
        .send()
        .await?;
    let body: Value = client.json(response).await?;
    println!("{fp} {}", text(&body["status"]));
    Ok(())
}

/// `certkeeper candidates`: certificates discovery has stopped seeing.
pub async fn candidates(backend: &Backend, format: Format) -> anyhow::Result<()> {
    let client = api(backend)?;
    let response = client
        .request(reqwest::Method::GET, "/api/v1/deactivation-candidates")
        .send()
        .await?;
    let body: Value = client.json(response).await?;
    let items = body["items"].as_array().cloned().unwrap_or_default();
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&body)?),
        Format::Csv => {
            println!("fingerprint,subject,last_seen,places");
            for c in &items {
                let places: Vec<String> = c["places"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| text(&p["location"]))
                    .collect();
                println!(
                    "{},{},{},{}",
                    csv_field(&text(&c["fingerprint"])),
                    csv_field(&text(&c["subject"])),
                    time(&c["last_seen"]),
                    csv_field(&places.join("; "))
                );
            }
        }
        Format::Table => {
            if items.is_empty() {
                println!(
                    "no candidates: every certificate was seen within the last {} scans of each source that saw it",
                    body["missed_scans"]
                );
            }
            for c in &items {
                println!(
                    "{}  {}  last seen {}",
                    text(&c["fingerprint"]),
                    text(&c["subject"]),
                    time(&c["last_seen"])
                );
            }
        }
    }
    Ok(())
}

fn text(v: &Value) -> String {
    v.as_str().map(str::to_owned).unwrap_or_default()
}

fn time(v: &Value) -> String {
    v.as_i64()
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
