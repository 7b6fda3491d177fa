//! Applied documents kept as one packed row per batch instead of a row each.
//!
//! Nearly every document of a day's files ends applied with nothing to say about it: no
//! reason, no tolerance, no line with a row of its own but skipped ones (an IDoc's control
//! record). Its row in `units` (label, key, first line's position and locator, spans) was
//! still two thirds of the ledger, one B-tree entry each, and a third of the committing
//! thread's instructions. Such units of a batch are written as one `unit_runs` row: their
//! fields as varints and length-prefixed texts, each number the difference from the unit
//! before, deflated (the labels, keys and locators of one batch differ in a few digits).
//! Every other unit keeps its row in `units`.
//!
//! Readers ask through [`units_between`], [`unit_at`] and [`UnitReader`], which merge both
//! in seq order (a unit with a row wins over a packed copy of itself, should both exist).
//! Statements that change units in place (a file rejected whole after its batches were
//! committed) first [`unpack`] the runs they touch back into rows, so they work on `units`
//! alone.
//!
//! The bytes of a run, and compressing them, are layout.rs; reading units back from rows
//! and runs is read.rs. Both are children so that they share [`StoredUnit`] and the
//! private parts of a packed unit without widening either.

mod layout;
mod read;

use super::db::{params, Transaction, Value};
use super::model::UnitRow;
use super::{LedgerError, Result};
use layout::{pack, unpack_blob};

pub(super) use layout::{counted, deflate, inflate, Decode};
pub(super) use read::{
    max_seq, outcomes_between, stored_unit, unit_at, units_between, window_end, UnitReader,
    UNIT_COLS,
};

/// A unit as the ledger keeps it, from its row or from a run.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct StoredUnit {
    pub seq: i64,
    pub label: String,
    pub status: String,
    pub key: Option<String>,
    pub first_ordinal: i64,
    pub line_count: i64,
    /// Its first line's `(line, byte, record)`.
    pub first: (i64, i64, i64),
    pub locator: Option<String>,
    pub spans: Option<Vec<u8>>,
    /// The headline reason's rule and message.
    pub rule: Option<String>,
    pub message: Option<String>,
    /// Every reason and the detail, as JSON.
    pub reasons: Option<String>,
    pub detail: Option<String>,
}

impl StoredUnit {
    fn packed(p: Packed) -> StoredUnit {
        StoredUnit {
            seq: p.seq,
            label: p.label,
            status: "applied".into(),
            key: p.key,
            first_ordinal: p.first_ordinal,
            line_count: p.line_count,
            first: p.first,
            locator: p.locator,
            spans: p.spans,
            rule: None,
            message: None,
            reasons: None,
            detail: p.detail,
        }
    }
}

/// One unit of a run.
struct Packed {
    seq: i64,
    label: String,
    key: Option<String>,
    first_ordinal: i64,
    line_count: i64,
    first: (i64, i64, i64),
    locator: Option<String>,
    spans: Option<Vec<u8>>,
    detail: Option<String>,
}

/// Whether a unit goes into its batch's run: applied, with no reason or tolerance of its
/// own, and no line with a row but skipped ones (`line_rows`: how many, and whether all
/// are skipped). An IDoc's control record is such a line; its detail (the control
/// record's fields, for the acknowledgement) is packed with it.
pub(super) fn packable(u: &UnitRow, line_rows: Option<(i64, bool)>) -> bool {
    u.status == crate::format::UnitStatus::Applied
        && u.reasons.is_empty()
        && u.tolerated.is_empty()
        && line_rows.is_none_or(|(_, skipped)| skipped)
}

/// Writes `units` (in seq order, all [`packable`], each with how many of its lines have
/// rows) as one run.
pub(super) fn write_run(tx: &Transaction, file_id: i64, units: &[(&UnitRow, i64)]) -> Result<()> {
    let (Some((first, _)), Some((last, _))) = (units.first(), units.last()) else {
        return Ok(());
    };
    let lines: i64 = units.iter().map(|(u, _)| u.line_count).sum();
    let row_lines: i64 = units.iter().map(|(_, rows)| rows).sum();
    let details = units.iter().filter(|(u, _)| !u.detail.is_null()).count() as i64;
    let packed = pack(units.iter().map(|(u, _)| *u))?;
    tx.prepare_cached(
        "INSERT INTO unit_runs(file_id, first_seq, end_seq, first_ordinal, end_ordinal, units, lines, row_lines, packed, details) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        file_id,
        first.seq,
        last.seq + 1,
        first.first_ordinal,
        last.first_ordinal + last.line_count,
        units.len() as i64,
        lines,
        row_lines,
        packed,
        details
    ])?;
    Ok(())
}

/// Runs from the one that holds seq `?2` on (or, if none does, from `?2` on): a seek in
/// the primary key, where `end_seq > ?2` alone walks every earlier run of the file.
const FROM_RUN: &str = "first_seq >= COALESCE((SELECT MAX(r.first_seq) FROM unit_runs r \
     WHERE r.file_id = ?1 AND r.first_seq <= ?2), ?2)";

/// Turns the runs of a file that hold a unit with `from <= seq < to` back into rows of
/// `units` (all their units, not only those in range), so statements on `units` see them.
/// With `rejected` (a rule and message), the units in range are written rejected with
/// them, as `spans::reject_late` would make them: a file rejected whole wrote every
/// applied unit as a row and then rewrote it (and both of the table's indexes) again.
pub(super) fn unpack(
    tx: &Transaction,
    file_id: i64,
    (from, to): (i64, i64),
    rejected: Option<(&str, &str)>,
) -> Result<()> {
    loop {
        // A run at a time: a file rejected whole may have millions of units.
        let run: Option<(i64, Vec<u8>)> = {
            let mut st = tx.prepare_cached(
                &format!("SELECT first_seq, packed FROM unit_runs WHERE file_id=?1 AND {FROM_RUN} AND end_seq > ?2 \
                 AND first_seq < ?3 ORDER BY first_seq LIMIT 1"),
            )?;
            let mut q = st.query(params![file_id, from, to])?;
            match q.next()? {
                Some(r) => Some((r.get(0)?, r.get(1)?)),
                None => None,
            }
        };
        let Some((first_seq, blob)) = run else {
            return Ok(());
        };
        let units = unpack_blob(&blob)?;
        let values: Vec<Value<'_>> = units
            .iter()
            .flat_map(|u| {
                let late = rejected.filter(|_| (from..to).contains(&u.seq));
                let status = if late.is_some() {
                    "rejected"
                } else {
                    "applied"
                };
                [
                    Value::Int(file_id),
                    Value::Int(u.seq),
                    Value::Text(&u.label),
                    Value::Text(status),
                    u.key.as_deref().map_or(Value::Null, Value::Text),
                    Value::Int(u.first_ordinal),
                    Value::Int(u.line_count),
                    Value::Int(u.first.0),
                    Value::Int(u.first.1),
                    Value::Int(u.first.2),
                    u.locator.as_deref().map_or(Value::Null, Value::Text),
                    u.spans.as_deref().map_or(Value::Null, Value::Blob),
                    u.detail.as_deref().map_or(Value::Null, Value::Text),
                    late.map_or(Value::Null, |(rule, _)| Value::Text(rule)),
                    late.map_or(Value::Null, |(_, message)| Value::Text(message)),
                ]
            })
            .collect();
        super::batch::insert_many(
            tx,
            "INSERT OR IGNORE INTO units(file_id, seq, label, status, key, first_ordinal, line_count, \
             line, byte, record, locator, spans, detail, rule, message)",
            "",
            15,
            &values,
        )?;
        tx.execute(
            "DELETE FROM unit_runs WHERE file_id=?1 AND first_seq=?2",
            params![file_id, first_seq],
        )?;
    }
}

pub(super) fn corrupt(what: &str) -> LedgerError {
    LedgerError::Corrupt(what.to_string())
}
