//! Reading one transaction set (ST..SE) into a unit: its segments, their lines, and the job
//! that checks and maps it on a worker.
//!
//! Kept apart from the rest of the reader because it is the part that runs for every
//! segment of every set, with its own concerns: capping what a hostile set may buffer,
//! sharing one envelope locator among a group's sets, and making a set's shown lines only
//! when they are shown. Not to be confused with `crate::x12::sets`, the compact record of
//! the sets read that the acknowledgement answers.

use std::sync::Arc;

use super::{X12Reader, RAW_CAP};
use crate::format::FileError;
use crate::unit::{capped, Position, Reason, SourceLine, Unit};
use crate::x12::defs::Registry;
use crate::x12::job::{SetJob, SetShared};
use crate::x12::resume;
use crate::x12::segments::{Delims, SegId, Segment};
use crate::x12::{GroupRec, IsaInfo};

/// At most this many segments are reserved for a set before it is read, so one huge set
/// does not make every later one reserve as much.
const SET_LEN_HINT_CAP: usize = 1024;

/// A set's segments as lines are shown: `prefix / ST <st02>, segment <n> of set`, and the
/// segment's text with sensitive elements masked, made only for the lines shown (see
/// [`crate::unit::ShowLine`]). The envelope prefix is the group's ([`SetShared::locator`])
/// and ST02 is read from the ST when a line is shown: copies of both per set were two of
/// the reading thread's allocations per set.
fn set_lines(
    shared: &Arc<SetShared>,
    elem: char,
    segs: &Arc<Vec<Segment>>,
) -> crate::unit::ShowLine {
    Arc::new(SetLines {
        shared: shared.clone(),
        elem,
        segs: segs.clone(),
    })
}

/// What [`set_lines`] makes: a set's segments with what showing them takes.
struct SetLines {
    shared: Arc<SetShared>,
    elem: char,
    segs: Arc<Vec<Segment>>,
}

impl crate::unit::ShowLines for SetLines {
    fn line(&self, i: usize) -> SourceLine {
        SourceLine {
            pos: self.pos(i),
            raw: capped(
                self.shared.reg.shown_text(&self.segs[i], Some(self.elem)),
                RAW_CAP,
            ),
        }
    }

    fn pos(&self, i: usize) -> Position {
        self.segs[i].pos.clone().with_locator(set_locator(
            &self.shared.locator,
            self.segs[0].el(2),
            i + 1,
        ))
    }
}

/// The locator of segment `n` of set `st02` under the envelope's `prefix`, written into
/// one allocation of its size without the formatting machinery.
fn set_locator(prefix: &str, st02: &str, n: usize) -> String {
    let mut digits = itoa::Buffer::new();
    crate::unit::concat(&[
        prefix,
        " / ST ",
        st02,
        ", segment ",
        digits.format(n),
        " of set",
    ])
}

/// The unit of a set read in full: `job` has all but the segments, which it shares with
/// the lines shown.
fn set_unit(seq: u64, label: String, segs: Vec<Segment>, job: SetJob) -> Unit {
    let lines: Vec<SourceLine> = segs
        .iter()
        .map(|s| SourceLine {
            pos: s.pos.clone(),
            raw: String::new(),
        })
        .collect();
    let segs = Arc::new(segs);
    let show = set_lines(&job.shared, job.delims.elem.as_char(), &segs);
    let job = SetJob { segs, ..job };
    Unit {
        seq,
        label,
        lines,
        job: Some(Box::new(move |_: &str| job.run())),
        show: Some(show),
    }
}

/// What a set's job takes from its group and interchange: what the group's sets share,
/// and the refusal of a bad ISA or GS header.
type FromGroup = (Arc<SetShared>, Option<Reason>);

/// What the sets of `group` share, made at its first set; `locator` is the group's.
fn group_shared(
    reg: &Arc<Registry>,
    isa: &IsaInfo,
    group: &GroupRec,
    locator: String,
) -> Arc<SetShared> {
    Arc::new(SetShared {
        reg: reg.clone(),
        gs08: group.gs08.clone(),
        sender: isa.sender.clone(),
        partner: isa.partner.clone(),
        locator,
        claims: vec![format!(
            "x12-isa:{}:{}:{}",
            isa.sender, isa.receiver, isa.control
        )],
    })
}

impl X12Reader {
    pub(super) fn read_set(&mut self, st: Segment) -> Result<Unit, FileError> {
        let seq = self.next_seq();
        let d = self.cur.as_ref().map(|c| c.isa.delims).ok_or_else(|| {
            FileError::at(st.pos.clone(), "x12-envelope", "ST outside an interchange")
        })?;
        let skim = seq < self.skim_below;
        let (segs, dropped) = self.read_set_segments(&d, st, skim)?;
        let (st01, st02) = (segs[0].el(1), segs[0].el(2));
        let Some((shared, interchange_rejected)) =
            self.record_set(seq, (st01, st02), &segs[0].pos, skim)?
        else {
            return Ok(Unit::skipped(seq, String::new(), Vec::new()));
        };
        let job = SetJob {
            shared,
            delims: d,
            interchange_rejected,
            dropped,
            limit: self.max_unit_lines,
            byte_limit: self.max_set_bytes,
            segs: Arc::default(),
        };
        let label = crate::unit::concat(&[st01, " ST ", st02]);
        Ok(set_unit(seq, label, segs, job))
    }

    /// The segments of the set `st` starts, through its SE, and how many more were only
    /// counted; only `st` when `skim`, the rest passed over.
    fn read_set_segments(
        &mut self,
        d: &Delims,
        st: Segment,
        skim: bool,
    ) -> Result<(Vec<Segment>, u64), FileError> {
        let mut segs = Vec::with_capacity(self.set_len.clamp(1, SET_LEN_HINT_CAP));
        segs.push(st);
        if skim {
            self.skip_set_body(d, &segs[0])?;
            return Ok((segs, 0));
        }
        let dropped = self.read_set_body(d, &mut segs)?;
        self.set_len = segs.len();
        Ok((segs, dropped))
    }

    /// Records the set (`st`: its ST01 and ST02, `pos`: its ST's) in its group; unless
    /// `skim`, returns what its job takes from the group and the interchange.
    fn record_set(
        &mut self,
        seq: u64,
        st: (&str, &str),
        pos: &Position,
        skim: bool,
    ) -> Result<Option<FromGroup>, FileError> {
        // A group's first set makes what its sets share, its locator among them; the
        // envelope is only borrowed whole before the group is taken to record the set.
        let locator = (!skim && self.group_shared.is_none()).then(|| self.locator());
        let Some(ic) = self.cur.as_mut() else {
            return Err(FileError::new("x12-envelope", "ST outside an interchange"));
        };
        let Some(group) = ic.groups.last_mut().filter(|g| !g.closed) else {
            return Err(self.fail(
                pos.clone(),
                "x12-st-outside-group",
                "024",
                "ST found outside a functional group (no open GS)".into(),
            ));
        };
        group.sets.push(seq, st.0, st.1);
        if skim {
            return Ok(None);
        }
        let interchange_rejected = ic
            .header_error
            .as_ref()
            .map(|(_, r)| r.clone())
            .or_else(|| group.header_error.clone());
        let shared = match &self.group_shared {
            Some(s) => s.clone(),
            None => {
                let s = group_shared(&self.reg, &ic.isa, group, locator.unwrap_or_default());
                self.group_shared = Some(s.clone());
                s
            }
        };
        Ok(Some((shared, interchange_rejected)))
    }

    /// Reads a set's segments after its ST (in `segs`) up to its SE; returns how many were
    /// only counted, past the set's line or byte cap.
    fn read_set_body(&mut self, d: &Delims, segs: &mut Vec<Segment>) -> Result<u64, FileError> {
        let mut kept_bytes: usize = segs.iter().map(|s| s.text().len()).sum();
        let mut dropped = 0u64;
        loop {
            // Read onto the set's list, and taken off it again when it is not the set's.
            match self.src.read_segment_into(d, segs) {
                Err(e) => {
                    self.mark_open_set(segs[0].el(1), segs[0].el(2), 5);
                    return Err(self.read_failed(e));
                }
                Ok(true) => {}
                Ok(false) => {
                    let (st, pos) = (&segs[0], segs[0].pos.clone());
                    self.mark_open_set(st.el(1), st.el(2), 2);
                    self.mark_ge_missing();
                    return Err(self.fail(
                        pos,
                        "x12-missing-se",
                        "023",
                        format!("transaction set {} {} has no SE trailer: the file ends inside it (truncated)", st.el(1), st.el(2)),
                    ));
                }
            };
            // The segment just read (the list holds the ST before it, so there is one).
            let Some(seg) = segs.last() else {
                continue;
            };
            // By packed id: comparing strings here was done for every segment of every set.
            let code = seg.code();
            if code == SegId::of(b"SE") {
                return Ok(dropped);
            }
            if !resume::SET_BREAKS.contains(&code) {
                // A hostile set cannot grow memory without bound: past the line or byte cap
                // (on the segments before this one), segments are only counted (the set is
                // then rejected).
                if segs.len() <= self.max_unit_lines && kept_bytes <= self.max_set_bytes {
                    kept_bytes += seg.text().len();
                } else {
                    segs.pop();
                    dropped += 1;
                }
                continue;
            }
            let Some(seg) = segs.pop() else {
                continue;
            };
            let (st, pos) = (&segs[0], seg.pos.clone());
            self.mark_open_set(st.el(1), st.el(2), 2);
            if !matches!(seg.id(), "ST" | "GE") {
                self.mark_ge_missing();
            }
            return Err(self.fail(
                pos,
                "x12-missing-se",
                "024",
                format!(
                    "transaction set {} {} has no SE trailer: {} found before it",
                    st.el(1),
                    st.el(2),
                    seg.id()
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_locator_writes_the_ordinal_as_format_would() {
        for n in [0, 1, 9, 10, 1234, usize::MAX] {
            assert_eq!(
                set_locator("ISA 1 / GS 2", "0001", n),
                format!("ISA 1 / GS 2 / ST 0001, segment {n} of set")
            );
        }
    }
}
