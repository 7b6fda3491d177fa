//! Claiming: turning what lies around (unfinished ledger rows, orphans in the processing
//! folder, complete files in the inbox, a file an operator names) into work — a locked,
//! ledger-registered file in `work/processing` — or into a report when there is nothing
//! to do (a duplicate file, a file another process holds). Claiming never processes: it
//! returns the work, and the pass drives it.

use std::path::{Path, PathBuf};

use super::{io_err, Engine, EngineError, FileReport, Job, Result};
use crate::fsutil;
use crate::intake::{self, Candidate};
use crate::ledger::{FileRow, FileState, Leased, Lost, NewFile, Taking};

// One lives at a time, for one file: its size does not matter.
#[allow(clippy::large_enum_variant)]
pub(super) enum Claimed {
    Work(Job),
    Report(FileReport),
}

/// Where the content to claim comes from.
enum Source<'a> {
    /// The inbox (or a file an operator named inside it): moved into processing.
    Inbox(&'a Candidate),
    /// Anywhere else (`tallyman process`): copied, the operator's file stays.
    Outside { path: &'a Path, name: String },
}

impl Source<'_> {
    fn path(&self) -> &Path {
        match self {
            Source::Inbox(c) => &c.path,
            Source::Outside { path, .. } => path,
        }
    }
    fn name(&self) -> &str {
        match self {
            Source::Inbox(c) => &c.name,
            Source::Outside { name, .. } => name,
        }
    }
    fn os_name(&self) -> std::ffi::OsString {
        self.path().file_name().unwrap_or_default().to_os_string()
    }
}

impl Engine {
    /// An unfinished file from the ledger, if no live run holds it: its kernel lock is
    /// free or its holder let the ledger lease run out, and the lease is ours.
    pub(super) fn claim_unfinished(&mut self, run: i64, row: FileRow) -> Result<Option<Claimed>> {
        let claim = self.try_claim(&row.fingerprint)?;
        if !self.take_lease(run, &row, claim.is_some())? {
            return Ok(None); // another live run is on it
        }
        let id = row.id;
        let claimed = self.claim_unfinished_leased(run, row, claim);
        if !matches!(claimed, Ok(Some(Claimed::Work(_)))) {
            self.ledger.release_lease(&Leased::File(id))?;
        }
        claimed
    }

    /// Takes the ledger lease on a file this run claims. Without the kernel lock
    /// (`locked`), taking it is a takeover from a process of this host that stopped
    /// renewing it; from a run elsewhere it may be either.
    fn take_lease(&mut self, run: i64, row: &FileRow, locked: bool) -> Result<bool> {
        match self.ledger.take_lease(&Leased::File(row.id), run)? {
            Taking::Taken {
                from: Some(from),
                from_running,
                ..
            } => {
                let why = match (from_running, locked) {
                    (false, _) => "which ended (its process died) before finishing it",
                    (true, true) => "whose lease on it ran out (the run is stopped or cut off)",
                    (true, false) => {
                        "whose lease on it ran out (its process holds the file lock: it is stopped)"
                    }
                };
                let msg = format!(
                    "taking the file over from run {from}, {why}; resuming after its last committed batch"
                );
                self.note(Some(run), "warn", row, &msg)?;
                Ok(true)
            }
            Taking::Taken { .. } => Ok(true),
            Taking::Refused(holder) => {
                tracing::debug!(file = %crate::display::name(&row.name), "held by {holder}");
                Ok(false)
            }
        }
    }

    fn claim_unfinished_leased(
        &mut self,
        run: i64,
        row: FileRow,
        claim: Option<intake::Claim>,
    ) -> Result<Option<Claimed>> {
        // Re-read under the lock: the owner may have finished it since we listed it.
        let mut row = self.ledger.file(row.id)?;
        if row.work_path.is_none() {
            // Killed between moving the input into processing and recording that: it lies
            // at the name the move gives it.
            let moved = self
                .cfg
                .paths
                .processing()
                .join(work_name(&row.fingerprint, &row.name));
            if moved.exists() {
                self.record_work(row.id, &moved)?;
                row = self.ledger.file(row.id)?;
            }
        }
        let work = row.work_path.as_ref().map(PathBuf::from);
        let work_exists = work.as_ref().is_some_and(|w| w.exists());
        if work.is_some() && !work_exists && !self.ledger.claimed_here(row.id)? {
            // Its input lies in the `work/` of a worker elsewhere: not lost, not ours.
            tracing::debug!(file = %crate::display::name(&row.name), "claimed into another worker's work folder");
            return Ok(None);
        }
        match row.state {
            FileState::Done | FileState::Held => return Ok(None),
            FileState::Publishing => {}
            FileState::Reading if work_exists => {
                tracing::info!(file = %crate::display::name(&row.name), "resuming interrupted file");
            }
            FileState::Reading if work.is_none() && Path::new(&row.source_path).exists() => {
                // Claimed but never moved out of the inbox: the inbox scan picks it up.
                return Ok(None);
            }
            FileState::Reading => {
                self.input_lost(run, &row)?;
                let row = self.ledger.file(row.id)?;
                return Ok(Some(Claimed::Work(Job {
                    row,
                    work: None,
                    claim,
                })));
            }
        }
        let work = work.filter(|_| work_exists);
        Ok(Some(Claimed::Work(Job { row, work, claim })))
    }

    /// A claimed file's input vanished before its decision (the work folder was deleted):
    /// nothing of it was applied, and nothing ever will be unless it is sent again.
    fn input_lost(&mut self, run: i64, row: &FileRow) -> Result<()> {
        let msg = format!(
            "the claimed input {} disappeared before the file was decided (was the work folder deleted?); nothing of it was applied",
            row.work_path.as_deref().unwrap_or(&row.source_path)
        );
        self.note(Some(run), "error", row, &msg)?;
        self.ledger
            .fail(row.id, "input-lost", &msg, &Lost::Everything)?;
        Ok(())
    }

    /// Files in the processing folder the ledger does not know: moved there by a process
    /// that died before writing their ledger row.
    pub(super) fn orphans(&self) -> Result<Vec<PathBuf>> {
        let processing = self.cfg.paths.processing();
        let entries =
            std::fs::read_dir(&processing).map_err(io_err("reading the processing folder"))?;
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if !path.is_file() || fsutil::is_temporary(&name.to_string_lossy()) {
                continue;
            }
            // Work files are named after their fingerprint: a known prefix needs no hashing
            // (the file may be a large one another process is working on right now).
            if let Some(prefix) = fingerprint_prefix(&path) {
                if self.ledger.has_fingerprint_prefix(&prefix)? {
                    continue;
                }
            }
            out.push(path);
        }
        Ok(out)
    }

    pub(super) fn claim_orphan(&mut self, run: i64, path: &Path) -> Result<Option<Claimed>> {
        let (fp, size) =
            intake::fingerprint(path).map_err(io_err(format!("reading {}", path.display())))?;
        if self.ledger.latest_file(&fp)?.is_some() {
            return Ok(None);
        }
        let Some(claim) = self.try_claim(&fp)? else {
            return Ok(None);
        };
        let name = original_name(path);
        let shown = path.display().to_string();
        let row = self.ledger.insert_file(
            &NewFile {
                fingerprint: &fp,
                name: &name,
                raw_name: None,
                source_path: &shown,
                size,
                forced: false,
            },
            run,
        )?;
        if !self.take_lease(run, &row, true)? {
            return Ok(None);
        }
        self.record_work(row.id, path)?;
        let row = self.ledger.file(row.id)?;
        Ok(Some(Claimed::Work(Job {
            row,
            work: Some(path.to_path_buf()),
            claim: Some(claim),
        })))
    }

    /// Lists the inbox, with notes on markers that wait for a file that never came.
    pub(super) fn scan_inbox(&self, run: i64) -> Result<Scan> {
        let inbox = &self.cfg.paths.inbox;
        let scan = intake::scan(inbox, &self.cfg.intake, std::time::SystemTime::now())
            .map_err(io_err(format!("scanning inbox {}", inbox.display())))?;
        let mut notes = Vec::new();
        let grace = std::time::Duration::from_secs(self.cfg.intake.settle_seconds.max(60));
        for (marker, age) in &scan.lonely_markers {
            if *age < grace {
                continue;
            }
            let msg = format!(
                "marker {marker} in the inbox has no file beside it (for {} min): the file was never sent, or was named differently; remove the marker once resolved",
                age.as_secs() / 60
            );
            let once = format!("lonely marker {marker}");
            if !self.ledger.has_event(&once)? {
                tracing::warn!("{msg}");
                self.ledger
                    .event(Some(run), "warn", Some(marker), None, &once)?;
            }
            notes.push(msg);
        }
        for name in &scan.still_open {
            tracing::info!(file = %crate::display::name(name), "settled but still open for writing by another process; taking it later");
        }
        Ok(Scan {
            candidates: scan.candidates,
            notes,
        })
    }

    /// A complete file in the inbox.
    pub(super) fn claim_candidate(&mut self, run: i64, c: &Candidate) -> Result<Option<Claimed>> {
        self.claim_content(run, Source::Inbox(c), false)
    }

    /// Processes one file from anywhere on disk (manual reprocessing). A file outside the
    /// inbox is left where it is and a copy goes through processing; a file inside the
    /// inbox is taken as intake would take it, so the next run does not see it again.
    pub fn process_path(&mut self, run: i64, path: &Path, force: bool) -> Result<FileReport> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| EngineError::Other(format!("{} is not a file", path.display())))?;
        let in_inbox = path
            .parent()
            .and_then(|p| p.canonicalize().ok())
            .is_some_and(|p| Some(p) == self.cfg.paths.inbox.canonicalize().ok());
        let claimed = if in_inbox {
            let c = intake::candidate_at(path)
                .map_err(io_err(format!("reading {}", path.display())))?;
            self.claim_content(run, Source::Inbox(&c), force)?
        } else {
            self.claim_content(
                run,
                Source::Outside {
                    path,
                    name: name.clone(),
                },
                force,
            )?
        };
        match claimed {
            Some(Claimed::Work(job)) => self.process(run, job),
            Some(Claimed::Report(r)) => Ok(r),
            None => Err(EngineError::Other(format!(
                "{} changed or disappeared while it was being claimed; try again",
                path.display()
            ))),
        }
    }

    fn claim_content(&mut self, run: i64, src: Source, force: bool) -> Result<Option<Claimed>> {
        let path = src.path();
        let Some((fp, size)) = read_fingerprint(&src)? else {
            return Ok(None);
        };
        let busy = || {
            let note = "being processed by another tallyman".to_string();
            let r = FileReport::simple(src.name(), &fp, "skipped", Some(note));
            Ok(Some(Claimed::Report(r)))
        };
        let Some(claim) = self.try_claim(&fp)? else {
            return busy();
        };
        if !path.exists() {
            return Ok(None); // another process finished it between our scan and our claim
        }
        let latest = self.ledger.latest_file(&fp)?;
        if let Some(row) = &latest {
            // A worker elsewhere is on it (its input lies in a `work/` this one may not see).
            if row.state != FileState::Done && self.ledger.held_elsewhere(row.id, run)? {
                return busy();
            }
        }
        let row = match latest {
            Some(row) if !force && blocks_new_attempt(&row) => {
                let report = self.duplicate_file(run, &src, &fp, &row).map(Some);
                claim.release();
                return report;
            }
            Some(row) if row.state == FileState::Reading && row.work_path.is_none() => row,
            seen => match self.insert_new_attempt(run, &src, &fp, size, force, seen)? {
                Some(row) => row,
                None => return busy(), // another worker registered it just now
            },
        };
        if !self.take_lease(run, &row, true)? {
            return busy();
        }
        // Under the lease, the row must still be the unclaimed attempt decided on: a worker
        // that claimed it before us may have finished it (and let go) meanwhile.
        let row = self.ledger.file(row.id)?;
        if row.state != FileState::Reading || row.work_path.is_some() {
            self.ledger.release_lease(&Leased::File(row.id))?;
            return Ok(None);
        }
        self.link_correction(&row)?;
        let work = self.cfg.paths.processing().join(work_name(&fp, src.name()));
        bring_into_processing(&src, &work)?;
        self.record_work(row.id, &work)?;
        let row = self.ledger.file(row.id)?;
        Ok(Some(Claimed::Work(Job {
            row,
            work: Some(work),
            claim: Some(claim),
        })))
    }

    /// A new ledger attempt for the content; `None` when another worker registered it first.
    fn insert_new_attempt(
        &mut self,
        run: i64,
        src: &Source,
        fp: &str,
        size: u64,
        force: bool,
        seen: Option<FileRow>,
    ) -> Result<Option<FileRow>> {
        let os_name = src.os_name();
        let raw = raw_name_bytes(&os_name);
        let shown = src.path().display().to_string();
        let new = NewFile {
            fingerprint: fp,
            name: src.name(),
            raw_name: raw.as_deref(),
            source_path: &shown,
            size,
            forced: force,
        };
        Ok(self
            .ledger
            .insert_attempt(&new, run, seen.map(|r| r.id), true)?)
    }

    /// A file named as the corrections file of an earlier one (`…-<fp12>.corrections.csv`,
    /// however a person renamed the copy) is linked to it: read with its format, and its
    /// applied documents resolve the original's rejects.
    fn link_correction(&self, row: &FileRow) -> Result<()> {
        let Some(n) = crate::review::corrections::parse_corrections_name(&row.name) else {
            return Ok(());
        };
        let original = self
            .ledger
            .find_files(&n.fingerprint12)?
            .into_iter()
            .find(|f| {
                f.fingerprint.starts_with(&n.fingerprint12)
                    && f.attempt == n.attempt
                    && f.id != row.id
                    && f.state == FileState::Done
            });
        if let Some(o) = original {
            self.ledger.set_correction_of(row.id, o.id)?;
            tracing::info!(file = %crate::display::name(&row.name), original = %crate::display::name(&o.name), "a correction of an earlier file");
        }
        Ok(())
    }

    /// Records the claimed input's place and mtime, and gives it the configured mode (an
    /// input keeps its sender's mode otherwise, often world-readable).
    fn record_work(&self, id: i64, work: &Path) -> Result<()> {
        fsutil::set_mode(work)
            .map_err(io_err(format!("setting the mode of {}", work.display())))?;
        let mtime =
            intake::mtime_ns(work).map_err(io_err(format!("reading {}", work.display())))?;
        self.ledger
            .set_work(id, &work.display().to_string(), mtime)?;
        Ok(())
    }

    fn duplicate_file(
        &mut self,
        run: i64,
        src: &Source,
        fp: &str,
        earlier: &FileRow,
    ) -> Result<Claimed> {
        let shown = crate::display::name(src.name()).into_owned();
        let state = match earlier.state {
            FileState::Held => "held for review".to_string(),
            FileState::Done => earlier.outcome.clone().unwrap_or_default(),
            _ => "in progress".to_string(),
        };
        let what = format!(
            "duplicate file: same content as '{}' (ledger file #{}, {state}); not applied again",
            crate::display::name(&earlier.name),
            earlier.id
        );
        let (msg, final_path) = match src {
            Source::Inbox(c) => {
                let tag: String = fp.chars().take(12).collect();
                let dest =
                    fsutil::free_name(&self.cfg.paths.rejected, &c.os_name, &format!("dup-{tag}"));
                fsutil::move_file(&c.path, &dest)
                    .map_err(io_err(format!("moving duplicate {}", c.path.display())))?;
                if let Some(m) = &c.marker {
                    let _ = std::fs::remove_file(m);
                }
                let msg = format!("{what}, moved to {}", dest.display());
                (msg, Some(dest.display().to_string()))
            }
            Source::Outside { .. } => (format!("{what}; use --force to apply it again"), None),
        };
        tracing::warn!(file = %shown, "{msg}");
        self.ledger
            .event(Some(run), "warn", Some(src.name()), Some(fp), &msg)?;
        let mut r = FileReport::simple(src.name(), fp, "duplicate_file", Some(msg));
        r.final_path = final_path;
        Ok(Claimed::Report(r))
    }

    /// Removes the lock files of content that is finished, left by runs before lock files
    /// went with their file (or by a run that stopped between finishing and letting go).
    /// Each goes only under its own lock, so no claim in progress is disturbed.
    pub(super) fn sweep_locks(&self) -> Result<usize> {
        let locks = self.cfg.paths.locks();
        let entries =
            std::fs::read_dir(&locks).map_err(io_err(format!("reading {}", locks.display())))?;
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(fp) = name.strip_suffix(".lock") else {
                continue;
            };
            if fp.len() != 64 || !fp.chars().all(|c| c.is_ascii_hexdigit()) {
                continue; // a relay's lock, or not ours
            }
            let done = self
                .ledger
                .latest_file(fp)?
                .is_some_and(|f| f.state == FileState::Done);
            if done {
                if let Some(claim) = self.try_claim(fp)? {
                    claim.release();
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    fn try_claim(&self, fp: &str) -> Result<Option<intake::Claim>> {
        intake::try_claim(&self.cfg.paths.locks(), fp).map_err(io_err(format!(
            "taking a file lock in {}",
            self.cfg.paths.locks().display()
        )))
    }
}

/// What a scan gives the pass.
pub(super) struct Scan {
    pub candidates: Vec<Candidate>,
    pub notes: Vec<String>,
}

/// Fingerprint and size, or `None` when the content vanished or changed while being read.
fn read_fingerprint(src: &Source) -> Result<Option<(String, u64)>> {
    let path = src.path();
    let (fp, size) = match intake::fingerprint(path) {
        Ok(v) => v,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(format!("reading {}", path.display()))(e)),
    };
    if let Source::Inbox(c) = src {
        if !intake::unchanged(c) {
            tracing::info!(file = %crate::display::name(&c.name), "file changed while being read; taking it on a later pass");
            return Ok(None);
        }
    }
    Ok(Some((fp, size)))
}

/// Inbox files are moved (marker dropped); an operator's file elsewhere is copied, not taken.
fn bring_into_processing(src: &Source, work: &Path) -> Result<()> {
    match src {
        Source::Inbox(c) => {
            fsutil::move_file(&c.path, work).map_err(io_err(format!(
                "moving {} into processing",
                c.path.display()
            )))?;
            if let Some(m) = &c.marker {
                let _ = std::fs::remove_file(m);
            }
        }
        Source::Outside { path, .. } => fsutil::copy_durable(path, work).map_err(io_err(
            format!("copying {} into processing", path.display()),
        ))?,
    }
    Ok(())
}

/// Whether an earlier attempt with the same content makes new content a duplicate file:
/// it applied something, is held, or is still being worked on from another copy.
fn blocks_new_attempt(row: &FileRow) -> bool {
    match row.state {
        FileState::Done => !row.outcome().is_some_and(|o| o.applied_nothing()),
        FileState::Held | FileState::Publishing => true,
        FileState::Reading => row
            .work_path
            .as_ref()
            .is_some_and(|p| Path::new(p).exists()),
    }
}

/// The name's bytes, when they are not UTF-8 (kept so the archive gets the original name).
fn raw_name_bytes(name: &std::ffi::OsStr) -> Option<Vec<u8>> {
    if name.to_str().is_some() {
        return None;
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        Some(name.as_bytes().to_vec())
    }
    #[cfg(not(unix))]
    None
}

/// `<fingerprint16>-<name>`: unique per content, still readable.
fn work_name(fp: &str, name: &str) -> String {
    let short: String = fp.chars().take(16).collect();
    format!("{short}-{}", fsutil::safe_name(name))
}

/// The fingerprint prefix a processing-folder name starts with, if it has one.
pub(super) fn fingerprint_prefix(work: &Path) -> Option<String> {
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
