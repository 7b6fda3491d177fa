//! The CSV corrections file: the original's leading rows and header, then every row of
//! every rejected document, as the original bytes with one cell added.
//!
//! Re-serialising rows through a CSV writer would change quoting, spacing and line ends
//! that the partner's system may depend on; so each row is copied byte for byte from the
//! range the ledger knows, and only the `tallyman_error` cell is spliced in. Where it goes
//! needs the dialect: the row is run through `csv-core` with the definition's delimiter and
//! quote (a quoted newline or delimiter is inside a field, not a boundary), and the cell is
//! inserted at the header's width (short rows padded with empty cells so it stays in its
//! column), or, when the file is itself a corrections file, written over the old one.
//!
//! Offsets are those of the original file for UTF-8, ISO-8859-1 and the legacy encodings
//! decoded per record: the new cell is encoded in the file's encoding. A file the reader
//! transcodes (UTF-16, ISO-2022-JP, Big5 with `|`...) has offsets in its UTF-8
//! transcoding: it is read through the same transcoder and the output encoded back, with
//! the original's byte-order mark.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

use csv_core::ReadFieldResult;
use encoding_rs::{UTF_16BE, UTF_16LE};

use super::input::{copy_through, Input};
use super::{error_text, CorrectionsError, RejectedRows};
use crate::format::Limits;
use crate::fsutil;
use crate::ledger::LedgerError;
use crate::tabular::charset::Decoding;
use crate::tabular::csv_rows::{CsvItem, CsvRows};
use crate::tabular::def::{CsvDialect, TabularDef};
use crate::tabular::engine::{csv_decoding, AUTO_SAMPLE};
use crate::tabular::{Cell, ERROR_COLUMN};

const CHUNK: usize = 64 * 1024;
/// "To the end of the file" as a range end.
const END: u64 = u64::MAX;

/// Where a row's "what was wrong" cell goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Column {
    /// A new cell at this position: the header's width, after its last column.
    Insert(usize),
    /// The file is itself a corrections file: its cell at this position is replaced.
    Replace(usize),
}

impl Column {
    fn at(self) -> usize {
        match self {
            Column::Insert(i) | Column::Replace(i) => i,
        }
    }
}

/// What the start of the file looks like, found by reading it as the engine does.
#[derive(Debug, PartialEq, Eq)]
struct Layout {
    /// `[0, verbatim)` is copied as it is: a BOM, `skip_rows` title rows, blank lines.
    verbatim: u64,
    /// The header record `[verbatim, end)`, which gets the column's name.
    header_end: Option<u64>,
    column: Column,
}

/// Writes the corrections file; `false` when the input cannot be read as the engine read
/// it (then it had a file-level error and no rejected documents).
pub(super) fn write(
    def: &TabularDef,
    dialect: &CsvDialect,
    input: &Path,
    dest: &Path,
    rows: RejectedRows,
    limits: &Limits,
) -> Result<bool, CorrectionsError> {
    let (head, len) = read_head(input)?;
    let Ok(decoding) = csv_decoding(&def.name, dialect, &head, head.len() as u64 == len) else {
        return Ok(false);
    };
    let Some(layout) = probe(def, dialect, decoding, input, limits.max_record_bytes)? else {
        return Ok(false);
    };
    let mut src = Input::open(input, decoding, CHUNK)?;
    // A transcoding is read forward, so each row's bytes must end where the next line
    // starts; the file itself is read at each row, which ends at its own line end.
    let mut rows = rows;
    rows.exact = matches!(src, Input::Transcoded { .. });
    let mut failed: Option<LedgerError> = None;
    let job = Job {
        dialect,
        decoding,
        layout: &layout,
    };
    let written = fsutil::write_atomic_with(dest, |file| {
        let mut w = BufWriter::new(file);
        match decoding {
            Decoding::Transcode(enc) => {
                let mut re = Reencoder::new(&mut w, target(enc, &head))?;
                job.body(&mut re, &mut src, rows, &mut failed)?;
                re.finish()?;
            }
            _ => job.body(&mut w, &mut src, rows, &mut failed)?,
        }
        w.flush()
    });
    match (failed, written) {
        (Some(e), _) => Err(e.into()),
        (None, r) => r.map(|()| true).map_err(Into::into),
    }
}

fn read_head(input: &Path) -> io::Result<(Vec<u8>, u64)> {
    let mut file = File::open(input)?;
    let len = file.metadata()?.len();
    let mut head = Vec::with_capacity(AUTO_SAMPLE as usize);
    Read::by_ref(&mut file)
        .take(AUTO_SAMPLE)
        .read_to_end(&mut head)?;
    Ok((head, len))
}

/// Finds the header (or the end of the `skip_rows` rows) and the width rows have, reading
/// rows as the tabular engine does: blank rows are not counted, the first row after
/// `skip_rows` is the header. Stops as soon as it knows.
fn probe(
    def: &TabularDef,
    dialect: &CsvDialect,
    decoding: Decoding,
    input: &Path,
    max_record_bytes: u64,
) -> Result<Option<Layout>, CorrectionsError> {
    let file = BufReader::new(File::open(input)?);
    let mut rows = CsvRows::with_decoding(Box::new(file), decoding, dialect, max_record_bytes);
    let mut seen = 0u64;
    let mut header: Option<(u64, Vec<String>)> = None;
    // The next item's start ends the prefix: after the header, or after the skipped rows.
    let mut prefix_ends_next = !def.header && def.skip_rows == 0;
    let mut prefix_end = None;
    loop {
        let item = rows.next_item().map_err(CorrectionsError::Read)?;
        if prefix_ends_next {
            prefix_end = Some(item.as_ref().map_or(END, start_of));
            prefix_ends_next = false;
            if let Some((start, names)) = &header {
                return Ok(Some(header_layout(*start, prefix_end, names)));
            }
        }
        let (row, problem) = match item {
            None => return Ok(None),
            Some(CsvItem::Blank(_)) => continue,
            Some(CsvItem::Row(row, problem)) => (row, problem),
        };
        if problem.is_none() && row.cells.iter().all(Cell::is_empty) {
            continue;
        }
        seen += 1;
        if seen <= def.skip_rows {
            prefix_ends_next = seen == def.skip_rows && !def.header;
        } else if def.header && header.is_none() {
            let names = row.cells.iter().map(|c| c.to_text()).collect();
            header = Some((row.pos.byte, names));
            prefix_ends_next = true;
        } else if problem.is_none() {
            return Ok(prefix_end.map(|verbatim| Layout {
                verbatim,
                header_end: None,
                column: Column::Insert(row.cells.len()),
            }));
        }
    }
}

fn start_of(item: &CsvItem) -> u64 {
    match item {
        CsvItem::Blank(p) => p.first().map_or(0, |p| p.byte),
        CsvItem::Row(r, _) => r.pos.byte,
    }
}

fn header_layout(start: u64, end: Option<u64>, names: &[String]) -> Layout {
    let existing = names
        .iter()
        .position(|n| n.trim().eq_ignore_ascii_case(ERROR_COLUMN));
    Layout {
        verbatim: start,
        header_end: Some(end.unwrap_or(END)),
        column: existing.map_or(Column::Insert(names.len()), Column::Replace),
    }
}

/// What the body of the file is made from.
struct Job<'a> {
    dialect: &'a CsvDialect,
    decoding: Decoding,
    layout: &'a Layout,
}

impl Job<'_> {
    /// The prefix, the header with the new column's name, then every rejected row.
    fn body(
        &self,
        out: &mut dyn Write,
        src: &mut Input,
        rows: RejectedRows,
        failed: &mut Option<LedgerError>,
    ) -> io::Result<()> {
        let mut copier = Copier::new(self.dialect);
        io::copy(&mut src.range(0, self.layout.verbatim)?, out)?;
        if let Some(end) = self.layout.header_end {
            let mut header = src.range(self.layout.verbatim, end)?;
            match self.layout.column {
                Column::Replace(_) => {
                    io::copy(&mut header, out)?;
                }
                c => copier.copy(&mut header, out, c, &self.encode(ERROR_COLUMN), Rest::Copy)?,
            }
        }
        for line in rows {
            let line = line.map_err(|e| {
                let msg = e.to_string();
                *failed = Some(e);
                io::Error::other(msg)
            })?;
            let cell = self.encode(&self.quote(&error_text(&line)));
            // Without the next line's offset the row ends with its own line end (for a
            // transcoding, only the file's last line comes without one).
            let (end, rest) = match line.next_byte {
                Some(b) => (b as u64, Rest::Copy),
                None => (END, Rest::Line),
            };
            let mut record = src.range(line.byte as u64, end)?;
            copier.copy(&mut record, out, self.layout.column, &cell, rest)?;
        }
        Ok(())
    }

    /// A cell value in the dialect: always quoted when the dialect quotes (doubling the
    /// quote character); without quoting, delimiters become spaces.
    fn quote(&self, text: &str) -> String {
        match self.dialect.quote {
            Some(q) => {
                let q = char::from(q);
                format!("{q}{}{q}", text.replace(q, &format!("{q}{q}")))
            }
            None => text.replace(char::from(self.dialect.delimiter), " "),
        }
    }

    /// Text in the bytes the input's records are in (the transcoding is UTF-8).
    fn encode(&self, text: &str) -> Vec<u8> {
        match self.decoding {
            Decoding::Utf8 { .. } | Decoding::Transcode(_) => text.as_bytes().to_vec(),
            Decoding::Latin1 => text
                .chars()
                .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
                .collect(),
            Decoding::PerRecord(enc) => match enc.encode(text) {
                (bytes, _, false) => bytes.into_owned(),
                _ => {
                    let ascii: String = text
                        .chars()
                        .map(|c| if c.is_ascii() { c } else { '?' })
                        .collect();
                    enc.encode(&ascii).0.into_owned()
                }
            },
        }
    }
}

/// Copies records, splicing in one cell; reuses its buffer across records.
pub(super) struct Copier {
    core: csv_core::Reader,
    delimiter: u8,
    buf: Vec<u8>,
}

impl Copier {
    pub(super) fn new(dialect: &CsvDialect) -> Copier {
        let core = csv_core::ReaderBuilder::new()
            .delimiter(dialect.delimiter)
            .quote(dialect.quote.unwrap_or(b'"'))
            .quoting(dialect.quote.is_some())
            .terminator(csv_core::Terminator::CRLF)
            .build();
        Copier {
            core,
            delimiter: dialect.delimiter,
            buf: vec![0; CHUNK],
        }
    }

    /// Copies the one record in `input` to `out` with `cell` (quoted and encoded) at
    /// `column`; every other byte, line end included, is the original's. What follows the
    /// record is as `rest` says.
    pub(super) fn copy(
        &mut self,
        input: &mut dyn Read,
        out: &mut dyn Write,
        column: Column,
        cell: &[u8],
        rest: Rest,
    ) -> io::Result<()> {
        // A row read up to its own line end is read a little at a time: rows are short,
        // and the buffer's worth of the file after each was most of the copying.
        let window = match rest {
            Rest::Copy => self.buf.len(),
            Rest::Line => LINE_WINDOW.min(self.buf.len()),
        };
        // Building a reader builds its DFA: reset the one we have.
        let core = &mut self.core;
        core.reset();
        let mut scratch = [0u8; 1024];
        let (mut start, mut end, mut eof) = (0usize, 0usize, false);
        let (mut field, mut fresh) = (0usize, true);
        let d = [self.delimiter];
        loop {
            if start == end && !eof {
                start = 0;
                end = read_some(input, &mut self.buf[..window])?;
                eof = end == 0;
            }
            if fresh && column == Column::Insert(field) {
                out.write_all(cell)?;
                out.write_all(&d)?;
            }
            fresh = false;
            let at_eof = eof && start == end;
            let (res, nin, _) = core.read_field(&self.buf[start..end], &mut scratch);
            let chunk = &self.buf[start..start + nin];
            start += nin;
            let replacing = column == Column::Replace(field);
            match res {
                ReadFieldResult::InputEmpty | ReadFieldResult::OutputFull => {
                    if !replacing {
                        out.write_all(chunk)?;
                    }
                }
                ReadFieldResult::Field { record_end: false } => {
                    if replacing {
                        out.write_all(cell)?;
                        out.write_all(&d)?;
                    } else {
                        out.write_all(chunk)?;
                    }
                    field += 1;
                    fresh = true;
                }
                ReadFieldResult::Field { record_end: true } => {
                    let term = usize::from(!at_eof && matches!(chunk.last(), Some(b'\r' | b'\n')));
                    let (body, term) = chunk.split_at(chunk.len() - term);
                    out.write_all(if replacing { cell } else { body })?;
                    pad_to(out, column, field + 1, self.delimiter, cell)?;
                    out.write_all(term)?;
                    if rest == Rest::Line {
                        // csv-core ends a record at a CR; the LF of a CRLF is its line end too.
                        if term == b"\r" && self.next_byte(input, start, end)? == Some(b'\n') {
                            out.write_all(b"\n")?;
                        }
                        return Ok(());
                    }
                    out.write_all(&self.buf[start..end])?;
                    return copy_through(input, out, &mut self.buf);
                }
                ReadFieldResult::End => return Ok(()),
            }
        }
    }

    /// The byte after the record: buffered at `start` if `start < end`, else read.
    fn next_byte(&self, input: &mut dyn Read, start: usize, end: usize) -> io::Result<Option<u8>> {
        if start < end {
            return Ok(Some(self.buf[start]));
        }
        let mut one = [0u8];
        Ok((read_some(input, &mut one)? == 1).then_some(one[0]))
    }
}

/// What [`Copier::copy`] writes after the record: everything left in its input (a row
/// given exactly, up to where the next line starts: a CRLF's LF; a header, up to where the
/// rows begin), or only the rest of its line end (a row whose input runs on into the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rest {
    Copy,
    Line,
}

/// What a row read up to its own line end is read by at a time.
const LINE_WINDOW: usize = 2048;

/// For a row of `fields` cells too short to reach `column`: empty cells, then the cell.
fn pad_to(
    out: &mut dyn Write,
    column: Column,
    fields: usize,
    delimiter: u8,
    cell: &[u8],
) -> io::Result<()> {
    if fields <= column.at() {
        for _ in fields..=column.at() {
            out.write_all(&[delimiter])?;
        }
        out.write_all(cell)?;
    }
    Ok(())
}

fn read_some(input: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match input.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// The encoding a transcoded file is written back in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Utf16 { big_endian: bool, bom: bool },
    Legacy(&'static encoding_rs::Encoding),
}

/// UTF-16 takes its byte order from the original's BOM, as the reader did.
fn target(enc: &'static encoding_rs::Encoding, head: &[u8]) -> Target {
    if enc == UTF_16LE || enc == UTF_16BE {
        match head {
            [0xFF, 0xFE, ..] => Target::Utf16 {
                big_endian: false,
                bom: true,
            },
            [0xFE, 0xFF, ..] => Target::Utf16 {
                big_endian: true,
                bom: true,
            },
            _ => Target::Utf16 {
                big_endian: enc == UTF_16BE,
                bom: false,
            },
        }
    } else {
        Target::Legacy(enc)
    }
}

/// Encodes a UTF-8 stream back into the file's encoding as it is written.
struct Reencoder<W: Write> {
    out: W,
    target: Target,
    legacy: Option<encoding_rs::Encoder>,
    pending: Vec<u8>,
}

impl<W: Write> Reencoder<W> {
    fn new(mut out: W, target: Target) -> io::Result<Self> {
        let legacy = match target {
            Target::Utf16 { big_endian, bom } => {
                if bom {
                    out.write_all(if big_endian {
                        &[0xFE, 0xFF]
                    } else {
                        &[0xFF, 0xFE]
                    })?;
                }
                None
            }
            Target::Legacy(enc) => Some(enc.new_encoder()),
        };
        Ok(Reencoder {
            out,
            target,
            legacy,
            pending: Vec::new(),
        })
    }

    /// Encodes the complete characters pending (all of them when `last`).
    fn drain(&mut self, last: bool) -> io::Result<()> {
        let valid = match std::str::from_utf8(&self.pending) {
            Ok(s) => s.len(),
            Err(e) if e.error_len().is_none() && !last => e.valid_up_to(),
            // The transcoder only ever yields UTF-8; anything else is replaced, not lost.
            Err(_) => {
                self.pending = String::from_utf8_lossy(&self.pending)
                    .into_owned()
                    .into_bytes();
                self.pending.len()
            }
        };
        let text = std::str::from_utf8(&self.pending[..valid]).map_err(io::Error::other)?;
        let bytes = encode_chunk(self.target, self.legacy.as_mut(), text, last);
        self.out.write_all(&bytes)?;
        self.pending.drain(..valid);
        Ok(())
    }

    fn finish(mut self) -> io::Result<()> {
        self.drain(true)?;
        self.out.flush()
    }
}

fn encode_chunk(
    target: Target,
    legacy: Option<&mut encoding_rs::Encoder>,
    text: &str,
    last: bool,
) -> Vec<u8> {
    match (target, legacy) {
        (Target::Utf16 { big_endian, .. }, _) => text
            .encode_utf16()
            .flat_map(|u| {
                if big_endian {
                    u.to_be_bytes()
                } else {
                    u.to_le_bytes()
                }
            })
            .collect(),
        (Target::Legacy(_), Some(enc)) => {
            let mut out = Vec::with_capacity(text.len() + 16);
            let mut rest = text;
            let mut buf = [0u8; 4096];
            loop {
                let (res, read, written, _) = enc.encode_from_utf8(rest, &mut buf, last);
                out.extend_from_slice(&buf[..written]);
                rest = &rest[read..];
                if res == encoding_rs::CoderResult::InputEmpty {
                    return out;
                }
            }
        }
        (Target::Legacy(_), None) => text.as_bytes().to_vec(),
    }
}

impl<W: Write> Write for Reencoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        self.drain(false)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
#[path = "corrections_csv_tests.rs"]
mod tests;
