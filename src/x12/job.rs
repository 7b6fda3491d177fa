//! The pure job of one transaction set: SE checks, structure and element validation against
//! the set's definition, the map to a canonical record, and the AK3/AK4/AK5 codes the
//! acknowledgement needs.
//!
//! It runs on a rayon worker, so it owns its segments and reads only the shared, immutable
//! [`Registry`]; everything the 997/999 needs later is put into `Evaluation::detail`, which
//! the ledger keeps and hands back to `finish`.

use std::sync::Arc;

use serde_json::json;

use crate::unit::{Evaluation, LineVerdict, Reason};

use super::defs::{self, PartnerDef, Registry, Unmapped};
use super::segments::{Delims, Segment};
use super::{map, validate};

/// What the jobs of one functional group's sets share, made at its first set: copying it
/// into every job was half a dozen allocations a set on the reading thread, freed again on
/// a worker.
#[derive(Debug)]
pub(crate) struct SetShared {
    pub(crate) reg: Arc<Registry>,
    pub(crate) gs08: String,
    pub(crate) sender: String,
    pub(crate) partner: PartnerDef,
    /// Where the group is in the file, `ISA <control> / GS <GS06>`: the start of every
    /// locator its sets' segments are shown with.
    pub(crate) locator: String,
    /// The interchange only: a claim per set as well (`…:<GS06>:<ST02>`) named the
    /// interchange too, and was taken with it by the same unit, so it was held elsewhere
    /// only where the interchange's claim was; it decided nothing and made over a quarter
    /// of an X12 file's ledger.
    pub(crate) claims: Vec<String>,
}

/// The pure validate-and-map job of one transaction set.
pub(crate) struct SetJob {
    pub(crate) shared: Arc<SetShared>,
    pub(crate) delims: Delims,
    pub(crate) interchange_rejected: Option<Reason>,
    pub(crate) dropped: u64,
    pub(crate) limit: usize,
    pub(crate) byte_limit: usize,
    /// Shared with the unit's [`crate::unit::ShowLine`], which shows them as lines.
    pub(crate) segs: Arc<Vec<Segment>>,
}

impl SetJob {
    pub(crate) fn run(self) -> Evaluation {
        let mut ev = Evaluation {
            verdicts: vec![LineVerdict::Ok; self.segs.len()],
            claims: self.shared.claims.clone(),
            ..Evaluation::default()
        };
        let mut issues: Vec<validate::Issue> = Vec::new();
        let mut ak5: Vec<u8> = Vec::new();
        let st01 = self.segs.first().map_or("", |s| s.el(1));
        let st02 = self.segs.first().map_or("", |s| s.el(2));
        self.envelope_errors(&mut ev, &mut ak5);
        if let Some(se) = self.segs.last().filter(|s| s.is("SE")) {
            self.check_se(se, st02, &mut ev, &mut ak5, &mut issues);
        }
        check_st02(st02, &mut ak5, &mut issues);
        let def = self.shared.reg.set_for(st01, &self.shared.gs08);
        ev.key = def
            .and_then(|d| d.map.as_ref())
            .and_then(|m| map::document_key(m, &self.segs, &self.delims));
        let mut note = match def {
            Some(def) => {
                self.validate_segments(def, &mut issues);
                None
            }
            None => Some(self.no_definition(st01, &mut ev, &mut ak5)),
        };
        apply_issues(&issues, &mut ev, &mut ak5);
        let rejected = ev.is_rejected();
        if !rejected {
            self.map_accepted(def, st01, &mut ev, &mut note);
        }
        if ev.is_rejected() {
            // Only a set that is accepted is "accepted unmapped" or worth a review.
            ev.unmapped = false;
            ev.hold = None;
        }
        let mapping_failed = !rejected && ev.is_rejected();
        ev.detail = ack_detail(
            &mut issues,
            &ak5,
            note.as_deref(),
            mapping_failed,
            ev.unmapped,
        );
        if matches!(st01, "997" | "999") && !rejected {
            ev.detail["acknowledged"] = acknowledged(&self.segs);
        }
        ev
    }

    /// Refusals from outside the set's own segments: a bad ISA/GS, or a set cut at the size limit.
    fn envelope_errors(&self, ev: &mut Evaluation, ak5: &mut Vec<u8>) {
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
    }

    /// SE01's segment count and SE02's control number, unless the partner tolerates a mismatch.
    fn check_se(
        &self,
        se: &Segment,
        st02: &str,
        ev: &mut Evaluation,
        ak5: &mut Vec<u8>,
        issues: &mut Vec<validate::Issue>,
    ) {
        // SE01 counts ST..SE inclusive.
        let count = self.segs.len() as u64 + self.dropped;
        if se.el(1).parse::<u64>().ok() != Some(count) {
            if self.shared.partner.tolerates("se01-count") {
                ev.tolerated.push("x12-se01-count".into());
            } else {
                ak5.push(4);
                let msg = format!(
                    "SE01 declares '{}' segments but the set has {count}",
                    se.el(1)
                );
                let at = (self.segs.len() - 1, "SE", 1);
                issues.push(envelope_issue(at, 7, se.el(1), "x12-se01-count", msg));
            }
        }
        if se.el(2) != st02 {
            if defs::same_number(se.el(2), st02) && self.shared.partner.tolerates("control-padding")
            {
                ev.tolerated.push("x12-control-padding".into());
            } else if self.shared.partner.tolerates("se02-control") {
                ev.tolerated.push("x12-se02-control".into());
            } else {
                ak5.push(3);
                let msg = format!("SE02 '{}' does not match ST02 '{st02}'", se.el(2));
                let at = (self.segs.len() - 1, "SE", 2);
                issues.push(envelope_issue(at, 7, se.el(2), "x12-se02-control", msg));
            }
        }
    }

    /// The set's structure and the values of every segment its definition checks.
    fn validate_segments(&self, def: &defs::SetDef, issues: &mut Vec<validate::Issue>) {
        validate::structure(def, &self.segs, issues);
        // Structure ids have two or three characters, so every known id packs.
        for (i, s) in self.segs.iter().enumerate() {
            if let Some(sd) = def.checked.get(&s.code()) {
                validate::elements(sd, i, s, &self.delims, issues);
            }
        }
    }

    /// Maps a set nothing refused, or notes that its definition has no map.
    fn map_accepted(
        &self,
        def: Option<&defs::SetDef>,
        st01: &str,
        ev: &mut Evaluation,
        note: &mut Option<String>,
    ) {
        if let Some(m) = def.and_then(|d| d.map.as_ref()) {
            match map::map_set(m, &self.segs, &self.delims, &self.shared.sender) {
                Ok(r) => ev.records.push(r),
                Err(r) => {
                    ev.unit_errors.push(r);
                }
            }
        }
        if note.is_none() && def.is_some_and(|d| d.map.is_none()) {
            // Validated in full but mapped to nothing (an inbound 997/999): accepted
            // unmapped as well, whatever the partner says about sets we cannot read.
            ev.unmapped = true;
            *note = Some(format!(
                "transaction set {st01} is validated but has no map"
            ));
        }
    }
}

/// ST02's length, which the standard fixes at 4-9 characters.
fn check_st02(st02: &str, ak5: &mut Vec<u8>, issues: &mut Vec<validate::Issue>) {
    if st02.len() < 4 || st02.len() > 9 {
        ak5.push(7);
        let code = if st02.len() < 4 { 4 } else { 5 };
        let msg = "ST02 must be 4-9 characters".to_string();
        issues.push(envelope_issue((0, "ST", 2), code, st02, "x12-length", msg));
    }
}

/// An error in an element of ST or SE (`at`: the segment's index and id, the element's
/// position), AK304 code 8 with AK403 `code`; the value is echoed to 20 characters.
fn envelope_issue(
    at: (usize, &str, usize),
    code: u8,
    value: &str,
    rule: &str,
    msg: String,
) -> validate::Issue {
    let echo: String = value.chars().take(20).collect();
    validate::element_issue(at, code, rule, (echo.clone(), echo), msg)
}

/// SE01 and SE02 mismatches: the AK5 code (4 / 3) tells them, as the standard and pyx12
/// do, so they are neither an AK3 nor a reason for AK5 code 5.
fn told_by_ak5_alone(issue: &validate::Issue) -> bool {
    matches!(
        issue.reason.rule.as_str(),
        "x12-se01-count" | "x12-se02-control"
    )
}

/// Makes the issues verdicts: AK5 5 beyond SE01/SE02, the first issue of a segment rejects it.
fn apply_issues(issues: &[validate::Issue], ev: &mut Evaluation, ak5: &mut Vec<u8>) {
    if issues.iter().any(|i| !told_by_ak5_alone(i)) && !ak5.contains(&5) {
        ak5.push(5);
    }
    for issue in issues {
        if issue.set_level {
            ev.unit_errors.push(issue.reason.clone());
        } else if let Some(v) = ev.verdicts.get_mut(issue.seg) {
            if matches!(v, LineVerdict::Ok) {
                *v = LineVerdict::rejected(issue.reason.clone());
            }
        }
    }
}

/// The ledger detail the 997/999 is built from later; `Null` when there is nothing to say.
fn ack_detail(
    issues: &mut [validate::Issue],
    ak5: &[u8],
    note: Option<&str>,
    mapping_failed: bool,
    unmapped: bool,
) -> serde_json::Value {
    // The ack lists errors in segment order, as a reader of the file would meet them.
    issues.sort_by_key(|i| i.seg);
    // The reject report still shows SE01/SE02 mismatches on the SE segment.
    let ak3: Vec<serde_json::Value> = issues
        .iter()
        .filter(|i| !told_by_ak5_alone(i))
        .map(|i| {
            json!({
                "seg": i.seg_id,
                "pos": i.seg + 1,
                "code": i.code,
                "element": i.element,
            })
        })
        .collect();
    // Kept in the unit's ledger row for the acknowledgement, which knows each set's
    // ST01/ST02 from the reader: members that say nothing (no errors, not unmapped) are
    // left out and read back as absent, and a set with nothing to say keeps no detail
    // (naming ST01/ST02 there was a tenth of an X12 file's ledger).
    let mut detail = serde_json::Map::new();
    for (name, value, say) in [
        ("ak5", json!(ak5), !ak5.is_empty()),
        ("ak3", json!(ak3), !ak3.is_empty()),
        ("mapping_failed", json!(true), mapping_failed),
        ("unmapped", json!(true), unmapped),
        ("note", json!(note), note.is_some()),
    ] {
        if say {
            detail.insert(name.into(), value);
        }
    }
    match detail.is_empty() {
        true => serde_json::Value::Null,
        false => serde_json::Value::Object(detail),
    }
}

impl SetJob {
    /// A set whose ST01/GS08 has no definition: only its envelope and SE were checked.
    /// The partner's `unmapped` setting decides whether it passes, waits for a person or is
    /// refused as "transaction set not supported" (AK5 code 1). Returns the ledger note.
    fn no_definition(&self, st01: &str, ev: &mut Evaluation, ak5: &mut Vec<u8>) -> String {
        let what = format!(
            "no definition for transaction set {st01} version {}",
            self.shared.gs08
        );
        let partner = if self.shared.sender.is_empty() {
            "(no ISA06)"
        } else {
            self.shared.sender.as_str()
        };
        match self.shared.partner.unmapped() {
            Unmapped::Accept => {
                ev.unmapped = true;
                format!("{what}: envelope and SE checked, accepted unmapped")
            }
            Unmapped::Hold => {
                ev.unmapped = true;
                ev.hold = Some(format!(
                    "transaction set {st01} has no definition; partner {partner} holds unmapped sets for review"
                ));
                format!("{what}: envelope and SE checked, accepted unmapped, file held for review")
            }
            Unmapped::Reject => {
                ak5.push(1);
                ev.unit_errors.push(
                    Reason::new(
                        "x12-no-definition",
                        format!(
                            "{what}: partner {partner} rejects sets that cannot be mapped (unmapped = \"reject\")"
                        ),
                    )
                    .field("ST01")
                    .value(st01.chars().take(20).collect::<String>()),
                );
                format!("{what}: rejected as not supported")
            }
        }
    }
}

/// What an inbound 997/999 says: the group it answers and each set's status, kept in the
/// ledger detail so an operator can see which of our documents the partner rejected.
fn acknowledged(segs: &[Segment]) -> serde_json::Value {
    let mut sets = Vec::new();
    let mut group = json!(null);
    let mut current: Option<serde_json::Value> = None;
    for s in segs {
        match s.id() {
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
