//! Streaming segment reader: turns a byte stream into X12 segments with their positions.
//!
//! X12 has no line structure: each interchange declares its own delimiters in the
//! fixed-width ISA, and partners wrap files at 80 columns, put CR/LF after terminators, use
//! newline *as* the terminator, or prefix a BOM. This reader keeps only a bounded window of
//! the file in memory (`max_record` caps one segment), finds terminators with `memchr`, and
//! hands out one segment at a time with its 1-based line, 0-based byte offset and ordinal.
//! It knows nothing about envelopes beyond reading an ISA to learn the delimiters.

use std::cell::Cell;
use std::io::Read;

use super::{len32, split_segment, Delims, Ranges, SegId, Segment, Sep, MAX_SEGMENT};
use crate::unit::Position;

mod isa;
mod skip;

pub use isa::{show_char, IsaRead, ISA_WIDTHS};

/// Why the byte stream could not be cut into segments.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("segment longer than the {limit}-byte limit")]
    TooLong { pos: Position, limit: usize },
    #[error("{msg}")]
    Isa { pos: Position, msg: String },
    #[error("BIN segment: {msg}")]
    Binary { pos: Position, msg: String },
}

impl ReadError {
    pub fn rule(&self) -> &'static str {
        match self {
            ReadError::Io(_) => "io",
            ReadError::TooLong { .. } => "x12-segment-too-long",
            ReadError::Isa { .. } => "x12-isa",
            ReadError::Binary { .. } => "x12-binary",
        }
    }
    pub fn pos(&self) -> Option<&Position> {
        match self {
            ReadError::Io(_) => None,
            ReadError::TooLong { pos, .. }
            | ReadError::Isa { pos, .. }
            | ReadError::Binary { pos, .. } => Some(pos),
        }
    }
}

const CHUNK: usize = 64 * 1024;

/// A bounded look-ahead window over a reader.
pub struct SegmentReader<R: Read> {
    inner: R,
    buf: Vec<u8>,
    /// Index in `buf` of the next unread byte.
    at: usize,
    /// File offset of `buf[0]`.
    base: u64,
    /// Line number of `buf[counted]`. The line breaks between `counted` and `at` are
    /// counted when a position is asked for or the window moves: a resume passes over
    /// every committed set's segments without asking, and counting them as it went, a
    /// few dozen bytes at a time, was a fifth of its pass.
    line: Cell<u64>,
    counted: Cell<usize>,
    eof: bool,
    /// Segments handed out so far.
    pub record: u64,
    max_record: usize,
}

fn is_ws(b: u8) -> bool {
    matches!(b, b'\r' | b'\n' | b' ' | b'\t')
}

/// Whether `b` is whitespace passed between segments: never a delimiter (a newline may be
/// the terminator).
#[inline]
fn between_segments(b: u8, d: &Delims) -> bool {
    is_ws(b) && b != d.elem.first() && b != d.term.first() && b != d.comp.first()
}

/// The line breaks in `bytes`. A segment is a few dozen bytes, and counting them with
/// `memchr` cost more in setting up its wide search than in searching (a resumed 30 MB
/// interchange: 185 M instructions of the 966 M its skipped segments took); a plain loop,
/// which the compiler widens itself, counts those, and `memchr` the long stretches.
fn newlines_in(bytes: &[u8]) -> u64 {
    if bytes.len() < 256 {
        bytes.iter().map(|&b| u64::from(b == b'\n')).sum()
    } else {
        memchr::memchr_iter(b'\n', bytes).count() as u64
    }
}

impl<R: Read + std::io::Seek> SegmentReader<R> {
    /// Goes to input byte `byte`, at line `line`, after `record` segments: where a restart
    /// snapshot was taken (see `super::snapshot`), a place an earlier read of the same
    /// bytes reached between segments.
    pub fn restart_from(&mut self, byte: u64, line: u64, record: u64) -> std::io::Result<()> {
        self.inner.seek(std::io::SeekFrom::Start(byte))?;
        self.buf.clear();
        (self.at, self.base, self.eof, self.record) = (0, byte, false, record);
        self.line.set(line);
        self.counted.set(0);
        Ok(())
    }
}

impl<R: Read> SegmentReader<R> {
    pub fn new(inner: R, max_record: usize) -> Self {
        SegmentReader {
            inner,
            buf: Vec::with_capacity(CHUNK),
            at: 0,
            base: 0,
            line: Cell::new(1),
            counted: Cell::new(0),
            eof: false,
            record: 0,
            max_record: max_record.clamp(256, MAX_SEGMENT),
        }
    }

    /// Reads more input; false at end of file. Drops consumed bytes first so the window
    /// stays bounded.
    fn fill(&mut self) -> std::io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.at > 0 {
            self.count_lines();
            self.buf.drain(..self.at);
            self.base += self.at as u64;
            self.at = 0;
            self.counted.set(0);
        }
        let old = self.buf.len();
        // Into the spare room as it is: `read_to_end` hands a file uninitialised room,
        // where making the room first zeroed 64 KiB a fill only for the read to overwrite.
        match (&mut self.inner)
            .take(CHUNK as u64)
            .read_to_end(&mut self.buf)
        {
            Ok(n) => {
                self.eof = n == 0;
                Ok(n > 0)
            }
            Err(e) => {
                self.buf.truncate(old);
                Err(e)
            }
        }
    }

    /// The byte `i` past the cursor, reading more when the window ends before it. The
    /// answer from the window is inlined, the reading kept apart: this is asked several
    /// times for every segment.
    #[inline]
    fn get(&mut self, i: usize) -> Result<Option<u8>, ReadError> {
        match self.buf.get(self.at + i) {
            Some(&b) => Ok(Some(b)),
            None => self.get_past_window(i),
        }
    }

    #[cold]
    #[inline(never)]
    fn get_past_window(&mut self, i: usize) -> Result<Option<u8>, ReadError> {
        while self.at + i >= self.buf.len() {
            if i > self.max_record {
                return Err(ReadError::TooLong {
                    pos: self.here(),
                    limit: self.max_record,
                });
            }
            if !self.fill()? {
                return Ok(None);
            }
        }
        Ok(self.buf.get(self.at + i).copied())
    }

    fn here(&self) -> Position {
        Position::new(
            self.count_lines(),
            self.base + self.at as u64,
            self.record + 1,
        )
    }

    /// The line number of `buf[at]`, the breaks passed since the last count counted now.
    fn count_lines(&self) -> u64 {
        let gap = &self.buf[self.counted.get()..self.at];
        if !gap.is_empty() {
            self.line.set(self.line.get() + newlines_in(gap));
            self.counted.set(self.at);
        }
        self.line.get()
    }

    fn advance(&mut self, n: usize) {
        self.at = (self.at + n).min(self.buf.len());
    }

    /// Skips a UTF-8 BOM at the very start of the file.
    pub fn skip_bom(&mut self) -> Result<(), ReadError> {
        if self.base == 0
            && self.at == 0
            && self.get(0)? == Some(0xEF)
            && self.get(1)? == Some(0xBB)
            && self.get(2)? == Some(0xBF)
        {
            self.advance(3);
        }
        Ok(())
    }

    /// Skips whitespace between segments (CR/LF after terminators, indentation), except
    /// bytes that are delimiters themselves.
    pub fn skip_ws(&mut self, d: Option<&Delims>) -> Result<(), ReadError> {
        loop {
            // Most segments start right away: that byte is read from the window as it is.
            let b = match self.buf.get(self.at) {
                Some(&b) => b,
                None => match self.get(0)? {
                    Some(b) => b,
                    None => break,
                },
            };
            if !is_ws(b) && b != 0x1A {
                break;
            }
            // Between interchanges a DOS end-of-file mark (SUB, 0x1A) is padding too.
            let passed = match d {
                Some(d) => between_segments(b, d),
                None => is_ws(b) || b == 0x1A,
            };
            if passed {
                // `b` is in the window (read from it above): one byte passed.
                self.at += 1;
            } else {
                break;
            }
        }
        Ok(())
    }

    pub fn at_eof(&mut self) -> Result<bool, ReadError> {
        Ok(self.get(0)?.is_none())
    }

    /// Up to `n` bytes ahead, for error messages.
    pub fn peek_text(&mut self, n: usize) -> Result<String, ReadError> {
        let mut v = Vec::new();
        for i in 0..n {
            match self.get(i)? {
                Some(b'\r' | b'\n') | None => break,
                Some(b) => v.push(b),
            }
        }
        Ok(String::from_utf8_lossy(&v).into_owned())
    }

    pub fn position(&self) -> Position {
        self.here()
    }

    /// Whether the bytes `i` ahead are `sep`.
    fn at_sep(&mut self, i: usize, sep: &Sep) -> Result<bool, ReadError> {
        for (k, &b) in sep.bytes().iter().enumerate() {
            if self.get(i + k)? != Some(b) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Reads the next segment with `d`, skipping whitespace before it. `None` at end of file.
    /// A final segment without terminator is returned as is (the envelope check catches a
    /// truncated file).
    pub fn read_segment(&mut self, d: &Delims) -> Result<Option<Segment>, ReadError> {
        self.read_segment_with(d, |seg| seg)
    }

    /// [`Self::read_segment`] onto the end of `segs`; `false` at end of file. A set's
    /// segments go straight where they are kept: returned, matched and pushed, each was
    /// copied three times, a call to `memcpy` of its ~200 bytes each.
    pub fn read_segment_into(
        &mut self,
        d: &Delims,
        segs: &mut Vec<Segment>,
    ) -> Result<bool, ReadError> {
        Ok(self.read_segment_with(d, |seg| segs.push(seg))?.is_some())
    }

    /// The body of both: `put` takes the segment to where it goes.
    #[inline(always)]
    fn read_segment_with<T>(
        &mut self,
        d: &Delims,
        put: impl FnOnce(Segment) -> T,
    ) -> Result<Option<T>, ReadError> {
        self.skip_ws(Some(d))?;
        if self.get(0)?.is_none() {
            return Ok(None);
        }
        let pos = self.here();
        if self.at_bin(d)? {
            return self.read_bin(d, pos).map(|seg| Some(put(seg)));
        }
        let tb = d.term.bytes();
        let len = self.extent(tb)?;
        let raw = &self.buf[self.at..self.at + len];
        // Borrowed unless line breaks wrap the segment (copying every segment byte by byte
        // to drop breaks that are nearly never there was a tenth of the reading thread).
        let logical: std::borrow::Cow<[u8]> = if d.term.bytes() == b"\n" {
            raw.strip_suffix(b"\r").unwrap_or(raw).into()
        } else if d.term.is_newline() || memchr::memchr2(b'\r', b'\n', raw).is_none() {
            raw.into()
        } else {
            raw.iter()
                .copied()
                .filter(|&b| b != b'\r' && b != b'\n')
                .collect::<Vec<u8>>()
                .into()
        };
        let put = put(split_segment(
            &logical,
            d,
            Position::new(pos.line, pos.byte, self.record + 1),
        ));
        self.pass(len, tb);
        Ok(Some(put))
    }

    /// Whether the segment at the cursor is a BIN, whose length-prefixed binary data may
    /// contain any delimiter.
    fn at_bin(&mut self, d: &Delims) -> Result<bool, ReadError> {
        Ok(self.get(0)? == Some(b'B')
            && self.get(1)? == Some(b'I')
            && self.get(2)? == Some(b'N')
            && self.at_sep(3, &d.elem)?)
    }

    /// Moves past the segment of `len` bytes at the cursor and its terminator `tb`, and
    /// counts it: the one place reading and skipping a segment leave the reader.
    fn pass(&mut self, len: usize, tb: &[u8]) {
        let consumed = (len + tb.len()).min(self.buf.len() - self.at);
        self.advance(consumed);
        self.record += 1;
    }

    /// The length of the segment at the cursor, up to its terminator `tb` (or the end of
    /// the file), read into the window; refused past the segment limit.
    /// A segment too long is told at its start, where the cursor still is: the position is
    /// made only then.
    fn extent(&mut self, tb: &[u8]) -> Result<usize, ReadError> {
        let too_long = |this: &Self| ReadError::TooLong {
            pos: this.here(),
            limit: this.max_record,
        };
        let mut from = 0usize;
        let len = loop {
            let window = &self.buf[self.at + from..];
            let found = if tb.len() == 1 {
                memchr::memchr(tb[0], window)
            } else {
                memchr::memmem::find(window, tb)
            };
            if let Some(k) = found {
                break from + k;
            }
            // A multi-byte terminator may straddle two reads.
            from = (self.buf.len() - self.at).saturating_sub(tb.len() - 1);
            if from > self.max_record {
                return Err(too_long(self));
            }
            if !self.fill()? {
                break self.buf.len() - self.at;
            }
        };
        if len > self.max_record {
            return Err(too_long(self));
        }
        Ok(len)
    }

    fn read_bin(&mut self, d: &Delims, pos: Position) -> Result<Segment, ReadError> {
        let bin_err = |msg: String| ReadError::Binary {
            pos: pos.clone(),
            msg,
        };
        let mut i = 3 + d.elem.bytes().len();
        let mut digits = String::new();
        loop {
            if self.at_sep(i, &d.elem)? {
                break;
            }
            match self.get(i)? {
                Some(b) if digits.len() < 16 && b != d.term.first() => digits.push(b as char),
                _ => {
                    return Err(bin_err(
                        "BIN01 length is not followed by the binary data element".into(),
                    ))
                }
            }
            i += 1;
        }
        let n: usize = digits
            .parse()
            .ok()
            .filter(|_| digits.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| bin_err(format!("BIN01 length '{digits}' is not a number")))?;
        if n > self.max_record {
            return Err(bin_err(format!(
                "BIN01 length {n} exceeds the {}-byte segment limit",
                self.max_record
            )));
        }
        let start = i + d.elem.bytes().len();
        if !self.at_sep(start + n, &d.term)? {
            return Err(bin_err(format!(
                "binary data of BIN01 length {n} is not followed by the segment terminator"
            )));
        }
        let e = d.elem.as_char();
        // The text only summarises the data, which is kept after it.
        let mut buf = format!("BIN{e}{digits}{e}[{n} bytes]");
        let text_len = len32(&buf);
        let digits_at = 3 + e.len_utf8() as u32;
        let digits_end = digits_at + digits.len() as u32;
        buf.push_str(&String::from_utf8_lossy(
            &self.buf[self.at + start..self.at + start + n],
        ));
        self.advance(start + n + d.term.bytes().len());
        self.record += 1;
        let mut els = Ranges::new();
        els.push((digits_at, digits_end));
        els.push((text_len, len32(&buf)));
        Ok(Segment {
            id: (0, 3),
            code: SegId::of(b"BIN"),
            els,
            text_len,
            buf: buf.into(),
            pos: Position::new(pos.line, pos.byte, self.record),
        })
    }
}

#[cfg(test)]
#[path = "reader_tests.rs"]
mod tests;
