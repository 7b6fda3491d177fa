//! Units read back: applied units packed a batch to a run, outcomes read a window ahead
//! for acknowledgements, a rejected unit's reasons, runs told without inflating them.

use super::super::testplace::{on_both, Place};
use super::*;

on_both!(
    outcomes_read_ahead_answer_every_unit_as_its_row_says,
    a_rejected_units_reasons_read_back_as_written_whether_kept_once_or_as_json,
    outcomes_of_runs_without_details_are_told_without_inflating_them,
    packed_units_read_back_as_their_rows_did_until_unpacked,
    rejected_lines_page_with_their_file_and_document_names,
);

/// Writes a unit for each of `seqs` with its status and detail, in batches of 700 units
/// (each batch's applied units packed into its run, as a committed batch's are).
fn write_in_batches(
    l: &mut Ledger,
    file_id: i64,
    seqs: impl Iterator<Item = i64>,
    status: impl Fn(i64) -> UnitStatus,
    detail: impl Fn(i64) -> serde_json::Value,
) {
    let rows: Vec<UnitRow> = seqs
        .map(|s| UnitRow {
            detail: detail(s),
            ..unit_row(s, status(s))
        })
        .collect();
    for batch in rows.chunk_by(|a, b| a.seq / 700 == b.seq / 700) {
        let tx = l.batch(file_id).unwrap();
        tx.write_units(file_id, batch, &[]).unwrap();
        tx.commit().unwrap();
    }
}

/// Outcomes are read a window at a time for acknowledgements; units without a row (and
/// windows that end in a gap, or stretch to the end of a batch's run) are told as before,
/// in order or not, a packed unit with its detail; a unit taken out of the window (`take`)
/// is told again when asked again.
fn outcomes_read_ahead_answer_every_unit_as_its_row_says(p: Place) {
    use crate::format::UnitOutcomes;
    let mut l = p.open();
    let run = l.begin_run("t").unwrap();
    let f = l.insert_file(&nf("a"), run).unwrap();
    let status = |seq: i64| match seq % 3 {
        0 => UnitStatus::Applied,
        1 => UnitStatus::Rejected,
        _ => UnitStatus::Skipped,
    };
    // Every unit but those between 2400 and 4400, and every seventh: windows of 2,048
    // (files.rs) end in and after the gap.
    let detail = |seq: i64| serde_json::json!({ "n": seq });
    let seqs = (0..6000).filter(|s| !(2400..4400).contains(s) && s % 7 != 0);
    write_in_batches(&mut l, f.id, seqs, status, detail);
    let outcomes = LedgerOutcomes::new(&l, f.id);
    let asked = (0..6400).chain([5, 5999, 3, 20, 10, 4400, 4398, 4398]);
    for (i, seq) in asked.enumerate() {
        let want = (seq < 6000 && !(2400..4400).contains(&seq) && seq % 7 != 0)
            .then(|| (status(seq as i64), detail(seq as i64)));
        let got = match i % 3 {
            0 => outcomes.get(seq),
            1 => outcomes.take(seq),
            _ => outcomes.take(seq).and(outcomes.take(seq)),
        };
        assert_eq!(got.map(|u| (u.status, u.detail)), want, "unit {seq}");
    }
    assert!(outcomes.failure().is_none());
}

/// A rejected unit's reasons that are its rejected lines' rows are kept there only
/// (reasons.rs); every other unit keeps them as JSON. Either way an acknowledgement reads
/// back what was written.
fn a_rejected_units_reasons_read_back_as_written_whether_kept_once_or_as_json(p: Place) {
    use crate::format::UnitOutcomes;
    use crate::unit::{Position, Reason};
    let mut l = p.open();
    let run = l.begin_run("t").unwrap();
    let f = l.insert_file(&nf("a"), run).unwrap();
    let whole = Reason::new("rejected-with-document", "rejected as a whole");
    let bad = Reason::new("min", "too small")
        .field("quantity")
        .value("-1");
    let blank = Reason::new("blank", "a blank line");
    // Each unit: its status, its lines' (status, reason), and the reasons it was given
    // as indexes of its lines, the last one maybe a unit error at its first line.
    type Case<'a> = (
        UnitStatus,
        Vec<(&'static str, &'a Reason)>,
        Vec<usize>,
        Option<Reason>,
    );
    let cases: Vec<Case> = vec![
        (
            UnitStatus::Rejected,
            vec![
                ("rejected", &whole),
                ("rejected", &bad),
                ("rejected", &whole),
            ],
            vec![0, 1, 2],
            None,
        ),
        (
            UnitStatus::Rejected,
            vec![
                ("rejected", &bad),
                ("skipped", &blank),
                ("rejected", &whole),
            ],
            vec![0, 2],
            None,
        ),
        (
            UnitStatus::Rejected,
            vec![("rejected", &bad), ("rejected", &whole)],
            vec![0, 1],
            Some(Reason::new("conflict", "key held")),
        ),
        (
            UnitStatus::Rejected,
            vec![("rejected", &bad)],
            vec![],
            Some(bad.clone().at("Prices!E8")),
        ),
        (UnitStatus::Applied, vec![("rejected", &bad)], vec![0], None),
        (
            UnitStatus::Rejected,
            vec![("rejected", &whole), ("rejected", &bad)],
            vec![1],
            None,
        ),
    ];
    let (mut units, mut lines, mut ordinal) = (Vec::new(), Vec::new(), 0i64);
    for (seq, (status, unit_lines, given, unit_error)) in cases.iter().enumerate() {
        let seq = seq as i64;
        let pos = |i: usize| {
            Position::new(
                (ordinal + i as i64 + 1) as u64,
                10 * (ordinal + i as i64) as u64,
                1,
            )
        };
        let mut reasons: Vec<_> = given
            .iter()
            .map(|&i| (pos(i), unit_lines[i].1.clone()))
            .collect();
        reasons.extend(unit_error.iter().map(|r| (pos(0), r.clone())));
        for (i, (st, r)) in unit_lines.iter().enumerate() {
            lines.push(LineRow {
                ordinal: ordinal + i as i64,
                unit_seq: seq,
                pos: pos(i),
                status: st,
                key: None,
                reason: Some((*r).clone()),
                raw: Some("x".into()),
            });
        }
        units.push(UnitRow {
            first_ordinal: ordinal,
            line_count: unit_lines.len() as i64,
            pos: pos(0),
            reasons,
            ..unit_row(seq, *status)
        });
        ordinal += unit_lines.len() as i64;
    }
    let tx = l.batch(f.id).unwrap();
    tx.write_lines(f.id, &lines).unwrap();
    tx.write_units(f.id, &units, &lines).unwrap();
    tx.commit().unwrap();
    let kept: Vec<String> = (0..units.len() as i64)
        .map(|seq| {
            l.conn
                .query_row(
                    "SELECT reasons FROM units WHERE file_id=?1 AND seq=?2",
                    db::params![f.id, seq],
                    |r| r.get(0),
                )
                .unwrap()
        })
        .collect();
    let once: Vec<bool> = kept.iter().map(|k| k == reasons::FROM_LINES).collect();
    assert_eq!(once, [true, true, false, false, false, false], "{kept:?}");
    let outcomes = LedgerOutcomes::new(&l, f.id);
    for u in &units {
        let got = outcomes.get(u.seq as u64).unwrap();
        assert_eq!(
            (got.status, &got.reasons),
            (u.status, &u.reasons),
            "unit {}",
            u.seq
        );
    }
    assert!(outcomes.failure().is_none());
}

/// A run none of whose units has a detail tells its units' outcomes without being
/// inflated (runs.rs `applied_seqs`); one it cannot tell that way (a unit missing from its
/// range, a count that does not add up, a run written before `details`) is inflated.
fn outcomes_of_runs_without_details_are_told_without_inflating_them(p: Place) {
    use crate::format::UnitOutcomes;
    let mut l = p.open();
    let run = l.begin_run("t").unwrap();
    let f = l.insert_file(&nf("a"), run).unwrap();
    let status = |seq: i64| match seq % 3 {
        1 => UnitStatus::Rejected,
        _ => UnitStatus::Applied,
    };
    // Batches of 700; those of odd number give some applied units a detail.
    let detail = |seq: i64| match (seq / 700) % 2 == 1 && seq % 5 == 0 {
        true => serde_json::json!({ "n": seq }),
        false => serde_json::Value::Null,
    };
    let present = |seq: i64| !(1500..1510).contains(&seq);
    write_in_batches(
        &mut l,
        f.id,
        (0..4200).filter(|&s| present(s)),
        status,
        detail,
    );
    let details: Vec<(i64, Option<i64>)> = {
        let mut st = l
            .conn
            .prepare("SELECT first_seq, details FROM unit_runs ORDER BY first_seq")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<db::Result<_>>()
            .unwrap()
    };
    let want_runs = [
        (0, Some(0)),
        (701, Some(93)),
        (1400, Some(0)),
        (2100, Some(94)),
        (2801, Some(0)),
        (3500, Some(93)),
    ];
    assert_eq!(details, want_runs);
    // Batch 0's run can no longer be inflated: its units must be told from its row.
    // Batch 2's run misses ten units, and batch 4's is made like a run written before
    // `details`: both are inflated.
    l.conn
        .execute(
            "UPDATE unit_runs SET packed = ?1 WHERE first_seq = 0",
            db::params![vec![0u8]],
        )
        .unwrap();
    l.conn
        .execute_batch("UPDATE unit_runs SET details = NULL WHERE first_seq = 2801")
        .unwrap();
    let want = |seq: i64| (seq < 4200 && present(seq)).then(|| (status(seq), detail(seq)));
    let outcomes = LedgerOutcomes::new(&l, f.id);
    for seq in 0..4300 {
        let got = outcomes.get(seq).map(|u| (u.status, u.detail));
        assert_eq!(got, want(seq as i64), "unit {seq}");
    }
    assert!(outcomes.failure().is_none());
    // A count that does not add up is not trusted: the run is inflated, and batch 0's
    // can no longer be.
    l.conn
        .execute_batch("UPDATE unit_runs SET units = units + 1 WHERE first_seq = 0")
        .unwrap();
    let outcomes = LedgerOutcomes::new(&l, f.id);
    assert_eq!(outcomes.get(0), None);
    let failure = outcomes.failure();
    assert!(
        failure.as_ref().is_some_and(|e| e.is_corrupt()),
        "{failure:?}"
    );
}

/// Applied units without anything of their own are packed a batch to a row (runs.rs);
/// read back through the merged readers they are what their rows were, among the units
/// that keep rows, and unpacking them for a late reject gives those rows back.
fn packed_units_read_back_as_their_rows_did_until_unpacked(p: Place) {
    let mut l = p.open();
    let run = l.begin_run("t").unwrap();
    let f = l.insert_file(&nf("a"), run).unwrap();
    let unit = |seq: i64| {
        let mut u = UnitRow {
            key: Some(format!("K{seq}")),
            ..unit_row(seq, UnitStatus::Applied)
        };
        match seq % 5 {
            1 => u.status = UnitStatus::Rejected,
            3 => u.tolerated = vec!["date-format".into()],
            _ => u.pos.locator = Some(format!("ST {seq:04}")),
        }
        u
    };
    // Three batches, the middle one leaving a gap of seqs without any unit.
    let batches: [Vec<i64>; 3] = [
        (0..40).collect(),
        (40..50).chain(60..90).collect(),
        (90..120).collect(),
    ];
    for b in &batches {
        let tx = l.batch(f.id).unwrap();
        let rows: Vec<UnitRow> = b.iter().map(|&s| unit(s)).collect();
        tx.write_units(f.id, &rows, &[]).unwrap();
        tx.commit().unwrap();
    }
    let packed = |l: &Ledger| -> i64 {
        l.conn
            .query_row("SELECT COALESCE(SUM(units), 0) FROM unit_runs", [], |r| {
                r.get(0)
            })
            .unwrap()
    };
    assert_eq!(
        packed(&l),
        66,
        "every applied unit without a tolerance or reason"
    );
    let want: Vec<i64> = batches.iter().flatten().copied().collect();
    let check = |l: &Ledger, from: i64, to: i64, limit: usize| {
        let got = runs::units_between(&l.conn, f.id, from, to, limit).unwrap();
        let seqs: Vec<i64> = got.iter().map(|u| u.seq).collect();
        let expect: Vec<i64> = want
            .iter()
            .copied()
            .filter(|s| (from..to).contains(s))
            .take(limit)
            .collect();
        assert_eq!(seqs, expect, "{from}..{to} limit {limit}");
        for u in got {
            let w = unit(u.seq);
            assert_eq!(u.status, w.status.as_str(), "{}", u.seq);
            assert_eq!((u.label, u.key, u.locator), (w.label, w.key, w.pos.locator));
            assert_eq!(
                (u.first_ordinal, u.first.0),
                (w.first_ordinal, w.pos.line as i64)
            );
        }
    };
    for (from, to, limit) in [
        (0, 200, 500),
        (35, 95, 500),
        (44, 61, 3),
        (50, 60, 9),
        (119, 500, 9),
        (0, 1, 1),
    ] {
        check(&l, from, to, limit);
    }
    assert_eq!(runs::max_seq(&l.conn, f.id).unwrap(), Some(119));
    let mut reader = runs::UnitReader::new(&l.conn);
    for seq in [2, 3, 1, 64, 55, 0, 119, 120] {
        let got = reader.get(f.id, seq).unwrap().map(|u| u.seq);
        assert_eq!(got, want.contains(&seq).then_some(seq), "unit {seq}");
    }
    assert_eq!(l.line_count(f.id).unwrap(), 110);

    let tx = l
        .conn
        .transaction_with_behavior(db::TransactionBehavior::Immediate)
        .unwrap();
    runs::unpack(&tx, f.id, (45, 46), None).unwrap();
    tx.commit().unwrap();
    assert_eq!(packed(&l), 66 - 24, "the middle batch's run, all of it");
    let rows: i64 = l
        .conn
        .query_row("SELECT COUNT(*) FROM units", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 110 - 42);
    check(&l, 0, 200, 500);
}

/// A file's rejected lines, read a page at a time, come with their file's and document's
/// names as a join of every line to both gave them: at any page size, a line's own key
/// before its document's, and a line whose document has no row left out.
fn rejected_lines_page_with_their_file_and_document_names(p: Place) {
    use crate::unit::{Position, Reason};
    // Names (file, fingerprint, document), key, line, original text.
    type Shown = ([String; 3], Option<String>, i64, String);
    let mut l = p.open();
    let run = l.begin_run("t").unwrap();
    let f = l.insert_file(&nf("abc"), run).unwrap();
    let statuses = [
        UnitStatus::Rejected,
        UnitStatus::Rejected,
        UnitStatus::Rejected,
        UnitStatus::Rejected,
        UnitStatus::Applied,
        UnitStatus::Rejected,
    ];
    let (mut units, mut lines) = (Vec::new(), Vec::new());
    for (seq, status) in statuses.iter().enumerate() {
        let seq = seq as i64;
        let pos = |o: i64| Position::new(o as u64 + 1, 10 * o as u64, o as u64 + 1);
        for i in 0..2 {
            let ordinal = seq * 2 + i;
            // Rejected lines are only ever in rejected documents (`decide::line_status`).
            let rejected = *status == UnitStatus::Rejected;
            lines.push(LineRow {
                ordinal,
                unit_seq: seq,
                pos: pos(ordinal),
                status: if rejected { "rejected" } else { "skipped" },
                key: (seq == 2 && i == 0).then(|| "own".to_string()),
                reason: Some(Reason::new("bad", "a bad value")),
                raw: Some(format!("line {ordinal}")),
            });
        }
        units.push(UnitRow {
            key: Some(format!("K{seq}")),
            first_ordinal: seq * 2,
            line_count: 2,
            pos: pos(seq * 2),
            ..unit_row(seq, *status)
        });
    }
    let tx = l.batch(f.id).unwrap();
    tx.write_lines(f.id, &lines).unwrap();
    tx.write_units(f.id, &units, &lines).unwrap();
    tx.commit().unwrap();
    // A document without a row of its own: its rejected lines are ones a join leaves out.
    l.conn
        .execute(
            "DELETE FROM units WHERE file_id=?1 AND seq=1",
            db::params![f.id],
        )
        .unwrap();
    let shown = |r: &RejectRow| -> Shown {
        let original = r.original.clone().unwrap_or_default();
        let names = [&r.file, &r.fingerprint, &r.unit];
        (names.map(String::clone), r.key.clone(), r.line, original)
    };
    let mut st = l
        .conn
        .prepare(
            "SELECT f.name, f.fingerprint, u.label, COALESCE(l.key, u.key), l.line, l.raw \
             FROM lines l JOIN files f ON f.id = l.file_id \
             JOIN units u ON u.file_id = l.file_id AND u.seq = l.unit_seq \
             WHERE l.file_id=?1 AND l.status='rejected' ORDER BY l.ordinal",
        )
        .unwrap();
    let joined: Vec<Shown> = st
        .query_map([f.id], |r| {
            let names = [r.get(0)?, r.get(1)?, r.get(2)?];
            Ok((names, r.get(3)?, r.get(4)?, r.get(5)?))
        })
        .unwrap()
        .collect::<db::Result<_>>()
        .unwrap();
    drop(st);
    let keys: Vec<_> = joined.iter().map(|j| j.1.clone()).collect();
    assert!(keys.contains(&Some("own".into())) && keys.contains(&Some("K0".into())));
    for limit in [1, 2, 3, 100] {
        let (mut paged, mut after) = (Vec::new(), -1);
        loop {
            let page = l.rejects_after(f.id, after, limit).unwrap();
            let Some((last, _)) = page.last() else { break };
            after = *last;
            paged.extend(page.iter().map(|(_, r)| shown(r)));
        }
        assert_eq!(paged, joined, "pages of {limit}");
    }
}
