//! Where the lines of a unit are, kept in its row instead of one row per line.
//!
//! Most lines end as their unit does: applied, unchanged, unmapped, or duplicate (whose
//! reason is the unit's), with no reason of their own. Writing a row for each of them made
//! the ledger five times the size of its input and most of a batch's commit time. So only
//! lines with a reason (rejected, skipped) get a row; the unit's row keeps its first line's
//! position and, for the rest, the differences of line, byte and record from one line to
//! the next as varints (about three bytes a line; one when every line steps line and record
//! alike, as CSV rows and X12 segments do, two when only records step alike, as IDoc
//! segments over several lines do). From them every line's position can be told again:
//! for the console's page of lines, for "what happened to line N", and for the lines of a
//! unit rejected after it was committed (the file rejected whole, its output lost), which
//! rejects, reports and corrections files read through `rejected.rs`.

use super::db::{params, Connection, Transaction};

use super::{LineView, Result};
use crate::format::UnitStatus;
use crate::unit::Position;
pub(super) use crate::varint::{put_unsigned, take_unsigned};

/// Rejects, after they were committed, the units of a file whose status is one of
/// `statuses` and whose seq lies in the `lost` ranges: the unit rows take the rule as
/// their headline, which their lines without a row of their own are told with
/// (`rejected.rs`; a row each was four times the input's size for a file rejected whole),
/// and lines with a row that ended as their unit did are rejected too. Skipped lines stay
/// skipped.
pub(super) fn reject_late(
    tx: &Transaction,
    file_id: i64,
    statuses: &[UnitStatus],
    lost: &super::Lost,
    rule: &str,
    message: &str,
) -> Result<()> {
    // Packed units (runs.rs) become rows first, so the statements below see them; being
    // applied, those in range are written rejected at once when applied units are.
    let late = statuses
        .contains(&UnitStatus::Applied)
        .then_some((rule, message));
    for (_, from, to) in lost.list() {
        super::runs::unpack(tx, file_id, (from, to), late)?;
    }
    let statuses = super::db::quoted_list(statuses.iter().map(|s| s.as_str()));
    let ranges = &lost.ranges();
    let cond = format!("status IN ({statuses}) AND {}", lost.holds("seq"));
    // Lines with a row of their own that ended as their unit did: one statement for all
    // of them, not one per unit (most units have no such line).
    tx.execute(
        &format!(
            "UPDATE lines SET status='rejected', rule=?3, message=?4 WHERE file_id=?1 \
             AND status IN ('applied', 'duplicate', 'unmapped', 'unchanged') \
             AND unit_seq IN (SELECT seq FROM units WHERE file_id=?1 AND {cond})"
        ),
        params![file_id, ranges, rule, message],
    )?;
    tx.execute(
        &format!(
            "UPDATE units SET status='rejected', rule=?3, message=?4 WHERE file_id=?1 AND {cond}"
        ),
        params![file_id, ranges, rule, message],
    )?;
    Ok(())
}

/// Lines told from their units' rows, from ordinal `from` on, at most `limit`, in file
/// order (lines that have a row of their own are among them too: the caller prefers the
/// row).
pub(super) fn implied_lines(
    conn: &Connection,
    file_id: i64,
    from: i64,
    limit: i64,
) -> Result<Vec<LineView>> {
    let start = unit_starting_by(conn, file_id, from)?;
    let units: Vec<_> =
        super::runs::units_between(conn, file_id, start, i64::MAX, limit.max(0) as usize + 1)?
            .into_iter()
            .filter(|u| u.first_ordinal + u.line_count > from)
            .map(|u| {
                let view = LineView {
                    ordinal: u.first_ordinal,
                    unit_seq: u.seq,
                    line: u.first.0,
                    byte: u.first.1,
                    record: u.first.2,
                    locator: u.locator,
                    status: u.status,
                    key: u.key,
                    rule: u.rule,
                    field: None,
                    value: None,
                    message: u.message,
                    raw: None,
                };
                (view, u.line_count, u.spans)
            })
            .collect();
    let mut out = Vec::new();
    for (first, count, spans) in units {
        let lines = decode(
            (first.line, first.byte, first.record),
            spans.as_deref(),
            count,
        );
        for (i, (line, byte, record)) in lines.into_iter().enumerate() {
            let ordinal = first.ordinal + i as i64;
            if ordinal < from {
                continue;
            }
            let mut v = first.clone();
            (v.ordinal, v.line, v.byte, v.record) = (ordinal, line, byte, record);
            if i > 0 {
                v.locator = None;
            }
            // A duplicate's lines say why, as do those of a unit rejected after it was
            // committed (see `reject_late`); the rest have nothing of their own to say.
            if !matches!(v.status.as_str(), "duplicate" | "rejected") {
                (v.rule, v.message) = (None, None);
            }
            out.push(v);
            if out.len() as i64 >= limit {
                return Ok(out);
            }
        }
    }
    Ok(out)
}

/// The seq of the last unit of a file that starts at or before line `ordinal` (0 if none
/// does). Units start in file order, so halving the seq range through the primary key
/// finds it in a few dozen look-ups; a page of lines deep in a large file walked every
/// unit before it (131 ms at line 700,000 of a 50 MB file, growing with the file).
fn unit_starting_by(conn: &Connection, file_id: i64, ordinal: i64) -> Result<i64> {
    let last = super::runs::max_seq(conn, file_id)?.unwrap_or(0);
    last_starting_by(last, ordinal, |mid| {
        let next = super::runs::units_between(conn, file_id, mid, i64::MAX, 1)?.pop();
        Ok(next.map(|u| (u.seq, u.first_ordinal)))
    })
}

/// The seq, in `0..=last`, of the last unit that starts at or before line `ordinal` (0
/// if none does), by halving: `next(mid)` is the first unit at or after seq `mid`, as
/// `(seq, first ordinal)`, if there is one.
pub(super) fn last_starting_by(
    last: i64,
    ordinal: i64,
    mut next: impl FnMut(i64) -> Result<Option<(i64, i64)>>,
) -> Result<i64> {
    let (mut lo, mut hi) = (0, last);
    // The answer stays in lo..=hi: a unit at or after `mid` that starts by `ordinal` is
    // a better lo; one that starts after it rules out every unit from `mid` on.
    while lo < hi {
        let mid = lo + (hi - lo + 1) / 2;
        match next(mid)? {
            Some((seq, first)) if first <= ordinal => lo = seq,
            _ => hi = mid - 1,
        }
    }
    Ok(lo)
}

/// The position of every line of a unit after the first, as written in `units.spans`.
pub fn encode(lines: &[&Position]) -> Option<Vec<u8>> {
    if lines.len() < 2 {
        return None;
    }
    if let Some(spans) = encode_steady(lines).or_else(|| encode_forward(lines)) {
        return Some(spans);
    }
    let mut out = Vec::with_capacity(3 * lines.len());
    for w in lines.windows(2) {
        for (a, b) in [
            (w[0].line, w[1].line),
            (w[0].byte, w[1].byte),
            (w[0].record, w[1].record),
        ] {
            put(&mut out, b as i64 - a as i64);
        }
    }
    Some(out)
}

/// Starts spans whose lines all step line and record by the same amount (a CSV row or an
/// X12 segment per line, or every segment on one line): the two steps once, then only the
/// byte steps, unsigned. A segment took three bytes and takes one (an X12 set's spans,
/// 39 bytes, take 17). The mark is an over-long zero, which no varint written here begins
/// with, so spans of the general form (and those written before this form) never do.
const STEADY: [u8; 2] = [0x80, 0x00];

/// Starts spans whose lines step record alike and never go back in line or byte (an IDoc
/// segment over several lines): the record step once, then each line's line and byte
/// steps, unsigned (two or three bytes a line instead of four). An over-long one.
const FORWARD: [u8; 2] = [0x81, 0x00];

fn step(a: u64, b: u64) -> Option<u64> {
    b.checked_sub(a)
}

fn encode_steady(lines: &[&Position]) -> Option<Vec<u8>> {
    let line_step = step(lines[0].line, lines[1].line)?;
    let record_step = step(lines[0].record, lines[1].record)?;
    let mut out = Vec::with_capacity(4 + lines.len());
    out.extend_from_slice(&STEADY);
    put(&mut out, line_step as i64);
    put(&mut out, record_step as i64);
    for w in lines.windows(2) {
        if step(w[0].line, w[1].line)? != line_step
            || step(w[0].record, w[1].record)? != record_step
        {
            return None;
        }
        put_unsigned(&mut out, step(w[0].byte, w[1].byte)?);
    }
    Some(out)
}

fn encode_forward(lines: &[&Position]) -> Option<Vec<u8>> {
    let record_step = step(lines[0].record, lines[1].record)?;
    let mut out = Vec::with_capacity(3 + 2 * lines.len());
    out.extend_from_slice(&FORWARD);
    put(&mut out, record_step as i64);
    for w in lines.windows(2) {
        if step(w[0].record, w[1].record)? != record_step {
            return None;
        }
        put_unsigned(&mut out, step(w[0].line, w[1].line)?);
        put_unsigned(&mut out, step(w[0].byte, w[1].byte)?);
    }
    Some(out)
}

/// How a unit's spans are written (see [`encode`]).
enum Form {
    General,
    /// Line and record steps, the same for every line.
    Steady(i64, i64),
    /// The record step, the same for every line.
    Forward(i64),
}

/// The form `spans` are written in, and the rest after its mark and fixed steps; `None`
/// when those are cut short.
fn form(spans: &[u8]) -> Option<(Form, &[u8])> {
    if let Some(mut rest) = spans.strip_prefix(&STEADY) {
        let (dl, dr) = (take(&mut rest)?, take(&mut rest)?);
        return Some((Form::Steady(dl, dr), rest));
    }
    if let Some(mut rest) = spans.strip_prefix(&FORWARD) {
        let dr = take(&mut rest)?;
        return Some((Form::Forward(dr), rest));
    }
    Some((Form::General, spans))
}

/// The `(line, byte, record)` of each of a unit's `count` lines, from its first line and
/// its spans. Without spans (a unit of one line, or one written before spans were kept,
/// whose lines all have rows) only the first line is known.
pub fn decode(first: (i64, i64, i64), spans: Option<&[u8]>, count: i64) -> Vec<(i64, i64, i64)> {
    let mut out = vec![first];
    let Some((form, mut rest)) = spans.and_then(form) else {
        return out;
    };
    let mut cur = first;
    while (out.len() as i64) < count {
        let unsigned = |rest: &mut &[u8]| take_unsigned(rest).map(|v| v as i64);
        let step = match form {
            Form::Steady(dl, dr) => unsigned(&mut rest).map(|db| (dl, db, dr)),
            Form::Forward(dr) => match (unsigned(&mut rest), unsigned(&mut rest)) {
                (Some(dl), Some(db)) => Some((dl, db, dr)),
                _ => None,
            },
            Form::General => match (take(&mut rest), take(&mut rest), take(&mut rest)) {
                (Some(dl), Some(db), Some(dr)) => Some((dl, db, dr)),
                _ => None,
            },
        };
        let Some((dl, db, dr)) = step else {
            break;
        };
        cur = (cur.0 + dl, cur.1 + db, cur.2 + dr);
        out.push(cur);
    }
    out
}

pub(super) fn put(out: &mut Vec<u8>, v: i64) {
    put_unsigned(out, ((v << 1) ^ (v >> 63)) as u64);
}

pub(super) fn take(buf: &mut &[u8]) -> Option<i64> {
    let z = take_unsigned(buf)?;
    Some((z >> 1) as i64 ^ -((z & 1) as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_come_back_as_they_went_in_including_empty_lines_and_large_offsets() {
        let ps = [
            Position::new(2, 85, 2),
            Position::new(3, 160, 3),
            Position::new(4, 161, 0),
            Position::new(9, 5_000_000_000, 4),
        ];
        let refs: Vec<&Position> = ps.iter().collect();
        let spans = encode(&refs).unwrap();
        let back = decode((2, 85, 2), Some(&spans), 4);
        let want: Vec<(i64, i64, i64)> = ps
            .iter()
            .map(|p| (p.line as i64, p.byte as i64, p.record as i64))
            .collect();
        assert_eq!(back, want);
        assert!(spans.len() <= 3 * 3 + 5, "{} bytes", spans.len());
    }

    fn round_trip(ps: &[Position]) -> Vec<u8> {
        let refs: Vec<&Position> = ps.iter().collect();
        let spans = encode(&refs).unwrap();
        let first = (ps[0].line as i64, ps[0].byte as i64, ps[0].record as i64);
        let want: Vec<(i64, i64, i64)> = ps
            .iter()
            .map(|p| (p.line as i64, p.byte as i64, p.record as i64))
            .collect();
        assert_eq!(decode(first, Some(&spans), ps.len() as i64), want);
        spans
    }

    #[test]
    fn lines_that_step_alike_keep_one_byte_a_line() {
        // An X12 set of twelve segments, one a line, 45 to 195 bytes long.
        let mut ps = vec![Position::new(40, 1_000, 40)];
        for i in 1..12u64 {
            let last = ps.last().unwrap().clone();
            ps.push(Position::new(
                last.line + 1,
                last.byte + 30 + 15 * i,
                last.record + 1,
            ));
        }
        let spans = round_trip(&ps);
        assert_eq!(&spans[..2], &STEADY);
        // The mark, the two steps, a byte a segment and one more for the five of over 127
        // bytes; the general form took 42.
        assert_eq!(spans.len(), 2 + 2 + 11 + 5);
        // Every segment on one line: the line step is 0.
        let one_line: Vec<Position> = (0..5u64)
            .map(|i| Position::new(1, 106 + 40 * i, 2 + i))
            .collect();
        assert_eq!(&round_trip(&one_line)[..2], &STEADY);
    }

    #[test]
    fn spans_of_the_general_form_written_before_the_steady_one_still_read() {
        // (2,85,2) → (3,160,3) → (4,200,4) as an earlier build wrote them: zigzag triples.
        let old = [2, 150, 1, 2, 2, 80, 2];
        assert_eq!(
            decode((2, 85, 2), Some(&old), 3),
            vec![(2, 85, 2), (3, 160, 3), (4, 200, 4)]
        );
        // Line steps that differ take the forward form; record steps that differ, or lines
        // that go back, the general one.
        let uneven = [
            Position::new(1, 0, 1),
            Position::new(1, 10, 2),
            Position::new(2, 20, 3),
        ];
        assert_eq!(&round_trip(&uneven)[..2], &FORWARD);
        let back = [
            Position::new(1, 0, 1),
            Position::new(2, 10, 3),
            Position::new(3, 20, 4),
        ];
        let spans = round_trip(&back);
        assert!(![STEADY, FORWARD].contains(&[spans[0], spans[1]]));
    }

    #[test]
    fn segments_of_several_lines_keep_two_bytes_a_line() {
        // An IDoc of pretty-printed segments: 1 to 7 lines, 60 to 120 bytes each.
        let mut ps = vec![Position::new(4, 67, 1)];
        for i in 1..23u64 {
            let last = ps.last().unwrap().clone();
            ps.push(Position::new(
                last.line + 1 + i % 7,
                last.byte + 60 + 3 * i,
                last.record + 1,
            ));
        }
        let spans = round_trip(&ps);
        assert_eq!(&spans[..2], &FORWARD);
        // The mark, the record step, then a line step and a byte step a segment; the
        // general form took four bytes a segment (its byte steps past 63 take two).
        assert_eq!(spans.len(), 2 + 1 + 22 * 2);
    }

    #[test]
    fn one_line_units_keep_no_spans_and_truncated_spans_stop_short() {
        let p = Position::new(1, 0, 1);
        assert_eq!(encode(&[&p]), None);
        assert_eq!(decode((1, 0, 1), None, 3), vec![(1, 0, 1)]);
        assert_eq!(decode((1, 0, 1), Some(&[2, 0x80]), 3), vec![(1, 0, 1)]);
    }
}

#[cfg(test)]
mod seek_tests {
    use super::super::testplace::Place;
    use crate::unit::Position;

    /// Units of 1–3 lines, every fifth seq without a row (as units that leave none):
    /// the lines told from any ordinal on are those a walk from the first unit finds.
    #[test]
    fn lines_from_any_ordinal_start_where_a_walk_from_the_first_unit_would() {
        let p = Place::sqlite();
        let l = p.open();
        let mut sql = String::from(
            "INSERT INTO files(id, fingerprint, name, source_path, size, state, claimed_at) \
             VALUES (1, 'aa', 'f.csv', '/in/f.csv', 1, 'done', '2026-01-01');",
        );
        let mut ordinal = 0;
        let mut lines = Vec::new();
        for seq in 0..200 {
            let count = 1 + seq % 3;
            if seq % 5 != 4 {
                let pos: Vec<Position> = (ordinal..ordinal + count)
                    .map(|o| Position::new(o as u64 + 1, o as u64 * 10, o as u64 + 1))
                    .collect();
                let spans = super::encode(&pos.iter().collect::<Vec<_>>()).map_or(
                    "NULL".to_string(),
                    |b| {
                        let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
                        format!("x'{hex}'")
                    },
                );
                sql += &format!(
                    "INSERT INTO units(file_id, seq, label, status, first_ordinal, line_count, line, byte, record, spans) \
                     VALUES (1, {seq}, 'u', 'applied', {ordinal}, {count}, {}, {}, {}, {spans});",
                    ordinal + 1,
                    ordinal * 10,
                    ordinal + 1
                );
                lines.extend(ordinal..ordinal + count);
            }
            ordinal += count;
        }
        l.conn.execute_batch(&sql).unwrap();
        for from in 0..ordinal + 2 {
            let got: Vec<i64> = super::implied_lines(&l.conn, 1, from, 3)
                .unwrap()
                .into_iter()
                .map(|v| v.ordinal)
                .take(2)
                .collect();
            let want: Vec<i64> = lines
                .iter()
                .copied()
                .filter(|&o| o >= from)
                .take(2)
                .collect();
            assert_eq!(got, want, "from {from}");
        }
    }
}
