//! Reading units back, whether they have a row in `units` or sit in a packed run: every
//! reader of units goes through here, so each sees both kinds merged in seq order.

use super::layout::RunIndex;
use super::{Decode, StoredUnit, FROM_RUN};
use crate::ledger::db::{params, Connection, OptionalExtension};
use crate::ledger::Result;

/// The units of a file with `from <= seq < to`, in seq order, at most `limit`.
pub(in crate::ledger) fn units_between(
    conn: &Connection,
    file_id: i64,
    from: i64,
    to: i64,
    limit: usize,
) -> Result<Vec<StoredUnit>> {
    units_decoded(conn, file_id, from, to, limit, Decode::Whole, None)
}

/// The outcomes of a window of units, for acknowledgements (see [`outcomes_between`]).
pub(in crate::ledger) struct Outcomes {
    /// The units with a row, and those of runs that had to be inflated (decoded as
    /// [`Decode::Outcome`] says), in seq order.
    pub units: Vec<StoredUnit>,
    /// The seqs, in order, of the units a run without details tells are applied with
    /// nothing to say (see [`applied_seqs`]).
    pub applied: Vec<i64>,
}

/// The outcomes of units `from <= seq < to` of a file: a 997 asks the outcome of every
/// set, and inflating and decoding every run, then making a unit of each set, was most of
/// writing it. A run none of whose units has a detail (`details` 0) is not inflated: its
/// units are applied, with nothing to say, and only their seqs are given.
pub(in crate::ledger) fn outcomes_between(
    conn: &Connection,
    file_id: i64,
    from: i64,
    to: i64,
) -> Result<Outcomes> {
    let mut applied = Vec::new();
    let units = units_decoded(
        conn,
        file_id,
        from,
        to,
        usize::MAX,
        Decode::Outcome,
        Some(&mut applied),
    )?;
    Ok(Outcomes { units, applied })
}

/// Where a window of units starting before `seq` had best end: the end of the run that
/// holds `seq`, so the window inflates each run it reads once, not again for the next
/// window; `seq` itself when no run holds it.
pub(in crate::ledger) fn window_end(conn: &Connection, file_id: i64, seq: i64) -> Result<i64> {
    let end: Option<i64> = conn
        .prepare_cached(
            "SELECT end_seq FROM unit_runs WHERE file_id=?1 AND first_seq <= ?2 \
             ORDER BY first_seq DESC LIMIT 1",
        )?
        .query_row(params![file_id, seq], |r| r.get(0))
        .optional()?;
    Ok(end.filter(|&e| e > seq).unwrap_or(seq))
}

fn units_decoded(
    conn: &Connection,
    file_id: i64,
    from: i64,
    to: i64,
    limit: usize,
    decode: Decode,
    mut applied: Option<&mut Vec<i64>>,
) -> Result<Vec<StoredUnit>> {
    let rows = row_units(conn, file_id, from, to, limit)?;
    let mut packed = Vec::new();
    let mut st = conn.prepare_cached(
        &format!("SELECT first_seq, end_seq, packed, units, details FROM unit_runs WHERE file_id=?1 AND {FROM_RUN} AND end_seq > ?2 AND first_seq < ?3 ORDER BY first_seq"),
    )?;
    // Every row of the window is at hand only when no limit cut them.
    let whole = limit == usize::MAX;
    let mut q = st.query(params![file_id, from, to])?;
    while let Some(r) = q.next()? {
        let (first, end): (i64, i64) = (r.get(0)?, r.get(1)?);
        if let Some(applied) = applied.as_deref_mut().filter(|_| whole) {
            let (units, details) = (r.get(3)?, r.get(4)?);
            if let Some(seqs) = applied_seqs(&rows, first..end, from..to, units, details) {
                applied.extend(seqs);
                continue;
            }
        }
        let blob: Vec<u8> = r.get(2)?;
        let run = RunIndex::new(file_id, first, end, &blob)?;
        run.between(
            from,
            to,
            limit - packed.len().min(limit),
            decode,
            &mut packed,
        )?;
        if packed.len() >= limit {
            break;
        }
    }
    Ok(merge(rows, packed, limit))
}

/// The seqs of a run's units (`count` of them in `run`), when none of them has a detail
/// (`details` 0) and the window asked (`window`, whose unit rows are `rows`) holds the
/// whole run: a run's units are the seqs of its range that have no row (its batch wrote
/// every unit one way or the other). `None` when that cannot be told (units with a detail,
/// a run written before `details` was kept, a run reaching out of the window, a count that
/// does not add up): the run is inflated instead.
fn applied_seqs<'r>(
    rows: &'r [StoredUnit],
    run: std::ops::Range<i64>,
    window: std::ops::Range<i64>,
    count: i64,
    details: Option<i64>,
) -> Option<impl Iterator<Item = i64> + 'r> {
    if details != Some(0) || run.start < window.start || run.end > window.end {
        return None;
    }
    let from = rows.partition_point(|u| u.seq < run.start);
    let to = rows.partition_point(|u| u.seq < run.end);
    let with_rows = &rows[from..to.max(from)];
    if run.end - run.start - with_rows.len() as i64 != count {
        return None;
    }
    let mut next_row = with_rows.iter().map(|u| u.seq).peekable();
    Some(run.filter(move |&seq| match next_row.peek() {
        Some(&r) if r == seq => {
            next_row.next();
            false
        }
        _ => true,
    }))
}

/// The unit `seq` of a file, if the ledger has it.
pub(in crate::ledger) fn unit_at(
    conn: &Connection,
    file_id: i64,
    seq: i64,
) -> Result<Option<StoredUnit>> {
    UnitReader::new(conn).get(file_id, seq)
}

/// Looks up single units, keeping the last run it inflated (a [`RunIndex`]): asked in file
/// order (a page of dead letters, a chunk's records), each run is inflated once, not once a
/// unit, and only the units asked are decoded.
pub(in crate::ledger) struct UnitReader<'c> {
    conn: &'c Connection,
    /// The run looked at last.
    run: Option<RunIndex>,
}

impl<'c> UnitReader<'c> {
    pub fn new(conn: &'c Connection) -> Self {
        UnitReader { conn, run: None }
    }

    pub fn get(&mut self, file_id: i64, seq: i64) -> Result<Option<StoredUnit>> {
        if let Some(u) = row_units(self.conn, file_id, seq, seq + 1, 1)?.pop() {
            return Ok(Some(u));
        }
        self.get_packed(file_id, seq, Decode::Whole)
    }

    /// The packed copy of unit `seq`, if a run holds one, decoded as `decode` says: for a
    /// caller that knows the unit has no row.
    pub fn get_packed(
        &mut self,
        file_id: i64,
        seq: i64,
        decode: Decode,
    ) -> Result<Option<StoredUnit>> {
        if !self.run.as_ref().is_some_and(|r| r.holds(file_id, seq)) {
            self.run = None;
            let mut st = self.conn.prepare_cached(
                "SELECT first_seq, end_seq, packed FROM unit_runs WHERE file_id=?1 AND first_seq <= ?2 \
                 ORDER BY first_seq DESC LIMIT 1",
            )?;
            let mut q = st.query(params![file_id, seq])?;
            if let Some(r) = q.next()? {
                let blob: Vec<u8> = r.get(2)?;
                self.run = Some(RunIndex::new(file_id, r.get(0)?, r.get(1)?, &blob)?);
            }
        }
        match &self.run {
            Some(run) if run.holds(file_id, seq) => run.get(seq, decode),
            _ => Ok(None),
        }
    }
}

/// The highest seq of a file's units (`None` when it has none).
pub(in crate::ledger) fn max_seq(conn: &Connection, file_id: i64) -> Result<Option<i64>> {
    let row: Option<i64> = conn.query_row(
        "SELECT MAX(seq) FROM units WHERE file_id=?1",
        params![file_id],
        |r| r.get(0),
    )?;
    let run: Option<i64> = conn
        .prepare_cached(
            "SELECT end_seq - 1 FROM unit_runs WHERE file_id=?1 ORDER BY first_seq DESC LIMIT 1",
        )?
        .query_row(params![file_id], |r| r.get(0))
        .optional()?;
    Ok(row.max(run))
}

/// A file's units with a row of their own, `from <= seq < to`, at most `limit`.
fn row_units(
    conn: &Connection,
    file_id: i64,
    from: i64,
    to: i64,
    limit: usize,
) -> Result<Vec<StoredUnit>> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {UNIT_COLS} FROM units WHERE file_id=?1 AND seq >= ?2 AND seq < ?3 ORDER BY seq LIMIT ?4"
    ))?;
    let limit = limit.min(i64::MAX as usize) as i64;
    let rows = st
        .query_map(params![file_id, from, to, limit], stored_unit)?
        .collect::<crate::ledger::db::Result<Vec<_>>>()?;
    Ok(rows)
}

/// The columns of `units` [`stored_unit`] reads, in its order.
pub(in crate::ledger) const UNIT_COLS: &str =
    "seq, label, status, key, first_ordinal, line_count, line, byte, \
     record, locator, spans, rule, message, reasons, detail";

/// A `units` row selected as [`UNIT_COLS`].
pub(in crate::ledger) fn stored_unit(
    r: &crate::ledger::db::Row<'_>,
) -> crate::ledger::db::Result<StoredUnit> {
    Ok(StoredUnit {
        seq: r.get(0)?,
        label: r.get(1)?,
        status: r.get(2)?,
        key: r.get(3)?,
        first_ordinal: r.get(4)?,
        line_count: r.get(5)?,
        first: (r.get(6)?, r.get(7)?, r.get(8)?),
        locator: r.get(9)?,
        spans: r.get(10)?,
        rule: r.get(11)?,
        message: r.get(12)?,
        reasons: r.get(13)?,
        detail: r.get(14)?,
    })
}

/// Both lists (each in seq order) as one, in seq order, at most `limit`; a seq in both
/// comes from `rows`.
fn merge(rows: Vec<StoredUnit>, packed: Vec<StoredUnit>, limit: usize) -> Vec<StoredUnit> {
    let mut out = Vec::with_capacity((rows.len() + packed.len()).min(limit));
    let mut a = rows.into_iter().peekable();
    let mut b = packed.into_iter().peekable();
    while out.len() < limit {
        let take_row = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => x.seq <= y.seq,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        let u = if take_row { a.next() } else { b.next() };
        let Some(u) = u else { break };
        if take_row && b.peek().is_some_and(|y| y.seq == u.seq) {
            b.next();
        }
        out.push(u);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::runs::Packed;

    #[test]
    fn merged_units_come_in_seq_order_and_a_row_wins_over_its_packed_copy() {
        let s = |seq: i64, status: &str| StoredUnit {
            seq,
            status: status.into(),
            ..StoredUnit::packed(Packed {
                seq,
                label: String::new(),
                key: None,
                first_ordinal: seq,
                line_count: 1,
                first: (0, 0, 0),
                locator: None,
                spans: None,
                detail: None,
            })
        };
        let rows = vec![s(1, "rejected"), s(4, "rejected"), s(5, "duplicate")];
        let packed = vec![
            s(0, "applied"),
            s(2, "applied"),
            s(4, "applied"),
            s(6, "applied"),
        ];
        let got: Vec<(i64, String)> = merge(rows, packed, 10)
            .into_iter()
            .map(|u| (u.seq, u.status))
            .collect();
        let want = [
            (0, "applied"),
            (1, "rejected"),
            (2, "applied"),
            (4, "rejected"),
            (5, "duplicate"),
            (6, "applied"),
        ];
        assert_eq!(got, want.map(|(s, t)| (s, t.to_string())));
        assert_eq!(
            merge(
                vec![s(3, "rejected")],
                vec![s(0, "applied"), s(1, "applied")],
                2
            )
            .len(),
            2
        );
    }
}
