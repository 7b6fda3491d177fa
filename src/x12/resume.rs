//! Restarting an X12 read at a unit, so a resumed file does not read its committed sets
//! in full again.
//!
//! What the reader must know at a unit is the envelope it is in and everything the
//! acknowledgement will answer: every interchange, group and set before it, with the
//! partner's atomicity. That grows with the file, too much to write with every batch, so
//! a mark holds where the unit starts and names the latest snapshot of that state (see
//! `super::snapshot`), taken every so often. The restarted reader takes up the snapshot
//! (or, without a usable one, starts at the top) and reads on to the mark with the same
//! code, but passes over the segments of every set before it without making segments,
//! lines, locators or jobs of them (`SegmentReader::skip_ordinary` a window's worth at a
//! time, `skip_segment` the ones that end a set or need reading). Reading a set in full
//! only for it to be dropped was most of a resume's time; passing over every committed
//! set from the top was then a quarter of it (a 30 MB interchange killed at 92%).

// `FileError` is the shared error type of every format (see the parent module).
#![allow(clippy::result_large_err)]

use super::defs::Atomic;
use super::reader::read_err;
use super::segments::{Delims, SegId, Segment};
use super::snapshot::{self, Place};
use super::X12Reader;
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

/// The envelope segments that end a set without its SE: where `read_set_body` stops.
pub(super) const SET_BREAKS: &[SegId] = BODY_STOPS.split_at(2).1;

impl X12Reader {
    /// Between units every held unit has been given out (see `next_unit`): any place is
    /// a mark. What the reader knows there (interchanges, groups, every set for the
    /// acknowledgement, the partner's atomicity) is rebuilt by `seek` from the latest
    /// snapshot, which is taken here when one is due, and the mark names it.
    pub(super) fn restart_mark(&mut self) -> Option<Mark> {
        let pos = self.src.position();
        if self.snaps.due(pos.byte) {
            let place = Place {
                seq: self.seq,
                started: self.started,
                byte: pos.byte,
                line: pos.line,
                record: self.src.record,
            };
            let bytes = snapshot::encode(&place, &self.done, self.cur.as_ref());
            self.snaps.append(&bytes, pos.byte);
        }
        Some(Mark {
            seq: self.seq,
            byte: pos.byte,
            line: pos.line,
            record: pos.record,
            state: self.snaps.mark_state(),
        })
    }

    /// Takes up the snapshot the mark names, if it is usable, and reads the envelope state
    /// from there (else from the top) up to the mark the way an uninterrupted read builds
    /// it, but makes no lines, locators or jobs for the sets before it (most of reading a
    /// set: a resumed file read every committed set in full only to drop it).
    pub(super) fn restart_at(&mut self, mark: &Mark) -> Result<bool, FileError> {
        if self.started || self.seq != 0 {
            return Ok(false);
        }
        if let Some((state, snap)) = self.snapshot_for(mark) {
            tracing::info!(
                "what was read before byte {} is taken from the restart snapshot; the {} bytes from there to the mark are passed over",
                state.place.byte,
                mark.byte - state.place.byte
            );
            self.snaps.restored(snap, state.place.byte);
            self.restore(state)?;
        }
        skim_to(self, mark)
    }

    /// The snapshot `mark` names, if it is sound and taken at or before the mark.
    fn snapshot_for(&self, mark: &Mark) -> Option<(snapshot::State, snapshot::SnapRef)> {
        let (bytes, snap) = self.snaps.load(&mark.state, mark.byte)?;
        let reg = self.reg.clone();
        let state = snapshot::decode(&bytes, &|sender| reg.partner(sender))?;
        let p = &state.place;
        let before = p.seq <= mark.seq && p.byte <= mark.byte && p.line <= mark.line;
        before.then_some((state, snap))
    }

    /// Takes up the state a snapshot holds, and reading where it was taken.
    fn restore(&mut self, state: snapshot::State) -> Result<(), FileError> {
        let p = state.place;
        self.src
            .restart_from(p.byte, p.line, p.record)
            .map_err(|e| FileError::io(&e))?;
        // As reading sets it at each ISA: the atomicity of the last interchange begun.
        self.atomic = state
            .cur
            .as_ref()
            .or(state.done.last())
            .map_or(Atomic::Set, |ic| ic.isa.partner.atomic);
        (self.seq, self.started) = (p.seq, p.started);
        (self.done, self.cur) = (state.done, state.cur);
        Ok(())
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
