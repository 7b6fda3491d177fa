//! Recovery: crashes and kills mid-file, files the process keeps dying on, lost work and
//! staging folders, temporaries of killed writes, stop requests.

use super::*;

/// Crash lines armed to panic once (`CRASH-<test>`), one token per test so that tests
/// running in parallel never fire each other's.
pub(super) static CRASHES: std::sync::Mutex<std::collections::BTreeSet<String>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

fn arm_crash(token: &str) {
    CRASHES.lock().unwrap().insert(token.to_string());
}

/// `n` lines `<prefix><i>,1`, with the crash line `token` in place of line `at`.
fn lines_with_crash(n: usize, at: usize, prefix: &str, token: &str) -> String {
    (0..n)
        .map(|i| {
            if i == at {
                format!("{token}\n")
            } else {
                format!("{prefix}{i},1\n")
            }
        })
        .collect()
}

/// Drops `body` as `inbox/a.txt` and runs a pass that dies at the crash line `token`, the
/// way a killed process dies: batches before it committed, nothing decided.
fn crash_midway(dir: &Path, batch: u64, body: &str, token: &str) {
    drop(engine(dir, ACCEPT, batch));
    std::fs::write(dir.join("inbox/a.txt"), body).unwrap();
    let mut e = engine(dir, ACCEPT, batch);
    let run = e.ledger.begin_run("t").unwrap();
    arm_crash(token);
    let died = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| e.run_pass(run)));
    assert!(died.is_err(), "the simulated crash happened");
    died_here(&e, run);
}

/// Ends a run whose simulated crash this process outlived: a real death is found by its
/// pid (see `Ledger::take_lease`), and the run's leases go with it.
fn died_here(e: &Engine, run: i64) {
    e.ledger.finish_run(run, "died", None).unwrap();
}

/// The same file processed without a crash, for comparison (an unarmed crash line is
/// just a rejected line).
fn uninterrupted(body: &str, batch: u64) -> tempfile::TempDir {
    let reference = tempfile::tempdir().unwrap();
    let mut e = engine(reference.path(), ACCEPT, batch);
    std::fs::write(reference.path().join("inbox/a.txt"), body).unwrap();
    run_once(&mut e);
    reference
}

#[test]
fn resumes_after_a_crash_without_losing_or_doubling() {
    let body = lines_with_crash(20, 13, "K", "CRASH-resume");
    let reference = uninterrupted(&body, 4);
    let d = tempfile::tempdir().unwrap();
    crash_midway(d.path(), 4, &body, "CRASH-resume");
    assert!(
        !d.path().join("outbox/product").exists(),
        "nothing published before the decision"
    );
    let mut e = engine(d.path(), ACCEPT, 4);
    let run = e.ledger.begin_run("t").unwrap();
    let r = e.run_pass(run).unwrap().files.remove(0);
    assert_eq!(
        (r.counts.lines_applied, r.counts.lines_rejected),
        (19, 1),
        "{r:?}"
    );
    let rel = |root: &Path| -> Vec<(String, String)> {
        let dir = root.join("outbox/product");
        let mut v: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read_to_string(e.path()).unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        rel(d.path()),
        rel(reference.path()),
        "same files, same bytes as an uninterrupted run"
    );
}

#[test]
fn regression_a_file_the_process_keeps_dying_on_is_held_not_retried_forever() {
    // A reader that brings the process down on the same input every time would
    // otherwise be resumed first by every run and block the inbox for good. It is held
    // for a person (not rejected: it may be good data), and the inbox flows on.
    let d = tempfile::tempdir().unwrap();
    drop(engine(d.path(), ACCEPT, 100));
    std::fs::write(d.path().join("inbox/a.txt"), "A,1\nPOISON\n").unwrap();
    for _ in 0..3 {
        let mut e = engine(d.path(), ACCEPT, 100);
        let run = e.ledger.begin_run("t").unwrap();
        let died = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| e.run_pass(run)));
        assert!(died.is_err());
        died_here(&e, run);
    }
    let mut e = engine(d.path(), ACCEPT, 100);
    std::fs::write(d.path().join("inbox/b.txt"), "B,1\n").unwrap();
    let run = e.ledger.begin_run("t").unwrap();
    let p = e.run_pass(run).unwrap();
    let outcomes: Vec<&str> = p.files.iter().map(|r| r.outcome.as_str()).collect();
    assert_eq!(outcomes, vec!["held", "applied"], "{p:?}");
    assert!(p.files[0]
        .error
        .as_deref()
        .unwrap()
        .contains("died 3 times"));
    assert!(p.files[0]
        .action
        .as_deref()
        .unwrap()
        .contains("tallyman release"));
    assert!(p.files[0].needs_review());
    assert!(e.run_pass(run).unwrap().files.is_empty(), "not retried");
    assert_eq!(e.held().unwrap().len(), 1, "still visible");
    // A person rejects it at review: decided and moved, nothing applied.
    let held = e.ledger.held_files().unwrap().remove(0);
    e.ledger
        .release(held.id, Some(("rejected-at-review", "poison input")))
        .unwrap();
    let r = e.run_pass(run).unwrap().files.remove(0);
    assert_eq!(r.outcome, "rejected", "{r:?}");
    assert!(d.path().join("rejected/a.txt").exists());
}

#[test]
fn regression_startup_kills_after_a_mid_file_kill_do_not_hold_a_valid_file() {
    // Killed mid-file once, then three runs killed while starting up (before reading got
    // past the committed part): no evidence against the file, which finishes normally.
    let d = tempfile::tempdir().unwrap();
    let body = lines_with_crash(10, 5, "K", "CRASH-startup");
    crash_midway(d.path(), 2, &body, "CRASH-startup");
    let id = {
        let e = engine(d.path(), ACCEPT, 2);
        e.ledger.unfinished_files().unwrap()[0].id
    };
    for _ in 0..3 {
        let e = engine(d.path(), ACCEPT, 2);
        e.ledger.note_start(id).unwrap(); // a start that dies before reading anything new
    }
    let mut e = engine(d.path(), ACCEPT, 2);
    let run = e.ledger.begin_run("t").unwrap();
    let r = e.run_pass(run).unwrap().files.remove(0);
    assert_eq!(r.outcome, "applied_with_rejects", "{r:?}");
    assert_eq!(r.counts.lines_applied, 9);
}

#[test]
fn an_orphan_in_processing_without_a_ledger_row_is_finished() {
    // A crash between moving a file into processing and writing its ledger row.
    let d = tempfile::tempdir().unwrap();
    let mut e = engine(d.path(), ACCEPT, 100);
    let orphan = d.path().join("work/processing/0123456789abcdef-a.txt");
    std::fs::write(&orphan, "A,1\n").unwrap();
    assert_eq!(
        fingerprint_prefix(&orphan).as_deref(),
        Some("0123456789abcdef")
    );
    let run = e.ledger.begin_run("t").unwrap();
    let r = e.run_pass(run).unwrap().files.remove(0);
    assert_eq!((r.name.as_str(), r.outcome.as_str()), ("a.txt", "applied"));
    assert!(d.path().join("archive/a.txt").exists());
    assert!(
        e.run_pass(run).unwrap().files.is_empty(),
        "nothing left to do"
    );
}

#[test]
fn chunks_are_cut_at_the_same_lines_however_the_file_is_resumed() {
    // Batch boundaries count lines from the start of the file.
    let d = tempfile::tempdir().unwrap();
    let mut e = engine(d.path(), ACCEPT, 3);
    let body: String = (0..10).map(|i| format!("K{i},1\n")).collect();
    std::fs::write(d.path().join("inbox/a.txt"), body).unwrap();
    let run = e.ledger.begin_run("t").unwrap();
    e.run_pass(run).unwrap();
    let n = std::fs::read_dir(d.path().join("outbox/product"))
        .unwrap()
        .count();
    assert_eq!(n, 4, "10 lines in batches of 3");
}

#[test]
fn regression_a_file_still_being_written_is_returned_not_half_applied() {
    // The writer finishes through its open descriptor after the file was claimed: the
    // attempt must not be decided on what was read, and the whole file must be applied
    // once it stops changing.
    let d = tempfile::tempdir().unwrap();
    let mut e = engine(d.path(), ACCEPT, 2);
    std::fs::write(d.path().join("inbox/a.txt"), "K1,1\nK2,1\nGROW\nK3,1\n").unwrap();
    let r = run_once(&mut e).files.remove(0);
    assert_eq!(r.outcome, "returned", "{r:?}");
    assert!(r
        .error
        .as_deref()
        .unwrap()
        .contains("changed while it was processed"));
    assert!(r.needs_review());
    assert!(
        outbox_lines(d.path()).is_empty(),
        "nothing applied from the partial read"
    );
    assert_eq!(files_in(&d.path().join("archive")), Vec::<String>::new());
    let back = std::fs::read_to_string(d.path().join("inbox/a.txt")).unwrap();
    assert!(
        back.ends_with("LATE,1\n"),
        "the whole file is back in the inbox: {back}"
    );
    // Keys of the abandoned attempt are free: the complete file applies every document.
    std::fs::write(d.path().join("inbox/a.txt"), back.replace("GROW\n", "")).unwrap();
    let r = run_once(&mut e).files.remove(0);
    assert_eq!(
        (r.outcome.as_str(), r.counts.lines_applied),
        ("applied", 4),
        "{r:?}"
    );
    assert_eq!(outbox_lines(d.path()).len(), 4);
}

#[test]
fn regression_losing_the_work_folder_fails_that_file_and_the_others_go_on() {
    let d = tempfile::tempdir().unwrap();
    let body = lines_with_crash(8, 5, "A", "CRASH-work");
    crash_midway(d.path(), 2, &body, "CRASH-work");
    // Someone deletes work/ and recreates it empty; more files arrive.
    std::fs::remove_dir_all(d.path().join("work")).unwrap();
    std::fs::create_dir(d.path().join("work")).unwrap();
    std::fs::write(d.path().join("inbox/b.txt"), "B1,1\nA0,1\n").unwrap();
    let mut e = engine(d.path(), ACCEPT, 2);
    let p = run_once(&mut e);
    let outcomes: Vec<(&str, &str)> = p
        .files
        .iter()
        .map(|r| (r.name.as_str(), r.outcome.as_str()))
        .collect();
    assert_eq!(outcomes, vec![("a.txt", "failed"), ("b.txt", "applied")]);
    assert!(p.files[0].error.as_deref().unwrap().contains("disappeared"));
    assert!(p.files[0].action.as_deref().unwrap().contains("resend"));
    assert_eq!(
        p.files[1].counts.lines_applied, 2,
        "A0's key was given back"
    );
    assert!(run_once(&mut e).files.is_empty(), "nothing wedged");
    // The sender resends: a new attempt, applied except what b.txt already applied.
    std::fs::write(
        d.path().join("inbox/a.txt"),
        body.replace("CRASH-work\n", "A5,1\n"),
    )
    .unwrap();
    let r = run_once(&mut e).files.remove(0);
    assert_eq!(
        (r.outcome.as_str(), r.counts.lines_applied),
        ("applied", 7),
        "{r:?}"
    );
}

#[test]
fn regression_staged_output_lost_before_the_decision_is_rebuilt_from_the_intact_input() {
    let body = lines_with_crash(9, 6, "K", "CRASH-staging");
    let reference = uninterrupted(&body, 2);

    let d = tempfile::tempdir().unwrap();
    crash_midway(d.path(), 2, &body, "CRASH-staging");
    std::fs::remove_dir_all(d.path().join("work/staging")).unwrap();
    let mut e = engine(d.path(), ACCEPT, 2);
    let r = run_once(&mut e).files.remove(0);
    assert_eq!(
        (r.outcome.as_str(), r.counts.lines_applied),
        ("applied_with_rejects", 8)
    );
    assert_eq!(
        snapshot(&d.path().join("outbox")),
        snapshot(&reference.path().join("outbox")),
        "same files, same bytes as an uninterrupted run"
    );
}

/// Every file under `root`, by relative path, with its bytes.
fn snapshot(root: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn regression_staged_output_lost_after_the_decision_is_rebuilt_from_the_ledger() {
    // Products are master data: the ledger keeps their versions' data.
    lost_chunk_is_rebuilt(&(0..6).map(|i| format!("K{i},1\n")).collect::<String>());
}

#[test]
fn regression_staged_output_of_create_once_documents_is_made_again_from_the_input() {
    // Orders are create-once: the ledger keeps only their hash, so the input makes them.
    lost_chunk_is_rebuilt(&(0..6).map(|i| format!("OPO-{i},1\n")).collect::<String>());
}

fn lost_chunk_is_rebuilt(body: &str) {
    let reference = tempfile::tempdir().unwrap();
    let mut e = engine(reference.path(), ACCEPT, 2);
    std::fs::write(reference.path().join("inbox/a.txt"), body).unwrap();
    run_once(&mut e);

    let d = tempfile::tempdir().unwrap();
    let mut e = engine(d.path(), ACCEPT, 2);
    std::fs::write(d.path().join("inbox/a.txt"), body).unwrap();
    // Claim and read it to its decision, then lose one staged chunk before publishing.
    let run = e.ledger.begin_run("t").unwrap();
    let scan = e.scan_inbox(run).unwrap();
    let Some(claim::Claimed::Work(job)) = e.claim_candidate(run, &scan.candidates[0]).unwrap()
    else {
        panic!("claimed")
    };
    assert_eq!(
        e.read(&job.row, job.work.as_deref()).unwrap(),
        ReadEnd::Decided
    );
    let chunks = e.ledger.chunks(job.row.id).unwrap();
    assert_eq!(chunks.len(), 3);
    std::fs::remove_file(&chunks[1].staged_path).unwrap();
    let row = e.ledger.file(job.row.id).unwrap();
    e.publish(&row, job.work.as_deref()).unwrap();
    drop(job);
    let r = e.report(row.id).unwrap();
    assert_eq!(
        (r.outcome.as_str(), r.counts.lines_applied),
        ("applied", 6),
        "{r:?}"
    );
    assert_eq!(
        snapshot(&d.path().join("outbox")),
        snapshot(&reference.path().join("outbox")),
        "the lost chunk is rebuilt byte for byte"
    );
}

#[test]
fn regression_temporaries_of_a_killed_publish_are_swept_at_start() {
    let d = tempfile::tempdir().unwrap();
    drop(engine(d.path(), ACCEPT, 2));
    let mut child = std::process::Command::new("true").spawn().unwrap();
    child.wait().unwrap();
    let dead = format!(".tallyman-{}-7.tmp", child.id());
    for dir in ["outbox/order", "acks", "reports"] {
        std::fs::create_dir_all(d.path().join(dir)).unwrap();
        std::fs::write(d.path().join(dir).join(&dead), "a complete chunk").unwrap();
    }
    drop(engine(d.path(), ACCEPT, 2));
    for dir in ["outbox/order", "acks", "reports"] {
        assert!(files_in(&d.path().join(dir)).is_empty(), "{dir}");
    }
}

#[test]
fn regression_a_stop_request_ends_the_run_after_the_batch_and_the_next_run_resumes() {
    let body: String = (0..10)
        .map(|i| {
            if i == 3 {
                "STOP\n".into()
            } else {
                format!("K{i},1\n")
            }
        })
        .collect();
    let reference = tempfile::tempdir().unwrap();
    let mut e = engine(reference.path(), ACCEPT, 2);
    std::fs::write(reference.path().join("inbox/a.txt"), &body).unwrap();
    run_once(&mut e);

    let d = tempfile::tempdir().unwrap();
    let mut e = engine(d.path(), ACCEPT, 2);
    std::fs::write(d.path().join("inbox/a.txt"), &body).unwrap();
    std::fs::write(d.path().join("inbox/b.txt"), "B1,1\n").unwrap();
    *STOP.lock().unwrap() = Some(e.stop_flag());
    let p = run_once(&mut e);
    *STOP.lock().unwrap() = None;
    assert!(p.interrupted);
    assert_eq!(p.files.len(), 1, "no further file is started: {p:?}");
    assert_eq!(p.files[0].outcome, "interrupted");
    let row = e.ledger.file(p.files[0].file_id.unwrap()).unwrap();
    // The stop comes while the batch with STOP is evaluated, which may be while the batch
    // before it is committed (reading runs one batch ahead): the run ends after either.
    assert!(
        matches!(row.committed_lines, 2 | 4),
        "stopped right after a batch, not at its end: {} lines committed",
        row.committed_lines
    );
    let mut e = engine(d.path(), ACCEPT, 2);
    let p = run_once(&mut e);
    assert_eq!(p.files.len(), 2);
    assert_eq!(p.files[0].outcome, "applied");
    assert_eq!(
        snapshot(&d.path().join("outbox/product"))
            .into_iter()
            .filter(|(k, _)| k.starts_with("a-"))
            .collect::<Vec<_>>(),
        snapshot(&reference.path().join("outbox/product"))
            .into_iter()
            .collect::<Vec<_>>()
    );
}

#[test]
fn regression_a_kill_between_moving_the_input_and_recording_it_is_resumed_not_failed() {
    let d = tempfile::tempdir().unwrap();
    let mut e = engine(d.path(), ACCEPT, 100);
    std::fs::write(d.path().join("inbox/a.txt"), "K1,1\nK2,1\n").unwrap();
    // The claim's first steps, then death: the ledger row exists, the input was moved,
    // but the move was never recorded.
    let (fp, size) = crate::intake::fingerprint(&d.path().join("inbox/a.txt")).unwrap();
    let run = e.ledger.begin_run("t").unwrap();
    let source = d.path().join("inbox/a.txt").display().to_string();
    e.ledger
        .insert_file(
            &crate::ledger::NewFile {
                fingerprint: &fp,
                name: "a.txt",
                raw_name: None,
                source_path: &source,
                size,
                forced: false,
            },
            run,
        )
        .unwrap();
    let short: String = fp.chars().take(16).collect();
    std::fs::rename(
        d.path().join("inbox/a.txt"),
        d.path().join(format!("work/processing/{short}-a.txt")),
    )
    .unwrap();
    let r = run_once(&mut e).files.remove(0);
    assert_eq!(
        (r.outcome.as_str(), r.counts.lines_applied),
        ("applied", 2),
        "{r:?}"
    );
    assert!(files_in(&d.path().join("work/processing")).is_empty());
}
