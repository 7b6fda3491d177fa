//! A file's claim and what it holds: attempts and concurrent writers, control numbers,
//! the stall guard, hold and release, a file failed, abandoned or restarted giving its
//! keys back, a batch's key holders (and their lookup's plan), the versions a file made.

use super::super::testplace::{on_both, plan, Place};
use super::*;

on_both!(
    control_numbers_increase_per_partner_and_kind,
    regression_two_workers_registering_the_same_new_content_register_it_once,
    attempts_count_up_per_fingerprint,
    regression_insert_file_waits_for_another_writer_instead_of_failing_busy,
    regression_startup_kills_are_not_counted_as_deaths_at_the_same_place,
    hold_then_release_resets_the_guard_and_records_a_review_decision,
    fail_gives_back_only_the_keys_of_lost_documents_and_lists_their_lines,
    abandon_and_restart_forget_the_attempts_rows,
    a_batch_answers_holders_from_what_it_looked_up_and_took,
    versions_a_file_made_are_found_from_its_lists_while_still_its_own,
);

fn control_numbers_increase_per_partner_and_kind(p: Place) {
    let l = p.open();
    assert_eq!(l.next_control_number("ACME", "997").unwrap(), 1);
    assert_eq!(l.next_control_number("ACME", "997").unwrap(), 2);
    assert_eq!(l.next_control_number("OTHER", "997").unwrap(), 1);
    drop(l);
    let l = p.open();
    assert_eq!(l.next_control_number("ACME", "997").unwrap(), 3);
}

fn regression_two_workers_registering_the_same_new_content_register_it_once(p: Place) {
    // Both saw no attempt of the content; the second to register finds the first's and
    // backs off instead of making an attempt whose input the first has moved away.
    let (a, b) = (p.open(), p.open());
    let (ra, rb) = (a.begin_run("a").unwrap(), b.begin_run("b").unwrap());
    let first = a.insert_attempt(&nf("new"), ra, None, true).unwrap();
    assert!(first.is_some());
    assert!(b
        .insert_attempt(&nf("new"), rb, None, true)
        .unwrap()
        .is_none());
    // Having seen the first, a new attempt (content sent again) is registered.
    let again = b
        .insert_attempt(&nf("new"), rb, first.map(|f| f.id), true)
        .unwrap()
        .unwrap();
    assert_eq!(again.attempt, 2);
}

fn attempts_count_up_per_fingerprint(p: Place) {
    let l = p.open();
    let run = l.begin_run("test").unwrap();
    let a = l.insert_file(&nf("abc"), run).unwrap();
    let b = l.insert_file(&nf("abc"), run).unwrap();
    assert_eq!((a.attempt, b.attempt), (1, 2));
    assert_eq!(l.latest_file("abc").unwrap().unwrap().id, b.id);
}

fn regression_insert_file_waits_for_another_writer_instead_of_failing_busy(p: Place) {
    // Two connections interleave: B opens a read snapshot, A writes, then B claims a
    // file. A deferred read-then-write transaction would fail with SQLITE_BUSY here.
    let (a, b) = (p.open(), p.open());
    let run = a.begin_run("t").unwrap();
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let at = p.at.clone();
            std::thread::spawn(move || {
                let l = Ledger::open_at(at).unwrap();
                for i in 0..50 {
                    l.insert_file(&nf(&format!("fp{t}-{i}")), run).unwrap();
                    l.next_control_number("P", "997").unwrap();
                }
            })
        })
        .collect();
    for i in 0..50 {
        b.insert_file(&nf(&format!("b{i}")), run).unwrap();
    }
    for h in handles {
        h.join().unwrap();
    }
    let n: i64 = a
        .conn
        .query_row("SELECT COUNT(*) FROM files", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 250);
    assert_eq!(
        a.next_control_number("P", "997").unwrap(),
        201,
        "no number handed out twice"
    );
}

fn regression_startup_kills_are_not_counted_as_deaths_at_the_same_place(p: Place) {
    let l = p.open();
    let run = l.begin_run("t").unwrap();
    let f = l.insert_file(&nf("abc"), run).unwrap();
    // Killed mid-file after reaching new material at unit 40.
    l.arm(f.id, 40).unwrap();
    assert_eq!(l.note_start(f.id).unwrap(), 1);
    // Three start-ups killed before reading got past the committed part: no evidence.
    for _ in 0..3 {
        assert_eq!(l.note_start(f.id).unwrap(), 1);
    }
    // Deaths at the same place count up; a death elsewhere starts over.
    l.arm(f.id, 40).unwrap();
    assert_eq!(l.note_start(f.id).unwrap(), 2);
    l.arm(f.id, 55).unwrap();
    assert_eq!(l.note_start(f.id).unwrap(), 1);
    // A clean stop is no death.
    l.arm(f.id, 55).unwrap();
    l.disarm(f.id).unwrap();
    assert_eq!(l.note_start(f.id).unwrap(), 1);
}

fn hold_then_release_resets_the_guard_and_records_a_review_decision(p: Place) {
    let mut l = p.open();
    let run = l.begin_run("t").unwrap();
    let f = l.insert_file(&nf("abc"), run).unwrap();
    l.arm(f.id, 3).unwrap();
    l.note_start(f.id).unwrap();
    l.hold(f.id, "review", "partner holds unmapped sets")
        .unwrap();
    assert_eq!(l.held_files().unwrap().len(), 1);
    assert!(
        l.unfinished_files().unwrap().is_empty(),
        "held files are not resumed"
    );
    l.release(f.id, Some(("rejected-at-review", "bad file")))
        .unwrap();
    let f = l.file(f.id).unwrap();
    assert_eq!(f.state, FileState::Reading);
    assert!(f.released);
    assert_eq!(f.review.as_ref().unwrap().0, "rejected-at-review");
    assert_eq!(l.note_start(f.id).unwrap(), 0);
}

fn fail_gives_back_only_the_keys_of_lost_documents_and_lists_their_lines(p: Place) {
    let mut l = p.open();
    let run = l.begin_run("t").unwrap();
    let f = l.insert_file(&nf("abc"), run).unwrap();
    write_two_units(&mut l, f.id);
    let lost = Lost::Chunks(vec![("product".into(), 1, 2)]);
    l.fail(f.id, "staged-output-lost", "lost", &lost).unwrap();
    let f = l.file(f.id).unwrap();
    assert_eq!(f.outcome(), Some(Outcome::Failed));
    assert_eq!((f.counts.lines_applied, f.counts.lines_rejected), (1, 1));
    let tx = l.batch(f.id).unwrap();
    assert!(
        tx.holder("product", "K0").unwrap().is_some(),
        "published: kept"
    );
    assert!(
        tx.holder("product", "K1").unwrap().is_none(),
        "lost: free again"
    );
    drop(tx);
    assert_eq!(
        l.rejects(f.id).unwrap()[0].rule.as_deref(),
        Some("staged-output-lost")
    );
}

fn abandon_and_restart_forget_the_attempts_rows(p: Place) {
    let mut l = p.open();
    let run = l.begin_run("t").unwrap();
    let a = l.insert_file(&nf("a"), run).unwrap();
    write_two_units(&mut l, a.id);
    l.restart(a.id).unwrap();
    let a2 = l.file(a.id).unwrap();
    assert_eq!((a2.committed_seq, a2.counts.lines_applied), (0, 0));
    write_two_units(&mut l, a.id);
    l.abandon(a.id, "changed-while-processing", "grew").unwrap();
    let a3 = l.file(a.id).unwrap();
    assert_eq!(a3.outcome(), Some(Outcome::Returned));
    assert_eq!(a3.counts, Counts::default());
    let tx = l.batch(a.id).unwrap();
    assert!(tx.holder("product", "K0").unwrap().is_none());
}

/// The batch's key bookkeeping (prefetched absences, holders found once, keys written a
/// hundred at a time) answers as a statement per key did.
fn a_batch_answers_holders_from_what_it_looked_up_and_took(p: Place) {
    let mut l = p.open();
    let run = l.begin_run("t").unwrap();
    let a = l.insert_file(&nf("a"), run).unwrap();
    let b = l.insert_file(&nf("b"), run).unwrap();
    write_two_units(&mut l, a.id); // a holds product K0, K1
    let tx = l.batch(b.id).unwrap();
    tx.prefetch_holders([("product", "K0"), ("product", "K2"), ("product", "K2")])
        .unwrap();
    assert_eq!(tx.holder("product", "K0").unwrap().unwrap().file_id, a.id);
    assert!(tx.holder("product", "K2").unwrap().is_none());
    // Taken and not yet written: the next unit sees this file as its holder.
    tx.take_key("product", "K2", b.id, 7, false).unwrap();
    let h = tx.holder("product", "K2").unwrap().unwrap();
    assert_eq!((h.file_id, h.unit_seq), (b.id, 7));
    // A key already held stays its holder's, even when asked for again.
    tx.take_key("product", "K0", b.id, 8, false).unwrap();
    assert_eq!(tx.holder("product", "K0").unwrap().unwrap().file_id, a.id);
    // Stolen (a forced re-apply): the holder found before is forgotten.
    tx.take_key("product", "K1", b.id, 9, true).unwrap();
    assert_eq!(tx.holder("product", "K1").unwrap().unwrap().file_id, b.id);
    // Many keys at once: written in hundreds, all there after the commit.
    for i in 0..250 {
        tx.take_key("claim", &format!("C{i}"), b.id, i, false)
            .unwrap();
    }
    tx.commit().unwrap();
    let tx = l.batch(b.id).unwrap();
    assert_eq!(tx.holder("claim", "C249").unwrap().unwrap().unit_seq, 249);
    assert_eq!(tx.holder("product", "K2").unwrap().unwrap().file_id, b.id);
}

/// A batch asks which of its keys have versions and holders 200 at a time; a plan that
/// scanned the table (SQLite 3.40's for a bare `IN (VALUES …)`) would read every version
/// and key the ledger ever made for each 200.
#[test]
fn a_batch_looks_its_keys_up_by_index_instead_of_scanning_the_ledger() {
    let p = Place::sqlite();
    let l = p.open();
    for head in [batch::VERSIONS_OF_SQL, batch::HOLDERS_OF_SQL] {
        let sql = batch::values_sql(head, 2, 200, batch::ASKED_SQL);
        let plan = plan(&l, &sql);
        assert!(
            !plan
                .lines()
                .any(|s| s.starts_with("SCAN versions") || s.starts_with("SCAN keys")),
            "{sql}\n{plan}"
        );
        assert!(plan.contains("USING PRIMARY KEY"), "{sql}\n{plan}");
    }
}

/// The versions a batch made are listed in one row (made.rs), which answers a chunk's
/// records and what a failed file takes back; a version taken back and made again by
/// another file is no longer the first file's.
fn versions_a_file_made_are_found_from_its_lists_while_still_its_own(p: Place) {
    let mut l = p.open();
    let run = l.begin_run("t").unwrap();
    let a = l.insert_file(&nf("a"), run).unwrap();
    let b = l.insert_file(&nf("b"), run).unwrap();
    let make = |l: &mut Ledger, file: i64, made: &[(&'static str, String, i64, i64)]| {
        let tx = l.batch(file).unwrap();
        for (entity, key, seq, ordinal) in made {
            tx.add_version(&NewVersion {
                entity,
                key,
                version: 1,
                hash: "00112233445566778899aabbccddeeff",
                data: Some("{}"),
                file_id: file,
                unit_seq: *seq,
                ordinal: *ordinal,
            })
            .unwrap();
        }
        tx.commit().unwrap();
    };
    let orders = |r: std::ops::Range<i64>| -> Vec<(&'static str, String, i64, i64)> {
        r.map(|s| ("order", format!("K{s}"), s, 0)).collect()
    };
    make(&mut l, a.id, &orders(0..5));
    let mut second = orders(5..10);
    second.insert(3, ("customer", "C1".into(), 7, 1));
    make(&mut l, a.id, &second);
    let keys = |l: &Ledger, entity: &str, units: (i64, i64)| -> Vec<(String, i64, i64)> {
        l.chunk_records(a.id, entity, units)
            .unwrap()
            .into_iter()
            .map(|r| (r.key, r.unit_seq, r.ordinal))
            .collect()
    };
    let want = |r: std::ops::Range<i64>| -> Vec<(String, i64, i64)> {
        r.map(|s| (format!("K{s}"), s, 0)).collect()
    };
    assert_eq!(keys(&l, "order", (0, 10)), want(0..10));
    assert_eq!(keys(&l, "order", (3, 7)), want(3..7));
    assert_eq!(
        keys(&l, "customer", (0, 10)),
        vec![("C1".to_string(), 7, 1)]
    );

    let lost = Lost::Chunks(vec![("order".into(), 5, 10)]);
    l.fail(a.id, "staged-output-lost", "lost", &lost).unwrap();
    assert_eq!(
        keys(&l, "order", (0, 10)),
        want(0..5),
        "lost orders taken back"
    );
    assert_eq!(
        keys(&l, "customer", (0, 10)).len(),
        1,
        "another entity's kept"
    );
    make(
        &mut l,
        b.id,
        &[("order", "K5".into(), 0, 0), ("order", "K1".into(), 0, 1)],
    );
    let count: i64 = l
        .conn
        .query_row(
            "SELECT COUNT(*) FROM versions WHERE key IN ('K1', 'K5')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        count, 2,
        "K5 made again by b; K1 stays a's (b's write of it updated it)"
    );
    assert_eq!(
        keys(&l, "order", (0, 10)),
        want(0..5)
            .into_iter()
            .filter(|k| k.0 != "K1")
            .collect::<Vec<_>>(),
        "a version now b's is not a's"
    );
    // Taking back all of a's takes only what is still a's and its unit's: K1 is b's now,
    // and K0's row names another unit than a's list does.
    l.conn
        .execute("UPDATE versions SET unit_seq = 99 WHERE key = 'K0'", [])
        .unwrap();
    l.decide(a.id, Outcome::Rejected, Some("why"), &[]).unwrap();
    let left: Vec<(String, i64)> = l
        .conn
        .prepare("SELECT key, file_id FROM versions ORDER BY key")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<std::result::Result<_, _>>()
        .unwrap();
    let want = [
        ("K0".to_string(), a.id),
        ("K1".into(), b.id),
        ("K5".into(), b.id),
    ];
    assert_eq!(left, want, "what a still holds, taken back");
}
