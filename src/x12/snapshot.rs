//! Snapshots of what the X12 reader knows at a mark, so that a resumed read starts near
//! its mark instead of passing over every committed set from the top.
//!
//! What a restarted reader must know (every interchange, group and set before the mark,
//! for the acknowledgement) grows with the file, too much for a mark. So at some marks the
//! reader appends a snapshot of it to the file the engine gives for restart state
//! (`UnitReader::keep_state_in`), and every mark names the latest snapshot: where it is,
//! how long, and its checksum. A restart reads that snapshot back and passes over only the
//! sets between it and the mark, the same way a restart without one passes over them all
//! from the top (`skim_to`). A snapshot that is missing, cut short or does not match its
//! checksum is not used: the restart passes over everything, as before.
//!
//! A snapshot is taken once the bytes read since the last one are at least a 64th of the
//! file and 16 times the last snapshot's size. A snapshot costs about five bytes a set (the
//! set list's own form) and grows with the file, so the second condition spaces them out
//! as it grows: a 30 MB interchange of 86,000 sets writes 1.7 MB of them in all, and a
//! resume passes over at most about a fifth of its committed part. The first makes small
//! files (the test corpus) take one at nearly every mark, so restores are exercised.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use serde_json::{Map, Value};

use super::segments::{Delims, Sep};
use super::sets::SetList;
use super::{GroupRec, Interchange, IsaInfo, OpenSet};
use crate::unit::Reason;
use crate::varint::{put_unsigned, take_unsigned};

/// The snapshot's form; a snapshot of another is not used.
const VERSION: u64 = 1;
/// A snapshot is taken once this many times its predecessor's size has been read since.
const GROWTH: u64 = 16;
/// ... and a 64th of the file.
const FILE_PARTS: u64 = 64;

/// Where a snapshot is in the state file, and what it must hash to.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct SnapRef {
    at: u64,
    len: u64,
    sum: String,
}

/// The snapshots of one read: the file they are appended to, and the latest.
#[derive(Default)]
pub(super) struct Snapshots {
    path: Option<PathBuf>,
    file: Option<File>,
    /// The input's size, which spaces the first snapshots.
    input_bytes: u64,
    last: Option<SnapRef>,
    /// The input byte the latest snapshot was taken at.
    last_byte: u64,
    /// The file could not be written: no more snapshots are tried.
    failed: bool,
}

/// Where the reader is at a mark: the next unit's seq, whether it has read an ISA, and
/// the input's byte, line and segments handed out.
pub(super) struct Place {
    pub seq: u64,
    pub started: bool,
    pub byte: u64,
    pub line: u64,
    pub record: u64,
}

/// The reader's state at a mark, as a snapshot holds it: the place, and the interchanges
/// read, finished and not.
pub(super) struct State {
    pub place: Place,
    pub done: Vec<Interchange>,
    pub cur: Option<Interchange>,
}

impl Snapshots {
    /// For a read of an input of `input_bytes`; nothing is kept until [`Self::keep_in`].
    pub fn new(input_bytes: u64) -> Snapshots {
        Snapshots {
            input_bytes,
            ..Default::default()
        }
    }

    pub fn keep_in(&mut self, path: PathBuf) {
        self.path = Some(path);
    }

    /// Whether a snapshot is due at input byte `byte`.
    pub fn due(&self, byte: u64) -> bool {
        let since = byte.saturating_sub(self.last_byte);
        let last_len = self.last.as_ref().map_or(0, |s| s.len);
        self.path.is_some()
            && !self.failed
            && since > 0
            && since >= self.input_bytes / FILE_PARTS
            && since >= last_len.saturating_mul(GROWTH)
    }

    /// Appends the snapshot `bytes`, taken at input byte `byte`; a failure to write only
    /// means restarts pass over more (it is logged once).
    pub fn append(&mut self, bytes: &[u8], byte: u64) {
        match self.write(bytes) {
            Ok(at) => {
                self.last = Some(SnapRef {
                    at,
                    len: bytes.len() as u64,
                    sum: checksum(bytes),
                });
                self.last_byte = byte;
            }
            Err(e) => {
                tracing::warn!("no restart snapshot (a resume reads from the top): {e}");
                self.failed = true;
            }
        }
    }

    fn write(&mut self, bytes: &[u8]) -> std::io::Result<u64> {
        if self.file.is_none() {
            let path = self.path.as_ref().ok_or(std::io::ErrorKind::NotFound)?;
            // A read that did not start from a snapshot owes nothing to what the file
            // holds (an earlier attempt's); one that did appends after it.
            let fresh = self.last.is_none();
            self.file = Some(crate::fsutil::open_private_creating_dir(path, fresh)?);
        }
        let file = self.file.as_mut().ok_or(std::io::ErrorKind::NotFound)?;
        let at = file.seek(SeekFrom::End(0))?;
        file.write_all(bytes)?;
        Ok(at)
    }

    /// What a mark records of the latest snapshot (nothing when there is none).
    pub fn mark_state(&self) -> Value {
        let Some(s) = &self.last else {
            return Value::Null;
        };
        let mut m = Map::new();
        m.insert("snapshot_at".into(), s.at.into());
        m.insert("snapshot_len".into(), s.len.into());
        m.insert("snapshot_sum".into(), s.sum.clone().into());
        Value::Object(m)
    }

    /// The snapshot a mark's state names, if the state file still holds it as written
    /// (see [`Self::restored`]).
    pub fn load(&self, state: &Value, byte: u64) -> Option<(Vec<u8>, SnapRef)> {
        let at = state.get("snapshot_at")?.as_u64()?;
        let len = state.get("snapshot_len")?.as_u64()?;
        let sum = state.get("snapshot_sum")?.as_str()?.to_string();
        // Several times the bytes read before the mark at most (envelope errors' reasons
        // can outweigh the segments they are about): more is not a snapshot of this read.
        if len > byte.saturating_mul(4).max(1 << 20) {
            return None;
        }
        let mut file = File::open(self.path.as_ref()?).ok()?;
        file.seek(SeekFrom::Start(at)).ok()?;
        let mut bytes = vec![0u8; usize::try_from(len).ok()?];
        file.read_exact(&mut bytes).ok()?;
        if checksum(&bytes) != sum {
            return None;
        }
        Some((bytes, SnapRef { at, len, sum }))
    }

    /// Notes that a restart took up `snap`, taken at input byte `byte`: it is the latest
    /// until the next is taken, which is appended after it.
    pub fn restored(&mut self, snap: SnapRef, byte: u64) {
        (self.last, self.last_byte) = (Some(snap), byte);
    }
}

fn checksum(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex()[..32].to_string()
}

/// The reader's state at `place` as a snapshot.
pub(super) fn encode(place: &Place, done: &[Interchange], cur: Option<&Interchange>) -> Vec<u8> {
    let mut out = Vec::new();
    for n in [VERSION, place.seq, u64::from(place.started)] {
        put_unsigned(&mut out, n);
    }
    for n in [place.byte, place.line, place.record] {
        put_unsigned(&mut out, n);
    }
    put_unsigned(&mut out, done.len() as u64);
    for ic in done {
        put_interchange(&mut out, ic);
    }
    put_unsigned(&mut out, u64::from(cur.is_some()));
    if let Some(ic) = cur {
        put_interchange(&mut out, ic);
    }
    out
}

/// A snapshot read back; `partner` finds an interchange's partner by its sender, as
/// reading its ISA did. `None` for anything this reader did not write.
pub(super) fn decode(
    mut b: &[u8],
    partner: &dyn Fn(&str) -> super::defs::PartnerDef,
) -> Option<State> {
    let b = &mut b;
    if take_unsigned(b)? != VERSION {
        return None;
    }
    let (seq, started) = (take_unsigned(b)?, take_bool(b)?);
    let (byte, line, record) = (take_unsigned(b)?, take_unsigned(b)?, take_unsigned(b)?);
    let n = take_unsigned(b)?;
    let mut done = Vec::new();
    for _ in 0..n {
        done.push(take_interchange(b, partner)?);
    }
    let cur = match take_bool(b)? {
        true => Some(take_interchange(b, partner)?),
        false => None,
    };
    let place = Place {
        seq,
        started,
        byte,
        line,
        record,
    };
    b.is_empty().then_some(State { place, done, cur })
}

fn put_interchange(out: &mut Vec<u8>, ic: &Interchange) {
    let i = &ic.isa;
    for s in [&i.sender_q, &i.sender, &i.receiver_q, &i.receiver, &i.date] {
        put_str(out, s);
    }
    for s in [&i.time, &i.version, &i.control, &i.usage] {
        put_str(out, s);
    }
    put_unsigned(out, u64::from(i.ack_requested));
    put_delims(out, &i.delims);
    match &ic.header_error {
        Some((code, reason)) => {
            put_unsigned(out, 1);
            put_str(out, code);
            put_reason(out, reason);
        }
        None => put_unsigned(out, 0),
    }
    put_unsigned(out, u64::from(ic.closed));
    put_opt_str(out, ic.trailer_error);
    put_unsigned(out, ic.groups.len() as u64);
    for g in &ic.groups {
        put_group(out, g);
    }
}

fn take_interchange(
    b: &mut &[u8],
    partner: &dyn Fn(&str) -> super::defs::PartnerDef,
) -> Option<Interchange> {
    let [sender_q, sender, receiver_q, receiver, date] = take_strs(b)?;
    let [time, version, control, usage] = take_strs(b)?;
    let ack_requested = take_bool(b)?;
    let delims = take_delims(b)?;
    let header_error = match take_bool(b)? {
        true => Some((ta1_code(&take_str(b)?)?, take_reason(b)?)),
        false => None,
    };
    let closed = take_bool(b)?;
    let trailer_error = match take_opt_str(b)? {
        Some(code) => Some(ta1_code(&code)?),
        None => None,
    };
    let mut groups = Vec::new();
    for _ in 0..take_unsigned(b)? {
        groups.push(take_group(b)?);
    }
    let partner = partner(&sender);
    Some(Interchange {
        isa: IsaInfo {
            sender_q,
            sender,
            receiver_q,
            receiver,
            date,
            time,
            version,
            control,
            ack_requested,
            usage,
            delims,
            partner,
        },
        groups,
        header_error,
        closed,
        trailer_error,
    })
}

fn put_group(out: &mut Vec<u8>, g: &GroupRec) {
    for s in [&g.gs01, &g.gs02, &g.gs03, &g.gs06, &g.gs08] {
        put_str(out, s);
    }
    g.sets.save(out);
    match &g.open_set {
        Some(o) => {
            put_unsigned(out, 1);
            put_str(out, &o.st01);
            put_str(out, &o.st02);
            put_unsigned(out, u64::from(o.code));
        }
        None => put_unsigned(out, 0),
    }
    put_opt_str(out, g.declared_sets.as_deref());
    put_unsigned(out, u64::from(g.closed));
    put_unsigned(out, u64::from(g.ge_missing));
    match &g.header_error {
        Some(r) => {
            put_unsigned(out, 1);
            put_reason(out, r);
        }
        None => put_unsigned(out, 0),
    }
}

fn take_group(b: &mut &[u8]) -> Option<GroupRec> {
    let [gs01, gs02, gs03, gs06, gs08] = take_strs(b)?;
    let sets = SetList::restore(b)?;
    let open_set = match take_bool(b)? {
        true => Some(OpenSet {
            st01: take_str(b)?,
            st02: take_str(b)?,
            code: u8::try_from(take_unsigned(b)?).ok()?,
        }),
        false => None,
    };
    let declared_sets = take_opt_str(b)?;
    let (closed, ge_missing) = (take_bool(b)?, take_bool(b)?);
    let header_error = match take_bool(b)? {
        true => Some(take_reason(b)?),
        false => None,
    };
    Some(GroupRec {
        gs01,
        gs02,
        gs03,
        gs06,
        gs08,
        sets,
        open_set,
        declared_sets,
        closed,
        ge_missing,
        header_error,
    })
}

fn put_delims(out: &mut Vec<u8>, d: &Delims) {
    for s in [Some(d.elem), Some(d.comp), d.rep, Some(d.term)] {
        put_opt_str(out, s.map(|s| s.as_char().to_string()).as_deref());
    }
}

fn take_delims(b: &mut &[u8]) -> Option<Delims> {
    let mut sep = || -> Option<Option<Sep>> {
        Some(match take_opt_str(b)? {
            Some(s) => Some(Sep::new(s.chars().next()?)),
            None => None,
        })
    };
    let (elem, comp, rep, term) = (sep()??, sep()??, sep()?, sep()??);
    Some(Delims {
        elem,
        comp,
        rep,
        term,
    })
}

fn put_reason(out: &mut Vec<u8>, r: &Reason) {
    put_str(out, &serde_json::to_string(r).unwrap_or_default());
}

fn take_reason(b: &mut &[u8]) -> Option<Reason> {
    serde_json::from_str(&take_str(b)?).ok()
}

/// The TA1 note codes (TA105) a reader records, as the `&'static str` it keeps.
fn ta1_code(code: &str) -> Option<&'static str> {
    const CODES: [&str; 32] = [
        "000", "001", "002", "003", "004", "005", "006", "007", "008", "009", "010", "011", "012",
        "013", "014", "015", "016", "017", "018", "019", "020", "021", "022", "023", "024", "025",
        "026", "027", "028", "029", "030", "031",
    ];
    CODES.into_iter().find(|c| *c == code)
}

pub(super) fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_unsigned(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

pub(super) fn take_bytes<'a>(b: &mut &'a [u8]) -> Option<&'a [u8]> {
    let n = usize::try_from(take_unsigned(b)?).ok()?;
    let (bytes, rest) = (b.get(..n)?, b.get(n..)?);
    *b = rest;
    Some(bytes)
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_bytes(out, s.as_bytes());
}

fn take_str(b: &mut &[u8]) -> Option<String> {
    String::from_utf8(take_bytes(b)?.to_vec()).ok()
}

fn take_strs<const N: usize>(b: &mut &[u8]) -> Option<[String; N]> {
    let mut out: [String; N] = std::array::from_fn(|_| String::new());
    for s in &mut out {
        *s = take_str(b)?;
    }
    Some(out)
}

fn put_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    put_unsigned(out, u64::from(s.is_some()));
    if let Some(s) = s {
        put_str(out, s);
    }
}

fn take_opt_str(b: &mut &[u8]) -> Option<Option<String>> {
    match take_bool(b)? {
        true => Some(Some(take_str(b)?)),
        false => Some(None),
    }
}

pub(super) fn take_bool(b: &mut &[u8]) -> Option<bool> {
    match take_unsigned(b)? {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::x12::defs::PartnerDef;

    fn reason(rule: &str) -> Reason {
        Reason {
            rule: rule.into(),
            field: Some("GS08".into()),
            value: Some("004010".into()),
            message: format!("{rule}: a message with é and \"quotes\""),
            ..Default::default()
        }
    }

    fn interchange(control: &str, closed: bool) -> Interchange {
        let mut sets = SetList::default();
        for n in 1..=300u64 {
            sets.push(n + 10, "850", &format!("{n:09}"));
        }
        sets.merge(100, 200);
        let group = |gs06: &str, closed: bool| GroupRec {
            gs01: "PO".into(),
            gs02: "ACME".into(),
            gs03: "TALLYMAN".into(),
            gs06: gs06.into(),
            gs08: "004010X".into(),
            sets: sets.clone(),
            open_set: (!closed).then(|| OpenSet {
                st01: "850".into(),
                st02: "0301".into(),
                code: 5,
            }),
            declared_sets: closed.then(|| "300".into()),
            closed,
            ge_missing: !closed,
            header_error: (!closed).then(|| reason("x12-gs08")),
        };
        Interchange {
            isa: IsaInfo {
                sender_q: "ZZ".into(),
                sender: "ACME".into(),
                receiver_q: "ZZ".into(),
                receiver: "TALLYMAN".into(),
                date: "261101".into(),
                time: "0930".into(),
                version: "00401".into(),
                control: control.into(),
                ack_requested: true,
                usage: "P".into(),
                delims: Delims {
                    elem: Sep::new('*'),
                    comp: Sep::new('>'),
                    rep: Some(Sep::new('Ö')),
                    term: Sep::new('~'),
                },
                partner: PartnerDef::default(),
            },
            groups: vec![group("1", true), group("2", false)],
            header_error: Some(("006", reason("x12-isa06"))),
            closed,
            trailer_error: (!closed).then_some("024"),
        }
    }

    #[test]
    fn a_snapshot_reads_back_as_the_state_it_was_taken_of_and_a_cut_one_not_at_all() {
        let place = Place {
            seq: 612,
            started: true,
            byte: 123_456,
            line: 4_567,
            record: 4_566,
        };
        let done = vec![interchange("000000001", true)];
        let cur = interchange("000000002", false);
        let bytes = encode(&place, &done, Some(&cur));
        let back = decode(&bytes, &|_| PartnerDef::default()).expect("reads back");
        let p = &back.place;
        assert_eq!(
            (p.seq, p.started, p.byte, p.line, p.record),
            (612, true, 123_456, 4_567, 4_566)
        );
        assert_eq!(format!("{:?}", back.done), format!("{done:?}"));
        assert_eq!(format!("{:?}", back.cur), format!("{:?}", Some(&cur)));
        let all = |l: &SetList| {
            let mut v = Vec::new();
            l.each(|s| v.push((s.seq, s.part, s.ak2.to_string())));
            v
        };
        let (was, now) = (
            &cur.groups[1].sets,
            &back.cur.as_ref().unwrap().groups[1].sets,
        );
        assert_eq!(all(now), all(was));
        // More sets pushed after a restore are written as after the original.
        let (mut was, mut now) = (was.clone(), now.clone());
        was.push(400, "850", "000000400");
        now.push(400, "850", "000000400");
        assert_eq!(all(&now), all(&was));
        for cut in 0..bytes.len() {
            assert!(
                decode(&bytes[..cut], &|_| PartnerDef::default()).is_none(),
                "{cut}"
            );
        }
        let mut other = bytes.clone();
        other[0] = 2;
        assert!(decode(&other, &|_| PartnerDef::default()).is_none());
    }
}
