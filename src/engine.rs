//! The pipeline: claim → read → validate + map (parallel) → stage → ledger commit →
//! decide → publish → archive.
//!
//! Orchestration lives here and nowhere else; the command line only calls
//! [`Engine::run_pass`] and [`Engine::process_path`]. The crash-safety argument is short:
//! every batch's staged outbox chunks are durable before the ledger transaction that
//! records them commits, so the ledger never points at output that does not exist, and
//! anything staged after the last commit is simply staged again (same name, same bytes).
//! Nothing becomes visible before the file's decision is committed, and every step after
//! the decision is idempotent and replayed from the ledger after a crash. One bad file never
//! aborts the run: its problems end up in its own ledger rows and report.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;

use crate::config::Config;
use crate::format::{
    registry, AckContext, Diagnostics, FileError, Format, FormatSet, OpenContext, Policy, Probe,
    UnitStatus,
};
use crate::fsutil;
use crate::intake::{self, Candidate, Claim};
use crate::ledger::{
    Counts, FileRow, FileState, Ledger, LedgerError, LedgerOutcomes, LineRow, Outcome, UnitRow,
};
use crate::report;
use crate::sink::{FileTag, OutRecord, Outbox, Sink, SourceRef};
use crate::unit::{cap_raw, LineVerdict, Position, Reason, Unit};

/// Failures of the run itself (as opposed to bad input, which is recorded, not raised).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("format definitions have errors:\n{0}")]
    Formats(String),
    #[error("{0}")]
    Other(String),
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> EngineError {
    let context = context.into();
    move |source| EngineError::Io { context, source }
}

pub type Result<T> = std::result::Result<T, EngineError>;

/// What happened to one file in this run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FileReport {
    pub file_id: Option<i64>,
    pub name: String,
    pub fingerprint: String,
    /// `applied`, `applied_with_rejects`, `rejected`, `duplicate`, or `duplicate_file`
    /// (the same content was processed before), `skipped` (claimed by another process).
    pub outcome: String,
    pub format: Option<String>,
    #[serde(flatten)]
    pub counts: Counts,
    pub error: Option<String>,
    pub final_path: Option<String>,
    pub report_path: Option<String>,
    pub acks: Vec<String>,
}

impl FileReport {
    fn from_row(row: &FileRow, acks: Vec<String>) -> Self {
        FileReport {
            file_id: Some(row.id),
            name: row.name.clone(),
            fingerprint: row.fingerprint.clone(),
            outcome: row.outcome.clone().unwrap_or_else(|| "unfinished".into()),
            format: row.format.clone(),
            counts: row.counts.clone(),
            error: row.error_message.clone(),
            final_path: row.final_path.clone(),
            report_path: row.report_path.clone(),
            acks,
        }
    }

    fn simple(name: &str, fingerprint: &str, outcome: &str, note: Option<String>) -> Self {
        FileReport {
            file_id: None,
            name: name.into(),
            fingerprint: fingerprint.into(),
            outcome: outcome.into(),
            format: None,
            counts: Counts::default(),
            error: note,
            final_path: None,
            report_path: None,
            acks: vec![],
        }
    }

    /// Whether a person should look at this file (drives exit code 1).
    pub fn needs_review(&self) -> bool {
        matches!(
            self.outcome.as_str(),
            "applied_with_rejects" | "rejected" | "duplicate_file"
        )
    }
}

pub struct Engine {
    pub cfg: Config,
    pub formats: FormatSet,
    pub ledger: Ledger,
    outbox: Outbox,
    pool: rayon::ThreadPool,
}

/// Control numbers backed by the ledger.
struct LedgerAcks<'a>(&'a Ledger);

impl AckContext for LedgerAcks<'_> {
    fn next_control_number(
        &mut self,
        partner: &str,
        kind: &str,
    ) -> std::result::Result<u64, FileError> {
        self.0
            .next_control_number(partner, kind)
            .map_err(|e| FileError::new("ledger", e.to_string()))
    }
}

/// Loads every format definition, failing with all errors listed.
pub fn load_formats(dir: &Path) -> Result<FormatSet> {
    let mut diags = Diagnostics::default();
    let set = registry::load_formats(dir, &mut diags);
    if !diags.is_empty() {
        let text: Vec<String> = diags.errors.iter().map(|e| format!("  {e}")).collect();
        return Err(EngineError::Formats(text.join("\n")));
    }
    Ok(set)
}

impl Engine {
    pub fn open(cfg: Config) -> Result<Engine> {
        let formats = load_formats(&cfg.paths.formats)?;
        Engine::with_formats(cfg, formats)
    }

    pub fn with_formats(cfg: Config, formats: FormatSet) -> Result<Engine> {
        for (name, dir) in cfg.paths.dirs() {
            std::fs::create_dir_all(dir)
                .map_err(io_err(format!("creating {name} folder {}", dir.display())))?;
        }
        for dir in [
            cfg.paths.processing(),
            cfg.paths.staging(),
            cfg.paths.locks(),
        ] {
            std::fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
        }
        let ledger = Ledger::open(&cfg.paths.ledger)?;
        let outbox = Outbox {
            dir: cfg.paths.outbox.clone(),
            staging: cfg.paths.staging(),
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(cfg.processing.threads)
            .thread_name(|i| format!("tallyman-map-{i}"))
            .build()
            .map_err(|e| EngineError::Other(format!("thread pool: {e}")))?;
        Ok(Engine {
            cfg,
            formats,
            ledger,
            outbox,
            pool,
        })
    }

    /// One pass for cron/systemd: finish interrupted files, then take every complete file in
    /// the inbox.
    pub fn run_pass(&mut self, run: i64) -> Result<Vec<FileReport>> {
        let mut reports = self.resume_unfinished(run)?;
        let candidates = intake::scan(
            &self.cfg.paths.inbox,
            &self.cfg.intake,
            std::time::SystemTime::now(),
        )
        .map_err(io_err(format!(
            "scanning inbox {}",
            self.cfg.paths.inbox.display()
        )))?;
        for c in candidates {
            if let Some(r) = self.take_candidate(run, &c)? {
                reports.push(r);
            }
        }
        Ok(reports)
    }

    /// Files the ledger knows as unfinished (a crash or kill), and orphans in the
    /// processing folder.
    fn resume_unfinished(&mut self, run: i64) -> Result<Vec<FileReport>> {
        let mut reports = Vec::new();
        for row in self.ledger.unfinished_files()? {
            let Some(claim) = intake::try_claim(&self.cfg.paths.locks(), &row.fingerprint)
                .map_err(io_err("taking a file lock"))?
            else {
                continue; // another live process is on it
            };
            // Re-read under the lock: the owner may have finished it since we listed it.
            let row = self.ledger.file(row.id)?;
            if row.state == FileState::Done {
                continue;
            }
            let Some(work) = row.work_path.clone().filter(|p| Path::new(p).exists()) else {
                if row.state == FileState::Reading {
                    // Claimed but not yet moved out of the inbox: the inbox scan picks it up.
                    continue;
                }
                // Publishing: the input was already archived; finish from the ledger.
                reports.push(self.process_claimed(run, row, None, &claim)?);
                continue;
            };
            tracing::info!(file = %row.name, "resuming interrupted file");
            self.ledger.set_file_run(row.id, run)?;
            let row = self.ledger.file(row.id)?;
            reports.push(self.process_claimed(run, row, Some(PathBuf::from(work)), &claim)?);
        }
        // Orphans: moved into processing but the ledger row was never written.
        let processing = self.cfg.paths.processing();
        let entries =
            std::fs::read_dir(&processing).map_err(io_err("reading the processing folder"))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.is_file() {
                continue;
            }
            // Work files are named after their fingerprint: a known prefix needs no hashing
            // (the file may be a large one another process is working on right now).
            if let Some(prefix) = fingerprint_prefix(&path) {
                if self.ledger.has_fingerprint_prefix(&prefix)? {
                    continue;
                }
            }
            let (fp, size) = intake::fingerprint(&path)
                .map_err(io_err(format!("reading {}", path.display())))?;
            if self.ledger.latest_file(&fp)?.is_some() {
                continue;
            }
            let Some(claim) = intake::try_claim(&self.cfg.paths.locks(), &fp)
                .map_err(io_err("taking a file lock"))?
            else {
                continue;
            };
            let name = original_name(&path);
            let row =
                self.ledger
                    .insert_file(&fp, &name, &path.display().to_string(), size, run)?;
            self.ledger
                .set_work_path(row.id, &path.display().to_string())?;
            let row = self.ledger.file(row.id)?;
            reports.push(self.process_claimed(run, row, Some(path), &claim)?);
        }
        Ok(reports)
    }

    fn take_candidate(&mut self, run: i64, c: &Candidate) -> Result<Option<FileReport>> {
        let (fp, size) = match intake::fingerprint(&c.path) {
            Ok(v) => v,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(format!("reading {}", c.path.display()))(e)),
        };
        if !intake::unchanged(c) {
            tracing::info!(file = %c.name, "file changed while being read; taking it on a later pass");
            return Ok(None);
        }
        let Some(claim) = intake::try_claim(&self.cfg.paths.locks(), &fp)
            .map_err(io_err("taking a file lock"))?
        else {
            return Ok(Some(FileReport::simple(
                &c.name,
                &fp,
                "skipped",
                Some("being processed by another tallyman".into()),
            )));
        };
        if !c.path.exists() {
            return Ok(None); // another process finished it between our scan and our claim
        }
        let existing = self.ledger.latest_file(&fp)?;
        let row = match existing {
            Some(row) if row.state == FileState::Done && !was_rejected(&row) => {
                return self
                    .duplicate_file(run, &c.path, &c.name, &fp, &row, c.marker.as_deref())
                    .map(Some);
            }
            Some(row) if row.state == FileState::Done => {
                // Rejected whole before: a fresh attempt.
                self.ledger
                    .insert_file(&fp, &c.name, &c.path.display().to_string(), size, run)?
            }
            Some(row)
                if row
                    .work_path
                    .as_ref()
                    .is_some_and(|p| Path::new(p).exists()) =>
            {
                // The same content is already mid-processing from another copy.
                return self
                    .duplicate_file(run, &c.path, &c.name, &fp, &row, c.marker.as_deref())
                    .map(Some);
            }
            Some(row) => {
                self.ledger.set_file_run(row.id, run)?;
                row
            }
            None => {
                self.ledger
                    .insert_file(&fp, &c.name, &c.path.display().to_string(), size, run)?
            }
        };
        let work = self.cfg.paths.processing().join(work_name(&fp, &c.name));
        fsutil::move_file(&c.path, &work).map_err(io_err(format!(
            "moving {} into processing",
            c.path.display()
        )))?;
        self.ledger
            .set_work_path(row.id, &work.display().to_string())?;
        if let Some(m) = &c.marker {
            let _ = std::fs::remove_file(m);
        }
        let row = self.ledger.file(row.id)?;
        self.process_claimed(run, row, Some(work), &claim).map(Some)
    }

    fn duplicate_file(
        &mut self,
        run: i64,
        path: &Path,
        name: &str,
        fp: &str,
        earlier: &FileRow,
        marker: Option<&Path>,
    ) -> Result<FileReport> {
        let tag: String = fp.chars().take(12).collect();
        let dest = fsutil::free_name(&self.cfg.paths.rejected, name, &format!("dup-{tag}"));
        fsutil::move_file(path, &dest)
            .map_err(io_err(format!("moving duplicate {}", path.display())))?;
        if let Some(m) = marker {
            let _ = std::fs::remove_file(m);
        }
        let msg = format!(
            "duplicate file: same content as '{}' (ledger file #{}, {}); not applied again, moved to {}",
            earlier.name,
            earlier.id,
            earlier.outcome.as_deref().unwrap_or("in progress"),
            dest.display()
        );
        tracing::warn!(file = %name, "{msg}");
        self.ledger
            .event(Some(run), "warn", Some(name), Some(fp), &msg)?;
        let mut r = FileReport::simple(name, fp, "duplicate_file", Some(msg));
        r.final_path = Some(dest.display().to_string());
        Ok(r)
    }

    /// Processes one file from anywhere on disk (manual reprocessing). The file itself is
    /// left where it is; a copy goes through processing and into the archive.
    pub fn process_path(&mut self, run: i64, path: &Path, force: bool) -> Result<FileReport> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| EngineError::Other(format!("{} is not a file", path.display())))?;
        let (fp, size) =
            intake::fingerprint(path).map_err(io_err(format!("reading {}", path.display())))?;
        let Some(claim) = intake::try_claim(&self.cfg.paths.locks(), &fp)
            .map_err(io_err("taking a file lock"))?
        else {
            return Ok(FileReport::simple(
                &name,
                &fp,
                "skipped",
                Some("being processed by another tallyman".into()),
            ));
        };
        let row = match self.ledger.latest_file(&fp)? {
            Some(row) if row.state == FileState::Done && !force && !was_rejected(&row) => {
                let msg = format!(
                    "duplicate file: this content was already processed as '{}' (ledger file #{}, {}); use --force to apply it again",
                    row.name,
                    row.id,
                    row.outcome.as_deref().unwrap_or("?")
                );
                self.ledger
                    .event(Some(run), "warn", Some(&name), Some(&fp), &msg)?;
                return Ok(FileReport::simple(&name, &fp, "duplicate_file", Some(msg)));
            }
            Some(row) if row.state != FileState::Done => {
                self.ledger.set_file_run(row.id, run)?;
                row
            }
            _ => self
                .ledger
                .insert_file(&fp, &name, &path.display().to_string(), size, run)?,
        };
        let work = match row.work_path.clone().filter(|p| Path::new(p).exists()) {
            Some(w) => PathBuf::from(w),
            None => {
                let work = self.cfg.paths.processing().join(work_name(&fp, &name));
                fsutil::copy_durable(path, &work).map_err(io_err(format!(
                    "copying {} into processing",
                    path.display()
                )))?;
                self.ledger
                    .set_work_path(row.id, &work.display().to_string())?;
                work
            }
        };
        let row = self.ledger.file(row.id)?;
        self.process_claimed(run, row, Some(work), &claim)
    }

    /// Drives a claimed file from wherever its ledger state says to the end.
    fn process_claimed(
        &mut self,
        run: i64,
        row: FileRow,
        work: Option<PathBuf>,
        _claim: &Claim,
    ) -> Result<FileReport> {
        let mut row = row;
        if row.state == FileState::Reading {
            let work = work
                .clone()
                .ok_or_else(|| EngineError::Other(format!("input of {} is missing", row.name)))?;
            self.read_and_decide(&row, &work)?;
            row = self.ledger.file(row.id)?;
        }
        if row.state == FileState::Publishing {
            self.publish(&row, work.as_deref())?;
            row = self.ledger.file(row.id)?;
        }
        let acks = self
            .ledger
            .acks(row.id)?
            .into_iter()
            .map(|a| a.file_name)
            .collect();
        let report = FileReport::from_row(&row, acks);
        tracing::info!(run, file = %row.name, outcome = %report.outcome, "file finished");
        Ok(report)
    }

    fn choose_format(
        &self,
        row: &FileRow,
        work: &Path,
    ) -> std::result::Result<Arc<dyn Format>, FileError> {
        if let Some(name) = &row.format {
            // Resuming: the format chosen at the start stays, or unit numbering would change.
            return self.formats.by_name(name).ok_or_else(|| {
                FileError::new(
                    "format-missing",
                    format!("format '{name}' chosen for this file is no longer defined"),
                )
            });
        }
        let mut head = Vec::with_capacity(65536);
        let f = std::fs::File::open(work).map_err(|e| FileError::io(&e))?;
        std::io::Read::read_to_end(&mut std::io::Read::take(f, 65536), &mut head)
            .map_err(|e| FileError::io(&e))?;
        let probe = Probe {
            name: &row.name,
            head: &head,
        };
        self.formats
            .detect(&probe)
            .map_err(|e| FileError::new("no-format", format!("{e}: {}", row.name)))
    }

    fn read_and_decide(&mut self, row: &FileRow, work: &Path) -> Result<()> {
        let stalled = self.ledger.note_start(row.id)?;
        if stalled >= self.cfg.processing.max_stalled_starts {
            let e = FileError::new(
                "stalled",
                format!(
                    "processing stopped {stalled} times in a row on this file without getting past document {} \
                     (the process died each time, e.g. a reader aborting on hostile input); set aside for review",
                    row.committed_seq
                ),
            );
            return self.decide(row, None, Some(e), Vec::new());
        }
        let size = std::fs::metadata(work).map(|m| m.len()).unwrap_or(0);
        let format = match self.choose_format(row, work) {
            Ok(f) => f,
            Err(e) => return self.decide(row, None, Some(e), Vec::new()),
        };
        let policy = format.policy();
        self.ledger
            .set_format(row.id, format.name(), &format!("{policy:?}"))?;
        if size > self.cfg.limits.max_file_bytes {
            let e = FileError::new(
                "file-too-large",
                format!(
                    "file is {size} bytes, over limits.max_file_bytes = {}",
                    self.cfg.limits.max_file_bytes
                ),
            );
            return self.decide(row, Some(policy), Some(e), Vec::new());
        }
        let ctx = OpenContext {
            fingerprint: row.fingerprint.clone(),
            name: row.name.clone(),
            limits: self.cfg.limits.clone(),
        };
        let mut reader = match format.open(work, &ctx) {
            Ok(r) => r,
            Err(e) => return self.decide(row, Some(policy), Some(e), Vec::new()),
        };
        let tag = FileTag {
            fingerprint: row.fingerprint.clone(),
            attempt: row.attempt,
            name: row.name.clone(),
        };
        let mut state = BatchState {
            file_id: row.id,
            force_fp: (row.attempt > 1).then(|| row.fingerprint.clone()),
            committed_seq: row.committed_seq as u64,
            ordinal: row.committed_lines as u64,
            chunk: row.next_chunk as u64,
            format_name: format.name().to_string(),
            tag,
        };
        let batch_lines = self.cfg.processing.batch_lines.max(1);
        let mut pending: Vec<Unit> = Vec::new();
        let mut pending_lines = 0u64;
        let mut file_error = None;
        loop {
            match reader.next_unit() {
                Ok(Some(unit)) => {
                    if unit.seq < state.committed_seq {
                        continue; // committed before a crash
                    }
                    pending_lines += unit.lines.len() as u64;
                    pending.push(unit);
                    // Cut where the line count crosses a multiple of batch_lines counted from
                    // the start of the file: a resumed file is cut at the same places.
                    if (state.ordinal + pending_lines) / batch_lines > state.ordinal / batch_lines {
                        self.commit_batch(&mut state, std::mem::take(&mut pending))?;
                        pending_lines = 0;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    file_error = Some(e);
                    break;
                }
            }
        }
        if !pending.is_empty() {
            self.commit_batch(&mut state, pending)?;
        }
        let acks = {
            let outcomes = LedgerOutcomes {
                ledger: &self.ledger,
                file_id: row.id,
            };
            let mut ack_ctx = LedgerAcks(&self.ledger);
            match reader.finish(&outcomes, &mut ack_ctx, file_error.as_ref()) {
                Ok(a) => a,
                Err(e) => {
                    tracing::error!(file = %row.name, "acknowledgements failed: {e}");
                    file_error.get_or_insert(e);
                    Vec::new()
                }
            }
        };
        drop(reader);
        self.decide(row, Some(policy), file_error, acks)
    }

    fn decide(
        &mut self,
        row: &FileRow,
        policy: Option<Policy>,
        error: Option<FileError>,
        acks: Vec<crate::format::Outbound>,
    ) -> Result<()> {
        let row = self.ledger.file(row.id)?;
        if let Some(e) = &error {
            self.ledger
                .set_file_error(row.id, &e.reason.rule, &e.to_string(), e.pos.as_ref())?;
        }
        let data_units =
            row.counts.units_applied + row.counts.units_rejected + row.counts.units_duplicate;
        let (outcome, why) = if let Some(e) = &error {
            (Outcome::Rejected, Some(e.to_string()))
        } else if row.counts.units_rejected > 0 {
            match policy.unwrap_or(Policy::AllOrNothing) {
                Policy::AllOrNothing => (
                    Outcome::Rejected,
                    Some(format!(
                        "policy all-or-nothing: {} of {} documents rejected",
                        row.counts.units_rejected, data_units
                    )),
                ),
                Policy::AcceptValid { max_reject_ratio } => {
                    let ratio = row.counts.units_rejected as f64 / data_units.max(1) as f64;
                    if row.counts.units_applied + row.counts.units_duplicate == 0 {
                        (
                            Outcome::Rejected,
                            Some(format!(
                                "every document ({}) was rejected",
                                row.counts.units_rejected
                            )),
                        )
                    } else if ratio > max_reject_ratio {
                        (
                            Outcome::Rejected,
                            Some(format!(
                                "{} of {} documents rejected ({:.1}%), over the policy's max_reject_ratio {:.1}%",
                                row.counts.units_rejected,
                                data_units,
                                ratio * 100.0,
                                max_reject_ratio * 100.0
                            )),
                        )
                    } else {
                        (Outcome::AppliedWithRejects, None)
                    }
                }
            }
        } else if row.counts.units_applied == 0 && row.counts.units_duplicate > 0 {
            (Outcome::Duplicate, None)
        } else {
            (Outcome::Applied, None)
        };
        self.ledger.decide(row.id, outcome, why.as_deref(), &acks)?;
        Ok(())
    }

    /// Evaluates a batch in parallel, then dedupes, stages and commits it in file order.
    fn commit_batch(&mut self, st: &mut BatchState, mut units: Vec<Unit>) -> Result<()> {
        let evals: Vec<_> = self
            .pool
            .install(|| units.par_iter_mut().map(|u| u.evaluate()).collect());
        let tx = self.ledger.batch()?;
        let mut line_rows = Vec::new();
        let mut unit_rows = Vec::new();
        let mut out_records = Vec::new();
        let mut lines_n = [0i64; 4]; // applied, rejected, duplicate, skipped
        let mut units_n = [0i64; 3]; // applied, rejected, duplicate
        let mut last_seq = st.committed_seq;
        for (unit, mut eval) in units.iter().zip(evals) {
            last_seq = unit.seq + 1;
            let first_ordinal = st.ordinal as i64;
            let first_pos = unit
                .lines
                .first()
                .map(|l| l.pos.clone())
                .unwrap_or_default();
            let mut verdicts = eval.verdicts.clone();
            verdicts.resize(unit.lines.len(), LineVerdict::Ok);
            let all_skipped = !eval.is_rejected()
                && eval.records.is_empty()
                && verdicts
                    .iter()
                    .all(|v| matches!(v, LineVerdict::Skipped(_)));
            let keys: Vec<String> = eval
                .records
                .iter()
                .map(|r| format!("{}:{}", r.entity, r.key))
                .collect();
            let unit_key = (!keys.is_empty()).then(|| {
                eval.records
                    .iter()
                    .map(|r| r.key.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            });

            // Reasons: line rejections with their positions, unit errors at the first line.
            let mut reasons: Vec<(Position, Reason)> = Vec::new();
            for (i, v) in verdicts.iter().enumerate() {
                if let LineVerdict::Rejected(r) = v {
                    reasons.push((located(&unit.lines[i].pos, r), r.clone()));
                }
            }
            for r in &eval.unit_errors {
                reasons.push((first_pos.clone(), r.clone()));
            }

            let status = if eval.is_rejected() {
                UnitStatus::Rejected
            } else if all_skipped {
                UnitStatus::Skipped
            } else if let Some(dup) = find_duplicate(&tx, st, unit.seq, &eval)? {
                reasons.push((first_pos.clone(), dup));
                UnitStatus::Duplicate
            } else {
                UnitStatus::Applied
            };

            // Per-line statuses. Unit errors are told on the unit's first good lines; the
            // other good lines of a rejected unit are marked as rejected with it.
            let headline = reasons.first().map(|(_, r)| r.clone());
            let mut unit_errors: std::collections::VecDeque<Reason> =
                eval.unit_errors.iter().cloned().collect();
            for (line, verdict) in unit.lines.iter().zip(verdicts.iter()) {
                let (status_str, reason, keep_raw) = match (status, verdict) {
                    (_, LineVerdict::Skipped(why)) => {
                        ("skipped", Some(Reason::new("skipped", why.clone())), false)
                    }
                    (UnitStatus::Rejected, LineVerdict::Rejected(r)) => {
                        ("rejected", Some(r.clone()), true)
                    }
                    (UnitStatus::Rejected, LineVerdict::Ok) => match unit_errors.pop_front() {
                        Some(ue) => ("rejected", Some(ue), true),
                        None => {
                            let head = headline
                                .as_ref()
                                .map(|h| h.message.clone())
                                .unwrap_or_default();
                            let why = format!("{} rejected as a whole: {head}", unit.label);
                            (
                                "rejected",
                                Some(Reason::new("rejected-with-document", why)),
                                true,
                            )
                        }
                    },
                    (UnitStatus::Duplicate, _) => ("duplicate", headline.clone(), false),
                    (UnitStatus::Skipped, _) => ("skipped", None, false),
                    (UnitStatus::Unmapped, _) => ("unmapped", None, false),
                    (UnitStatus::Applied, _) => ("applied", None, false),
                };
                match status_str {
                    "applied" => lines_n[0] += 1,
                    "rejected" => lines_n[1] += 1,
                    "duplicate" => lines_n[2] += 1,
                    _ => lines_n[3] += 1,
                }
                line_rows.push(LineRow {
                    ordinal: st.ordinal as i64,
                    unit_seq: unit.seq as i64,
                    pos: match &reason {
                        Some(r) => located(&line.pos, r),
                        None => line.pos.clone(),
                    },
                    status: status_str,
                    key: unit_key.clone(),
                    reason,
                    raw: keep_raw.then(|| cap_raw(&line.raw, 4096)),
                });
                st.ordinal += 1;
            }
            match status {
                UnitStatus::Applied => units_n[0] += 1,
                UnitStatus::Rejected => units_n[1] += 1,
                UnitStatus::Duplicate => units_n[2] += 1,
                UnitStatus::Skipped | UnitStatus::Unmapped => {}
            }
            if status == UnitStatus::Applied {
                let steal = st.force_fp.is_some();
                for claim in &eval.claims {
                    tx.take_key("claim", claim, st.file_id, unit.seq as i64, steal)?;
                }
                for r in std::mem::take(&mut eval.records) {
                    tx.take_key(
                        r.entity.as_str(),
                        &r.key,
                        st.file_id,
                        unit.seq as i64,
                        steal,
                    )?;
                    out_records.push(OutRecord::new(
                        r,
                        SourceRef {
                            file: st.tag.fingerprint.clone(),
                            name: st.tag.name.clone(),
                            format: st.format_name.clone(),
                            unit: unit.seq,
                            line: first_pos.line,
                            byte: first_pos.byte,
                            locator: first_pos.locator.clone(),
                        },
                    ));
                }
            }
            unit_rows.push(UnitRow {
                seq: unit.seq as i64,
                label: unit.label.clone(),
                status,
                key: unit_key,
                first_ordinal,
                line_count: unit.lines.len() as i64,
                reasons,
                detail: eval.detail,
                tolerated: eval.tolerated,
            });
        }
        // Stage before commit: the ledger must never name a chunk that is not on disk.
        let chunks = if out_records.is_empty() {
            Vec::new()
        } else {
            self.outbox
                .stage(&st.tag, st.chunk, &out_records)
                .map_err(io_err("staging outbox records"))?
        };
        tx.write_lines(st.file_id, &line_rows)?;
        tx.write_units(st.file_id, &unit_rows)?;
        tx.write_chunks(st.file_id, &chunks)?;
        st.chunk += 1;
        tx.advance(
            st.file_id,
            last_seq as i64,
            st.ordinal as i64,
            st.chunk as i64,
            lines_n,
            units_n,
        )?;
        tx.commit()?;
        st.committed_seq = last_seq;
        Ok(())
    }

    /// Everything after the decision; idempotent, replayed after a crash.
    fn publish(&mut self, row: &FileRow, work: Option<&Path>) -> Result<()> {
        let outcome = row
            .outcome
            .as_deref()
            .and_then(Outcome::parse)
            .unwrap_or(Outcome::Rejected);
        let chunks = self.ledger.chunks(row.id)?;
        let tag = FileTag {
            fingerprint: row.fingerprint.clone(),
            attempt: row.attempt,
            name: row.name.clone(),
        };
        if outcome == Outcome::Rejected {
            self.outbox
                .discard(&tag, &chunks)
                .map_err(io_err("discarding staged records"))?;
        } else {
            self.outbox
                .publish(&tag, &chunks)
                .map_err(io_err("publishing outbox records"))?;
        }
        for ack in self.ledger.acks(row.id)? {
            let path = self.cfg.paths.acks.join(fsutil::safe_name(&ack.file_name));
            if !path.exists() {
                fsutil::write_atomic(&path, &ack.content)
                    .map_err(io_err(format!("writing ack {}", path.display())))?;
            }
        }
        let report_path = if row.counts.lines_rejected > 0 || row.error_message.is_some() {
            let path = self
                .cfg
                .paths
                .reports
                .join(format!("{}.rejects.csv", tag.stem()));
            let rows = report::file_rejects(&self.ledger, row)?;
            let bytes = report::to_csv(&rows)
                .map_err(|e| EngineError::Other(format!("writing reject report: {e}")))?;
            fsutil::write_atomic(&path, &bytes)
                .map_err(io_err(format!("writing report {}", path.display())))?;
            Some(path.display().to_string())
        } else {
            None
        };
        // Where the input goes. Recorded before moving, so a crash after the move still
        // knows where the file is.
        let final_path = match (&row.final_path, work.filter(|w| w.exists())) {
            (Some(f), None) => f.clone(),
            (_, Some(w)) => {
                let dir = if outcome == Outcome::Rejected {
                    &self.cfg.paths.rejected
                } else {
                    &self.cfg.paths.archive
                };
                let tag: String = row.fingerprint.chars().take(12).collect();
                let dest = match &row.final_path {
                    Some(f) => PathBuf::from(f),
                    None => fsutil::free_name(dir, &row.name, &tag),
                };
                self.ledger
                    .conn()
                    .execute(
                        "UPDATE files SET final_path=?2 WHERE id=?1",
                        rusqlite::params![row.id, dest.display().to_string()],
                    )
                    .map_err(LedgerError::from)?;
                fsutil::move_file(w, &dest)
                    .map_err(io_err(format!("moving input to {}", dest.display())))?;
                dest.display().to_string()
            }
            (None, None) => String::new(),
        };
        self.ledger
            .finish_file(row.id, &final_path, report_path.as_deref())?;
        Ok(())
    }
}

/// A reason if the unit's claims or business keys are already held.
fn find_duplicate(
    tx: &crate::ledger::BatchTx<'_>,
    st: &BatchState,
    seq: u64,
    eval: &crate::unit::Evaluation,
) -> Result<Option<Reason>> {
    let forced_same = |fp: &str| st.force_fp.as_deref() == Some(fp);
    for claim in &eval.claims {
        if let Some(h) = tx.holder("claim", claim)? {
            if h.file_id != st.file_id && !forced_same(&h.fingerprint) {
                return Ok(Some(
                    Reason::new(
                        "duplicate",
                        format!(
                            "{claim} was already applied from '{}' (ledger file #{})",
                            h.name, h.file_id
                        ),
                    )
                    .value(claim.clone()),
                ));
            }
        }
    }
    for r in &eval.records {
        if let Some(h) = tx.holder(r.entity.as_str(), &r.key)? {
            if h.file_id == st.file_id && h.unit_seq as u64 != seq {
                return Ok(Some(
                    Reason::new(
                        "duplicate",
                        format!(
                            "{} {} appears twice in this file (first as unit {})",
                            r.entity, r.key, h.unit_seq
                        ),
                    )
                    .field("key")
                    .value(r.key.clone()),
                ));
            }
            if h.file_id != st.file_id && !forced_same(&h.fingerprint) {
                return Ok(Some(
                    Reason::new(
                        "duplicate",
                        format!(
                            "{} {} was already applied from '{}' (ledger file #{})",
                            r.entity, r.key, h.name, h.file_id
                        ),
                    )
                    .field("key")
                    .value(r.key.clone()),
                ));
            }
        }
    }
    Ok(None)
}

struct BatchState {
    file_id: i64,
    /// Set on a forced re-apply: keys held by earlier attempts of this content are taken over.
    force_fp: Option<String>,
    committed_seq: u64,
    ordinal: u64,
    chunk: u64,
    format_name: String,
    tag: FileTag,
}

/// The line's position, with the reason's finer locator (a spreadsheet cell) if it has one.
fn located(pos: &Position, reason: &Reason) -> Position {
    match &reason.locator {
        Some(l) => pos.clone().with_locator(l.clone()),
        None => pos.clone(),
    }
}

/// Content rejected whole was never applied: sending it again (after fixing a format
/// definition, say) is a new attempt, not a duplicate.
fn was_rejected(row: &FileRow) -> bool {
    row.outcome.as_deref() == Some(Outcome::Rejected.as_str())
}

/// `<fingerprint16>-<name>`: unique per content, still readable.
fn work_name(fp: &str, name: &str) -> String {
    let short: String = fp.chars().take(16).collect();
    format!("{short}-{}", fsutil::safe_name(name))
}

/// The fingerprint prefix a processing-folder name starts with, if it has one.
fn fingerprint_prefix(work: &Path) -> Option<String> {
    let n = work.file_name()?.to_string_lossy().into_owned();
    let (fp, _) = n.split_once('-')?;
    (fp.len() == 16 && fp.chars().all(|c| c.is_ascii_hexdigit())).then(|| fp.to_string())
}

/// Recovers the original name from a processing-folder name.
fn original_name(work: &Path) -> String {
    let n = work
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match (fingerprint_prefix(work), n.split_once('-')) {
        (Some(_), Some((_, rest))) => rest.to_string(),
        _ => n,
    }
}

#[cfg(test)]
mod tests {
    //! Engine behaviour with a tiny in-test format: each line `sku,qty` is one unit mapped
    //! to a product; a line `#...` is skipped; a bad qty rejects the line.
    use super::*;
    use crate::canonical::{Entity, Record};
    use crate::format::{Outbound, UnitOutcomes, UnitReader};
    use crate::unit::{Evaluation, SourceLine};
    use std::io::BufRead;

    struct Lines {
        policy: Policy,
    }

    struct LinesReader {
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
            let job = move || {
                if l == "CRASH" && CRASH.swap(false, std::sync::atomic::Ordering::SeqCst) {
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

    static CRASH: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

    #[test]
    fn resumes_after_a_crash_without_losing_or_doubling() {
        let body: String = (0..20)
            .map(|i| {
                if i == 13 {
                    "CRASH\n".to_string()
                } else {
                    format!("K{i},1\n")
                }
            })
            .collect();
        // Reference: no crash (CRASH is then just a rejected line).
        let reference = tempfile::tempdir().unwrap();
        {
            let mut e = engine(reference.path(), ACCEPT, 4);
            std::fs::write(reference.path().join("inbox/a.txt"), &body).unwrap();
            let run = e.ledger.begin_run("t").unwrap();
            e.run_pass(run).unwrap();
        }
        let d = tempfile::tempdir().unwrap();
        {
            let mut e = engine(d.path(), ACCEPT, 4);
            std::fs::write(d.path().join("inbox/a.txt"), &body).unwrap();
            let run = e.ledger.begin_run("t").unwrap();
            CRASH.store(true, std::sync::atomic::Ordering::SeqCst);
            let crashed =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| e.run_pass(run)));
            assert!(crashed.is_err(), "the simulated crash happened");
        }
        assert!(
            !d.path().join("outbox/product").exists(),
            "nothing published before the decision"
        );
        let mut e = engine(d.path(), ACCEPT, 4);
        let run = e.ledger.begin_run("t").unwrap();
        let r = e.run_pass(run).unwrap().remove(0);
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
        let reports = e.run_pass(run).unwrap();
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
        let reports = e.run_pass(run).unwrap();
        assert_eq!(reports[0].outcome, "duplicate_file");
        assert!(d.path().join("rejected/copy.txt").exists());
        assert_eq!(outbox_lines(d.path()).len(), 1);
    }

    #[test]
    fn a_key_applied_earlier_is_a_duplicate_line() {
        let d = tempfile::tempdir().unwrap();
        let mut e = engine(d.path(), ACCEPT, 100);
        std::fs::write(d.path().join("inbox/a.txt"), "A,1\n").unwrap();
        let run = e.ledger.begin_run("t").unwrap();
        e.run_pass(run).unwrap();
        std::fs::write(d.path().join("inbox/b.txt"), "A,2\nB,1\nB,3\n").unwrap();
        let r = e.run_pass(run).unwrap().remove(0);
        assert_eq!(
            (r.counts.lines_applied, r.counts.lines_duplicate),
            (1, 2),
            "{r:?}"
        );
        assert_eq!(r.outcome, "applied");
        assert_eq!(outbox_lines(d.path()).len(), 2);
    }

    #[test]
    fn all_or_nothing_rejects_whole_file_and_publishes_nothing() {
        let d = tempfile::tempdir().unwrap();
        let mut e = engine(d.path(), Policy::AllOrNothing, 1);
        std::fs::write(d.path().join("inbox/a.txt"), "A,1\nB,x\n").unwrap();
        let run = e.ledger.begin_run("t").unwrap();
        let r = e.run_pass(run).unwrap().remove(0);
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
        assert_eq!(e.run_pass(run).unwrap()[0].outcome, "applied");
    }

    #[test]
    fn reject_ratio_over_policy_rejects_whole_file() {
        let d = tempfile::tempdir().unwrap();
        let mut e = engine(d.path(), ACCEPT, 100);
        std::fs::write(d.path().join("inbox/a.txt"), "A,1\nB,x\nC,y\n").unwrap();
        let run = e.ledger.begin_run("t").unwrap();
        let r = e.run_pass(run).unwrap().remove(0);
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
        let r = e.run_pass(run).unwrap().remove(0);
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
        let r = e.run_pass(run).unwrap().remove(0);
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
        assert_eq!(e.run_pass(run).unwrap()[0].outcome, "rejected");
        std::fs::write(d.path().join("inbox/again.txt"), "A,1\nB,x\n").unwrap();
        let r = e.run_pass(run).unwrap().remove(0);
        assert_eq!(
            r.outcome, "rejected",
            "processed again, not a duplicate: {r:?}"
        );
        let attempts: i64 = e
            .ledger
            .conn()
            .query_row("SELECT MAX(attempt) FROM files", [], |r| r.get(0))
            .unwrap();
        assert_eq!(attempts, 2);
    }

    #[test]
    fn regression_a_file_the_process_keeps_dying_on_is_set_aside_not_retried_forever() {
        // A reader that brings the process down on the same input every time would
        // otherwise be resumed first by every run and block the inbox for good.
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("inbox")).unwrap();
        std::fs::write(d.path().join("inbox/a.txt"), "A,1\nPOISON\n").unwrap();
        for _ in 0..3 {
            let mut e = engine(d.path(), ACCEPT, 100);
            let run = e.ledger.begin_run("t").unwrap();
            let died = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| e.run_pass(run)));
            assert!(died.is_err());
        }
        let mut e = engine(d.path(), ACCEPT, 100);
        let run = e.ledger.begin_run("t").unwrap();
        let r = e.run_pass(run).unwrap().remove(0);
        assert_eq!(r.outcome, "rejected", "{r:?}");
        assert!(r.error.as_deref().unwrap().contains("3 times"), "{r:?}");
        assert!(d.path().join("rejected/a.txt").exists());
        assert!(
            e.run_pass(run).unwrap().is_empty(),
            "the next run is not blocked"
        );
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
        let r = e.run_pass(run).unwrap().remove(0);
        assert_eq!((r.name.as_str(), r.outcome.as_str()), ("a.txt", "applied"));
        assert!(d.path().join("archive/a.txt").exists());
        assert!(e.run_pass(run).unwrap().is_empty(), "nothing left to do");
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
}
