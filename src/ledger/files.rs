//! A file's life in the ledger: claimed, read batch by batch, held, decided, published,
//! done — or abandoned, failed, restarted. Each step is one statement or one transaction,
//! so a crash between two steps leaves a state the next run knows how to continue from.

use super::db::{params, Connection, OptionalExtension};

use super::model::{file_row, ChunkRow, FileRow, FileState, Outcome, FILE_COLS};
use super::{now, Ledger, Result};
use crate::format::{AckBody, Outbound};
use crate::unit::Position;

mod ending;
pub(super) mod recount;

pub use ending::Lost;

/// A file about to be claimed.
#[derive(Debug, Clone)]
pub struct NewFile<'a> {
    pub fingerprint: &'a str,
    pub name: &'a str,
    /// The name's bytes when they are not UTF-8.
    pub raw_name: Option<&'a [u8]>,
    pub source_path: &'a str,
    pub size: u64,
    /// `process --force`: apply again even what earlier attempts applied.
    pub forced: bool,
}

/// A record of a staged chunk as the ledger knows it, to write the chunk again.
#[derive(Debug, Clone)]
pub struct ChunkRecord {
    pub unit_seq: i64,
    /// Its place among its unit's records.
    pub ordinal: i64,
    pub key: String,
    /// Its JSON, when the ledger keeps it (else its input makes it again).
    pub data: Option<String>,
    /// Its unit's first line.
    pub line: i64,
    pub byte: i64,
    pub locator: Option<String>,
}

/// A file that stopped to wait for another file's decision.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WaitingFile {
    pub id: i64,
    pub name: String,
    pub why: String,
}

impl Ledger {
    /// The latest attempt for a fingerprint.
    pub fn latest_file(&self, fingerprint: &str) -> Result<Option<FileRow>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {FILE_COLS} FROM files WHERE fingerprint=?1 ORDER BY attempt DESC LIMIT 1"),
                [fingerprint],
                file_row,
            )
            .optional()?
            .map(|f| self.resolved(f)))
    }

    /// A file row with its paths made absolute for this host (see `roots`).
    pub(super) fn resolved(&self, mut f: FileRow) -> FileRow {
        let r = &self.roots;
        f.source_path = r.resolve(&f.source_path);
        f.work_path = r.resolve_opt(f.work_path);
        f.final_path = r.resolve_opt(f.final_path);
        f.report_path = r.resolve_opt(f.report_path);
        f.corrections_path = r.resolve_opt(f.corrections_path);
        f
    }

    /// Whether any file's fingerprint starts with `prefix` (hex, from a work-file name).
    pub fn has_fingerprint_prefix(&self, prefix: &str) -> Result<bool> {
        Ok(self.conn.query_row(
            "SELECT EXISTS(SELECT 1 FROM files WHERE fingerprint >= ?1 AND fingerprint < ?1 || 'g')",
            [prefix],
            |r| r.get(0),
        )?)
    }

    pub fn file(&self, id: i64) -> Result<FileRow> {
        let f = self.conn.query_row(
            &format!("SELECT {FILE_COLS} FROM files WHERE id=?1"),
            [id],
            file_row,
        )?;
        Ok(self.resolved(f))
    }

    /// Where a resumed read of the file can start again, if a batch left a mark that
    /// still parses (an unreadable one is only a slower resume, never an error).
    pub fn resume_mark(&self, id: i64) -> Result<Option<crate::format::Mark>> {
        let text: Option<String> =
            self.conn
                .query_row("SELECT resume_mark FROM files WHERE id=?1", [id], |r| {
                    r.get(0)
                })?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    }

    /// Creates a new attempt for a fingerprint (first claim, `process --force`, or content
    /// sent again after nothing of it was applied).
    pub fn insert_file(&self, f: &NewFile, run: i64) -> Result<FileRow> {
        self.insert_attempt(f, run, None, false)
            .map(|row| row.expect("an unconditional insert"))
    }

    /// Registers a new attempt of the content `f.fingerprint` — unless, with `checked`,
    /// its latest attempt is no longer `seen` (the one the caller decided on): another
    /// worker registered the content meanwhile, and the answer is `None`. Two workers
    /// taking the same new file from a shared inbox register it once.
    pub fn insert_attempt(
        &self,
        f: &NewFile,
        run: i64,
        seen: Option<i64>,
        checked: bool,
    ) -> Result<Option<FileRow>> {
        let source = self.roots.store(f.source_path);
        let id = self.immediate(|c| {
            let latest: Option<i64> = c.query_row(
                "SELECT MAX(id) FROM files WHERE fingerprint=?1",
                [f.fingerprint],
                |r| r.get(0),
            )?;
            if checked && latest != seen {
                return Ok(None);
            }
            let attempt: i64 = c.query_row(
                "SELECT COALESCE(MAX(attempt), 0) + 1 FROM files WHERE fingerprint=?1",
                [f.fingerprint],
                |r| r.get(0),
            )?;
            c.execute(
                "INSERT INTO files(fingerprint, attempt, name, raw_name, source_path, size, forced, state, run_id, claimed_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'reading', ?8, ?9)",
                params![f.fingerprint, attempt, f.name, f.raw_name, source, f.size as i64, f.forced, run, now()],
            )?;
            Ok(Some(c.last_insert_rowid()?))
        })?;
        id.map(|id| self.file(id)).transpose()
    }

    /// Records that reading starts (again) and returns how many times in a row the process
    /// died at the same place in this file. A death counts only if the previous start had
    /// reached new material (`arm`): a run killed while starting up, or while re-reading
    /// the part committed before, is no evidence against the file.
    pub fn note_start(&self, id: i64) -> Result<u32> {
        self.conn.execute(
            "UPDATE files SET \
             stalled_starts = CASE WHEN inflight_seq IS NULL THEN stalled_starts \
                                   WHEN inflight_seq = last_start_seq THEN stalled_starts + 1 \
                                   ELSE 1 END, \
             last_start_seq = COALESCE(inflight_seq, last_start_seq), \
             inflight_seq = NULL WHERE id=?1",
            params![id],
        )?;
        Ok(self
            .conn
            .query_row("SELECT stalled_starts FROM files WHERE id=?1", [id], |r| {
                r.get::<_, i64>(0)
            })? as u32)
    }

    /// Notes that reading has reached new material at unit `seq`: if the process dies
    /// before the next commit, that is a death at this place.
    pub fn arm(&self, id: i64, seq: u64) -> Result<()> {
        self.fenced(id, |c| {
            c.execute(
                "UPDATE files SET inflight_seq=?2 WHERE id=?1",
                params![id, seq as i64],
            )
        })
    }

    /// Notes a clean stop (a signal honoured between batches): not a death.
    pub fn disarm(&self, id: i64) -> Result<()> {
        self.conn
            .execute("UPDATE files SET inflight_seq=NULL WHERE id=?1", [id])?;
        Ok(())
    }

    /// Records `run` as the run working on the file, under the file's lease: a run that
    /// wakes after another took the file over must not write itself back as its run.
    pub fn set_file_run(&self, id: i64, run: i64) -> Result<()> {
        self.fenced(id, |c| {
            c.execute("UPDATE files SET run_id=?2 WHERE id=?1", params![id, run])
        })
    }

    /// Records where the claimed input now lies and its modification time there, against
    /// which it is checked before the file's decision.
    pub fn set_work(&self, id: i64, path: &str, mtime_ns: i64) -> Result<()> {
        self.conn.execute(
            "UPDATE files SET work_path=?2, work_mtime_ns=?3 WHERE id=?1",
            params![id, self.roots.store(path), mtime_ns],
        )?;
        Ok(())
    }

    pub fn set_format(&self, id: i64, format: &str, policy: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE files SET format=?2, policy=?3 WHERE id=?1",
            params![id, format, policy],
        )?;
        Ok(())
    }

    /// Files not finished that a run should continue: resumed first by the next run.
    pub fn unfinished_files(&self) -> Result<Vec<FileRow>> {
        self.files_where("WHERE state IN ('reading', 'publishing') ORDER BY id", [])
    }

    /// Files set aside for a person.
    pub fn held_files(&self) -> Result<Vec<FileRow>> {
        self.files_where("WHERE state = 'held' ORDER BY id", [])
    }

    /// Records that file `id` stopped to wait for another file's decision, and why.
    pub fn set_waiting(&self, id: i64, why: &str) -> Result<()> {
        self.fenced(id, |c| {
            c.execute(
                "UPDATE files SET waiting_on=?2 WHERE id=?1",
                params![id, why],
            )
        })
    }

    /// Files that stopped to wait for another file's decision, with why: they go on by
    /// themselves once that file is decided.
    pub fn waiting_files(&self) -> Result<Vec<WaitingFile>> {
        let mut st = self.conn.prepare(
            "SELECT id, name, waiting_on FROM files \
             WHERE state = 'reading' AND waiting_on IS NOT NULL ORDER BY id",
        )?;
        let rows = st
            .query_map([], |r| {
                Ok(WaitingFile {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    why: r.get(2)?,
                })
            })?
            .collect::<super::db::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Records the file-level error that ended reading.
    pub fn set_file_error(
        &self,
        id: i64,
        rule: &str,
        message: &str,
        pos: Option<&Position>,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE files SET error_rule=?2, error_message=?3, error_position=?4 WHERE id=?1",
            params![id, rule, message, pos.map(|p| p.to_string())],
        )?;
        Ok(())
    }

    /// Sets a file aside for a person before its decision. `kind` is `stalled` (reading
    /// never finished) or `review` (a unit asked for it after reading finished).
    pub fn hold(&self, id: i64, kind: &str, reason: &str) -> Result<()> {
        self.fenced(id, |c| {
            c.execute(
                "UPDATE files SET state='held', hold_kind=?2, hold_reason=?3, inflight_seq=NULL WHERE id=?1",
                params![id, kind, reason],
            )
        })
    }

    /// Lets a held file go on: the next run continues it, and a unit's hold request does
    /// not stop it again (the stall guard starts counting afresh). With `reject`, a
    /// person's decision to reject it whole: a file whose reading finished is read once more
    /// so its acknowledgements tell the sender (no job runs again); one the process kept
    /// dying in is decided here, without reading it again.
    pub fn release(&mut self, id: i64, reject: Option<(&str, &str)>) -> Result<()> {
        let row = self.file(id)?;
        if row.state != FileState::Held {
            return Ok(());
        }
        if let (Some((rule, message)), Some("stalled")) = (reject, row.hold_kind.as_deref()) {
            self.set_file_error(id, rule, message, None)?;
            return self.decide(id, Outcome::Rejected, Some(message), &[]);
        }
        self.conn.execute(
            "UPDATE files SET state='reading', released=1, stalled_starts=0, last_start_seq=NULL, \
             inflight_seq=NULL, review_rule=?2, review_message=?3 WHERE id=?1 AND state='held'",
            params![id, reject.map(|r| r.0), reject.map(|r| r.1)],
        )?;
        Ok(())
    }

    /// The records of one outbox chunk, in the order they were staged: every version a
    /// file stored for `entity` in units `first..end`, with its unit's first line.
    pub fn chunk_records(
        &self,
        file_id: i64,
        entity: &str,
        units: (i64, i64),
    ) -> Result<Vec<ChunkRecord>> {
        let mut rows = Vec::new();
        super::made::each_batch(&self.conn, file_id, units.0, units.1, |made| {
            rows.extend(
                made.into_iter()
                    .filter(|m| m.entity == entity)
                    .map(|m| ChunkRecord {
                        unit_seq: m.unit_seq,
                        ordinal: m.ordinal,
                        key: m.key,
                        data: m.data,
                        line: 0,
                        byte: 0,
                        locator: None,
                    }),
            );
            Ok(())
        })?;
        rows.sort_by_key(|r| (r.unit_seq, r.ordinal));
        // Each record's position is its unit's first line, which may be packed (runs.rs).
        let mut reader = super::runs::UnitReader::new(&self.conn);
        for r in &mut rows {
            if let Some(u) = reader.get(file_id, r.unit_seq)? {
                (r.line, r.byte, r.locator) = (u.first.0, u.first.1, u.locator);
            }
        }
        Ok(rows)
    }

    /// Records where the input is about to be moved, before moving it, so a crash after
    /// the move still knows where the file is.
    pub fn set_final_path(&self, id: i64, path: &str) -> Result<()> {
        self.fenced(id, |c| {
            c.execute(
                "UPDATE files SET final_path=?2 WHERE id=?1",
                params![id, self.roots.store(path)],
            )
        })
    }

    pub fn finish_file(&self, id: i64, final_path: &str, report_path: Option<&str>) -> Result<()> {
        self.fenced(id, |c| {
            c.execute(
                "UPDATE files SET state='done', finished_at=?2, final_path=?3, report_path=?4, \
                 lease_run=NULL, lease_until=NULL WHERE id=?1",
                params![
                    id,
                    now(),
                    self.roots.store(final_path),
                    report_path.map(|p| self.roots.store(p))
                ],
            )
        })
    }

    /// Runs one write of file `id`'s progress in a transaction that first checks (and
    /// renews) this process's lease on it, if it holds one.
    fn fenced(
        &self,
        id: i64,
        write: impl FnOnce(&Connection) -> super::db::Result<usize>,
    ) -> Result<()> {
        self.immediate(|c| {
            super::leases::keep(c, &self.fences, &super::Leased::File(id))?;
            write(c)?;
            Ok(())
        })
    }

    pub fn chunks(&self, id: i64) -> Result<Vec<ChunkRow>> {
        let mut st = self.conn.prepare(
            "SELECT chunk, entity, staged_path, outbox_path, records, first_seq, end_seq, bytes, crc FROM chunks \
             WHERE file_id=?1 ORDER BY chunk, entity",
        )?;
        let rows = st
            .query_map([id], |r| {
                Ok(ChunkRow {
                    chunk: r.get(0)?,
                    entity: r.get(1)?,
                    staged_path: self.roots.resolve(&r.get::<_, String>(2)?),
                    outbox_path: self.roots.resolve(&r.get::<_, String>(3)?),
                    records: r.get(4)?,
                    units: match (r.get::<_, Option<i64>>(5)?, r.get::<_, Option<i64>>(6)?) {
                        (Some(a), Some(b)) => Some((a, b)),
                        _ => None,
                    },
                    check: match (r.get::<_, Option<i64>>(7)?, r.get::<_, Option<i64>>(8)?) {
                        (Some(bytes), Some(crc)) => Some(super::ChunkCheck {
                            bytes: bytes as u64,
                            crc: crc as u32,
                        }),
                        _ => None,
                    },
                })
            })?
            .collect::<super::db::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// A file's acknowledgements, their bodies still deflated (see [`AckBody`]).
    pub fn acks(&self, id: i64) -> Result<Vec<Outbound>> {
        let mut st = self.conn.prepare(
            "SELECT file_name, kind, partner, control_no, content, compressed FROM acks WHERE file_id=?1 ORDER BY id",
        )?;
        let rows = st
            .query_map([id], |r| {
                let content: Vec<u8> = r.get(4)?;
                // Rows written before acknowledgements were kept deflated hold the text.
                let content = match r.get::<_, bool>(5)? {
                    true => AckBody::from_zlib(content),
                    false => AckBody::from_text(&content),
                };
                Ok(Outbound {
                    file_name: r.get(0)?,
                    kind: r.get(1)?,
                    partner: r.get(2)?,
                    control_no: r.get::<_, Option<i64>>(3)?.map(|n| n as u64),
                    content,
                })
            })?
            .collect::<super::db::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Files selected by `tail`, the SQL after `SELECT ... FROM files`.
    pub(super) fn files_where(
        &self,
        tail: &str,
        params: impl super::db::Params,
    ) -> Result<Vec<FileRow>> {
        let mut st = self
            .conn
            .prepare(&format!("SELECT {FILE_COLS} FROM files {tail}"))?;
        let rows = st
            .query_map(params, file_row)?
            .collect::<super::db::Result<Vec<_>>>()?;
        Ok(rows.into_iter().map(|f| self.resolved(f)).collect())
    }
}
