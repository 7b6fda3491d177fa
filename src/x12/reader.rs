//! The reader of an X12 file: it walks the envelope segment by segment, hands out one unit
//! per envelope segment and per transaction set, and at the end of the file hands what it
//! recorded of every interchange to the acknowledgement.
//!
//! Kept apart from `mod.rs`, which only says what the `x12` format is and opens a file:
//! this is the per-file state and the loop that drives it. The checks of the envelope
//! headers and trailers (`super::envelope`), restarts (`super::resume`) and all-or-nothing
//! merging (`super::atomic`) are `impl X12Reader` blocks of their own, so the reader's
//! fields are `pub(super)` to them and to `X12Format::open`, which builds the reader.
//! Reading one transaction set is in `set`.

use std::fs::File;
use std::io::BufReader;
use std::sync::Arc;

use crate::format::{AckContext, FileError, Outbound, UnitOutcomes, UnitReader};
use crate::unit::{cap_raw, capped, Evaluation, LineVerdict, Position, Reason, SourceLine, Unit};

use super::defs::{Atomic, Registry};
use super::envelope::gs_error;
use super::job::SetShared;
use super::segments::{ReadError, Segment, SegmentReader};
use super::sets::SetList;
use super::{ack, snapshot, GroupRec, Interchange, OpenSet};

mod set;

/// Longest raw segment text kept for the ledger and reports.
const RAW_CAP: usize = 512;

pub struct X12Reader {
    pub(super) src: SegmentReader<BufReader<File>>,
    pub(super) reg: Arc<Registry>,
    pub(super) max_unit_lines: usize,
    /// Bytes of segment text one set may buffer.
    pub(super) max_set_bytes: usize,
    pub(super) seq: u64,
    pub(super) started: bool,
    pub(super) cur: Option<Interchange>,
    pub(super) done: Vec<Interchange>,
    /// Units held back while a partner's all-or-nothing group or interchange is read.
    pub(super) held: Vec<Unit>,
    /// The atomicity of the interchange being read.
    pub(super) atomic: Atomic,
    /// Segments in the last set read: the next one is likely as long, and growing its
    /// list step by step copied every segment several times.
    pub(super) set_len: usize,
    /// What the open functional group's sets share with their jobs, made at its first set
    /// (see [`SetShared`]); dropped at the next GS, so a file of many groups keeps one.
    pub(super) group_shared: Option<Arc<SetShared>>,
    /// While [`UnitReader::seek`] reads its way to a mark, units below this seq are read
    /// for the envelope state they leave and then dropped: built without lines or job.
    pub(super) skim_below: u64,
    /// The unit at the mark, read by `seek`, returned first.
    pub(super) at_mark: Option<Unit>,
    /// Snapshots of the state at marks, for a restart to start near its mark.
    pub(super) snaps: snapshot::Snapshots,
}

pub(super) fn read_err(e: ReadError) -> FileError {
    let rule = e.rule();
    let msg = e.to_string();
    match e.pos() {
        Some(p) => FileError::at(p.clone(), rule, msg),
        None => FileError::new(rule, msg),
    }
}

impl X12Reader {
    fn next_seq(&mut self) -> u64 {
        let s = self.seq;
        self.seq += 1;
        s
    }

    /// Where the reader is in the envelope: `ISA n / GS m`.
    fn locator(&self) -> String {
        use std::fmt::Write;
        // Written into one allocation: this runs for every segment.
        let mut s = String::with_capacity(64);
        if let Some(ic) = &self.cur {
            let _ = write!(s, "ISA {}", ic.isa.control);
            if let Some(g) = ic.groups.last().filter(|g| !g.closed) {
                let _ = write!(s, " / GS {}", g.gs06);
            }
        }
        s
    }

    /// An envelope segment's line (a set's lines are made in `read_set`).
    fn line(&self, seg: &Segment) -> SourceLine {
        SourceLine {
            pos: seg.pos.clone().with_locator(self.locator()),
            raw: capped(self.shown(seg), RAW_CAP),
        }
    }

    /// The segment's text with its sensitive elements masked.
    fn shown<'a>(&self, seg: &'a Segment) -> std::borrow::Cow<'a, str> {
        let elem = self.cur.as_ref().map(|c| c.isa.delims.elem.as_char());
        self.reg.shown_text(seg, elem)
    }

    /// Ends the file with an error inside the current interchange, keeping what the TA1
    /// needs.
    pub(super) fn fail(
        &mut self,
        pos: Position,
        rule: &str,
        ta1: &'static str,
        msg: String,
    ) -> FileError {
        if let Some(ic) = self.cur.as_mut() {
            ic.trailer_error = Some(ta1);
        }
        let loc = self.locator();
        FileError::at(pos.with_locator(loc), rule, msg)
    }

    pub(super) fn envelope_unit(
        &mut self,
        seg: &Segment,
        tolerated: Vec<String>,
        rejected: Option<Reason>,
    ) -> Unit {
        let seq = self.next_seq();
        let label = match seg.id() {
            "ISA" => format!("ISA {}", seg.el(13)),
            "GS" => format!("GS {} {}", seg.el(1), seg.el(6)),
            id => format!("{id} {}", seg.el(2)),
        };
        let lines = vec![self.line(seg)];
        if tolerated.is_empty() && rejected.is_none() {
            return Unit::skipped(seq, label, lines);
        }
        let verdict = match rejected {
            Some(r) => LineVerdict::rejected(r),
            None => LineVerdict::Skipped(label.clone()),
        };
        Unit {
            seq,
            label,
            lines,
            job: Some(Box::new(move |_: &str| Evaluation {
                verdicts: vec![verdict],
                tolerated,
                ..Evaluation::default()
            })),
            show: None,
        }
    }

    /// The group being read, if one is open.
    fn open_group(&mut self) -> Option<&mut GroupRec> {
        self.cur
            .as_mut()
            .and_then(|c| c.groups.last_mut())
            .filter(|g| !g.closed)
    }

    fn mark_open_set(&mut self, st01: &str, st02: &str, code: u8) {
        if let Some(g) = self.open_group() {
            g.open_set = Some(OpenSet {
                st01: st01.to_string(),
                st02: st02.to_string(),
                code,
            });
        }
    }

    pub(super) fn mark_ge_missing(&mut self) {
        if let Some(g) = self.open_group() {
            g.ge_missing = true;
        }
    }

    /// A segment that could not be read ends the file; inside an interchange the TA1 says
    /// 024 (invalid interchange content).
    fn read_failed(&mut self, e: ReadError) -> FileError {
        let mut err = read_err(e);
        if self.cur.is_some() {
            let loc = self.locator();
            if let Some(ic) = self.cur.as_mut() {
                ic.trailer_error = Some("024");
            }
            if let Some(p) = err.pos.take() {
                err.pos = Some(p.with_locator(loc));
            }
        }
        err
    }
}

impl X12Reader {
    /// The next unit as read, before any all-or-nothing merging.
    fn next_unit_inner(&mut self) -> Result<Option<Unit>, FileError> {
        let Some(d) = self.cur.as_ref().map(|c| c.isa.delims) else {
            return self.next_isa();
        };
        let read = self.src.read_segment(&d);
        let seg = match read {
            Err(e) => return Err(self.read_failed(e)),
            Ok(Some(s)) => s,
            Ok(None) => return Err(self.truncated()),
        };
        if !(2..=3).contains(&seg.id().len())
            || !seg
                .id()
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            let msg = format!("'{}' is not a segment identifier", cap_raw(seg.id(), 20));
            return Err(self.fail(seg.pos.clone(), "x12-bad-segment-id", "024", msg));
        }
        match seg.id() {
            "ISB" | "ISE" | "TA1" => Ok(Some(self.envelope_unit(&seg, vec![], None))),
            "GS" => self.start_group(&seg).map(Some),
            "ST" => self.read_set(seg).map(Some),
            "SE" => Err(self.fail(
                seg.pos.clone(),
                "x12-se-without-st",
                "024",
                "SE trailer without a matching ST header".into(),
            )),
            "GE" => self.end_group(seg).map(Some),
            "IEA" => self.end_interchange(seg).map(Some),
            "ISA" => {
                self.mark_ge_missing();
                let ctl = self
                    .cur
                    .as_ref()
                    .map(|c| c.isa.control.clone())
                    .unwrap_or_default();
                Err(self.fail(
                    seg.pos.clone(),
                    "x12-missing-iea",
                    "023",
                    format!("interchange {ctl} has no IEA trailer before the next ISA"),
                ))
            }
            other => {
                let msg = format!("segment {other} outside a transaction set (only GS, ST, GE, IEA, TA1 may appear here)");
                Err(self.fail(seg.pos.clone(), "x12-segment-outside-set", "024", msg))
            }
        }
    }

    /// Between interchanges: the next ISA's unit, the end of the file, or why what follows is no ISA.
    fn next_isa(&mut self) -> Result<Option<Unit>, FileError> {
        if !self.started {
            self.src.skip_bom().map_err(read_err)?;
        }
        self.src.skip_ws(None).map_err(read_err)?;
        if self.src.at_eof().map_err(read_err)? {
            if !self.started {
                return Err(FileError::at(
                    self.src.position(),
                    "x12-no-isa",
                    "not an X12 interchange: the file is empty (the first 3 bytes must be ISA)",
                ));
            }
            return Ok(None);
        }
        if !self.src.at_isa().map_err(read_err)? {
            let text = self.src.peek_text(20).map_err(read_err)?;
            let (rule, what) = if self.started {
                (
                    "x12-junk-after-iea",
                    "data after the IEA trailer is not a new ISA",
                )
            } else {
                (
                    "x12-no-isa",
                    "not an X12 interchange: the first 3 bytes must be ISA",
                )
            };
            return Err(FileError::at(
                self.src.position(),
                rule,
                format!("{what} (found '{text}')"),
            ));
        }
        self.started = true;
        self.start_interchange().map(Some)
    }

    /// The error of a file that ends inside an interchange, naming the group it ends in if any.
    fn truncated(&mut self) -> FileError {
        self.mark_ge_missing();
        let pos = self.src.position();
        let open = self.cur.as_ref().and_then(|c| {
            c.groups
                .last()
                .filter(|g| !g.closed)
                .map(|g| g.gs06.clone())
        });
        let ctl = self
            .cur
            .as_ref()
            .map(|c| c.isa.control.clone())
            .unwrap_or_default();
        let (rule, msg) = match open {
            Some(gs06) => (
                "x12-missing-ge",
                format!("the file ends inside functional group GS {gs06}: no GE and no IEA trailer (truncated)"),
            ),
            None => (
                "x12-missing-iea",
                format!("the file ends inside interchange {ctl}: no IEA trailer (truncated)"),
            ),
        };
        self.fail(pos, rule, "023", msg)
    }

    /// A GS header opens a group record in the interchange, unless the previous group is still open.
    fn start_group(&mut self, seg: &Segment) -> Result<Unit, FileError> {
        if let Some(g) = self
            .cur
            .as_ref()
            .and_then(|c| c.groups.last())
            .filter(|g| !g.closed)
        {
            let msg = format!(
                "functional group GS {} has no GE trailer before the next GS",
                g.gs06
            );
            self.mark_ge_missing();
            return Err(self.fail(seg.pos.clone(), "x12-missing-ge", "024", msg));
        }
        if let Some(ic) = self.cur.as_mut() {
            ic.groups.push(GroupRec {
                gs01: seg.el(1).to_string(),
                gs02: seg.el(2).to_string(),
                gs03: seg.el(3).to_string(),
                gs06: seg.el(6).to_string(),
                gs08: seg.el(8).to_string(),
                sets: SetList::default(),
                open_set: None,
                declared_sets: None,
                closed: false,
                ge_missing: false,
                header_error: gs_error(seg),
            });
        }
        self.group_shared = None;
        let rejected = gs_error(seg);
        Ok(self.envelope_unit(seg, vec![], rejected))
    }
}

impl UnitReader for X12Reader {
    fn next_unit(&mut self) -> Result<Option<Unit>, FileError> {
        if let Some(u) = self.at_mark.take() {
            return Ok(Some(u));
        }
        loop {
            let Some(unit) = self.next_unit_inner()? else {
                return Ok(None);
            };
            // Envelope units are labelled by their segment id (see `envelope_unit`).
            let id = unit.label.split(' ').next().unwrap_or("").to_string();
            if id == "ISA" {
                self.atomic = self
                    .cur
                    .as_ref()
                    .map(|c| c.isa.partner.atomic)
                    .unwrap_or_default();
            }
            let (opens, closes) = match self.atomic {
                Atomic::Set => return Ok(Some(unit)),
                Atomic::Group => ("GS", "GE"),
                Atomic::Interchange => ("ISA", "IEA"),
            };
            if self.held.is_empty() && id != opens {
                return Ok(Some(unit));
            }
            self.held.push(unit);
            let held_lines: usize = self.held.iter().map(|u| u.lines.len()).sum();
            if held_lines > self.max_unit_lines {
                let pos = self.src.position();
                return Err(self.fail(
                    pos,
                    "x12-group-too-large",
                    "024",
                    format!(
                        "the partner's all-or-nothing {} has more than {} segments (limits.max_unit_lines)",
                        self.atomic.as_str(),
                        self.max_unit_lines
                    ),
                ));
            }
            if id == closes {
                return Ok(Some(self.flush_held()));
            }
        }
    }

    fn mark(&mut self) -> Option<crate::format::Mark> {
        self.restart_mark()
    }

    fn keep_state_in(&mut self, file: std::path::PathBuf) {
        self.snaps.keep_in(file);
    }

    fn seek(&mut self, mark: &crate::format::Mark) -> Result<bool, FileError> {
        self.restart_at(mark)
    }

    fn finish(
        &mut self,
        outcomes: &dyn UnitOutcomes,
        acks: &mut dyn AckContext,
        error: Option<&FileError>,
    ) -> Result<Vec<Outbound>, FileError> {
        let mut all: Vec<Interchange> = std::mem::take(&mut self.done);
        if let Some(ic) = self.cur.take() {
            all.push(ic);
        }
        let mut out = Vec::new();
        for ic in &all {
            if let Some(o) = ack::acknowledge(ic, outcomes, acks, error)? {
                out.push(o);
            }
        }
        Ok(out)
    }
}
