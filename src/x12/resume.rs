//! Restarting an X12 read at a unit, so a resumed file does not read its committed sets
//! in full again.
//!
//! What the reader must know at a unit is the envelope it is in and everything the
//! acknowledgement will answer: every interchange, group and set before it, with the
//! partner's atomicity. That grows with the file, too much to write with every batch, so
//! a mark is only where the unit starts; the restarted reader reads from the top with the
//! same code, but passes over the segments of every set before the mark without making
//! segments, lines, locators or jobs of them (`SegmentReader::skip_ordinary` a window's
//! worth at a time, `skip_segment` the ones that end a set or need reading). Reading a
//! set in full only for it to be dropped was most of a resume's time.

// `FileError` is the shared error type of every format (see the parent module).
#![allow(clippy::result_large_err)]

use super::segments::{Delims, SegId, Segment};
use super::{read_err, X12Reader};
use crate::format::skim::{skim_to, Skim};
use crate::format::{FileError, Mark};
use crate::unit::Unit;

/// What ends a set's body or must be read as it would be: the trailer, the envelope
/// segments an uninterrupted read stops at ([`SET_BREAKS`]), and BIN, whose data may hold
/// a terminator.
const BODY_STOPS: [SegId; 7] = [
    SegId::of(b"SE"),
    SegId::of(b"BIN"),
    SegId::of(b"ST"),
    SegId::of(b"GE"),
    SegId::of(b"IEA"),
    SegId::of(b"ISA"),
    SegId::of(b"GS"),
];

/// The envelope segments that end a set without its SE (as `read_set_body` finds them).
const SET_BREAKS: &[SegId] = BODY_STOPS.split_at(2).1;

impl X12Reader {
    /// Between units every held unit has been given out (see `next_unit`): any place is
    /// a mark. What the reader knows there (interchanges, groups, every set for the
    /// acknowledgement, the partner's atomicity) is rebuilt by `seek` reading from the
    /// top, so the mark holds nothing else.
    pub(super) fn restart_mark(&self) -> Option<Mark> {
        let pos = self.src.position();
        Some(Mark {
            seq: self.seq,
            byte: pos.byte,
            line: pos.line,
            record: pos.record,
            state: serde_json::Value::Null,
        })
    }

    /// Reads the envelope state up to the mark the way an uninterrupted read builds it,
    /// but makes no lines, locators or jobs for the sets before it (most of reading a set:
    /// a resumed file read every committed set in full only to drop it).
    pub(super) fn restart_at(&mut self, mark: &Mark) -> Result<bool, FileError> {
        if self.started || self.seq != 0 {
            return Ok(false);
        }
        skim_to(self, mark)
    }

    /// Passes over a set's segments after its ST up to its SE without making segments of
    /// them (see `seek`). Anything an uninterrupted read would have stopped at is an error
    /// here, and the seek is given up.
    pub(super) fn skip_set_body(&mut self, d: &Delims, st: &Segment) -> Result<(), FileError> {
        loop {
            // Segments that are none of these are passed over in bulk; `skip_segment` takes
            // each of these, and whatever the bulk pass leaves at the end of its window.
            self.src.skip_ordinary(d, &BODY_STOPS);
            let id = match self.src.skip_segment(d) {
                Err(e) => return Err(read_err(e)),
                Ok(None) => None,
                Ok(Some(id)) if id.is("SE") => return Ok(()),
                Ok(Some(id)) => Some(id),
            };
            if id.is_none_or(|id| SET_BREAKS.contains(&id)) {
                return Err(FileError::new(
                    "x12-missing-se",
                    format!(
                        "transaction set {} {} has no SE trailer",
                        st.el(1),
                        st.el(2)
                    ),
                ));
            }
        }
    }
}

impl Skim for X12Reader {
    fn next_seq(&self) -> u64 {
        self.seq
    }
    fn skim_below(&mut self, seq: u64) {
        self.skim_below = seq;
    }
    fn keep(&mut self, unit: Unit) {
        self.at_mark = Some(unit);
    }
    fn place(&self) -> (u64, u64) {
        let pos = self.src.position();
        (pos.byte, pos.line)
    }
}
