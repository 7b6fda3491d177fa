//! The pipeline, one module per stage: `claim` (resume, orphans, inbox candidates) →
//! `read` (format reader, stall guard, change check) → `commit` (validate + map in
//! parallel, stage, ledger transaction per batch) → [`decide`] (pure policy) → `publish`
//! (outbox, acks, report, archive).
//!
//! This module only orchestrates: a pass claims work one file at a time and drives each
//! claimed file from wherever its ledger state says to the end. The crash-safety argument
//! is short: every batch's staged outbox chunks are durable before the ledger transaction
//! that records them commits, so the ledger never points at output that does not exist, and
//! anything staged after the last commit is simply staged again (same name, same bytes).
//! Nothing becomes visible before the file's decision is committed, and every step after
//! the decision is idempotent and replayed from the ledger after a crash. One bad file never
//! aborts the run: its problems end up in its own ledger rows and report, and a file whose
//! state is lost is marked failed while the others go on.

mod claim;
mod commit;
pub mod decide;
mod deliver;
mod identity;
mod input_hash;
mod pipeline;
mod publish;
mod read;
mod syncer;
pub mod workdir;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::config::Config;
use crate::format::{registry, Diagnostics, FormatSet};
use crate::intake::Claim;
use crate::ledger::{Counts, FileRow, FileState, Leased, Ledger, LedgerError};
use crate::sink::{Outbox, Sink};

pub use read::ReadEnd;

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
    #[error("the working folders are not usable:\n  {}", .0.join("\n  "))]
    Folders(Vec<String>),
    #[error("{0}")]
    Other(String),
    /// A batch could not be committed because a key it uses is held by a file not
    /// decided yet: the file stops after its last committed batch and is resumed later.
    #[error("{0}")]
    Waiting(String),
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
    /// A ledger outcome (`applied`, `applied_with_rejects`, `accepted_unmapped`,
    /// `rejected`, `duplicate`, `returned`, `failed`), or `held` (set aside for a person),
    /// `interrupted` (stopped by a signal, resumed by the next run), `waiting` (a key of
    /// it is held by a file not decided yet; resumed once it is), `duplicate_file` (the
    /// same content was processed before), `skipped` (claimed by another process),
    /// `error` (this file hit an I/O error; the run exits 2 and the next run resumes it).
    pub outcome: String,
    pub format: Option<String>,
    #[serde(flatten)]
    pub counts: Counts,
    pub error: Option<String>,
    /// What a person should do about it, when something must be done.
    pub action: Option<String>,
    pub final_path: Option<String>,
    pub report_path: Option<String>,
    /// The rejected documents in the file's own layout, to fix and send back.
    pub corrections_path: Option<String>,
    pub acks: Vec<String>,
}

impl FileReport {
    fn from_row(row: &FileRow, acks: Vec<String>) -> Self {
        let (outcome, error) = match row.state {
            FileState::Held => ("held".to_string(), row.hold_reason.clone()),
            FileState::Reading => ("interrupted".to_string(), None),
            _ => (
                row.outcome.clone().unwrap_or_else(|| "unfinished".into()),
                row.error_message.clone(),
            ),
        };
        FileReport {
            file_id: Some(row.id),
            name: row.name.clone(),
            fingerprint: row.fingerprint.clone(),
            action: decide::action(&outcome, row),
            outcome,
            format: row.format.clone(),
            counts: row.counts.clone(),
            error,
            final_path: row.final_path.clone(),
            report_path: row.report_path.clone(),
            corrections_path: row.corrections_path.clone(),
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
            action: None,
            final_path: None,
            report_path: None,
            corrections_path: None,
            acks: vec![],
        }
    }

    /// Whether a person should look at this file (drives exit code 1).
    pub fn needs_review(&self) -> bool {
        decide::needs_review(&self.outcome)
    }

    /// The report of a file that stopped to wait for another file's decision.
    fn waiting(mut self, why: String) -> Self {
        self.outcome = "waiting".into();
        self.error = Some(why);
        self.action = Some(
            "none: a later run goes on once that file is decided (if it is held, release or reject it)"
                .into(),
        );
        self
    }
}

/// What one pass did.
#[derive(Debug, Default)]
pub struct Pass {
    pub files: Vec<FileReport>,
    /// Standing conditions a person should know about (a `.done` marker without its file).
    pub notes: Vec<String>,
    /// Files this run could not finish because of an I/O error; the next run resumes them.
    pub errors: usize,
    /// A stop was requested (SIGTERM/SIGINT) and honoured between batches.
    pub interrupted: bool,
}

/// How many cuts of the ledger's database session one file or pass may take (each waits
/// for the database to answer again, see `Ledger::wait_for_database`).
const LEDGER_CUTS_PER_FILE: usize = 5;
const LEDGER_CUTS_PER_PASS: usize = 5;

/// A claimed file to drive to its end.
pub(crate) struct Job {
    pub row: FileRow,
    pub work: Option<PathBuf>,
    /// The kernel lock on its fingerprint; `None` when the file was taken over from a
    /// run that holds the lock but let its ledger lease run out (stopped, say).
    pub claim: Option<Claim>,
}

pub struct Engine {
    pub cfg: Config,
    pub formats: FormatSet,
    pub ledger: Ledger,
    outbox: Outbox,
    pool: std::sync::Arc<rayon::ThreadPool>,
    /// One thread reads, evaluates and commits (see `pipeline::plan`).
    inline: bool,
    stop: Arc<AtomicBool>,
    /// Lock files older runs left are swept once per process, not on every pass: the
    /// files this process finishes take theirs with them.
    locks_swept: bool,
    /// Syncs staged chunks while the next batches are committed.
    syncer: syncer::Syncer,
}

/// The configured ledger, opened and checked sound (see `Ledger::ensure_sound`).
fn open_sound(paths: &crate::config::Paths) -> Result<Ledger> {
    let ledger = Ledger::open_in(paths)?;
    ledger.ensure_sound()?;
    Ok(ledger)
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
        workdir::check(&cfg)?;
        workdir::prepare(&cfg)?;
        // The ledger's check at start, when its seal does not vouch for it, reads every
        // page of it (~100 M instructions for the ledger of a 30 MB interchange), loading
        // the format definitions takes about a third of that, and neither needs the
        // other: on two threads, a start waits for the longer one only. The ledger is
        // still checked before anything is written.
        let paths = cfg.paths.clone();
        let sound = std::thread::Builder::new()
            .name("tallyman-ledger-check".into())
            .spawn(move || open_sound(&paths))
            .map_err(|e| EngineError::Other(format!("starting the ledger check: {e}")))?;
        let formats = load_formats(&cfg.paths.formats);
        let ledger = sound
            .join()
            .map_err(|_| EngineError::Other("the ledger check stopped unexpectedly".into()))?;
        Engine::assemble(cfg, formats?, ledger?)
    }

    pub fn with_formats(cfg: Config, formats: FormatSet) -> Result<Engine> {
        workdir::check(&cfg)?;
        workdir::prepare(&cfg)?;
        let ledger = open_sound(&cfg.paths)?;
        Engine::assemble(cfg, formats, ledger)
    }

    fn assemble(cfg: Config, formats: FormatSet, mut ledger: Ledger) -> Result<Engine> {
        ledger.set_lease_seconds(cfg.processing.lease_seconds)?;
        ledger.set_routes(
            cfg.remote_targets()
                .map(|t| {
                    let entities = t.entities.iter().map(|e| e.as_str().to_string()).collect();
                    (t.name.clone(), entities)
                })
                .collect(),
        );
        let outbox = Outbox {
            dir: cfg.paths.outbox.clone(),
            staging: cfg.paths.staging(),
            entities: cfg.outbox_entities(),
        };
        let plan = pipeline::plan(cfg.processing.cores());
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(plan.workers)
            .thread_name(|i| format!("tallyman-map-{i}"))
            .start_handler(|_| pipeline::yield_to_serial_stages())
            .build()
            .map_err(|e| EngineError::Other(format!("thread pool: {e}")))?;
        Ok(Engine {
            cfg,
            formats,
            ledger,
            outbox,
            pool: std::sync::Arc::new(pool),
            inline: plan.inline,
            stop: Arc::new(AtomicBool::new(false)),
            locks_swept: false,
            syncer: syncer::Syncer::start()
                .map_err(|e| EngineError::Other(format!("starting the sync thread: {e}")))?,
        })
    }

    /// The flag that asks the engine to stop after the batch in progress commits (set it
    /// from a signal handler).
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// One pass for cron/systemd: finish interrupted files, then take every complete file in
    /// the inbox. If the ledger's database cuts the session (a PostgreSQL restart), the
    /// pass waits for it to answer and goes on: what was committed stands, the rest is
    /// taken up again as after a crash.
    pub fn run_pass(&mut self, run: i64) -> Result<Pass> {
        let mut pass = Pass::default();
        let mut cuts = 0;
        loop {
            match self.pass_once(run, &mut pass) {
                Err(EngineError::Ledger(e))
                    if e.is_connection_lost() && cuts < LEDGER_CUTS_PER_PASS =>
                {
                    cuts += 1;
                    tracing::warn!(
                        "the ledger's database cut the session ({e}); going on once it answers"
                    );
                    self.ledger.wait_for_database()?;
                }
                other => return other.map(|()| pass),
            }
        }
    }

    fn pass_once(&mut self, run: i64, pass: &mut Pass) -> Result<()> {
        if !self.locks_swept {
            let swept = self.sweep_locks()?;
            if swept > 0 {
                tracing::info!("removed {swept} lock file(s) of finished files");
            }
            self.locks_swept = true;
        }
        for row in self.ledger.unfinished_files()? {
            if self.stopping() {
                break;
            }
            let claimed = self.claim_unfinished(run, row.clone());
            self.drive(run, &row.name, claimed, pass)?;
        }
        for path in self.orphans()? {
            if self.stopping() {
                break;
            }
            let claimed = self.claim_orphan(run, &path);
            self.drive(run, &path.display().to_string(), claimed, pass)?;
        }
        let scan = self.scan_inbox(run)?;
        pass.notes = scan.notes;
        for c in scan.candidates {
            if self.stopping() {
                break;
            }
            let claimed = self.claim_candidate(run, &c);
            self.drive(run, &c.name, claimed, pass)?;
        }
        pass.interrupted = self.stopping();
        tracing::debug!(run, files = pass.files.len(), "pass done");
        Ok(())
    }

    /// Drives one claimed file and files its report. An I/O error of this file is its own
    /// (reported, the next run resumes it); a ledger error stops the pass.
    fn drive(
        &mut self,
        run: i64,
        name: &str,
        claimed: Result<Option<claim::Claimed>>,
        pass: &mut Pass,
    ) -> Result<()> {
        let result = claimed.and_then(|c| match c {
            None => Ok(None),
            Some(claim::Claimed::Report(r)) => Ok(Some(r)),
            Some(claim::Claimed::Work(job)) => self.process(run, job).map(Some),
        });
        match result {
            Ok(Some(r)) => pass.files.push(r),
            Ok(None) => {}
            Err(e @ EngineError::Ledger(_)) => return Err(e),
            Err(e) => {
                tracing::error!(file = %crate::display::name(name), "{e}");
                let _ = self
                    .ledger
                    .event(Some(run), "error", Some(name), None, &e.to_string());
                pass.errors += 1;
                let mut r = FileReport::simple(name, "", "error", Some(e.to_string()));
                r.action = Some("fix the cause above; the next run resumes this file".into());
                pass.files.push(r);
            }
        }
        Ok(())
    }

    /// Processes one claimed file, showing it as held by this run and renewing its lease
    /// while it does, and letting go of it after, whatever happened.
    fn process(&mut self, run: i64, mut job: Job) -> Result<FileReport> {
        let id = job.row.id;
        let claim = job.claim.take();
        self.ledger.run_seen(run, Some(id))?;
        let keeper = self.ledger.lease_keeper(&Leased::File(id))?;
        let work = job.work.clone();
        let mut report = self.process_file(run, job);
        for _ in 0..LEDGER_CUTS_PER_FILE {
            match report {
                Err(EngineError::Ledger(e)) if e.is_connection_lost() => {
                    report = self.resume_after_cut(run, id, work.clone(), e);
                }
                _ => break,
            }
        }
        let report = self.fenced_if_taken(id, report);
        drop(keeper);
        // A finished file's lock file goes too (a later copy of the content makes a new
        // one); by whichever run finished it, or the one it was taken from.
        if let Some(claim) = claim {
            if self
                .ledger
                .file(id)
                .is_ok_and(|r| r.state == FileState::Done)
            {
                claim.release();
            }
        }
        let released = self.ledger.release_lease(&Leased::File(id));
        let let_go = self.ledger.run_seen(run, None);
        let report = match report {
            Err(EngineError::Ledger(LedgerError::Fenced { by, .. })) => {
                self.taken_over(run, id, by)
            }
            other => other,
        }?;
        released?;
        let_go?;
        Ok(report)
    }

    /// Whatever else went wrong, a run whose file was taken over meanwhile (stopped in the
    /// middle of a batch, it wakes to find the staging folder gone) reports that.
    fn fenced_if_taken(&self, id: i64, report: Result<FileReport>) -> Result<FileReport> {
        match report {
            Err(e) if !matches!(e, EngineError::Ledger(LedgerError::Fenced { .. })) => {
                match self.ledger.confirm_lease(&Leased::File(id)) {
                    Err(fenced @ LedgerError::Fenced { .. }) => {
                        tracing::debug!(file = id, "after a take-over: {e}");
                        Err(EngineError::Ledger(fenced))
                    }
                    _ => Err(e),
                }
            }
            other => other,
        }
    }

    /// Goes on with a file after the ledger's database cut this run's session (a
    /// PostgreSQL restart, a network cut): the batch in flight was not committed, so once
    /// the database answers again the file resumes from its last committed batch, as
    /// after a crash. If another run took it over meanwhile, the next batch's fence check
    /// says so.
    fn resume_after_cut(
        &mut self,
        run: i64,
        id: i64,
        work: Option<PathBuf>,
        cut: LedgerError,
    ) -> Result<FileReport> {
        tracing::warn!(file = id, "the ledger's database cut the session ({cut}); resuming the file from its last committed batch once it answers");
        self.ledger.wait_for_database()?;
        self.ledger.confirm_lease(&Leased::File(id))?;
        let row = self.ledger.file(id)?;
        let job = Job {
            row,
            work,
            claim: None,
        };
        self.process_file(run, job)
    }

    /// The report of a file another run took over while this one was stopped: nothing
    /// after this run's last accepted write was recorded, and the other run finishes it.
    fn taken_over(&mut self, run: i64, id: i64, by: String) -> Result<FileReport> {
        let row = self.ledger.file(id)?;
        let msg = format!(
            "taken over by {by} after this run's lease ran out (was it stopped?); this run wrote nothing more of it"
        );
        self.note(Some(run), "warn", &row, &msg)?;
        if row.state == FileState::Done {
            // A batch this run staged after the other published is not the other's to
            // clean up.
            self.outbox
                .discard(&read::tag_of(&row), &[])
                .map_err(io_err("removing staged records"))?;
        }
        let mut r = FileReport::from_row(&row, vec![]);
        r.outcome = "taken_over".into();
        r.error = Some(msg);
        r.action = None;
        Ok(r)
    }

    /// Drives a claimed file from wherever its ledger state says to the end.
    fn process_file(&mut self, run: i64, job: Job) -> Result<FileReport> {
        let Job { mut row, work, .. } = job;
        // Whatever state it is taken in: a run refused a write later names the file's run
        // as the one that took it over, and a file taken over while publishing is the
        // taker's too.
        self.ledger.set_file_run(row.id, run)?;
        self.syncer.begin(row.id);
        self.confirm_staged(&row)?;
        if row.state == FileState::Reading {
            match self.read(&row, work.as_deref())? {
                ReadEnd::Decided => {}
                ReadEnd::Held | ReadEnd::Interrupted => {
                    return self.report(row.id);
                }
                ReadEnd::Waiting(why) => return Ok(self.report(row.id)?.waiting(why)),
            }
            row = self.ledger.file(row.id)?;
        }
        if row.state == FileState::Publishing {
            self.publish(&row, work.as_deref())?;
        }
        let report = self.report(row.id)?;
        tracing::info!(run, file = %crate::display::name(&report.name), outcome = %report.outcome, "file finished");
        Ok(report)
    }

    fn report(&self, id: i64) -> Result<FileReport> {
        let row = self.ledger.file(id)?;
        let acks = self
            .ledger
            .acks(row.id)?
            .into_iter()
            .map(|a| a.file_name)
            .collect();
        Ok(FileReport::from_row(&row, acks))
    }

    /// Tells what happened to a file, in the log and as a ledger event (the record a person
    /// reads later), with the name escaped.
    fn note(&self, run: Option<i64>, level: &str, row: &FileRow, msg: &str) -> Result<()> {
        let name = crate::display::name(&row.name);
        match level {
            "error" => tracing::error!(file = %name, "{msg}"),
            _ => tracing::warn!(file = %name, "{msg}"),
        }
        self.ledger
            .event(run, level, Some(&row.name), Some(&row.fingerprint), msg)?;
        Ok(())
    }

    /// Files set aside for a person, as reports (a run names them every time: they block
    /// data until someone acts).
    pub fn held(&self) -> Result<Vec<FileReport>> {
        let mut out = Vec::new();
        for row in self.ledger.held_files()? {
            out.push(self.report(row.id)?);
        }
        Ok(out)
    }
}
