//! Helpers for format modules' tests: read a file through a format without the pipeline,
//! run every unit's job, and call `finish` with in-memory outcomes and control numbers.

use std::collections::HashMap;
use std::path::Path;

use super::{
    AckContext, FileError, Format, Mark, OpenContext, Outbound, UnitOutcomes, UnitStatus,
    UnitSummary,
};
use crate::unit::{Evaluation, LineVerdict, SourceLine};

/// One unit as read and evaluated.
#[derive(Debug)]
pub struct ReadUnit {
    pub seq: u64,
    pub label: String,
    pub lines: Vec<SourceLine>,
    pub eval: Evaluation,
}

impl ReadUnit {
    /// The status the pipeline gives the unit (short of the duplicate check).
    pub fn status(&self) -> UnitStatus {
        let facts = crate::engine::decide::unit_facts(&self.eval, self.lines.len());
        crate::engine::decide::unit_status(facts)
    }
}

/// Everything a format did with one file.
#[derive(Debug)]
pub struct ReadResult {
    pub units: Vec<ReadUnit>,
    /// The error that ended the file, if any.
    pub error: Option<FileError>,
    pub acks: Vec<Outbound>,
}

struct MemOutcomes(HashMap<u64, UnitSummary>);
impl UnitOutcomes for MemOutcomes {
    fn get(&self, seq: u64) -> Option<UnitSummary> {
        self.0.get(&seq).cloned()
    }
}

/// Control numbers counting from 1 per (partner, kind).
#[derive(Default)]
pub struct MemAcks(pub HashMap<(String, String), u64>);
impl AckContext for MemAcks {
    fn next_control_number(&mut self, partner: &str, kind: &str) -> Result<u64, FileError> {
        let n = self
            .0
            .entry((partner.to_string(), kind.to_string()))
            .or_insert(0);
        *n += 1;
        Ok(*n)
    }
}

pub fn ctx_for(path: &Path) -> OpenContext {
    OpenContext {
        fingerprint: "test".into(),
        name: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        limits: Default::default(),
    }
}

/// Every row of one sheet of the workbook at `path`, or the error that stopped reading.
pub fn sheet_rows(
    path: &Path,
    sheet: crate::tabular::SheetSelector,
) -> Result<Vec<crate::tabular::Row>, FileError> {
    let mut src = crate::sheet::open_rows(path, &ctx_for(path), &sheet)?;
    let mut rows = Vec::new();
    while let Some(row) = src.next_row()? {
        rows.push(row);
    }
    Ok(rows)
}

/// Reads `path` through `format` the way the pipeline would (minus ledger and sinks).
pub fn read_all(format: &dyn Format, path: &Path) -> ReadResult {
    read_all_with(format, path, &ctx_for(path))
}

pub fn read_all_with(format: &dyn Format, path: &Path, ctx: &OpenContext) -> ReadResult {
    let mut reader = match format.open(path, ctx) {
        Ok(r) => r,
        Err(e) => {
            return ReadResult {
                units: vec![],
                error: Some(e),
                acks: vec![],
            }
        }
    };
    let mut units = Vec::new();
    let mut error = None;
    loop {
        match reader.next_unit() {
            Ok(Some(mut u)) => {
                let eval = u.evaluate();
                units.push(ReadUnit {
                    seq: u.seq,
                    lines: u.shown_lines(),
                    label: u.label,
                    eval,
                });
            }
            Ok(None) => break,
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    let outcomes = outcomes_of(&units);
    let mut acks = MemAcks::default();
    let acks = match reader.finish(&outcomes, &mut acks, error.as_ref()) {
        Ok(a) => a,
        Err(e) => {
            error.get_or_insert(e);
            vec![]
        }
    };
    ReadResult { units, error, acks }
}

/// The outcomes of units as the ledger would answer them.
fn outcomes_of(units: &[ReadUnit]) -> MemOutcomes {
    MemOutcomes(
        units
            .iter()
            .map(|u| {
                let mut reasons = Vec::new();
                for (i, v) in u.eval.verdicts.iter().enumerate() {
                    if let LineVerdict::Rejected(r) = v {
                        reasons.push((u.lines[i].pos.clone(), (**r).clone()));
                    }
                }
                let first = u.lines.first().map(|l| l.pos.clone()).unwrap_or_default();
                for r in &u.eval.unit_errors {
                    reasons.push((first.clone(), r.clone()));
                }
                (
                    u.seq,
                    UnitSummary {
                        seq: u.seq,
                        status: u.status(),
                        reasons,
                        detail: u.eval.detail.clone(),
                    },
                )
            })
            .collect(),
    )
}

/// Reads `path` twice through `format`: once finished as it is, once with the reader's
/// [`super::Answering`] handed the outcomes every `step` units first, as batches commit;
/// both finish with `error` (the file's own when `None`) and must acknowledge alike.
/// Returns how many times units were handed over (0 for a reader without the handle).
pub fn assert_answering_matches(
    format: &dyn Format,
    path: &Path,
    step: u64,
    error: Option<&FileError>,
) -> u64 {
    let ctx = ctx_for(path);
    if format.open(path, &ctx).is_err() {
        return 0; // nothing to answer
    }
    let full = read_all_with(format, path, &ctx);
    let outcomes = outcomes_of(&full.units);
    let error = error.or(full.error.as_ref());
    let finished = |answer: bool| {
        let mut reader = format.open(path, &ctx).expect("opens");
        let mut answering = answer.then(|| reader.answering()).flatten();
        let (mut read, mut handed) = (0, 0);
        while let Ok(Some(_)) = reader.next_unit() {
            read += 1;
            if let Some(a) = answering.as_mut().filter(|_| read % step.max(1) == 0) {
                a.committed(&outcomes, read);
                handed += 1;
            }
        }
        let acks = reader.finish(&outcomes, &mut MemAcks::default(), error);
        (ack_texts(&acks.expect("acknowledges")), handed)
    };
    let (at_end, _) = finished(false);
    let (answered, handed) = finished(true);
    assert_eq!(answered, at_end, "{}", path.display());
    handed
}

/// Outcomes that note the least unit asked for.
struct Asked<'a> {
    outcomes: &'a MemOutcomes,
    least: std::cell::Cell<u64>,
}

impl UnitOutcomes for Asked<'_> {
    fn get(&self, seq: u64) -> Option<UnitSummary> {
        self.least.set(self.least.get().min(seq));
        self.outcomes.get(seq)
    }
}

/// Reads `path` with the reader's [`super::Answering`] handed the outcomes every `step`
/// units, as batches commit, and its restart state kept (`UnitReader::keep_state_in`).
/// After up to `most` of those hand-overs, spread over the file, a reader restarted at
/// that mark finishes the file, handing over every `step` units too. With the state as
/// kept, it must take up what was answered (and not ask for the first unit's outcome
/// again); with the state cut short, or a byte of it changed, it answers what it must.
/// Each restart acknowledges as the read through does. Returns the restarts made.
pub fn assert_answers_kept_across_restarts(
    format: &dyn Format,
    path: &Path,
    step: u64,
    most: usize,
) -> usize {
    let ctx = ctx_for(path);
    let full = read_all_with(format, path, &ctx);
    if full.error.is_some() {
        return 0;
    }
    let outcomes = outcomes_of(&full.units);
    let want = ack_texts(&full.acks);
    let dir = tempfile::tempdir().expect("a temporary folder");
    let state = dir.path().join("restart-state");
    let open = || {
        let mut r = format.open(path, &ctx).expect("opens");
        r.keep_state_in(state.clone());
        r
    };
    let step = step.max(1);
    let mut kept = Vec::new();
    let mut reader = open();
    let mut answering = reader.answering().expect("answers ahead");
    while let Some(u) = reader.next_unit().expect("reads") {
        let read = u.seq + 1;
        if read % step == 0 {
            answering.committed(&outcomes, read);
            let bytes = std::fs::read(&state).expect("the answers are kept");
            kept.extend(reader.mark().map(|m| (m, bytes)));
        }
    }
    // A restart at `mark` with `bytes` kept: its acknowledgements, the least unit it asked
    // for, and what it kept at its second hand-over (to stop and restart again from).
    let restart = |mark: &Mark, bytes: &[u8]| {
        std::fs::write(&state, bytes).expect("writes the state");
        let mut r = open();
        if !r.seek(mark).expect("seeks") {
            return None;
        }
        let asked = Asked {
            outcomes: &outcomes,
            least: std::cell::Cell::new(u64::MAX),
        };
        let mut answering = r.answering().expect("answers ahead");
        let (mut handed, mut again) = (0, None);
        while let Some(u) = r.next_unit().expect("reads") {
            if (u.seq + 1) % step == 0 {
                answering.committed(&asked, u.seq + 1);
                handed += 1;
                if handed == 2 {
                    let kept = std::fs::read(&state).expect("the answers are kept");
                    again = r.mark().map(|m| (m, kept));
                }
            }
        }
        let acks = r.finish(&asked, &mut MemAcks::default(), None);
        Some((
            ack_texts(&acks.expect("acknowledges")),
            asked.least.get(),
            again,
        ))
    };
    let every = kept.len().div_ceil(most.max(1)).max(1);
    let mut restarts = 0;
    for (mark, bytes) in kept.iter().step_by(every) {
        let mut changed = bytes.clone();
        if let Some(b) = changed.get_mut(bytes.len() / 2) {
            *b ^= 0x20;
        }
        let cuts = [
            bytes.len(),
            bytes.len().saturating_sub(1),
            bytes.len() / 3,
            0,
        ];
        let states = cuts
            .map(|c| bytes[..c].to_vec())
            .into_iter()
            .chain([changed]);
        for (i, b) in states.enumerate() {
            let Some((got, least, again)) = restart(mark, &b) else {
                continue;
            };
            let at = format!("{} restarted at {mark:?}, state {i}", path.display());
            assert_eq!(got, want, "{at}");
            restarts += 1;
            if i != 0 {
                continue;
            }
            assert!(least > 0, "{at}: answered again from the start");
            // Stopped again after it kept answers of its own, after those it took up.
            if let Some((got, least, _)) = again.and_then(|(m, b)| restart(&m, &b)) {
                assert_eq!(got, want, "{at}, then again");
                assert!(least > 0, "{at}, then again: answered again from the start");
                restarts += 1;
            }
        }
    }
    restarts
}

/// The acknowledgements as text, to compare (see [`unstamped`]).
fn ack_texts(acks: &[Outbound]) -> Vec<String> {
    acks.iter()
        .map(|a| {
            format!(
                "{} {}",
                a.file_name,
                unstamped(&a.content.bytes().expect("the ack inflates"))
            )
        })
        .collect()
}

/// An acknowledgement's text with the date and time an X12 envelope header (ISA, GS) or an
/// IDoc STATUS record is stamped with made zeros, so two acknowledgements made a minute
/// apart compare.
pub fn unstamped(content: &[u8]) -> String {
    const STAMPS: [&str; 4] = ["<CREDAT>", "<CRETIM>", "<LOGDAT>", "<LOGTIM>"];
    let stamped = |line: &str| {
        line.starts_with("ISA") || line.starts_with("GS") || STAMPS.iter().any(|s| line.contains(s))
    };
    let lines: Vec<String> = String::from_utf8_lossy(content)
        .lines()
        .map(|line| match stamped(line) {
            true => line.replace(|c: char| c.is_ascii_digit(), "0"),
            false => line.to_string(),
        })
        .collect();
    lines.join("\n")
}

/// Fuzzing entry point: loads the definitions in `formats_dir` once, writes `data` to a
/// temporary file and reads it through every format of `kind`. Any panic is a bug; errors
/// are expected.
pub fn fuzz_read(formats_dir: &Path, kind: &str, data: &[u8]) {
    fuzz(formats_dir, kind, data, false);
}

/// [`fuzz_read`], and an input that reads without a file error is read again from up to
/// five of the marks its reader gave, keeping its restart state as the engine has it kept,
/// which must return what the read through returned from there.
pub fn fuzz_restarts(formats_dir: &Path, kind: &str, data: &[u8]) {
    fuzz(formats_dir, kind, data, true);
}

fn fuzz(formats_dir: &Path, kind: &str, data: &[u8], restarts: bool) {
    use std::sync::OnceLock;
    static FORMATS: OnceLock<super::FormatSet> = OnceLock::new();
    let set = FORMATS.get_or_init(|| {
        let mut d = super::Diagnostics::default();
        super::registry::load_formats(formats_dir, &mut d)
    });
    let Ok(mut file) = tempfile::NamedTempFile::new() else {
        return;
    };
    if std::io::Write::write_all(&mut file, data).is_err() {
        return;
    }
    for f in set.formats.iter().filter(|f| f.kind() == kind) {
        let read = read_all(f.as_ref(), file.path());
        // A file that reads whole must restart at each of its marks as it read through:
        // what a resumed file's reader does after a crash (see `assert_restarts_match`).
        // A few restarts only: a fuzzed input of many sets has a mark at each.
        // With the restart state kept, as the engine keeps it (X12's snapshots).
        if restarts && read.error.is_none() {
            let ctx = ctx_for(file.path());
            let Ok(dir) = tempfile::tempdir() else {
                return;
            };
            let state = dir.path().join("restart-state");
            let keep = Restarts {
                state: Some((&state, &|| {})),
                ..Restarts::default()
            };
            restarts_match(f.as_ref(), file.path(), &ctx, keep, 4);
        }
    }
}

/// Reads `path` through `format` without a stop, then again from every mark the reader
/// gave (see `UnitReader::mark`): each restarted read must return exactly the units the
/// uninterrupted one returned from there on — numbered, positioned and evaluated the same
/// — and, told every unit's outcome, finish with the same acknowledgements. Returns how
/// many marks were tried, so a test can insist there were some.
pub fn assert_restarts_match(format: &dyn Format, path: &Path, ctx: &OpenContext) -> usize {
    restarts_match(format, path, ctx, Restarts::default(), usize::MAX).len()
}

/// [`assert_restarts_match`], each restart reading the file `copy` makes for its mark
/// instead of `path`: the same file with what lies before the mark changed, say, to show
/// that a restart does not read it. Returns how many marks were tried.
pub fn assert_restarts_match_reading(
    format: &dyn Format,
    path: &Path,
    ctx: &OpenContext,
    copy: &dyn Fn(&Mark) -> std::path::PathBuf,
) -> usize {
    let from = Restarts {
        copy: Some(copy),
        ..Restarts::default()
    };
    restarts_match(format, path, ctx, from, usize::MAX).len()
}

/// [`assert_restarts_match`] with every reader keeping its restart state in `state` (see
/// `UnitReader::keep_state_in`), and `between` run after the uninterrupted read and before
/// the restarts (to damage the state, say). The marks tried are returned, for a test to
/// see what they counted on.
pub fn assert_restarts_match_keeping(
    format: &dyn Format,
    path: &Path,
    ctx: &OpenContext,
    state: &Path,
    between: &dyn Fn(),
) -> Vec<Mark> {
    assert_restarts_match_keeping_some(format, path, ctx, state, between, usize::MAX)
}

/// [`assert_restarts_match_keeping`] at up to `most` marks spread over the file (the last
/// among them), for files whose every restart would take too long.
pub fn assert_restarts_match_keeping_some(
    format: &dyn Format,
    path: &Path,
    ctx: &OpenContext,
    state: &Path,
    between: &dyn Fn(),
    most: usize,
) -> Vec<Mark> {
    let keep = Restarts {
        state: Some((state, between)),
        ..Restarts::default()
    };
    restarts_match(format, path, ctx, keep, most)
}

/// How [`restarts_match`] restarts: keeping the readers' restart state in a file (and
/// what to do between the read through and the restarts), and reading another file.
#[derive(Default)]
struct Restarts<'a> {
    state: Option<(&'a Path, &'a dyn Fn())>,
    copy: Option<&'a dyn Fn(&Mark) -> std::path::PathBuf>,
}

/// Restarts at up to `most` marks spread over the file from the first, and at the last
/// (each restart reads the rest of the file again); `usize::MAX` restarts at every mark.
fn restarts_match(
    format: &dyn Format,
    path: &Path,
    ctx: &OpenContext,
    how: Restarts,
    most: usize,
) -> Vec<Mark> {
    let state = how.state;
    let open = |path: &Path| {
        let mut r = format.open(path, ctx).expect("opens");
        if let Some((s, _)) = state {
            r.keep_state_in(s.to_path_buf());
        }
        r
    };
    let full = read_all_with(format, path, ctx);
    assert!(full.error.is_none(), "{:?}", full.error);
    let outcomes = outcomes_of(&full.units);
    let acks = ack_texts(&full.acks);
    let shown = |u: &mut crate::unit::Unit| {
        let eval = u.evaluate();
        format!("{} {} {:?} {:?}", u.seq, u.label, u.shown_lines(), eval)
    };
    let mut reader = open(path);
    let (mut whole, mut marks) = (Vec::new(), Vec::new());
    while let Some(mut u) = reader.next_unit().expect("reads") {
        whole.push((u.seq, shown(&mut u)));
        marks.extend(reader.mark());
    }
    if let Some((_, between)) = state {
        between();
    }
    let step = marks.len().div_ceil(most.max(1)).max(1);
    let tried = marks
        .iter()
        .enumerate()
        .filter(|(i, _)| i % step == 0 || *i + 1 == marks.len());
    for (_, mark) in tried {
        let copy = how.copy.map(|copy| copy(mark));
        let mut again = open(copy.as_deref().unwrap_or(path));
        assert!(
            again.seek(mark).expect("seeks"),
            "cannot restart at {mark:?}"
        );
        let from = whole.iter().position(|(s, _)| *s == mark.seq);
        let expected: Vec<&String> = from.map_or(Vec::new(), |i| {
            whole[i..].iter().map(|(_, text)| text).collect()
        });
        let mut got = Vec::new();
        while let Some(mut u) = again.next_unit().expect("reads") {
            got.push(shown(&mut u));
        }
        assert_eq!(
            got.iter().collect::<Vec<_>>(),
            expected,
            "restarted at {mark:?}"
        );
        let finished = again
            .finish(&outcomes, &mut MemAcks::default(), None)
            .expect("finishes");
        assert_eq!(ack_texts(&finished), acks, "restarted at {mark:?}");
    }
    marks
}
