//! The report kinds and formats a `type = "report"` job or a request may
//! name. They live with the config, which checks a job's names once at load;
//! the report writers (`crate::reports`) and the API use the same types.

/// A report kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Every certificate by status.
    Inventory,
    /// Expiring within N days.
    Expiring,
    /// Purchased units and forecast.
    Units,
    /// 47-day lifetime readiness.
    Readiness47,
    /// Issued, renewed, revoked, expired per month.
    History,
    /// By org unit and administrator.
    OrgUnits,
    /// Discovery findings by owner.
    Findings,
}

impl Kind {
    /// Every kind, by name.
    pub const ALL: [(&'static str, Kind); 7] = [
        ("inventory", Kind::Inventory),
        ("expiring", Kind::Expiring),
        ("units", Kind::Units),
        ("readiness47", Kind::Readiness47),
        ("history", Kind::History),
        ("org-units", Kind::OrgUnits),
        ("findings", Kind::Findings),
    ];

    /// Parses a kind's name.
    pub fn parse(name: &str) -> Result<Kind, String> {
        Kind::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, k)| *k)
            .ok_or_else(|| {
                format!(
                    "no report `{name}`; expected one of {}",
                    Kind::ALL.map(|(n, _)| n).join(", ")
                )
            })
    }

    /// What a person calls it.
    pub fn title(self) -> &'static str {
        match self {
            Kind::Inventory => "Inventory by status",
            Kind::Expiring => "Expiring certificates (renewal planning)",
            Kind::Units => "Purchased units and 12-month forecast",
            Kind::Readiness47 => "47-day lifetime readiness",
            Kind::History => "History: issued, renewed, revoked, expired per month",
            Kind::OrgUnits => "By org unit and administrator",
            Kind::Findings => "Discovery findings by owner",
        }
    }

    /// Its name, as configured and in file names.
    pub fn name(self) -> &'static str {
        Kind::ALL
            .iter()
            .find(|(_, k)| *k == self)
            .map_or("report", |(n, _)| n)
    }
}

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// RFC 4180, UTF-8.
    Csv,
    /// One JSON document.
    Json,
    /// One self-contained HTML file with inline SVG charts.
    Html,
    /// PDF with selectable text.
    Pdf,
}

impl Format {
    /// Parses `csv`, `json`, `html` or `pdf`.
    pub fn parse(name: &str) -> Result<Format, String> {
        match name {
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            "html" => Ok(Format::Html),
            "pdf" => Ok(Format::Pdf),
            _ => Err(format!("format `{name}`: expected csv, json, html or pdf")),
        }
    }

    /// The HTTP content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Json => "application/json",
            Format::Html => "text/html; charset=utf-8",
            Format::Pdf => "application/pdf",
        }
    }

    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Html => "html",
            Format::Pdf => "pdf",
        }
    }
}
