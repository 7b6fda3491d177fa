//! The ledger on its own: schema, claims, the stall guard's counting, corruption.

use super::testplace::{on_both, plan, Place};
use super::*;
use crate::format::UnitStatus;

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
    outcomes_read_ahead_answer_every_unit_as_its_row_says,
    a_rejected_units_reasons_read_back_as_written_whether_kept_once_or_as_json,
    outcomes_of_runs_without_details_are_told_without_inflating_them,
    packed_units_read_back_as_their_rows_did_until_unpacked,
    versions_a_file_made_are_found_from_its_lists_while_still_its_own,
);

fn nf(fp: &str) -> NewFile<'_> {
    NewFile {
        fingerprint: fp,
        name: "a.csv",
        raw_name: None,
        source_path: "/x/a.csv",
        size: 3,
        forced: false,
    }
}

fn ledger() -> (tempfile::TempDir, Ledger) {
    let dir = tempfile::tempdir().unwrap();
    let l = Ledger::open(&dir.path().join("l.sqlite")).unwrap();
    (dir, l)
}

#[test]
fn migrations_are_idempotent_and_versioned() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("l.sqlite");
    drop(Ledger::open(&p).unwrap());
    let l = Ledger::open(&p).unwrap();
    let v: i64 = l
        .conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, MIGRATIONS.len() as i64);
    let mode: String = l
        .conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn regression_status_opens_a_current_ledger_while_a_stopped_worker_holds_the_write_lock() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("l.sqlite");
    drop(Ledger::open(&p).unwrap());
    // A worker stopped (SIGSTOP) inside its batch transaction keeps the write lock.
    let worker = rusqlite::Connection::open(&p).unwrap();
    worker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let start = std::time::Instant::now();
    let l = Ledger::open(&p).expect("a current ledger opens without the write lock");
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
    assert!(l.workers().unwrap().is_empty());
    worker.execute_batch("ROLLBACK").unwrap();
}

#[test]
fn regression_a_ledger_with_a_row_per_line_keeps_its_positions_and_versions_after_migration_6() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("l.sqlite");
    {
        let c = rusqlite::Connection::open(&p).unwrap();
        for m in &MIGRATIONS[..5] {
            c.execute_batch(m).unwrap();
        }
        c.pragma_update(None, "user_version", 5).unwrap();
        c.execute_batch(
            "INSERT INTO files(id, fingerprint, name, source_path, size, state, claimed_at, finished_at) \
             VALUES (1, 'aa', 'a.csv', '/a.csv', 9, 'done', '2026-01-01T00:00:00Z', '2026-01-01T00:00:01Z'); \
             INSERT INTO units(file_id, seq, label, status, key, first_ordinal, line_count) VALUES \
               (1, 0, 'order A', 'applied', 'A', 0, 2); \
             INSERT INTO lines(file_id, ordinal, unit_seq, line, byte, record, locator, status, key) VALUES \
               (1, 0, 0, 2, 40, 2, 'L2', 'applied', 'A'), (1, 1, 0, 3, 60, 3, NULL, 'applied', 'A'); \
             INSERT INTO versions(entity, key, version, hash, data, source, file_id, unit_seq, created_at) \
               VALUES ('order', 'A', 1, 'h', '{}', '{\"line\":2}', 1, 0, '2026-01-01T00:00:00Z');",
        )
        .unwrap();
    }
    let l = Ledger::open(&p).unwrap();
    let lines = l.file_lines(1, 0, 10, false).unwrap();
    let got: Vec<(i64, i64, &str)> = lines
        .iter()
        .map(|v| (v.line, v.byte, v.status.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![(2, 40, "applied"), (3, 60, "applied")],
        "rows are not doubled by the unit's"
    );
    let unit: (i64, i64, Option<String>) = l
        .conn
        .query_row(
            "SELECT line, byte, locator FROM units WHERE file_id=1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(unit, (2, 40, Some("L2".into())));
    let v = l.key_versions(Some("order"), "A").unwrap();
    assert_eq!(v.len(), 1);
}

#[test]
fn regression_hashes_and_acks_written_before_migration_12_read_back_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("l.sqlite");
    let hex = crate::canonical::content_hash("{\"order_no\":\"A\"}");
    let ack = b"ISA*00*~GS*FA~ST*997*0001~AK1*PO*1~AK9*A*1*1*1~SE*4*0001~GE*1*1~IEA*1*1~";
    {
        let c = rusqlite::Connection::open(&p).unwrap();
        for m in &MIGRATIONS[..11] {
            c.execute_batch(m).unwrap();
        }
        c.pragma_update(None, "user_version", 11).unwrap();
        c.execute_batch(&format!(
            "INSERT INTO files(id, fingerprint, name, source_path, size, state, claimed_at) \
             VALUES (1, 'aa', 'a.csv', '/a.csv', 9, 'done', '2026-01-01T00:00:00Z'); \
             INSERT INTO versions(entity, key, version, hash, file_id, unit_seq) VALUES \
               ('order', 'A', 1, '{hex}', 1, 0), ('order', 'A', 2, '', 1, 1);"
        ))
        .unwrap();
        c.execute(
            "INSERT INTO acks(file_id, kind, partner, control_no, file_name, content) \
             VALUES (1, '997', 'ACME', 1, 'a.997', ?1)",
            [&ack[..]],
        )
        .unwrap();
    }
    let mut l = Ledger::open(&p).unwrap();
    let stored: Vec<u8> = l
        .conn
        .query_row("SELECT hash FROM versions WHERE version = 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(stored.len(), 16, "the hex hash became its bytes");
    // A version written now keeps the first 8 of them (model.rs `StoredHash`).
    {
        let tx = l.batch(1).unwrap();
        tx.add_version(&batch::NewVersion {
            entity: "order",
            key: "A",
            version: 3,
            hash: &hex,
            data: None,
            file_id: 1,
            unit_seq: 2,
            ordinal: 0,
        })
        .unwrap();
        tx.commit().unwrap();
    }
    let newest: Vec<u8> = l
        .conn
        .query_row("SELECT hash FROM versions WHERE version = 3", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(newest, stored[..8], "a new version keeps 8 bytes");
    let hashes: Vec<String> = l
        .key_versions(Some("order"), "A")
        .unwrap()
        .into_iter()
        .map(|v| v.hash)
        .collect();
    assert_eq!(
        hashes,
        vec![hex[..16].to_owned(), String::new(), hex.clone()],
        "newest first; '' stays unknown"
    );
    let acks = l.acks(1).unwrap();
    assert_eq!(acks.len(), 1);
    assert_eq!(
        acks[0].content.bytes().unwrap(),
        ack.to_vec(),
        "an ack stored raw reads back raw"
    );
}

/// `versions_file` went with migration 16: a file in flight across the upgrade still has
/// every version it made found (those from before through a row standing for them, the
/// later ones through its batches' lists), once each; a finished file gets no such row.
#[test]
fn regression_a_file_in_flight_across_migration_16_keeps_every_version_it_made() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("l.sqlite");
    let hex = "00112233445566778899aabbccddeeff";
    {
        let c = rusqlite::Connection::open(&p).unwrap();
        for m in &MIGRATIONS[..14] {
            c.execute_batch(m).unwrap();
        }
        c.pragma_update(None, "user_version", 14).unwrap();
        c.execute_batch(&format!(
            "INSERT INTO files(id, fingerprint, name, source_path, size, state, claimed_at) VALUES \
               (1, 'aa', 'a.csv', '/a.csv', 9, 'reading', '2026-01-01T00:00:00Z'), \
               (2, 'bb', 'b.csv', '/b.csv', 9, 'done', '2026-01-01T00:00:00Z'); \
             INSERT INTO versions(entity, key, version, hash, data, file_id, unit_seq, ordinal) VALUES \
               ('order', 'K0', 1, unhex('{hex}'), '{{}}', 1, 0, 0), ('order', 'K1', 1, unhex('{hex}'), '{{}}', 1, 1, 0), \
               ('order', 'K2', 1, unhex('{hex}'), '{{}}', 1, 2, 0), ('order', 'X', 1, unhex('{hex}'), '{{}}', 2, 0, 0);"
        ))
        .unwrap();
    }
    let mut l = Ledger::open(&p).unwrap();
    let legacy: Vec<(i64, i64, i64)> = l
        .conn
        .prepare("SELECT file_id, first_seq, end_seq FROM version_runs WHERE packed IS NULL")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(legacy, vec![(1, 0, 3)], "the file in flight only");
    let tx = l.batch(1).unwrap();
    for (seq, key) in [(3, "K3"), (4, "K4")] {
        tx.add_version(&NewVersion {
            entity: "order",
            key,
            version: 1,
            hash: hex,
            data: Some("{}"),
            file_id: 1,
            unit_seq: seq,
            ordinal: 0,
        })
        .unwrap();
    }
    tx.commit().unwrap();
    let keys: Vec<String> = l
        .chunk_records(1, "order", (0, 10))
        .unwrap()
        .into_iter()
        .map(|r| r.key)
        .collect();
    assert_eq!(keys, ["K0", "K1", "K2", "K3", "K4"]);
    l.fail(1, "staged-output-lost", "lost", &Lost::Everything)
        .unwrap();
    let left: i64 = l
        .conn
        .query_row("SELECT COUNT(*) FROM versions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 1, "only the finished file's version is left");
}

#[test]
fn regression_a_wal_grown_by_one_large_transaction_is_cut_back_after_its_checkpoint() {
    // A file rejected whole writes a row for each of its lines in the decision's one
    // transaction; the WAL that took them kept its size on disk while the process lived.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("l.sqlite");
    let wal = dir.path().join("l.sqlite-wal");
    let l = Ledger::open(&p).unwrap();
    let blob = vec![7u8; 1 << 20];
    l.conn
        .execute_batch("CREATE TABLE big(x BLOB); BEGIN")
        .unwrap();
    for _ in 0..(super::WAL_KEEP_BYTES >> 20) + 32 {
        l.conn
            .execute("INSERT INTO big(x) VALUES (?1)", [&blob])
            .unwrap();
    }
    l.conn.execute_batch("COMMIT").unwrap();
    let grown = std::fs::metadata(&wal).unwrap().len();
    assert!(grown > super::WAL_KEEP_BYTES as u64, "{grown}");
    l.conn
        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
        .unwrap();
    l.conn.execute("DELETE FROM big", []).unwrap();
    let kept = std::fs::metadata(&wal).unwrap().len();
    assert!(kept <= super::WAL_KEEP_BYTES as u64, "{kept} bytes kept");
}

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

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("l.sqlite");
    {
        let c = rusqlite::Connection::open(&p).unwrap();
        c.pragma_update(None, "user_version", 999).unwrap();
    }
    assert!(matches!(Ledger::open(&p), Err(LedgerError::TooNew { .. })));
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

fn write_two_units(l: &mut Ledger, file: i64) {
    let tx = l.batch(file).unwrap();
    let mut n = Counts::default();
    for seq in 0..2i64 {
        tx.take_key("product", &format!("K{seq}"), file, seq, false)
            .unwrap();
        // Applied lines get no row: the unit is packed (see runs.rs) until it is lost.
        let unit = UnitRow {
            key: Some(format!("K{seq}")),
            ..unit_row(seq, UnitStatus::Applied)
        };
        tx.write_units(file, &[unit], &[]).unwrap();
        n.add_line("applied");
        n.add_unit(UnitStatus::Applied);
    }
    let marks = ChunkMarks { next: 1, synced: 1 };
    tx.advance(file, 2, 2, marks, &n).unwrap();
    tx.commit().unwrap();
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

fn unit_row(seq: i64, status: UnitStatus) -> UnitRow {
    UnitRow {
        seq,
        label: format!("u{seq}"),
        status,
        key: None,
        first_ordinal: seq,
        line_count: 1,
        pos: crate::unit::Position::new(seq as u64 + 1, 0, seq as u64 + 1),
        spans: None,
        reasons: vec![],
        detail: serde_json::Value::Null,
        tolerated: vec![],
    }
}

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

#[test]
fn regression_a_damaged_ledger_is_refused_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("l.sqlite");
    {
        let mut l = Ledger::open(&p).unwrap();
        let run = l.begin_run("t").unwrap();
        for i in 0..200 {
            let f = l.insert_file(&nf(&format!("fp{i:04}")), run).unwrap();
            l.set_file_error(f.id, "r", &"x".repeat(500), None).unwrap();
        }
        let f = l.insert_file(&nf("last"), run).unwrap();
        write_two_units(&mut l, f.id);
        l.conn
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
    }
    // 8 KiB of garbage in the middle of the file, as the tester did.
    let mut bytes = std::fs::read(&p).unwrap();
    let mid = bytes.len() / 2 / 4096 * 4096;
    for b in &mut bytes[mid..mid + 8192] {
        *b = 0xA5;
    }
    std::fs::write(&p, &bytes).unwrap();
    let err = Ledger::open(&p).and_then(|l| l.ensure_sound()).unwrap_err();
    assert!(err.is_corrupt(), "{err}");
    assert!(err.to_string().contains("restore"), "{err}");
}

#[test]
fn backup_is_a_sound_copy_with_the_configured_mode() {
    let (d, mut l) = ledger();
    let run = l.begin_run("t").unwrap();
    let f = l.insert_file(&nf("abc"), run).unwrap();
    write_two_units(&mut l, f.id);
    let dest = d.path().join("backup.sqlite");
    assert!(l.backup(&dest).unwrap() > 0);
    let copy = Ledger::open(&dest).unwrap();
    assert!(copy.check_integrity(true).unwrap().is_empty());
    assert_eq!(copy.file(f.id).unwrap().counts.lines_applied, 2);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o007, 0, "never world-readable");
    }
}

#[test]
fn the_file_column_count_matches_the_columns_selected() {
    let (_d, l) = ledger();
    let n = l
        .conn
        .prepare(&format!("SELECT {} FROM files", model::FILE_COLS))
        .unwrap()
        .column_count();
    assert_eq!(n, model::FILE_COL_COUNT);
}

#[test]
fn regression_a_value_that_cannot_be_bound_is_the_statements_error_not_a_lost_session() {
    let p = Place::postgres();
    let l = p.open();
    let e = l
        .conn
        .query_row("SELECT CAST(?1 AS INT4)", [i64::MAX], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap_err();
    assert!(!e.is_connection_lost(), "{e}");
    // A server that does not answer is a lost session.
    let gone = Location::Postgres {
        url: "postgres://tallyman@127.0.0.1:1/none".into(),
        password: None,
    };
    let e = Ledger::open_at(gone).err().expect("nothing listens there");
    assert!(e.is_connection_lost(), "{e}");
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
    runs::unpack(&tx, f.id, 45, 46).unwrap();
    tx.commit().unwrap();
    assert_eq!(packed(&l), 66 - 24, "the middle batch's run, all of it");
    let rows: i64 = l
        .conn
        .query_row("SELECT COUNT(*) FROM units", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 110 - 42);
    check(&l, 0, 200, 500);
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
}
