//! Publishing a decided file: its staged chunks become visible in the outbox (or are
//! discarded), its acknowledgements and reject report are written, and its input moves to
//! `archive/`, `rejected/` or back to the inbox. Every step is idempotent and replayed from
//! the ledger after a crash. Staged output that vanished before it was published is not a
//! reason to stop every later run: the file is marked failed, with exactly which documents
//! were lost, and the others go on.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::decide::{self, Destination};
use super::read::tag_of;
use super::{io_err, Engine, Result};
use crate::format::Format;
use crate::fsutil;
use crate::ledger::{ChunkRow, FileRow, Leased, Ledger, Lost, Outcome};
use crate::report;
use crate::sink::{Origin, OutRecord, Sink, SourceRef};
use crate::unit::Position;

/// The fewest rejected lines whose reject report is written beside the corrections file
/// (see `write_reports`): below, both take a few milliseconds, less than opening a second
/// connection to a PostgreSQL ledger.
const REPORT_APART_FROM: i64 = 2_000;

impl Engine {
    /// Everything after the decision; idempotent, replayed after a crash.
    pub(super) fn publish(&mut self, row: &FileRow, work: Option<&Path>) -> Result<()> {
        // Nothing is published, or decided against, while one of its chunks is unsynced.
        self.syncer
            .drain(row.id)
            .map_err(io_err("syncing staged records"))?;
        let outcome = row.outcome().unwrap_or(Outcome::Rejected);
        let tag = tag_of(row);
        let chunks = self.ledger.chunks(row.id)?;
        if decide::publishes(outcome) {
            let (present, lost): (Vec<ChunkRow>, Vec<ChunkRow>) =
                chunks.into_iter().partition(|c| {
                    Path::new(&c.staged_path).exists() || Path::new(&c.outbox_path).exists()
                });
            let (rebuildable, mut lost): (Vec<ChunkRow>, Vec<ChunkRow>) =
                lost.into_iter().partition(|c| c.units.is_some());
            for c in rebuildable {
                if !self.rebuild_chunk(row, &c, work)? {
                    lost.push(c);
                }
            }
            if !lost.is_empty() && outcome != Outcome::Failed {
                self.fail_lost_output(row, &present, &lost)?;
                let row = self.ledger.file(row.id)?;
                return self.publish(&row, work);
            }
            self.outbox
                .publish(&tag, &present)
                .map_err(io_err("publishing outbox records"))?;
        } else {
            self.outbox
                .discard(&tag, &chunks)
                .map_err(io_err("discarding staged records"))?;
        }
        self.write_acks(row)?;
        let report_path = self.write_reports(row, outcome, work)?;
        let final_path = self.place_input(row, outcome, work)?;
        self.ledger
            .finish_file(row.id, &final_path, report_path.as_deref())?;
        Ok(())
    }

    /// Writes a staged chunk that vanished before it was published (someone cleaned the
    /// work folder) again: the same records in the same order, so the same bytes — their
    /// data from the ledger where it keeps it, else made again from the input, whose units
    /// map to the same records. `false` when neither has them (the input is gone too).
    fn rebuild_chunk(&self, row: &FileRow, c: &ChunkRow, work: Option<&Path>) -> Result<bool> {
        let units = c.units.unwrap_or((0, 0));
        let mut records = self.ledger.chunk_records(row.id, &c.entity, units)?;
        if records.iter().any(|r| r.data.is_none()) {
            let Some(made) = work.and_then(|w| self.remake(row, w, units).ok()) else {
                return Ok(false);
            };
            for r in records.iter_mut().filter(|r| r.data.is_none()) {
                r.data = made.get(&(r.unit_seq, r.ordinal)).cloned();
            }
            if records.iter().any(|r| r.data.is_none()) {
                return Ok(false);
            }
        }
        let tag = tag_of(row);
        let origin = Origin {
            tag: &tag,
            format: row.format.as_deref().unwrap_or_default(),
        };
        let head = crate::sink::LineHead::new(origin);
        let mut bytes = Vec::new();
        for r in records {
            let record = OutRecord {
                entity: c.entity.clone().into(),
                key: r.key,
                source: SourceRef::new(
                    r.unit_seq as u64,
                    &Position {
                        line: r.line as u64,
                        byte: r.byte as u64,
                        record: 0,
                        locator: r.locator,
                    },
                ),
                data: r.data.unwrap_or_default(),
            };
            crate::sink::append_line(&mut bytes, &head, &record)
                .map_err(io_err("rebuilding an outbox chunk"))?;
        }
        fsutil::write_atomic(Path::new(&c.outbox_path), &bytes)
            .map_err(io_err("rebuilding an outbox chunk"))?;
        let msg = format!(
            "staged chunk {} vanished before it was published; rebuilt as {}",
            c.staged_path, c.outbox_path
        );
        self.note(row.run_id, "warn", row, &msg)?;
        Ok(true)
    }

    /// The records units `first..end` of a file map to, by `(unit, place in the unit)`,
    /// read again from its input.
    fn remake(
        &self,
        row: &FileRow,
        work: &Path,
        (first, end): (i64, i64),
    ) -> std::result::Result<HashMap<(i64, i64), String>, crate::format::FileError> {
        let format = self.choose_format(row, work)?;
        let mut reader = format.open(work, &self.open_context(row))?;
        let mut out = HashMap::new();
        while let Some(mut unit) = reader.next_unit()? {
            let seq = unit.seq as i64;
            if seq >= end {
                break;
            }
            if seq >= first {
                for (i, r) in unit.evaluate().records.into_iter().enumerate() {
                    out.insert((seq, i as i64), r.json);
                }
            }
        }
        Ok(out)
    }

    /// Marks a decided file failed because some of its staged chunks were lost before they
    /// were published and cannot be rebuilt (written by a tallyman that kept no versions): the rest is published, the lost documents become rejects and their
    /// keys are given back, so sending the file again applies exactly what is missing.
    fn fail_lost_output(
        &mut self,
        row: &FileRow,
        present: &[ChunkRow],
        lost: &[ChunkRow],
    ) -> Result<()> {
        let ranges: Vec<(String, i64, i64)> = lost
            .iter()
            .map(|c| {
                let (a, b) = c.units.unwrap_or((0, i64::MAX));
                (c.entity.clone(), a, b)
            })
            .collect();
        let records: i64 = lost.iter().map(|c| c.records).sum();
        let msg = format!(
            "{} of {} staged outbox chunk(s) ({records} record(s)) vanished before they were published (was {} deleted?); \
             the other {} were published, and the lines of the lost documents are listed as rejects with this rule",
            lost.len(),
            lost.len() + present.len(),
            self.cfg.paths.staging().display(),
            present.len()
        );
        self.note(row.run_id, "error", row, &msg)?;
        self.ledger
            .fail(row.id, "staged-output-lost", &msg, &Lost::Chunks(ranges))?;
        Ok(())
    }

    fn write_acks(&self, row: &FileRow) -> Result<()> {
        for ack in self.ledger.acks(row.id)? {
            let path = self.cfg.paths.acks.join(fsutil::safe_name(&ack.file_name));
            if !path.exists() {
                fsutil::write_atomic_with(&path, |f| ack.content.write_to(f).map(drop))
                    .map_err(io_err("writing an acknowledgement"))?;
            }
        }
        Ok(())
    }

    /// The reject report and the corrections file, where wanted; the report's path. Both
    /// read every rejected line from the ledger: one after the other, a 100 MB orders file
    /// with 14,000 rejected lines took a quarter of its resume (0.11 of 0.43 s). When both
    /// are wanted for that many lines, the report is written on a thread with a connection
    /// of its own while the corrections file is written here.
    fn write_reports(
        &self,
        row: &FileRow,
        outcome: Outcome,
        work: Option<&Path>,
    ) -> Result<Option<String>> {
        let format = self.corrections_format(row, outcome);
        let format = format.as_deref();
        let Some(path) = self.report_path(row, outcome) else {
            self.write_corrections(row, format, work)?;
            return Ok(None);
        };
        let many = row.counts.lines_rejected >= REPORT_APART_FROM;
        let apart = match format {
            Some(_) if many => Ledger::open_at(self.ledger.location().clone()).ok(),
            _ => None,
        };
        // A second connection refused (a PostgreSQL server at its limit) costs only time.
        let Some(apart) = apart else {
            write_report(&self.ledger, row, &path)?;
            self.write_corrections(row, format, work)?;
            return Ok(Some(path.display().to_string()));
        };
        let at = &path;
        std::thread::scope(|s| {
            let report = std::thread::Builder::new()
                .name("tallyman-report".into())
                .spawn_scoped(s, move || write_report(&apart, row, at))
                .map_err(io_err("starting the reject report's thread"))?;
            let corrections = self.write_corrections(row, format, work);
            let report = report
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            corrections.and(report)
        })?;
        Ok(Some(path.display().to_string()))
    }

    /// Where a decided file's reject report goes, if it gets one.
    fn report_path(&self, row: &FileRow, outcome: Outcome) -> Option<PathBuf> {
        let wanted = outcome != Outcome::Returned
            && (row.counts.lines_rejected > 0 || row.error_message.is_some());
        wanted.then(|| {
            let name = format!("{}.rejects.csv", tag_of(row).stem());
            self.cfg.paths.reports.join(name)
        })
    }

    /// The format of a decided file that may get a corrections file (see below).
    fn corrections_format(&self, row: &FileRow, outcome: Outcome) -> Option<Arc<dyn Format>> {
        if outcome == Outcome::Returned || row.corrections_path.is_some() {
            return None;
        }
        let format = row
            .format
            .as_deref()
            .and_then(|n| self.formats.by_name(n))?;
        format.tabular().is_some().then_some(format)
    }

    /// For a CSV or spreadsheet file with rejected documents, the corrections file a
    /// reviewer fixes and sends back. It must not keep the file from being archived: the
    /// reject report is the record, so a failure here is a warning. `format` is the file's
    /// if it may get one ([`Self::corrections_format`]).
    fn write_corrections(
        &self,
        row: &FileRow,
        format: Option<&dyn Format>,
        work: Option<&Path>,
    ) -> Result<()> {
        let Some(format) = format else {
            return Ok(());
        };
        let input = match work.filter(|w| w.exists()) {
            Some(w) => w.to_path_buf(),
            None => match &row.final_path {
                Some(f) => PathBuf::from(f),
                None => return Ok(()),
            },
        };
        let written = crate::review::corrections::write_corrections(
            &self.ledger,
            row,
            format,
            &input,
            &self.cfg.paths.reports,
            &self.cfg.limits,
        );
        match written {
            Ok(Some(path)) => self
                .ledger
                .set_corrections_path(row.id, &path.display().to_string())?,
            Ok(None) => {}
            Err(crate::review::corrections::CorrectionsError::Ledger(e)) => return Err(e.into()),
            Err(e) => self.note(
                row.run_id,
                "warn",
                row,
                &format!("no corrections file: {e}"),
            )?,
        }
        Ok(())
    }

    /// Moves the input where its outcome sends it. The destination is recorded before the
    /// move, so a crash after the move still knows where the file is.
    fn place_input(&self, row: &FileRow, outcome: Outcome, work: Option<&Path>) -> Result<String> {
        let Some(w) = work.filter(|w| w.exists()) else {
            if let Some(f) = &row.final_path {
                return Ok(f.clone());
            }
            // Gone because another run took the file over (this one was stopped) and placed
            // it: that is what to say, not a warning about a deleted work folder.
            self.ledger.confirm_lease(&Leased::File(row.id))?;
            let msg = "the input was gone from the processing folder before it could be archived (was the work folder deleted?); its records are unaffected";
            self.note(row.run_id, "warn", row, msg)?;
            return Ok(String::new());
        };
        // The name recorded before a crash first, then the plain name, then ones tagged with
        // the content (and the attempt): each recorded before the move, so a crash after it
        // still knows where the input went, and taken only if no other file has it.
        let fp: String = row.fingerprint.chars().take(12).collect();
        let (dir, tag) = match decide::destination(outcome) {
            Destination::Archive => (&self.cfg.paths.archive, fp),
            Destination::Rejected => (&self.cfg.paths.rejected, fp),
            Destination::Inbox => (&self.cfg.paths.inbox, format!("returned-{fp}")),
        };
        let name = row.os_name();
        let candidates = row.final_path.iter().map(PathBuf::from).chain([
            dir.join(&name),
            fsutil::tagged_name(dir, &name, &tag),
            fsutil::tagged_name(dir, &name, &format!("{tag}-f{}", row.id)),
        ]);
        for dest in candidates {
            let shown = dest.display().to_string();
            if row.final_path.as_deref() != Some(shown.as_str()) {
                if dest.exists() {
                    continue;
                }
                self.ledger.set_final_path(row.id, &shown)?;
            }
            if fsutil::move_new(w, &dest).map_err(io_err("placing the input"))? {
                return Ok(shown);
            }
        }
        Err(super::EngineError::Other(format!(
            "no free name for {} in {}",
            crate::display::name(&row.name),
            dir.display()
        )))
    }
}

/// Writes a file's reject report to `path`, its rows read through `ledger`.
fn write_report(ledger: &Ledger, row: &FileRow, path: &Path) -> Result<()> {
    fsutil::write_atomic_with(path, |f| report::write_csv(ledger, row, f))
        .map_err(io_err("writing a reject report"))
}
