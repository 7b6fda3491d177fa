//! The pipeline's decisions, as pure functions in one place: a unit's status, a line's
//! status within its unit, a file's outcome under its policy, where its input goes, and
//! whether (and how) a person must act. Nothing here touches the disk or the ledger, so
//! every rule is tested on its own and never re-derived elsewhere.

use crate::format::{Policy, UnitStatus};
use crate::ledger::{Counts, FileRow, Outcome};
use crate::unit::{Evaluation, LineVerdict, Reason};

/// What the job and the duplicate check said about a unit.
#[derive(Debug, Clone, Copy, Default)]
pub struct UnitFacts {
    pub rejected: bool,
    /// Every line skipped and no record: a header, blank lines, an envelope.
    pub all_skipped: bool,
    pub duplicate: bool,
    /// Every record is master data identical to the version applied before.
    pub unchanged: bool,
    /// Only checked, no definition maps it (`Evaluation::unmapped`).
    pub unmapped: bool,
}

/// What a unit's own evaluation says (the duplicate check against the ledger comes later).
/// A verdict list shorter than the unit's lines means `Ok` for the rest.
pub fn unit_facts(eval: &Evaluation, line_count: usize) -> UnitFacts {
    let rejected = eval.is_rejected();
    let all_skipped = !rejected
        && eval.records.is_empty()
        && !eval.unmapped
        && eval.verdicts.len() >= line_count
        && eval.verdicts[..line_count]
            .iter()
            .all(|v| matches!(v, LineVerdict::Skipped(_)));
    UnitFacts {
        rejected,
        all_skipped,
        duplicate: false,
        unchanged: false,
        unmapped: eval.unmapped,
    }
}

/// A unit's status. Rejection wins over everything; a unit of skipped lines is skipped; a
/// unit whose key or claim is held elsewhere is a duplicate even if unmapped.
pub fn unit_status(f: UnitFacts) -> UnitStatus {
    if f.rejected {
        UnitStatus::Rejected
    } else if f.all_skipped {
        UnitStatus::Skipped
    } else if f.duplicate {
        UnitStatus::Duplicate
    } else if f.unchanged {
        UnitStatus::Unchanged
    } else if f.unmapped {
        UnitStatus::Unmapped
    } else {
        UnitStatus::Applied
    }
}

/// A line's ledger status and reason, given its unit's status and its own verdict.
/// `unit_error` is the next unit-level error not yet told on a line (unit errors are told
/// on the unit's first good lines); `headline` is the unit's first reason.
pub fn line_status(
    unit: UnitStatus,
    verdict: &LineVerdict,
    unit_error: impl FnOnce() -> Option<Reason>,
    headline: Option<&Reason>,
    label: &str,
) -> (&'static str, Option<Reason>) {
    match (unit, verdict) {
        (_, LineVerdict::Skipped(why)) => ("skipped", Some(Reason::new("skipped", why.clone()))),
        (UnitStatus::Rejected, LineVerdict::Rejected(r)) => ("rejected", Some((**r).clone())),
        (UnitStatus::Rejected, LineVerdict::Ok) => match unit_error() {
            Some(ue) => ("rejected", Some(ue)),
            None => {
                let head = headline.map(|h| h.message.as_str()).unwrap_or_default();
                let why = format!("{label} rejected as a whole: {head}");
                ("rejected", Some(Reason::new("rejected-with-document", why)))
            }
        },
        (UnitStatus::Duplicate, _) => ("duplicate", headline.cloned()),
        (UnitStatus::Unchanged, _) => ("unchanged", None),
        (UnitStatus::Skipped, _) => ("skipped", None),
        (UnitStatus::Unmapped, _) => ("unmapped", None),
        (UnitStatus::Applied, _) => ("applied", None),
    }
}

/// A read file's outcome under its policy: `error` is a file-level error that ended
/// reading (the file is then rejected whole).
pub fn file_outcome(
    counts: &Counts,
    policy: Option<Policy>,
    error: Option<&str>,
) -> (Outcome, Option<String>) {
    if let Some(e) = error {
        return (Outcome::Rejected, Some(e.to_string()));
    }
    let data_units = counts.data_units();
    if counts.units_rejected > 0 {
        return rejects_outcome(counts, policy.unwrap_or(Policy::AllOrNothing), data_units);
    }
    if counts.units_applied > 0 {
        (Outcome::Applied, None)
    } else if counts.units_unmapped > 0 {
        (Outcome::AcceptedUnmapped, None)
    } else if counts.units_duplicate > 0 {
        (Outcome::Duplicate, None)
    } else if counts.units_unchanged > 0 {
        (Outcome::Unchanged, None)
    } else {
        (Outcome::Applied, None)
    }
}

fn rejects_outcome(counts: &Counts, policy: Policy, data_units: i64) -> (Outcome, Option<String>) {
    let rejected = counts.units_rejected;
    match policy {
        Policy::AllOrNothing => (
            Outcome::Rejected,
            Some(format!(
                "policy all-or-nothing: {rejected} of {data_units} documents rejected"
            )),
        ),
        Policy::AcceptValid { max_reject_ratio } => {
            let ratio = rejected as f64 / data_units.max(1) as f64;
            if data_units == rejected {
                (
                    Outcome::Rejected,
                    Some(format!("every document ({rejected}) was rejected")),
                )
            } else if ratio > max_reject_ratio {
                (
                    Outcome::Rejected,
                    Some(format!(
                        "{rejected} of {data_units} documents rejected ({:.1}%), over the policy's max_reject_ratio {:.1}%",
                        ratio * 100.0,
                        max_reject_ratio * 100.0
                    )),
                )
            } else {
                (Outcome::AppliedWithRejects, None)
            }
        }
    }
}

/// Where a file's input goes once it is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// `archive/`: something of it was applied (or accepted).
    Archive,
    /// `rejected/`: nothing of it was applied: rejected whole, every document a duplicate,
    /// or failed.
    Rejected,
    /// Back to the inbox: it changed while it was processed and is taken again once stable.
    Inbox,
}

pub fn destination(outcome: Outcome) -> Destination {
    match outcome {
        Outcome::Applied
        | Outcome::AppliedWithRejects
        | Outcome::AcceptedUnmapped
        | Outcome::Unchanged => Destination::Archive,
        Outcome::Rejected | Outcome::Duplicate | Outcome::Failed => Destination::Rejected,
        Outcome::Returned => Destination::Inbox,
    }
}

/// Whether staged output is published (otherwise it is discarded).
pub fn publishes(outcome: Outcome) -> bool {
    matches!(
        outcome,
        Outcome::Applied | Outcome::AppliedWithRejects | Outcome::Duplicate | Outcome::Failed
    )
}

/// Outcomes (as reported, including the run-only ones) a person should look at: exit 1.
pub fn needs_review(outcome: &str) -> bool {
    matches!(
        outcome,
        "applied_with_rejects"
            | "rejected"
            | "duplicate_file"
            | "returned"
            | "failed"
            | "held"
            | "error"
    )
}

/// What a person should do about a file, when something must be done.
pub fn action(outcome: &str, row: &FileRow) -> Option<String> {
    let who = format!("'{}'", crate::display::name(&row.name));
    match outcome {
        "held" => Some(format!(
            "look at it, then `tallyman release {who}` to go on, or `tallyman release {who} --reject` to reject it whole"
        )),
        "failed" => Some(
            "ask the sender to resend the file (or drop a copy into the inbox): the documents listed as lost are applied, the others are recognised as duplicates".into(),
        ),
        "returned" => Some(
            "none if the sender was still writing it: it is taken again once it stops changing; if this repeats, raise intake.settle_seconds or ask the sender to upload under a temporary name or with a .done marker".into(),
        ),
        "rejected" | "applied_with_rejects" => {
            let from_partner = matches!(row.format.as_deref(), Some("x12" | "idoc"));
            match (&row.corrections_path, &row.report_path) {
                (Some(_), _) => Some("fix the rows in the corrections file (fix:) and drop it into the inbox".to_string()),
                (None, Some(_)) if from_partner => Some("the sender was told in the acknowledgement; the rejected documents must come again from them".to_string()),
                (None, Some(_)) => Some("fix the lines listed in the report and send them again".to_string()),
                _ => None,
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(applied: i64, rejected: i64, dup: i64, unmapped: i64) -> Counts {
        Counts {
            units_applied: applied,
            units_rejected: rejected,
            units_duplicate: dup,
            units_unmapped: unmapped,
            ..Counts::default()
        }
    }

    const ACCEPT: Option<Policy> = Some(Policy::AcceptValid {
        max_reject_ratio: 0.5,
    });

    /// The ledger reads a file's rejected lines from its rejected documents only
    /// (`ledger::rejected`): no other document may have a rejected line.
    #[test]
    fn only_a_rejected_document_has_rejected_lines() {
        use crate::unit::{LineVerdict, Reason};
        let statuses = [
            UnitStatus::Applied,
            UnitStatus::Rejected,
            UnitStatus::Duplicate,
            UnitStatus::Skipped,
            UnitStatus::Unmapped,
            UnitStatus::Unchanged,
        ];
        let verdicts = [
            LineVerdict::Ok,
            LineVerdict::Rejected(Box::new(Reason::new("bad", "a bad value"))),
            LineVerdict::Skipped("blank".into()),
        ];
        let head = Reason::new("dup", "seen before");
        for unit in statuses {
            for v in &verdicts {
                for error in [None, Some(Reason::new("unit", "no key"))] {
                    let (status, _) = line_status(unit, v, || error.clone(), Some(&head), "u");
                    let rejected = status == "rejected";
                    assert_eq!(
                        rejected,
                        unit == UnitStatus::Rejected && !matches!(v, LineVerdict::Skipped(_)),
                        "{unit:?} {v:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn outcomes_follow_the_policy() {
        let o = |c: Counts, p| file_outcome(&c, p, None).0;
        assert_eq!(o(counts(3, 0, 0, 0), ACCEPT), Outcome::Applied);
        assert_eq!(o(counts(3, 1, 0, 0), ACCEPT), Outcome::AppliedWithRejects);
        assert_eq!(o(counts(1, 3, 0, 0), ACCEPT), Outcome::Rejected);
        assert_eq!(o(counts(0, 2, 0, 0), ACCEPT), Outcome::Rejected);
        assert_eq!(
            o(counts(3, 1, 0, 0), Some(Policy::AllOrNothing)),
            Outcome::Rejected
        );
        assert_eq!(o(counts(0, 0, 4, 0), ACCEPT), Outcome::Duplicate);
        assert_eq!(
            file_outcome(&counts(5, 0, 0, 0), ACCEPT, Some("truncated")).0,
            Outcome::Rejected
        );
    }

    #[test]
    fn unmapped_documents_are_an_outcome_of_their_own_never_applied() {
        assert_eq!(
            file_outcome(&counts(0, 0, 0, 2), ACCEPT, None).0,
            Outcome::AcceptedUnmapped
        );
        assert_eq!(
            file_outcome(&counts(1, 0, 0, 2), ACCEPT, None).0,
            Outcome::Applied,
            "mixed files are applied; the counts say how many were unmapped"
        );
        let f = UnitFacts {
            unmapped: true,
            ..UnitFacts::default()
        };
        assert_eq!(unit_status(f), UnitStatus::Unmapped);
        let dup = UnitFacts {
            duplicate: true,
            ..f
        };
        assert_eq!(unit_status(dup), UnitStatus::Duplicate);
    }

    #[test]
    fn a_file_of_duplicates_goes_to_rejected_like_the_readme_says() {
        assert_eq!(destination(Outcome::Duplicate), Destination::Rejected);
        assert_eq!(destination(Outcome::Returned), Destination::Inbox);
        assert_eq!(destination(Outcome::AcceptedUnmapped), Destination::Archive);
    }

    #[test]
    fn held_failed_and_returned_files_need_a_person() {
        for o in ["held", "failed", "returned", "rejected", "error"] {
            assert!(needs_review(o), "{o}");
        }
        for o in ["applied", "accepted_unmapped", "duplicate", "skipped"] {
            assert!(!needs_review(o), "{o}");
        }
    }

    #[test]
    fn good_lines_of_a_rejected_unit_say_why() {
        let head = Reason::new("type", "qty is not a decimal");
        let (s, r) = line_status(
            UnitStatus::Rejected,
            &LineVerdict::Ok,
            || None,
            Some(&head),
            "order 7",
        );
        assert_eq!(s, "rejected");
        let r = r.unwrap();
        assert_eq!(r.rule, "rejected-with-document");
        assert!(r.message.contains("order 7 rejected as a whole: qty"));
    }
}
