//! Self-contained HTML reports, written as a stream.
//!
//! [`HtmlReport`] writes one HTML file: an inline `<style>`, label/value summary cards, bar
//! and column charts drawn as inline SVG (each followed by a visually hidden table of the same
//! numbers, for screen readers), and tables whose rows go to the output as they are produced,
//! so a report of a million certificates holds no more in memory than one of ten. Nothing is
//! buffered here: wrap the output in a [`std::io::BufWriter`].
//!
//! The file contains no JavaScript and loads nothing (no external CSS, fonts or images), so it
//! reads the same when opened from an email attachment, offline, from a ticket or file share,
//! or behind a strict Content-Security-Policy. It carries its own policy (`default-src 'none'`)
//! so that even an escaping bug could neither run a script nor fetch anything, and chart
//! colours are SVG attributes rather than CSS so charts still draw where inline styles are
//! blocked. Every interpolated string goes through [`escape`] (or its allocation-free twin).

use std::borrow::Cow;
use std::fmt;
use std::io::{self, Write};

/// System fonts; cards that reflow; tables and charts that scroll sideways on a phone rather
/// than shrink their text below ~11px; status rows marked by a coloured edge as well as a
/// tint; a print layout (no scrolling boxes, rows not split across pages, colours kept).
const STYLE: &str = "\
:root{color-scheme:light;--fg:#1f2937;--muted:#6b7280;--line:#e5e7eb}
*{box-sizing:border-box}
body{margin:0 auto;max-width:72rem;padding:1rem;color:var(--fg);background:#fff;
font:15px/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,\"Helvetica Neue\",Arial,sans-serif}
h1{font-size:1.5rem;margin:0}h2{font-size:1.1rem;margin:1.5rem 0 .5rem}
.subtitle,.no-data,footer{color:var(--muted)}
.summary{display:grid;grid-template-columns:repeat(auto-fill,minmax(10rem,1fr));gap:.75rem;
margin:1rem 0}
.card{border:1px solid var(--line);border-radius:.5rem;padding:.75rem}
.card dt{font-size:.8rem;color:var(--muted)}.card dd{margin:0;font-size:1.4rem;font-weight:600}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch}
.chart svg{display:block;width:100%;min-width:36rem;max-width:48rem;height:auto}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{padding:.35rem .6rem;text-align:left;white-space:nowrap;border-bottom:1px solid var(--line)}
thead th{background:#f3f4f6}tbody tr:nth-child(even){background:#f9fafb}
tr.expired td{background:#fdecec}tr.expired td:first-child{border-left:4px solid #b91c1c}
tr.expiring td{background:#fff7e0}tr.expiring td:first-child{border-left:4px solid #b45309}
tr.ok td:first-child{border-left:4px solid #15803d}
.visually-hidden{position:absolute!important;width:1px;height:1px;margin:-1px;padding:0;
overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap;border:0}
footer{margin-top:2rem;font-size:.8rem}
@media (max-width:40rem){body{padding:.5rem;font-size:14px}.card dd{font-size:1.2rem}}
@media print{body{max-width:none;padding:0;font-size:9pt}.scroll{overflow:visible}
th,td{white-space:normal;overflow-wrap:anywhere}.card,.chart,tr{break-inside:avoid}
*{-webkit-print-color-adjust:exact;print-color-adjust:exact}@page{margin:1.5cm}}
";

/// Chart geometry, in SVG user units (the SVG scales to its box).
const WIDTH: f64 = 640.0;
const COLUMN_CHART_HEIGHT: f64 = 240.0;
const BAR_ROW: f64 = 24.0;
const BAR_HEIGHT: f64 = 16.0;
/// Rough width of one character at the charts' 12-unit font, to size margins and thin labels.
const CHAR_WIDTH: f64 = 7.0;
const LABEL_MAX_CHARS: usize = 28;
const X_LABEL_MAX_CHARS: usize = 12;
const FILL: &str = "#2563eb";
const GRID: &str = "#d1d5db";

/// Escapes `s` for HTML text and quoted attribute values (SVG inside HTML included):
/// `& < > " '` become entities; everything else, non-ASCII included, passes unchanged.
pub fn escape(s: &str) -> String {
    Esc(s).to_string()
}

/// [`escape`] without the allocation: formats as the escaped text, for `write!`.
struct Esc<'a>(&'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut done = 0;
        for (i, byte) in self.0.bytes().enumerate() {
            let entity = match byte {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                b'\'' => "&#39;",
                _ => continue,
            };
            // The escaped bytes are ASCII, so `i` is always a char boundary.
            f.write_str(&self.0[done..i])?;
            f.write_str(entity)?;
            done = i + 1;
        }
        f.write_str(&self.0[done..])
    }
}

/// A report being written: each section goes to `out` as it is called, in call order.
pub struct HtmlReport<W: Write> {
    out: W,
    /// Charts so far, to give each SVG a unique id for `aria-labelledby`.
    charts: u32,
    /// The table being streamed, if any: its width and how many rows it has had.
    table: Option<(usize, u64)>,
}

impl<W: Write> HtmlReport<W> {
    /// Starts the document: head, inline style, and a header with `title` and `subtitle`.
    pub fn new(mut out: W, title: &str, subtitle: &str) -> io::Result<Self> {
        let (title, subtitle) = (Esc(title), Esc(subtitle));
        write!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
             style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'\">\n\
             <meta name=\"generator\" content=\"Certkeeper\">\n<title>{title}</title>\n\
             <style>\n{STYLE}</style>\n</head>\n<body>\n<header>\n<h1>{title}</h1>\n\
             <p class=\"subtitle\">{subtitle}</p>\n</header>\n<main>\n"
        )?;
        let (charts, table) = (0, None);
        Ok(HtmlReport { out, charts, table })
    }

    /// Labelled figures ("expired" / "12"), as cards that reflow with the screen width.
    pub fn summary(&mut self, items: &[(String, String)]) -> io::Result<()> {
        self.no_open_table("a summary")?;
        if items.is_empty() {
            return Ok(());
        }
        self.out.write_all(b"<dl class=\"summary\">\n")?;
        for (label, value) in items {
            let (label, value) = (Esc(label), Esc(value));
            writeln!(
                self.out,
                "<div class=\"card\"><dt>{label}</dt><dd>{value}</dd></div>"
            )?;
        }
        self.out.write_all(b"</dl>\n")
    }

    /// A horizontal bar per `(label, value)`, labels on the left and values at the bar ends;
    /// labels over [`LABEL_MAX_CHARS`] are shortened in the drawing, never in the table.
    pub fn bar_chart(&mut self, title: &str, bars: &[(String, u64)]) -> io::Result<()> {
        if !self.chart_start(title, bars, bars.len() as f64 * BAR_ROW + 8.0)? {
            return Ok(());
        }
        let max = bars.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1);
        let label_chars = longest_label(bars).min(LABEL_MAX_CHARS);
        let label_w = (label_chars as f64 * CHAR_WIDTH + 12.0).max(48.0);
        let plot_w = WIDTH - label_w - (digits(max) as f64 * CHAR_WIDTH + 12.0);
        for (i, (label, value)) in bars.iter().enumerate() {
            let (y, w) = (
                4.0 + i as f64 * BAR_ROW,
                *value as f64 / max as f64 * plot_w,
            );
            let (label_x, text_y, value_x) =
                (label_w - 6.0, y + BAR_HEIGHT - 4.0, label_w + w + 6.0);
            let short = shorten(label, label_chars);
            let (label, short) = (Esc(label), Esc(&short));
            writeln!(
                self.out,
                "<g><title>{label}: {value}</title><text x=\"{label_x:.1}\" y=\"{text_y:.1}\" \
                 text-anchor=\"end\">{short}</text><rect x=\"{label_w:.1}\" y=\"{y:.1}\" \
                 width=\"{w:.1}\" height=\"{BAR_HEIGHT}\" rx=\"2\" fill=\"{FILL}\"/>\
                 <text x=\"{value_x:.1}\" y=\"{text_y:.1}\">{value}</text></g>"
            )?;
        }
        self.chart_end(title, bars)
    }

    /// A vertical column per `(label, value)` in order, for timelines such as expiries per
    /// week: a y axis with round ticks, and x labels thinned to every n-th when they would
    /// overlap (each column's tooltip and the hidden table still give every label and value).
    pub fn column_chart(&mut self, title: &str, columns: &[(String, u64)]) -> io::Result<()> {
        if !self.chart_start(title, columns, COLUMN_CHART_HEIGHT)? {
            return Ok(());
        }
        let max = columns.iter().map(|(_, v)| *v).max().unwrap_or(0);
        let step = nice_step(max);
        let top = max.div_ceil(step).max(1).saturating_mul(step);
        let left = (digits(top) as f64 * CHAR_WIDTH + 12.0).max(36.0);
        let (right, base) = (WIDTH - 24.0, COLUMN_CHART_HEIGHT - 24.0);
        let y_of = |v: u64| base - v as f64 / top as f64 * (base - 16.0);
        for tick in (0..=top).step_by(usize::try_from(step).unwrap_or(usize::MAX)) {
            let (y, tick_x) = (y_of(tick), left - 6.0);
            writeln!(
                self.out,
                "<line x1=\"{left:.1}\" x2=\"{right:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" \
                 stroke=\"{GRID}\"/><text x=\"{tick_x:.1}\" y=\"{:.1}\" \
                 text-anchor=\"end\">{tick}</text>",
                y + 4.0
            )?;
        }
        let slot = (right - left) / columns.len() as f64;
        let label_chars = longest_label(columns).min(X_LABEL_MAX_CHARS);
        let fit = ((right - left) / (label_chars as f64 * CHAR_WIDTH + 8.0)) as usize;
        let stride = columns.len().div_ceil(fit.max(1));
        for (i, (label, value)) in columns.iter().enumerate() {
            let (x, y) = (left + i as f64 * slot + slot * 0.1, y_of(*value));
            let (middle, width, height) = (x + slot * 0.4, slot * 0.8, base - y);
            let short = shorten(label, label_chars);
            let (label, short) = (Esc(label), Esc(&short));
            write!(
                self.out,
                "<g><title>{label}: {value}</title><rect x=\"{x:.1}\" y=\"{y:.1}\" \
                 width=\"{width:.1}\" height=\"{height:.1}\" fill=\"{FILL}\"/>"
            )?;
            if i % stride == 0 {
                let text_y = base + 16.0;
                write!(
                    self.out,
                    "<text class=\"x-label\" x=\"{middle:.1}\" y=\"{text_y:.1}\" \
                     text-anchor=\"middle\">{short}</text>"
                )?;
            }
            self.out.write_all(b"</g>\n")?;
        }
        self.chart_end(title, columns)
    }

    /// Opens a table with these column headers; rows follow with [`row`](Self::row).
    pub fn table_start(&mut self, headers: &[&str]) -> io::Result<()> {
        self.no_open_table("a table")?;
        // Focusable so keyboard users can scroll a table wider than the screen.
        self.out
            .write_all(b"<div class=\"scroll\" tabindex=\"0\">\n<table>\n<thead><tr>")?;
        for header in headers {
            write!(self.out, "<th scope=\"col\">{}</th>", Esc(header))?;
        }
        self.out.write_all(b"</tr></thead>\n<tbody>\n")?;
        self.table = Some((headers.len(), 0));
        Ok(())
    }

    /// Writes one row straight to the output; it must have one cell per header.
    pub fn row<S: AsRef<str>>(&mut self, cells: &[S]) -> io::Result<()> {
        self.row_with_class(cells, "")
    }

    /// Like [`row`](Self::row), with a class on the `<tr>`: `expired`, `expiring` and `ok`
    /// are styled. Colour is never the only signal: keep a status column too.
    pub fn row_with_class<S: AsRef<str>>(&mut self, cells: &[S], class: &str) -> io::Result<()> {
        let Some((columns, rows)) = self.table.as_mut() else {
            return Err(misuse("a row outside a table: call table_start first"));
        };
        if cells.len() != *columns {
            let message = format!("a row of {} cells in a table of {columns}", cells.len());
            return Err(misuse(message));
        }
        *rows += 1;
        match class {
            "" => self.out.write_all(b"<tr>")?,
            class => write!(self.out, "<tr class=\"{}\">", Esc(class))?,
        }
        for cell in cells {
            write!(self.out, "<td>{}</td>", Esc(cell.as_ref()))?;
        }
        self.out.write_all(b"</tr>\n")
    }

    /// Closes the table; a table that had no rows says so rather than showing bare headers.
    pub fn table_end(&mut self) -> io::Result<()> {
        let Some((columns, rows)) = self.table.take() else {
            return Err(misuse("table_end without table_start"));
        };
        if rows == 0 {
            let span = columns.max(1);
            writeln!(
                self.out,
                "<tr><td class=\"no-data\" colspan=\"{span}\">No rows.</td></tr>"
            )?;
        }
        self.out.write_all(b"</tbody>\n</table>\n</div>\n")
    }

    /// Closes any open table and the document, adds the footer, flushes, and returns `out`.
    pub fn finish(mut self) -> io::Result<W> {
        if self.table.is_some() {
            self.table_end()?;
        }
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        write!(
            self.out,
            "</main>\n<footer>generated <time datetime=\"{now}\">{now}</time> by Certkeeper\
             </footer>\n</body>\n</html>\n"
        )?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn no_open_table(&self, what: &str) -> io::Result<()> {
        match self.table {
            Some(_) => Err(misuse(format!("{what} in a table: call table_end first"))),
            None => Ok(()),
        }
    }

    /// Writes the chart's heading and opens its SVG, `height` units tall; for empty data,
    /// writes a "no data" note instead of an empty SVG and returns false.
    fn chart_start(
        &mut self,
        title: &str,
        data: &[(String, u64)],
        height: f64,
    ) -> io::Result<bool> {
        self.no_open_table("a chart")?;
        self.charts += 1;
        let (id, title) = (self.charts, Esc(title));
        writeln!(
            self.out,
            "<section class=\"chart\">\n<h2 id=\"chart-{id}\">{title}</h2>"
        )?;
        if data.is_empty() {
            self.out
                .write_all(b"<p class=\"no-data\">No data.</p>\n</section>\n")?;
            return Ok(false);
        }
        writeln!(
            self.out,
            "<div class=\"scroll\" tabindex=\"0\">\
             <svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" \
             aria-labelledby=\"chart-{id}-title\" viewBox=\"0 0 {WIDTH} {height:.0}\" \
             width=\"{WIDTH}\" height=\"{height:.0}\" font-family=\"system-ui, sans-serif\" \
             font-size=\"12\" fill=\"#1f2937\">\n<title id=\"chart-{id}-title\">{title}</title>"
        )?;
        Ok(true)
    }

    /// Closes the SVG and adds the same numbers as a table only screen readers see (and
    /// everyone sees where the style is blocked).
    fn chart_end(&mut self, title: &str, data: &[(String, u64)]) -> io::Result<()> {
        let title = Esc(title);
        write!(
            self.out,
            "</svg></div>\n<table class=\"visually-hidden\"><caption>{title}</caption>\n\
             <thead><tr><th scope=\"col\">Label</th><th scope=\"col\">Value</th></tr></thead>\n\
             <tbody>\n"
        )?;
        for (label, value) in data {
            writeln!(self.out, "<tr><td>{}</td><td>{value}</td></tr>", Esc(label))?;
        }
        self.out.write_all(b"</tbody></table>\n</section>\n")
    }
}

/// Calling the writer out of order is the caller's bug, reported rather than papered over.
fn misuse(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message.into())
}

fn digits(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

fn longest_label(data: &[(String, u64)]) -> usize {
    data.iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(0)
}

/// `label` cut to `max` characters, the last one an ellipsis, when longer.
fn shorten(label: &str, max: usize) -> Cow<'_, str> {
    match label.char_indices().nth(max) {
        Some(_) if max > 0 => {
            let cut = label.char_indices().nth(max - 1).map_or(0, |(i, _)| i);
            Cow::Owned(format!("{}…", &label[..cut]))
        }
        _ => Cow::Borrowed(label),
    }
}

/// A round y-axis step (1, 2 or 5 times a power of ten) giving about four ticks up to `max`.
fn nice_step(max: u64) -> u64 {
    let raw = max.div_ceil(4).max(1);
    let magnitude = 10u64.pow(raw.ilog10());
    [1, 2, 5, 10]
        .map(|m| magnitude.saturating_mul(m))
        .into_iter()
        .find(|s| *s >= raw)
        .unwrap_or(raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{cell::Cell, rc::Rc, time::Instant};

    fn render(build: impl FnOnce(&mut HtmlReport<Vec<u8>>) -> io::Result<()>) -> String {
        let mut report = HtmlReport::new(Vec::new(), "Certificates", "all units").unwrap();
        build(&mut report).unwrap();
        String::from_utf8(report.finish().unwrap()).unwrap()
    }

    fn pairs(data: &[(&str, u64)]) -> Vec<(String, u64)> {
        data.iter().map(|(l, v)| (l.to_string(), *v)).collect()
    }

    fn count(html: &str, needle: &str) -> usize {
        html.matches(needle).count()
    }

    /// Every tag and attribute is one the writer emits itself: nothing injected got in, and
    /// no value broke out of its quotes (escaped values hold no `"`, `<` or `>`).
    fn assert_only_known_markup(html: &str) {
        let tags = "html head meta title style body header h1 h2 p main dl div dt dd section \
                    svg g text rect line table caption thead tbody tr th td footer time";
        let attributes = "lang charset name content http-equiv class id xmlns role viewBox \
                          aria-labelledby width height font-family font-size fill x y x1 x2 \
                          y1 y2 rx stroke text-anchor tabindex scope colspan datetime";
        for piece in html.split('<').skip(1).filter(|p| !p.starts_with('!')) {
            let tag = piece.split('>').next().unwrap();
            let tag = tag.strip_prefix('/').unwrap_or(tag).trim_end_matches('/');
            for (i, outside_quotes) in tag.split('"').enumerate().step_by(2) {
                for (j, word) in outside_quotes.split_whitespace().enumerate() {
                    let (known, name) = match (i, j) {
                        (0, 0) => (tags, word),
                        _ => (attributes, word.strip_suffix('=').unwrap_or(word)),
                    };
                    let ok = known.split_whitespace().any(|k| k == name);
                    assert!(ok, "unexpected {word} in <{tag}>");
                }
            }
        }
    }

    #[test]
    fn hostile_strings_are_escaped_everywhere() {
        let script = "<script>alert('x')</script>";
        assert_eq!(
            escape(script),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"
        );
        assert_eq!(escape("\" onmouseover=\"x"), "&quot; onmouseover=&quot;x");
        assert_eq!(escape("&lt; café ☃ CN=a,O=b"), "&amp;lt; café ☃ CN=a,O=b");

        let bad = "<script>alert('x')</script>\"><img src=x onerror=alert(1)>&";
        let mut report = HtmlReport::new(Vec::new(), bad, bad).unwrap();
        report.summary(&[(bad.into(), bad.into())]).unwrap();
        report.bar_chart(bad, &[(bad.into(), 1)]).unwrap();
        report.column_chart(bad, &[(bad.into(), 1)]).unwrap();
        report.table_start(&[bad]).unwrap();
        report.row_with_class(&[bad], bad).unwrap();
        let html = String::from_utf8(report.finish().unwrap()).unwrap();
        assert!(!html.contains("<script") && !html.contains("<img"));
        assert_only_known_markup(&html);
        let escaped = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot;&gt;&lt;img";
        assert!(html.contains(&format!("<td>{escaped}")));
    }

    #[test]
    fn the_report_is_one_self_contained_document() {
        let html = render(|r| {
            r.summary(&[("expired".into(), "3".into())])?;
            r.bar_chart("By status", &pairs(&[("valid", 10), ("expired", 3)]))?;
            r.column_chart("Per week", &pairs(&[("2025-01-06", 4), ("2025-01-13", 0)]))?;
            r.table_start(&["subject", "status"])?;
            r.row_with_class(&["CN=old", "expired"], "expired")?;
            r.table_end()
        });
        assert!(html.starts_with("<!DOCTYPE html>\n") && html.ends_with("</html>\n"));
        assert_eq!(count(&html, "<html"), 1);
        let lower = html.to_lowercase();
        for external in ["<script", "src=", "url(", "@import"] {
            assert!(!lower.contains(external), "{external} in {html}");
        }
        let links = lower.match_indices("href=");
        assert!(
            links
                .clone()
                .all(|(at, _)| lower[at..].starts_with("href=\"#"))
        );
        for tag in ["section", "svg", "table", "tbody", "dl", "div"] {
            let (open, close) = (format!("<{tag}"), format!("</{tag}>"));
            assert_eq!(count(&html, &open), count(&html, &close), "{tag}");
        }
        assert!(html.contains("<tr class=\"expired\"><td>CN=old</td>"));
        assert_only_known_markup(&html);
        let footer = html.split("<footer>generated <time datetime=\"").nth(1);
        let (time, rest) = footer.unwrap().split_once('"').unwrap();
        chrono::DateTime::parse_from_rfc3339(time).unwrap();
        assert!(rest.contains("</time> by Certkeeper</footer>"));
    }

    #[test]
    fn bar_chart_draws_a_rect_per_bar_with_an_accessible_fallback() {
        let bars = pairs(&[("valid", 1234), ("expiring", 56), ("expired", 7)]);
        let html = render(|r| r.bar_chart("Certificates by status", &bars));
        assert_eq!((count(&html, "<svg"), count(&html, "<rect")), (1, 3));
        assert!(html.contains("role=\"img\""));
        assert!(html.contains("<title id=\"chart-1-title\">Certificates by status</title>"));
        let fallback = html
            .split("<table class=\"visually-hidden\">")
            .nth(1)
            .unwrap();
        for (label, value) in &bars {
            assert!(fallback.contains(&format!("<tr><td>{label}</td><td>{value}</td></tr>")));
        }
        let long = "x".repeat(100);
        let html = render(|r| r.bar_chart("Long", &[(long.clone(), 1)]));
        assert!(html.contains(&format!(">{}…</text>", &long[..LABEL_MAX_CHARS - 1])));
        assert!(html.contains(&format!("<td>{long}</td>")));
    }

    #[test]
    fn column_chart_draws_every_column_and_thins_crowded_labels() {
        let months = pairs(&[("Jan", 3), ("Feb", 0), ("Mar", 12), ("Apr", 7)]);
        let html = render(|r| r.column_chart("Expiries per month", &months));
        assert_eq!(count(&html, "<rect"), 4);
        assert_eq!(count(&html, "class=\"x-label\""), 4);
        assert!(html.contains(">Mar</text>") && html.contains("<td>Mar</td><td>12</td>"));
        assert!(
            html.contains(">15</text>"),
            "the y axis ends on a round tick"
        );
        let weeks: Vec<_> = (0..200).map(|w| (format!("2025-W{w:03}"), w)).collect();
        let html = render(|r| r.column_chart("Expiries per week", &weeks));
        assert_eq!(count(&html, "<rect"), 200);
        let labels = count(&html, "class=\"x-label\"");
        assert!(
            (2..50).contains(&labels),
            "{labels} x labels for 200 columns"
        );
        assert!(html.contains(">2025-W000</text>"));
        assert!(html.contains("<tr><td>2025-W199</td><td>199</td></tr>"));
        assert_eq!([nice_step(0), nice_step(1234)], [1, 500]);
    }

    #[test]
    fn empty_data_says_so_and_misuse_is_refused() {
        let mut report = HtmlReport::new(Vec::new(), "t", "s").unwrap();
        report.bar_chart("By issuer", &[]).unwrap();
        report.column_chart("Per week", &[]).unwrap();
        let error = report.row(&["early"]).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        assert!(report.table_end().is_err());
        report.table_start(&["a", "b"]).unwrap();
        let error = report.row(&["one"]).unwrap_err();
        assert!(error.to_string().contains("1 cells"));
        assert!(report.bar_chart("inside a table", &[]).is_err());
        let html = String::from_utf8(report.finish().unwrap()).unwrap();
        assert!(!html.contains("<svg"));
        assert_eq!(count(&html, "<p class=\"no-data\">No data.</p>"), 2);
        assert!(html.contains(">By issuer</h2>") && html.contains(">Per week</h2>"));
        assert!(html.contains("<td class=\"no-data\" colspan=\"2\">No rows.</td>"));
        assert!(
            html.contains("</table>\n</div>\n</main>"),
            "finish closes the table"
        );
    }

    /// Counts bytes and keeps none, so any growth in memory would be the report's own.
    struct Counter(Rc<Cell<u64>>);

    impl Write for Counter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.set(self.0.get() + buf.len() as u64);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn rows_stream_to_the_writer_as_they_are_written() {
        const ROWS: u64 = 100_000;
        let written = Rc::new(Cell::new(0));
        let mut report = HtmlReport::new(Counter(Rc::clone(&written)), "All", "").unwrap();
        report
            .table_start(&["subject", "not_after", "days_left"])
            .unwrap();
        let start = Instant::now();
        for i in 0..ROWS {
            let before = written.get();
            let subject = format!("CN=host-{i}.example.com");
            report
                .row(&[subject.as_str(), "2030-01-01", "1234"])
                .unwrap();
            // The row reached the writer before the next is asked for: nothing is held back.
            assert!(written.get() > before, "row {i} was buffered");
        }
        let seconds = start.elapsed().as_secs_f64();
        report.finish().unwrap();
        assert!(written.get() > ROWS * 60);
        let (rate, bytes) = (ROWS as f64 / seconds, written.get());
        println!("{ROWS} rows, {bytes} bytes, in {seconds:.3} s: {rate:.0} rows/s");
    }
}
