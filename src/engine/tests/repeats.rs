//! Content and keys seen again: duplicate files and documents, new versions and
//! conflicts, a new attempt after a whole reject, forced re-applies, and a key held by a
//! file not yet decided.

use super::*;

#[test]
fn same_content_again_is_a_duplicate_file() {
    let d = tempfile::tempdir().unwrap();
    let mut e = engine(d.path(), ACCEPT, 100);
    std::fs::write(d.path().join("inbox/a.txt"), "A,1\n").unwrap();
    let run = e.ledger.begin_run("t").unwrap();
    e.run_pass(run).unwrap();
    std::fs::write(d.path().join("inbox/copy.txt"), "A,1\n").unwrap();
    let reports = e.run_pass(run).unwrap().files;
    assert_eq!(reports[0].outcome, "duplicate_file");
    assert!(d.path().join("rejected/copy.txt").exists());
    assert_eq!(outbox_lines(d.path()).len(), 1);
}

#[test]
fn a_master_data_key_again_is_a_new_version_unchanged_or_a_conflict_within_one_file() {
    let d = tempfile::tempdir().unwrap();
    let mut e = engine(d.path(), ACCEPT, 100);
    std::fs::write(d.path().join("inbox/a.txt"), "A,1\nB,1\n").unwrap();
    run_once(&mut e);
    std::fs::write(d.path().join("inbox/b.txt"), "A,1\nB,2\nC,1\nC,3\n").unwrap();
    let r = run_once(&mut e).files.remove(0);
    let c = &r.counts;
    assert_eq!(
        (c.lines_applied, c.lines_unchanged, c.lines_rejected),
        (2, 1, 1),
        "B is a new version, A unchanged, the second C conflicts: {r:?}"
    );
    assert_eq!(r.outcome, "applied_with_rejects");
    assert_eq!(
        outbox_lines(d.path()).len(),
        4,
        "A and B once, B's new version, C"
    );
    let rows =
        report::file_rejects(&e.ledger, &e.ledger.file(r.file_id.unwrap()).unwrap()).unwrap();
    assert_eq!(rows[0].rule.as_deref(), Some("key-conflict"));
    assert!(
        rows[0]
            .message
            .as_deref()
            .unwrap()
            .contains("min_order_qty '1' → '3'"),
        "{rows:?}"
    );
}

#[test]
fn an_order_again_is_a_duplicate_and_with_other_content_a_conflict() {
    let d = tempfile::tempdir().unwrap();
    let mut e = engine(d.path(), ACCEPT, 100);
    std::fs::write(d.path().join("inbox/a.txt"), "OPO-1,2\nOPO-2,1\n").unwrap();
    run_once(&mut e);
    std::fs::write(d.path().join("inbox/b.txt"), "OPO-1,2\nOPO-2,5\nOPO-3,1\n").unwrap();
    let r = run_once(&mut e).files.remove(0);
    let c = &r.counts;
    assert_eq!(
        (c.lines_applied, c.lines_duplicate, c.lines_rejected),
        (1, 1, 1),
        "{r:?}"
    );
    let rows =
        report::file_rejects(&e.ledger, &e.ledger.file(r.file_id.unwrap()).unwrap()).unwrap();
    assert_eq!(rows[0].rule.as_deref(), Some("key-conflict"));
    assert_eq!(rows[0].key.as_deref(), Some("PO-2"));
    assert!(
        rows[0]
            .message
            .as_deref()
            .unwrap()
            .contains("only its hash; compare with line 2 of that file"),
        "a create-once document's data is not kept in the ledger (the outbox has it), so the \
         conflict names where the applied one came from: {rows:?}"
    );
    assert!(r.needs_review(), "a conflict is held for a person");
}

#[test]
fn regression_resubmitting_content_rejected_whole_is_a_new_attempt_not_a_duplicate() {
    let d = tempfile::tempdir().unwrap();
    let mut e = engine(d.path(), Policy::AllOrNothing, 100);
    std::fs::write(d.path().join("inbox/a.txt"), "A,1\nB,x\n").unwrap();
    let run = e.ledger.begin_run("t").unwrap();
    assert_eq!(e.run_pass(run).unwrap().files[0].outcome, "rejected");
    std::fs::write(d.path().join("inbox/again.txt"), "A,1\nB,x\n").unwrap();
    let r = e.run_pass(run).unwrap().files.remove(0);
    assert_eq!(
        r.outcome, "rejected",
        "processed again, not a duplicate: {r:?}"
    );
    let latest = e.ledger.latest_file(&r.fingerprint).unwrap().unwrap();
    assert_eq!(latest.attempt, 2);
}

#[test]
fn process_force_applies_again() {
    let d = tempfile::tempdir().unwrap();
    let mut e = engine(d.path(), ACCEPT, 100);
    let f = d.path().join("manual.txt");
    std::fs::write(&f, "A,1\n").unwrap();
    let run = e.ledger.begin_run("t").unwrap();
    assert_eq!(e.process_path(run, &f, false).unwrap().outcome, "applied");
    assert_eq!(
        e.process_path(run, &f, false).unwrap().outcome,
        "duplicate_file"
    );
    let r = e.process_path(run, &f, true).unwrap();
    assert_eq!(r.outcome, "applied", "{r:?}");
    assert!(f.exists(), "the operator's file is left in place");
    assert_eq!(
        outbox_lines(d.path()).len(),
        2,
        "forced re-apply writes the records again"
    );
}

#[test]
fn regression_a_file_whose_documents_were_all_duplicates_goes_to_rejected() {
    let d = tempfile::tempdir().unwrap();
    let mut e = engine(d.path(), ACCEPT, 100);
    std::fs::write(d.path().join("inbox/a.txt"), "OPO-1,1\n").unwrap();
    run_once(&mut e);
    std::fs::write(d.path().join("inbox/b.txt"), "OPO-1,1\n# a comment\n").unwrap();
    let r = run_once(&mut e).files.remove(0);
    assert_eq!(r.outcome, "duplicate");
    assert!(d.path().join("rejected/b.txt").exists(), "{r:?}");
}

#[test]
fn regression_a_key_held_by_a_file_not_yet_decided_makes_the_next_file_wait_not_a_duplicate() {
    // File a holds order A1 but is held for a person; file b has the same order. Were b's
    // order a duplicate of a's, rejecting a whole would leave A1 applied by nobody.
    let d = tempfile::tempdir().unwrap();
    let mut e = engine(d.path(), ACCEPT, 100);
    std::fs::write(d.path().join("inbox/a.txt"), "OA1,1\nH837-1\n").unwrap();
    let a = run_once(&mut e).files.remove(0);
    assert_eq!(a.outcome, "held", "{a:?}");
    std::fs::write(d.path().join("inbox/b.txt"), "OB1,1\nOA1,1\n").unwrap();
    let b = run_once(&mut e).files.remove(0);
    assert_eq!(b.outcome, "waiting", "b waits for a: {b:?}");
    assert!(
        b.error
            .as_deref()
            .unwrap()
            .contains("order A1 is held by 'a.txt'"),
        "{b:?}"
    );
    assert_eq!(b.counts.lines_duplicate, 0, "{b:?}");
    assert_eq!(b.counts.lines_applied, 0, "its batch waits whole: {b:?}");
    let again = run_once(&mut e);
    assert_eq!(again.files.len(), 1, "{:?}", again.files);
    assert_eq!(again.files[0].outcome, "waiting", "still, while a is held");
    // `status` lists it, with what it waits for.
    let waiting = e.ledger.waiting_files().unwrap();
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    assert_eq!(waiting[0].name, "b.txt");
    assert!(waiting[0].why.contains("held by 'a.txt'"), "{waiting:?}");
    // The reviewer rejects a whole: A1 is b's to apply.
    e.ledger
        .release(a.file_id.unwrap(), Some(("reviewer", "not ours")))
        .unwrap();
    let pass = run_once(&mut e);
    let b = pass
        .files
        .iter()
        .find(|f| f.name == "b.txt")
        .expect("b goes on");
    assert_eq!(b.outcome, "applied", "{:?}", pass.files);
    assert_eq!(b.counts.lines_applied, 2, "{b:?}");
    assert!(
        e.ledger.waiting_files().unwrap().is_empty(),
        "b waits no more"
    );
    let orders: Vec<String> = std::fs::read_dir(d.path().join("outbox/order"))
        .unwrap()
        .flatten()
        .flat_map(|f| {
            std::fs::read_to_string(f.path())
                .unwrap()
                .lines()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(orders.len(), 2, "A1 and B1, once each: {orders:?}");
    assert_eq!(orders.iter().filter(|o| o.contains("\"A1\"")).count(), 1);
}
