//! A file rejected whole after its documents were committed: its lines are told from the
//! documents' rows, not written a row each, and every reader of rejected lines shows them
//! as those rows showed them.

use super::super::testplace::{on_both, Place};
use super::*;
use crate::ledger::files::recount::{count, Totals, STATUSES};
use crate::unit::{Position, Reason};

on_both!(
    a_file_rejected_whole_tells_its_lines_from_their_documents,
    a_recount_from_rows_agrees_with_counting_them_in_sql,
    a_file_failed_in_part_keeps_what_lies_outside_its_lost_units,
);

/// Line `o` of the test file: a record a line, ten bytes each.
fn at(o: i64) -> Position {
    Position::new(o as u64 + 1, 10 * o as u64, o as u64 + 1)
}

/// Five documents of three lines: applied, rejected as read (a row each, with the line),
/// applied with its middle line skipped, a duplicate, applied. Then the file is rejected
/// whole.
fn file_rejected_whole(l: &mut Ledger) -> i64 {
    let run = l.begin_run("t").unwrap();
    let f = l.insert_file(&nf("abc"), run).unwrap();
    let statuses = [
        UnitStatus::Applied,
        UnitStatus::Rejected,
        UnitStatus::Applied,
        UnitStatus::Duplicate,
        UnitStatus::Applied,
    ];
    let (mut units, mut lines) = (Vec::new(), Vec::new());
    for (seq, status) in statuses.into_iter().enumerate() {
        let seq = seq as i64;
        let ordinals = seq * 3..seq * 3 + 3;
        for o in ordinals.clone() {
            let (status, reason) = match (status, o % 3) {
                (UnitStatus::Rejected, _) => ("rejected", Reason::new("bad", "a bad value")),
                (_, 1) if seq == 2 => ("skipped", Reason::new("skipped", "blank")),
                _ => continue,
            };
            let raw = Some(format!("line {o}"));
            let (unit_seq, pos, key) = (seq, at(o), Some(format!("K{seq}")));
            lines.push(LineRow {
                ordinal: o,
                unit_seq,
                pos,
                status,
                key,
                reason: Some(reason),
                raw,
            });
        }
        let positions: Vec<Position> = ordinals.map(at).collect();
        units.push(UnitRow {
            key: Some(format!("K{seq}")),
            first_ordinal: seq * 3,
            line_count: 3,
            pos: at(seq * 3),
            spans: crate::ledger::spans::encode(&positions.iter().collect::<Vec<_>>()),
            ..unit_row(seq, status)
        });
    }
    let tx = l.batch(f.id).unwrap();
    tx.write_lines(f.id, &lines).unwrap();
    tx.write_units(f.id, &units, &lines).unwrap();
    tx.commit().unwrap();
    l.decide(f.id, Outcome::Rejected, Some("why"), &[]).unwrap();
    f.id
}

/// What each rejected line says: (line, byte, key, rule, message, original).
type Said = (
    i64,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn a_file_rejected_whole_tells_its_lines_from_their_documents(p: Place) {
    let mut l = p.open();
    let f = file_rejected_whole(&mut l);
    let rows: i64 = l
        .conn
        .query_row("SELECT COUNT(*) FROM lines", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 4, "no row for a line rejected late");
    let file = l.file(f).unwrap();
    assert_eq!(
        (file.counts.lines_rejected, file.counts.lines_skipped),
        (14, 1)
    );

    let late = "file rejected whole: why".to_string();
    let want: Vec<Said> = (0..15)
        .filter(|&o| o != 7)
        .map(|o| {
            let (p, key) = (at(o), Some(format!("K{}", o / 3)));
            match o / 3 == 1 {
                true => (
                    p.line as i64,
                    p.byte as i64,
                    key,
                    Some("bad".into()),
                    Some("a bad value".into()),
                    Some(format!("line {o}")),
                ),
                false => (
                    p.line as i64,
                    p.byte as i64,
                    key,
                    Some("file-rejected".into()),
                    Some(late.clone()),
                    None,
                ),
            }
        })
        .collect();
    for limit in [1, 2, 3, 100] {
        let (mut paged, mut after) = (Vec::new(), -1);
        while let Some((last, _)) = l.rejects_after(f, after, limit).unwrap().last().cloned() {
            let page = l.rejects_after(f, after, limit).unwrap();
            paged.extend(
                page.into_iter()
                    .map(|(_, r)| (r.line, r.byte, r.key, r.rule, r.message, r.original)),
            );
            after = last;
        }
        assert_eq!(paged, want, "rejects in pages of {limit}");

        let (mut shown, mut from) = (Vec::new(), 0);
        while let Some(page) =
            Some(l.file_lines(f, from, limit, true).unwrap()).filter(|p| !p.is_empty())
        {
            from = page.last().unwrap().ordinal + 1;
            shown.extend(
                page.into_iter()
                    .map(|v| (v.line, v.byte, v.key, v.rule, v.message, v.raw)),
            );
        }
        assert_eq!(
            shown, want,
            "the console's rejected lines in pages of {limit}"
        );

        // The corrections file's lines: every line of a rejected document, the skipped one
        // too, each with where the next line starts.
        // Every line here is one of a rejected document, so a writer that finds a line's
        // end itself (not `exact`) is told each next line too, from the page or the line
        // after it.
        let want: Vec<_> = (0..15)
            .map(|o| {
                let status = if o == 7 { "skipped" } else { "rejected" };
                let next = (o < 14).then(|| at(o + 1).byte as i64);
                (o, status.to_string(), at(o).byte as i64, next)
            })
            .collect();
        for exact in [true, false] {
            let (mut lines, mut after) = (Vec::new(), None);
            loop {
                let page = l.rejected_document_lines(f, after, limit, exact).unwrap();
                let Some(last) = page.last() else { break };
                after = Some((last.unit_seq, last.ordinal));
                lines.extend(
                    page.into_iter()
                        .map(|c| (c.ordinal, c.status, c.byte, c.next_byte)),
                );
            }
            assert_eq!(
                lines, want,
                "corrections lines in pages of {limit}, exact {exact}"
            );
        }
    }
    let lines = l.file_lines(f, 0, 100, false).unwrap();
    let told: Vec<_> = lines
        .iter()
        .map(|v| (v.ordinal, v.status.as_str(), v.rule.as_deref()))
        .collect();
    assert_eq!(
        told[0],
        (0, "rejected", Some("file-rejected")),
        "what happened to line 1"
    );
    assert_eq!(told[7], (7, "skipped", Some("skipped")));
    assert_eq!(told.len(), 15);
}

/// Three batches of seven documents, each status the ledger keeps, of one to four lines:
/// applied ones packed (one with a skipped line), rejected ones with a row a line,
/// duplicates, unmapped and unchanged ones, and a skipped unit.
fn mixed_file(l: &mut Ledger, fp: &str) -> i64 {
    let run = l.begin_run("t").unwrap();
    let f = l.insert_file(&nf(fp), run).unwrap().id;
    let statuses = [
        UnitStatus::Applied,
        UnitStatus::Rejected,
        UnitStatus::Duplicate,
        UnitStatus::Applied,
        UnitStatus::Unmapped,
        UnitStatus::Unchanged,
        UnitStatus::Skipped,
    ];
    let (mut seq, mut ordinal) = (0i64, 0i64);
    for _batch in 0..3 {
        let (mut units, mut lines) = (Vec::new(), Vec::new());
        for status in statuses {
            let count = 1 + seq % 4;
            for o in ordinal..ordinal + count {
                let (line_status, reason) = match status {
                    UnitStatus::Rejected => ("rejected", Reason::new("bad", "a bad value")),
                    UnitStatus::Skipped => ("skipped", Reason::new("skipped", "blank")),
                    _ if o == ordinal + 1 => ("skipped", Reason::new("skipped", "blank")),
                    _ => continue,
                };
                lines.push(LineRow {
                    ordinal: o,
                    unit_seq: seq,
                    pos: at(o),
                    status: line_status,
                    key: Some(format!("K{seq}")),
                    reason: Some(reason),
                    raw: Some(format!("line {o}")),
                });
            }
            let positions: Vec<Position> = (ordinal..ordinal + count).map(at).collect();
            units.push(UnitRow {
                key: Some(format!("K{seq}")),
                first_ordinal: ordinal,
                line_count: count,
                pos: at(ordinal),
                spans: crate::ledger::spans::encode(&positions.iter().collect::<Vec<_>>()),
                ..unit_row(seq, status)
            });
            (seq, ordinal) = (seq + 1, ordinal + count);
        }
        let tx = l.batch(f).unwrap();
        tx.write_lines(f, &lines).unwrap();
        tx.write_units(f, &units, &lines).unwrap();
        tx.commit().unwrap();
    }
    f
}

/// Lines and units of each status as one SQL statement counts them from the rows: the
/// statement the ledger recounted with before `files::recount` (a pass per status and a
/// range probe per unit), kept as the oracle.
fn counted_in_sql(l: &Ledger, f: i64) -> Totals {
    let statuses = STATUSES;
    let lines = |s: &str| {
        format!(
            "(SELECT COUNT(*) FROM lines WHERE file_id=?1 AND status='{s}') + \
             (SELECT COALESCE(SUM(u.line_count - (SELECT COUNT(*) FROM lines l WHERE l.file_id = u.file_id \
             AND l.ordinal >= u.first_ordinal AND l.ordinal < u.first_ordinal + u.line_count)), 0) \
             FROM units u WHERE u.file_id=?1 AND u.status='{s}')"
        )
    };
    let units = |s: &str| format!("(SELECT COUNT(*) FROM units WHERE file_id=?1 AND status='{s}')");
    let mut cols: Vec<String> = statuses.iter().map(|s| lines(s)).collect();
    cols[0] += " + (SELECT COALESCE(SUM(lines - row_lines), 0) FROM unit_runs WHERE file_id=?1)";
    cols.extend(statuses.iter().map(|s| units(s)));
    cols[6] += " + (SELECT COALESCE(SUM(units), 0) FROM unit_runs WHERE file_id=?1)";
    let sql = format!("SELECT {}", cols.join(", "));
    let mut t = Totals::default();
    l.conn
        .query_row(&sql, [f], |r| {
            for i in 0..6 {
                t.lines[i] = r.get(i)?;
                // Units are never skipped: the statement never counted them.
                t.units[i] = if i == 3 { 0 } else { r.get(6 + i)? };
            }
            Ok(())
        })
        .unwrap();
    t
}

/// The file's totals as its row keeps them, in [`counted_in_sql`]'s form.
fn kept(l: &Ledger, f: i64) -> Totals {
    let c = l.file(f).unwrap().counts;
    Totals {
        lines: [
            c.lines_applied,
            c.lines_rejected,
            c.lines_duplicate,
            c.lines_skipped,
            c.lines_unmapped,
            c.lines_unchanged,
        ],
        units: [
            c.units_applied,
            c.units_rejected,
            c.units_duplicate,
            0,
            c.units_unmapped,
            c.units_unchanged,
        ],
    }
}

fn a_recount_from_rows_agrees_with_counting_them_in_sql(p: Place) {
    let mut l = p.open();
    let f = mixed_file(&mut l, "mixed");
    let agree = |l: &Ledger, when: &str| {
        let want = counted_in_sql(l, f);
        for page in [1, 2, 3, 5, 10_000] {
            let got = count(&l.conn, f, page).unwrap();
            assert_eq!(got, want, "{when}, in pages of {page}");
        }
        want
    };
    let before = agree(&l, "as committed");
    assert!(
        before.lines.iter().all(|&n| n > 0),
        "every status has lines: {before:?}"
    );
    l.decide(f, Outcome::Rejected, Some("why"), &[]).unwrap();
    let after = agree(&l, "rejected whole");
    assert_eq!(kept(&l, f), after, "the file's row");
    let total: i64 = before.lines.iter().sum();
    assert_eq!(
        after.lines.iter().sum::<i64>(),
        total,
        "no line lost or doubled"
    );
    assert_eq!(after.lines[0] + after.lines[2] + after.lines[4], 0);
    // Unchanged documents stand (nothing of them was sent); their lines too.
    assert_eq!(after.units[5], before.units[5]);
}

/// A failed file whose lost output is units 9..16 (a range that starts and ends inside a
/// batch's packed run): only those units are rejected; the applied units of the same runs
/// outside it stay applied, and the totals agree with the rows.
fn a_file_failed_in_part_keeps_what_lies_outside_its_lost_units(p: Place) {
    let mut l = p.open();
    let f = mixed_file(&mut l, "failed");
    let lost = Lost::Chunks(vec![("order".into(), 9, 16)]);
    l.fail(f, "output-lost", "its output was lost", &lost)
        .unwrap();
    let status_of = |seq: i64| -> String {
        l.conn
            .query_row(
                "SELECT status FROM units WHERE file_id=?1 AND seq=?2",
                params![f, seq],
                |r| r.get(0),
            )
            .unwrap_or_else(|_| "packed".into())
    };
    // Units 7..14 are the second batch; 7 and 10 applied, 14 the third batch's first.
    assert_eq!(status_of(7), "applied", "in the run, before the range");
    assert_eq!(status_of(10), "rejected", "in range");
    assert_eq!(status_of(14), "rejected", "in range, the next batch");
    assert_eq!(status_of(17), "applied", "in that run, after the range");
    let rule: Option<String> = l
        .conn
        .query_row(
            "SELECT rule FROM units WHERE file_id=?1 AND seq=10",
            [f],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rule.as_deref(), Some("output-lost"));
    assert_eq!(kept(&l, f), counted_in_sql(&l, f));
}
