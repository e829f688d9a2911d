//! Reports: the inventory as people plan with it, in CSV, JSON, HTML or PDF.
//!
//! Kinds:
//! - `inventory`: every certificate with its status, counts by status;
//! - `expiring`: certificates in force expiring within `within_days`
//!   (default 90), with days left, counts per 30/60/90-day bucket and
//!   expiries per week;
//! - `units`: purchased, used and remaining units per metered connector,
//!   with the units the next 12 months' expiries will need;
//! - `readiness47`: what breaks if lifetimes drop to 47 days: certificates in
//!   force that no managed certificate renews (no connector, manual deploy).
//!
//! Every report streams: certificates are read a page (1000) at a time by
//! the `(not_after, fingerprint)` index and each row goes straight to the
//! [`Sink`]; summaries that need the whole set (counts, charts) come from
//! the status counters or a first aggregate pass, never from holding rows.
//! Scoped callers (department admins, subscribers) see their units only.

pub mod html;
mod owners;
pub mod pdf;

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use serde_json::json;

pub use crate::config::report::{Format, Kind};
use certkeeper_model::inventory::{CertificateRecord, Status};
use certkeeper_model::request::RequestState;
use certkeeper_store::Store;
use certkeeper_store::inventory::CertificateFilter;

/// Called after each page of rows: passes the bytes written so far on
/// (waiting for a slow reader, which bounds the memory a report holds).
pub type Flush<'a> = &'a mut (
            dyn FnMut()
    -> std::pin::Pin<Box<dyn std::future::Future<Output = io::Result<()>> + Send>>
                + Send
        );

/// A flush that does nothing (the sink writes to a file itself).
pub fn no_flush()
-> impl FnMut() -> std::pin::Pin<Box<dyn std::future::Future<Output = io::Result<()>> + Send>> + Send
{
    || Box::pin(async { Ok(()) })
}

const DAY: i64 = 86_400;
/// Rows read per store query: big pages make fewer queries; a page of
/// records without their PEM is about 2 MB.
const PAGE: usize = 5000;

/// What to include.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    /// Only these org units (the caller's scope, or a chosen unit).
    pub org_units: Option<Vec<String>>,
    /// Only certificates listing this contact (subscribers).
    pub contact: Option<String>,
    /// Issuer DN substring.
    pub issuer: Option<String>,
    /// Only this status.
    pub status: Option<Status>,
    /// Expiring: the horizon in days (default 90).
    pub within_days: Option<i64>,
    /// Date range start (Unix seconds): inventory and expiring keep
    /// certificates expiring on or after it; history starts its period there.
    pub from: Option<i64>,
    /// Date range end (Unix seconds, excluded).
    pub to: Option<i64>,
    /// Only the org units this administrator looks after.
    pub administrator: Option<String>,
}

impl Filters {
    /// The filters [`Filters::set`] takes by name.
    pub const KEYS: [&'static str; 6] = [
        "issuer",
        "status",
        "within_days",
        "from",
        "to",
        "administrator",
    ];

    /// Sets the filter named `key` (the API's query parameter, the CLI's
    /// flag) from text; errors name the parameter.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "issuer" => self.issuer = Some(value.to_owned()),
            "status" => self.status = Some(value.parse().map_err(|e| format!("status: {e}"))?),
            "within_days" => {
                self.within_days = Some(
                    value
                        .parse::<i64>()
                        .ok()
                        .filter(|d| (1..=3650).contains(d))
                        .ok_or("within_days: expected 1 to 3650")?,
                );
            }
            "from" => self.from = Some(parse_date(value).map_err(|e| format!("from: {e}"))?),
            "to" => {
                // Up to the end of that day.
                self.to = Some(parse_date(value).map_err(|e| format!("to: {e}"))? + DAY);
            }
            "administrator" => self.administrator = Some(value.to_lowercase()),
            _ => return Err(format!("unknown filter `{key}`")),
        }
        if let (Some(from), Some(to)) = (self.from, self.to)
            && from >= to
        {
            return Err("from: must be before to".into());
        }
        Ok(())
    }
}

/// Parses `YYYY-MM-DD` (UTC midnight) to Unix seconds.
pub fn parse_date(text: &str) -> Result<i64, String> {
    chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc().timestamp())
        .ok_or_else(|| format!("`{text}` is not a date; expected YYYY-MM-DD"))
}

/// Where a report's parts go, whatever the format.
pub trait Sink {
    /// Title and subtitle, first.
    fn start(&mut self, title: &str, subtitle: &str) -> io::Result<()>;
    /// Labelled figures.
    fn summary(&mut self, items: &[(String, String)]) -> io::Result<()>;
    /// A chart: bars by label.
    fn chart(&mut self, title: &str, bars: &[(String, u64)], timeline: bool) -> io::Result<()>;
    /// The table's columns, before any row.
    fn columns(&mut self, headers: &[&str]) -> io::Result<()>;
    /// One row.
    fn row(&mut self, cells: &[String]) -> io::Result<()>;
    /// The end.
    fn finish(self: Box<Self>) -> io::Result<()>;
}

/// A writer whose bytes the caller drains between pages (for streaming an
/// HTTP body).
#[derive(Clone, Default)]
pub struct Chunks(Arc<Mutex<Vec<u8>>>);

impl Chunks {
    /// Takes what has been written so far.
    pub fn take(&self) -> Vec<u8> {
        self.0
            .lock()
            .map(|mut b| std::mem::take(&mut *b))
            .unwrap_or_default()
    }
}

impl Write for Chunks {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| io::Error::other("report buffer poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A sink for `format` writing to `out`.
pub fn sink<W: Write + Send + 'static>(format: Format, out: W) -> Box<dyn Sink + Send> {
    match format {
        Format::Csv => Box::new(CsvSink { out }),
        Format::Json => Box::new(JsonSink {
            out,
            headers: Vec::new(),
            rows: 0,
        }),
        Format::Html => Box::new(HtmlSink {
            out: Some(out),
            report: None,
            table: false,
        }),
        Format::Pdf => Box::new(PdfSink {
            out: Some(out),
            title: String::new(),
            subtitle: String::new(),
            summary: Vec::new(),
            charts: Vec::new(),
            report: None,
        }),
    }
}

struct CsvSink<W: Write> {
    out: W,
}

/// One CSV field (RFC 4180), safe to open in a spreadsheet: a value that
/// would start a formula (`=`, `+`, `-`, `@`, a tab or a carriage return,
/// as a crafted SAN or subject can) gets a leading `'`, so the program shows
/// it as text instead of running it (OWASP's advice on CSV injection).
/// Plain numbers (`-3` days left) stay numbers.
pub fn csv_field(value: &str) -> String {
    let formula =
        value.starts_with(['=', '+', '-', '@', '\t', '\r']) && value.parse::<f64>().is_err();
    let value = if formula {
        std::borrow::Cow::Owned(format!("'{value}"))
    } else {
        std::borrow::Cow::Borrowed(value)
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.into_owned()
    }
}

impl<W: Write> Sink for CsvSink<W> {
    fn start(&mut self, _: &str, _: &str) -> io::Result<()> {
        Ok(())
    }
    fn summary(&mut self, _: &[(String, String)]) -> io::Result<()> {
        Ok(())
    }
    fn chart(&mut self, _: &str, _: &[(String, u64)], _: bool) -> io::Result<()> {
        Ok(())
    }
    fn columns(&mut self, headers: &[&str]) -> io::Result<()> {
        let line: Vec<String> = headers.iter().map(|h| csv_field(h)).collect();
        write!(self.out, "{}\r\n", line.join(","))
    }
    fn row(&mut self, cells: &[String]) -> io::Result<()> {
        let line: Vec<String> = cells.iter().map(|c| csv_field(c)).collect();
        write!(self.out, "{}\r\n", line.join(","))
    }
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.out.flush()
    }
}

struct JsonSink<W: Write> {
    out: W,
    headers: Vec<String>,
    rows: u64,
}

impl<W: Write> Sink for JsonSink<W> {
    fn start(&mut self, title: &str, subtitle: &str) -> io::Result<()> {
        write!(
            self.out,
            "{{\"title\":{},\"subtitle\":{},\"generated\":{}",
            json!(title),
            json!(subtitle),
            json!(chrono::Utc::now().to_rfc3339())
        )
    }
    fn summary(&mut self, items: &[(String, String)]) -> io::Result<()> {
        let map: serde_json::Map<String, serde_json::Value> =
            items.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        write!(self.out, ",\"summary\":{}", serde_json::Value::Object(map))
    }
    fn chart(&mut self, title: &str, bars: &[(String, u64)], _: bool) -> io::Result<()> {
        let map: serde_json::Map<String, serde_json::Value> =
            bars.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        write!(
            self.out,
            ",{}:{}",
            json!(title),
            serde_json::Value::Object(map)
        )
    }
    fn columns(&mut self, headers: &[&str]) -> io::Result<()> {
        self.headers = headers.iter().map(|h| h.to_string()).collect();
        write!(self.out, ",\"rows\":[")
    }
    fn row(&mut self, cells: &[String]) -> io::Result<()> {
        let map: serde_json::Map<String, serde_json::Value> = self
            .headers
            .iter()
            .zip(cells)
            .map(|(h, c)| (h.clone(), json!(c)))
            .collect();
        let sep = if self.rows == 0 { "" } else { "," };
        self.rows += 1;
        write!(self.out, "{sep}\n{}", serde_json::Value::Object(map))
    }
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        if self.headers.is_empty() {
            write!(self.out, ",\"rows\":[")?;
        }
        write!(self.out, "\n],\"count\":{}}}\n", self.rows)?;
        self.out.flush()
    }
}

struct HtmlSink<W: Write> {
    out: Option<W>,
    report: Option<html::HtmlReport<W>>,
    table: bool,
}

impl<W: Write> HtmlSink<W> {
    fn report(&mut self) -> io::Result<&mut html::HtmlReport<W>> {
        self.report
            .as_mut()
            .ok_or_else(|| io::Error::other("report not started"))
    }
}

impl<W: Write> Sink for HtmlSink<W> {
    fn start(&mut self, title: &str, subtitle: &str) -> io::Result<()> {
        let out = self
            .out
            .take()
            .ok_or_else(|| io::Error::other("started twice"))?;
        self.report = Some(html::HtmlReport::new(out, title, subtitle)?);
        Ok(())
    }
    fn summary(&mut self, items: &[(String, String)]) -> io::Result<()> {
        self.report()?.summary(items)
    }
    fn chart(&mut self, title: &str, bars: &[(String, u64)], timeline: bool) -> io::Result<()> {
        if timeline {
            self.report()?.column_chart(title, bars)
        } else {
            self.report()?.bar_chart(title, bars)
        }
    }
    fn columns(&mut self, headers: &[&str]) -> io::Result<()> {
        self.table = true;
        self.report()?.table_start(headers)
    }
    fn row(&mut self, cells: &[String]) -> io::Result<()> {
        self.report()?.row(cells)
    }
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        if self.table {
            self.report()?.table_end()?;
        }
        let report = self
            .report
            .take()
            .ok_or_else(|| io::Error::other("report not started"))?;
        report.finish()?.flush()
    }
}

/// PDF needs the columns before anything is drawn, so the summary and
/// charts wait (they are small) until the columns are known.
struct PdfSink<W: Write> {
    out: Option<W>,
    title: String,
    subtitle: String,
    summary: Vec<String>,
    charts: Vec<(String, Vec<(String, u64)>)>,
    report: Option<pdf::PdfReport<W>>,
}

impl<W: Write> Sink for PdfSink<W> {
    fn start(&mut self, title: &str, subtitle: &str) -> io::Result<()> {
        self.title = title.to_owned();
        self.subtitle = subtitle.to_owned();
        Ok(())
    }
    fn summary(&mut self, items: &[(String, String)]) -> io::Result<()> {
        self.summary
            .extend(items.iter().map(|(k, v)| format!("{k}: {v}")));
        Ok(())
    }
    fn chart(&mut self, title: &str, bars: &[(String, u64)], _: bool) -> io::Result<()> {
        self.charts.push((title.to_owned(), bars.to_vec()));
        Ok(())
    }
    fn columns(&mut self, headers: &[&str]) -> io::Result<()> {
        let out = self
            .out
            .take()
            .ok_or_else(|| io::Error::other("columns twice"))?;
        let columns: Vec<pdf::Column> = headers
            .iter()
            .map(|h| pdf::Column {
                header: h.to_string(),
                width: column_weight(h),
            })
            .collect();
        let mut report = pdf::PdfReport::new(out, &self.title, &self.subtitle, &columns)?;
        report.summary(&self.summary);
        for (title, bars) in &self.charts {
            report.bar_chart(title, bars);
        }
        self.report = Some(report);
        Ok(())
    }
    fn row(&mut self, cells: &[String]) -> io::Result<()> {
        self.report
            .as_mut()
            .ok_or_else(|| io::Error::other("row before columns"))?
            .row(cells)
    }
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        if self.report.is_none() {
            self.columns(&["(no rows)"])?;
        }
        let report = self
            .report
            .take()
            .ok_or_else(|| io::Error::other("report not started"))?;
        report.finish()?.flush()
    }
}

fn column_weight(header: &str) -> f32 {
    match header {
        "subject" | "sans" => 3.0,
        "issuer" => 2.5,
        "fingerprint" => 2.0,
        "not_after" | "status" | "org_unit" => 1.3,
        _ => 1.0,
    }
}

/// `YYYY-MM-DD` (UTC) of a Unix time.
pub(crate) fn date(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

fn certificate_filter(filters: &Filters, now: i64) -> CertificateFilter {
    CertificateFilter {
        status: filters.status,
        issuer: filters.issuer.clone(),
        org_units: filters.org_units.clone(),
        contact: filters.contact.clone(),
        not_after_from: filters.from,
        not_after_to: filters.to,
        without_pem: true,
        limit: PAGE,
        now,
        ..Default::default()
    }
}

/// Whether the inventory report lists requests too: not when a filter only
/// certificates have (status, issuer, expiry dates) is set, nor for a
/// subscriber's view by contact.
fn with_requests(filters: &Filters) -> bool {
    filters.status.is_none()
        && filters.issuer.is_none()
        && filters.from.is_none()
        && filters.to.is_none()
        && filters.contact.is_none()
}

/// A request as an inventory row: its names, the connector asked, its
/// state; no certificate fields.
fn request_row(r: &certkeeper_store::requests::Request) -> Vec<String> {
    vec![
        r.identifiers.join(" "),
        r.identifiers.join(" "),
        format!("(request {} to {})", r.id, r.connector),
        String::new(),
        String::new(),
        String::new(),
        r.state.to_string(),
        r.org_unit.clone(),
        String::new(),
    ]
}

/// Calls `each` for every request in `state` in the filters' org units,
/// newest first, a page at a time.
async fn each_request<F>(
    store: &Store,
    filters: &Filters,
    state: RequestState,
    mut each: F,
    after_page: Flush<'_>,
) -> Result<(), ReportError>
where
    F: FnMut(&certkeeper_store::requests::Request) -> io::Result<()> + Send,
{
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .requests(
                filters.org_units.as_deref(),
                None,
                Some(state),
                PAGE,
                cursor.as_deref(),
            )
            .await?;
        for r in &page.items {
            each(r)?;
        }
        after_page().await?;
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(()),
        }
    }
}

/// Calls `each` for every certificate matching `filter`, a page at a time;
/// `after_page` runs after each page (the caller drains its buffer there).
async fn each_certificate<F>(
    store: &Store,
    mut filter: CertificateFilter,
    mut each: F,
    after_page: Flush<'_>,
) -> Result<(), ReportError>
where
    F: FnMut(&CertificateRecord) -> io::Result<()> + Send,
{
    loop {
        let page = store.list_certificates(&filter).await?;
        for cert in &page.items {
            each(cert)?;
        }
        after_page().await?;
        match page.next_cursor {
            Some(c) => filter.cursor = Some(c),
            None => return Ok(()),
        }
    }
}

/// Why a report failed.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] certkeeper_store::StoreError),
    /// A page of the store could not be read (a bad cursor, the store).
    #[error("store: {0}")]
    List(#[from] certkeeper_store::inventory::ListError),
    /// A filter names something that does not exist.
    #[error("{0}")]
    Filter(String),
    /// Writing failed (the client went away, the disk is full).
    #[error("writing the report: {0}")]
    Io(#[from] io::Error),
    /// A scheduled report's directory or file could not be made.
    #[error("cannot {action} {}: {source}", path.display())]
    File {
        /// What was being done (`create`, `rename`).
        action: &'static str,
        /// The directory or file.
        path: std::path::PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

const CERT_COLUMNS: [&str; 9] = [
    "subject",
    "sans",
    "issuer",
    "serial",
    "not_after",
    "days_left",
    "status",
    "org_unit",
    "fingerprint",
];

fn cert_row(c: &CertificateRecord, now: i64) -> Vec<String> {
    let names: Vec<&str> = c
        .cert
        .san_dns
        .iter()
        .chain(&c.cert.san_ip)
        .map(String::as_str)
        .collect();
    vec![
        c.cert.subject.clone(),
        names.join(" "),
        c.cert.issuer.clone(),
        c.cert.serial.clone(),
        date(c.cert.not_after),
        ((c.cert.not_after - now).div_euclid(DAY)).to_string(),
        c.status.to_string(),
        c.org_unit.clone().unwrap_or_default(),
        c.cert.fingerprint.clone(),
    ]
}

/// Writes report `kind` to `sink`, reading `store`; `flush` runs after each
/// page so a streaming caller can pass the bytes on.
pub async fn generate(
    store: &Store,
    kind: Kind,
    filters: &Filters,
    mut sink: Box<dyn Sink + Send>,
    flush: Flush<'_>,
) -> Result<(), ReportError> {
    let now = chrono::Utc::now().timestamp();
    // An administrator filter narrows the units to those the administrator
    // looks after.
    let narrowed;
    let filters = match &filters.administrator {
        Some(name) => {
            narrowed = administered(store, filters, name).await?;
            &narrowed
        }
        None => filters,
    };
    let scope = match &filters.org_units {
        Some(units) => format!("org units: {}", units.join(", ")),
        None => "all org units".to_owned(),
    };
    let subtitle = format!(
        "{scope}; generated {}",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
    let store_err = ReportError::from;
    match kind {
        Kind::Inventory => {
            sink.start("Certificate inventory by status", &subtitle)?;
            let counts = match &filters.org_units {
                None if filters.contact.is_none() => store.counts_by_status().await,
                _ => {
                    store
                        .counts_in_scope(
                            filters.org_units.as_deref().unwrap_or(&[]),
                            filters.contact.as_deref(),
                        )
                        .await
                }
            }
            .map_err(store_err)?;
            let total: u64 = counts.values().sum();
            let mut items = vec![("total".to_owned(), total.to_string())];
            items.extend(counts.iter().map(|(s, n)| (s.to_string(), n.to_string())));
            let mut bars: Vec<(String, u64)> = counts
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(s, n)| (s.to_string(), *n))
                .collect();
            // Enrollment requests are part of the inventory: approved ones
            // became certificates (counted above); pending and rejected ones
            // are listed after them.
            let requests = with_requests(filters);
            if requests {
                let mut by_state: BTreeMap<String, u64> = ["pending", "approved", "rejected"]
                    .into_iter()
                    .map(|s| (s.to_owned(), 0))
                    .collect();
                for (_, state, n) in store
                    .request_counts(filters.org_units.as_deref())
                    .await
                    .map_err(store_err)?
                {
                    *by_state.entry(state.to_string()).or_default() += n;
                }
                for (state, n) in &by_state {
                    items.push((format!("requests {state}"), n.to_string()));
                    if *n > 0 && state != "approved" {
                        bars.push((format!("request {state}"), *n));
                    }
                }
            }
            sink.summary(&items)?;
            sink.chart("Certificates and requests by status", &bars, false)?;
            sink.columns(&CERT_COLUMNS)?;
            flush().await?;
            let filter = certificate_filter(filters, now);
            each_certificate(store, filter, |c| sink.row(&cert_row(c, now)), flush).await?;
            if requests {
                for state in [RequestState::Pending, RequestState::Rejected] {
                    each_request(store, filters, state, |r| sink.row(&request_row(r)), flush)
                        .await?;
                }
            }
        }
        Kind::Expiring => {
            let within = filters.within_days.unwrap_or(90);
            sink.start(
                &format!("Certificates expiring within {within} days"),
                &subtitle,
            )?;
            let mut filter = certificate_filter(filters, now);
            filter.expiring_within = Some(within * DAY);
            // The aggregates (counts per 30-day bucket, per week) come from
            // the store's expiry index, not a pass over the rows.
            let list_err = ReportError::List;
            let months = store
                .expiries_per_period(&filter, 30 * DAY)
                .await
                .map_err(list_err)?;
            let weeks = store
                .expiries_per_period(&filter, 7 * DAY)
                .await
                .map_err(list_err)?;
            let mut buckets: BTreeMap<&str, u64> = BTreeMap::new();
            for (period, n) in months {
                let bucket = match period {
                    i64::MIN..=0 => "within 30 days",
                    1 => "30 to 60 days",
                    _ => "60 days or more",
                };
                *buckets.entry(bucket).or_default() += n;
            }
            let total: u64 = buckets.values().sum();
            let mut items = vec![("expiring".to_owned(), total.to_string())];
            items.extend(buckets.iter().map(|(b, n)| (b.to_string(), n.to_string())));
            sink.summary(&items)?;
            let columns: Vec<(String, u64)> = (0..=(within / 7))
                .map(|w| (date(now + w * 7 * DAY), weeks.get(&w).copied().unwrap_or(0)))
                .collect();
            sink.chart("Expiries per week", &columns, true)?;
            sink.columns(&CERT_COLUMNS)?;
            flush().await?;
            each_certificate(store, filter, |c| sink.row(&cert_row(c, now)), flush).await?;
        }
        Kind::Units => {
            sink.start("Purchased units and forecast", &subtitle)?;
            let units = store.units().await.map_err(store_err)?;
            // Certificates Certkeeper renews through each connector that
            // expire (so renew) within 12 months.
            let forecast = store
                .renewals_due_by_connector(now + 365 * DAY)
                .await
                .map_err(store_err)?;
            let bars: Vec<(String, u64)> = units
                .iter()
                .map(|u| {
                    (
                        u.connector.clone(),
                        u64::try_from(u.remaining()).unwrap_or(0),
                    )
                })
                .collect();
            sink.summary(&[("metered connectors".to_owned(), units.len().to_string())])?;
            sink.chart("Units remaining", &bars, false)?;
            sink.columns(&[
                "connector",
                "purchased",
                "used",
                "remaining",
                "threshold",
                "needed_next_12_months",
                "to_buy",
            ])?;
            for u in &units {
                let needed = forecast.get(&u.connector).copied().unwrap_or(0);
                let to_buy = i64::try_from(needed).unwrap_or(0) - u.remaining();
                sink.row(&[
                    u.connector.clone(),
                    u.purchased.to_string(),
                    u.used.to_string(),
                    u.remaining().to_string(),
                    u.threshold.to_string(),
                    needed.to_string(),
                    to_buy.max(0).to_string(),
                ])?;
            }
            flush().await?;
        }
        Kind::Readiness47 => {
            sink.start("47-day lifetime readiness", &subtitle)?;
            let managed = store.managed_all().await.map_err(store_err)?;
            let automated: HashSet<String> = managed
                .iter()
                .filter_map(|m| m.current.as_ref().map(|c| c.fingerprint.clone()))
                .collect();
            let mut filter = certificate_filter(filters, now);
            if filter.status.is_none() {
                filter.expiring_within = Some(3650 * DAY);
            }
            let (mut ready, mut at_risk) = (0u64, 0u64);
            let mut by_unit: BTreeMap<String, u64> = BTreeMap::new();
            each_certificate(
                store,
                filter.clone(),
                |c| {
                    if automated.contains(&c.cert.fingerprint) {
                        ready += 1;
                    } else {
                        at_risk += 1;
                        *by_unit
                            .entry(c.org_unit.clone().unwrap_or_else(|| "(no unit)".into()))
                            .or_default() += 1;
                    }
                    Ok(())
                },
                &mut no_flush(),
            )
            .await?;
            sink.summary(&[
                (
                    "renewed and deployed by Certkeeper".to_owned(),
                    ready.to_string(),
                ),
                (
                    "would break at 47 days (manual)".to_owned(),
                    at_risk.to_string(),
                ),
            ])?;
            let bars: Vec<(String, u64)> = by_unit.into_iter().collect();
            sink.chart("Manual certificates by org unit", &bars, false)?;
            let mut columns = CERT_COLUMNS.to_vec();
            columns.push("why");
            sink.columns(&columns)?;
            flush().await?;
            each_certificate(
                store,
                filter,
                |c| {
                    if automated.contains(&c.cert.fingerprint) {
                        return Ok(());
                    }
                    let mut row = cert_row(c, now);
                    row.push("no connector renews it; deployed by hand".into());
                    sink.row(&row)
                },
                flush,
            )
            .await?;
        }
        Kind::History => owners::history(store, filters, &mut sink, &subtitle, now, flush).await?,
        Kind::OrgUnits => {
            owners::org_units(store, filters, &mut sink, &subtitle, now, flush).await?;
        }
        Kind::Findings => owners::findings(store, filters, &mut sink, &subtitle, flush).await?,
    }
    sink.finish()?;
    flush().await?;
    let _ = kind.name();
    Ok(())
}

/// `filters` limited to the org units administrator `name` looks after
/// (within the caller's scope already in `filters`).
pub async fn administered(
    store: &Store,
    filters: &Filters,
    name: &str,
) -> Result<Filters, ReportError> {
    let store_err = ReportError::from;
    let user = store
        .user(name)
        .await
        .map_err(store_err)?
        .ok_or_else(|| ReportError::Filter(format!("administrator: no user `{name}`")))?;
    let mut out = filters.clone();
    out.administrator = None;
    if user.role == certkeeper_model::admin::Role::DepartmentAdmin
        || user.role == certkeeper_model::admin::Role::Subscriber
    {
        let all = store.org_units().await.map_err(store_err)?;
        let mine = certkeeper_store::accounts::OrgUnit::descendants(&all, &user.units);
        out.org_units = Some(match &filters.org_units {
            Some(scope) => mine.into_iter().filter(|u| scope.contains(u)).collect(),
            None => mine,
        });
    }
    Ok(out)
}

/// Runs a `[[job]] type = "report"`: writes the report to its directory
/// (through a temporary file, renamed when complete), prunes the job's old
/// reports, and records a `report_ready` event for the alert routing.
pub async fn scheduled(
    store: &Store,
    job: &crate::config::ReportJob,
    base_url: &str,
) -> Result<(), ReportError> {
    let file_error = |action, path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source| ReportError::File {
            action,
            path,
            source,
        }
    };
    let kind = Kind::parse(&job.kind).map_err(ReportError::Filter)?;
    let format = Format::parse(&job.format).map_err(ReportError::Filter)?;
    std::fs::create_dir_all(&job.directory).map_err(file_error("create", &job.directory))?;
    let now = chrono::Utc::now();
    let file = job.directory.join(format!(
        "{}-{}.{}",
        job.name,
        now.format("%Y%m%d-%H%M%S"),
        format.extension()
    ));
    let partial = file.with_extension(format!("{}.partial", format.extension()));
    let out = std::fs::File::create(&partial).map_err(file_error("create", &partial))?;
    let filters = Filters {
        org_units: match &job.org_unit {
            Some(u) => {
                let all = store.org_units().await?;
                Some(certkeeper_store::accounts::OrgUnit::descendants(
                    &all,
                    std::slice::from_ref(u),
                ))
            }
            None => None,
        },
        within_days: job.within_days,
        ..Default::default()
    };
    let result = generate(
        store,
        kind,
        &filters,
        sink(format, io::BufWriter::new(out)),
        &mut no_flush(),
    )
    .await;
    if let Err(e) = result {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    std::fs::rename(&partial, &file).map_err(file_error("rename", &partial))?;
    prune(&job.directory, &job.name, job.keep);
    let location = file.display().to_string();
    let event = certkeeper_integrations::Event {
        id: format!("report:{}:{}", job.name, now.timestamp()),
        at: now,
        kind: certkeeper_integrations::EventKind::ReportReady {
            report: job.kind.clone(),
            location: location.clone(),
            url: file
                .file_name()
                .and_then(|f| f.to_str())
                .map(|f| format!("{base_url}{}", download_path(&job.name, f))),
        },
        certificate: None,
    };
    let stored = certkeeper_model::event::StoredEvent::from(&event);
    store.push_event(&stored).await?;
    tracing::info!(job = %job.name, file = %location, "report written");
    Ok(())
}

/// The API path a scheduled report's file is downloaded from.
pub fn download_path(job: &str, file: &str) -> String {
    let part = |s: &str| -> String { url::form_urlencoded::byte_serialize(s.as_bytes()).collect() };
    format!("/api/v1/reports/files/{}/{}", part(job), part(file))
}

/// Whether `file` is a name [`scheduled`] gives job `job`'s reports
/// (`JOB-YYYYMMDD-HHMMSS.EXT`): the download route serves nothing else.
pub fn is_report_file(job: &str, file: &str) -> bool {
    let Some(rest) = file.strip_prefix(job).and_then(|r| r.strip_prefix('-')) else {
        return false;
    };
    let Some((stamp, ext)) = rest.split_once('.') else {
        return false;
    };
    let stamp_ok = stamp.len() == 15
        && stamp.bytes().enumerate().all(|(i, b)| {
            if i == 8 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    stamp_ok && ["csv", "json", "html", "pdf"].contains(&ext)
}

/// Deletes all but the newest `keep` reports of job `name` in `dir`.
fn prune(dir: &std::path::Path, name: &str, keep: usize) {
    let prefix = format!("{name}-");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<std::path::PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && !n.ends_with(".partial"))
        })
        .collect();
    // Names carry the time, so they sort oldest first.
    files.sort();
    let excess = files.len().saturating_sub(keep);
    for old in files.into_iter().take(excess) {
        let _ = std::fs::remove_file(old);
    }
}
