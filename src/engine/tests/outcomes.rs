//! What a file comes to and where it goes: lines applied and rejected, policies that
//! reject a file whole, file errors and files no format claims, unmapped and held
//! documents, reject rows, the inbox, lock files, modes and names kept.

use super::*;

#[test]
fn applies_rejects_and_reports_line_by_line() {
    let d = tempfile::tempdir().unwrap();
    let mut e = engine(d.path(), ACCEPT, 2);
    std::fs::write(d.path().join("inbox/a.txt"), "#hdr\nA,1\nB,x\nC,2.5\n").unwrap();
    let run = e.ledger.begin_run("t").unwrap();
    let reports = e.run_pass(run).unwrap().files;
    assert_eq!(reports.len(), 1);
    let r = &reports[0];
    assert_eq!(r.outcome, "applied_with_rejects");
    assert_eq!(
        (
            r.counts.lines_applied,
            r.counts.lines_rejected,
            r.counts.lines_skipped
        ),
        (2, 1, 1)
    );
    assert_eq!(outbox_lines(d.path()).len(), 2);
    let report = std::fs::read_to_string(r.report_path.as_ref().unwrap()).unwrap();
    assert!(
        report.contains("qty is not a decimal") && report.contains("B,x"),
        "{report}"
    );
    assert!(d.path().join("archive/a.txt").exists());
    assert_eq!(
        std::fs::read_to_string(d.path().join("acks/ack-1.txt")).unwrap(),
        "applied=2"
    );
    assert!(std::fs::read_dir(d.path().join("inbox"))
        .unwrap()
        .next()
        .is_none());
}

#[test]
fn lock_files_go_with_finished_files_and_old_ones_are_swept() {
    let d = tempfile::tempdir().unwrap();
    let mut e = engine(d.path(), ACCEPT, 100);
    let locks = e.cfg.paths.locks();
    std::fs::write(d.path().join("inbox/a.txt"), "A,1\n").unwrap();
    let run = e.ledger.begin_run("t").unwrap();
    let r = e.run_pass(run).unwrap().files.remove(0);
    assert_eq!(
        files_in(&locks),
        Vec::<String>::new(),
        "released with its file"
    );
    // Left by an older tallyman: the finished file's lock goes, the others stay.
    let unknown = "f".repeat(64);
    for name in [
        format!("{}.lock", r.fingerprint),
        format!("{unknown}.lock"),
        "relay-erp.lock".into(),
    ] {
        std::fs::write(locks.join(name), "").unwrap();
    }
    // The next process sweeps them, once.
    drop(e);
    let mut e = engine(d.path(), ACCEPT, 100);
    let run = e.ledger.begin_run("t").unwrap();
    e.run_pass(run).unwrap();
    assert_eq!(
        files_in(&locks),
        vec![format!("{unknown}.lock"), "relay-erp.lock".to_string()]
    );
}

#[test]
fn all_or_nothing_rejects_whole_file_and_publishes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let mut e = engine(d.path(), Policy::AllOrNothing, 1);
    std::fs::write(d.path().join("inbox/a.txt"), "A,1\nB,x\n").unwrap();
    let run = e.ledger.begin_run("t").unwrap();
    let r = e.run_pass(run).unwrap().files.remove(0);
    assert_eq!(r.outcome, "rejected");
    assert_eq!((r.counts.lines_applied, r.counts.lines_rejected), (0, 2));
    assert!(outbox_lines(d.path()).is_empty());
    assert!(
        std::fs::read_dir(d.path().join("work/staging"))
            .unwrap()
            .next()
            .is_none(),
        "staged chunks discarded"
    );
    assert!(d.path().join("rejected/a.txt").exists());
    // The key of the rejected file is free again.
    std::fs::write(d.path().join("inbox/b.txt"), "A,1\n").unwrap();
    assert_eq!(e.run_pass(run).unwrap().files[0].outcome, "applied");
}

#[test]
fn reject_ratio_over_policy_rejects_whole_file() {
    let d = tempfile::tempdir().unwrap();
    let mut e = engine(d.path(), ACCEPT, 100);
    std::fs::write(d.path().join("inbox/a.txt"), "A,1\nB,x\nC,y\n").unwrap();
    let run = e.ledger.begin_run("t").unwrap();
    let r = e.run_pass(run).unwrap().files.remove(0);
    assert_eq!(r.outcome, "rejected");
    assert!(
        r.error
            .as_deref()
            .unwrap_or("")
            .contains("max_reject_ratio"),
        "{r:?}"
    );
}

#[test]
fn a_file_error_rejects_whole_file_with_position() {
    let d = tempfile::tempdir().unwrap();
    let mut e = engine(d.path(), ACCEPT, 100);
    std::fs::write(d.path().join("inbox/truncated.txt"), "A,1\nB,2\n").unwrap();
    let run = e.ledger.begin_run("t").unwrap();
    let r = e.run_pass(run).unwrap().files.remove(0);
    assert_eq!(r.outcome, "rejected");
    let rows =
        report::file_rejects(&e.ledger, &e.ledger.file(r.file_id.unwrap()).unwrap()).unwrap();
    assert_eq!(rows[0].rule.as_deref(), Some("truncated"));
    assert_eq!(rows[0].line, 2);
    assert!(outbox_lines(d.path()).is_empty());
}

#[test]
fn no_matching_format_rejects_file() {
    let d = tempfile::tempdir().unwrap();
    let mut e = engine(d.path(), ACCEPT, 100);
    std::fs::write(d.path().join("inbox/a.bin"), "zzz").unwrap();
    let run = e.ledger.begin_run("t").unwrap();
    let r = e.run_pass(run).unwrap().files.remove(0);
    assert_eq!(r.outcome, "rejected");
    assert!(r.error.as_deref().unwrap().contains("no format"), "{r:?}");
    assert!(d.path().join("rejected/a.bin").exists());
}

#[cfg(unix)]
#[test]
fn regression_outputs_inputs_and_ledger_are_never_world_readable() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let mut e = engine(d.path(), ACCEPT, 2);
    let input = d.path().join("inbox/a.txt");
    std::fs::write(&input, "K1,1\nK2,x\n").unwrap();
    std::fs::set_permissions(&input, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = run_once(&mut e).files.remove(0);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let chunk = std::fs::read_dir(d.path().join("outbox/product"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    for p in [
        d.path().join("archive/a.txt"),
        chunk,
        d.path().join("acks/ack-1.txt"),
        PathBuf::from(r.report_path.unwrap()),
        d.path().join("ledger.sqlite"),
    ] {
        assert_eq!(mode(&p), 0o640, "{}", p.display());
    }
}

#[test]
fn unmapped_documents_are_accepted_unmapped_never_applied() {
    let d = tempfile::tempdir().unwrap();
    let mut e = engine(d.path(), ACCEPT, 100);
    std::fs::write(d.path().join("inbox/a.txt"), "U837-1\nU837-2\n").unwrap();
    std::fs::write(d.path().join("inbox/b.txt"), "K1,1\nU835-1\n").unwrap();
    let p = run_once(&mut e);
    let a = &p.files[0];
    assert_eq!(a.outcome, "accepted_unmapped", "{a:?}");
    assert_eq!((a.counts.lines_unmapped, a.counts.lines_applied), (2, 0));
    assert!(!a.needs_review());
    let b = &p.files[1];
    assert_eq!(b.outcome, "applied");
    assert_eq!((b.counts.lines_unmapped, b.counts.units_unmapped), (1, 1));
    assert_eq!(outbox_lines(d.path()).len(), 1);
    assert!(d.path().join("archive/a.txt").exists());
    // The claims of an unmapped document are taken: the same document again is a duplicate.
    std::fs::write(d.path().join("inbox/c.txt"), "U837-1\nK9,1\n").unwrap();
    let c = run_once(&mut e).files.remove(0);
    assert_eq!((c.counts.lines_duplicate, c.counts.lines_applied), (1, 1));
}

#[test]
fn a_partner_that_holds_unmapped_documents_gets_the_file_held_until_released() {
    let d = tempfile::tempdir().unwrap();
    let mut e = engine(d.path(), ACCEPT, 100);
    std::fs::write(d.path().join("inbox/a.txt"), "K1,1\nH837-1\n").unwrap();
    let r = run_once(&mut e).files.remove(0);
    assert_eq!(r.outcome, "held", "{r:?}");
    assert!(r.error.as_deref().unwrap().contains("holds unmapped"));
    assert!(
        outbox_lines(d.path()).is_empty(),
        "nothing published while held"
    );
    assert!(
        files_in(&d.path().join("acks")).is_empty(),
        "nor acknowledged"
    );
    assert!(run_once(&mut e).files.is_empty());
    let id = r.file_id.unwrap();
    e.ledger.release(id, None).unwrap();
    let r = run_once(&mut e).files.remove(0);
    assert_eq!(r.outcome, "applied", "{r:?}");
    assert_eq!(r.counts.lines_unmapped, 1);
    assert_eq!(outbox_lines(d.path()).len(), 1);
    assert_eq!(
        std::fs::read_to_string(d.path().join("acks/ack-1.txt")).unwrap(),
        "applied=1"
    );
}

#[test]
fn regression_processing_a_file_in_the_inbox_takes_it_out_of_the_inbox() {
    let d = tempfile::tempdir().unwrap();
    let mut e = engine(d.path(), ACCEPT, 100);
    let f = d.path().join("inbox/x.txt");
    std::fs::write(&f, "K1,1\n").unwrap();
    let run = e.ledger.begin_run("t").unwrap();
    assert_eq!(e.process_path(run, &f, false).unwrap().outcome, "applied");
    assert!(!f.exists(), "taken out of the inbox like intake takes it");
    assert!(d.path().join("archive/x.txt").exists());
    assert!(
        run_once(&mut e).files.is_empty(),
        "no false duplicate on the next run"
    );
}

#[test]
fn regression_reject_rows_name_the_document_key_even_when_no_record_was_made() {
    let d = tempfile::tempdir().unwrap();
    let mut e = engine(d.path(), ACCEPT, 100);
    std::fs::write(d.path().join("inbox/a.txt"), "K1,1\nSKU-7,x\n").unwrap();
    let r = run_once(&mut e).files.remove(0);
    let rows =
        report::file_rejects(&e.ledger, &e.ledger.file(r.file_id.unwrap()).unwrap()).unwrap();
    assert_eq!(rows[0].key.as_deref(), Some("SKU-7"));
}

#[cfg(unix)]
#[test]
fn regression_a_name_that_is_not_utf8_is_archived_under_its_original_bytes() {
    use std::os::unix::ffi::OsStrExt;
    let d = tempfile::tempdir().unwrap();
    let mut e = engine(d.path(), ACCEPT, 100);
    let name = std::ffi::OsStr::from_bytes(b"bestellung-\xfc.txt");
    std::fs::write(d.path().join("inbox").join(name), "K1,1\n").unwrap();
    let r = run_once(&mut e).files.remove(0);
    assert_eq!(r.outcome, "applied");
    assert!(d.path().join("archive").join(name).exists(), "{r:?}");
}
