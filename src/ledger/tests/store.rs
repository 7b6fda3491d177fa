//! The ledger's store itself: its schema and migrations (a newer one refused), opening
//! while a stopped worker holds the write lock, the WAL cut back, a damaged file
//! refused, backups, the file columns, a PostgreSQL statement's error apart from a lost
//! session.

use super::super::testplace::Place;
use super::*;

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
