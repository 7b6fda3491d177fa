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

use crate::unit::Position;

/// One delimiter: a single character, ASCII or multi-byte UTF-8 (partners do send `Ö` or
/// `…`), kept as its UTF-8 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sep {
    buf: [u8; 4],
    len: u8,
}

impl Sep {
    pub fn new(c: char) -> Sep {
        let mut buf = [0u8; 4];
        let len = c.encode_utf8(&mut buf).len() as u8;
        Sep { buf, len }
    }
    pub fn bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }
    pub fn first(&self) -> u8 {
        self.buf[0]
    }
    pub fn is_newline(&self) -> bool {
        self.len == 1 && matches!(self.buf[0], b'\r' | b'\n')
    }
    pub fn as_char(&self) -> char {
        std::str::from_utf8(self.bytes())
            .ok()
            .and_then(|s| s.chars().next())
            .unwrap_or('\u{FFFD}')
    }
}

/// The delimiters of one interchange, as declared by its ISA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delims {
    pub elem: Sep,
    /// ISA16.
    pub comp: Sep,
    /// ISA11 from version 00402 on (when it is not an alphanumeric code such as `U`).
    pub rep: Option<Sep>,
    pub term: Sep,
}

/// One segment as read: its text in one buffer, with the id and elements as byte ranges
/// into it. A segment used to own a string per element as well as the text; allocating and
/// freeing those was most of the reading thread's time.
#[derive(Clone, PartialEq, Eq)]
pub struct Segment {
    /// The text, then for BIN its data (which the text only summarises).
    buf: SegText,
    /// Length of the text in `buf`.
    text_len: u32,
    /// The id, trimmed.
    id: (u32, u32),
    /// The id packed: validating and mapping ask "is this a BEG?" of every segment many
    /// times, and comparing two strings in different allocations for it was a tenth of a
    /// worker's time.
    code: SegId,
    /// Elements after the id: `els[0]` is `XX01`.
    els: Ranges,
    pub pos: Position,
}

/// Element ranges kept in the segment itself when there are few and the text is under
/// 64 KiB, as in nearly every segment: a list of their own per segment was one allocation
/// in three on this path, and 16-bit offsets keep the segment 40 bytes smaller than 32-bit
/// ones did (a set's segments are made on the reading thread and read on a worker).
#[derive(Clone, PartialEq, Eq)]
enum Ranges {
    /// The first `.0` slots are used; the rest stay `(0, 0)`.
    Inline(u8, [(u16, u16); INLINE]),
    Heap(Vec<(u32, u32)>),
}

const INLINE: usize = 11;

impl Ranges {
    fn new() -> Ranges {
        Ranges::Inline(0, [(0, 0); INLINE])
    }

    /// Adds the next range; ranges come in increasing order, so once one does not fit
    /// inline none after it would.
    fn push(&mut self, r: (u32, u32)) {
        match self {
            Ranges::Inline(n, slots) if usize::from(*n) < INLINE => {
                if let (Ok(a), Ok(b)) = (u16::try_from(r.0), u16::try_from(r.1)) {
                    slots[usize::from(*n)] = (a, b);
                    *n += 1;
                    return;
                }
                self.spill(r);
            }
            Ranges::Inline(..) => self.spill(r),
            Ranges::Heap(v) => v.push(r),
        }
    }

    /// Moves the ranges to the heap, then adds `r`.
    fn spill(&mut self, r: (u32, u32)) {
        let mut v = Vec::with_capacity(INLINE * 2);
        v.extend(self.iter());
        v.push(r);
        *self = Ranges::Heap(v);
    }

    fn len(&self) -> usize {
        match self {
            Ranges::Inline(n, _) => usize::from(*n),
            Ranges::Heap(v) => v.len(),
        }
    }

    fn get(&self, i: usize) -> Option<(u32, u32)> {
        match self {
            Ranges::Inline(n, slots) => slots[..usize::from(*n)]
                .get(i)
                .map(|&(a, b)| (u32::from(a), u32::from(b))),
            Ranges::Heap(v) => v.get(i).copied(),
        }
    }

    fn iter(&self) -> impl ExactSizeIterator<Item = (u32, u32)> + '_ {
        (0..self.len()).map(|i| self.get(i).unwrap_or_default())
    }
}

/// A segment's buffer: inline up to 46 bytes, nine segments in ten of the X12 corpus. A
/// `String` per segment was half of the reading thread's allocations (13 of an 850's ~20),
/// each freed on a worker.
type SegText = crate::small_text::SmallText<46>;

impl Segment {
    /// Cuts `text` on the element separator `sep`: the first part is the id. One pass,
    /// with `memchr` for the usual one-byte separator (a substring search per element and
    /// a pass to count them first were a fifth of the reading thread).
    fn split(text: std::borrow::Cow<'_, str>, sep: &[u8], pos: Position) -> Segment {
        let (id, els) = match sep {
            // Most segments are a few dozen bytes: a plain pass over them costs less than
            // setting memchr up again for each of their few separators.
            [b] if text.len() <= SHORT_SEGMENT => {
                let at = text.bytes().enumerate().filter(|&(_, c)| c == *b);
                cut(&text, at.map(|(i, _)| i), 1)
            }
            [b] => cut(&text, memchr::memchr_iter(*b, text.as_bytes()), 1),
            _ => cut(
                &text,
                memchr::memmem::find_iter(text.as_bytes(), sep),
                sep.len(),
            ),
        };
        Segment {
            text_len: len32(&text),
            code: SegId::of(&text.as_bytes()[id.0 as usize..id.1 as usize]),
            buf: text.into(),
            id,
            els,
            pos,
        }
    }

    /// Whether the segment's id is the one `code` packs (see [`SegId`]).
    #[inline]
    pub fn is_code(&self, code: SegId) -> bool {
        code.packed() && self.code == code
    }

    /// Whether the segment's id is `id`: [`Segment::id`]` == id`, by the packed id when
    /// `id` has one.
    #[inline]
    pub fn is(&self, id: &str) -> bool {
        self.is_id(SegId::of(id.as_bytes()), id)
    }

    /// The id packed (see [`SegId`]).
    #[inline]
    pub fn code(&self) -> SegId {
        self.code
    }

    /// [`Segment::is`] for a name packed ahead (see [`SegName`]).
    #[inline]
    pub fn is_named(&self, n: &SegName) -> bool {
        self.is_id(n.code, &n.name)
    }

    /// Whether the segment's id is `name`, packed as `code`: by the packed ids when `name`
    /// has one, else by text.
    #[inline]
    fn is_id(&self, code: SegId, name: &str) -> bool {
        match code.packed() {
            true => self.code == code,
            false => self.id() == name,
        }
    }

    /// The segment id (`BEG`), trimmed.
    pub fn id(&self) -> &str {
        self.slice(self.id)
    }

    /// Element `n` (1-based, as in `BEG03`), empty when absent.
    pub fn el(&self, n: usize) -> &str {
        n.checked_sub(1)
            .and_then(|i| self.els.get(i))
            .map_or("", |r| self.slice(r))
    }

    /// The elements after the id, `XX01` first.
    pub fn elements(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.els.iter().map(|r| self.slice(r))
    }

    /// The segment text without terminator (hard-wrap newlines removed), lossy UTF-8.
    pub fn text(&self) -> &str {
        &self.buf[..self.text_len as usize]
    }

    fn slice(&self, (start, end): (u32, u32)) -> &str {
        &self.buf[start as usize..end as usize]
    }
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("id", &self.id())
            .field("elements", &self.elements().collect::<Vec<_>>())
            .field("text", &self.text())
            .field("pos", &self.pos)
            .finish()
    }
}

/// Up to this length a segment is cut on a one-byte separator by a plain pass.
const SHORT_SEGMENT: usize = 64;

/// The trimmed id and the element ranges of `text`, given where its separators (of
/// `sep_len` bytes) are.
fn cut(text: &str, seps: impl Iterator<Item = usize>, sep_len: usize) -> ((u32, u32), Ranges) {
    let mut ends = seps.chain(std::iter::once(text.len()));
    let first = ends.next().unwrap_or(text.len());
    let id = trimmed(text, &text[..first]);
    let mut els = Ranges::new();
    let mut start = first + sep_len;
    for end in ends {
        els.push((start as u32, end as u32));
        start = end + sep_len;
    }
    (id, els)
}

/// The range of `part`, a slice of `text`, without surrounding whitespace.
fn trimmed(text: &str, part: &str) -> (u32, u32) {
    let t = crate::unit::trim(part);
    let start = t.as_ptr() as usize - text.as_ptr() as usize;
    (start as u32, (start + t.len()) as u32)
}

/// A length in a segment's buffer, which the reader keeps under `u32::MAX` (see
/// [`MAX_SEGMENT`]).
fn len32(text: &str) -> u32 {
    u32::try_from(text.len()).unwrap_or(u32::MAX)
}

/// The longest segment the reader keeps: buffers are addressed with `u32` ranges, and a BIN
/// keeps its data after its text.
const MAX_SEGMENT: usize = (u32::MAX / 2) as usize;

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

/// The parsed ISA: its elements, delimiters and whether it had the standard fixed widths.
#[derive(Debug, Clone)]
pub struct IsaRead {
    pub seg: Segment,
    pub delims: Delims,
    /// Every element had its fixed width (106 characters in all).
    pub fixed_width: bool,
}

/// Fixed widths of ISA01..ISA16.
pub const ISA_WIDTHS: [usize; 16] = [2, 10, 2, 10, 2, 15, 2, 15, 6, 4, 1, 5, 9, 1, 1, 1];

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

/// The id of a skipped segment, given its bytes: what comes before the first element
/// separator, line breaks left out (as `read_segment` leaves them out); 16 bytes without
/// one make no id compared. A one-byte separator found before any line break, as in
/// nearly every segment, ends the id where it is.
fn skipped_id(seg: &[u8], d: &Delims) -> SegId {
    let sep = d.elem.bytes();
    if let [e] = sep {
        let head = &seg[..seg.len().min(16)];
        let plain = head
            .iter()
            .position(|&b| b == *e || b == b'\r' || b == b'\n');
        if let Some(k) = plain.filter(|&k| head[k] == *e) {
            return SegId::of(head[..k].trim_ascii());
        }
    }
    let mut head = [0u8; 16];
    let mut n = 0;
    for &b in seg {
        if n == head.len() {
            break;
        }
        if b != b'\r' && b != b'\n' {
            head[n] = b;
            n += 1;
        }
    }
    let head = &head[..n];
    let id = memchr::memmem::find(head, sep).map_or(head, |k| &head[..k]);
    SegId::of(id.trim_ascii())
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

    /// True when the next bytes are `ISA`.
    pub fn at_isa(&mut self) -> Result<bool, ReadError> {
        Ok(self.get(0)? == Some(b'I') && self.get(1)? == Some(b'S') && self.get(2)? == Some(b'A'))
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

    /// Reads one UTF-8 character `i` bytes ahead: (char, byte length).
    fn char_at(&mut self, i: usize) -> Result<Option<(char, usize)>, ReadError> {
        let Some(b0) = self.get(i)? else {
            return Ok(None);
        };
        let n = match b0 {
            0x00..=0x7F => 1,
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => return Ok(Some((char::REPLACEMENT_CHARACTER, 1))),
        };
        let mut bytes = [0u8; 4];
        for (k, slot) in bytes.iter_mut().enumerate().take(n) {
            match self.get(i + k)? {
                Some(b) => *slot = b,
                None => return Ok(None),
            }
        }
        Ok(Some(
            std::str::from_utf8(&bytes[..n])
                .ok()
                .and_then(|s| s.chars().next())
                .map(|c| (c, n))
                .unwrap_or((char::REPLACEMENT_CHARACTER, 1)),
        ))
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

    /// Reads an ISA at the cursor. The element separator is the character after `ISA`;
    /// ISA16 is the character after the 16th separator and the terminator the character
    /// after that. CR/LF inside the ISA are hard-wrap artefacts and skipped, unless one is
    /// the terminator.
    pub fn read_isa(&mut self) -> Result<IsaRead, ReadError> {
        let pos = self.here();
        let isa_err = |msg: String| ReadError::Isa {
            pos: pos.clone(),
            msg,
        };
        let eof = || isa_err("file ends inside the ISA header".into());
        let (ec, en) = self.char_at(3)?.ok_or_else(eof)?;
        if ec.is_ascii_alphanumeric() || ec.is_whitespace() || ec == char::REPLACEMENT_CHARACTER {
            return Err(isa_err(format!(
                "ISA element separator must be a non-alphanumeric, non-space character, found {}",
                show_char(ec)
            )));
        }
        let elem = Sep::new(ec);
        let mut logical: Vec<u8> = b"ISA".to_vec();
        logical.extend_from_slice(elem.bytes());
        let mut seps = 1usize;
        let mut i = 3 + en;
        while seps < 16 {
            let b = self.get(i)?.ok_or_else(eof)?;
            if b == b'\r' || b == b'\n' {
                i += 1;
                continue;
            }
            if self.at_sep(i, &elem)? {
                seps += 1;
                logical.extend_from_slice(elem.bytes());
                i += elem.bytes().len();
                continue;
            }
            if logical.len() > 300 {
                return Err(isa_err("ISA header has fewer than 16 elements".into()));
            }
            logical.push(b);
            i += 1;
        }
        while matches!(self.get(i)?, Some(b'\r' | b'\n')) {
            i += 1;
        }
        let (cc, cn) = self.char_at(i)?.ok_or_else(eof)?;
        i += cn;
        let (tc, tn) = self.char_at(i)?.ok_or_else(eof)?;
        i += tn;
        for (what, c) in [("component separator", cc), ("segment terminator", tc)] {
            let newline_term = what == "segment terminator" && (c == '\r' || c == '\n');
            if c.is_ascii_alphanumeric()
                || (c.is_whitespace() && !newline_term)
                || c == ec
                || c == char::REPLACEMENT_CHARACTER
            {
                return Err(isa_err(format!(
                    "ISA {what} {} is not usable (alphanumeric, space, invalid or equal to the element separator)",
                    show_char(c)
                )));
            }
        }
        if tc == cc {
            return Err(isa_err(
                "ISA16 component separator equals the segment terminator".into(),
            ));
        }
        let (comp, term) = (Sep::new(cc), Sep::new(tc));
        // The text ends with the 16th separator: ISA16 is the character after it.
        let text = format!("{}{cc}", String::from_utf8_lossy(&logical));
        self.advance(i);
        self.record += 1;
        let seg = Segment::split(
            text.into(),
            elem.bytes(),
            Position::new(pos.line, pos.byte, self.record),
        );
        let fixed_width = seg.elements().len() == 16
            && seg
                .elements()
                .zip(ISA_WIDTHS)
                .all(|(e, w)| e.chars().count() == w);
        let rep = (seg.elements().len() > 10)
            .then(|| seg.el(11))
            .and_then(|r| {
                let mut chars = r.chars();
                let c = chars.next()?;
                let version_402 = seg.elements().len() > 11 && seg.el(12) >= "00402";
                (chars.next().is_none()
                    && version_402
                    && !c.is_ascii_alphanumeric()
                    && !c.is_whitespace()
                    && c != ec
                    && c != cc
                    && c != tc)
                    .then(|| Sep::new(c))
            });
        Ok(IsaRead {
            seg,
            delims: Delims {
                elem,
                comp,
                rep,
                term,
            },
            fixed_width,
        })
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

    /// Passes over the next segment as [`Self::read_segment`] does (the same position,
    /// line and record counts after it), making no [`Segment`] of it: its id is all it
    /// tells. What a resumed file's committed sets are read with (see `X12Reader::seek`).
    pub fn skip_segment(&mut self, d: &Delims) -> Result<Option<SegId>, ReadError> {
        self.skip_ws(Some(d))?;
        if self.get(0)?.is_none() {
            return Ok(None);
        }
        if self.at_bin(d)? {
            // Its length-prefixed data decides where it ends: read as usual.
            return Ok(self.read_segment(d)?.map(|s| SegId::of(s.id().as_bytes())));
        }
        let tb = d.term.bytes();
        let len = self.extent(tb)?;
        let id = skipped_id(&self.buf[self.at..self.at + len], d);
        self.pass(len, tb);
        Ok(Some(id))
    }

    /// Passes over the whole segments in the window, as [`Self::skip_segment`] would one by
    /// one, up to the first whose id is one of `stops`, one not whole in the window, or the
    /// end of the window, where the cursor is left for `skip_segment`. Only with one-byte
    /// terminator and element separator, as nearly every interchange has; otherwise it
    /// passes nothing. A resume passes over every committed segment: with `skip_segment`
    /// alone, each checking for the end of the window and a BIN byte by byte and making an
    /// id, a 30 MB interchange killed at 92% spent 708 M instructions there (458 M now).
    pub fn skip_ordinary(&mut self, d: &Delims, stops: &[SegId]) {
        let ([t], [_]) = (d.term.bytes(), d.elem.bytes()) else {
            return;
        };
        let t = *t;
        // The first letters of the stops: a segment starting with another capital is none
        // of them, and its id need not be made (most of this pass's work when it was).
        let letters = stops
            .iter()
            .filter(|s| s.first().is_ascii_uppercase())
            .fold(0u32, |m, s| m | 1 << (s.first() - b'A'));
        let buf = &self.buf;
        let mut at = self.at;
        let mut passed = 0;
        // The terminators in one sweep: a search per segment of a few dozen bytes cost
        // more in setting up its wide search than in searching.
        for k in memchr::memchr_iter(t, &buf[self.at..]) {
            let end = self.at + k;
            // The whitespace `skip_ws` passes first (never a delimiter, so never `t`).
            let seg = &buf[at..end];
            let lead = seg
                .iter()
                .position(|&b| !between_segments(b, d))
                .unwrap_or(seg.len());
            let seg = &seg[lead..];
            let first = seg.first().copied().unwrap_or(0);
            let other = first.is_ascii_uppercase() && letters & 1 << (first - b'A') == 0;
            // A BIN is among the stops: its data, not its first terminator, ends it.
            if seg.len() > self.max_record || (!other && stops.contains(&skipped_id(seg, d))) {
                break;
            }
            at = end + 1;
            passed += 1;
        }
        self.at = at;
        self.record += passed;
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

/// A segment id packed in a word, its bytes and its length (so that `A\0` is not `A`):
/// what [`SegmentReader::skip_segment`] tells of a segment, what a [`Segment`] is compared
/// by, and what structure nodes keep (`defs::Node`). An id empty or longer than
/// [`SegId::MAX`] bytes has no packing and equals no id it is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SegId(u64);

impl SegId {
    pub const MAX: usize = 4;

    // `#[inline]` here and on `Segment::is`/`is_code`: they are called from other modules
    // (other codegen units) for every segment many times; without it the 850 run took 2%
    // more instructions.
    #[inline]
    pub const fn of(id: &[u8]) -> SegId {
        // By length, not a copy into a zeroed word: that was a call to memcpy per comparison.
        let word = match *id {
            [a] => [a, 0, 0, 0],
            [a, b] => [a, b, 0, 0],
            [a, b, c] => [a, b, c, 0],
            [a, b, c, d] => [a, b, c, d],
            _ => return SegId(0),
        };
        SegId(u32::from_le_bytes(word) as u64 | (id.len() as u64) << 32)
    }

    /// The id's first byte (0 for an id without packing).
    #[inline]
    pub fn first(self) -> u8 {
        self.0 as u8
    }

    /// Whether the id had a packing (see the type).
    #[inline]
    pub fn packed(self) -> bool {
        self.0 != 0
    }

    pub fn is(&self, id: &str) -> bool {
        self.packed() && *self == SegId::of(id.as_bytes())
    }
}

/// A segment id a definition names (a structure's segment, a map field's segment, a
/// group's trigger and members), packed once when the definition is read: asking each
/// segment of a set "is this a PO1?" for every field packed the name again for every
/// question.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(from = "String")]
pub struct SegName {
    name: String,
    code: SegId,
}

impl From<String> for SegName {
    fn from(name: String) -> SegName {
        SegName {
            code: SegId::of(name.as_bytes()),
            name,
        }
    }
}

impl SegName {
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The name packed (see [`SegId`]).
    pub fn code(&self) -> SegId {
        self.code
    }
}

impl std::fmt::Display for SegName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

/// Converts the segment's bytes once (copying again only when they are not UTF-8) and cuts
/// the text: a separator is a whole character, so the lossy text has the same elements as
/// the bytes converted one by one.
fn split_segment(logical: &[u8], d: &Delims, pos: Position) -> Segment {
    Segment::split(crate::unit::lossy(logical), d.elem.bytes(), pos)
}

/// A delimiter for a message: printable as itself, otherwise as its code point.
pub fn show_char(c: char) -> String {
    if c.is_ascii_graphic()
        || (!c.is_ascii() && !c.is_control() && c != char::REPLACEMENT_CHARACTER)
    {
        format!("'{c}'")
    } else {
        format!("U+{:04X}", c as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISA: &str = "ISA*00*          *00*          *ZZ*SENDER         *ZZ*RECEIVER       *240131*1100*U*00401*000000001*0*P*>~";

    /// Segments up to [`SHORT_SEGMENT`] bytes are cut by a plain pass, longer ones with
    /// memchr: around the boundary, with separators first, last, doubled and absent, both
    /// cut as `str::split` does.
    #[test]
    fn short_and_long_segments_are_cut_alike() {
        for len in SHORT_SEGMENT - 3..=SHORT_SEGMENT + 3 {
            for gaps in [
                &[3usize][..],
                &[1, 1],
                &[0, 5, 9],
                &[len],
                &[2, 0, 0],
                &[7; 12],
            ] {
                let mut text = String::from("REF");
                let mut cuts = gaps.iter().cycle();
                while text.len() < len {
                    let gap = *cuts.next().unwrap();
                    text.push('*');
                    text.extend(std::iter::repeat_n('x', gap.min(len - text.len())));
                }
                text.truncate(len);
                let seg = Segment::split(text.as_str().into(), b"*", Position::default());
                let want: Vec<&str> = text.split('*').collect();
                assert_eq!(seg.id(), want[0].trim(), "{text}");
                assert_eq!(seg.elements().collect::<Vec<_>>(), want[1..], "{text}");
            }
        }
    }

    fn all(input: &[u8]) -> Vec<Segment> {
        let mut r = SegmentReader::new(input, 1 << 20);
        r.skip_bom().unwrap();
        r.skip_ws(None).unwrap();
        let isa = r.read_isa().unwrap();
        let mut out = vec![isa.seg];
        while let Some(s) = r.read_segment(&isa.delims).unwrap() {
            out.push(s);
        }
        out
    }

    /// Segments passed over with `skip_segment` leave the reader where `read_segment`
    /// leaves it (byte, line, record) and tell the same id: wrapped lines, CRLF and
    /// newline terminators, a BIN whose data holds delimiters, an id too long to name one.
    #[test]
    fn skipping_a_segment_leaves_the_reader_where_reading_it_does() {
        let isa_nl = ISA.replace('~', "\n");
        let texts = [
            format!("{ISA}\nGS*PO*A*B~\r\nST*850*1~\nBEG*00\r\n*SA~ S\nE*2*1~"),
            format!("{isa_nl}GS*PO*A*B\r\nST*850*1\nSE*2*1\n"),
            format!("{ISA}BIN*5*a~b*c~SE*1*1~TOOLONGID*1~SE~"),
            format!("{ISA}GS *PO~ N1*BY~N3~FOURTEENCHARID*1~SIXTEENCHARS_IDS*1~PO1\r*1~SE*1~"),
        ];
        for text in &texts {
            let (mut read, mut skip) = (
                SegmentReader::new(text.as_bytes(), 1 << 20),
                SegmentReader::new(text.as_bytes(), 1 << 20),
            );
            let d = read.read_isa().unwrap().delims;
            skip.read_isa().unwrap();
            while let Some(seg) = read.read_segment(&d).unwrap() {
                let id = skip.skip_segment(&d).unwrap().expect("a segment");
                let long = seg.id().len() > SegId::MAX;
                assert_eq!((id.is(seg.id()), long), (!long, long), "{}", seg.id());
                assert_eq!(skip.position(), read.position(), "after {}", seg.id());
            }
            assert!(skip.skip_segment(&d).unwrap().is_none());
        }
    }

    /// Passing segments in bulk leaves the reader where reading them one by one does,
    /// wherever it stops: at a stop id (a BIN whose data holds terminators), at the end of a
    /// window, at whitespace and wrapped lines, at a segment too long; and it passes most
    /// segments itself.
    #[test]
    fn skipping_in_bulk_stops_where_reading_does() {
        let mut long = format!("{ISA}\r\n");
        for i in 0..20_000 {
            match i % 997 {
                0 => long.push_str("BIN*5*a~b*c~"),
                1 => long.push_str(" \t\r\nSE*1*1~\n"),
                2 => long.push_str(&format!("N9\r\n*{}~", "x".repeat(70))),
                _ => long.push_str(&format!("PO1*{i}*2*EA\r\n*9.5~\r\n")),
            }
        }
        long.push_str(&format!("N9*{}~", "x".repeat(300)));
        let isa_nl = ISA.replace('~', "\n");
        let texts = [
            long,
            format!("{ISA}\nGS*PO*A*B~\r\nST*850*1~\nBEG*00\r\n*SA~ S\nE*2*1~"),
            format!("{isa_nl}GS*PO*A*B\r\nST*850*1\nSE*2*1\n"),
            format!("{ISA}GS *PO~ N1*BY~N3~FOURTEENCHARID*1~SIXTEENCHARS_IDS*1~PO1\r*1~SE*1~"),
        ];
        let stops = [SegId::of(b"SE"), SegId::of(b"BIN")];
        for text in &texts {
            let (mut read, mut skip) = (
                SegmentReader::new(text.as_bytes(), 256),
                SegmentReader::new(text.as_bytes(), 256),
            );
            let d = read.read_isa().unwrap().delims;
            skip.read_isa().unwrap();
            let isa = skip.record as usize;
            // Where reading leaves the reader after each segment, by segments read.
            let mut after = vec![read.position()];
            let read_end = loop {
                match read.read_segment(&d) {
                    Ok(Some(_)) => after.push(read.position()),
                    Ok(None) => break None,
                    Err(e) => break Some(e.to_string()),
                }
            };
            let mut one_by_one = 0;
            let skip_end = loop {
                skip.skip_ordinary(&d, &stops);
                assert_eq!(skip.position(), after[skip.record as usize - isa]);
                one_by_one += 1;
                match skip.skip_segment(&d) {
                    Ok(Some(_)) => assert_eq!(skip.position(), after[skip.record as usize - isa]),
                    Ok(None) => break None,
                    Err(e) => break Some(e.to_string()),
                }
            };
            assert_eq!(skip_end, read_end);
            assert_eq!(skip.record as usize - isa, after.len() - 1);
            if text.len() > 4 * CHUNK {
                assert!(read_end.is_some(), "the last segment is too long");
                assert!(one_by_one < 200, "{one_by_one} segments skipped one by one");
            }
        }
    }

    /// Skipping counts the line breaks it passes only when a position is asked for or the
    /// window moves on: across several windows, asked only at the end, and at a segment
    /// too long, where the error is told, skipping and reading still agree.
    #[test]
    fn skipped_line_breaks_are_counted_across_windows_when_asked() {
        let mut text = format!("{ISA}\n");
        for i in 0..20_000 {
            text.push_str(&format!("PO1*{i}*2*EA\r\n*9.5~\n"));
        }
        text.push_str(&format!("N9*{}~", "x".repeat(300)));
        assert!(text.len() > 4 * CHUNK);
        let (mut read, mut skip) = (
            SegmentReader::new(text.as_bytes(), 256),
            SegmentReader::new(text.as_bytes(), 256),
        );
        let d = read.read_isa().unwrap().delims;
        skip.read_isa().unwrap();
        for _ in 0..20_000 {
            read.read_segment(&d).unwrap().expect("a segment");
            skip.skip_segment(&d).unwrap().expect("a segment");
        }
        // Up to the last terminator: the line break after it is passed with the next.
        assert_eq!(skip.position(), read.position());
        assert_eq!(read.position().line, 1 + 2 * 20_000);
        let (Err(r), Err(s)) = (read.read_segment(&d), skip.skip_segment(&d)) else {
            panic!("a segment over the limit is an error");
        };
        assert_eq!(s.to_string(), r.to_string());
        assert_eq!(s.pos().map(|p| p.line), Some(2 + 2 * 20_000));
    }

    #[test]
    fn reads_delimiters_and_positions() {
        let text = format!("\u{feff}{ISA}\nGS*PO*A*B~\r\nST*850*1~");
        let segs = all(text.as_bytes());
        assert_eq!(segs.len(), 3);
        assert_eq!(segs[0].el(6), "SENDER         ");
        assert_eq!(segs[0].pos.byte, 3);
        assert_eq!(segs[1].id(), "GS");
        assert_eq!(segs[1].pos.line, 2);
        assert_eq!(segs[2].pos.line, 3);
        assert_eq!(segs[2].pos.record, 3);
        assert_eq!(segs[2].el(2), "1");
    }

    #[test]
    fn hard_wrapped_isa_and_elements_are_joined() {
        let wrapped = format!("{}\n{}GS*PO*A*B*2024\r\n0131~", &ISA[..80], &ISA[80..]);
        let segs = all(wrapped.as_bytes());
        assert_eq!(segs[0].elements().len(), 16);
        assert_eq!(segs[1].el(4), "20240131");
    }

    #[test]
    fn newline_terminator_with_crlf() {
        let isa = ISA.replace('~', "\n");
        let segs = all(format!("{isa}GS*PO*A*B\r\nST*850*1\n").as_bytes());
        assert_eq!(segs[1].el(3), "B");
        assert_eq!(segs[2].id(), "ST");
    }

    /// A segment's text is kept inline up to 46 bytes and on the heap above: either way
    /// it reads back whole, with its elements, multi-byte characters included.
    #[test]
    fn segments_either_side_of_the_inline_limit_read_back_whole() {
        let texts = [
            format!("N1*BY*{}", "x".repeat(40)),
            format!("N1*BY*{}", "x".repeat(41)),
            format!("N1*BY*{}*9", "é".repeat(19)),
            format!("N1*BY*{}*92*C-1", "Ö".repeat(30)),
        ];
        assert_eq!((texts[0].len(), texts[1].len()), (46, 47));
        let input: String = texts.iter().map(|t| format!("{t}~")).collect();
        let segs = all(format!("{ISA}{input}").as_bytes());
        for (seg, text) in segs[1..].iter().zip(&texts) {
            assert_eq!(seg.text(), text);
            assert_eq!(seg.id(), "N1");
            let els: Vec<&str> = text.split('*').skip(1).collect();
            assert_eq!(seg.elements().collect::<Vec<_>>(), els);
        }
    }

    /// Element ranges are kept inline for up to 11 elements of a text under 64 KiB and
    /// move to the heap past either: a segment of many elements, and one whose elements
    /// straddle the 64 KiB mark, read back every element.
    #[test]
    fn element_ranges_past_the_inline_slots_and_past_64_kib_read_back() {
        let many: Vec<String> = (1..=30).map(|i| format!("E{i}")).collect();
        let wide = [
            "A".repeat(40_000),
            "B".repeat(30_000),
            "C".into(),
            "D".into(),
        ];
        for els in [many, wide.to_vec()] {
            let text = format!("REF*{}", els.join("*"));
            let segs = all(format!("{ISA}{text}~").as_bytes());
            assert_eq!(segs[1].text(), text);
            assert_eq!(segs[1].elements().collect::<Vec<_>>(), els);
            assert_eq!(segs[1].el(els.len()), els[els.len() - 1]);
            assert_eq!(segs[1].el(els.len() + 1), "");
        }
    }

    #[test]
    fn bin_payload_may_contain_delimiters() {
        let segs = all(format!("{ISA}BIN*5*a~b*c~SE*1*1~").as_bytes());
        assert_eq!(segs[1].el(2), "a~b*c");
        assert_eq!((segs[1].id(), segs[1].el(1)), ("BIN", "5"));
        assert_eq!(segs[1].text(), "BIN*5*[5 bytes]");
        assert_eq!(segs[2].id(), "SE");
    }

    /// Splits `data` on a (possibly multi-byte) separator, as the reader once did.
    fn split_on<'a>(data: &'a [u8], sep: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
        let mut rest = Some(data);
        std::iter::from_fn(move || {
            let r = rest?;
            match memchr::memmem::find(r, sep) {
                Some(k) => {
                    rest = Some(&r[k + sep.len()..]);
                    Some(&r[..k])
                }
                None => {
                    rest = None;
                    Some(r)
                }
            }
        })
    }

    /// What a segment held when each element was converted on its own.
    fn per_element(bytes: &[u8], sep: &[u8]) -> (String, Vec<String>) {
        let lossy = |p: &[u8]| String::from_utf8_lossy(p).into_owned();
        let mut parts = split_on(bytes, sep);
        let id = parts.next().map(|p| lossy(p).trim().to_string());
        (id.unwrap_or_default(), parts.map(lossy).collect())
    }

    #[test]
    fn one_buffer_has_the_elements_converted_one_by_one() {
        let cases: [(&[u8], char); 7] = [
            (b"PO1*1*2*3*4*5*6*7*8*9*10*11**13", '*'),
            (b" N1 *ST*\xffName\xe2\x82*\xc3*", '*'),
            (b"REF*\xe2\x82\xc3\x96x*\x96", 'Ö'),
            ("REFÖ\u{2026}ÖÖ".as_bytes(), 'Ö'),
            (b"", '*'),
            (b"  ", '*'),
            (b"PER", '*'),
        ];
        for (bytes, c) in cases {
            let d = Delims {
                elem: Sep::new(c),
                comp: Sep::new(':'),
                rep: None,
                term: Sep::new('~'),
            };
            let seg = split_segment(bytes, &d, Position::default());
            let (id, els) = per_element(bytes, d.elem.bytes());
            assert_eq!(seg.id(), id);
            assert_eq!(seg.elements().collect::<Vec<_>>(), els);
            assert_eq!(seg.text(), String::from_utf8_lossy(bytes));
            assert_eq!(seg.el(els.len() + 1), "");
            assert_eq!(seg.el(0), "");
        }
    }

    #[test]
    fn non_numeric_bin_length_is_an_error() {
        let text = format!("{ISA}BIN*5a*a~b*c~");
        let mut r = SegmentReader::new(text.as_bytes(), 1 << 20);
        let isa = r.read_isa().unwrap();
        assert!(matches!(
            r.read_segment(&isa.delims),
            Err(ReadError::Binary { .. })
        ));
    }

    #[test]
    fn segment_longer_than_limit_is_refused() {
        let text = format!("{ISA}{}~", "A".repeat(5000));
        let mut r = SegmentReader::new(text.as_bytes(), 1000);
        let isa = r.read_isa().unwrap();
        assert!(matches!(
            r.read_segment(&isa.delims),
            Err(ReadError::TooLong { .. })
        ));
    }

    /// Hands out one byte per read, so every delimiter straddles a read boundary.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match (self.0.split_first(), buf.first_mut()) {
                (Some((b, rest)), Some(slot)) => {
                    *slot = *b;
                    self.0 = rest;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    #[test]
    fn multibyte_utf8_delimiters_across_read_boundaries() {
        let text = ISA.replace('*', "Ö").replace('~', "…") + "GSÖPOÖAÖB…\nSTÖ850Ö1…";
        let mut r = SegmentReader::new(Trickle(text.as_bytes()), 1 << 20);
        let isa = r.read_isa().unwrap();
        assert!(isa.fixed_width);
        assert_eq!(isa.delims.elem, Sep::new('Ö'));
        assert_eq!(isa.delims.term, Sep::new('…'));
        let gs = r.read_segment(&isa.delims).unwrap().unwrap();
        assert_eq!((gs.id(), gs.el(3)), ("GS", "B"));
        let st = r.read_segment(&isa.delims).unwrap().unwrap();
        assert_eq!((st.id(), st.el(2), st.pos.line), ("ST", "1", 2));
        assert!(r.read_segment(&isa.delims).unwrap().is_none());
    }

    #[test]
    fn trimmed_isa_is_read_but_not_fixed_width() {
        let mut r = SegmentReader::new(
            &b"ISA*00**00**ZZ*S*ZZ*R*240131*1100*U*00401*1*0*P*:~"[..],
            1 << 20,
        );
        let isa = r.read_isa().unwrap();
        assert!(!isa.fixed_width);
        assert_eq!(isa.delims.comp, Sep::new(':'));
    }

    /// `is` answers as comparing the id's text does, for ids packed in a word and for
    /// those too long (or empty) to be.
    #[test]
    fn is_answers_as_comparing_the_id_text_does() {
        let ids = [
            "BEG",
            "BE",
            "BEGX",
            "BEGXY",
            "N1",
            "N",
            "N\0",
            "N1\0",
            "\0",
            "ÄB",
            "",
            "LONGIDENT",
            "LONGIDENTX",
        ];
        for text in ids {
            let seg = Segment::split(format!("{text}*1*2").into(), b"*", Position::new(1, 0, 1));
            for asked in ids {
                assert_eq!(seg.is(asked), seg.id() == asked, "{text:?} is {asked:?}");
                let code = SegId::of(asked.as_bytes());
                if code.packed() {
                    assert_eq!(seg.is_code(code), seg.id() == asked, "{text:?} {asked:?}");
                }
            }
        }
        let padded = Segment::split(" PO1 *1".into(), b"*", Position::new(1, 0, 1));
        assert!(padded.is("PO1"));
    }
}
