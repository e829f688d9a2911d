//! Streaming PDF report writer: a title, an optional summary and bar chart, and
//! a table of any length, on landscape A4 pages.
//!
//! # Output
//! Every page carries the report title at its top and `page N` in its footer;
//! page 1 also carries the subtitle, then the [`PdfReport::summary`] lines and
//! [`PdfReport::bar_chart`] (drawn with vector paths), then the table. The
//! table's header row is repeated, bold and ruled, on every page; rows are
//! shaded alternately and each cell is cut to its column with an ellipsis.
//! Text is real text, so it can be selected, searched and extracted
//! (`pdftotext` gives back the cells).
//!
//! # Streaming
//! Memory does not grow with the number of rows. Only the current page's
//! content stream is held; when it is full it is compressed (zlib, as
//! `FlateDecode`) and written to the output together with its page dictionary,
//! each serialized by a `pdf_writer::Chunk`. Object numbers are fixed in
//! advance (1 catalog, 2 page tree, 3-4 fonts, 5 info, then content and page
//! per page), so a page can name its parent before the page tree exists. What
//! accumulates is one byte offset per object (16 bytes a page); `finish`
//! writes the page tree, the catalog and then the cross-reference table and
//! trailer by hand from those offsets, since `pdf_writer::Pdf` only writes an
//! xref for a document it holds whole. Pass a `BufWriter` for files.
//!
//! # Fonts and text
//! The base-14 fonts Helvetica and Helvetica-Bold are referenced, not embedded,
//! with `WinAnsiEncoding`: text is mapped to Windows-1252, characters outside
//! it (CJK, emoji, most non-Latin scripts) print as `?` and control characters
//! as spaces. Widths come from Adobe's Helvetica AFM metrics below.

use std::io::{self, Write};

use pdf_writer::writers::{Catalog, DocumentInfo};
use pdf_writer::{Chunk, Content, Filter, Name, Rect, Ref, Str, TextStr};

/// One table column.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Header text, printed bold on every page.
    pub header: String,
    /// Relative width: the table's width is shared out in proportion to it.
    pub width: f32,
}

const PAGE_W: f32 = 841.89;
const PAGE_H: f32 = 595.28;
const MARGIN: f32 = 36.0;
const TABLE_W: f32 = PAGE_W - 2.0 * MARGIN;
const ROW_H: f32 = 14.0;
const SIZE: f32 = 9.0;
const PAD: f32 = 3.0;
const CATALOG: Ref = Ref::new(1);
const PAGE_TREE: Ref = Ref::new(2);
/// Objects 3 and 4 are the fonts, 5 the document info; pages start here.
const FIRST_PAGE_ID: usize = 6;
const ELLIPSIS: u8 = 0x85;
const REGULAR: Font = Font(Name(b"F1"), &HELVETICA);
const BOLD: Font = Font(Name(b"F2"), &HELVETICA_BOLD);

/// Helvetica advance widths (1/1000 em) for WinAnsi codes 32..=255, from
/// Adobe's core-14 `Helvetica.afm` (mu is 556 there; later revisions say 578).
/// The five codes Windows-1252 leaves undefined are 0: they are never emitted.
#[rustfmt::skip]
const HELVETICA: [u16; 224] = [
    278,278,355,556,556,889,667,191,333,333,389,584,278,333,278,278, // 32
    556,556,556,556,556,556,556,556,556,556,278,278,584,584,584,556, // 48
    1015,667,667,722,722,667,611,778,722,278,500,667,556,833,722,778, // 64
    667,778,722,667,611,722,667,944,667,667,611,278,278,278,469,556, // 80
    333,556,556,500,556,556,278,556,556,222,222,500,222,833,556,556, // 96
    556,556,333,500,278,556,500,722,500,500,500,334,260,334,584,0, // 112
    556,0,222,556,333,1000,556,556,333,1000,667,333,1000,0,611,0, // 128
    0,222,222,333,333,350,556,1000,333,1000,500,333,944,0,500,667, // 144
    278,333,556,556,556,556,260,556,333,737,370,556,584,333,737,333, // 160
    400,584,333,333,333,556,537,278,333,333,365,556,834,834,834,611, // 176
    667,667,667,667,667,667,1000,722,667,667,667,667,278,278,278,278, // 192
    722,722,778,778,778,778,778,584,778,722,722,722,722,667,667,611, // 208
    556,556,556,556,556,556,889,500,556,556,556,556,278,278,278,278, // 224
    556,556,556,556,556,556,556,584,611,556,556,556,556,500,556,500, // 240
];

/// Helvetica-Bold advance widths, from Adobe's `Helvetica-Bold.afm`.
#[rustfmt::skip]
const HELVETICA_BOLD: [u16; 224] = [
    278,333,474,556,556,889,722,238,333,333,389,584,278,333,278,278, // 32
    556,556,556,556,556,556,556,556,556,556,333,333,584,584,584,611, // 48
    975,722,722,722,722,667,611,778,722,278,556,722,611,833,722,778, // 64
    667,778,722,667,611,722,667,944,667,667,611,333,278,333,584,556, // 80
    333,556,611,556,611,556,333,611,611,278,278,556,278,889,611,611, // 96
    611,611,389,556,333,611,556,778,556,556,500,389,280,389,584,0, // 112
    556,0,278,556,500,1000,556,556,333,1000,667,333,1000,0,611,0, // 128
    0,278,278,500,500,350,556,1000,333,1000,556,333,944,0,500,667, // 144
    278,333,556,556,556,556,280,556,333,737,370,556,584,333,737,333, // 160
    400,584,333,333,333,611,556,278,333,333,365,556,834,834,834,611, // 176
    722,722,722,722,722,722,1000,722,667,667,667,667,278,278,278,278, // 192
    722,722,778,778,778,778,778,584,778,722,722,722,722,667,667,611, // 208
    556,556,556,556,556,556,889,556,556,556,556,556,278,278,278,278, // 224
    611,611,611,611,611,611,611,584,611,611,611,611,611,556,611,556, // 240
];

/// Unicode characters of Windows-1252 codes 0x80..=0x9F (`\0` = undefined).
const CP1252_HIGH: [char; 32] = [
    '€', '\0', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\0', 'Ž', '\0', '\0', '‘',
    '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\0', 'ž', 'Ÿ',
];

/// The WinAnsi byte for `c`: `?` outside Windows-1252, a space for controls.
fn winansi(c: char) -> u8 {
    match c {
        ' '..='~' | '\u{A0}'..='\u{FF}' => c as u8,
        '\0'..='\u{1F}' | '\u{7F}'..='\u{9F}' => b' ',
        _ => match CP1252_HIGH.iter().position(|&h| h == c && h != '\0') {
            Some(i) => 0x80 + i as u8,
            None => b'?',
        },
    }
}

/// A base-14 font: its resource name on every page and its AFM widths.
#[derive(Clone, Copy)]
struct Font(Name<'static>, &'static [u16; 224]);

impl Font {
    fn glyph(self, byte: u8) -> u32 {
        u32::from(self.1[usize::from(byte.max(32)) - 32])
    }

    /// Width in points of encoded text.
    fn measure(self, text: &[u8], size: f32) -> f32 {
        text.iter().map(|&b| self.glyph(b)).sum::<u32>() as f32 * size / 1000.0
    }

    /// Encodes `text` into `out`, cut to `max_w` points with a trailing
    /// ellipsis; reading stops at the cut, so a huge cell costs no more.
    fn fit(self, out: &mut Vec<u8>, text: &str, size: f32, max_w: f32) {
        out.clear();
        let limit = (max_w.max(0.0) * 1000.0 / size) as u32;
        let (ellipsis, mut used, mut cut) = (self.glyph(ELLIPSIS), 0, 0);
        for byte in text.chars().map(winansi) {
            if used + ellipsis <= limit {
                cut = out.len();
            }
            used += self.glyph(byte);
            if used > limit {
                out.truncate(cut);
                out.extend((ellipsis <= limit).then_some(ELLIPSIS));
                return;
            }
            out.push(byte);
        }
    }

    fn encode(self, text: &str, size: f32, max_w: f32) -> Vec<u8> {
        let mut out = Vec::new();
        self.fit(&mut out, text, size, max_w);
        out
    }
}

fn show(page: &mut Content, font: Font, size: f32, (x, y): (f32, f32), text: &[u8]) {
    page.begin_text().set_font(font.0, size).next_line(x, y);
    page.show(Str(text)).end_text();
}

/// A PDF table report being written to `W`; see the module docs.
///
/// Call [`PdfReport::finish`]: a report dropped without it is an unreadable PDF.
pub struct PdfReport<W: Write> {
    out: W,
    /// Bytes written so far: where the next object starts.
    pos: u64,
    title: Vec<u8>,
    headers: Vec<Vec<u8>>,
    /// Column widths in points.
    widths: Vec<f32>,
    /// Byte offset of each object, indexed by object number - 1.
    offsets: Vec<u64>,
    /// Content stream of the page being filled.
    page: Content,
    /// Where the next line goes, in points from the bottom.
    cursor: f32,
    header_on_page: bool,
    table_started: bool,
    shade: bool,
    /// Reused encoding buffer for one cell.
    scratch: Vec<u8>,
}

impl<W: Write> PdfReport<W> {
    /// Writes the file header and starts page 1. Fails if the output fails,
    /// `columns` is empty, or a width is not a positive finite number.
    pub fn new(out: W, title: &str, subtitle: &str, columns: &[Column]) -> io::Result<Self> {
        let bad = |c: &Column| !(c.width.is_finite() && c.width > 0.0);
        if columns.is_empty() || columns.iter().any(bad) {
            return Err(invalid("a PDF report needs columns with positive widths"));
        }
        let total: f32 = columns.iter().map(|c| c.width).sum();
        let widths: Vec<f32> = columns.iter().map(|c| c.width / total * TABLE_W).collect();
        let headers = (columns.iter().zip(&widths))
            .map(|(c, w)| BOLD.encode(&c.header, SIZE, w - 2.0 * PAD))
            .collect();
        let mut report = Self {
            out,
            pos: 0,
            title: BOLD.encode(title, 14.0, TABLE_W),
            headers,
            widths,
            offsets: vec![0; FIRST_PAGE_ID - 1],
            page: Content::new(),
            cursor: 0.0,
            header_on_page: false,
            table_started: false,
            shade: false,
            scratch: Vec::new(),
        };
        report.put(b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n")?;
        let mut chunk = Chunk::new();
        for (id, base) in [(3, &b"Helvetica"[..]), (4, b"Helvetica-Bold")] {
            report.offsets[id - 1] = report.pos + chunk.len() as u64;
            (chunk.type1_font(Ref::new(id as i32)).base_font(Name(base)))
                .encoding_predefined(Name(b"WinAnsiEncoding"));
        }
        report.offsets[4] = report.pos + chunk.len() as u64;
        (chunk.indirect(Ref::new(5)).start::<DocumentInfo>())
            .title(TextStr(title))
            .producer(TextStr("Certkeeper"));
        report.put(chunk.as_bytes())?;
        report.start_page();
        if !subtitle.is_empty() {
            report.flow_line(REGULAR, 10.0, subtitle, 16.0);
        }
        Ok(report)
    }

    /// Pages so far, counting the one being filled.
    pub fn pages(&self) -> usize {
        self.pages_written() + 1
    }

    /// Prints `lines` on page 1 before the table. Lines that would not leave
    /// room for the table's first rows are dropped for a "... N more" line.
    /// Ignored once the table has started (the first row was written).
    pub fn summary(&mut self, lines: &[String]) {
        if self.table_started {
            return;
        }
        let (shown, hidden) = self.fitting(lines.len(), 13.0);
        for line in &lines[..shown] {
            self.flow_line(REGULAR, 10.0, line, 13.0);
        }
        self.more_line(hidden, 13.0);
        self.cursor -= 8.0;
    }

    /// Draws a horizontal bar chart on page 1 before the table: one labelled
    /// bar per entry, scaled to the largest value. Like [`Self::summary`],
    /// bars that do not fit are dropped for a note, and it is ignored late.
    pub fn bar_chart(&mut self, title: &str, bars: &[(String, u64)]) {
        if self.table_started || self.fitting(1, 17.0).0 == 0 {
            return;
        }
        self.flow_line(BOLD, 11.0, title, 17.0);
        let (label_w, value_w) = (180.0, 70.0);
        let (x0, span) = (MARGIN + label_w, TABLE_W - label_w - value_w);
        let max = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1) as f32;
        let (shown, hidden) = self.fitting(bars.len(), ROW_H);
        let top = self.cursor;
        for (label, value) in &bars[..shown] {
            let y = self.cursor - ROW_H;
            let text = REGULAR.encode(label, SIZE, label_w - 2.0 * PAD);
            let x = x0 - PAD - REGULAR.measure(&text, SIZE);
            show(&mut self.page, REGULAR, SIZE, (x, y + 4.0), &text);
            let len = *value as f32 / max * span;
            let (bar_y, bar_h) = (y + 2.0, ROW_H - 4.0);
            self.page
                .set_fill_rgb(0.25, 0.45, 0.7)
                .rect(x0, bar_y, len, bar_h);
            self.page.fill_nonzero().set_fill_gray(0.0);
            let (number, at) = (value.to_string(), (x0 + len + PAD, y + 4.0));
            show(&mut self.page, REGULAR, SIZE, at, number.as_bytes());
            self.cursor = y;
        }
        let page = self.page.set_line_width(0.5);
        page.move_to(x0, top).line_to(x0, self.cursor).stroke();
        self.more_line(hidden, ROW_H);
        self.cursor -= 10.0;
    }

    /// Appends one table row; missing cells are blank. Fails if the output
    /// fails or there are more cells than columns.
    pub fn row(&mut self, cells: &[String]) -> io::Result<()> {
        if cells.len() > self.widths.len() {
            return Err(invalid("a PDF report row has more cells than columns"));
        }
        self.make_room()?;
        let y = self.cursor - ROW_H;
        if self.shade {
            self.page
                .set_fill_gray(0.93)
                .rect(MARGIN, y, TABLE_W, ROW_H);
            self.page.fill_nonzero().set_fill_gray(0.0);
        }
        self.page.begin_text().set_font(REGULAR.0, SIZE);
        let mut at = (MARGIN + PAD, y + 4.0);
        for (cell, &w) in cells.iter().zip(&self.widths) {
            REGULAR.fit(&mut self.scratch, cell, SIZE, w - 2.0 * PAD);
            self.page.next_line(at.0, at.1).show(Str(&self.scratch));
            at = (w, 0.0); // Td is relative to the previous cell's start.
        }
        self.page.end_text();
        (self.cursor, self.shade) = (y, !self.shade);
        Ok(())
    }

    /// Writes the last page, the page tree, catalog, xref table and trailer,
    /// flushes and returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.make_room()?;
        self.end_page()?;
        let count = i32::try_from(self.pages_written()).map_err(|_| invalid("too many pages"))?;
        let mut chunk = Chunk::new();
        self.offsets[PAGE_TREE.get() as usize - 1] = self.pos;
        let mut tree = chunk.pages(PAGE_TREE);
        tree.kids((0..count).map(|k| Ref::new(FIRST_PAGE_ID as i32 + 2 * k + 1)));
        let fonts = [(REGULAR.0, Ref::new(3)), (BOLD.0, Ref::new(4))];
        tree.count(count).resources().fonts().pairs(fonts);
        drop(tree);
        self.offsets[CATALOG.get() as usize - 1] = self.pos + chunk.len() as u64;
        chunk.indirect(CATALOG).start::<Catalog>().pages(PAGE_TREE);
        self.put(chunk.as_bytes())?;

        // The xref table: fixed 20-byte entries, written in batches.
        let (xref, offsets) = (self.pos, std::mem::take(&mut self.offsets));
        let size = offsets.len() + 1;
        let mut buf = format!("xref\n0 {size}\n0000000000 65535 f\r\n").into_bytes();
        for batch in offsets.chunks(1024) {
            for offset in batch {
                write!(buf, "{offset:010} 00000 n\r\n")?;
            }
            self.put(&buf)?;
            buf.clear();
        }
        write!(buf, "trailer\n<< /Size {size} /Root 1 0 R /Info 5 0 R >>\n")?;
        write!(buf, "startxref\n{xref}\n%%EOF\n")?;
        self.put(&buf)?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.pos += bytes.len() as u64;
        Ok(())
    }

    fn pages_written(&self) -> usize {
        (self.offsets.len() + 1 - FIRST_PAGE_ID) / 2
    }

    /// Makes room for a row, starting a page if needed, with the header above.
    fn make_room(&mut self) -> io::Result<()> {
        let needed = if self.header_on_page { 1.0 } else { 2.0 } * ROW_H;
        if self.cursor - needed < MARGIN {
            self.end_page()?;
            self.start_page();
        }
        if !self.header_on_page {
            self.header();
        }
        Ok(())
    }

    fn start_page(&mut self) {
        let title_at = (MARGIN, PAGE_H - MARGIN - 14.0);
        show(&mut self.page, BOLD, 14.0, title_at, &self.title);
        self.cursor = PAGE_H - MARGIN - 22.0;
        self.header_on_page = false;
    }

    /// Writes the current page (content stream, then page dictionary).
    fn end_page(&mut self) -> io::Result<()> {
        let label = format!("page {}", self.pages()).into_bytes();
        let x = PAGE_W - MARGIN - REGULAR.measure(&label, 8.0);
        show(&mut self.page, REGULAR, 8.0, (x, MARGIN - 16.0), &label);
        let content = std::mem::replace(&mut self.page, Content::new()).finish();
        let data = miniz_oxide::deflate::compress_to_vec_zlib(&content, 6);
        let id = (i32::try_from(self.offsets.len() + 1).ok())
            .filter(|id| *id < i32::MAX)
            .ok_or_else(|| invalid("too many pages"))?;
        let (content_id, page_id) = (Ref::new(id), Ref::new(id + 1));
        let mut chunk = Chunk::with_capacity(data.len() + 200);
        chunk.stream(content_id, &data).filter(Filter::FlateDecode);
        let page_at = chunk.len() as u64;
        (chunk.page(page_id).parent(PAGE_TREE))
            .media_box(Rect::new(0.0, 0.0, PAGE_W, PAGE_H))
            .contents(content_id);
        let start = self.pos;
        self.put(chunk.as_bytes())?;
        self.offsets.extend([start, start + page_at]);
        Ok(())
    }

    /// Draws the bold, ruled header row at the cursor.
    fn header(&mut self) {
        let y = self.cursor - ROW_H;
        self.page.begin_text().set_font(BOLD.0, SIZE);
        let mut at = (MARGIN + PAD, y + 4.0);
        for (text, &w) in self.headers.iter().zip(&self.widths) {
            self.page.next_line(at.0, at.1).show(Str(text));
            at = (w, 0.0);
        }
        let (right, rule_y) = (MARGIN + TABLE_W, y + 1.0);
        let page = self.page.end_text().set_line_width(0.75);
        page.move_to(MARGIN, rule_y).line_to(right, rule_y).stroke();
        self.cursor = y;
        (self.header_on_page, self.table_started) = (true, true);
    }

    /// Draws one line of text at the left margin below the cursor.
    fn flow_line(&mut self, font: Font, size: f32, text: &str, advance: f32) {
        let text = font.encode(text, size, TABLE_W);
        let at = (MARGIN, self.cursor - size);
        show(&mut self.page, font, size, at, &text);
        self.cursor -= advance;
    }

    /// How many of `n` lines of height `h` fit on page 1 while leaving room
    /// for the table header and one row (and a "more" line if some are cut).
    fn fitting(&self, n: usize, h: f32) -> (usize, usize) {
        let room = ((self.cursor - MARGIN - 2.0 * ROW_H - 10.0) / h).max(0.0) as usize;
        let shown = if n <= room { n } else { room.saturating_sub(1) };
        (shown, n - shown)
    }

    fn more_line(&mut self, hidden: usize, h: f32) {
        if hidden > 0 && self.cursor - h >= MARGIN {
            self.flow_line(REGULAR, SIZE, &format!("... {hidden} more"), h);
        }
    }
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    const HEADERS: [&str; 4] = ["Subject", "Issuer", "Expires", "Status"];

    fn columns() -> Vec<Column> {
        let headers = HEADERS.iter().map(|h| h.to_string());
        let columns = headers.zip([3.0, 2.0, 1.5, 1.0]);
        columns
            .map(|(header, width)| Column { header, width })
            .collect()
    }

    fn cells(i: usize) -> Vec<String> {
        let status = if i.is_multiple_of(3) { "renew" } else { "ok" };
        let host = format!("host-{i}.example.org");
        let expires = format!("2027-01-{:02}", i % 28 + 1);
        vec![host, "Example CA R3".into(), expires, status.into()]
    }

    fn report(rows: usize, edit: impl FnOnce(&mut PdfReport<Vec<u8>>)) -> (Vec<u8>, usize) {
        let mut r = PdfReport::new(Vec::new(), "Certificates", "Inventory", &columns()).unwrap();
        edit(&mut r);
        for i in 0..rows {
            r.row(&cells(i)).unwrap();
        }
        let pages = r.pages();
        (r.finish().unwrap(), pages)
    }

    /// `pdfinfo`'s page count and `pdftotext -layout`'s text; both tools
    /// (Debian poppler-utils) must succeed without a complaint.
    fn extract(pdf: &[u8]) -> (usize, String) {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), pdf).unwrap();
        let path = file.path().to_str().unwrap();
        let run = |tool: &str, args: &[&str]| {
            let out = Command::new(tool).args(args).output();
            let out = out.unwrap_or_else(|e| panic!("{tool} (poppler-utils): {e}"));
            let stderr = String::from_utf8_lossy(&out.stderr);
            let ok = out.status.success() && stderr.is_empty();
            assert!(ok, "{tool}: {stderr}");
            String::from_utf8(out.stdout).unwrap()
        };
        let info = run("pdfinfo", &[path]);
        let pages = info.lines().find_map(|l| l.strip_prefix("Pages:")).unwrap();
        let text = run("pdftotext", &["-layout", path, "-"]);
        (pages.trim().parse().unwrap(), text)
    }

    #[test]
    fn small_report_extracts_headers_cells_summary_and_chart() {
        let (pdf, _) = report(3, |r| {
            r.summary(&["42 certificates, 3 expiring".into()]);
            let bars = [("this week".into(), 2), ("next".into(), 1)];
            r.bar_chart("Expiring by week", &bars);
        });
        let (pages, text) = extract(&pdf);
        assert_eq!(pages, 1);
        let fixed = "Certificates|Inventory|42 certificates, 3 expiring|this week";
        let fixed = fixed.split('|').chain(HEADERS).chain(["Expiring by week"]);
        for needle in (0..3).flat_map(cells).chain(fixed.map(String::from)) {
            assert!(text.contains(&needle), "{needle:?} missing from:\n{text}");
        }
        assert!(text.trim_end().ends_with("page 1"), "{text}");
    }

    #[test]
    fn long_report_repeats_title_and_header_and_numbers_pages() {
        let (pdf, pages) = report(5000, |_| {});
        let (info_pages, text) = extract(&pdf);
        assert!(
            pages > 100 && info_pages == pages,
            "{pages} vs {info_pages}"
        );
        let texts = text.split('\x0c').filter(|p| !p.trim().is_empty());
        assert_eq!(texts.clone().count(), pages);
        for (i, page) in texts.enumerate() {
            let heads = HEADERS.iter().chain(&["Certificates"]);
            assert!(heads.into_iter().all(|h| page.contains(h)), "{page}");
            let number = format!("page {}", i + 1);
            assert!(page.trim_end().ends_with(&number), "{page}");
        }
        assert!(text.contains("host-4999.example.org"));
    }

    #[test]
    fn latin1_survives_cjk_becomes_question_mark_and_long_cells_are_cut() {
        let long = "x".repeat(500);
        let row = ["café Müller €5".into(), "a証b".into(), long.clone()];
        let text = extract(&report(0, |r| r.row(&row).unwrap()).0).1;
        assert!(text.contains("café Müller €5"), "{text}");
        assert!(text.contains("a?b") && !text.contains('証'), "{text}");
        assert!(text.contains("x…") && !text.contains(&long), "{text}");
    }

    #[test]
    fn empty_report_is_a_valid_pdf_with_headers() {
        let (pdf, pages) = report(0, |_| {});
        let (info_pages, text) = extract(&pdf);
        assert_eq!((pages, info_pages), (1, 1));
        assert!(
            text.contains("Subject") && text.contains("page 1"),
            "{text}"
        );
    }

    #[test]
    fn bad_columns_and_rows_are_refused() {
        let mut zero = columns();
        zero[0].width = 0.0;
        assert!(PdfReport::new(Vec::new(), "t", "", &zero).is_err());
        assert!(PdfReport::new(Vec::new(), "t", "", &[]).is_err());
        let mut r = PdfReport::new(Vec::new(), "t", "", &columns()).unwrap();
        assert!(r.row(&vec![String::new(); 5]).is_err());
    }

    #[test]
    fn retained_state_grows_with_pages_not_rows() {
        let (rows, start) = (200_000, std::time::Instant::now());
        let mut r = PdfReport::new(io::sink(), "Big", "", &columns()).unwrap();
        for i in 0..rows {
            r.row(&cells(i)).unwrap();
            assert!(r.page.len() < 16 * 1024, "page buffer {}", r.page.len());
        }
        let (pages, bytes) = (r.pages(), r.pos);
        assert!(pages > rows / 60, "{pages} pages");
        assert!(
            r.offsets.capacity() <= 4 * pages + 16,
            "{}",
            r.offsets.capacity()
        );
        assert!(r.scratch.capacity() <= 256, "{}", r.scratch.capacity());
        r.finish().unwrap();
        let secs = start.elapsed().as_secs_f64();
        let rate = rows as f64 / secs;
        println!("{rows} rows, {pages} pages, {bytes} B in {secs:.2}s: {rate:.0} rows/s");
    }
}
