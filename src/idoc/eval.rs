//! The pure job of one IDoc: check it against its type definition and map it to a
//! canonical record.
//!
//! Runs on a rayon worker, so it only reads the [`RawIdoc`] it owns and the shared
//! [`Catalog`]. Segment problems become `Rejected` verdicts on the segment's line (the
//! ledger shows exactly which segment broke which rule); problems of the IDoc as a whole
//! (missing control record, unknown type, missing mandatory segment, mapping errors) become
//! unit errors. The control record goes into `detail` so the STATUS acknowledgement can
//! name the IDoc even when it was rejected.

use serde_json::{json, Map, Value};

use super::def::{is_customer_segment, Catalog, MessageDef, SegDef, TypeDef, CONTROL, ROOT};
use super::map::{document_key, map_record, MapError, Tree};
use super::reader::{RawIdoc, Seg, Segment};
use crate::format::defs::DefMap;
use crate::unit::{mask, Evaluation, LineVerdict, Reason};

/// Control record fields kept in the ledger detail: those the STATUS acknowledgement
/// names the IDoc and routes its answer by; nothing else reads it. (Nine more, and the
/// IDoc's ordinal, which its label names, were a twelfth of an IDoc file's ledger.)
pub const DC_FIELDS: &[&str] = &[
    "DOCNUM", "IDOCTYP", "MANDT", "SNDPOR", "SNDPRT", "SNDPRN", "RCVPOR", "RCVPRT", "RCVPRN",
];

/// Longest DOCNUM: NUMC(16) in SAP.
const DOCNUM_LEN: usize = 16;

/// An IDoc number SAP can match a STATUS to: NUMC 16, 1 to 16 digits.
pub fn valid_docnum(docnum: &str) -> bool {
    (1..=DOCNUM_LEN).contains(&docnum.len()) && docnum.bytes().all(|b| b.is_ascii_digit())
}

fn val<'a>(s: &Seg<'a>, f: &str) -> &'a str {
    s.field(f).map(str::trim).unwrap_or("")
}

fn capped(v: &str) -> String {
    crate::unit::cap_raw(v, 80)
}

pub fn evaluate(catalog: &Catalog, idoc: &RawIdoc) -> Evaluation {
    let mut ev = Evaluation {
        verdicts: vec![LineVerdict::Ok; idoc.segments.len()],
        ..Evaluation::default()
    };
    let dc = idoc.get(0).filter(|s| s.name == CONTROL);
    ev.detail = control_detail(dc);

    if let Some(r) = size_problem(idoc) {
        ev.unit_errors.push(r);
        return ev;
    }
    let Some(dc) = dc else {
        ev.unit_errors.push(Reason::new(
            "idoc-control-record",
            format!(
                "IDoc {} does not start with an EDI_DC40 control record",
                idoc.ordinal
            ),
        ));
        return ev;
    };
    ev.verdicts[0] = LineVerdict::Skipped("control record".into());
    check_docnum(dc, &mut ev);
    for (i, s) in idoc.segments.iter().enumerate().skip(1) {
        if s.name == CONTROL {
            ev.verdicts[i] = LineVerdict::rejected(Reason::new(
                "idoc-control-record",
                "a second EDI_DC40 in one IDoc",
            ));
        }
    }
    let Some((td, msg)) = definition(catalog, dc, &mut ev) else {
        return ev;
    };
    let tree = Tree::new(idoc);
    ev.key = document_key(msg, &tree);
    validate_structure(td, idoc, &mut ev);
    if ev.is_rejected() {
        return ev;
    }
    match map_record(msg, &tree) {
        Ok(r) => ev.records.push(r),
        Err(e) => blame(idoc, &mut ev, e),
    }
    ev
}

/// The ledger detail: the control record's [`DC_FIELDS`] that are not blank.
fn control_detail(dc: Option<Seg>) -> Value {
    let mut detail = Map::new();
    if let Some(dc) = dc {
        for f in DC_FIELDS {
            let v = val(&dc, f);
            if !v.is_empty() {
                detail.insert((*f).into(), json!(v));
            }
        }
    }
    Value::Object(detail)
}

/// Why the reader gave up buffering this IDoc (too many bytes, then too many segments).
fn size_problem(idoc: &RawIdoc) -> Option<Reason> {
    if idoc.over_bytes {
        return Some(Reason::new(
            "idoc-too-large",
            format!(
                "IDoc {} holds more than {} bytes of field data (limits.max_unit_lines × {} \
                 bytes per segment); it was rejected without being buffered",
                idoc.ordinal,
                idoc.max_bytes,
                super::reader::SEGMENT_BUDGET
            ),
        ));
    }
    if idoc.dropped > 0 {
        return Some(Reason::new(
            "idoc-too-large",
            format!(
                "IDoc {} has {} segments, over the limit of {} (limits.max_unit_lines); it was \
                 rejected without being buffered",
                idoc.ordinal,
                idoc.segments.len() as u64 + idoc.dropped,
                idoc.max_segments
            ),
        ));
    }
    None
}

/// Claims the IDoc by its DOCNUM, or says in the detail why no STATUS can refer to it (an
/// invalid one also rejects the control record).
fn check_docnum(dc: Seg, ev: &mut Evaluation) {
    let docnum = val(&dc, "DOCNUM");
    let sndprn = val(&dc, "SNDPRN");
    if docnum.is_empty() {
        // SAP assigns DOCNUM on receipt, so partners sometimes send none; the business key
        // still guards against doubles, but there is no IDoc-level claim.
        ev.tolerated.push("idoc-docnum-empty".into());
        ev.detail["status_ack"] =
            json!("not sent: DOCNUM is empty, so no STATUS could refer to this IDoc");
    } else if !valid_docnum(docnum) {
        ev.verdicts[0] = LineVerdict::rejected(
            dc.place(
                "DOCNUM",
                Reason::new(
                    "idoc-docnum",
                    "EDI_DC40-DOCNUM must be numeric with at most 16 digits (NUMC 16)",
                )
                .field("DOCNUM")
                .value(capped(docnum)),
            ),
        );
        ev.detail["status_ack"] = json!(format!(
            "not sent: DOCNUM '{}' is not an IDoc number (1-16 digits); the sender's SAP \
             system could not match a STATUS to it",
            capped(docnum)
        ));
    } else {
        ev.claims.push(format!(
            "idoc:{sndprn}:{docnum:0>width$}",
            width = DOCNUM_LEN
        ));
    }
}

/// The type definition and message mapping the control record names; `None` once an
/// unknown IDOCTYP or MESTYP has been put on the control record.
fn definition<'c>(
    catalog: &'c Catalog,
    dc: Seg,
    ev: &mut Evaluation,
) -> Option<(&'c TypeDef, &'c MessageDef)> {
    let idoctyp = val(&dc, "IDOCTYP");
    let mestyp = val(&dc, "MESTYP");
    let Some(td) = catalog.get(idoctyp) else {
        let r = Reason::new(
            "idoc-unknown-type",
            format!(
                "IDoc type '{}' has no definition (known: {})",
                capped(idoctyp),
                catalog.type_names().join(", ")
            ),
        )
        .field("IDOCTYP")
        .value(capped(idoctyp));
        reject_control(dc, ev, "IDOCTYP", r);
        return None;
    };
    let Some(msg) = td.message(mestyp) else {
        let r = Reason::new(
            "idoc-unknown-message",
            format!(
                "message type '{}' is not mapped for {idoctyp} in {} (mapped: {})",
                capped(mestyp),
                td.source,
                td.mestyps().join(", ")
            ),
        )
        .field("MESTYP")
        .value(capped(mestyp));
        reject_control(dc, ev, "MESTYP", r);
        return None;
    };
    Some((td, msg))
}

/// A problem with a control record field goes on the control record's line, at the field
/// (as a unit error it would land on the first data segment, since the control record is
/// otherwise a skipped line); the control record's first problem wins.
fn reject_control(dc: Seg, ev: &mut Evaluation, field: &str, r: Reason) {
    let r = dc.place(field, r);
    match ev.verdicts.first_mut() {
        Some(v) if !matches!(v, LineVerdict::Rejected(_)) => *v = LineVerdict::rejected(r),
        _ => ev.unit_errors.push(r),
    }
}

/// A mapping error goes on the segment whose field holds the offending value, placed at
/// the field; one with no single value to blame (contract, empty key) stays the IDoc's.
fn blame(idoc: &RawIdoc, ev: &mut Evaluation, e: MapError) {
    if let Some((i, field)) = &e.origin {
        if let (Some(s), Some(v)) = (idoc.get(*i), ev.verdicts.get_mut(*i)) {
            if matches!(v, LineVerdict::Ok) {
                *v = LineVerdict::rejected(s.place(field, e.reason));
                return;
            }
        }
    }
    ev.unit_errors.push(e.reason);
}

/// The first required field missing or blank, else the first field over its length,
/// placed at the field's element when the field is there.
fn field_problem(s: Seg, sd: &SegDef) -> Option<Reason> {
    if let Some(f) = sd.required.iter().find(|f| val(&s, f).is_empty()) {
        let r = Reason::new(
            "required",
            format!("segment {}: field {f} is required", s.name),
        )
        .field(f.clone());
        return Some(s.place(f, r));
    }
    for f in s.fields() {
        let Some(&max) = sd.fields.get(f.name) else {
            continue;
        };
        let len = f.value.trim_end().chars().count();
        if len > max as usize {
            let value = if sd.sensitive.iter().any(|n| n == f.name) {
                mask(f.value.trim())
            } else {
                capped(f.value)
            };
            let r = Reason::new(
                "idoc-field-length",
                format!(
                    "segment {}: field {} is {len} characters, max {max}",
                    s.name, f.name
                ),
            )
            .field(f.name)
            .value(value);
            return Some(s.place(f.name, r));
        }
    }
    None
}

fn validate_structure(td: &TypeDef, idoc: &RawIdoc, ev: &mut Evaluation) {
    let segs = &idoc.segments;
    // (parent index or root, child name) → occurrences so far.
    // Keyed by definition names (and parent index): a `DefMap`, sized for the IDoc.
    let mut counts: Counts<'_> = DefMap::with_capacity_and_hasher(segs.len(), Default::default());
    // Segments under a customer segment are the customer's business too.
    let mut customer = vec![false; segs.len()];
    for (i, s) in idoc.segs().enumerate() {
        if s.name == CONTROL {
            if s.parent.is_some() {
                ev.verdicts[i] = LineVerdict::rejected(Reason::new(
                    "idoc-segment-hierarchy",
                    "EDI_DC40 must be directly under <IDOC>",
                ));
            }
            continue;
        }
        if s.parent.is_some_and(|p| customer[p]) {
            customer[i] = true;
            continue;
        }
        let Some(sd) = td.segments.get(s.name.as_str()) else {
            if td.customer_segments && is_customer_segment(&s.name) {
                customer[i] = true;
            } else {
                ev.verdicts[i] = LineVerdict::rejected(unknown_segment(td, &s));
            }
            continue;
        };
        if let Some(r) = segment_problem(s, sd, segs, &mut counts) {
            ev.verdicts[i] = LineVerdict::rejected(r);
        }
    }
    // Mandatory children of the root and of every present, known parent.
    check_mandatory(td, idoc, &counts, None, None, ev);
    for (i, s) in segs.iter().enumerate() {
        if !customer[i] && td.segments.contains_key(s.name.as_str()) {
            check_mandatory(td, idoc, &counts, Some(i), Some(&s.name), ev);
        }
    }
}

/// Occurrences of each segment so far, by parent index (`None`: the root) and name.
type Counts<'t> = DefMap<(Option<usize>, &'t str), u32>;

/// The rejection of a segment the type does not define.
fn unknown_segment(td: &TypeDef, s: &Segment) -> Reason {
    Reason::new(
        "idoc-unknown-segment",
        format!(
            "segment {} is not part of {} ({})",
            s.name,
            td.types.join("/"),
            td.source
        ),
    )
    .value(s.name.to_string())
}

/// The first problem of a defined segment: under the wrong parent, once too often under
/// its parent (counted only when the parent is right), or one of its fields.
fn segment_problem<'t>(
    s: Seg,
    sd: &'t SegDef,
    segs: &[Segment],
    counts: &mut Counts<'t>,
) -> Option<Reason> {
    let parent_name = s.parent.map(|p| segs[p].name.as_str());
    if sd.parent.as_deref() != parent_name {
        return Some(Reason::new(
            "idoc-segment-hierarchy",
            format!(
                "segment {} belongs under {}, found under {}",
                s.name,
                sd.parent.as_deref().unwrap_or(ROOT),
                parent_name.unwrap_or(ROOT)
            ),
        ));
    }
    let c = counts.entry((s.parent, sd.name.as_str())).or_insert(0);
    *c += 1;
    if *c > sd.max {
        return Some(Reason::new(
            "idoc-occurrence",
            format!(
                "segment {} occurs more than {} time(s) under {}",
                s.name,
                sd.max,
                parent_name.unwrap_or(ROOT)
            ),
        ));
    }
    field_problem(s, sd)
}

/// Reports each mandatory child of `parent` (`None`: the root; `pname` its name) that
/// occurs fewer times than its minimum.
fn check_mandatory(
    td: &TypeDef,
    idoc: &RawIdoc,
    counts: &Counts<'_>,
    parent: Option<usize>,
    pname: Option<&str>,
    ev: &mut Evaluation,
) {
    let segs = &idoc.segments;
    let kids = match pname {
        Some(name) => td.mandatory_children.get(name),
        None => Some(&td.mandatory_at_root),
    };
    let Some(kids) = kids else {
        return;
    };
    for (kid, min) in kids {
        let have = counts.get(&(parent, kid.as_str())).copied().unwrap_or(0);
        if have < *min {
            let under = match parent {
                Some(p) => segs[p]
                    .locator()
                    .unwrap_or_else(|| segs[p].name.to_string()),
                None => format!("IDoc {}", idoc.ordinal),
            };
            ev.unit_errors.push(
                Reason::new(
                    "idoc-missing-segment",
                    format!(
                        "required segment {kid} missing under {under}: {have} found, at least {min} needed"
                    ),
                )
                .field(kid.clone()),
            );
        }
    }
}
