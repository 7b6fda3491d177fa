//! ANSI ASC X12 interchanges: streaming reader, envelope and syntax validation, declarative
//! maps and 997/999/TA1 acknowledgements.
//!
//! One [`Format`] named `x12` covers every transaction set: the definitions under
//! `formats/x12/` say which sets are known (structure, elements, map) and which partners may
//! send which defects. The unit of atomicity is the transaction set (ST..SE); envelope
//! segments are skipped units so the ledger still has one outcome per segment. A bad
//! envelope trailer or a truncated file ends the file with a [`FileError`] (the whole file
//! is rejected: sets were streamed before the trailer could be checked, so nothing may be
//! half-applied), while a bad ISA header rejects its interchange's sets. Sets with no
//! definition are envelope- and SE-checked only; the partner's `unmapped` setting accepts
//! them *unmapped* (no record, `Evaluation::unmapped`), holds their file for a person, or
//! rejects them. See `docs/x12.md`.

// FileError is the shared trait's error type; its size is not ours to change here.
#![allow(clippy::result_large_err)]

pub mod ack;
mod atomic;
pub mod defs;
mod envelope;
mod job;
pub mod map;
mod resume;
pub mod segments;
mod sets;
mod snapshot;
pub mod validate;

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use crate::format::{
    AckContext, DefFile, Diagnostics, FileError, Format, OpenContext, Outbound, Policy, Probe,
    UnitOutcomes, UnitReader,
};
use crate::unit::{cap_raw, capped, Evaluation, LineVerdict, Position, Reason, SourceLine, Unit};

use defs::{Atomic, PartnerDef, Registry};
use envelope::gs_error;
use job::{SetJob, SetShared};
use segments::{Delims, ReadError, SegId, Segment, SegmentReader};
use sets::SetList;

/// Longest raw segment text kept for the ledger and reports.
const RAW_CAP: usize = 512;

/// At most this many segments are reserved for a set before it is read, so one huge set
/// does not make every later one reserve as much.
const SET_LEN_HINT_CAP: usize = 1024;

/// The `KINDS` loader: every X12 definition file becomes part of the one `x12` format.
pub fn load(defs: &[&DefFile], diags: &mut Diagnostics) -> Vec<Arc<dyn Format>> {
    let reg = Registry::load(defs, diags);
    let policy = reg
        .partners
        .iter()
        .find(|p| p.senders.iter().any(|s| s == "*"))
        .and_then(|p| p.policy)
        .unwrap_or(Policy::AcceptValid {
            max_reject_ratio: 1.0,
        });
    vec![Arc::new(X12Format {
        reg: Arc::new(reg),
        policy,
    })]
}

pub struct X12Format {
    reg: Arc<Registry>,
    policy: Policy,
}

impl X12Format {
    pub fn registry(&self) -> &Registry {
        &self.reg
    }
}

impl Format for X12Format {
    fn name(&self) -> &str {
        "x12"
    }
    fn kind(&self) -> &str {
        "x12"
    }
    fn sniff(&self, probe: &Probe) -> Option<u32> {
        let head = probe
            .head
            .strip_prefix(b"\xEF\xBB\xBF")
            .unwrap_or(probe.head);
        let start = head.iter().position(|b| !b.is_ascii_whitespace())?;
        head[start..].starts_with(b"ISA").then_some(100)
    }
    fn policy(&self) -> Policy {
        self.policy
    }
    fn open<'a>(
        &'a self,
        path: &Path,
        ctx: &OpenContext,
    ) -> Result<Box<dyn UnitReader + 'a>, FileError> {
        let file = File::open(path).map_err(|e| FileError::io(&e))?;
        let input_bytes = file.metadata().map_or(0, |m| m.len());
        let max = usize::try_from(ctx.limits.max_record_bytes).unwrap_or(usize::MAX);
        Ok(Box::new(X12Reader {
            src: SegmentReader::new(BufReader::new(file), max),
            reg: self.reg.clone(),
            max_unit_lines: usize::try_from(ctx.limits.max_unit_lines).unwrap_or(usize::MAX),
            max_set_bytes: max.saturating_mul(256),
            seq: 0,
            started: false,
            cur: None,
            done: Vec::new(),
            held: Vec::new(),
            atomic: Atomic::Set,
            set_len: 0,
            group_shared: None,
            skim_below: 0,
            at_mark: None,
            snaps: snapshot::Snapshots::new(input_bytes),
        }))
    }
}

/// What the reader learned from an ISA.
#[derive(Debug, Clone)]
pub(crate) struct IsaInfo {
    pub sender_q: String,
    pub sender: String,
    pub receiver_q: String,
    pub receiver: String,
    pub date: String,
    pub time: String,
    pub version: String,
    pub control: String,
    pub ack_requested: bool,
    pub usage: String,
    pub delims: Delims,
    pub partner: PartnerDef,
}

#[derive(Debug, Clone)]
pub(crate) struct GroupRec {
    pub gs01: String,
    pub gs02: String,
    pub gs03: String,
    pub gs06: String,
    pub gs08: String,
    pub sets: SetList,
    /// A set that reading stopped inside (no SE, or a segment that could not be read).
    pub open_set: Option<OpenSet>,
    pub declared_sets: Option<String>,
    pub closed: bool,
    /// Reading showed the group has no GE at all (the file, or its interchange, ended
    /// inside it): the AK9 says code 3.
    pub ge_missing: bool,
    /// A bad GS: its sets are rejected and the AK9 says code 6 (or 2 for GS08).
    pub header_error: Option<Reason>,
}

/// A set reading stopped inside, acknowledged `AK5*R` with `code`: 2 when its SE is
/// missing, 5 when one of its segments could not be read.
#[derive(Debug, Clone)]
pub(crate) struct OpenSet {
    pub st01: String,
    pub st02: String,
    pub code: u8,
}

#[derive(Debug, Clone)]
pub(crate) struct Interchange {
    pub isa: IsaInfo,
    pub groups: Vec<GroupRec>,
    /// TA1 note code and reason when the header itself is bad.
    pub header_error: Option<(&'static str, Reason)>,
    pub closed: bool,
    /// TA1 code for a file error found inside this interchange.
    pub trailer_error: Option<&'static str>,
}

pub struct X12Reader {
    src: SegmentReader<BufReader<File>>,
    reg: Arc<Registry>,
    max_unit_lines: usize,
    /// Bytes of segment text one set may buffer.
    max_set_bytes: usize,
    seq: u64,
    started: bool,
    cur: Option<Interchange>,
    done: Vec<Interchange>,
    /// Units held back while a partner's all-or-nothing group or interchange is read.
    held: Vec<Unit>,
    /// The atomicity of the interchange being read.
    atomic: Atomic,
    /// Segments in the last set read: the next one is likely as long, and growing its
    /// list step by step copied every segment several times.
    set_len: usize,
    /// What the open functional group's sets share with their jobs, made at its first set
    /// (see [`SetShared`]); dropped at the next GS, so a file of many groups keeps one.
    group_shared: Option<Arc<SetShared>>,
    /// While [`UnitReader::seek`] reads its way to a mark, units below this seq are read
    /// for the envelope state they leave and then dropped: built without lines or job.
    skim_below: u64,
    /// The unit at the mark, read by `seek`, returned first.
    at_mark: Option<Unit>,
    /// Snapshots of the state at marks, for a restart to start near its mark.
    snaps: snapshot::Snapshots,
}

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

fn read_err(e: ReadError) -> FileError {
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
    fn fail(&mut self, pos: Position, rule: &str, ta1: &'static str, msg: String) -> FileError {
        if let Some(ic) = self.cur.as_mut() {
            ic.trailer_error = Some(ta1);
        }
        let loc = self.locator();
        FileError::at(pos.with_locator(loc), rule, msg)
    }

    fn envelope_unit(
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

    fn read_set(&mut self, st: Segment) -> Result<Unit, FileError> {
        let seq = self.next_seq();
        let d = self.cur.as_ref().map(|c| c.isa.delims).ok_or_else(|| {
            FileError::at(st.pos.clone(), "x12-envelope", "ST outside an interchange")
        })?;
        let mut segs = Vec::with_capacity(self.set_len.clamp(1, SET_LEN_HINT_CAP));
        segs.push(st);
        let skim = seq < self.skim_below;
        let dropped = match skim {
            true => self.skip_set_body(&d, &segs[0]).map(|()| 0)?,
            false => self.read_set_body(&d, &mut segs)?,
        };
        let (st01, st02) = (segs[0].el(1), segs[0].el(2));
        if !skim {
            self.set_len = segs.len();
        }
        // A group's first set makes what its sets share, its locator among them; the
        // envelope is only borrowed whole before the group is taken to record the set.
        let locator = (!skim && self.group_shared.is_none()).then(|| self.locator());
        let Some(ic) = self.cur.as_mut() else {
            return Err(FileError::new("x12-envelope", "ST outside an interchange"));
        };
        let Some(group) = ic.groups.last_mut().filter(|g| !g.closed) else {
            let pos = segs.first().map(|s| s.pos.clone()).unwrap_or_default();
            return Err(self.fail(
                pos,
                "x12-st-outside-group",
                "024",
                "ST found outside a functional group (no open GS)".into(),
            ));
        };
        group.sets.push(seq, st01, st02);
        if skim {
            return Ok(Unit {
                seq,
                label: String::new(),
                lines: Vec::new(),
                job: None,
                show: None,
            });
        }
        let interchange_rejected = ic
            .header_error
            .as_ref()
            .map(|(_, r)| r.clone())
            .or_else(|| group.header_error.clone());
        let shared = match &self.group_shared {
            Some(s) => s.clone(),
            None => {
                let s = Arc::new(SetShared {
                    reg: self.reg.clone(),
                    gs08: group.gs08.clone(),
                    sender: ic.isa.sender.clone(),
                    partner: ic.isa.partner.clone(),
                    locator: locator.unwrap_or_default(),
                    claims: vec![format!(
                        "x12-isa:{}:{}:{}",
                        ic.isa.sender, ic.isa.receiver, ic.isa.control
                    )],
                });
                self.group_shared = Some(s.clone());
                s
            }
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
        let lines: Vec<SourceLine> = segs
            .iter()
            .map(|s| SourceLine {
                pos: s.pos.clone(),
                raw: String::new(),
            })
            .collect();
        let label = crate::unit::concat(&[st01, " ST ", st02]);
        let segs = Arc::new(segs);
        let show = set_lines(&job.shared, d.elem.as_char(), &segs);
        let job = SetJob { segs, ..job };
        Ok(Unit {
            seq,
            label,
            lines,
            job: Some(Box::new(move |_: &str| job.run())),
            show: Some(show),
        })
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

    fn mark_ge_missing(&mut self) {
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
        if self.cur.is_none() {
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
            return self.start_interchange().map(Some);
        }
        let d = self.cur.as_ref().map(|c| c.isa.delims);
        let Some(d) = d else {
            return Ok(None);
        };
        let read = self.src.read_segment(&d);
        let seg = match read {
            Err(e) => return Err(self.read_failed(e)),
            Ok(Some(s)) => s,
            Ok(None) => {
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
                return Err(self.fail(pos, rule, "023", msg));
            }
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
            "GS" => {
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
                        header_error: gs_error(&seg),
                    });
                }
                self.group_shared = None;
                let rejected = gs_error(&seg);
                Ok(Some(self.envelope_unit(&seg, vec![], rejected)))
            }
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
