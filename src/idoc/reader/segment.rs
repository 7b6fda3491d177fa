//! What reading an IDoc file makes: the IDoc, its segments and their fields.
//!
//! These outlive the read: each IDoc goes to its unit's job on a worker (`idoc::eval` and
//! `idoc::map` read its segments) and is shown line by line in the ledger. So how an IDoc
//! keeps its fields (one list and one text buffer for all its segments, read into the
//! reader's lists and handed on at their size) and what they cost against its byte budget
//! is decided here, apart from the XML driving.

use std::ops::Deref;

use crate::tabular::cell_text::CellText;
use crate::unit::{capped, mask, Position};

/// How much of a segment the ledger keeps as its raw text.
const RAW_CAP: usize = 512;

/// One segment as read: its name, its parent segment, where it is and which of its IDoc's
/// fields are its own. Its fields are read through its IDoc ([`RawIdoc::seg`]): every
/// segment with two lists of its own was two allocations on the reading thread, IDoc's
/// slowest, and two frees on another thread, for each of an IDoc's dozens of segments.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Kept inline: names are short, and one allocation per segment was a fifth of the
    /// reading thread's allocations.
    pub name: CellText,
    /// Index of the parent segment in the IDoc, `None` for segments directly under `<IDOC>`.
    pub parent: Option<usize>,
    /// Its fields' slots in its IDoc's list: from its first to after its last. Fields
    /// come before a segment's children in every IDoc SAP writes, so no other slot lies
    /// between; where a field comes after a child, the child's slots do, and are passed
    /// over (each slot names its segment).
    span: (usize, usize),
    /// Its line, byte and record; no locator (see [`Segment::locator`]).
    pub pos: Position,
    pub(super) bytes: u64,
    /// What its locator is made of: its IDoc's ordinal (0: not known, a segment made
    /// without a place), its occurrence among its IDoc's segments of that name, the
    /// column of its start tag.
    place: (u64, u64, u64),
}

/// Where a field's name and value are in its IDoc's text, and whose it is.
#[derive(Debug, Clone, Copy)]
struct Slot {
    seg: usize,
    /// Its name is `text[start..mid]`, its value `text[mid..end]`.
    start: usize,
    mid: usize,
    end: usize,
    at: Mark,
}

/// One field element of a segment, with where its start tag is: a field error points at
/// the field, not at the segment's first line (segments span many lines in pretty XML).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    pub name: &'a str,
    pub value: &'a str,
    pub at: Mark,
}

/// What keeping one field costs beyond its text, counted against the IDoc's byte budget
/// so that thousands of tiny fields (`<A/>`) cannot cost far more memory than the budget.
pub const FIELD_OVERHEAD: u64 = std::mem::size_of::<Slot>() as u64;

impl Segment {
    pub fn new(name: &str, parent: Option<usize>, pos: Position) -> Segment {
        Segment {
            name: CellText::new(name),
            parent,
            span: (0, 0),
            pos,
            bytes: 0,
            place: (0, 0, 0),
        }
    }

    /// The segment's place among its IDoc's: IDoc `ordinal`, `n`th of its name, start tag
    /// at column `col`.
    pub fn placed(mut self, ordinal: u64, n: u64, col: u64) -> Segment {
        self.place = (ordinal, n, col);
        self
    }

    /// `IDoc 2 / E1EDP01 #2 (line 4, column 3)`, made when a line or a reason shows it
    /// rather than for every segment read; `None` without a place.
    pub fn locator(&self) -> Option<String> {
        let (ordinal, n, col) = self.place;
        (ordinal > 0).then(|| {
            let at = Mark {
                byte: self.pos.byte,
                line: self.pos.line,
                col,
            };
            segment_locator(ordinal, &self.name, n, at)
        })
    }
}

/// A segment with its IDoc's fields, to read its own: what [`RawIdoc::seg`] gives.
#[derive(Debug, Clone, Copy)]
pub struct Seg<'a> {
    seg: &'a Segment,
    index: usize,
    idoc: &'a RawIdoc,
}

impl Deref for Seg<'_> {
    type Target = Segment;
    fn deref(&self) -> &Segment {
        self.seg
    }
}

impl<'a> Seg<'a> {
    /// The fields in document order.
    pub fn fields(&self) -> impl Iterator<Item = Field<'a>> + 'a {
        let (idoc, index) = (self.idoc, self.index);
        let (from, to) = self.seg.span;
        idoc.slots[from..to]
            .iter()
            .filter(move |s| s.seg == index)
            .map(move |s| Field {
                name: &idoc.text[s.start..s.mid],
                value: &idoc.text[s.mid..s.end],
                at: s.at,
            })
    }

    pub fn field(&self, name: &str) -> Option<&'a str> {
        self.field_entry(name).map(|f| f.value)
    }

    pub fn field_entry(&self, name: &str) -> Option<Field<'a>> {
        self.fields().find(|f| f.name == name)
    }

    /// A reason about one of this segment's fields, placed at the field's element when it
    /// is present (a missing field stays at the segment): its line and byte, and a locator
    /// `IDoc 1 / E1EDL20 #1 / INCO1 (line 24, column 17)`.
    pub fn place(&self, name: &str, reason: crate::unit::Reason) -> crate::unit::Reason {
        let Some(f) = self.field_entry(name) else {
            return reason;
        };
        let seg = self.locator();
        let seg = seg.as_deref().unwrap_or(&self.name);
        let seg = seg.split(" (line ").next().unwrap_or(seg);
        reason
            .at(format!(
                "{seg} / {name} (line {}, column {})",
                f.at.line, f.at.col
            ))
            .placed(f.at.line, f.at.byte)
    }

    /// `E1EDP01: POSEX=000010 MENGE=5`, capped for the ledger, with the fields the type
    /// definition marks sensitive masked.
    pub fn raw(&self, sensitive: &[String]) -> String {
        let mut s = String::with_capacity(64);
        s.push_str(&self.name);
        s.push(':');
        for f in self.fields() {
            if s.len() > RAW_CAP {
                break;
            }
            s.push(' ');
            s.push_str(f.name);
            s.push('=');
            if sensitive.iter().any(|n| n == f.name) {
                s.push_str(&mask(f.value.trim()));
            } else {
                s.push_str(f.value.trim_end());
            }
        }
        capped(s, RAW_CAP)
    }
}

/// One IDoc as read, handed to the unit's job.
#[derive(Debug, Clone, Default)]
pub struct RawIdoc {
    /// 1-based ordinal of the IDoc in the file.
    pub ordinal: u64,
    /// Read a segment's fields through [`RawIdoc::seg`].
    pub segments: Vec<Segment>,
    /// Every kept field of every segment, in document order, and their names and values
    /// one after another.
    slots: Vec<Slot>,
    text: String,
    /// Segments past `max_unit_lines` that were counted but not kept.
    pub dropped: u64,
    pub max_segments: u64,
    /// Field bytes kept so far, and the cap (see [`SEGMENT_BUDGET`]).
    pub bytes: u64,
    pub max_bytes: u64,
    /// The byte cap was hit: the rest of the IDoc is skipped, not buffered.
    pub over_bytes: bool,
}

impl RawIdoc {
    /// Starts IDoc `ordinal` in these lists, emptied, their room kept: the reader fills
    /// one set of lists IDoc after IDoc and hands on exact copies ([`RawIdoc::take_exact`]),
    /// so an IDoc costs three allocations, none of them grown.
    pub fn restart(&mut self, ordinal: u64) {
        self.ordinal = ordinal;
        self.segments.clear();
        self.slots.clear();
        self.text.clear();
        (self.dropped, self.bytes, self.over_bytes) = (0, 0, false);
    }

    /// The IDoc as read, its lists the size of what they hold (an IDoc waits in the
    /// pipeline for its turn, and any room past its size would wait with it); these lists
    /// are left empty for the next, with at most [`ROOM_SEGMENTS`], [`ROOM_FIELDS`] and
    /// [`ROOM_TEXT`] of room, so one large IDoc is not kept for the rest of the file.
    pub fn take_exact(&mut self) -> RawIdoc {
        let idoc = RawIdoc {
            ordinal: self.ordinal,
            segments: self.segments.drain(..).collect(),
            slots: self.slots.as_slice().to_vec(),
            text: self.text.as_str().to_owned(),
            dropped: self.dropped,
            max_segments: self.max_segments,
            bytes: self.bytes,
            max_bytes: self.max_bytes,
            over_bytes: self.over_bytes,
        };
        self.restart(0);
        self.segments.shrink_to(ROOM_SEGMENTS);
        self.slots.shrink_to(ROOM_FIELDS);
        self.text.shrink_to(ROOM_TEXT);
        idoc
    }

    /// Segment `i` with its fields; panics past the last, as indexing does.
    pub fn seg(&self, i: usize) -> Seg<'_> {
        Seg {
            seg: &self.segments[i],
            index: i,
            idoc: self,
        }
    }

    pub fn get(&self, i: usize) -> Option<Seg<'_>> {
        (i < self.segments.len()).then(|| self.seg(i))
    }

    /// The segments with their fields, in document order.
    pub fn segs(&self) -> impl ExactSizeIterator<Item = Seg<'_>> + '_ {
        (0..self.segments.len()).map(|i| self.seg(i))
    }

    /// Keeps a field of segment `i` (after those already kept).
    pub fn push_field(&mut self, i: usize, name: &str, value: &str, at: Mark) {
        let start = self.text.len();
        self.text.push_str(name);
        let mid = self.text.len();
        self.text.push_str(value);
        let k = self.slots.len();
        self.slots.push(Slot {
            seg: i,
            start,
            mid,
            end: self.text.len(),
            at,
        });
        let seg = &mut self.segments[i];
        if seg.span.0 == seg.span.1 {
            seg.span.0 = k;
        }
        seg.span.1 = k + 1;
    }
}

/// Average bytes one segment may hold when sizing an IDoc's byte cap: SAP segment data is
/// at most 1000 characters (SDATA); the rest leaves room for XML field names. Together
/// with `max_unit_lines` this bounds one IDoc's memory even when every segment is large.
pub const SEGMENT_BUDGET: u64 = 2048;

/// The most room for segments, fields and text bytes the reader's lists keep from one IDoc
/// to the next (see [`RawIdoc::take_exact`]): far above a usual IDoc's (a few dozen
/// segments of a few fields), well below the most one IDoc may hold.
pub const ROOM_SEGMENTS: usize = 1024;
pub const ROOM_FIELDS: usize = 8 * 1024;
pub const ROOM_TEXT: usize = 256 * 1024;

/// Where an XML event starts: 0-based byte, 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    pub byte: u64,
    pub line: u64,
    pub col: u64,
}

/// `IDoc 3 / E1EDP01 #2 (line 40, column 5)`, built by hand: when it was made for every
/// segment read, `format!` was a sixth of the reading thread's time.
fn segment_locator(ordinal: u64, name: &str, n: u64, m: Mark) -> String {
    let mut b = itoa::Buffer::new();
    let mut s = String::with_capacity(40 + name.len());
    s.push_str("IDoc ");
    s.push_str(b.format(ordinal));
    s.push_str(" / ");
    s.push_str(name);
    s.push_str(" #");
    s.push_str(b.format(n));
    s.push_str(" (line ");
    s.push_str(b.format(m.line));
    s.push_str(", column ");
    s.push_str(b.format(m.col));
    s.push(')');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(line: u64) -> Mark {
        Mark {
            byte: line * 10,
            line,
            col: 1,
        }
    }

    fn idoc_of(segments: &[&str]) -> RawIdoc {
        let mut idoc = RawIdoc::default();
        for (i, name) in segments.iter().enumerate() {
            let pos = Position::new(i as u64 + 1, 0, i as u64 + 1);
            idoc.segments.push(Segment::new(name, None, pos));
        }
        idoc
    }

    /// An IDoc is handed on the size of what it holds, and the lists it was read into keep
    /// no more than their caps of room after a large one (a megabyte of fields must not
    /// stay reserved for the rest of the file); the next IDoc starts empty in them.
    #[test]
    fn an_idoc_is_kept_exactly_and_a_large_one_leaves_no_more_than_the_caps() {
        let mut open = idoc_of(&["E1X"; 2000]);
        for i in 0..2000 {
            open.push_field(i, "F", &"v".repeat(1000), at(1));
        }
        open.slots.reserve(500);
        open.text.reserve(5000);
        let kept = open.take_exact();
        assert_eq!(kept.segments.len(), 2000);
        assert_eq!(kept.slots.capacity(), 2000);
        assert_eq!(kept.text.capacity(), 2000 * 1001);
        assert_eq!(kept.seg(1999).field("F").map(str::len), Some(1000));
        assert!(open.segments.is_empty() && open.slots.is_empty() && open.text.is_empty());
        assert!(open.segments.capacity() <= ROOM_SEGMENTS);
        assert!(open.slots.capacity() <= ROOM_FIELDS);
        assert!(open.text.capacity() <= ROOM_TEXT);
        open.restart(2);
        assert_eq!((open.ordinal, open.bytes, open.dropped), (2, 0, 0));
    }

    /// A segment reads back its own fields as pushed, in order, at their own marks, with
    /// the fields of other segments kept between them (a parent's field after its child's)
    /// left out; a segment without fields has none.
    #[test]
    fn a_segment_reads_its_own_fields_when_another_segment_kept_some_between_them() {
        let mut idoc = idoc_of(&["E1P", "E1C", "E1EMPTY"]);
        idoc.push_field(0, "A", "1", at(2));
        idoc.push_field(1, "X", "child", at(4));
        idoc.push_field(0, "B", "2", at(6));
        idoc.push_field(1, "A", "again", at(7));
        let fields = |i: usize| {
            let seg = idoc.seg(i);
            seg.fields()
                .map(|f| (f.name, f.value, f.at.line))
                .collect::<Vec<_>>()
        };
        assert_eq!(fields(0), [("A", "1", 2), ("B", "2", 6)]);
        assert_eq!(fields(1), [("X", "child", 4), ("A", "again", 7)]);
        assert_eq!(fields(2), []);
        assert_eq!(idoc.seg(0).field("A"), Some("1"));
        assert_eq!(idoc.seg(1).field("A"), Some("again"));
        assert_eq!(idoc.seg(0).field("X"), None);
        assert_eq!(idoc.seg(2).field("A"), None);
        assert!(idoc.get(3).is_none());
        assert_eq!(idoc.segs().len(), 3);
    }
}
