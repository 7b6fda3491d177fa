//! Restarting an IDoc read at a mark, so a resumed file does not parse its committed part
//! again.
//!
//! Parsing the XML is most of an IDoc file's reading, and a resumed file read from the top
//! parsed every committed IDoc only to drop it: four fifths of a full run for a file
//! killed at 90%. Unlike an X12 interchange, what the reader must know between two IDocs
//! does not grow with the file: the STATUS acknowledgement asks the ledger for every IDoc's
//! outcome and needs only how many there were, and the rest is a count or two, the place
//! in the file and the envelope elements open around the IDocs (`<ORDERS05>`, a SOAP
//! body). So every mark holds all of it ([`State`]), and a restart seeks the file there
//! and hands the parser the open elements' start tags first, so that it knows them when
//! their end tags come. A mark without a usable state (one written before, or one whose
//! envelope names could not be replayed) is read to from the top as before.

// `FileError` is the shared error type of every format (see the parent module).
#![allow(clippy::result_large_err)]

use serde::{Deserialize, Serialize};

use super::input::Restart;
use super::reader::{Frame, IdocReader};
use crate::format::skim::{skim_to, Skim};
use crate::format::{FileError, Mark};
use crate::unit::Unit;

/// The version of [`State`]: a mark written with another one is read to from the top.
const VERSION: u32 = 1;

/// The most bytes of start tags a restart replays; a mark whose envelope names need more
/// (they are names only, a few dozen bytes in any real file) holds no state.
const MAX_PRELUDE: usize = 4096;

/// What the reader knows between two IDocs beyond the mark itself (whose seq, byte, line
/// and record — the IDocs read — it takes as they are).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    v: u32,
    /// The mark's offset in the file as stored (the mark's byte is the parser's, which
    /// differs from it when Latin-1 is transcoded).
    raw: u64,
    /// The column there, and the segments read before it (every segment's record).
    col: u64,
    segments: u64,
    /// The qualified names of the elements open there, outermost first.
    open: Vec<String>,
}

impl IdocReader {
    /// Any place between IDocs is a mark, and it holds all the reader needs to restart
    /// there (see the module's note).
    pub(super) fn restart_mark(&mut self) -> Mark {
        let m = self.here();
        Mark {
            seq: self.next_seq,
            byte: m.byte,
            line: m.line,
            record: self.idocs,
            state: self
                .restart_state(m.col)
                .and_then(|s| serde_json::to_value(s).ok())
                .unwrap_or_default(),
        }
    }

    /// The state at this place, if it is between IDocs with every unit given out and the
    /// open elements' names can be replayed.
    fn restart_state(&self, col: u64) -> Option<State> {
        if self.current.is_some() || self.at_mark.is_some() || self.stack.is_empty() {
            return None;
        }
        let mut open = Vec::with_capacity(self.stack.len());
        let mut bytes = 0;
        for frame in &self.stack {
            // Inside an IDoc is no place between IDocs.
            let Frame::Envelope(name) = frame else {
                return None;
            };
            bytes += name.len() + 2;
            if bytes > MAX_PRELUDE || name.is_empty() {
                return None;
            }
            open.push(name.to_string());
        }
        Some(State {
            v: VERSION,
            raw: self.xml.get_ref().raw_offset(),
            col,
            segments: self.segments_in_file,
            open,
        })
    }

    /// Restarts at the mark from the state it holds; without one, reads from the top up
    /// to it the way an uninterrupted read does, but makes no lines, label or job for the
    /// IDocs before it.
    pub(super) fn restart_at(&mut self, mark: &Mark) -> Result<bool, FileError> {
        if self.next_seq != 0 || self.idocs != 0 {
            return Ok(false);
        }
        let state = serde_json::from_value::<State>(mark.state.clone()).ok();
        if let Some(state) = state.filter(|s| s.v == VERSION && mark.seq > 0) {
            if self.restart(mark, &state)? {
                tracing::info!(
                    "reading restarts at byte {} after IDoc {}, from the state its mark holds: the IDocs before it are not read again",
                    state.raw,
                    mark.record
                );
                return Ok(true);
            }
        }
        skim_to(self, mark)
    }

    /// Seeks the input to the mark, behind the start tags of the elements open there, and
    /// takes up the counts an uninterrupted read had there. `Ok(false)` (nothing changed)
    /// if the file does not end a tag just before the mark.
    fn restart(&mut self, mark: &Mark, state: &State) -> Result<bool, FileError> {
        // A name as the parser read it cannot hold what ends a name; one that does would
        // not be read back as itself.
        let ends_name = |b: u8| b.is_ascii_whitespace() || b == b'/' || b == b'>';
        let names = |n: &String| !n.is_empty() && !n.bytes().any(ends_name);
        if state.open.is_empty() || !state.open.iter().all(names) {
            return Ok(false);
        }
        let mut prelude = Vec::new();
        for name in &state.open {
            prelude.push(b'<');
            prelude.extend_from_slice(name.as_bytes());
            prelude.push(b'>');
        }
        let at = Restart {
            raw: state.raw,
            byte: mark.byte,
            line: mark.line,
            col: state.col,
        };
        let input = self.xml.get_mut();
        if !input.restart(at, &prelude).map_err(|e| FileError::io(&e))? {
            return Ok(false);
        }
        // The parser counts from the prelude's first byte.
        self.xml_shift = mark.byte - prelude.len() as u64;
        (self.next_seq, self.idocs) = (mark.seq, mark.record);
        self.segments_in_file = state.segments;
        self.acks.seen(mark.seq - 1);
        Ok(true)
    }
}

impl Skim for IdocReader {
    fn next_seq(&self) -> u64 {
        self.next_seq
    }
    fn skim_below(&mut self, seq: u64) {
        self.skim_below = seq;
    }
    fn keep(&mut self, unit: Unit) {
        self.at_mark = Some(unit);
    }
    fn place(&self) -> (u64, u64) {
        let m = self.here();
        (m.byte, m.line)
    }
}

#[cfg(test)]
#[path = "resume_tests.rs"]
mod tests;
