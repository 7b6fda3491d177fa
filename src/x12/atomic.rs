//! All-or-nothing per group or interchange (`atomic = "group" | "interchange"`).
//!
//! A partner may ask that a whole functional group or interchange be applied or rejected as
//! one. The reader holds the units of such a group back until its trailer, then merges them
//! into one unit whose job runs every set's job and rejects them all if any one is rejected,
//! keeping each set's detail so the 997/999 can still answer set by set.

use serde_json::json;

use crate::unit::{Evaluation, LineVerdict, Reason, Unit};

use super::defs::Atomic;
use super::X12Reader;

impl X12Reader {
    /// Merges the held units of an all-or-nothing group or interchange into one unit whose
    /// job runs every part and rejects them all if any is rejected.
    pub(super) fn flush_held(&mut self) -> Unit {
        let held = std::mem::take(&mut self.held);
        let seq = held.first().map(|u| u.seq).unwrap_or(self.seq);
        self.seq = seq + 1;
        let last = seq + held.len() as u64;
        let mode = self.atomic;
        // Point the set records at the merged unit and their part.
        let interchanges = self.cur.iter_mut().chain(self.done.last_mut());
        for ic in interchanges {
            for g in &mut ic.groups {
                g.sets.merge(seq, last);
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
            // Shown in full now: the merged unit has one set of lines.
            let shown = u.shown_lines();
            parts.push((shown.len(), u.job, u.label));
            lines.extend(shown);
        }
        let job = move |_: &str| merged_eval(mode, parts);
        Unit {
            seq,
            label,
            lines,
            job: Some(Box::new(job)),
            show: None,
        }
    }
}

type Part = (usize, Option<Box<dyn crate::unit::UnitJob>>, String);

fn merged_eval(mode: Atomic, parts: Vec<Part>) -> Evaluation {
    let mut ev = Evaluation::default();
    let mut details = Vec::new();
    let mut rejected = Vec::new();
    let mut all_unmapped = true;
    let mut sets = 0usize;
    for (n, job, label) in parts {
        // Envelope parts (GS, GE, ISA, IEA) have no job and no say.
        let is_set = job.is_some();
        let e = match job {
            Some(j) => j.run(&label),
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
                *v = LineVerdict::rejected(first);
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
        // The group's documents, in file order, as the engine joins record keys.
        if let Some(k) = e.key {
            ev.key = Some(match ev.key.take() {
                Some(prev) => format!("{prev},{k}"),
                None => k,
            });
        }
        if is_set {
            sets += 1;
            all_unmapped &= e.unmapped;
        }
        if ev.hold.is_none() {
            ev.hold = e.hold;
        }
        details.push(e.detail);
    }
    // Unmapped only if no set of the group was mapped: one record makes it applied.
    ev.unmapped = all_unmapped && sets > 0;
    if !rejected.is_empty() {
        ev.unmapped = false;
        ev.hold = None;
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
