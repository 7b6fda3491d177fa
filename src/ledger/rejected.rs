//! The lines of a file's rejected documents, in file order: each line's own row where it
//! has one, else told from its document's row.
//!
//! A document rejected as it was read has a row for each of its lines (its reason, and the
//! line itself for the corrections file). One rejected after it was committed — its file
//! rejected whole, or its output lost (spans.rs `reject_late`) — keeps only its unit row,
//! which takes the rule and message as its headline: a row for each of its lines made a
//! file rejected whole write a ledger four times the size of its input, and a third of its
//! work. Its lines are told from the unit's spans, each with the unit's rule and message,
//! which is what those rows said. The rejects, the reject report, the corrections file and
//! the console's rejected lines all read them here, so none of them can tell the two apart.

use super::db::{params, Connection};
use super::runs::{stored_unit, StoredUnit, UNIT_COLS};
use super::spans::{decode, last_starting_by};
use super::{LineView, Result};

/// Rejected units read at a time, at most (fewer when fewer lines are asked for: each
/// rejected unit has a rejected line).
const UNITS_AT_A_TIME: i64 = 256;

/// Which lines of the rejected documents a reader asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lines {
    /// The rejected ones (a rejected document's blank lines are skipped, not rejected).
    Rejected,
    /// All of them, skipped ones too (the corrections file keeps a document whole).
    All,
}

/// Up to `limit` lines of a file's rejected documents after ordinal `after`, in file
/// order.
pub(super) fn rejected_lines(
    conn: &Connection,
    file_id: i64,
    after: i64,
    limit: i64,
    which: Lines,
) -> Result<Vec<LineView>> {
    lines_of_documents(conn, file_id, after, limit, which, |_, line| line)
}

/// [`rejected_lines`], each made into what `make` makes of it with its document.
pub(super) fn lines_of_documents<T>(
    conn: &Connection,
    file_id: i64,
    after: i64,
    limit: i64,
    which: Lines,
    mut make: impl FnMut(&StoredUnit, LineView) -> T,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    if limit <= 0 {
        return Ok(out);
    }
    walk(conn, file_id, after, limit, which, &mut |doc, line| {
        if which == Lines::All || line.status == "rejected" {
            out.push(make(doc, line));
        }
        (out.len() as i64) < limit
    })?;
    Ok(out)
}

/// Hands every line of the file's rejected units after ordinal `after` to `each`, in
/// order (its row if it has one, else as its unit tells it), until it answers `false`;
/// `limit` is how many lines the caller wants at most (each rejected unit has one, so as
/// many units are read at a time). Rejected lines are only ever in rejected units (see
/// `decide::line_status`).
fn walk(
    conn: &Connection,
    file_id: i64,
    after: i64,
    limit: i64,
    which: Lines,
    each: &mut dyn FnMut(&StoredUnit, LineView) -> bool,
) -> Result<()> {
    let mut seq = row_starting_by(conn, file_id, after + 1)?;
    let chunk = limit.clamp(1, UNITS_AT_A_TIME);
    loop {
        let units = rejected_units(conn, file_id, seq, chunk)?;
        let (Some(first), Some(last)) = (units.first(), units.last()) else {
            return Ok(());
        };
        let from = first.first_ordinal.max(after + 1);
        let to = last.first_ordinal + last.line_count;
        let mut rows = line_rows(conn, file_id, from, to, which)?
            .into_iter()
            .peekable();
        for u in &units {
            let positions = decode(u.first, u.spans.as_deref(), u.line_count);
            for i in 0..u.line_count {
                let ordinal = u.first_ordinal + i;
                if ordinal <= after {
                    continue;
                }
                while rows.next_if(|r| r.ordinal < ordinal).is_some() {}
                let line = match rows.next_if(|r| r.ordinal == ordinal) {
                    Some(row) => row,
                    None => match positions.get(i as usize) {
                        Some(&at) => told_line(u, i, at),
                        // Spans cut short: only a row could tell the line.
                        None => continue,
                    },
                };
                if !each(u, line) {
                    return Ok(());
                }
            }
        }
        if (units.len() as i64) < chunk {
            return Ok(());
        }
        seq = last.seq + 1;
    }
}

/// The seq of the last unit row of a file that starts at or before line `ordinal` (0 if
/// none does). Only rows are looked at: a rejected unit always has one, and finding a
/// packed unit inflates its whole run (three pages of the reject report of a 6 MB file
/// took a twentieth of its run that way).
fn row_starting_by(conn: &Connection, file_id: i64, ordinal: i64) -> Result<i64> {
    let last: Option<i64> = conn.query_row(
        "SELECT MAX(seq) FROM units WHERE file_id=?1",
        params![file_id],
        |r| r.get(0),
    )?;
    let mut next_row = conn.prepare_cached(
        "SELECT seq, first_ordinal FROM units WHERE file_id=?1 AND seq >= ?2 ORDER BY seq LIMIT 1",
    )?;
    last_starting_by(last.unwrap_or(0), ordinal, |mid| {
        let found = next_row
            .query_map(params![file_id, mid], |r| Ok((r.get(0)?, r.get(1)?)))?
            .next()
            .transpose()?;
        Ok(found)
    })
}

/// The next `limit` rejected units of a file from seq `from` on. A rejected unit always
/// has a row (only applied units are packed into runs). Its reasons and detail are left
/// unread: a unit rejected as it was read may keep every reason as JSON, most of its row.
fn rejected_units(
    conn: &Connection,
    file_id: i64,
    from: i64,
    limit: i64,
) -> Result<Vec<StoredUnit>> {
    let cols = UNIT_COLS.replace("reasons, detail", "NULL, NULL");
    debug_assert_ne!(
        cols, UNIT_COLS,
        "the unit columns end with reasons and detail"
    );
    let units = conn
        .prepare_cached(&format!(
            "SELECT {cols} FROM units WHERE file_id=?1 AND status='rejected' AND seq >= ?2 \
             ORDER BY seq LIMIT ?3"
        ))?
        .query_map(params![file_id, from, limit], stored_unit)?
        .collect::<super::db::Result<Vec<_>>>()?;
    Ok(units)
}

/// The line rows of a file with ordinals `from <= ordinal < to`, in order; for
/// [`Lines::All`] (the corrections file) without the columns it does not read.
fn line_rows(
    conn: &Connection,
    file_id: i64,
    from: i64,
    to: i64,
    which: Lines,
) -> Result<Vec<LineView>> {
    let cols = match which {
        Lines::Rejected => LINE_COLS,
        Lines::All => "ordinal, unit_seq, line, byte, record, NULL, status, NULL, rule, NULL, NULL, message, NULL",
    };
    let rows = conn
        .prepare_cached(&format!(
            "SELECT {cols} FROM lines WHERE file_id=?1 AND ordinal >= ?2 AND ordinal < ?3 ORDER BY ordinal"
        ))?
        .query_map(params![file_id, from, to], line_view)?
        .collect::<super::db::Result<Vec<_>>>()?;
    Ok(rows)
}

/// The columns [`line_view`] reads, in its order.
pub(super) const LINE_COLS: &str =
    "ordinal, unit_seq, line, byte, record, locator, status, key, rule, field, value, message, raw";

/// A `lines` row as [`LINE_COLS`] selects it.
pub(super) fn line_view(r: &super::db::Row<'_>) -> super::db::Result<LineView> {
    Ok(LineView {
        ordinal: r.get(0)?,
        unit_seq: r.get(1)?,
        line: r.get(2)?,
        byte: r.get(3)?,
        record: r.get(4)?,
        locator: r.get(5)?,
        status: r.get(6)?,
        key: r.get(7)?,
        rule: r.get(8)?,
        field: r.get(9)?,
        value: r.get(10)?,
        message: r.get(11)?,
        raw: r.get(12)?,
    })
}

/// Line `i` of a rejected unit, at `(line, byte, record)`, as its unit row tells it:
/// rejected, with the unit's key and headline, and its locator on the first line only (as
/// the rows of a unit rejected late were written).
fn told_line(u: &StoredUnit, i: i64, (line, byte, record): (i64, i64, i64)) -> LineView {
    LineView {
        ordinal: u.first_ordinal + i,
        unit_seq: u.seq,
        line,
        byte,
        record,
        locator: u.locator.clone().filter(|_| i == 0),
        status: "rejected".into(),
        key: u.key.clone(),
        rule: u.rule.clone(),
        field: None,
        value: None,
        message: u.message.clone(),
        raw: None,
    }
}
