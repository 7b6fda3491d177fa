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
//! definition are envelope- and SE-checked and accepted *unmapped* (no record; the detail
//! says so). See `docs/x12.md`.

// FileError is the shared trait's error type; its size is not ours to change here.
#![allow(clippy::result_large_err)]

pub mod ack;
pub mod defs;
pub mod map;
pub mod segments;
pub mod validate;

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use serde_json::json;

use crate::format::{
    AckContext, DefFile, Diagnostics, FileError, Format, OpenContext, Outbound, Policy, Probe,
    UnitOutcomes, UnitReader,
};
use crate::unit::{cap_raw, Evaluation, LineVerdict, Position, Reason, SourceLine, Unit};

use defs::{Atomic, PartnerDef, Registry};
use segments::{Delims, ReadError, Segment, SegmentReader};

/// Longest raw segment text kept for the ledger and reports.
const RAW_CAP: usize = 512;

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
pub(crate) struct SetRec {
    /// The unit holding the set: its own, or the merged group/interchange unit.
    pub seq: u64,
    /// Index of the set's part in a merged unit's `detail.parts`.
    pub part: Option<usize>,
    pub st01: String,
    pub st02: String,
}

#[derive(Debug, Clone)]
pub(crate) struct GroupRec {
    pub gs01: String,
    pub gs02: String,
    pub gs03: String,
    pub gs06: String,
    pub gs08: String,
    pub sets: Vec<SetRec>,
    /// A set cut off by the end of the file (no SE).
    pub open_set: Option<(String, String)>,
    pub declared_sets: Option<String>,
    pub closed: bool,
    /// A bad GS: its sets are rejected and the AK9 says code 6.
    pub header_error: Option<Reason>,
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

    fn locator(&self, seg_in_set: Option<(usize, &str)>) -> String {
        let mut s = String::new();
        if let Some(ic) = &self.cur {
            s.push_str(&format!("ISA {}", ic.isa.control));
            if let Some(g) = ic.groups.last().filter(|g| !g.closed) {
                s.push_str(&format!(" / GS {}", g.gs06));
            }
        }
        if let Some((n, st02)) = seg_in_set {
            s.push_str(&format!(" / ST {st02}, segment {n} of set"));
        }
        s
    }

    fn line(&self, seg: &Segment, in_set: Option<(usize, &str)>) -> SourceLine {
        SourceLine {
            pos: seg.pos.clone().with_locator(self.locator(in_set)),
            raw: cap_raw(&seg.text, RAW_CAP),
        }
    }

    /// Ends the file with an error inside the current interchange, keeping what the TA1
    /// needs.
    fn fail(&mut self, pos: Position, rule: &str, ta1: &'static str, msg: String) -> FileError {
        if let Some(ic) = self.cur.as_mut() {
            ic.trailer_error = Some(ta1);
        }
        let loc = self.locator(None);
        FileError::at(pos.with_locator(loc), rule, msg)
    }

    fn envelope_unit(
        &mut self,
        seg: &Segment,
        tolerated: Vec<String>,
        rejected: Option<Reason>,
    ) -> Unit {
        let seq = self.next_seq();
        let label = match seg.id.as_str() {
            "ISA" => format!("ISA {}", seg.el(13)),
            "GS" => format!("GS {} {}", seg.el(1), seg.el(6)),
            id => format!("{id} {}", seg.el(2)),
        };
        let lines = vec![self.line(seg, None)];
        if tolerated.is_empty() && rejected.is_none() {
            return Unit::skipped(seq, label, lines);
        }
        let verdict = match rejected {
            Some(r) => LineVerdict::Rejected(r),
            None => LineVerdict::Skipped(label.clone()),
        };
        Unit {
            seq,
            label,
            lines,
            job: Some(Box::new(move || Evaluation {
                verdicts: vec![verdict],
                tolerated,
                ..Evaluation::default()
            })),
        }
    }

    fn start_interchange(&mut self) -> Result<Unit, FileError> {
        let isa = self.src.read_isa().map_err(read_err)?;
        let seg = &isa.seg;
        let partner = self.reg.partner(seg.el(6));
        let mut tolerated = Vec::new();
        let info = IsaInfo {
            sender_q: seg.el(5).to_string(),
            sender: seg.el(6).trim().to_string(),
            receiver_q: seg.el(7).to_string(),
            receiver: seg.el(8).trim().to_string(),
            date: seg.el(9).to_string(),
            time: seg.el(10).to_string(),
            version: seg.el(12).to_string(),
            control: seg.el(13).to_string(),
            ack_requested: seg.el(14) == "1",
            usage: seg.el(15).to_string(),
            delims: isa.delims,
            partner: partner.clone(),
        };
        if seg.elements.len() != 16 {
            let pos = seg.pos.clone();
            return Err(FileError::at(
                pos,
                "x12-isa-width",
                format!("ISA has {} elements, 16 are required", seg.elements.len()),
            ));
        }
        if !isa.fixed_width {
            if partner.tolerates("isa-width") {
                tolerated.push("x12-isa-width".to_string());
            } else {
                let bad = seg
                    .elements
                    .iter()
                    .zip(segments::ISA_WIDTHS)
                    .position(|(e, w)| e.len() != w)
                    .map(|i| {
                        format!(
                            "ISA{:02} is {} characters, must be {}",
                            i + 1,
                            seg.el(i + 1).len(),
                            segments::ISA_WIDTHS[i]
                        )
                    })
                    .unwrap_or_else(|| "ISA is not 106 characters".into());
                self.cur = Some(Interchange {
                    isa: info,
                    groups: vec![],
                    header_error: None,
                    closed: false,
                    trailer_error: Some("024"),
                });
                return Err(FileError::at(
                    seg.pos.clone(),
                    "x12-isa-width",
                    format!(
                        "the ISA header must have fixed-width elements (106 characters): {bad}"
                    ),
                ));
            }
        }
        let header_error = check_isa(seg);
        let rejected = header_error.as_ref().map(|(_, r)| r.clone());
        self.cur = Some(Interchange {
            isa: info,
            groups: vec![],
            header_error,
            closed: false,
            trailer_error: None,
        });
        let seg = isa.seg.clone();
        Ok(self.envelope_unit(&seg, tolerated, rejected))
    }

    fn read_set(&mut self, st: Segment) -> Result<Unit, FileError> {
        let seq = self.next_seq();
        let d = self.cur.as_ref().map(|c| c.isa.delims).ok_or_else(|| {
            FileError::at(st.pos.clone(), "x12-envelope", "ST outside an interchange")
        })?;
        let st02 = st.el(2).to_string();
        let st01 = st.el(1).to_string();
        let mut kept_bytes = st.text.len();
        let mut segs = vec![st];
        let mut dropped = 0u64;
        loop {
            let seg = match self.src.read_segment(&d).map_err(read_err)? {
                Some(s) => s,
                None => {
                    let pos = segs.first().map(|s| s.pos.clone()).unwrap_or_default();
                    self.mark_open_set(&st01, &st02);
                    return Err(self.fail(
                        pos,
                        "x12-missing-se",
                        "023",
                        format!("transaction set {st01} {st02} has no SE trailer: the file ends inside it (truncated)"),
                    ));
                }
            };
            match seg.id.as_str() {
                "SE" => {
                    segs.push(seg);
                    break;
                }
                "ST" | "GE" | "IEA" | "ISA" | "GS" => {
                    let pos = seg.pos.clone();
                    self.mark_open_set(&st01, &st02);
                    return Err(self.fail(
                        pos,
                        "x12-missing-se",
                        "024",
                        format!(
                            "transaction set {st01} {st02} has no SE trailer: {} found before it",
                            seg.id
                        ),
                    ));
                }
                _ => {
                    // A hostile set cannot grow memory without bound: past the line or byte
                    // cap, segments are only counted (the set is then rejected).
                    if segs.len() < self.max_unit_lines && kept_bytes <= self.max_set_bytes {
                        kept_bytes += seg.text.len();
                        segs.push(seg);
                    } else {
                        dropped += 1;
                    }
                }
            }
        }
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
        group.sets.push(SetRec {
            seq,
            part: None,
            st01: st01.clone(),
            st02: st02.clone(),
        });
        let job = SetJob {
            reg: self.reg.clone(),
            gs08: group.gs08.clone(),
            sender: ic.isa.sender.clone(),
            partner: ic.isa.partner.clone(),
            delims: d,
            interchange_rejected: ic
                .header_error
                .as_ref()
                .map(|(_, r)| r.clone())
                .or_else(|| group.header_error.clone()),
            claims: vec![
                format!(
                    "x12-isa:{}:{}:{}",
                    ic.isa.sender, ic.isa.receiver, ic.isa.control
                ),
                format!(
                    "x12-set:{}:{}:{}:{}:{}",
                    ic.isa.sender, ic.isa.receiver, ic.isa.control, group.gs06, st02
                ),
            ],
            dropped,
            limit: self.max_unit_lines,
            byte_limit: self.max_set_bytes,
            segs: Vec::new(),
        };
        // One envelope prefix per set; only the segment ordinal differs per line.
        let prefix = self.locator(None);
        let lines: Vec<SourceLine> = segs
            .iter()
            .enumerate()
            .map(|(i, s)| SourceLine {
                pos: s
                    .pos
                    .clone()
                    .with_locator(format!("{prefix} / ST {st02}, segment {} of set", i + 1)),
                raw: cap_raw(&s.text, RAW_CAP),
            })
            .collect();
        let job = SetJob { segs, ..job };
        Ok(Unit {
            seq,
            label: format!("{st01} ST {st02}"),
            lines,
            job: Some(Box::new(move || job.run())),
        })
    }

    fn mark_open_set(&mut self, st01: &str, st02: &str) {
        if let Some(g) = self
            .cur
            .as_mut()
            .and_then(|c| c.groups.last_mut())
            .filter(|g| !g.closed)
        {
            g.open_set = Some((st01.to_string(), st02.to_string()));
        }
    }

    fn end_group(&mut self, seg: Segment) -> Result<Unit, FileError> {
        let tolerates = |name: &str| {
            self.cur
                .as_ref()
                .is_some_and(|c| c.isa.partner.tolerates(name))
        };
        let (tol_count, tol_ctrl) = (tolerates("ge01-count"), tolerates("ge02-control"));
        let tol_pad = tolerates("control-padding");
        let Some(group) = self
            .cur
            .as_mut()
            .and_then(|c| c.groups.last_mut())
            .filter(|g| !g.closed)
        else {
            return Err(self.fail(
                seg.pos.clone(),
                "x12-ge-without-gs",
                "024",
                "GE trailer without a matching GS header".into(),
            ));
        };
        let mut tolerated = Vec::new();
        let n = group.sets.len();
        group.declared_sets = Some(seg.el(1).to_string());
        if seg.el(1).parse::<usize>().ok() != Some(n) {
            if tol_count {
                tolerated.push("x12-ge01-count".to_string());
            } else {
                let msg = format!(
                    "GE01 declares '{}' transaction sets but the group has {n}",
                    seg.el(1)
                );
                return Err(self.fail(seg.pos.clone(), "x12-ge01-count", "024", msg));
            }
        }
        if seg.el(2) != group.gs06 {
            if tol_pad && defs::same_number(seg.el(2), &group.gs06) {
                tolerated.push("x12-control-padding".to_string());
            } else if tol_ctrl {
                tolerated.push("x12-ge02-control".to_string());
            } else {
                let msg = format!("GE02 '{}' does not match GS06 '{}'", seg.el(2), group.gs06);
                return Err(self.fail(seg.pos.clone(), "x12-ge02-control", "024", msg));
            }
        }
        group.closed = true;
        Ok(self.envelope_unit(&seg, tolerated, None))
    }

    fn end_interchange(&mut self, seg: Segment) -> Result<Unit, FileError> {
        let Some(ic) = self.cur.as_ref() else {
            return Err(FileError::at(
                seg.pos.clone(),
                "x12-iea-without-isa",
                "IEA trailer without a matching ISA header",
            ));
        };
        if let Some(g) = ic.groups.last().filter(|g| !g.closed) {
            let msg = format!(
                "functional group GS {} has no GE trailer before IEA",
                g.gs06
            );
            return Err(self.fail(seg.pos.clone(), "x12-missing-ge", "024", msg));
        }
        let mut tolerated = Vec::new();
        let n = ic.groups.len();
        let p = &ic.isa.partner;
        if seg.el(1).parse::<usize>().ok() != Some(n) {
            if p.tolerates("iea01-count") {
                tolerated.push("x12-iea01-count".to_string());
            } else {
                let msg = format!(
                    "IEA01 declares '{}' functional groups but the interchange has {n}",
                    seg.el(1)
                );
                return Err(self.fail(seg.pos.clone(), "x12-iea01-count", "021", msg));
            }
        }
        if seg.el(2) != ic.isa.control {
            if p.tolerates("control-padding") && defs::same_number(seg.el(2), &ic.isa.control) {
                tolerated.push("x12-control-padding".to_string());
            } else if p.tolerates("iea02-control") {
                tolerated.push("x12-iea02-control".to_string());
            } else {
                let msg = format!(
                    "IEA02 '{}' does not match ISA13 '{}'",
                    seg.el(2),
                    ic.isa.control
                );
                return Err(self.fail(seg.pos.clone(), "x12-iea02-control", "001", msg));
            }
        }
        let unit = self.envelope_unit(&seg, tolerated, None);
        if let Some(mut ic) = self.cur.take() {
            ic.closed = true;
            self.done.push(ic);
        }
        Ok(unit)
    }
}

/// ISA content checks that reject the interchange (not the file): TA1 note code + reason.
fn check_isa(seg: &Segment) -> Option<(&'static str, Reason)> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let bad = |code: &'static str, field: &str, value: &str, msg: &str| {
        Some((
            code,
            Reason::new("x12-isa", msg.to_string())
                .field(field)
                .value(value),
        ))
    };
    let (e1, e3) = (seg.el(1), seg.el(3));
    if !matches!(e1, "00" | "01" | "02" | "03" | "04" | "05" | "06") {
        return bad(
            "010",
            "ISA01",
            e1,
            "ISA01 authorization qualifier is not a valid code",
        );
    }
    if !matches!(e3, "00" | "01") {
        return bad(
            "012",
            "ISA03",
            e3,
            "ISA03 security qualifier must be 00 or 01",
        );
    }
    for (f, code) in [(5, "005"), (7, "007")] {
        let v = seg.el(f);
        if v.len() != 2 || !v.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return bad(
                code,
                &format!("ISA{f:02}"),
                v,
                "ID qualifier must be 2 alphanumeric characters",
            );
        }
    }
    for (f, code) in [(6, "006"), (8, "008")] {
        if seg.el(f).trim().is_empty() {
            return bad(
                code,
                &format!("ISA{f:02}"),
                seg.el(f),
                "interchange ID is empty",
            );
        }
    }
    let date = seg.el(9);
    if !digits(date) || chrono::NaiveDate::parse_from_str(&format!("20{date}"), "%Y%m%d").is_err() {
        return bad("014", "ISA09", date, "ISA09 is not a valid YYMMDD date");
    }
    let time = seg.el(10);
    let hm = |i: usize| time.get(i..i + 2).and_then(|s| s.parse::<u32>().ok());
    if !digits(time)
        || time.len() != 4
        || hm(0).is_none_or(|h| h >= 24)
        || hm(2).is_none_or(|m| m >= 60)
    {
        return bad("015", "ISA10", time, "ISA10 is not a valid HHMM time");
    }
    let version = seg.el(12);
    if !digits(version) || version.len() != 5 || version < "00200" {
        return bad(
            "017",
            "ISA12",
            version,
            "ISA12 is not a known interchange control version",
        );
    }
    let ctl = seg.el(13);
    if !digits(ctl) || ctl.len() != 9 {
        return bad("018", "ISA13", ctl, "ISA13 must be 9 digits");
    }
    if !matches!(seg.el(14), "0" | "1") {
        return bad("019", "ISA14", seg.el(14), "ISA14 must be 0 or 1");
    }
    if !matches!(seg.el(15), "P" | "T" | "I") {
        return bad("020", "ISA15", seg.el(15), "ISA15 must be P, T or I");
    }
    None
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
        let seg = match self.src.read_segment(&d).map_err(read_err)? {
            Some(s) => s,
            None => {
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
        if !(2..=3).contains(&seg.id.len())
            || !seg
                .id
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            let msg = format!("'{}' is not a segment identifier", cap_raw(&seg.id, 20));
            return Err(self.fail(seg.pos.clone(), "x12-bad-segment-id", "024", msg));
        }
        match seg.id.as_str() {
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
                    return Err(self.fail(seg.pos.clone(), "x12-missing-ge", "024", msg));
                }
                if let Some(ic) = self.cur.as_mut() {
                    ic.groups.push(GroupRec {
                        gs01: seg.el(1).to_string(),
                        gs02: seg.el(2).to_string(),
                        gs03: seg.el(3).to_string(),
                        gs06: seg.el(6).to_string(),
                        gs08: seg.el(8).to_string(),
                        sets: vec![],
                        open_set: None,
                        declared_sets: None,
                        closed: false,
                        header_error: gs_error(&seg),
                    });
                }
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

impl X12Reader {
    /// Merges the held units of an all-or-nothing group or interchange into one unit whose
    /// job runs every part and rejects them all if any is rejected.
    fn flush_held(&mut self) -> Unit {
        let held = std::mem::take(&mut self.held);
        let seq = held.first().map(|u| u.seq).unwrap_or(self.seq);
        self.seq = seq + 1;
        let last = seq + held.len() as u64;
        let mode = self.atomic;
        // Point the set records at the merged unit and their part.
        let interchanges = self.cur.iter_mut().chain(self.done.last_mut());
        for ic in interchanges {
            for g in &mut ic.groups {
                for s in &mut g.sets {
                    if s.part.is_none() && (seq..last).contains(&s.seq) {
                        s.part = Some((s.seq - seq) as usize);
                        s.seq = seq;
                    }
                }
            }
        }
        let label = format!(
            "{} {} (all-or-nothing)",
            mode.as_str(),
            held.first().map(|u| u.label.as_str()).unwrap_or("")
        );
        let mut lines = Vec::new();
        let mut parts = Vec::new();
        for u in held {
            parts.push((u.lines.len(), u.job, u.label));
            lines.extend(u.lines);
        }
        let job = move || merged_eval(mode, parts);
        Unit {
            seq,
            label,
            lines,
            job: Some(Box::new(job)),
        }
    }
}

type Part = (usize, Option<Box<dyn crate::unit::UnitJob>>, String);

fn merged_eval(mode: Atomic, parts: Vec<Part>) -> Evaluation {
    let mut ev = Evaluation::default();
    let mut details = Vec::new();
    let mut rejected = Vec::new();
    for (n, job, label) in parts {
        let e = match job {
            Some(j) => j.run(),
            None => Evaluation {
                verdicts: vec![LineVerdict::Skipped(label.clone()); n],
                ..Evaluation::default()
            },
        };
        let is_rejected = e.is_rejected();
        let mut verdicts = e.verdicts;
        verdicts.resize(n, LineVerdict::Ok);
        // A set-level error stays on the set's first line (its ST) rather than moving to
        // the first line of the whole group.
        let mut errors = e.unit_errors.into_iter();
        if let (Some(first), Some(v)) = (errors.next(), verdicts.first_mut()) {
            if matches!(v, LineVerdict::Ok) {
                *v = LineVerdict::Rejected(first);
            } else {
                ev.unit_errors.push(first);
            }
        }
        ev.unit_errors.extend(errors);
        if is_rejected {
            rejected.push(label);
        }
        ev.verdicts.extend(verdicts);
        ev.records.extend(e.records);
        for c in e.claims {
            if !ev.claims.contains(&c) {
                ev.claims.push(c);
            }
        }
        ev.tolerated.extend(e.tolerated);
        details.push(e.detail);
    }
    if !rejected.is_empty() {
        ev.records.clear();
        ev.unit_errors.push(Reason::new(
            "x12-all-or-nothing",
            format!(
                "the partner's policy is all-or-nothing per {}: rejected with it because of {}",
                mode.as_str(),
                rejected.join(", ")
            ),
        ));
    }
    ev.detail = json!({"atomic": mode.as_str(), "parts": details});
    ev
}

impl UnitReader for X12Reader {
    fn next_unit(&mut self) -> Result<Option<Unit>, FileError> {
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

/// GS checks that reject the group's envelope segment (and, through the AK9, the group).
fn gs_error(seg: &Segment) -> Option<Reason> {
    let v = seg.el(6);
    if v.is_empty() || v.len() > 9 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Some(
            Reason::new(
                "x12-gs06-control",
                "GS06 group control number must be 1-9 digits",
            )
            .field("GS06")
            .value(v),
        );
    }
    if seg.el(8).is_empty() {
        return Some(Reason::new("x12-gs08-version", "GS08 version is missing").field("GS08"));
    }
    None
}

/// The pure validate-and-map job of one transaction set.
struct SetJob {
    reg: Arc<Registry>,
    gs08: String,
    sender: String,
    partner: PartnerDef,
    delims: Delims,
    interchange_rejected: Option<Reason>,
    claims: Vec<String>,
    dropped: u64,
    limit: usize,
    byte_limit: usize,
    segs: Vec<Segment>,
}

impl SetJob {
    fn run(self) -> Evaluation {
        let mut ev = Evaluation {
            verdicts: vec![LineVerdict::Ok; self.segs.len()],
            claims: self.claims.clone(),
            ..Evaluation::default()
        };
        let mut issues: Vec<validate::Issue> = Vec::new();
        let mut ak5: Vec<u8> = Vec::new();
        let st01 = self
            .segs
            .first()
            .map(|s| s.el(1).to_string())
            .unwrap_or_default();
        let st02 = self
            .segs
            .first()
            .map(|s| s.el(2).to_string())
            .unwrap_or_default();
        let mut note = None;
        if let Some(r) = &self.interchange_rejected {
            ev.unit_errors.push(Reason::new(
                "x12-interchange-rejected",
                format!("the envelope header (ISA or GS) is invalid: {}", r.message),
            ));
        }
        if self.dropped > 0 {
            ev.unit_errors.push(Reason::new(
                "x12-set-too-large",
                format!(
                    "the set exceeds the size limit ({} segments or {} bytes kept; {} more were only counted)",
                    self.limit,
                    self.byte_limit,
                    self.dropped
                ),
            ));
            ak5.push(5);
        }
        let se = self.segs.last().filter(|s| s.id == "SE");
        if let Some(se) = se {
            // SE01 counts ST..SE inclusive.
            let count = self.segs.len() as u64 + self.dropped;
            if se.el(1).parse::<u64>().ok() != Some(count) {
                if self.partner.tolerates("se01-count") {
                    ev.tolerated.push("x12-se01-count".into());
                } else {
                    ak5.push(4);
                    issues.push(validate::Issue {
                        seg: self.segs.len() - 1,
                        seg_id: "SE".into(),
                        code: 8,
                        element: Some(validate::ElementIssue {
                            pos: 1,
                            comp: None,
                            code: 7,
                            value: se.el(1).chars().take(20).collect(),
                        }),
                        reason: Reason::new(
                            "x12-se01-count",
                            format!(
                                "SE01 declares '{}' segments but the set has {count}",
                                se.el(1)
                            ),
                        )
                        .field("SE01")
                        .value(se.el(1).chars().take(20).collect::<String>()),
                        set_level: false,
                    });
                }
            }
            if se.el(2) != st02 {
                if defs::same_number(se.el(2), &st02) && self.partner.tolerates("control-padding") {
                    ev.tolerated.push("x12-control-padding".into());
                } else if self.partner.tolerates("se02-control") {
                    ev.tolerated.push("x12-se02-control".into());
                } else {
                    ak5.push(3);
                    issues.push(validate::Issue {
                        seg: self.segs.len() - 1,
                        seg_id: "SE".into(),
                        code: 8,
                        element: Some(validate::ElementIssue {
                            pos: 2,
                            comp: None,
                            code: 7,
                            value: se.el(2).chars().take(20).collect(),
                        }),
                        reason: Reason::new(
                            "x12-se02-control",
                            format!("SE02 '{}' does not match ST02 '{st02}'", se.el(2)),
                        )
                        .field("SE02")
                        .value(se.el(2).chars().take(20).collect::<String>()),
                        set_level: false,
                    });
                }
            }
        }
        if st02.len() < 4 || st02.len() > 9 {
            ak5.push(7);
            issues.push(validate::Issue {
                seg: 0,
                seg_id: "ST".into(),
                code: 8,
                element: Some(validate::ElementIssue {
                    pos: 2,
                    comp: None,
                    code: if st02.len() < 4 { 4 } else { 5 },
                    value: st02.chars().take(20).collect(),
                }),
                reason: Reason::new("x12-length", "ST02 must be 4-9 characters")
                    .field("ST02")
                    .value(st02.chars().take(20).collect::<String>()),
                set_level: false,
            });
        }
        let def = self.reg.set_for(&st01, &self.gs08);
        match def {
            Some(def) => {
                validate::structure(def, &self.segs, &mut issues);
                for (i, s) in self.segs.iter().enumerate() {
                    if def.known_ids.contains(&s.id) {
                        validate::elements(&self.reg, i, s, &self.delims, &mut issues);
                    }
                }
            }
            None => {
                note = Some(format!(
                    "no definition for transaction set {st01} version {}: envelope and SE checked, accepted unmapped",
                    self.gs08
                ));
            }
        }
        if issues.iter().any(|i| {
            !matches!(
                i.reason.rule.as_str(),
                "x12-se01-count" | "x12-se02-control"
            )
        }) && !ak5.contains(&5)
        {
            ak5.push(5);
        }
        for issue in &issues {
            if issue.set_level {
                ev.unit_errors.push(issue.reason.clone());
            } else if let Some(v) = ev.verdicts.get_mut(issue.seg) {
                if matches!(v, LineVerdict::Ok) {
                    *v = LineVerdict::Rejected(issue.reason.clone());
                }
            }
        }
        let rejected = ev.is_rejected();
        if !rejected {
            if let Some(m) = def.and_then(|d| d.map.as_ref()) {
                match map::map_set(m, &self.segs, &self.delims, &self.sender) {
                    Ok(r) => ev.records.push(r),
                    Err(r) => {
                        ev.unit_errors.push(r);
                    }
                }
            }
            if note.is_none() && def.is_some_and(|d| d.map.is_none()) {
                note = Some(format!(
                    "transaction set {st01} is validated but has no map"
                ));
            }
        }
        // The ack lists errors in segment order, as a reader of the file would meet them.
        issues.sort_by_key(|i| i.seg);
        // SE01/SE02 mismatches are reported by the AK5 code alone (4 / 3), as the standard
        // and pyx12 do; the reject report still shows them on the SE segment.
        let ak3: Vec<serde_json::Value> = issues
            .iter()
            .filter(|i| {
                !matches!(
                    i.reason.rule.as_str(),
                    "x12-se01-count" | "x12-se02-control"
                )
            })
            .map(|i| {
                json!({
                    "seg": i.seg_id,
                    "pos": i.seg + 1,
                    "code": i.code,
                    "element": i.element,
                })
            })
            .collect();
        ev.detail = json!({
            "st01": st01,
            "st02": st02,
            "ak5": ak5,
            "ak3": ak3,
            "mapping_failed": !rejected && ev.is_rejected(),
            "note": note,
        });
        if matches!(st01.as_str(), "997" | "999") && !rejected {
            ev.detail["acknowledged"] = acknowledged(&self.segs);
        }
        ev
    }
}

/// What an inbound 997/999 says: the group it answers and each set's status, kept in the
/// ledger detail so an operator can see which of our documents the partner rejected.
fn acknowledged(segs: &[Segment]) -> serde_json::Value {
    let mut sets = Vec::new();
    let mut group = json!(null);
    let mut current: Option<serde_json::Value> = None;
    for s in segs {
        match s.id.as_str() {
            "AK1" => group = json!({"functional_id": s.el(1), "control": s.el(2)}),
            "AK2" => {
                if let Some(c) = current.take() {
                    sets.push(c);
                }
                current = Some(json!({"set": s.el(1), "control": s.el(2)}));
            }
            "AK5" | "IK5" => {
                if let Some(c) = current.as_mut() {
                    c["status"] = json!(s.el(1));
                }
            }
            "AK9" => {
                if let Some(g) = group.as_object_mut() {
                    g.insert("status".into(), json!(s.el(1)));
                    g.insert("accepted".into(), json!(s.el(4)));
                }
            }
            _ => {}
        }
    }
    if let Some(c) = current.take() {
        sets.push(c);
    }
    json!({"group": group, "sets": sets})
}
