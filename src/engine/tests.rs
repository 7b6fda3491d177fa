//! Engine behaviour with a tiny in-test format: each line `sku,qty` is one unit mapped
//! to a product; a line `#...` is skipped; a bad qty rejects the line.
use super::claim::fingerprint_prefix;
use super::*;
use crate::canonical::{Entity, Record};
use crate::format::{
    AckContext, FileError, Format, OpenContext, Outbound, Policy, Probe, UnitOutcomes, UnitReader,
    UnitStatus,
};
use crate::report;
use crate::unit::{Evaluation, LineVerdict, Position, Reason, SourceLine, Unit};
use std::io::BufRead;
use std::sync::Arc;

struct Lines {
    policy: Policy,
}

struct LinesReader {
    path: std::path::PathBuf,
    lines: std::io::Lines<std::io::BufReader<std::fs::File>>,
    seq: u64,
    byte: u64,
    line: u64,
    fail_at: Option<u64>,
}

impl Format for Lines {
    fn name(&self) -> &str {
        "lines"
    }
    fn kind(&self) -> &str {
        "test"
    }
    fn sniff(&self, probe: &Probe) -> Option<u32> {
        probe.name.ends_with(".txt").then_some(1)
    }
    fn policy(&self) -> Policy {
        self.policy
    }
    fn open<'a>(
        &'a self,
        path: &Path,
        _ctx: &OpenContext,
    ) -> std::result::Result<Box<dyn UnitReader + 'a>, FileError> {
        let f = std::fs::File::open(path).map_err(|e| FileError::io(&e))?;
        let fail_at = path.to_string_lossy().contains("truncated").then_some(2);
        Ok(Box::new(LinesReader {
            path: path.to_path_buf(),
            lines: std::io::BufReader::new(f).lines(),
            seq: 0,
            byte: 0,
            line: 0,
            fail_at,
        }))
    }
}

impl UnitReader for LinesReader {
    fn next_unit(&mut self) -> std::result::Result<Option<Unit>, FileError> {
        let Some(l) = self.lines.next() else {
            return Ok(None);
        };
        let l = l.map_err(|e| FileError::io(&e))?;
        self.line += 1;
        if Some(self.line) == self.fail_at {
            return Err(FileError::at(
                Position::new(self.line, self.byte, self.line),
                "truncated",
                "file ends early",
            ));
        }
        let pos = Position::new(self.line, self.byte, self.line);
        self.byte += l.len() as u64 + 1;
        let seq = self.seq;
        self.seq += 1;
        let line = SourceLine {
            pos,
            raw: l.clone(),
        };
        if l.starts_with('#') {
            return Ok(Some(Unit::skipped(seq, "comment", vec![line])));
        }
        let path = self.path.clone();
        let job = move || {
            if let Some(special) = special_line(&l, &path) {
                return special;
            }
            if l.starts_with("CRASH") && CRASHES.lock().unwrap().remove(&l) {
                panic!("simulated crash");
            }
            if l == "POISON" {
                panic!("simulated reader that always dies on this line");
            }
            let (sku, qty) = l.split_once(',').unwrap_or((&l, ""));
            match qty.parse::<rust_decimal::Decimal>() {
                Ok(q) => Evaluation {
                    records: vec![Record::build(
                        Entity::Product,
                        sku,
                        serde_json::json!({"sku": sku, "min_order_qty": q.to_string()}),
                    )
                    .unwrap()],
                    ..Default::default()
                },
                Err(_) => Evaluation {
                    verdicts: vec![LineVerdict::Rejected(
                        Reason::new("type", "qty is not a decimal")
                            .field("qty")
                            .value(qty),
                    )],
                    key: Some(sku.to_string()),
                    ..Default::default()
                },
            }
        };
        Ok(Some(Unit {
            seq,
            label: format!("line {}", self.line),
            lines: vec![line],
            job: Some(Box::new(job)),
        }))
    }

    fn finish(
        &mut self,
        outcomes: &dyn UnitOutcomes,
        acks: &mut dyn AckContext,
        _error: Option<&FileError>,
    ) -> std::result::Result<Vec<Outbound>, FileError> {
        let applied = (0..self.seq)
            .filter(|s| {
                outcomes
                    .get(*s)
                    .is_some_and(|o| o.status == UnitStatus::Applied)
            })
            .count();
        let n = acks.next_control_number("P", "ACK")?;
        Ok(vec![Outbound {
            file_name: format!("ack-{n}.txt"),
            kind: "ACK".into(),
            partner: "P".into(),
            control_no: Some(n),
            content: format!("applied={applied}").into_bytes(),
        }])
    }
}

static STOP: std::sync::Mutex<Option<Arc<std::sync::atomic::AtomicBool>>> =
    std::sync::Mutex::new(None);

/// Lines that make the job do something a test needs: `GROW` appends to the file being
/// read (a writer that was not done), `STOP` asks the engine to stop (a SIGTERM), `U<key>`
/// is a unit no definition maps, `H<key>` one whose partner wants a person to look first.
fn special_line(l: &str, path: &Path) -> Option<Evaluation> {
    use std::io::Write;
    match l {
        "GROW" => {
            let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
            f.write_all(b"LATE,1\n").unwrap();
            Some(Evaluation::default())
        }
        "STOP" => {
            if let Some(flag) = STOP.lock().unwrap().as_ref() {
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            Some(Evaluation::default())
        }
        _ if l.starts_with('O') => {
            let (no, qty) = l[1..].split_once(',').unwrap_or((&l[1..], "1"));
            let body =
                serde_json::json!({"order_no": no, "lines": [{"line_no": "1", "quantity": qty}]});
            Some(Evaluation {
                records: vec![Record::build(Entity::Order, no, body).unwrap()],
                ..Evaluation::default()
            })
        }
        _ if l.starts_with('U') || l.starts_with('H') => Some(Evaluation {
            unmapped: true,
            key: Some(l[1..].to_string()),
            claims: vec![format!("test:{l}")],
            hold: l
                .starts_with('H')
                .then(|| "partner P holds unmapped documents for review".to_string()),
            ..Evaluation::default()
        }),
        _ => None,
    }
}

fn engine(dir: &Path, policy: Policy, batch_lines: u64) -> Engine {
    let cfg_path = dir.join("tallyman.toml");
    let text = crate::config::DEFAULT_CONFIG
        .replace("settle_seconds = 10", "settle_seconds = 0")
        .replace(
            "batch_lines = 10000",
            &format!("batch_lines = {batch_lines}"),
        );
    std::fs::write(&cfg_path, text).unwrap();
    let cfg = Config::load(&cfg_path).unwrap();
    workdir::create(&cfg.paths).unwrap();
    let formats = FormatSet {
        formats: vec![Arc::new(Lines { policy })],
    };
    Engine::with_formats(cfg, formats).unwrap()
}

fn outbox_lines(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let pdir = dir.join("outbox/product");
    let mut names: Vec<_> = std::fs::read_dir(&pdir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    names.sort();
    for n in names {
        out.extend(
            std::fs::read_to_string(n)
                .unwrap()
                .lines()
                .map(String::from),
        );
    }
    out
}

/// Crash lines armed to panic once (`CRASH-<test>`), one token per test so that tests
/// running in parallel never fire each other's.
static CRASHES: std::sync::Mutex<std::collections::BTreeSet<String>> =
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
}

#[test]
fn resumes_after_a_crash_without_losing_or_doubling() {
    let body = lines_with_crash(20, 13, "K", "CRASH-resume");
    // Reference: no crash (the unarmed crash line is just a rejected line).
    let reference = tempfile::tempdir().unwrap();
    let mut e = engine(reference.path(), ACCEPT, 4);
    std::fs::write(reference.path().join("inbox/a.txt"), &body).unwrap();
    run_once(&mut e);
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

const ACCEPT: Policy = Policy::AcceptValid {
    max_reject_ratio: 0.5,
};

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
            .contains("lines[0].quantity '1' → '5'"),
        "{rows:?}"
    );
    assert!(r.needs_review(), "a conflict is held for a person");
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

fn run_once(e: &mut Engine) -> Pass {
    let run = e.ledger.begin_run("t").unwrap();
    e.run_pass(run).unwrap()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
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
    // Reference: the same file uninterrupted (the unarmed crash line is a rejected line).
    let reference = tempfile::tempdir().unwrap();
    let mut e = engine(reference.path(), ACCEPT, 2);
    std::fs::write(reference.path().join("inbox/a.txt"), &body).unwrap();
    run_once(&mut e);

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
    let body: String = (0..6).map(|i| format!("K{i},1\n")).collect();
    let reference = tempfile::tempdir().unwrap();
    let mut e = engine(reference.path(), ACCEPT, 2);
    std::fs::write(reference.path().join("inbox/a.txt"), &body).unwrap();
    run_once(&mut e);

    let d = tempfile::tempdir().unwrap();
    let mut e = engine(d.path(), ACCEPT, 2);
    std::fs::write(d.path().join("inbox/a.txt"), &body).unwrap();
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
    assert_eq!(
        row.committed_lines, 4,
        "stopped right after the batch with STOP"
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
