//! Segment ids packed in a word, and the names definitions give them, packed once.
//!
//! Validation and mapping ask "is this a BEG?" of every segment many times, and skipping
//! a committed set names each of its segments without making one: comparing ids as words
//! rather than as text is what keeps that cheap. Definitions (`defs`) keep these too, so
//! they live apart from the segment itself.

/// A segment id packed in a word, its bytes and its length (so that `A\0` is not `A`):
/// what [`SegmentReader::skip_segment`] tells of a segment, what a [`Segment`] is compared
/// by, and what structure nodes keep (`defs::Node`). An id empty or longer than
/// [`SegId::MAX`] bytes has no packing and equals no id it is compared with.
///
/// [`SegmentReader::skip_segment`]: super::SegmentReader::skip_segment
/// [`Segment`]: super::Segment
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
    pub(super) name: String,
    pub(super) code: SegId,
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
