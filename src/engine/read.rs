//! Reading a claimed file: the stall guard, choosing its format, streaming its units into
//! batches, and the checks that must pass before the file may be decided — its staged
//! output is all there, its input did not change while it was read, and no unit asked for
//! a person first. Then the reader acknowledges and the file is decided.

use std::path::Path;
use std::sync::mpsc::sync_channel;
use std::sync::Arc;

use super::commit::BatchState;
use super::input_hash::InputHash;
use super::pipeline::{self, Cut, Piece};
use super::{decide, io_err, Engine, EngineError, Result};
use crate::format::{
    AckContext, FileError, Format, OpenContext, Outbound, Policy, Probe, UnitReader,
};
use crate::intake;
use crate::ledger::{FileRow, LedgerOutcomes};
use crate::sink::FileTag;

/// How reading a file ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadEnd {
    /// The decision is committed (the file is ready to publish).
    Decided,
    /// Set aside for a person before its decision.
    Held,
    /// A stop was requested; the last batch is committed and the next run resumes.
    Interrupted,
    /// A key of the next batch is held by a file not decided yet (why): the last batch is
    /// committed and a later run resumes once that file is decided.
    Waiting(String),
}

/// How streaming a file's units ended: reading reached the end (with the file-level error
/// that ended it, if any), or it stopped before (see [`ReadEnd`]).
type Streamed = std::result::Result<ReadTail, ReadEnd>;

/// How reading a file to its end ended: the file-level error, if any, and the input's
/// fingerprint as the reading thread took it then (checked before the decision).
struct ReadTail {
    error: Option<FileError>,
    fingerprint: pipeline::Fingerprint,
}

/// How one attempt at reading ended, before the decision.
enum Pass {
    End(ReadEnd),
    /// The file's staged output vanished while its input is intact: read it again.
    Restart,
}

/// A reader ready for the first unit not committed, and how many lines it passed over.
type Opened<'f> = (Box<dyn UnitReader + 'f>, u64);

/// Control numbers backed by the ledger.
struct LedgerAcks<'a>(&'a crate::ledger::Ledger);

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

impl Engine {
    /// Reads a claimed file to its decision (or to a hold or a stop).
    pub(super) fn read(&mut self, row: &FileRow, work: Option<&Path>) -> Result<ReadEnd> {
        let Some(work) = work else {
            return Err(EngineError::Other(format!(
                "the input of {} is missing",
                crate::display::name(&row.name)
            )));
        };
        let mut restarted = false;
        loop {
            let row = self.ledger.file(row.id)?;
            match self.read_once(&row, work)? {
                Pass::End(end) => return Ok(end),
                Pass::Restart if !restarted => restarted = true,
                Pass::Restart => {
                    return Err(EngineError::Other(format!(
                        "staged output of {} keeps disappearing (is something cleaning {}?)",
                        crate::display::name(&row.name),
                        self.cfg.paths.staging().display()
                    )))
                }
            }
        }
    }

    fn read_once(&mut self, row: &FileRow, work: &Path) -> Result<Pass> {
        if let Some(reason) = self.stall_guard(row)? {
            self.ledger.hold(row.id, "stalled", &reason)?;
            tracing::warn!(file = %crate::display::name(&row.name), "held: {reason}");
            return Ok(Pass::End(ReadEnd::Held));
        }
        let format = match self.choose_format(row, work) {
            Ok(f) => f,
            Err(e) => return self.decide_now(row, None, Some(e), Vec::new()),
        };
        let policy = format.policy();
        self.ledger
            .set_format(row.id, format.name(), &format!("{policy:?}"))?;
        let size = std::fs::metadata(work).map(|m| m.len()).unwrap_or(0);
        if size > self.cfg.limits.max_file_bytes {
            let e = FileError::new(
                "file-too-large",
                format!(
                    "file is {size} bytes, over limits.max_file_bytes = {}",
                    self.cfg.limits.max_file_bytes
                ),
            );
            return self.decide_now(row, Some(policy), Some(e), Vec::new());
        }
        if row.committed_seq == 0 {
            // A fresh start: opening the reader is already new material.
            self.ledger.arm(row.id, 0)?;
        }
        let (mut reader, lines_passed) = match self.open_reader(row, &format, work)? {
            Ok(r) => r,
            Err(e) => return self.decide_now(row, Some(policy), Some(e), Vec::new()),
        };
        let read = self.read_units(row, &format, reader.as_mut(), lines_passed, work)?;
        let (mut file_error, fingerprint) = match read {
            Ok(tail) => (tail.error, tail.fingerprint),
            Err(stopped) => {
                self.ledger.disarm(row.id)?;
                return Ok(Pass::End(stopped));
            }
        };
        if let Some(pass) = self.before_decision(row, work, fingerprint)? {
            return Ok(pass);
        }
        let row = self.ledger.file(row.id)?;
        if let (Some(reason), false) = (&row.hold_reason, row.released) {
            self.ledger.hold(row.id, "review", reason)?;
            return Ok(Pass::End(ReadEnd::Held));
        }
        if let Some((rule, message)) = &row.review {
            file_error.get_or_insert_with(|| FileError::new(rule.clone(), message.clone()));
        }
        let acks = {
            let outcomes = LedgerOutcomes::new(&self.ledger, row.id);
            let mut ack_ctx = LedgerAcks(&self.ledger);
            let made = reader.finish(&outcomes, &mut ack_ctx, file_error.as_ref());
            // Outcomes missing for a ledger error would make a wrong acknowledgement.
            if let Some(e) = outcomes.failure() {
                return Err(e.into());
            }
            match made {
                Ok(a) => a,
                Err(e) => {
                    tracing::error!(file = %crate::display::name(&row.name), "acknowledgements failed: {e}");
                    file_error.get_or_insert(e);
                    Vec::new()
                }
            }
        };
        drop(reader);
        self.decide_now(&row, Some(policy), file_error, acks)
    }

    /// Opens the file's reader where its committed part ends, when the format can restart
    /// at the ledger's mark (with how many lines it passed over), else at the top.
    fn open_reader<'f>(
        &self,
        row: &FileRow,
        format: &'f Arc<dyn Format>,
        work: &Path,
    ) -> Result<std::result::Result<Opened<'f>, FileError>> {
        let state = self.staging_of(row).join(RESTART_STATE);
        let open = || {
            format.open(work, &self.open_context(row)).map(|mut r| {
                r.keep_state_in(state.clone());
                r
            })
        };
        let mut reader = match open() {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        let Some(mark) = self.resume_mark(row)? else {
            return Ok(Ok((reader, 0)));
        };
        if let Ok(true) = reader.seek(&mark) {
            tracing::info!(
                file = %crate::display::name(&row.name),
                "resuming at line {} (byte {}), after the committed part",
                mark.line,
                mark.byte
            );
            return Ok(Ok((reader, mark.line.saturating_sub(1))));
        }
        // Read from the start and skip what is committed, as a reader without marks does;
        // an error the seek met is the file's, found again on the way.
        Ok(open().map(|r| (r, 0)))
    }

    /// The file's staging folder, where what a restart needs is kept beside its output.
    fn staging_of(&self, row: &FileRow) -> std::path::PathBuf {
        self.cfg.paths.staging().join(tag_of(row).stem())
    }

    /// Where the input's hash is kept as it is taken (see [`InputHash`]).
    fn hash_state(&self, row: &FileRow) -> std::path::PathBuf {
        self.staging_of(row).join(HASH_STATE)
    }

    /// Where a resumed file's reader may start instead of at the top: the mark of a
    /// committed batch, never one past what is committed.
    fn resume_mark(&self, row: &FileRow) -> Result<Option<crate::format::Mark>> {
        if row.committed_seq == 0 {
            return Ok(None);
        }
        let mark = self.ledger.resume_mark(row.id)?;
        Ok(mark.filter(|m| m.seq <= row.committed_seq as u64))
    }

    /// Why the file must be held before reading it again, if the process died at the same
    /// place in it too many times in a row.
    fn stall_guard(&self, row: &FileRow) -> Result<Option<String>> {
        let deaths = self.ledger.note_start(row.id)?;
        let max = self.cfg.processing.max_stalled_starts;
        if max == 0 || deaths < max {
            return Ok(None);
        }
        Ok(Some(format!(
            "the process died {deaths} times in a row while reading this file at the same place (after document {}): \
             possibly input that crashes a parsing library. Nothing of it is applied until a person looks",
            row.committed_seq
        )))
    }

    /// Streams the units into batches, read and evaluated on their own thread (see
    /// `pipeline`) and committed here in file order. `Ok(Ok(error))` when reading ended
    /// (with the file-level error, if any), `Ok(Err(end))` when it stopped before the end
    /// (a stop was requested, or a batch must wait for another file's decision).
    fn read_units(
        &mut self,
        row: &FileRow,
        format: &Arc<dyn Format>,
        reader: &mut dyn UnitReader,
        lines_passed: u64,
        work: &Path,
    ) -> Result<Streamed> {
        let mut state = BatchState::new(row, format.as_ref());
        state.answering = reader.answering();
        let cut = Cut {
            committed_seq: state.committed_seq,
            ordinal: state.ordinal,
            lines_passed,
            batch_lines: self.cfg.processing.batch_lines.max(1),
            armed: row.committed_seq == 0,
        };
        let input = InputHash::open(work, Some(self.hash_state(row)), &row.fingerprint);
        let mut progress = crate::progress::Progress::start(&row.name, row.size as u64);
        if self.inline {
            let mut end = None;
            pipeline::run_inline(reader, cut, input, &mut |piece| {
                end = self.take_piece(row, &mut state, &mut progress, piece);
                end.is_none()
            });
            return end.unwrap_or_else(|| Err(stopped_early(row)));
        }
        let pool = Arc::clone(&self.pool);
        std::thread::scope(|s| {
            let (tx, rx) = sync_channel(1);
            let (ack_tx, ack_rx) = sync_channel(1);
            // Named, so `top -H` and profiles tell reading from committing.
            std::thread::Builder::new()
                .name("tallyman-read".into())
                .spawn_scoped(s, move || {
                    pipeline::produce(reader, &pool, cut, input, tx, ack_rx)
                })
                .map_err(|e| EngineError::Other(format!("cannot start the reading thread: {e}")))?;
            for piece in rx {
                let reached = matches!(piece, Piece::Reached(_));
                if let Some(end) = self.take_piece(row, &mut state, &mut progress, piece) {
                    return end;
                }
                if reached {
                    let _ = ack_tx.send(());
                }
            }
            // The reading thread died (a panic, which the scope passes on): never decide.
            Err(stopped_early(row))
        })
    }

    /// The committing side of reading: arms the stall guard, commits a batch, or ends.
    /// `None` to go on; otherwise how reading ended (see [`Self::read_units`]).
    fn take_piece(
        &mut self,
        row: &FileRow,
        state: &mut BatchState,
        progress: &mut crate::progress::Progress,
        piece: Piece,
    ) -> Option<Result<Streamed>> {
        let end = match piece {
            Piece::Reached(seq) => {
                return self.ledger.arm(row.id, seq).err().map(|e| Err(e.into()))
            }
            Piece::Batch {
                units,
                evals,
                byte,
                lines_read,
                mark,
            } => {
                progress.update(byte, lines_read);
                match self.commit_batch(state, units, evals, mark) {
                    Ok(()) => {}
                    Err(EngineError::Waiting(why)) => return Some(self.wait(row, progress, why)),
                    Err(e) => return Some(Err(e)),
                }
                if !self.stopping() {
                    return None;
                }
                progress.finish("interrupted");
                Err(ReadEnd::Interrupted)
            }
            Piece::End(error, fingerprint) => {
                progress.finish(if error.is_some() {
                    "file-error"
                } else {
                    "read"
                });
                Ok(ReadTail { error, fingerprint })
            }
        };
        Some(Ok(end))
    }

    /// A key of the batch is held by a file not decided yet. Nothing of the batch is
    /// written (its transaction rolled back): the next run resumes here.
    fn wait(
        &mut self,
        row: &FileRow,
        progress: &mut crate::progress::Progress,
        why: String,
    ) -> Result<Streamed> {
        tracing::warn!(file = %crate::display::name(&row.name), "{why}");
        self.note(row.run_id, "warn", row, &why)?;
        self.ledger.set_waiting(row.id, &why)?;
        progress.finish("waiting");
        Ok(Err(ReadEnd::Waiting(why)))
    }

    /// The checks before a decision. A file whose input changed while it was read is
    /// abandoned and returned to the inbox (decided `returned`); one whose staged output
    /// vanished while its input is intact is read again.
    fn before_decision(
        &mut self,
        row: &FileRow,
        work: &Path,
        fingerprint: pipeline::Fingerprint,
    ) -> Result<Option<Pass>> {
        if let Some(change) = self.input_changed(row, work, fingerprint)? {
            let why = format!(
                "the file changed while it was processed ({change}); the attempt was abandoned and the file returned to the inbox, to be taken again once it stops changing"
            );
            tracing::warn!(file = %crate::display::name(&row.name), "{why}");
            self.ledger
                .abandon(row.id, "changed-while-processing", &why)?;
            return Ok(Some(Pass::End(ReadEnd::Decided)));
        }
        let lost = self
            .ledger
            .chunks(row.id)?
            .into_iter()
            .filter(|c| !Path::new(&c.staged_path).exists())
            .count();
        if lost > 0 {
            let msg = format!(
                "{lost} staged outbox chunk(s) of this file vanished before its decision (was {} cleaned?); its input is intact, so it is read again from the start",
                self.cfg.paths.staging().display()
            );
            self.note(row.run_id, "warn", row, &msg)?;
            self.ledger.restart(row.id)?;
            return Ok(Some(Pass::Restart));
        }
        Ok(None)
    }

    /// Why the claimed input is no longer what was claimed, if it is not. Its size,
    /// modification time and writers are looked at now; its content by `fingerprint`,
    /// taken as reading went and finished at its end (see [`InputHash`]; a write since
    /// then changed the modification time).
    fn input_changed(
        &self,
        row: &FileRow,
        work: &Path,
        fingerprint: pipeline::Fingerprint,
    ) -> Result<Option<String>> {
        let meta =
            std::fs::metadata(work).map_err(io_err(format!("reading {}", work.display())))?;
        if meta.len() != row.size as u64 {
            return Ok(Some(format!("size {} → {} bytes", row.size, meta.len())));
        }
        let mtime =
            intake::mtime_ns(work).map_err(io_err(format!("reading {}", work.display())))?;
        if row.work_mtime_ns.is_some_and(|m| m != mtime) {
            return Ok(Some("modification time changed".into()));
        }
        if crate::fsutil::open_for_writing(work) == Some(true) {
            return Ok(Some("another process still has it open for writing".into()));
        }
        let fp = fingerprint.map_err(io_err(format!("reading {}", work.display())))?;
        Ok((fp != row.fingerprint).then(|| "content changed".to_string()))
    }

    /// What a format is told when it opens the file of `row`.
    pub(super) fn open_context(&self, row: &FileRow) -> OpenContext {
        OpenContext {
            fingerprint: row.fingerprint.clone(),
            name: row.name.clone(),
            limits: self.cfg.limits.clone(),
        }
    }

    /// The file's format: the one chosen when it was first read, else detected.
    pub(super) fn choose_format(
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
        if let Some(format) = self.original_format(row, &head) {
            return Ok(format);
        }
        let probe = Probe {
            name: &row.name,
            head: &head,
        };
        self.formats.detect(&probe).map_err(|e| {
            FileError::new(
                "no-format",
                format!("{}: {e}", crate::display::name(&row.name)),
            )
        })
    }

    /// A correction is read with its original's tabular format, whatever its name says —
    /// as long as the container fits (a CSV correction saved as .xlsx is a workbook).
    fn original_format(&self, row: &FileRow, head: &[u8]) -> Option<Arc<dyn Format>> {
        let original = self.ledger.file(row.correction_of?).ok()?;
        let format = self.formats.by_name(original.format.as_deref()?)?;
        let def = format.tabular()?;
        let workbook =
            head.starts_with(b"PK\x03\x04") || head.starts_with(&[0xD0, 0xCF, 0x11, 0xE0]);
        (workbook == (def.kind == "sheet")).then_some(format)
    }

    /// Takes the file's decision from its committed counts and the error that ended it.
    fn decide_now(
        &mut self,
        row: &FileRow,
        policy: Option<Policy>,
        error: Option<FileError>,
        acks: Vec<Outbound>,
    ) -> Result<Pass> {
        let row = self.ledger.file(row.id)?;
        if let Some(e) = &error {
            self.ledger
                .set_file_error(row.id, &e.reason.rule, &e.to_string(), e.pos.as_ref())?;
        }
        let message = error.as_ref().map(|e| e.to_string());
        let (outcome, why) = decide::file_outcome(&row.counts, policy, message.as_deref());
        self.ledger.decide(row.id, outcome, why.as_deref(), &acks)?;
        Ok(Pass::End(ReadEnd::Decided))
    }
}

/// Reading ended without its end being seen (the reading thread died, or its last piece
/// was never handed over): a file in that state is never decided.
fn stopped_early(row: &FileRow) -> EngineError {
    EngineError::Other(format!(
        "reading {} stopped before its end",
        crate::display::name(&row.name)
    ))
}

/// The file in a file's staging folder where its reader keeps what a restart needs beyond
/// the mark (see `UnitReader::keep_state_in`); it goes with the folder when the file's
/// output is published or discarded.
const RESTART_STATE: &str = "restart-state";

/// The file in a file's staging folder where the input's hash so far is kept (see
/// [`InputHash`]); it goes with the folder too.
const HASH_STATE: &str = "input-hash";

/// The chunk tag of a file (its stem names staged and published chunks).
pub(super) fn tag_of(row: &FileRow) -> FileTag {
    FileTag {
        fingerprint: row.fingerprint.clone(),
        attempt: row.attempt,
        name: row.name.clone(),
    }
}
