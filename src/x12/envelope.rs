//! The interchange and group envelope: ISA header checks, GS checks, and the GE/IEA
//! trailer checks that end a file.
//!
//! Kept apart from the set reading in `reader` because these checks decide what happens to
//! many sets at once: a bad ISA or GS rejects every set under it (the header is known before
//! any set is read), while a bad GE or IEA ends the file with a [`FileError`] (the sets were
//! already streamed, so only rejecting the whole file keeps it from being half-applied). Each
//! outcome also records the TA1 note code the acknowledgement needs.

use crate::format::FileError;
use crate::unit::{Reason, Unit};

use super::reader::read_err;
use super::segments::{self, Segment};
use super::{defs, Interchange, IsaInfo, X12Reader};

impl X12Reader {
    pub(super) fn start_interchange(&mut self) -> Result<Unit, FileError> {
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
        if seg.elements().len() != 16 {
            let pos = seg.pos.clone();
            return Err(FileError::at(
                pos,
                "x12-isa-width",
                format!("ISA has {} elements, 16 are required", seg.elements().len()),
            ));
        }
        if !isa.fixed_width {
            if partner.tolerates("isa-width") {
                tolerated.push("x12-isa-width".to_string());
            } else {
                let bad = seg
                    .elements()
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

    pub(super) fn end_group(&mut self, seg: Segment) -> Result<Unit, FileError> {
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

    pub(super) fn end_interchange(&mut self, seg: Segment) -> Result<Unit, FileError> {
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
            self.mark_ge_missing();
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
    check_isa_parties(seg)
        .or_else(|| check_isa_stamp(seg))
        .or_else(|| check_isa_control(seg))
}

/// A rejected ISA's TA1 note code and reason.
fn isa_reject(
    code: &'static str,
    field: &str,
    value: &str,
    msg: &str,
) -> Option<(&'static str, Reason)> {
    Some((
        code,
        Reason::new("x12-isa", msg.to_string())
            .field(field)
            .value(value),
    ))
}

/// Whether an ISA element is a non-empty run of ASCII digits.
fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// ISA01–ISA08: authorization and security qualifiers, sender and receiver IDs.
fn check_isa_parties(seg: &Segment) -> Option<(&'static str, Reason)> {
    let (e1, e3) = (seg.el(1), seg.el(3));
    if !matches!(e1, "00" | "01" | "02" | "03" | "04" | "05" | "06") {
        return isa_reject(
            "010",
            "ISA01",
            e1,
            "ISA01 authorization qualifier is not a valid code",
        );
    }
    if !matches!(e3, "00" | "01") {
        return isa_reject(
            "012",
            "ISA03",
            e3,
            "ISA03 security qualifier must be 00 or 01",
        );
    }
    for (f, code) in [(5, "005"), (7, "007")] {
        let v = seg.el(f);
        if v.len() != 2 || !v.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return isa_reject(
                code,
                &format!("ISA{f:02}"),
                v,
                "ID qualifier must be 2 alphanumeric characters",
            );
        }
    }
    for (f, code) in [(6, "006"), (8, "008")] {
        if seg.el(f).trim().is_empty() {
            return isa_reject(
                code,
                &format!("ISA{f:02}"),
                seg.el(f),
                "interchange ID is empty",
            );
        }
    }
    None
}

/// ISA09–ISA10: the interchange date and time.
fn check_isa_stamp(seg: &Segment) -> Option<(&'static str, Reason)> {
    let date = seg.el(9);
    if !all_digits(date)
        || chrono::NaiveDate::parse_from_str(&format!("20{date}"), "%Y%m%d").is_err()
    {
        return isa_reject("014", "ISA09", date, "ISA09 is not a valid YYMMDD date");
    }
    let time = seg.el(10);
    let hm = |i: usize| time.get(i..i + 2).and_then(|s| s.parse::<u32>().ok());
    if !all_digits(time)
        || time.len() != 4
        || hm(0).is_none_or(|h| h >= 24)
        || hm(2).is_none_or(|m| m >= 60)
    {
        return isa_reject("015", "ISA10", time, "ISA10 is not a valid HHMM time");
    }
    None
}

/// ISA12–ISA15: version, control number, acknowledgment request and usage indicator.
fn check_isa_control(seg: &Segment) -> Option<(&'static str, Reason)> {
    let version = seg.el(12);
    if !all_digits(version) || version.len() != 5 || version < "00200" {
        return isa_reject(
            "017",
            "ISA12",
            version,
            "ISA12 is not a known interchange control version",
        );
    }
    let ctl = seg.el(13);
    if !all_digits(ctl) || ctl.len() != 9 {
        return isa_reject("018", "ISA13", ctl, "ISA13 must be 9 digits");
    }
    if !matches!(seg.el(14), "0" | "1") {
        return isa_reject("019", "ISA14", seg.el(14), "ISA14 must be 0 or 1");
    }
    if !matches!(seg.el(15), "P" | "T" | "I") {
        return isa_reject("020", "ISA15", seg.el(15), "ISA15 must be P, T or I");
    }
    None
}

/// GS checks that reject the group's envelope segment (and, through the AK9, the group).
pub(super) fn gs_error(seg: &Segment) -> Option<Reason> {
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
