//! A rejected document's reasons, kept once: in its lines' rows, not again in its unit row.
//!
//! An acknowledgement needs every reason of a rejected document with its position (an AK3
//! and AK4 per bad segment, an IDoc STATUS record per reason), so the unit row kept them
//! as JSON. For nearly every rejected document that JSON repeated, field by field, the
//! rows its rejected lines have anyway: a CSV order with one bad line is rejected with a
//! reason on each of its lines, and those reasons were ~580 of the ~800 bytes its unit row
//! took. A unit row whose reasons are exactly its rejected lines' rows, in order, keeps
//! [`FROM_LINES`] instead, and the reasons are read back from those rows. Anything the
//! rows cannot say again (a unit error, a reason with a finer place or locator of its own,
//! a line rejected without a reason in the list) keeps the JSON, so what is read back is
//! always what was written. Only rejected units are kept this way: a file rejected whole
//! later rewrites the line rows of the units it rejects (spans.rs `reject_late`), but
//! never those of a unit already rejected.

use std::collections::HashMap;

use super::db::{params, Connection};
use super::model::LineRow;
use super::Result;
use crate::unit::{Position, Reason};

/// The `units.reasons` text of a unit whose reasons are its rejected lines' rows. JSON
/// (a list) never starts with `=`.
pub(super) const FROM_LINES: &str = "=lines";

/// Whether `reasons` are exactly what [`read_back`] reads from `rows`: the unit's line
/// rows with status `rejected`, in order.
pub(super) fn told_by_rows<'r>(
    reasons: &[(Position, Reason)],
    rows: impl Iterator<Item = &'r LineRow>,
) -> bool {
    let mut rows = rows.filter(|l| l.status == "rejected");
    let same = reasons.iter().all(|(pos, r)| {
        rows.next().is_some_and(|l| {
            r.locator.is_none()
                && r.place.is_none()
                && l.pos == *pos
                && l.reason.as_ref() == Some(r)
        })
    });
    same && !reasons.is_empty() && rows.next().is_none()
}

/// The reasons kept in a file's rejected lines' rows, by unit seq, read with one statement
/// over the lines `ordinals` (those of every unit asked for).
pub(super) fn read_back(
    conn: &Connection,
    file_id: i64,
    ordinals: std::ops::Range<i64>,
) -> Result<HashMap<i64, Vec<(Position, Reason)>>> {
    let mut st = conn.prepare_cached(
        "SELECT unit_seq, line, byte, record, locator, rule, field, value, message FROM lines \
         WHERE file_id=?1 AND ordinal >= ?2 AND ordinal < ?3 AND status='rejected' ORDER BY ordinal",
    )?;
    let rows = st
        .query_map(params![file_id, ordinals.start, ordinals.end], |r| {
            let pos = Position {
                line: r.get::<_, i64>(1)? as u64,
                byte: r.get::<_, i64>(2)? as u64,
                record: r.get::<_, i64>(3)? as u64,
                locator: r.get(4)?,
            };
            let reason = Reason {
                rule: r.get::<_, Option<String>>(5)?.unwrap_or_default(),
                field: r.get(6)?,
                value: r.get(7)?,
                message: r.get::<_, Option<String>>(8)?.unwrap_or_default(),
                locator: None,
                place: None,
            };
            Ok((r.get::<_, i64>(0)?, (pos, reason)))
        })?
        .collect::<super::db::Result<Vec<_>>>()?;
    let mut by_unit: HashMap<i64, Vec<(Position, Reason)>> = HashMap::new();
    for (seq, reason) in rows {
        by_unit.entry(seq).or_default().push(reason);
    }
    Ok(by_unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(ordinal: i64, status: &'static str, reason: Option<Reason>) -> LineRow {
        LineRow {
            ordinal,
            unit_seq: 1,
            pos: Position::new(ordinal as u64 + 1, ordinal as u64 * 10, ordinal as u64 + 1),
            status,
            key: None,
            reason,
            raw: None,
        }
    }

    #[test]
    fn only_reasons_the_rejected_rows_say_again_in_order_are_told_by_them() {
        let bad = Reason::new("min", "too small")
            .field("quantity")
            .value("-1");
        let whole = Reason::new("rejected-with-document", "rejected as a whole");
        let rows = [
            row(0, "rejected", Some(whole.clone())),
            row(1, "skipped", Some(Reason::new("blank", "blank line"))),
            row(2, "rejected", Some(bad.clone())),
        ];
        let at = |i: usize, r: &Reason| (rows[i].pos.clone(), r.clone());
        let told = |reasons: &[(Position, Reason)]| told_by_rows(reasons, rows.iter());
        assert!(told(&[at(0, &whole), at(2, &bad)]));
        // Another order, one missing, one more, none.
        assert!(!told(&[at(2, &bad), at(0, &whole)]));
        assert!(!told(&[at(0, &whole)]));
        assert!(!told(&[at(0, &whole), at(2, &bad), at(2, &bad)]));
        assert!(!told(&[]));
        // A unit error at the first line, which no row holds as it was given.
        let unit_error = Reason::new("x12-se01-count", "wrong count");
        assert!(!told(&[at(0, &whole), at(2, &bad), at(0, &unit_error)]));
        // What a row keeps only folded into its position.
        assert!(!told(&[at(0, &whole), at(2, &bad.clone().at("Prices!E8"))]));
        assert!(!told(&[at(0, &whole), at(2, &bad.clone().placed(3, 20))]));
        // Another position.
        assert!(!told(&[
            at(0, &whole),
            (Position::new(9, 9, 9), bad.clone())
        ]));
    }
}
