//! Restarting a reader whose state at a unit grows with the file (X12: every set before
//! it, for the acknowledgement) by reading from the top again (or from a snapshot of that
//! state taken before the mark), building nothing of the units before the mark; and a
//! reader whose mark holds no state it can restart from (IDoc, for a mark written by an
//! older version) the same way.

// `FileError` is the shared error type of every format (see the parent module).
#![allow(clippy::result_large_err)]

use super::{FileError, Mark, UnitReader};
use crate::unit::Unit;

/// A reader that can pass over units cheaply: below `skim_below` it reads a unit for the
/// state it leaves and hands it out without lines or job.
pub(crate) trait Skim: UnitReader {
    /// The seq the next unit read will get.
    fn next_seq(&self) -> u64;
    /// Units below `seq` are skimmed (0: none).
    fn skim_below(&mut self, seq: u64);
    /// Keeps a unit read past the mark, to be returned by the next `next_unit`.
    fn keep(&mut self, unit: Unit);
    /// Where reading stands: byte and line.
    fn place(&self) -> (u64, u64);
}

/// Reads `reader` from the top until the next unit is the mark's: `Ok(false)` if the
/// units, or the bytes and lines, do not meet there (the caller gives up the restart and
/// reads from the start).
pub(crate) fn skim_to<R: Skim>(reader: &mut R, mark: &Mark) -> Result<bool, FileError> {
    let seq = mark.seq;
    reader.skim_below(seq);
    let reached = loop {
        if reader.next_seq() >= seq {
            break reader.next_seq() == seq;
        }
        match reader.next_unit()? {
            Some(u) if u.seq < seq => {}
            Some(u) => {
                reader.keep(u);
                break false;
            }
            None => break false,
        }
    };
    reader.skim_below(0);
    Ok(reached && reader.place() == (mark.byte, mark.line))
}
