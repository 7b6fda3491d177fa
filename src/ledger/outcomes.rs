//! What became of each unit of a file, read back for its acknowledgement: a 997/999 or an
//! IDoc STATUS answers every unit in order, long after the unit's batch committed. Apart
//! from the file's own life (`files`) because it reads the packed runs and the line rows
//! the other way round, a window at a time, and keeps that window between questions.

use std::collections::HashMap;

use super::db::Connection;
use super::{Ledger, LedgerError, Result};
use crate::format::{UnitOutcomes, UnitStatus, UnitSummary};
use crate::unit::{Position, Reason};

impl Ledger {
    /// The outcomes of units `from..to` of a file, in order (units the ledger does not
    /// hold left out).
    pub fn unit_summaries(&self, file_id: i64, from: u64, to: u64) -> Result<Vec<UnitSummary>> {
        let outcomes = super::runs::outcomes_between(&self.conn, file_id, from as i64, to as i64)?;
        let mut in_rows = reasons_in_rows(&self.conn, file_id, &outcomes.units)?;
        let applied = |seq: i64| UnitSummary {
            seq: seq as u64,
            status: UnitStatus::Applied,
            reasons: Vec::new(),
            detail: serde_json::Value::Null,
        };
        let mut out = Vec::with_capacity(outcomes.units.len() + outcomes.applied.len());
        let mut seqs = outcomes.applied.into_iter().peekable();
        for u in outcomes.units {
            while let Some(seq) = seqs.next_if(|&s| s < u.seq) {
                out.push(applied(seq));
            }
            out.push(summary(u, &mut in_rows)?);
        }
        out.extend(seqs.map(applied));
        Ok(out)
    }
}

/// A unit's outcome from its row or its run (`in_rows`: reasons read from line rows, by
/// seq).
fn summary(
    u: super::runs::StoredUnit,
    in_rows: &mut HashMap<i64, Vec<(Position, Reason)>>,
) -> Result<UnitSummary> {
    Ok(UnitSummary {
        seq: u.seq as u64,
        status: UnitStatus::parse(&u.status),
        reasons: match u.reasons.as_deref() {
            Some(super::reasons::FROM_LINES) => in_rows.remove(&u.seq).unwrap_or_default(),
            Some(s) => serde_json::from_str(s)?,
            None => Vec::new(),
        },
        detail: match u.detail {
            Some(s) => serde_json::from_str(&s)?,
            None => serde_json::Value::Null,
        },
    })
}

/// The reasons of those of `units` that keep them in their lines' rows (reasons.rs), by
/// seq: one statement over the lines of all of them.
fn reasons_in_rows(
    conn: &Connection,
    file_id: i64,
    units: &[super::runs::StoredUnit],
) -> Result<HashMap<i64, Vec<(Position, Reason)>>> {
    let kept_once = units
        .iter()
        .filter(|u| u.reasons.as_deref() == Some(super::reasons::FROM_LINES));
    let ordinals = kept_once.fold(None, |span: Option<(i64, i64)>, u| {
        let end = u.first_ordinal + u.line_count;
        Some(span.map_or((u.first_ordinal, end), |(a, b)| {
            (a.min(u.first_ordinal), b.max(end))
        }))
    });
    match ordinals {
        Some((from, to)) => super::reasons::read_back(conn, file_id, from..to),
        None => Ok(HashMap::new()),
    }
}

/// Unit outcomes of one file, read from the ledger (for acknowledgements).
pub struct LedgerOutcomes<'a> {
    ledger: &'a Ledger,
    file_id: i64,
    /// Outcomes read ahead: an acknowledgement asks for every unit in order, and one query
    /// per window costs what one per unit did for a few units.
    window: std::cell::RefCell<std::collections::VecDeque<UnitSummary>>,
    /// The units the window was read for (its rows are those of them that have one).
    covers: std::cell::Cell<std::ops::Range<u64>>,
    /// The first read that failed: an acknowledgement built without an outcome is wrong, so
    /// the caller refuses it.
    failed: std::cell::RefCell<Option<LedgerError>>,
}

/// Units read ahead per query, at least: a window inflates every packed run it touches
/// (runs.rs), so it is stretched to the end of the run it ends in, and each run is
/// inflated once (at 2,048 units and no more, an X12 batch's run of ~700 sets was inflated
/// 1.4 times on average). A window of IDoc outcomes (a control record each) stays near
/// 1 MB, and a batch's run more.
const OUTCOME_WINDOW: u64 = 2048;

impl<'a> LedgerOutcomes<'a> {
    pub fn new(ledger: &'a Ledger, file_id: i64) -> Self {
        LedgerOutcomes {
            ledger,
            file_id,
            window: Default::default(),
            covers: std::cell::Cell::new(0..0),
            failed: Default::default(),
        }
    }

    /// The error of a read that failed while outcomes were asked for, if any.
    pub fn failure(self) -> Option<LedgerError> {
        self.failed.into_inner()
    }
}

impl UnitOutcomes for LedgerOutcomes<'_> {
    fn get(&self, seq: u64) -> Option<UnitSummary> {
        self.read_to(seq);
        let window = self.window.borrow();
        window.front().filter(|u| u.seq == seq).cloned()
    }

    /// The unit leaves the window: asked for again, it is read again.
    fn take(&self, seq: u64) -> Option<UnitSummary> {
        self.read_to(seq);
        let mut window = self.window.borrow_mut();
        let found = window.front().is_some_and(|u| u.seq == seq);
        if found {
            let covers = self.covers.take();
            self.covers.set(seq + 1..covers.end.max(seq + 1));
        }
        found.then(|| window.pop_front()).flatten()
    }
}

impl LedgerOutcomes<'_> {
    /// Makes the window start at `seq` (its first unit is `seq`'s, if `seq` has one),
    /// reading it from the ledger unless it covers `seq` already.
    fn read_to(&self, seq: u64) {
        let mut window = self.window.borrow_mut();
        let covers = self.covers.take();
        if covers.contains(&seq) {
            self.covers.set(seq..covers.end);
        } else {
            let to = seq.saturating_add(OUTCOME_WINDOW);
            let to = match super::runs::window_end(&self.ledger.conn, self.file_id, to as i64) {
                Ok(end) => end as u64,
                Err(e) => {
                    self.failed.borrow_mut().get_or_insert(e);
                    return;
                }
            };
            match self.ledger.unit_summaries(self.file_id, seq, to) {
                Ok(units) => *window = units.into(),
                Err(e) => {
                    self.failed.borrow_mut().get_or_insert(e);
                    return;
                }
            }
            self.covers.set(seq..to);
        }
        // Asked in order, the units before `seq` are not asked for again (and no longer
        // covered: asked for, they are read again).
        while window.front().is_some_and(|u| u.seq < seq) {
            window.pop_front();
        }
    }
}
