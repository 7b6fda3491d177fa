//! The streaming CSV reader behind `kind = "csv"`.
//!
//! Built on `csv-core` rather than `csv::Reader` for two reasons the invariants demand: a
//! record longer than `Limits::max_record_bytes` must be *refused without being buffered*
//! (csv-core writes into caller-owned buffers, so we stop growing them and discard), and
//! every row needs an exact position — 1-based physical line (CRLF, LF and CR-only all
//! count), 0-based byte offset of its first byte, and record ordinal. We count line breaks
//! ourselves over the consumed bytes, and skip blank lines ourselves so they can be
//! reported as skipped lines with their own positions.
//!
//! Bytes are decoded per field after parsing, so for UTF-8, single-byte encodings and the
//! legacy multi-byte ones whose trail bytes cannot be a delimiter every offset is an offset
//! in the original file. UTF-16 (and a legacy encoding whose trail bytes could split a
//! field) is transcoded to UTF-8 in a streaming adapter first; its offsets then refer to
//! the UTF-8 transcoding (see [`super::charset`] and `docs/format-language.md`). Problems with one row (bad bytes, NUL, too long) come back as
//! a row plus a [`Reason`]; only I/O failures end the file.

// `FileError` is the shared error type of every format; its size is a cross-module
// decision (reported to the lead), not something to work around here.
#![allow(clippy::result_large_err)]

use std::io::{self, Read, Seek, SeekFrom};

use super::charset::{self, Decoding, Encoding, Transcoder};
use super::def::CsvDialect;
use super::{Cell, CellText, Row, RowSource};
use crate::format::FileError;
use crate::unit::{Position, Reason};

mod skip;

/// Columns beyond this are refused like an over-long record: a line of a million commas
/// must not allocate a million field slots.
pub const MAX_COLUMNS: usize = 16_384;
const CHUNK: usize = 64 * 1024;

/// What the CSV reader yields.
// One item per physical row, moved straight to the engine: boxing the row would add an
// allocation per row to save stack space on the rare blank-line runs.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum CsvItem {
    /// A run of empty physical lines, one position each.
    Blank(Vec<Position>),
    /// A record, with the first problem found in it, if any (boxed: nearly every record
    /// has none, and the item is passed by value for every record).
    Row(Row, Option<Box<Reason>>),
}

/// What csv-core made of one record (in `CsvRows::out` and `CsvRows::ends`).
#[derive(Default)]
struct Parsed {
    outlen: usize,
    endlen: usize,
    too_long: bool,
    too_wide: bool,
}

/// Where a CSV reader's bytes come from. A file read as it is can also move to a byte
/// offset: a resumed read whose keys come from the keys log jumps over its committed part
/// instead of reading it through (which was a tenth of a resumed 100 MB file's time).
pub trait Input: Read + Send {
    /// Moves so that the next byte read is byte `to` of the stream: `Ok(false)` where this
    /// input cannot, and the caller reads through instead.
    fn jump(&mut self, _to: u64) -> io::Result<bool> {
        Ok(false)
    }
}

/// Any reader, read through.
struct Stream(Box<dyn Read + Send>);

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Input for Stream {}

/// A file whose first bytes were read already (to decide its decoding), then the rest
/// of it: the stream is the file's bytes as they are, so a byte offset is a file offset.
pub struct HeadThenFile {
    head: io::Cursor<Vec<u8>>,
    file: std::fs::File,
}

impl HeadThenFile {
    /// `file` must be positioned just after `head`, its first bytes.
    pub fn new(head: Vec<u8>, file: std::fs::File) -> HeadThenFile {
        HeadThenFile {
            head: io::Cursor::new(head),
            file,
        }
    }
}

impl Read for HeadThenFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.head.read(buf)? {
            0 => self.file.read(buf),
            n => Ok(n),
        }
    }
}

impl Input for HeadThenFile {
    fn jump(&mut self, to: u64) -> io::Result<bool> {
        let held = self.head.get_ref().len() as u64;
        self.head.set_position(to.min(held));
        self.file.seek(SeekFrom::Start(to.max(held)))?;
        Ok(true)
    }
}

/// A streaming CSV row source.
pub struct CsvRows {
    input: Box<dyn Input>,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    core: csv_core::Reader,
    out: Vec<u8>,
    ends: Vec<usize>,
    /// Offset of `buf[start]` in the (transcoded) stream.
    byte: u64,
    /// 1-based line of `buf[start]`.
    line: u64,
    prev_cr: bool,
    records: u64,
    max_record: usize,
    /// How the bytes csv-core sees become text (a transcoded file is UTF-8 here).
    decoding: Decoding,
    delimiter: u8,
    quote: Option<u8>,
    started: bool,
    sniff_bom: bool,
    /// The raw bytes of the record being read, kept between records so a row costs no
    /// growing buffer of its own (dropped after an unusually long record).
    raw_scratch: Vec<u8>,
}

/// The most a kept `raw_scratch` may hold on to.
const SCRATCH_KEEP: usize = 64 * 1024;

impl CsvRows {
    /// Wraps a reader. `head` is the first bytes of the file, for `auto` to decide from.
    /// A file `auto` would refuse is read as Windows-1252 here (enough to look at a
    /// header); [`super::TabularFormat`] refuses it before reading through
    /// [`CsvRows::with_decoding`].
    pub fn new(
        input: Box<dyn Read + Send>,
        head: &[u8],
        dialect: &CsvDialect,
        max_record_bytes: u64,
    ) -> CsvRows {
        let decoding = match dialect.encoding {
            Encoding::Auto => charset::plan_auto(head, false)
                .unwrap_or(Decoding::PerRecord(encoding_rs::WINDOWS_1252)),
            e => charset::plan_fixed(e, dialect.delimiter, dialect.quote),
        };
        Self::with_decoding(input, decoding, dialect, max_record_bytes)
    }

    /// Wraps a reader whose decoding is already decided.
    pub fn with_decoding(
        input: Box<dyn Read + Send>,
        decoding: Decoding,
        dialect: &CsvDialect,
        max_record_bytes: u64,
    ) -> CsvRows {
        Self::from_input(Box::new(Stream(input)), decoding, dialect, max_record_bytes)
    }

    /// As [`Self::with_decoding`], from an input that may be able to jump (see [`Input`]).
    /// A transcoded one cannot: its offsets are in the transcoding.
    pub fn from_input(
        input: Box<dyn Input>,
        decoding: Decoding,
        dialect: &CsvDialect,
        max_record_bytes: u64,
    ) -> CsvRows {
        let input: Box<dyn Input> = match decoding {
            Decoding::Transcode(e) => Box::new(Stream(Box::new(Transcoder::new(input, e, CHUNK)))),
            _ => input,
        };
        let core = csv_core::ReaderBuilder::new()
            .delimiter(dialect.delimiter)
            .quote(dialect.quote.unwrap_or(b'"'))
            .quoting(dialect.quote.is_some())
            .terminator(csv_core::Terminator::CRLF)
            .build();
        let max_record = usize::try_from(max_record_bytes)
            .unwrap_or(usize::MAX)
            .max(1);
        CsvRows {
            input,
            buf: vec![0; CHUNK],
            start: 0,
            end: 0,
            eof: false,
            core,
            out: vec![0; 1024.min(max_record)],
            ends: vec![0; 32],
            byte: 0,
            line: 1,
            prev_cr: false,
            records: 0,
            max_record,
            decoding,
            delimiter: dialect.delimiter,
            quote: dialect.quote,
            started: false,
            sniff_bom: matches!(decoding, Decoding::Utf8 { .. }),
            raw_scratch: Vec::new(),
        }
    }

    fn fill(&mut self) -> Result<(), FileError> {
        if self.start < self.end || self.eof {
            return Ok(());
        }
        self.start = 0;
        self.end = 0;
        loop {
            match self.input.read(&mut self.buf) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end = n;
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.io_failure(&e)),
            }
        }
    }

    /// A read or seek of the input that failed, where reading stands.
    fn io_failure(&self, e: &std::io::Error) -> FileError {
        FileError {
            pos: Some(Position::new(self.line, self.byte, self.records)),
            reason: Reason::new("io", format!("I/O error: {e}")),
        }
    }

    /// Consumes `n` buffered bytes, counting line breaks (`\r\n` counts once).
    fn advance(&mut self, n: usize, keep: Option<&mut Vec<u8>>) {
        let bytes = &self.buf[self.start..self.start + n];
        for i in memchr::memchr2_iter(b'\n', b'\r', bytes) {
            let after_cr = match i {
                0 => self.prev_cr,
                _ => bytes[i - 1] == b'\r',
            };
            if bytes[i] == b'\r' || !after_cr {
                self.line += 1;
            }
        }
        if let Some(&last) = bytes.last() {
            self.prev_cr = last == b'\r';
        }
        if let Some(k) = keep {
            // Keep at most a bit more than the cap: enough for the reject report.
            let room = (self.max_record + 4).saturating_sub(k.len());
            k.extend_from_slice(&bytes[..n.min(room)]);
        }
        self.start += n;
        self.byte += n as u64;
    }

    /// The next blank-line run or record.
    pub fn next_item(&mut self) -> Result<Option<CsvItem>, FileError> {
        self.start_once()?;
        let mut blanks = Vec::new();
        loop {
            self.fill()?;
            if self.start == self.end {
                break;
            }
            let b = self.buf[self.start];
            if b == b'\n' && self.prev_cr {
                self.advance(1, None);
                continue;
            }
            if b == b'\r' || b == b'\n' {
                blanks.push(Position::new(self.line, self.byte, 0));
                self.advance(1, None);
                continue;
            }
            break;
        }
        if !blanks.is_empty() {
            return Ok(Some(CsvItem::Blank(blanks)));
        }
        if self.start == self.end {
            return Ok(None);
        }
        self.read_record().map(Some)
    }

    /// Skips a UTF-8 BOM before the first read (a BOM may arrive split over reads only
    /// for absurdly small reads; one fill is enough).
    fn start_once(&mut self) -> Result<(), FileError> {
        if !self.started {
            self.started = true;
            self.fill()?;
            if self.sniff_bom && self.buf[self.start..self.end].starts_with(&[0xEF, 0xBB, 0xBF]) {
                self.start += 3;
                self.byte += 3;
            }
        }
        Ok(())
    }

    /// Runs csv-core over one record into `out` and `ends`, keeping its raw bytes in
    /// `raw` when asked. Refuses to grow past the limits instead of buffering.
    fn parse_record(&mut self, mut raw: Option<&mut Vec<u8>>) -> Result<Parsed, FileError> {
        self.records += 1;
        let mut p = Parsed::default();
        loop {
            self.fill()?;
            let input = &self.buf[self.start..self.end];
            let (res, nin, nout, nend) =
                self.core
                    .read_record(input, &mut self.out[p.outlen..], &mut self.ends[p.endlen..]);
            self.advance(nin, raw.as_deref_mut());
            p.outlen += nout;
            p.endlen += nend;
            use csv_core::ReadRecordResult as R;
            match res {
                R::InputEmpty => continue,
                R::OutputFull => {
                    if self.out.len() >= self.max_record {
                        p.too_long = true;
                        p.outlen = 0;
                    } else {
                        let n = (self.out.len() * 2).min(self.max_record).max(16);
                        self.out.resize(n, 0);
                    }
                }
                R::OutputEndsFull => {
                    if self.ends.len() >= MAX_COLUMNS {
                        p.too_wide = true;
                        p.endlen = 0;
                    } else {
                        let n = (self.ends.len() * 2).min(MAX_COLUMNS);
                        self.ends.resize(n, 0);
                    }
                }
                R::Record | R::End => return Ok(p),
            }
        }
    }

    /// Where the next item starts.
    pub fn position(&self) -> Position {
        Position::new(self.line, self.byte, self.records)
    }

    fn read_record(&mut self) -> Result<CsvItem, FileError> {
        let mut raw = std::mem::take(&mut self.raw_scratch);
        raw.clear();
        let item = self.read_record_into(&mut raw);
        if raw.capacity() <= SCRATCH_KEEP {
            self.raw_scratch = raw;
        }
        item
    }

    fn read_record_into(&mut self, raw_bytes: &mut Vec<u8>) -> Result<CsvItem, FileError> {
        let pos = Position::new(self.line, self.byte, self.records + 1);
        let Parsed {
            outlen,
            endlen,
            too_long,
            too_wide,
        } = self.parse_record(Some(raw_bytes))?;
        // Drop the record terminator from the raw text.
        while matches!(raw_bytes.last(), Some(b'\r' | b'\n')) {
            raw_bytes.pop();
        }
        if too_long || too_wide {
            let reason = if too_long {
                Reason::new(
                    "record-too-long",
                    format!(
                        "record longer than the limit of {} bytes (max_record_bytes); not read",
                        self.max_record
                    ),
                )
            } else {
                Reason::new(
                    "column-count",
                    format!("record has more than {MAX_COLUMNS} columns; not read"),
                )
            };
            let row = Row {
                pos: pos.clone(),
                sheet: None,
                row_number: pos.record,
                cells: Vec::new(),
                raw: self.decode_lossy(raw_bytes),
            };
            return Ok(CsvItem::Row(row, Some(Box::new(reason))));
        }
        // A UTF-8 file's record is checked once here, not again by the check for bytes
        // that are not text and by the copy of its raw text.
        let utf8 = match self.decoding {
            Decoding::Utf8 { .. } => std::str::from_utf8(raw_bytes).ok(),
            _ => None,
        };
        let problem = match memchr::memchr(0, raw_bytes) {
            Some(i) => Some(
                Reason::new(
                    "nul-byte",
                    format!(
                        "NUL byte (0x00) at byte {} of the file: not text; is this a binary or UTF-16 file?",
                        pos.byte + i as u64
                    ),
                )
                .value("\\0"),
            ),
            None if utf8.is_some() => None,
            None => self.undecodable(raw_bytes, pos.byte),
        };
        // The fields' text checked as one: where it is UTF-8, each field that begins and
        // ends on a character boundary is that text (a field cut inside a character, out
        // of bytes that were not UTF-8 in the record, is decoded on its own as before).
        let fields = match self.decoding {
            Decoding::Utf8 { .. } | Decoding::Transcode(_) => {
                std::str::from_utf8(&self.out[..outlen]).ok()
            }
            _ => None,
        };
        let mut cells = Vec::with_capacity(endlen);
        let mut from = 0;
        for &to in &self.ends[..endlen] {
            let range = from..to.min(outlen);
            from = to;
            let cell = match fields.and_then(|all| all.get(range.clone())) {
                Some("") => Cell::Empty,
                // The text with the output buffer after it, for a fixed-size copy.
                Some(t) => Cell::Text(CellText::new_in(t, &self.out[range.start..])),
                None => match self.decode(&self.out[range]) {
                    t if t.is_empty() => Cell::Empty,
                    t => Cell::Text(t.into()),
                },
            };
            cells.push(cell);
        }
        let row = Row {
            pos: pos.clone(),
            sheet: None,
            row_number: pos.record,
            cells,
            // A NUL is rare (and the row is rejected for it): copy only then.
            raw: match problem {
                Some(_) if raw_bytes.contains(&0) => {
                    self.decode_lossy(raw_bytes).replace('\0', "\\0")
                }
                _ => match utf8 {
                    Some(text) => text.to_owned(),
                    None => self.decode_lossy(raw_bytes),
                },
            },
        };
        Ok(CsvItem::Row(row, problem.map(Box::new)))
    }

    /// Why a record's bytes are not text in the file's encoding, if they are not.
    fn undecodable(&self, raw: &[u8], start: u64) -> Option<Reason> {
        let (enc, auto) = match self.decoding {
            Decoding::Latin1 => return None,
            Decoding::Utf8 { auto } => (encoding_rs::UTF_8, auto),
            Decoding::PerRecord(e) => (e, false),
            Decoding::Transcode(e) => {
                // Bytes that were not valid arrive as U+FFFD, which no legacy encoding
                // can express; UTF-16 keeps its old lenience for unpaired surrogates.
                let legacy = e != encoding_rs::UTF_16LE && e != encoding_rs::UTF_16BE;
                let bad = legacy && std::str::from_utf8(raw).is_ok_and(|t| t.contains('\u{FFFD}'));
                return bad.then(|| {
                    Reason::new(
                        "encoding",
                        format!(
                            "bytes that are not valid {} in this record (shown as \u{FFFD}); offsets in this file are those of its UTF-8 transcoding",
                            e.name()
                        ),
                    )
                });
            }
        };
        let at = first_malformed(enc, raw)?;
        let bad: Vec<String> = raw[at..]
            .iter()
            .take(if enc == encoding_rs::UTF_8 {
                std::str::from_utf8(&raw[at..])
                    .err()
                    .and_then(|e| e.error_len())
                    .unwrap_or(1)
            } else {
                2.min(raw.len() - at)
            })
            .map(|b| format!("0x{b:02X}"))
            .collect();
        let what = if enc == encoding_rs::UTF_8 {
            "invalid UTF-8 byte sequence".to_string()
        } else {
            format!("bytes that are not valid {}:", enc.name())
        };
        let mut message = format!(
            "{what} {} at byte {} of the file",
            bad.join(" "),
            start + at as u64
        );
        if auto {
            message.push_str(
                "; encoding = \"auto\" read this file as UTF-8 because its start is: if it is in another encoding, set it",
            );
        }
        Some(Reason::new("encoding", message).value(bad.join(" ")))
    }

    fn decode_lossy(&self, bytes: &[u8]) -> String {
        self.decode(bytes).into_owned()
    }

    /// Bytes of this file as text, borrowed where they are UTF-8 already.
    fn decode<'b>(&self, bytes: &'b [u8]) -> std::borrow::Cow<'b, str> {
        match self.decoding {
            Decoding::Utf8 { .. } | Decoding::Transcode(_) => crate::unit::lossy(bytes),
            Decoding::Latin1 => bytes.iter().map(|&b| b as char).collect(),
            Decoding::PerRecord(e) => e.decode_without_bom_handling(bytes).0,
        }
    }

    /// Re-serialises cells as one CSV line (used when sensitive cells were masked).
    pub fn join(cells: &[String], delimiter: u8, quote: Option<u8>) -> String {
        let d = delimiter as char;
        let q = quote.map(|q| q as char);
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i > 0 {
                out.push(d);
            }
            match q {
                Some(q) if c.contains([d, q, '\r', '\n']) => {
                    out.push(q);
                    for ch in c.chars() {
                        if ch == q {
                            out.push(q);
                        }
                        out.push(ch);
                    }
                    out.push(q);
                }
                _ => out.push_str(c),
            }
        }
        out
    }

    pub fn delimiter(&self) -> u8 {
        self.delimiter
    }

    pub fn quote(&self) -> Option<u8> {
        self.quote
    }
}

/// Offset of the first byte of `raw` that is not valid in `enc`.
fn first_malformed(enc: &'static encoding_rs::Encoding, raw: &[u8]) -> Option<usize> {
    if enc == encoding_rs::UTF_8 {
        return std::str::from_utf8(raw).err().map(|e| e.valid_up_to());
    }
    let mut d = enc.new_decoder_without_bom_handling();
    let mut out = String::with_capacity(
        d.max_utf8_buffer_length_without_replacement(raw.len())
            .unwrap_or(raw.len() * 3 + 16),
    );
    match d.decode_to_string_without_replacement(raw, &mut out, true) {
        (encoding_rs::DecoderResult::Malformed(len, extra), read) => {
            Some(read.saturating_sub(usize::from(len) + usize::from(extra)))
        }
        _ => None,
    }
}

impl RowSource for CsvRows {
    /// The strict view: blank lines are passed over and a row with a problem ends the file.
    fn next_row(&mut self) -> Result<Option<Row>, FileError> {
        loop {
            match self.next_item()? {
                None => return Ok(None),
                Some(CsvItem::Blank(_)) => continue,
                Some(CsvItem::Row(row, None)) => return Ok(Some(row)),
                Some(CsvItem::Row(row, Some(reason))) => {
                    return Err(FileError {
                        pos: Some(row.pos),
                        reason: *reason,
                    })
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "csv_rows_tests.rs"]
mod tests;
