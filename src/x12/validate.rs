//! Syntax validation of one transaction set against its definition.
//!
//! Produces [`Issue`]s that serve two readers at once: the reject report (a [`Reason`] with
//! rule, field such as `BEG03`, value and message, on the offending segment) and the
//! 997/999 (the AK3/IK3 segment error code and AK4/IK4 element error code the standard
//! defines). Keeping both in one value is what makes the acknowledgement reflect exactly
//! the errors the report shows.

use super::defs::{ElType, Node, SegmentDef, SetDef};
use super::segments::{Delims, Segment};
use crate::format::defs::CodeTable;
use crate::unit::Reason;

/// An element-level error (AK4 / IK4).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ElementIssue {
    /// 1-based element position.
    pub pos: usize,
    pub comp: Option<usize>,
    /// AK403 / IK403 code.
    pub code: u8,
    pub value: String,
}

/// A segment-level error (AK3 / IK3) with the reason shown in the reject report.
#[derive(Debug, Clone)]
pub struct Issue {
    /// Index of the segment in the set (0 = ST). For a missing segment: where it was
    /// expected.
    pub seg: usize,
    /// The segment id the AK3 names (the missing one for code 3).
    pub seg_id: String,
    /// AK304 / IK304 code.
    pub code: u8,
    pub element: Option<ElementIssue>,
    pub reason: Reason,
    /// Belongs to the set, not one segment (missing segment).
    pub set_level: bool,
}

/// Checks segment order, loops, repeats and required segments.
pub fn structure(def: &SetDef, segs: &[Segment], out: &mut Vec<Issue>) {
    let mut i = 0usize;
    walk(def, &def.structure, segs, &mut i, out, true);
}

fn missing(node: &Node, at: usize, segs: &[Segment], out: &mut Vec<Issue>) {
    let id = node.first_id().to_string();
    let what = match node {
        Node::Loop { name, .. } => format!("required loop {name} (segment {id}) is missing"),
        Node::Seg { .. } => format!("required segment {id} is missing"),
    };
    let near = segs
        .get(at)
        .map(|s| format!(" before {} (segment {} of the set)", s.id(), at + 1))
        .unwrap_or_default();
    out.push(Issue {
        seg: at,
        seg_id: id.clone(),
        code: 3,
        element: None,
        reason: Reason::new("x12-missing-segment", format!("{what}{near}")).field(id),
        set_level: true,
    });
}

fn walk(
    def: &SetDef,
    body: &[Node],
    segs: &[Segment],
    i: &mut usize,
    out: &mut Vec<Issue>,
    top: bool,
) {
    with_counts(body.len(), |counts| {
        walk_in(def, body, counts, segs, i, out, top)
    });
}

/// [`walk`] with the body's occurrence counts at hand.
fn walk_in(
    def: &SetDef,
    body: &[Node],
    counts: &mut [u64],
    segs: &[Segment],
    i: &mut usize,
    out: &mut Vec<Issue>,
    top: bool,
) {
    let mut cur = 0usize;
    while let Some(seg) = segs.get(*i) {
        let found = (cur..body.len()).find(|&k| seg.is_code(body[k].first_code()));
        // Inside a loop, its trigger again starts the next iteration (the parent counts it).
        let found = match found {
            Some(0) if !top && counts.first().copied().unwrap_or(0) > 0 => None,
            f => f,
        };
        match found {
            Some(k) => {
                take_node(body, counts, cur, k, segs, i, out);
                cur = k;
            }
            None if !top => return,
            None => {
                let known = def.known_ids.contains(seg.id());
                let (code, rule, msg) = if known {
                    (
                        2,
                        "x12-unexpected-segment",
                        format!(
                            "segment {} is not expected here (out of order or in the wrong loop)",
                            seg.id()
                        ),
                    )
                } else {
                    (
                        1,
                        "x12-unknown-segment",
                        format!(
                            "segment {} is not defined for transaction set {}",
                            seg.id(),
                            def.id
                        ),
                    )
                };
                out.push(seg_issue(*i, seg, code, rule, msg));
                *i += 1;
            }
        }
    }
    for node in body
        .iter()
        .skip(cur + usize::from(counts.get(cur).copied().unwrap_or(0) > 0))
    {
        if node.required() {
            missing(node, segs.len().saturating_sub(1), segs, out);
        }
    }
}

/// Segment `segs[*i]` matched `body[k]`: reports the required nodes skipped since `cur`,
/// counts the occurrence (and any excess repeat), consumes the segment, and for a loop
/// walks the rest of its body (the trigger is consumed).
fn take_node(
    body: &[Node],
    counts: &mut [u64],
    cur: usize,
    k: usize,
    segs: &[Segment],
    i: &mut usize,
    out: &mut Vec<Issue>,
) {
    let Some(seg) = segs.get(*i) else { return };
    for (j, node) in body.iter().enumerate().take(k).skip(cur) {
        if node.required() && counts[j] == 0 {
            missing(node, *i, segs, out);
        }
    }
    counts[k] += 1;
    let node = &body[k];
    if counts[k] > node.max() {
        let (code, rule, msg) = match node {
            Node::Loop { name, max, .. } => (
                4,
                "x12-loop-repeat",
                format!("loop {name} occurs more than {max} times"),
            ),
            Node::Seg { max, .. } => (
                5,
                "x12-segment-repeat",
                format!("segment {} occurs more than {max} times", seg.id()),
            ),
        };
        out.push(seg_issue(*i, seg, code, rule, msg));
    }
    *i += 1;
    if let Node::Loop { body: inner, .. } = node {
        walk_loop(inner, segs, i, out);
    }
}

/// Walks one iteration of a loop whose trigger (`body[0]`) was just consumed.
fn walk_loop(body: &[Node], segs: &[Segment], i: &mut usize, out: &mut Vec<Issue>) {
    with_counts(body.len(), |counts| {
        if let Some(c) = counts.first_mut() {
            *c = 1;
        }
        walk_loop_in(body, counts, segs, i, out)
    });
}

/// [`walk_loop`] with the body's occurrence counts at hand, its trigger's counted.
fn walk_loop_in(
    body: &[Node],
    counts: &mut [u64],
    segs: &[Segment],
    i: &mut usize,
    out: &mut Vec<Issue>,
) {
    let mut cur = 1usize;
    while let Some(seg) = segs.get(*i) {
        let Some(k) = (cur..body.len()).find(|&k| seg.is_code(body[k].first_code())) else {
            break;
        };
        take_node(body, counts, cur, k, segs, i, out);
        cur = k;
    }
    for (j, node) in body.iter().enumerate().skip(1) {
        if j > cur && node.required() && counts[j] == 0 {
            missing(node, *i, segs, out);
        }
    }
}

/// Runs `f` with `n` zeroed occurrence counts, on the stack for a body of the size
/// definitions have (the 850's heading and PO1 loop have about 60 nodes): a list made for
/// every loop iteration was eight of an 850's 29 allocations on the workers. A kilobyte a
/// nesting level, of which definitions have a handful.
fn with_counts<R>(n: usize, f: impl FnOnce(&mut [u64]) -> R) -> R {
    const ON_STACK: usize = 128;
    if n <= ON_STACK {
        f(&mut [0u64; ON_STACK][..n])
    } else {
        f(&mut vec![0u64; n])
    }
}

/// A problem with a whole segment (unknown, out of place, repeated too often).
fn seg_issue(seg_idx: usize, seg: &Segment, code: u8, rule: &str, msg: String) -> Issue {
    Issue {
        seg: seg_idx,
        seg_id: seg.id().to_string(),
        code,
        element: None,
        reason: Reason::new(rule, msg).field(seg.id().to_string()),
        set_level: false,
    }
}

fn el_issue(
    seg_idx: usize,
    seg: &Segment,
    pos: usize,
    code: u8,
    rule: &str,
    value: &str,
    msg: String,
) -> Issue {
    let echo = value.chars().take(99).collect();
    let shown = value.chars().take(80).collect();
    element_issue((seg_idx, seg.id(), pos), code, rule, (echo, shown), msg)
}

/// An error in an element (`at`: the segment's index and id, the element's position),
/// AK304 code 8 with AK403 `code`; `value`: the bad value as the acknowledgement (AK404)
/// and the report repeat it.
pub(super) fn element_issue(
    at: (usize, &str, usize),
    code: u8,
    rule: &str,
    value: (String, String),
    msg: String,
) -> Issue {
    let (seg, seg_id, pos) = at;
    let (echo, shown) = value;
    Issue {
        seg,
        seg_id: seg_id.to_string(),
        code: 8,
        element: Some(ElementIssue {
            pos,
            comp: None,
            code,
            value: echo,
        }),
        reason: Reason::new(rule, msg)
            .field(format!("{seg_id}{pos:02}"))
            .value(shown),
        set_level: false,
    }
}

/// Checks the elements of one segment against its definition in the dictionary (segments
/// it does not know are checked for structure only).
pub fn elements(def: &SegmentDef, seg_idx: usize, seg: &Segment, d: &Delims, out: &mut Vec<Issue>) {
    let first = out.len();
    check_element_values(def, seg_idx, seg, d, out);
    // Personal data is not repeated in the ledger, the reports, the log or the ack.
    for issue in &mut out[first..] {
        let Some(el) = issue.element.as_mut() else {
            continue;
        };
        let pos = el.pos;
        if !def.sensitive.contains(&pos) {
            continue;
        }
        // The acknowledgement's copy of the bad element (AK404/IK404) is optional: left out.
        el.value.clear();
        let r = &mut issue.reason;
        r.value = r.value.as_deref().map(crate::unit::mask);
        // The message quotes the value it found wrong as `'…'` (each repetition on its own):
        // only that quote is masked, not the same characters elsewhere in the message.
        let rep = d.rep.map(|r| r.as_char());
        for v in seg
            .el(pos)
            .split(|c| Some(c) == rep)
            .filter(|v| !v.is_empty())
        {
            let masked = format!("'{}'", crate::unit::mask(v));
            r.message = r.message.replace(&format!("'{v}'"), &masked);
        }
    }
}

/// The element checks of `elements`, before personal data in what they found is masked.
fn check_element_values(
    def: &SegmentDef,
    seg_idx: usize,
    seg: &Segment,
    d: &Delims,
    out: &mut Vec<Issue>,
) {
    let n = seg.elements().len();
    if n > def.elements.len() {
        let pos = def.elements.len() + 1;
        out.push(el_issue(
            seg_idx,
            seg,
            pos,
            3,
            "x12-too-many-elements",
            seg.el(pos),
            format!(
                "{} has {n} elements, at most {} are defined",
                seg.id(),
                def.elements.len()
            ),
        ));
    }
    check_defined_elements(def, seg_idx, seg, d, n, out);
    check_syntax_notes(def, seg_idx, seg, out);
}

/// Each defined element's presence, type, length and code list; `n` is how many the segment has.
fn check_defined_elements(
    def: &SegmentDef,
    seg_idx: usize,
    seg: &Segment,
    d: &Delims,
    n: usize,
    out: &mut Vec<Issue>,
) {
    // The segment's own elements, then empty ones for those it leaves off up to the
    // last required one: asking `el(pos)` for each defined element bounds-checked and
    // sliced it again, and the optional ones past the end have nothing to check.
    let values = seg.elements().chain(std::iter::repeat(""));
    let through = n.max(def.required_through);
    for ((i, ed), value) in def.elements.iter().enumerate().take(through).zip(values) {
        let pos = i + 1;
        // The field name is only built on an error: this loop runs for every element.
        let field = || format!("{}{pos:02}", seg.id());
        if value.is_empty() {
            if ed.required {
                out.push(el_issue(
                    seg_idx,
                    seg,
                    pos,
                    1,
                    "x12-required",
                    "",
                    format!("{} is required", field()),
                ));
            }
            continue;
        }
        if ed.ty == super::defs::ElType::Composite {
            continue;
        }
        let check = |v| check_value(ed.ty, ed.min, ed.max, ed.codes.as_ref(), v).map(|e| (v, e));
        // A `char` pattern finds the separator with memchr; a closure decodes every char.
        let bad = match d.rep.map(|r| r.as_char()) {
            Some(rep) => value.split(rep).find_map(check),
            None => check(value),
        };
        if let Some((v, (code, rule, msg))) = bad {
            out.push(el_issue(
                seg_idx,
                seg,
                pos,
                code,
                rule,
                v,
                format!("{} {msg}", field()),
            ));
        }
    }
}

/// The segment's syntax notes (paired, required, conditional, exclusive, list conditional).
fn check_syntax_notes(def: &SegmentDef, seg_idx: usize, seg: &Segment, out: &mut Vec<Issue>) {
    let present = |e: usize| !seg.el(e).is_empty();
    for note in &def.syntax {
        let Some(&first) = note.els.first() else {
            continue;
        };
        let count = note.els.iter().filter(|&&e| present(e)).count();
        let bad = match note.kind {
            'P' => count > 0 && count < note.els.len(),
            'R' => count == 0,
            'C' => present(first) && count < note.els.len(),
            'E' => count > 1,
            'L' => present(first) && count < 2,
            _ => false,
        };
        if bad {
            let missing = note
                .els
                .iter()
                .copied()
                .find(|&e| !present(e))
                .unwrap_or(first);
            let code = if note.kind == 'E' { 10 } else { 2 };
            let shown = if note.kind == 'E' { first } else { missing };
            out.push(el_issue(
                seg_idx,
                seg,
                shown,
                code,
                "x12-syntax-note",
                seg.el(shown),
                format!(
                    "syntax note {} of {} violated ({})",
                    note.text,
                    seg.id(),
                    match note.kind {
                        'P' => "all or none of these elements must be present",
                        'R' => "at least one of these elements is required",
                        'C' => "if the first element is present, all the others are required",
                        'E' => "only one of these elements may be present",
                        _ => "if the first is present, at least one of the others is required",
                    }
                ),
            ));
        }
    }
}

/// Whether digits `v` are a CCYYMMDD date, or a YYMMDD one in 20YY: what chrono's
/// `%Y%m%d` accepts of them, read by hand (chrono interprets its pattern on every call,
/// and this runs for every date element of every set).
fn is_calendar_date(v: &str) -> bool {
    let b = v.as_bytes();
    let num = |at: usize, n: usize| {
        b[at..at + n]
            .iter()
            .fold(0u32, |acc, c| acc * 10 + u32::from(c.wrapping_sub(b'0')))
    };
    let (year, at) = match b.len() {
        8 => (num(0, 4), 4),
        6 => (2000 + num(0, 2), 2),
        _ => return false,
    };
    let Ok(year) = i32::try_from(year) else {
        return false;
    };
    chrono::NaiveDate::from_ymd_opt(year, num(at, 2), num(at + 2, 2)).is_some()
}

/// The AK4 code, rule and message for a bad value.
type Bad = (u8, &'static str, String);

/// The AK4 code, rule and message for a bad value, or `None` when it is fine.
fn check_value(
    ty: ElType,
    min: usize,
    max: usize,
    codes: Option<&CodeTable>,
    v: &str,
) -> Option<Bad> {
    // Nearly every value is ASCII: its length in characters is its length in bytes.
    let ascii = v.is_ascii();
    let len = match ty {
        ElType::N(_) | ElType::R => v.bytes().filter(|b| b.is_ascii_digit()).count(),
        _ if ascii => v.len(),
        _ => v.chars().count(),
    };
    let typed = match ty {
        ElType::N(_) => is_numeric(v),
        ElType::R => is_decimal(v),
        ElType::Dt => v.bytes().all(|b| b.is_ascii_digit()) && is_calendar_date(v),
        ElType::Tm => is_time(v),
        ElType::An | ElType::Id | ElType::Composite => !has_control(v, ascii),
    };
    if !typed {
        return Some(type_error(ty, v));
    }
    if len < min {
        return Some((4, "x12-length", format!("'{v}' is shorter than {min}")));
    }
    if len > max {
        return Some((5, "x12-length", format!("'{v}' is longer than {max}")));
    }
    check_code(codes, v)
}

fn is_numeric(v: &str) -> bool {
    let digits = v.strip_prefix('-').unwrap_or(v);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

fn is_decimal(v: &str) -> bool {
    let body = v.strip_prefix('-').unwrap_or(v);
    let dots = body.bytes().filter(|&b| b == b'.').count();
    !(body.is_empty()
        || dots > 1
        || !body.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        || body == ".")
}

/// Whether `v` is a valid time: HHMM, HHMMSS, HHMMSSD or HHMMSSDD.
fn is_time(v: &str) -> bool {
    let b = v.as_bytes();
    let num = |i: usize| -> Option<u32> {
        let s = v.get(i..i + 2)?;
        s.parse().ok()
    };
    b.iter().all(|c| c.is_ascii_digit())
        && matches!(v.len(), 4 | 6 | 7 | 8)
        && num(0).is_some_and(|h| h < 24)
        && num(2).is_some_and(|m| m < 60)
        && (v.len() < 6 || num(4).is_some_and(|s| s < 60))
}

/// Whether `v` has control characters (`ascii`: whether it is all ASCII).
fn has_control(v: &str, ascii: bool) -> bool {
    if ascii {
        v.bytes().any(|b| b.is_ascii_control())
    } else {
        v.chars().any(char::is_control)
    }
}

/// What [`check_value`] says of a value its type does not allow.
fn type_error(ty: ElType, v: &str) -> Bad {
    match ty {
        ElType::N(_) => (6, "x12-type", format!("'{v}' is not numeric")),
        ElType::R => (6, "x12-type", format!("'{v}' is not a decimal number")),
        ElType::Dt => (8, "x12-date", format!("'{v}' is not a valid date")),
        ElType::Tm => (9, "x12-time", format!("'{v}' is not a valid time")),
        ElType::An | ElType::Id | ElType::Composite => {
            (6, "x12-type", "contains control characters".to_string())
        }
    }
}

/// Whether `v` is one of `codes`, when the element has a code list.
fn check_code(codes: Option<&CodeTable>, v: &str) -> Option<Bad> {
    let codes = codes.filter(|c| !c.contains(v))?;
    Some((
        7,
        "x12-code",
        format!("'{v}' is not a valid code ({})", codes.named()),
    ))
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
