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
use super::spans::{decode, unit_starting_by};
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
    let mut out = Vec::new();
    if limit <= 0 {
        return Ok(out);
    }
    match which {
        Lines::All => {
            walk(conn, file_id, after, limit, Rows::Whole, &mut |w| {
                out.push(w.line);
                (out.len() as i64) < limit
            })?;
            Ok(out)
        }
        Lines::Rejected => {
            // Rows with the status, wherever they are, and the lines units tell.
            let rows = rejected_rows(conn, file_id, after, limit)?;
            let bound = match rows.last() {
                Some(last) if rows.len() as i64 >= limit => last.ordinal,
                _ => i64::MAX,
            };
            walk(conn, file_id, after, limit, Rows::Ordinals, &mut |w| {
                if w.line.ordinal > bound {
                    return false;
                }
                if !w.has_row {
                    out.push(w.line);
                }
                (out.len() as i64) < limit
            })?;
            Ok(merged(rows, out, limit))
        }
    }
}

/// A line of a rejected unit as [`walk`] hands it on.
struct Walked {
    /// Its row if it has one (only its ordinal with [`Rows::Ordinals`]), else the line as
    /// its unit tells it.
    line: LineView,
    has_row: bool,
}

/// How much of the line rows [`walk`] reads.
#[derive(Clone, Copy)]
enum Rows {
    Whole,
    Ordinals,
}

/// Hands every line of the file's rejected units after ordinal `after` to `each`, in
/// order, until it answers `false`; `limit` is how many lines the caller wants at most
/// (each rejected unit has one, so as many units are read at a time).
fn walk(
    conn: &Connection,
    file_id: i64,
    after: i64,
    limit: i64,
    read: Rows,
    each: &mut dyn FnMut(Walked) -> bool,
) -> Result<()> {
    let mut seq = unit_starting_by(conn, file_id, after + 1)?;
    let chunk = limit.clamp(1, UNITS_AT_A_TIME);
    loop {
        let units = rejected_units(conn, file_id, seq, chunk)?;
        let (Some(first), Some(last)) = (units.first(), units.last()) else {
            return Ok(());
        };
        let from = first.first_ordinal.max(after + 1);
        let to = last.first_ordinal + last.line_count;
        let mut rows = line_rows(conn, file_id, from, to, read)?
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
                let walked = match rows.next_if(|r| r.ordinal == ordinal) {
                    Some(line) => Walked {
                        line,
                        has_row: true,
                    },
                    None => match positions.get(i as usize) {
                        Some(&at) => Walked {
                            line: told_line(u, i, at),
                            has_row: false,
                        },
                        // Spans cut short: only a row could tell the line.
                        None => continue,
                    },
                };
                if !each(walked) {
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

/// Two runs of lines in file order as one, at most `limit`.
fn merged(a: Vec<LineView>, b: Vec<LineView>, limit: i64) -> Vec<LineView> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    while (out.len() as i64) < limit {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if y.ordinal < x.ordinal => b.next(),
            (Some(_), _) => a.next(),
            (None, _) => b.next(),
        };
        match next {
            Some(line) => out.push(line),
            None => break,
        }
    }
    out
}

/// Up to `limit` rejected line rows of a file after ordinal `after`, in order.
fn rejected_rows(conn: &Connection, file_id: i64, after: i64, limit: i64) -> Result<Vec<LineView>> {
    let rows = conn
        .prepare_cached(&format!(
            "SELECT {LINE_COLS} FROM lines WHERE file_id=?1 AND ordinal > ?2 AND status='rejected' \
             ORDER BY ordinal LIMIT ?3"
        ))?
        .query_map(params![file_id, after, limit], line_view)?
        .collect::<super::db::Result<Vec<_>>>()?;
    Ok(rows)
}

/// The next `limit` rejected units of a file from seq `from` on. A rejected unit always
/// has a row (only applied units are packed into runs).
fn rejected_units(
    conn: &Connection,
    file_id: i64,
    from: i64,
    limit: i64,
) -> Result<Vec<StoredUnit>> {
    let units = conn
        .prepare_cached(&format!(
            "SELECT {UNIT_COLS} FROM units WHERE file_id=?1 AND status='rejected' AND seq >= ?2 \
             ORDER BY seq LIMIT ?3"
        ))?
        .query_map(params![file_id, from, limit], stored_unit)?
        .collect::<super::db::Result<Vec<_>>>()?;
    Ok(units)
}

/// The line rows of a file with ordinals `from <= ordinal < to`, in order: whole, or
/// only their ordinals (the rest of each left empty).
fn line_rows(
    conn: &Connection,
    file_id: i64,
    from: i64,
    to: i64,
    read: Rows,
) -> Result<Vec<LineView>> {
    let p = params![file_id, from, to];
    let rows = match read {
        Rows::Whole => conn
            .prepare_cached(&format!(
                "SELECT {LINE_COLS} FROM lines WHERE file_id=?1 AND ordinal >= ?2 AND ordinal < ?3 \
                 ORDER BY ordinal"
            ))?
            .query_map(p, line_view)?
            .collect::<super::db::Result<Vec<_>>>()?,
        Rows::Ordinals => conn
            .prepare_cached(
                "SELECT ordinal FROM lines WHERE file_id=?1 AND ordinal >= ?2 AND ordinal < ?3 \
                 ORDER BY ordinal",
            )?
            .query_map(p, |r| Ok(ordinal_only(r.get(0)?)))?
            .collect::<super::db::Result<Vec<_>>>()?,
    };
    Ok(rows)
}

/// A row known only by its ordinal.
fn ordinal_only(ordinal: i64) -> LineView {
    LineView {
        ordinal,
        unit_seq: 0,
        line: 0,
        byte: 0,
        record: 0,
        locator: None,
        status: String::new(),
        key: None,
        rule: None,
        field: None,
        value: None,
        message: None,
        raw: None,
    }
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
