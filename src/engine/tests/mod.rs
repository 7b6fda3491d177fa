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
        let job = move |_: &str| {
            if let Some(special) = special_line(&l, &path) {
                return special;
            }
            if l.starts_with("CRASH") && recovery::CRASHES.lock().unwrap().remove(&l) {
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
                    verdicts: vec![LineVerdict::rejected(
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
            show: None,
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
            content: crate::format::AckBody::from_text(format!("applied={applied}").as_bytes()),
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

mod recovery;

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
