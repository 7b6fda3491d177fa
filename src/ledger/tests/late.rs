//! A file rejected whole after its documents were committed: its lines are told from the
//! documents' rows, not written a row each, and every reader of rejected lines shows them
//! as those rows showed them.

use super::super::testplace::{on_both, Place};
use super::*;
use crate::unit::{Position, Reason};

on_both!(a_file_rejected_whole_tells_its_lines_from_their_documents,);

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
