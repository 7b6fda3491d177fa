//! The byte source under the XML parser: caps, position tracking and Latin-1 transcoding.
//!
//! quick-xml copies each event into one reused buffer, but it only returns once the event
//! is complete, so a 50 MB text node or a giant DOCTYPE would be buffered whole before the
//! reader could look at it. This wrapper sits below the parser and refuses to hand out more
//! than `event_budget` bytes between two resets (the reader resets before every event) and
//! more than `max_file_bytes` in total: memory stays bounded whatever the input. It also
//! counts lines so every event gets a line and column, and turns declared ISO-8859-1 into
//! UTF-8 (quick-xml only reads UTF-8); byte offsets are then those of the UTF-8 stream.

use std::cell::Cell;
use std::io::{self, BufRead, Read, Seek, SeekFrom};

/// Which cap tripped, so the reader can name it instead of reporting an I/O error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trip {
    EventTooLarge,
    FileTooLarge,
}

pub struct CappedInput<R> {
    inner: R,
    latin1: bool,
    raw: Vec<u8>,
    /// Bytes ready for the parser (already UTF-8), `buf[pos..]` not yet consumed.
    buf: Vec<u8>,
    pos: usize,
    eof: bool,
    /// Input bytes read from `inner` (before transcoding), for the file size cap.
    read_total: u64,
    max_file_bytes: u64,
    event_budget: u64,
    since_reset: u64,
    /// Output bytes consumed by the parser.
    pub consumed: u64,
    /// Offsets in `buf` of its newlines, found in one pass per fill: the events that ask
    /// where they are count lines, not each of the parser's many small consumes (that was
    /// a count per few bytes on IDoc's busiest thread).
    newlines: Vec<u32>,
    /// How many of `newlines` lie before the position last asked about: events ask in
    /// order, so the next answer is found by stepping on from here (a binary search per
    /// event was an eighth of IDoc's reading thread).
    newlines_passed: Cell<usize>,
    /// Stream offset of `buf[0]`; newlines before it, and where the line holding it starts.
    base: u64,
    newlines_before: u64,
    line_start_before: u64,
    pub tripped: Option<Trip>,
}

const CHUNK: usize = 8 * 1024;

impl<R: Read> CappedInput<R> {
    pub fn new(inner: R, latin1: bool, max_file_bytes: u64, event_budget: u64) -> Self {
        CappedInput {
            inner,
            latin1,
            raw: vec![0; CHUNK],
            buf: Vec::with_capacity(CHUNK * 2),
            pos: 0,
            eof: false,
            read_total: 0,
            max_file_bytes,
            event_budget,
            since_reset: 0,
            consumed: 0,
            newlines: Vec::new(),
            newlines_passed: Cell::new(0),
            base: 0,
            newlines_before: 0,
            line_start_before: 0,
            tripped: None,
        }
    }

    /// Starts a new event's budget.
    pub fn reset_budget(&mut self) {
        self.since_reset = 0;
    }

    /// 1-based line and column of the next unconsumed byte.
    pub fn line_col(&self) -> (u64, u64) {
        let before = |k: usize| (self.newlines[k] as usize) < self.pos;
        let mut k = self.newlines_passed.get().min(self.newlines.len());
        if k > 0 && !before(k - 1) {
            k = self
                .newlines
                .partition_point(|&at| (at as usize) < self.pos);
        }
        while k < self.newlines.len() && before(k) {
            k += 1;
        }
        self.newlines_passed.set(k);
        let line_start = match k {
            0 => self.line_start_before,
            _ => self.base + u64::from(self.newlines[k - 1]) + 1,
        };
        // Saturating: while a restart's prelude is read (see `restart`), the stream is
        // before the line it restarts on.
        (
            self.newlines_before + k as u64 + 1,
            self.consumed.saturating_sub(line_start) + 1,
        )
    }

    /// The offset in the file as stored of the next byte the parser gets: `consumed` unless
    /// Latin-1 is transcoded, where each byte above 0x7F became two.
    pub fn raw_offset(&self) -> u64 {
        let ahead = &self.buf[self.pos..];
        let ahead = match self.latin1 {
            // A transcoded byte's second half is a UTF-8 continuation byte.
            true => ahead.iter().filter(|&&b| b & 0xC0 != 0x80).count(),
            false => ahead.len(),
        };
        self.read_total - ahead as u64
    }

    fn trip(&mut self, t: Trip) -> io::Error {
        self.tripped = Some(t);
        io::Error::other(match t {
            Trip::EventTooLarge => "XML event exceeds the record size limit",
            Trip::FileTooLarge => "file exceeds the size limit",
        })
    }

    /// Reads the next block of the file into the buffer (transcoding Latin-1), where the
    /// last one is used up, and finds its line breaks.
    #[cold]
    #[inline(never)]
    fn refill(&mut self) -> io::Result<()> {
        self.newlines_before += self.newlines.len() as u64;
        if let Some(&last) = self.newlines.last() {
            self.line_start_before = self.base + u64::from(last) + 1;
        }
        self.base += self.buf.len() as u64;
        self.newlines.clear();
        self.newlines_passed.set(0);
        self.buf.clear();
        self.pos = 0;
        let n = loop {
            match self.inner.read(&mut self.raw) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            self.eof = true;
        } else {
            self.read_total += n as u64;
            if self.read_total > self.max_file_bytes {
                return Err(self.trip(Trip::FileTooLarge));
            }
            if self.latin1 {
                for &b in &self.raw[..n] {
                    if b < 0x80 {
                        self.buf.push(b);
                    } else {
                        // Latin-1 byte = Unicode code point U+0080..U+00FF.
                        self.buf.push(0xC0 | (b >> 6));
                        self.buf.push(0x80 | (b & 0x3F));
                    }
                }
            } else {
                self.buf.extend_from_slice(&self.raw[..n]);
            }
            let found = memchr::memchr_iter(b'\n', &self.buf).map(|at| at as u32);
            self.newlines.extend(found);
        }
        Ok(())
    }
}

/// Where a restarted input starts (see [`CappedInput::restart`]): the offset in the file
/// as stored, and that place's offset in the stream the parser reads, line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restart {
    pub raw: u64,
    pub byte: u64,
    pub line: u64,
    pub col: u64,
}

impl<R: Read + Seek> CappedInput<R> {
    /// Makes a new input read `prelude` and then the file from `at`, counting as if
    /// reading had come to `at` from the top: offsets, lines and columns from there are
    /// those of an uninterrupted read. The prelude (start tags of the elements open there,
    /// for the parser to know them) must hold no newline; its bytes are counted as just
    /// before `at`. `Ok(false)`, and nothing changed, unless the byte before `at` ends a
    /// tag, as every place between two IDocs does.
    pub fn restart(&mut self, at: Restart, prelude: &[u8]) -> io::Result<bool> {
        let p = prelude.len() as u64;
        let sound = at.raw > 0 && at.line > 0 && at.col > 0 && at.byte >= p.max(at.col - 1);
        if !sound || self.read_total != 0 || memchr::memchr(b'\n', prelude).is_some() {
            return Ok(false);
        }
        self.inner.seek(SeekFrom::Start(at.raw - 1))?;
        let mut last = [0u8; 1];
        self.inner.read_exact(&mut last)?;
        if last[0] != b'>' {
            self.inner.seek(SeekFrom::Start(0))?;
            return Ok(false);
        }
        self.buf.clear();
        self.buf.extend_from_slice(prelude);
        self.pos = 0;
        self.read_total = at.raw;
        self.consumed = at.byte - p;
        self.base = self.consumed;
        self.newlines.clear();
        self.newlines_passed.set(0);
        self.newlines_before = at.line - 1;
        self.line_start_before = at.byte - (at.col - 1);
        Ok(true)
    }
}

impl<R: Read> Read for CappedInput<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(out.len());
        out[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: Read> BufRead for CappedInput<R> {
    /// quick-xml asks for the buffer before nearly every few bytes it reads (a million
    /// times for 5 MB): the answer from the buffer is kept small enough to inline, the
    /// refill apart, as the whole function's register saves were a twentieth of an IDoc
    /// file's reading thread.
    #[inline]
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.since_reset > self.event_budget {
            return Err(self.trip(Trip::EventTooLarge));
        }
        if self.pos >= self.buf.len() && !self.eof {
            self.refill()?;
        }
        Ok(&self.buf[self.pos..])
    }

    fn consume(&mut self, amt: usize) {
        let amt = amt.min(self.buf.len() - self.pos);
        self.pos += amt;
        self.consumed += amt as u64;
        self.since_reset += amt as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin1_is_transcoded_and_lines_counted() {
        let mut c = CappedInput::new(&b"a\n\xe9b"[..], true, 100, 100);
        let mut s = String::new();
        c.read_to_string(&mut s).unwrap();
        assert_eq!(s, "a\néb");
        assert_eq!(c.line_col(), (2, 4));
    }

    /// Lines and columns answer as counting the consumed bytes does, at every step of
    /// consumes of every size, across refills of the buffer, for CRLF and long lines too.
    #[test]
    fn line_and_column_are_those_of_the_consumed_bytes() {
        let mut data = Vec::new();
        for i in 0..3000u32 {
            data.extend(std::iter::repeat_n(b'x', (i * 7 % 23) as usize));
            data.extend_from_slice(if i % 3 == 0 { b"\r\n" } else { b"\n" });
            if i % 500 == 0 {
                data.extend(std::iter::repeat_n(b'y', 20_000));
            }
        }
        let mut c = CappedInput::new(&data[..], false, u64::MAX, u64::MAX);
        let (mut at, mut step) = (0usize, 1usize);
        // Line and line start of byte `at`, counted along as the bytes are consumed.
        let (mut lines, mut start) = (0u64, 0usize);
        loop {
            assert_eq!(
                c.line_col(),
                (lines + 1, (at - start) as u64 + 1),
                "at {at}"
            );
            let avail = c.fill_buf().unwrap().len();
            if avail == 0 {
                break;
            }
            let n = step.min(avail);
            for (i, &b) in data[at..at + n].iter().enumerate() {
                if b == b'\n' {
                    lines += 1;
                    start = at + i + 1;
                }
            }
            c.consume(n);
            at += n;
            step = step % 97 + 13;
        }
        assert_eq!(at, data.len());
    }

    /// The offset in the file as stored answers as counting the Latin-1 bytes whose
    /// UTF-8 the parser has taken does, across refills of the buffer.
    #[test]
    fn the_raw_offset_counts_latin1_bytes_not_their_utf8() {
        let raw: Vec<u8> = (0..20_000u32)
            .map(|i| {
                if i % 3 == 0 {
                    0xE9
                } else {
                    b'a' + (i % 7) as u8
                }
            })
            .collect();
        let mut c = CappedInput::new(&raw[..], true, u64::MAX, u64::MAX);
        let (mut taken, mut step) = (0usize, 1usize);
        while taken < raw.len() {
            let avail = c.fill_buf().unwrap().to_vec();
            // Whole characters only: a mark is never inside one.
            let mut n = step.min(avail.len());
            while n < avail.len() && avail[n] & 0xC0 == 0x80 {
                n += 1;
            }
            taken += avail[..n].iter().filter(|&&b| b & 0xC0 != 0x80).count();
            c.consume(n);
            assert_eq!(c.raw_offset(), taken as u64);
            step = step % 89 + 11;
        }
    }

    /// A restarted input hands out the prelude, then the file from the restart's offset,
    /// placed as an uninterrupted read is there; it refuses an offset that does not follow
    /// a `>`, and then still reads from the top.
    #[test]
    fn a_restart_reads_the_prelude_then_the_file_from_its_place() {
        let file = b"<A>\n <B>\n  <C/>x\n  <D/>y\n</B></A>\n";
        let at = |raw: usize, col| Restart {
            raw: raw as u64,
            byte: raw as u64,
            line: 4,
            col,
        };
        let raw = 23; // after `<C/>x\n  <D/>`
        assert_eq!(&file[raw - 4..raw], b"<D/>");
        let mut c = CappedInput::new(io::Cursor::new(&file[..]), false, 100, 100);
        assert!(!c.restart(at(raw - 1, 6), b"<A><B>").unwrap());
        let mut top = Vec::new();
        c.read_to_end(&mut top).unwrap();
        assert_eq!(top, file);

        let mut c = CappedInput::new(io::Cursor::new(&file[..]), false, 100, 100);
        assert!(c.restart(at(raw, 7), b"<A><B>").unwrap());
        assert_eq!(c.fill_buf().unwrap(), b"<A><B>");
        c.consume(6);
        assert_eq!((c.consumed, c.line_col()), (raw as u64, (4, 7)));
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, &file[raw..]);
        assert_eq!(c.line_col(), (6, 1));
        assert_eq!(c.raw_offset(), file.len() as u64);
    }

    #[test]
    fn event_budget_trips() {
        let data = vec![b'x'; 100_000];
        let mut c = CappedInput::new(&data[..], false, u64::MAX, 10_000);
        let mut sink = Vec::new();
        let err = c.read_to_end(&mut sink).unwrap_err();
        assert_eq!(c.tripped, Some(Trip::EventTooLarge));
        assert!(sink.len() < 10_000 + 2 * CHUNK, "{}", sink.len());
        assert!(err.to_string().contains("record size"));
    }

    #[test]
    fn file_cap_trips() {
        let data = vec![b'x'; 100_000];
        let mut c = CappedInput::new(&data[..], false, 50_000, u64::MAX);
        let mut sink = Vec::new();
        assert!(c.read_to_end(&mut sink).is_err());
        assert_eq!(c.tripped, Some(Trip::FileTooLarge));
    }
}
