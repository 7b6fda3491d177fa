//! What reading an IDoc file makes: the IDoc, its segments and their fields.
//!
//! These outlive the read: each IDoc goes to its unit's job on a worker (`idoc::eval` and
//! `idoc::map` read its segments) and is shown line by line in the ledger. So how a segment
//! keeps its fields (one buffer, room sized from the last segment of its name) and what it
//! costs against the IDoc's byte budget is decided here, apart from the XML driving.

use crate::tabular::cell_text::CellText;
use crate::unit::{capped, mask, Position};

/// How much of a segment the ledger keeps as its raw text.
const RAW_CAP: usize = 512;

/// One segment as read: its fields in document order and its parent segment. The fields'
/// names and values share one buffer: two strings per field were two allocations in the
/// reading thread, IDoc's slowest, and two frees on another thread.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Kept inline: names are short, and one allocation per segment was a fifth of the
    /// reading thread's allocations.
    pub name: CellText,
    /// Index of the parent segment in the IDoc, `None` for segments directly under `<IDOC>`.
    pub parent: Option<usize>,
    /// Each field's name then its value, one after another.
    text: String,
    slots: Vec<Slot>,
    /// The fields and text bytes its lists get at its first field (see
    /// [`Segment::with_room`]).
    room: (u16, u16),
    /// Its line, byte and record; no locator (see [`Segment::locator`]).
    pub pos: Position,
    pub(super) bytes: u64,
    /// What its locator is made of: its IDoc's ordinal (0: not known, a segment made
    /// without a place), its occurrence among its IDoc's segments of that name, the
    /// column of its start tag.
    place: (u64, u64, u64),
}

/// Where a field's name and value are in its segment's text.
#[derive(Debug, Clone, Copy)]
struct Slot {
    name: (usize, usize),
    value: (usize, usize),
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
        Segment::with_room(name, parent, pos, (0, 0))
    }

    /// A segment whose lists get room for `fields` fields of `text` bytes in all when
    /// its first field comes (as much as [`Segment::room`] tells of the last one of its
    /// name), up to [`ROOM_FIELDS`] and [`ROOM_TEXT`]: the IDoc's byte budget counts
    /// fields, not room, so one large segment must not make every later one of its name
    /// reserve as much, and a segment without fields takes none.
    pub fn with_room(
        name: &str,
        parent: Option<usize>,
        pos: Position,
        (fields, text): (usize, usize),
    ) -> Segment {
        Segment {
            name: CellText::new(name),
            parent,
            text: String::new(),
            slots: Vec::new(),
            room: (fields.min(ROOM_FIELDS) as u16, text.min(ROOM_TEXT) as u16),
            pos,
            bytes: 0,
            place: (0, 0, 0),
        }
    }

    /// Its fields and text bytes.
    pub fn room(&self) -> (usize, usize) {
        (self.slots.len(), self.text.len())
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

    /// Keeps a field (after those already kept).
    pub fn push_field(&mut self, name: &str, value: &str, at: Mark) {
        if self.slots.capacity() == 0 {
            // Room at once rather than growing through 8, 16, 32... bytes: the last
            // segment of this name's (a little more text: values differ in length), or a
            // usual segment's.
            let (fields, text) = match self.room {
                (0, _) => (6, 80),
                (f, t) => (usize::from(f), usize::from(t) * 9 / 8 + 8),
            };
            self.slots.reserve_exact(fields);
            self.text.reserve(text);
        }
        let start = self.text.len();
        self.text.push_str(name);
        let mid = self.text.len();
        self.text.push_str(value);
        self.slots.push(Slot {
            name: (start, mid),
            value: (mid, self.text.len()),
            at,
        });
    }

    /// The fields in document order.
    pub fn fields(&self) -> impl ExactSizeIterator<Item = Field<'_>> + '_ {
        self.slots.iter().map(|s| Field {
            name: &self.text[s.name.0..s.name.1],
            value: &self.text[s.value.0..s.value.1],
            at: s.at,
        })
    }

    pub fn field(&self, name: &str) -> Option<&str> {
        self.field_entry(name).map(|f| f.value)
    }

    pub fn field_entry(&self, name: &str) -> Option<Field<'_>> {
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

/// One IDoc as read from the file, handed to the unit's job.
#[derive(Debug, Clone, Default)]
pub struct RawIdoc {
    /// 1-based ordinal of the IDoc in the file.
    pub ordinal: u64,
    pub segments: Vec<Segment>,
    /// Segments past `max_unit_lines` that were counted but not kept.
    pub dropped: u64,
    pub max_segments: u64,
    /// Field bytes kept so far, and the cap (see [`SEGMENT_BUDGET`]).
    pub bytes: u64,
    pub max_bytes: u64,
    /// The byte cap was hit: the rest of the IDoc is skipped, not buffered.
    pub over_bytes: bool,
}

/// Average bytes one segment may hold when sizing an IDoc's byte cap: SAP segment data is
/// at most 1000 characters (SDATA); the rest leaves room for XML field names. Together
/// with `max_unit_lines` this bounds one IDoc's memory even when every segment is large.
pub const SEGMENT_BUDGET: u64 = 2048;

/// The most fields and text bytes a segment is given room for at its first field (see
/// [`Segment::with_room`]): about a segment's share of the IDoc's byte budget
/// ([`SEGMENT_BUDGET`]) with its fields' slots, far above a usual segment's.
pub const ROOM_FIELDS: usize = 16;
pub const ROOM_TEXT: usize = 1024;

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

    /// The room a segment takes from the last one of its name is capped: a segment with a
    /// megabyte of fields must not make every later one of its name reserve a megabyte
    /// (the IDoc's byte budget counts fields, not room), and one without fields takes none.
    #[test]
    fn regression_a_large_segment_made_every_later_one_of_its_name_reserve_as_much() {
        let at = Mark {
            byte: 0,
            line: 1,
            col: 1,
        };
        let mut big = Segment::new("E1X", None, Position::new(1, 0, 1));
        for i in 0..1000 {
            big.push_field(&format!("F{i}"), &"v".repeat(1000), at);
        }
        let room = big.room();
        assert_eq!(room.0, 1000);
        assert!(room.1 > 1_000_000);
        let mut small = Segment::with_room("E1X", None, Position::new(2, 0, 2), room);
        assert_eq!((small.slots.capacity(), small.text.capacity()), (0, 0));
        small.push_field("F0", "v", at);
        assert!(
            small.slots.capacity() <= ROOM_FIELDS,
            "{}",
            small.slots.capacity()
        );
        assert!(
            small.text.capacity() <= ROOM_TEXT * 9 / 8 + 8,
            "{}",
            small.text.capacity()
        );
        // A usual segment's room is taken as it was.
        let mut usual = Segment::with_room("E1Y", None, Position::new(3, 0, 3), (3, 40));
        usual.push_field("A", "1", at);
        assert_eq!(usual.slots.capacity(), 3);
        assert!(usual.text.capacity() >= 40);
        assert_eq!(usual.field("A"), Some("1"));
    }
}
