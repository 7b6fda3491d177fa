//! Acknowledgements: a 997 (inbound groups of the 003/004 families) or 999 (005010 and
//! later) per functional group, and a TA1 when the interchange envelope is bad or ISA14
//! asks for one.
//!
//! The AK3/AK4 (IK3/IK4) codes come from the set jobs' `detail` as the ledger recorded it,
//! so the ack states exactly what the reject report states; the set status comes from the
//! recorded outcome, so a set the pipeline rejected for any reason (including the whole file
//! being rejected) is never acknowledged as accepted, and never without a reason code.
//! Sender and receiver are swapped and the control numbers are ours, drawn from the
//! ledger-backed [`AckContext`]. Each group is answered in a version its sender understands
//! (see `group_version`).

use crate::format::ack_body::AckWriter;
use crate::format::{AckContext, FileError, Outbound, UnitOutcomes, UnitStatus};

use super::sets::SetView;
use super::{GroupRec, Interchange};

/// AK502/IK502 "transaction set not supported".
const AK5_NOT_SUPPORTED: u64 = 1;
/// AK502/IK502 "one or more segments in error": also sent for a set rejected only because
/// something outside it was (see [`set_codes`]).
const AK5_SEGMENTS_IN_ERROR: u64 = 5;

/// Strips delimiters and control characters from a value echoed back to the partner.
fn clean(v: &str, max: usize) -> String {
    let mut out = String::new();
    push_clean(&mut out, v, max);
    out
}

/// [`clean`] appended to `out`: its first `max` characters kept, then trimmed. An ack
/// has a line or two per set, and a 997 for an interchange of 100,000 sets made each of
/// its values twice over (kept, then trimmed) before formatting them into a third.
fn push_clean(out: &mut String, v: &str, max: usize) {
    // Control numbers and codes are letters and digits: nothing to leave out or trim (a
    // 997 cleans two of them for every set it answers, and a resume every set before it).
    if v.bytes().all(|b| b.is_ascii_alphanumeric()) {
        out.push_str(&v[..v.len().min(max)]);
        return;
    }
    push_clean_any(out, v, max);
}

fn push_clean_any(out: &mut String, v: &str, max: usize) {
    let start = out.len();
    let kept = v
        .chars()
        .filter(|c| !matches!(c, '*' | '~' | ':' | '^') && !c.is_control())
        .take(max);
    for c in kept {
        if out.len() > start || !c.is_whitespace() {
            out.push(c);
        }
    }
    let end = start + out[start..].trim_end().len();
    out.truncate(end);
}

fn seg_id(v: &str) -> String {
    let mut out = String::new();
    push_seg_id(&mut out, v);
    out
}

/// A segment id echoed back: its first three capitals or digits, `ZZZ` when fewer than
/// two, appended to `out`.
fn push_seg_id(out: &mut String, v: &str) {
    let plain = |b: u8| b.is_ascii_uppercase() || b.is_ascii_digit();
    if v.len() >= 2 && v.bytes().all(plain) {
        out.push_str(&v[..v.len().min(3)]);
        return;
    }
    push_seg_id_any(out, v);
}

fn push_seg_id_any(out: &mut String, v: &str) {
    let start = out.len();
    let id = v
        .chars()
        .filter(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        .take(3);
    out.extend(id);
    if out.len() - start < 2 {
        out.truncate(start);
        out.push_str("ZZZ");
    }
}

fn pad(v: &str, n: usize) -> String {
    let v = clean(v, n);
    format!("{v:<n$}")
}

fn codes(v: &serde_json::Value) -> Vec<u64> {
    v.as_array()
        .map(|a| a.iter().filter_map(|c| c.as_u64()).collect())
        .unwrap_or_default()
}

/// The acknowledgement a group gets: 997 or 999, and the GS08 to send it under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AckVersion {
    pub is_999: bool,
    pub gs08: String,
}

/// The oldest release whose 997 code lists hold every code we send (AK905 6 and AK403 10
/// first appear in 003040; the 002 lists stop at AK905 5 and AK403 9).
const OLDEST_997: &str = "003040";

/// Answers a group in the version its sender uses, or the nearest one we produce correctly:
/// the 999 exists from 005010 on, and its implementation guide is 005010X231A1; a 997 is
/// sent under the group's own release (`003050` for `003050`, `004010` for
/// `004010VICS`) from 003040 through 004xxx, under 003040 for older groups, and under
/// 004010 when GS08 is missing or not a version at all.
pub(crate) fn group_version(gs08: &str) -> AckVersion {
    let release = gs08
        .get(..6)
        .filter(|v| v.bytes().all(|b| b.is_ascii_digit()));
    let (is_999, gs08) = match release {
        Some(v) if v >= "005000" => (true, "005010X231A1"),
        Some(v) if v >= OLDEST_997 => (false, v),
        Some(v) if v >= "002000" => (false, OLDEST_997),
        _ => (false, "004010"),
    };
    AckVersion {
        is_999,
        gs08: gs08.to_string(),
    }
}

/// ISA12 and ISA11 of the ack interchange: the inbound control version up to 00401 (whose
/// ISA11 is the standards identifier `U`), 00401 for the rest of the 004 family (their ISA11
/// is a repetition separator we would have to invent), 00501 from 005 on.
fn isa_version(inbound: &str) -> (&str, &'static str) {
    let valid = inbound.len() == 5 && inbound.bytes().all(|b| b.is_ascii_digit());
    match inbound {
        v if valid && v >= "00501" => ("00501", "^"),
        v if valid && ("00200"..="00401").contains(&v) => (v, "U"),
        _ => ("00401", "U"),
    }
}

/// What every group of one interchange needs to know about how the file ended.
struct Ending<'a> {
    error: Option<&'a FileError>,
    /// The error was found inside this interchange (its TA1 says what).
    here: bool,
}

/// Builds the acknowledgement interchange for one inbound interchange, if one is due.
pub(crate) fn acknowledge(
    ic: &Interchange,
    outcomes: &dyn UnitOutcomes,
    acks: &mut dyn AckContext,
    error: Option<&FileError>,
) -> Result<Option<Outbound>, FileError> {
    let env_code = ic
        .header_error
        .as_ref()
        .map(|(c, _)| *c)
        .or(ic.trailer_error);
    let want_ta1 = ic.isa.ack_requested || ic.isa.partner.always_ta1 || env_code.is_some();
    if !want_ta1 && ic.groups.is_empty() {
        return Ok(None);
    }
    let partner = if ic.isa.sender.is_empty() {
        "unknown".to_string()
    } else {
        clean(&ic.isa.sender, 15)
    };
    let ctl = acks.next_control_number(&partner, "ISA")? % 1_000_000_000;
    let mut segs = Segs::default();
    segs.push(&isa_segment(ic, ctl));
    let ending = Ending {
        error,
        here: ic.trailer_error.is_some(),
    };
    let mut kinds: Vec<&str> = Vec::new();
    for (gi, g) in ic.groups.iter().enumerate() {
        let last = gi + 1 == ic.groups.len();
        let v = group_version(&g.gs08);
        let kind = if v.is_999 { "999" } else { "997" };
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
        let gs_ctl = acks.next_control_number(&partner, "GS")? % 1_000_000_000;
        group_segments(g, &v, gs_ctl, outcomes, &ending, last, &mut segs);
    }
    // pyx12's interchange map (the validator the acks are checked with) expects the TA1
    // after the functional groups, which is also where pyx12 itself writes it.
    if want_ta1 {
        let (status, code) = match env_code {
            Some(c) => ("R", c),
            None if error.is_some() => ("R", "024"),
            None => ("A", "000"),
        };
        segs.push(&format!(
            "TA1*{}*{}*{}*{status}*{code}",
            pad(&ic.isa.control, 9),
            pad(&ic.isa.date, 6),
            pad(&ic.isa.time, 4),
        ));
    }
    segs.push(&format!("IEA*{}*{ctl:09}", ic.groups.len()));
    let kind = kinds.first().copied().unwrap_or("TA1").to_string();
    let content = segs.text.finish();
    Ok(Some(Outbound {
        file_name: format!(
            "{}-{kind}-{ctl:09}.x12",
            partner
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect::<String>()
        ),
        kind,
        partner,
        control_no: Some(ctl),
        content,
    }))
}

fn isa_segment(ic: &Interchange, ctl: u64) -> String {
    let now = chrono::Utc::now();
    let (version, isa11) = isa_version(&ic.isa.version);
    format!(
        "ISA*00*          *00*          *{}*{}*{}*{}*{}*{}*{isa11}*{version}*{ctl:09}*0*{}*:",
        pad(&ic.isa.receiver_q, 2),
        pad(&ic.isa.receiver, 15),
        pad(&ic.isa.sender_q, 2),
        pad(&ic.isa.sender, 15),
        now.format("%y%m%d"),
        now.format("%H%M"),
        if ic.isa.usage == "T" { "T" } else { "P" },
    )
}

/// The acknowledgement's text, written a segment at a time as it is made, and deflated as
/// it goes (see [`AckWriter`]). A 997 for an interchange of 86,000 sets was 172,000
/// strings in vectors, then copied into one text: a third of the acknowledgement's time
/// (in perf) was the kernel zeroing the fresh memory they took.
#[derive(Default)]
struct Segs {
    text: AckWriter,
    /// Segments written.
    count: usize,
}

impl Segs {
    fn push(&mut self, seg: &str) {
        self.text.push_str(seg);
        self.end();
    }

    /// Ends the segment written into `text` since the one before.
    fn end(&mut self) {
        self.text.push_str("~\n");
        self.count += 1;
    }

    /// The AK2 of a set, from its elements ([`ak2_elements`]).
    fn ak2(&mut self, elements: &str) {
        self.text.push_str("AK2*");
        self.text.push_str(elements);
        self.end();
    }
}

/// The elements of a set's AK2 (ST01, ST02 as echoed back): `850*000000001`. Made when
/// the set is read, so the reader keeps these few bytes of it (see `sets`).
pub(super) fn ak2_elements(st01: &str, st02: &str) -> String {
    let mut out = String::with_capacity(16);
    push_seg_id(&mut out, st01);
    out.push('*');
    push_clean(&mut out, st02, 9);
    out
}

/// GS, the 997/999 answering one inbound group, and GE.
fn group_segments(
    g: &GroupRec,
    v: &AckVersion,
    gs_ctl: u64,
    outcomes: &dyn UnitOutcomes,
    ending: &Ending,
    last: bool,
    segs: &mut Segs,
) {
    let now = chrono::Utc::now();
    segs.push(&format!(
        "GS*FA*{}*{}*{}*{}*{gs_ctl}*X*{}",
        clean(&g.gs03, 15),
        clean(&g.gs02, 15),
        now.format("%Y%m%d"),
        now.format("%H%M"),
        v.gs08,
    ));
    let st = segs.count;
    segs.push(if v.is_999 {
        "ST*999*0001*005010X231A1"
    } else {
        "ST*997*0001"
    });
    segs.push(&if v.is_999 {
        format!(
            "AK1*{}*{}*{}",
            seg_id(&g.gs01),
            clean(&g.gs06, 9),
            clean(&g.gs08, 12)
        )
    } else {
        format!("AK1*{}*{}", seg_id(&g.gs01), clean(&g.gs06, 9))
    });
    let mut accepted = 0u64;
    let mut received = 0u64;
    g.sets.each(|set| {
        received += 1;
        accepted += u64::from(set_segments(set, v.is_999, outcomes, ending.error, segs));
    });
    if let Some(open) = &g.open_set {
        received += 1;
        segs.ak2(&ak2_elements(&open.st01, &open.st02));
        segs.push(&format!(
            "{}*R*{}",
            if v.is_999 { "IK5" } else { "AK5" },
            open.code
        ));
    }
    segs.push(&ak9(g, accepted, received, ending, last));
    // SE01 counts the segments from ST through SE.
    segs.push(&format!("SE*{}*0001", segs.count - st + 1));
    segs.push(&format!("GE*1*{gs_ctl}"));
}

/// AK2, AK3/AK4 (IK3/IK4) and AK5/IK5 of one set; true if it is acknowledged as accepted.
fn set_segments(
    set: SetView,
    is_999: bool,
    outcomes: &dyn UnitOutcomes,
    error: Option<&FileError>,
    segs: &mut Segs,
) -> bool {
    let summary = outcomes.get(set.seq);
    let ok = error.is_none()
        && summary.as_ref().is_some_and(|s| {
            matches!(
                s.status,
                UnitStatus::Applied
                    | UnitStatus::Duplicate
                    | UnitStatus::Skipped
                    | UnitStatus::Unmapped
                    | UnitStatus::Unchanged
            )
        });
    let detail = summary
        .map(|s| match set.part {
            Some(i) => s.detail["parts"][i].clone(),
            None => s.detail,
        })
        .unwrap_or_default();
    segs.ak2(set.ak2);
    segment_notes(&detail, is_999, segs);
    let ak5 = if is_999 { "IK5" } else { "AK5" };
    if ok {
        segs.push(if is_999 { "IK5*A" } else { "AK5*A" });
    } else {
        let tail: String = set_codes(&detail, error)
            .iter()
            .map(|c| format!("*{c}"))
            .collect();
        segs.push(&format!("{ak5}*R{tail}"));
    }
    ok
}

/// AK3/AK4 (IK3/IK4) from the errors the set's job stored, in segment order.
fn segment_notes(detail: &serde_json::Value, is_999: bool, segs: &mut Segs) {
    let Some(issues) = detail["ak3"].as_array() else {
        return;
    };
    let (ak3, ak4) = if is_999 {
        ("IK3", "IK4")
    } else {
        ("AK3", "AK4")
    };
    // Several element errors of one segment share one AK3.
    let mut last: Option<(String, u64, u64)> = None;
    for i in issues {
        let pos = i["pos"].as_u64().unwrap_or(1).max(1);
        let code = i["code"].as_u64().unwrap_or(8);
        let sid = seg_id(i["seg"].as_str().unwrap_or(""));
        let key = (sid.clone(), pos, code);
        if code != 8 || last.as_ref() != Some(&key) {
            segs.push(&format!("{ak3}*{sid}*{pos}**{code}"));
        }
        last = Some(key);
        if let Some(e) = i["element"].as_object() {
            let epos = e
                .get("pos")
                .and_then(|v| v.as_u64())
                .unwrap_or(1)
                .clamp(1, 99);
            let ecode = e.get("code").and_then(|v| v.as_u64()).unwrap_or(6);
            let value = clean(e.get("value").and_then(|v| v.as_str()).unwrap_or(""), 99);
            let tail = if value.is_empty() {
                String::new()
            } else {
                format!("*{value}")
            };
            segs.push(&format!("{ak4}*{epos}**{ecode}{tail}"));
        }
    }
}

/// AK502..AK506 of a rejected set: its own codes (1 not supported, 3 SE02, 4 SE01, 5
/// segment errors, 7 ST02), else — the set is rejected only because something outside it
/// was: its ISA or GS header, its group's or interchange's trailer, an all-or-nothing
/// sibling, the whole file — code 5, the one AK502 code that claims nothing false about the
/// set's own header and trailer; the cause itself is in the AK905 code or the TA1. A set
/// without a definition that a person rejected at review is "not supported" (1).
fn set_codes(detail: &serde_json::Value, error: Option<&FileError>) -> Vec<u64> {
    let mut own = codes(&detail["ak5"]);
    own.truncate(5);
    if !own.is_empty() {
        return own;
    }
    let at_review = error.is_some_and(|e| e.reason.rule == "rejected-at-review");
    if at_review && detail["unmapped"] == true {
        vec![AK5_NOT_SUPPORTED]
    } else {
        vec![AK5_SEGMENTS_IN_ERROR]
    }
}

/// AK9 with included (GE01), received and accepted counts, and the group's own envelope
/// errors as AK905.. codes: 2 GS08 missing, 6 GS06 not a control number, and for the group
/// reading stopped in — 5 GE01, 4 GE02, 3 the group has no GE. X12 defines these codes for the
/// group's header and trailer only, so a group rejected or partly accepted because of its
/// sets carries none: the AK5 codes say why.
fn ak9(g: &GroupRec, accepted: u64, received: u64, ending: &Ending, last: bool) -> String {
    let mut group_codes: Vec<u8> = Vec::new();
    match g.header_error.as_ref().map(|r| r.rule.as_str()) {
        Some("x12-gs08-version") => group_codes.push(2),
        Some(_) => group_codes.push(6),
        None => {}
    }
    if !g.closed && ending.here && last {
        let rule = ending.error.map(|e| e.reason.rule.as_str()).unwrap_or("");
        match rule {
            _ if g.ge_missing => group_codes.push(3),
            "x12-ge01-count" => group_codes.push(5),
            "x12-ge02-control" => group_codes.push(4),
            // Reading stopped at a defect inside the group (its open set says which);
            // nothing is known to be wrong with the group's own header or trailer.
            _ => {}
        }
    }
    let included = g
        .declared_sets
        .as_deref()
        .and_then(|d| d.parse::<u64>().ok())
        .unwrap_or(received);
    let failed = ending.error.is_some();
    let status = if accepted == received && group_codes.is_empty() && !failed {
        "A"
    } else if accepted == 0 || failed || !group_codes.is_empty() {
        "R"
    } else {
        "P"
    };
    let tail: String = group_codes.iter().map(|c| format!("*{c}")).collect();
    format!("AK9*{status}*{included}*{received}*{accepted}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoed_values_lose_delimiters() {
        assert_eq!(clean("a*b~c:d^e\n", 99), "abcde");
        assert_eq!(seg_id("n1"), "ZZZ");
        assert_eq!(seg_id("N1"), "N1");
        assert_eq!(pad("ab", 4), "ab  ");
    }

    /// The shortcut for plain values writes what cleaning them character by character
    /// writes, at and around the cuts.
    #[test]
    fn plain_values_are_echoed_as_cleaning_them_does() {
        let values = [
            "",
            "0001",
            "850",
            "000000001",
            "0000000012",
            "AB",
            "A",
            "n1",
            "N1",
            "9",
        ];
        for v in values {
            for max in [0, 1, 3, 9, 99] {
                let (mut fast, mut any) = ("x".to_string(), "x".to_string());
                push_clean(&mut fast, v, max);
                push_clean_any(&mut any, v, max);
                assert_eq!(fast, any, "{v:?} cut at {max}");
            }
            let (mut fast, mut any) = (String::new(), String::new());
            push_seg_id(&mut fast, v);
            push_seg_id_any(&mut any, v);
            assert_eq!(fast, any, "{v:?}");
        }
    }

    /// Appending to a line writes what the functions that made a value of their own wrote:
    /// kept characters, cut at `max`, trimmed (Unicode white space too), after text
    /// already on the line.
    #[test]
    fn echoed_values_appended_are_the_values_made_alone() {
        let old_clean = |v: &str, max: usize| -> String {
            v.chars()
                .filter(|c| !matches!(c, '*' | '~' | ':' | '^') && !c.is_control())
                .take(max)
                .collect::<String>()
                .trim()
                .to_string()
        };
        let old_seg_id = |v: &str| -> String {
            let id: String = v
                .chars()
                .filter(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
                .take(3)
                .collect();
            if id.len() < 2 {
                "ZZZ".into()
            } else {
                id
            }
        };
        let parts = [
            "", " ", "\u{3000}", "\t", "*", "~", "A", "b", "7", "é", "\u{85}", " x ", ":^", "N1",
        ];
        for a in parts {
            for b in parts {
                for c in parts {
                    let v = format!("{a}{b}{c}{b}");
                    for max in [0, 1, 2, 3, 9] {
                        let mut line = String::from("AK2*");
                        push_clean(&mut line, &v, max);
                        assert_eq!(line, format!("AK2*{}", old_clean(&v, max)), "{v:?} {max}");
                    }
                    let mut line = String::from("AK3*");
                    push_seg_id(&mut line, &v);
                    assert_eq!(line, format!("AK3*{}", old_seg_id(&v)), "{v:?}");
                }
            }
        }
    }

    #[test]
    fn groups_are_answered_in_their_own_release_where_we_can() {
        let v = |g: &str| {
            let a = group_version(g);
            (a.is_999, a.gs08)
        };
        assert_eq!(v("003050"), (false, "003050".into()));
        assert_eq!(v("004010VICS"), (false, "004010".into()));
        assert_eq!(v("004060"), (false, "004060".into()));
        assert_eq!(v("003010"), (false, "003040".into()));
        assert_eq!(v("002001"), (false, "003040".into()));
        assert_eq!(v("005010X222A1"), (true, "005010X231A1".into()));
        assert_eq!(v("007010"), (true, "005010X231A1".into()));
        assert_eq!(v(""), (false, "004010".into()));
        assert_eq!(v("4010"), (false, "004010".into()));
    }

    #[test]
    fn ack_interchange_version_follows_the_inbound_one() {
        assert_eq!(isa_version("00305"), ("00305", "U"));
        assert_eq!(isa_version("00401"), ("00401", "U"));
        assert_eq!(isa_version("00403"), ("00401", "U"));
        assert_eq!(isa_version("00501"), ("00501", "^"));
        assert_eq!(isa_version("00000"), ("00401", "U"));
        assert_eq!(isa_version("abc"), ("00401", "U"));
    }
}
