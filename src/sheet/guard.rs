//! Pre-flight checks that run before calamine sees a zip-based workbook.
//!
//! calamine trusts the archive: it loads `sharedStrings.xml` whole when a workbook is
//! opened, buffers whatever text sits between two XML tags, sizes xlsb record buffers by
//! the length a record declares, and builds a dense `Range` for every ODS table. A few KB of
//! hostile zip can therefore cost gigabytes (measured in issue 4: 6.3 GB for one declared
//! 2 GB shared string, 4.2 GB for 4 GB of compressed whitespace). This module reads the
//! central directory and streams every part calamine will parse, with small fixed buffers,
//! and refuses the file with a named rule before calamine allocates anything.

use std::io::{BufReader, Read};

use quick_xml::events::{BytesStart, Event};

use crate::format::{FileError, Limits};

mod zip;

pub(crate) use self::zip::check_zip;

/// Excel's grid (also what calamine's ODS reader caps repeats at).
pub(crate) const MAX_ROWS: u64 = 1_048_576;
pub(crate) const MAX_COLS: u64 = 16_384;

/// The workbook flavour found inside a zip container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ZipKind {
    Xlsx,
    Xlsb,
    Ods,
}

/// Most cells the dense `Range` calamine builds for a whole ODS document may hold: one
/// `Data` per cell, kept within the per-entry memory budget.
pub(crate) fn cell_budget(limits: &Limits) -> u64 {
    limits.max_zip_entry_bytes / std::mem::size_of::<calamine::Data>() as u64
}

/// A scan failure, before it is told which entry it happened in.
#[derive(Debug)]
pub(crate) struct ScanError {
    rule: &'static str,
    message: String,
}

impl ScanError {
    fn new(rule: &'static str, message: impl Into<String>) -> Self {
        ScanError {
            rule,
            message: message.into(),
        }
    }

    fn in_entry(self, name: &str) -> FileError {
        FileError::new(self.rule, format!("zip entry '{name}': {}", self.message))
    }

    #[cfg(test)]
    pub(crate) fn rule(&self) -> &str {
        self.rule
    }
}

/// Counts decompressed bytes and stops at the cap, whatever the header declared.
struct CountingReader<R> {
    inner: R,
    count: u64,
    cap: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        if self.count > self.cap {
            return Err(std::io::Error::other(EntryTooLarge(self.cap)));
        }
        Ok(n)
    }
}

#[derive(Debug)]
struct EntryTooLarge(u64);

impl std::fmt::Display for EntryTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "expands past {} bytes", self.0)
    }
}

impl std::error::Error for EntryTooLarge {}

fn read_error(e: std::io::Error) -> ScanError {
    if let Some(t) = e.get_ref().and_then(|i| i.downcast_ref::<EntryTooLarge>()) {
        return ScanError::new(
            "zip-entry-too-large",
            format!("{t} uncompressed (more than its header declared or the limit)"),
        );
    }
    // The zip crate stops an entry at its declared size itself; that is the lying-header
    // case, not corruption.
    if e.to_string().contains("larger than its declared") {
        return ScanError::new(
            "zip-entry-too-large",
            format!("expands past its declared uncompressed size ({e})"),
        );
    }
    ScanError::new("sheet-corrupt", format!("cannot be decompressed: {e}"))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum XmlState {
    Text,
    /// Just after `<`.
    Open,
    /// Inside a start or end tag; `closing` for `</...>`, `quote` while in an attribute value.
    Tag {
        closing: bool,
        quote: u8,
    },
    /// After `<!`, collecting up to 8 bytes to tell a comment, CDATA or declaration apart.
    Bang,
    Comment,
    CData,
    Pi,
}

/// Streams XML bytes through a small state machine that bounds every token (text run, tag,
/// comment, CDATA section, processing instruction) to `max_record_bytes` and the element
/// nesting to `max_depth`. quick-xml buffers a whole token before handing it over, so this is
/// what keeps calamine's per-event buffers small. It is deliberately not a validator: it
/// over-approximates, and calamine still rejects malformed XML with its own error.
pub(crate) fn scan_xml<R: Read>(reader: &mut R, limits: &Limits) -> Result<(), ScanError> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut scan = XmlScan {
        state: XmlState::Text,
        token: 0,
        depth: 0,
        prev: 0,
        prev2: 0,
        bang: [0u8; 8],
        bang_len: 0,
    };
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_error(e)),
        };
        for &b in &buf[..n] {
            scan.byte(b, limits)?;
        }
    }
}

/// Where [`scan_xml`] stands between two bytes.
struct XmlScan {
    state: XmlState,
    /// Bytes of the current token so far.
    token: u64,
    depth: u32,
    /// The last two bytes, for the two-byte ends of comments, CDATA and `/>`.
    prev: u8,
    prev2: u8,
    /// The bytes after `<!` so far (see [`XmlState::Bang`]).
    bang: [u8; 8],
    bang_len: usize,
}

impl XmlScan {
    /// Moves the state machine on by one byte, then bounds the token it is part of.
    #[inline]
    fn byte(&mut self, b: u8, limits: &Limits) -> Result<(), ScanError> {
        self.token += 1;
        match self.state {
            XmlState::Text => {
                if b == b'<' {
                    self.state = XmlState::Open;
                    self.token = 1;
                }
            }
            XmlState::Open => self.open(b, limits)?,
            XmlState::Tag { closing, quote } => self.tag(b, closing, quote),
            XmlState::Bang => {
                if self.bang(b) {
                    // The `prev`s it just cleared must stay clear, so the rest is skipped
                    // (the token check waits for the next byte).
                    return Ok(());
                }
            }
            XmlState::Comment => {
                if b == b'>' && self.prev == b'-' && self.prev2 == b'-' {
                    self.state = XmlState::Text;
                    self.token = 0;
                }
            }
            XmlState::CData => {
                if b == b'>' && self.prev == b']' && self.prev2 == b']' {
                    self.state = XmlState::Text;
                    self.token = 0;
                }
            }
            XmlState::Pi => {
                if b == b'>' && self.prev == b'?' {
                    self.state = XmlState::Text;
                    self.token = 0;
                }
            }
        }
        let max_token = limits.max_record_bytes;
        if self.token > max_token {
            return Err(ScanError::new(
                "sheet-xml-token-too-long",
                format!(
                    "an XML text run, tag or comment is longer than {max_token} bytes \
                     (max_record_bytes)"
                ),
            ));
        }
        self.prev2 = self.prev;
        self.prev = b;
        Ok(())
    }

    /// The byte after `<`: an end tag, a processing instruction, a `<!` construct, or a
    /// start tag one level deeper.
    fn open(&mut self, b: u8, limits: &Limits) -> Result<(), ScanError> {
        match b {
            b'/' => {
                self.depth = self.depth.saturating_sub(1);
                self.state = XmlState::Tag {
                    closing: true,
                    quote: 0,
                };
            }
            b'?' => self.state = XmlState::Pi,
            b'!' => {
                self.state = XmlState::Bang;
                self.bang_len = 0;
            }
            _ => {
                self.depth += 1;
                if self.depth > limits.max_depth {
                    return Err(ScanError::new(
                        "sheet-xml-too-deep",
                        format!("XML nests deeper than {} elements", limits.max_depth),
                    ));
                }
                self.state = XmlState::Tag {
                    closing: false,
                    quote: 0,
                };
            }
        }
        Ok(())
    }

    /// A byte inside a tag: quotes hide `>` in attribute values, and `/>` closes what it opened.
    fn tag(&mut self, b: u8, closing: bool, quote: u8) {
        if quote != 0 {
            if b == quote {
                self.state = XmlState::Tag { closing, quote: 0 };
            }
        } else if b == b'"' || b == b'\'' {
            self.state = XmlState::Tag { closing, quote: b };
        } else if b == b'>' {
            if !closing && self.prev == b'/' {
                self.depth = self.depth.saturating_sub(1);
            }
            self.state = XmlState::Text;
            self.token = 0;
        }
    }

    /// A byte after `<!`; true once it opened a comment or CDATA section.
    fn bang(&mut self, b: u8) -> bool {
        let bang = &mut self.bang;
        if self.bang_len < bang.len() {
            bang[self.bang_len] = b;
            self.bang_len += 1;
        }
        let seen = &bang[..self.bang_len];
        if *seen == *b"--" {
            self.state = XmlState::Comment;
            // So `<!-->` is not taken as the end of the comment.
            self.prev = 0;
            self.prev2 = 0;
            true
        } else if *seen == *b"[CDATA[" {
            self.state = XmlState::CData;
            self.prev = 0;
            self.prev2 = 0;
            true
        } else {
            if !b"--".starts_with(seen) && !b"[CDATA[".starts_with(seen) {
                // A declaration (`<!DOCTYPE ...>`): no depth change, ends at `>`
                // (`closing` only means "do not treat `/>` as closing").
                self.state = if b == b'>' {
                    self.token = 0;
                    XmlState::Text
                } else {
                    XmlState::Tag {
                        closing: true,
                        quote: 0,
                    }
                };
            }
            false
        }
    }
}

/// Walks the xlsb record stream (type varint, length varint, payload) without allocating
/// payloads: calamine resizes its buffer to whatever length a record declares (up to
/// 256 MiB from 4 bytes of input).
pub(crate) fn scan_xlsb_records<R: Read>(reader: &mut R, limits: &Limits) -> Result<(), ScanError> {
    let mut r = BufReader::new(reader);
    let mut byte = [0u8; 1];
    let mut read_u8 = |r: &mut BufReader<&mut R>| -> Result<Option<u8>, ScanError> {
        loop {
            match r.read(&mut byte) {
                Ok(0) => return Ok(None),
                Ok(_) => return Ok(Some(byte[0])),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(read_error(e)),
            }
        }
    };
    let truncated = || ScanError::new("sheet-corrupt", "xlsb record stream is truncated");
    loop {
        let Some(b) = read_u8(&mut r)? else {
            return Ok(());
        };
        if b & 0x80 != 0 && read_u8(&mut r)?.is_none() {
            return Err(truncated());
        }
        let mut len: u64 = 0;
        for i in 0..4 {
            let b = read_u8(&mut r)?.ok_or_else(truncated)?;
            len |= u64::from(b & 0x7F) << (7 * i);
            if b & 0x80 == 0 {
                break;
            }
        }
        if len > limits.max_record_bytes {
            return Err(ScanError::new(
                "sheet-record-too-large",
                format!(
                    "an xlsb record declares {len} bytes (limit {}, max_record_bytes)",
                    limits.max_record_bytes
                ),
            ));
        }
        let skipped =
            std::io::copy(&mut (&mut r).take(len), &mut std::io::sink()).map_err(read_error)?;
        if skipped < len {
            return Err(truncated());
        }
    }
}

fn attr_u64(e: &BytesStart, key: &str) -> Option<u64> {
    e.attributes()
        .flatten()
        .find(|a| a.key.as_ref() == key)
        .and_then(|a| a.value.trim().parse().ok())
}

fn has_attr(e: &BytesStart, key: &str) -> bool {
    e.attributes().flatten().any(|a| a.key.as_ref() == key)
}

/// Estimates the dense grid calamine's ODS reader builds (all tables at open time: it
/// expands `number-rows-repeated` / `number-columns-repeated` up to the last non-empty
/// cell) and refuses it past [`cell_budget`]. Runs after [`scan_xml`], so every event is
/// small.
pub(crate) fn check_ods_cells<R: std::io::BufRead>(
    reader: R,
    limits: &Limits,
) -> Result<(), ScanError> {
    let mut xml = quick_xml::Reader::from_reader(reader);
    let mut buf = Vec::with_capacity(1024);
    let budget = cell_budget(limits);
    let mut total: u64 = 0;
    // Per table: rows seen, height up to the last row with content, widest row extent.
    let (mut rows, mut height, mut width) = (0u64, 0u64, 0u64);
    // Per row: repeat count, columns seen, extent up to the last non-empty cell.
    let (mut row_rep, mut cols, mut extent) = (1u64, 0u64, 0u64);
    loop {
        buf.clear();
        let ev = xml.read_event_into(&mut buf).map_err(|e| {
            ScanError::new(
                "sheet-corrupt",
                format!("content.xml is not valid XML: {e}"),
            )
        })?;
        let (start, empty) = match &ev {
            Event::Start(e) => (Some(e), false),
            Event::Empty(e) => (Some(e), true),
            Event::End(e) => {
                match e.local_name().as_ref() {
                    "table-row" => {
                        rows = rows.saturating_add(row_rep).min(MAX_ROWS);
                        if extent > 0 {
                            height = rows;
                            width = width.max(extent);
                        }
                    }
                    "table" => {
                        total = total.saturating_add(height.saturating_mul(width));
                        (rows, height, width) = (0, 0, 0);
                    }
                    _ => {}
                }
                (None, false)
            }
            Event::Eof => break,
            _ => (None, false),
        };
        if let Some(e) = start {
            match e.local_name().as_ref() {
                "table" if !empty => (rows, height, width) = (0, 0, 0),
                "table-row" => {
                    row_rep = attr_u64(e, "table:number-rows-repeated")
                        .unwrap_or(1)
                        .clamp(1, MAX_ROWS);
                    (cols, extent) = (0, 0);
                    if empty {
                        rows = rows.saturating_add(row_rep).min(MAX_ROWS);
                    }
                }
                "table-cell" | "covered-table-cell" => {
                    let rep = attr_u64(e, "table:number-columns-repeated")
                        .unwrap_or(1)
                        .clamp(1, MAX_COLS);
                    cols = cols.saturating_add(rep).min(MAX_COLS);
                    if !empty || has_attr(e, "office:value-type") {
                        extent = cols;
                    }
                }
                _ => {}
            }
        }
        if total.saturating_add(height.saturating_mul(width)) > budget {
            return Err(ScanError::new(
                "sheet-too-many-cells",
                format!(
                    "the tables expand to more than {budget} cells (max_zip_entry_bytes / cell size)"
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_record_bytes: 64,
            max_depth: 4,
            ..Limits::default()
        }
    }

    fn scan(xml: &str) -> Result<(), ScanError> {
        scan_xml(&mut xml.as_bytes(), &limits())
    }

    #[test]
    fn ordinary_xml_passes() {
        scan(r#"<?xml version="1.0"?><a><b x="1>2"/><c>text</c><!-- <x --><![CDATA[<y]]></a>"#)
            .unwrap();
    }

    #[test]
    fn long_text_run_is_refused() {
        let xml = format!("<a>{}</a>", " ".repeat(100));
        assert_eq!(scan(&xml).unwrap_err().rule(), "sheet-xml-token-too-long");
    }

    #[test]
    fn long_comment_with_angle_brackets_is_refused() {
        let xml = format!("<a><!--{}--></a>", "<".repeat(100));
        assert_eq!(scan(&xml).unwrap_err().rule(), "sheet-xml-token-too-long");
    }

    #[test]
    fn deep_nesting_is_refused() {
        assert_eq!(
            scan("<a><a><a><a><a></a></a></a></a></a>")
                .unwrap_err()
                .rule(),
            "sheet-xml-too-deep"
        );
        // Self-closing and sibling elements do not accumulate depth.
        scan("<a><a><a><b/><b/><b/><b/><b/></a></a></a>").unwrap();
        scan("<a></a><a></a><a></a><a></a><a></a><a></a>").unwrap();
    }

    #[test]
    fn cdata_angle_brackets_do_not_count_as_depth() {
        scan("<a><![CDATA[<b><b><b><b><b>]]></a>").unwrap();
    }

    #[test]
    fn xlsb_record_lengths_are_checked() {
        // type 0x01, len 0x05, 5 bytes payload; then type 0x02 len 0.
        let ok = [0x01u8, 0x05, 1, 2, 3, 4, 5, 0x02, 0x00];
        scan_xlsb_records(&mut &ok[..], &limits()).unwrap();
        // Declares 2^28 - 1 bytes in four length bytes.
        let huge = [0x01u8, 0xFF, 0xFF, 0xFF, 0x7F];
        let err = scan_xlsb_records(&mut &huge[..], &limits()).unwrap_err();
        assert_eq!(err.rule(), "sheet-record-too-large");
        let truncated = [0x01u8, 0x05, 1, 2];
        let err = scan_xlsb_records(&mut &truncated[..], &limits()).unwrap_err();
        assert_eq!(err.rule(), "sheet-corrupt");
    }

    #[test]
    fn ods_repeated_cells_are_budgeted() {
        let small = r#"<office:document-content><table:table>
            <table:table-row><table:table-cell office:value-type="string"><text:p>a</text:p></table:table-cell></table:table-row>
            <table:table-row table:number-rows-repeated="1048000"><table:table-cell table:number-columns-repeated="1024"/></table:table-row>
            </table:table></office:document-content>"#;
        check_ods_cells(small.as_bytes(), &Limits::default()).unwrap();
        let bomb = r#"<office:document-content><table:table>
            <table:table-row table:number-rows-repeated="1000000"><table:table-cell table:number-columns-repeated="16384" office:value-type="float" office:value="1"/></table:table-row>
            </table:table></office:document-content>"#;
        let err = check_ods_cells(bomb.as_bytes(), &Limits::default()).unwrap_err();
        assert_eq!(err.rule(), "sheet-too-many-cells");
    }
}
