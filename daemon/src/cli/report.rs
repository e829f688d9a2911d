//! `certkeeper report KIND`: a report to a file or standard output, from the
//! running daemon (in the caller's scope) or a stopped daemon's store.

use std::io::Write as _;

use anyhow::{Context as _, bail};
use clap::Args;

use super::Backend;
use crate::reports::{Filters, Format, Kind};

/// `certkeeper report` arguments.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// inventory, expiring, units, readiness47, history, org-units or
    /// findings.
    pub kind: String,
    /// csv, json, html or pdf.
    #[arg(long, default_value = "csv")]
    pub format: String,
    /// Write here instead of standard output.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// Only this org unit (and the units below it).
    #[arg(long)]
    pub org_unit: Option<String>,
    /// Expiring: the horizon in days (default 90).
    #[arg(long)]
    pub within_days: Option<i64>,
    /// Only certificates whose issuer DN contains this.
    #[arg(long)]
    pub issuer: Option<String>,
    /// Only this status (valid, expiring, expired, revoked, deactivated).
    #[arg(long)]
    pub status: Option<String>,
    /// Date range start, YYYY-MM-DD (history: the period; others: expiry on
    /// or after).
    #[arg(long)]
    pub from: Option<String>,
    /// Date range end, YYYY-MM-DD, inclusive.
    #[arg(long)]
    pub to: Option<String>,
    /// Only the org units this administrator looks after.
    #[arg(long)]
    pub administrator: Option<String>,
}

impl ReportArgs {
    /// The filters given as flags, by their API names.
    fn filter_pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        if let Some(d) = self.within_days {
            pairs.push(("within_days", d.to_string()));
        }
        for (key, value) in [
            ("issuer", &self.issuer),
            ("status", &self.status),
            ("from", &self.from),
            ("to", &self.to),
            ("administrator", &self.administrator),
        ] {
            if let Some(v) = value {
                pairs.push((key, v.clone()));
            }
        }
        pairs
    }
}

/// Runs `certkeeper report`.
pub async fn report(args: ReportArgs, backend: &Backend) -> anyhow::Result<()> {
    let kind = Kind::parse(&args.kind).map_err(anyhow::Error::msg)?;
    let format = Format::parse(&args.format).map_err(anyhow::Error::msg)?;
    if format == Format::Pdf && args.out.is_none() {
        bail!("--format pdf needs --out FILE (a PDF on a terminal helps nobody)");
    }
    let mut out: Box<dyn std::io::Write + Send> = match &args.out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("--out: cannot create {}", path.display()))?,
        )),
        None => Box::new(std::io::stdout()),
    };
    match backend {
        Backend::Api(client) => {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            query.append_pair("format", format.extension());
            if let Some(u) = &args.org_unit {
                query.append_pair("org_unit", u);
            }
            for (key, value) in args.filter_pairs() {
                query.append_pair(key, &value);
            }
            let path = format!("/api/v1/reports/{}?{}", args.kind, query.finish());
            let mut response = client.request(reqwest::Method::GET, &path).send().await?;
            if !response.status().is_success() {
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                bail!("the daemon answered {status}: {body}");
            }
            while let Some(chunk) = response.chunk().await? {
                out.write_all(&chunk)?;
            }
        }
        Backend::Local(store, _) => {
            let mut filters = Filters {
                org_units: match &args.org_unit {
                    Some(u) => {
                        let all = store.org_units().await?;
                        Some(certkeeper_store::accounts::OrgUnit::descendants(
                            &all,
                            std::slice::from_ref(u),
                        ))
                    }
                    None => None,
                },
                ..Default::default()
            };
            for (key, value) in args.filter_pairs() {
                let flag = key.replace('_', "-");
                filters
                    .set(key, &value)
                    .map_err(|e| anyhow::anyhow!("--{flag}: {e}"))?;
            }
            let sink = crate::reports::sink(format, out);
            crate::reports::generate(store, kind, &filters, sink, &mut crate::reports::no_flush())
                .await?;
            return Ok(());
        }
    }
    out.flush()?;
    Ok(())
}
