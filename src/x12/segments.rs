//! One X12 segment as the rest of the engine sees it, and the delimiters it was cut with.
//!
//! Envelopes, validation, mapping and acknowledgements all work on segments, and a large
//! interchange holds a great many, so a segment's layout is what this module is about: its
//! text in one buffer, its id and elements as ranges into it, its id packed in a word.
//! Making segments from a byte stream is the reader's business (`reader`), and ids are
//! `id`'s; both are re-exported here, so `segments::X` is still where the rest of the crate
//! finds them.

use crate::unit::Position;

mod id;
mod reader;

pub use id::{SegId, SegName};
pub use reader::{show_char, IsaRead, ReadError, SegmentReader, ISA_WIDTHS};

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

/// Converts the segment's bytes once (copying again only when they are not UTF-8) and cuts
/// the text: a separator is a whole character, so the lossy text has the same elements as
/// the bytes converted one by one.
// Inlined into the segment reader, which calls it for every segment: left to itself the
// compiler stopped inlining it after an unrelated change elsewhere in the crate (a 5 MB 850
// file 1.877 → 1.888 G instructions; with the hint 1.881 G).
#[inline]
fn split_segment(logical: &[u8], d: &Delims, pos: Position) -> Segment {
    Segment::split(crate::unit::lossy(logical), d.elem.bytes(), pos)
}

#[cfg(test)]
mod tests {
    use super::*;

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
