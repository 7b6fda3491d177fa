//! The processing ledger: one SQLite database that knows every file, every unit and every
//! input line's outcome, and which business keys are already applied.
//!
//! It is also the commit point of the pipeline. A batch of units is written in one
//! transaction together with the names of the outbox chunks staged for it, so after a crash
//! the ledger says exactly which units are done; everything after the last commit is read
//! again. WAL with `synchronous=FULL` makes a commit durable before we move on; a busy
//! timeout lets an overlapping timer run and a manual `process` share the file. Migrations
//! are only ever appended, never edited: `PRAGMA user_version` says how many have run.

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use serde::Serialize;

use crate::format::{Outbound, UnitOutcomes, UnitStatus, UnitSummary};
use crate::unit::{Position, Reason};

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("ledger: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("ledger schema version {found} is newer than this tallyman knows ({known}); upgrade tallyman")]
    TooNew { found: i64, known: i64 },
    #[error("ledger: bad stored JSON: {0}")]
    Json(#[from] serde_json::Error),
}

pub type Result<T> = std::result::Result<T, LedgerError>;

/// Schema migrations, applied in order. Append only.
const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    r#"
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        command TEXT NOT NULL,
        pid INTEGER NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        status TEXT NOT NULL DEFAULT 'running',
        files_done INTEGER NOT NULL DEFAULT 0,
        files_review INTEGER NOT NULL DEFAULT 0,
        error TEXT
    );
    CREATE TABLE files (
        id INTEGER PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        attempt INTEGER NOT NULL DEFAULT 1,
        name TEXT NOT NULL,
        source_path TEXT NOT NULL,
        work_path TEXT,
        size INTEGER NOT NULL,
        format TEXT,
        policy TEXT,
        state TEXT NOT NULL,
        outcome TEXT,
        committed_seq INTEGER NOT NULL DEFAULT 0,
        committed_lines INTEGER NOT NULL DEFAULT 0,
        next_chunk INTEGER NOT NULL DEFAULT 0,
        lines_applied INTEGER NOT NULL DEFAULT 0,
        lines_rejected INTEGER NOT NULL DEFAULT 0,
        lines_duplicate INTEGER NOT NULL DEFAULT 0,
        lines_skipped INTEGER NOT NULL DEFAULT 0,
        units_applied INTEGER NOT NULL DEFAULT 0,
        units_rejected INTEGER NOT NULL DEFAULT 0,
        units_duplicate INTEGER NOT NULL DEFAULT 0,
        error_rule TEXT,
        error_message TEXT,
        error_position TEXT,
        run_id INTEGER,
        claimed_at TEXT NOT NULL,
        finished_at TEXT,
        final_path TEXT,
        report_path TEXT,
        UNIQUE (fingerprint, attempt)
    );
    CREATE INDEX files_run ON files(run_id);
    CREATE TABLE lines (
        file_id INTEGER NOT NULL,
        ordinal INTEGER NOT NULL,
        unit_seq INTEGER NOT NULL,
        line INTEGER NOT NULL,
        byte INTEGER NOT NULL,
        record INTEGER NOT NULL,
        locator TEXT,
        status TEXT NOT NULL,
        key TEXT,
        rule TEXT,
        field TEXT,
        value TEXT,
        message TEXT,
        raw TEXT,
        PRIMARY KEY (file_id, ordinal)
    ) WITHOUT ROWID;
    CREATE TABLE units (
        file_id INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        label TEXT NOT NULL,
        status TEXT NOT NULL,
        key TEXT,
        first_ordinal INTEGER NOT NULL,
        line_count INTEGER NOT NULL,
        reasons TEXT,
        detail TEXT,
        tolerated TEXT,
        PRIMARY KEY (file_id, seq)
    ) WITHOUT ROWID;
    CREATE TABLE keys (
        entity TEXT NOT NULL,
        key TEXT NOT NULL,
        file_id INTEGER NOT NULL,
        unit_seq INTEGER NOT NULL,
        PRIMARY KEY (entity, key)
    ) WITHOUT ROWID;
    CREATE INDEX keys_file ON keys(file_id);
    CREATE TABLE chunks (
        file_id INTEGER NOT NULL,
        chunk INTEGER NOT NULL,
        entity TEXT NOT NULL,
        staged_path TEXT NOT NULL,
        outbox_path TEXT NOT NULL,
        records INTEGER NOT NULL,
        PRIMARY KEY (file_id, chunk, entity)
    ) WITHOUT ROWID;
    CREATE TABLE control_numbers (
        partner TEXT NOT NULL,
        kind TEXT NOT NULL,
        last INTEGER NOT NULL,
        PRIMARY KEY (partner, kind)
    ) WITHOUT ROWID;
    CREATE TABLE acks (
        id INTEGER PRIMARY KEY,
        file_id INTEGER NOT NULL,
        kind TEXT NOT NULL,
        partner TEXT NOT NULL,
        control_no INTEGER,
        file_name TEXT NOT NULL,
        content BLOB NOT NULL
    );
    CREATE INDEX acks_file ON acks(file_id);
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        run_id INTEGER,
        at TEXT NOT NULL,
        level TEXT NOT NULL,
        file_name TEXT,
        fingerprint TEXT,
        message TEXT NOT NULL
    );
    "#,
    // 2: starts without progress, to set aside files a process keeps dying on.
    r#"
    ALTER TABLE files ADD COLUMN stalled_starts INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE files ADD COLUMN last_start_seq INTEGER;
    "#,
];

fn is_busy(e: &LedgerError) -> bool {
    matches!(
        e,
        LedgerError::Sql(rusqlite::Error::SqliteFailure(f, _))
            if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Retries `f` while SQLite says busy, for up to 30 s (the busy timeout used elsewhere).
fn retry_busy<T>(mut f: impl FnMut() -> Result<T>) -> Result<T> {
    let start = std::time::Instant::now();
    let mut wait = Duration::from_millis(5);
    loop {
        match f() {
            Err(e) if is_busy(&e) && start.elapsed() < Duration::from_secs(30) => {
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_millis(200));
            }
            other => return other,
        }
    }
}

pub fn now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// Where a file is in its life. Only ever moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileState {
    /// Claimed; the content is being read, validated and staged batch by batch.
    Reading,
    /// Decision taken and acks stored; outbox chunks, acks and report being published.
    Publishing,
    Done,
}

impl FileState {
    pub fn as_str(self) -> &'static str {
        match self {
            FileState::Reading => "reading",
            FileState::Publishing => "publishing",
            FileState::Done => "done",
        }
    }
    fn parse(s: &str) -> FileState {
        match s {
            "publishing" => FileState::Publishing,
            "done" => FileState::Done,
            _ => FileState::Reading,
        }
    }
}

/// How a file ended. Stored as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every data unit applied.
    Applied,
    /// Applied except the listed rejects (policy accept-valid).
    AppliedWithRejects,
    /// Rejected whole: nothing applied.
    Rejected,
    /// Nothing new: every data unit was a duplicate.
    Duplicate,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::AppliedWithRejects => "applied_with_rejects",
            Outcome::Rejected => "rejected",
            Outcome::Duplicate => "duplicate",
        }
    }
    pub fn parse(s: &str) -> Option<Outcome> {
        match s {
            "applied" => Some(Outcome::Applied),
            "applied_with_rejects" => Some(Outcome::AppliedWithRejects),
            "rejected" => Some(Outcome::Rejected),
            "duplicate" => Some(Outcome::Duplicate),
            _ => None,
        }
    }
}

/// Line and document counts of a file, by outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub lines_applied: i64,
    pub lines_rejected: i64,
    pub lines_duplicate: i64,
    pub lines_skipped: i64,
    pub units_applied: i64,
    pub units_rejected: i64,
    pub units_duplicate: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileRow {
    pub id: i64,
    pub fingerprint: String,
    pub attempt: i64,
    pub name: String,
    pub source_path: String,
    pub work_path: Option<String>,
    pub size: i64,
    pub format: Option<String>,
    #[serde(skip)]
    pub state: FileState,
    pub outcome: Option<String>,
    pub committed_seq: i64,
    pub committed_lines: i64,
    pub next_chunk: i64,
    #[serde(flatten)]
    pub counts: Counts,
    pub error_rule: Option<String>,
    pub error_message: Option<String>,
    pub error_position: Option<String>,
    pub run_id: Option<i64>,
    pub claimed_at: String,
    pub finished_at: Option<String>,
    pub final_path: Option<String>,
    pub report_path: Option<String>,
}

const FILE_COLS: &str = "id, fingerprint, attempt, name, source_path, work_path, size, format, state, outcome, \
    committed_seq, committed_lines, next_chunk, lines_applied, lines_rejected, lines_duplicate, lines_skipped, \
    units_applied, units_rejected, units_duplicate, error_rule, error_message, error_position, run_id, \
    claimed_at, finished_at, final_path, report_path";

fn file_row(r: &rusqlite::Row) -> rusqlite::Result<FileRow> {
    Ok(FileRow {
        id: r.get(0)?,
        fingerprint: r.get(1)?,
        attempt: r.get(2)?,
        name: r.get(3)?,
        source_path: r.get(4)?,
        work_path: r.get(5)?,
        size: r.get(6)?,
        format: r.get(7)?,
        state: FileState::parse(&r.get::<_, String>(8)?),
        outcome: r.get(9)?,
        committed_seq: r.get(10)?,
        committed_lines: r.get(11)?,
        next_chunk: r.get(12)?,
        counts: Counts {
            lines_applied: r.get(13)?,
            lines_rejected: r.get(14)?,
            lines_duplicate: r.get(15)?,
            lines_skipped: r.get(16)?,
            units_applied: r.get(17)?,
            units_rejected: r.get(18)?,
            units_duplicate: r.get(19)?,
        },
        error_rule: r.get(20)?,
        error_message: r.get(21)?,
        error_position: r.get(22)?,
        run_id: r.get(23)?,
        claimed_at: r.get(24)?,
        finished_at: r.get(25)?,
        final_path: r.get(26)?,
        report_path: r.get(27)?,
    })
}

/// One line's outcome, as written in a batch.
#[derive(Debug, Clone)]
pub struct LineRow {
    pub ordinal: i64,
    pub unit_seq: i64,
    pub pos: Position,
    pub status: &'static str,
    pub key: Option<String>,
    pub reason: Option<Reason>,
    pub raw: Option<String>,
}

/// One unit's outcome, as written in a batch.
#[derive(Debug, Clone)]
pub struct UnitRow {
    pub seq: i64,
    pub label: String,
    pub status: UnitStatus,
    pub key: Option<String>,
    pub first_ordinal: i64,
    pub line_count: i64,
    pub reasons: Vec<(Position, Reason)>,
    pub detail: serde_json::Value,
    pub tolerated: Vec<String>,
}

/// A staged outbox chunk, committed with its batch.
#[derive(Debug, Clone)]
pub struct ChunkRow {
    pub chunk: i64,
    pub entity: String,
    pub staged_path: String,
    pub outbox_path: String,
    pub records: i64,
}

/// A rejected line for reports.
#[derive(Debug, Clone, Serialize)]
pub struct RejectRow {
    pub file: String,
    pub fingerprint: String,
    pub line: i64,
    pub byte: i64,
    pub record: i64,
    pub locator: Option<String>,
    pub unit: String,
    pub key: Option<String>,
    pub field: Option<String>,
    pub rule: Option<String>,
    pub value: Option<String>,
    pub message: Option<String>,
    pub original: Option<String>,
}

pub struct Ledger {
    conn: Connection,
}

impl Ledger {
    pub fn open(path: &Path) -> Result<Ledger> {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = Connection::open(path).map_err(|e| LedgerError::Open {
            path: path.display().to_string(),
            source: e,
        })?;
        conn.busy_timeout(Duration::from_secs(30))?;
        // Switching to WAL needs an exclusive lock that SQLite does not wait for through the
        // busy handler: two first-ever runs starting together would fail here. Retry.
        retry_busy(|| {
            conn.pragma_update(None, "journal_mode", "WAL")
                .map_err(LedgerError::from)
        })?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let mut ledger = Ledger { conn };
        retry_busy(|| ledger.migrate())?;
        Ok(ledger)
    }

    fn migrate(&mut self) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(LedgerError::TooNew {
                found: version,
                known,
            });
        }
        for m in &MIGRATIONS[version as usize..] {
            tx.execute_batch(m)?;
        }
        tx.pragma_update(None, "user_version", known)?;
        tx.commit()?;
        Ok(())
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    pub fn begin_run(&self, command: &str) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO runs(command, pid, started_at) VALUES (?1, ?2, ?3)",
            params![command, std::process::id(), now()],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn finish_run(
        &self,
        run: i64,
        status: &str,
        done: u64,
        review: u64,
        error: Option<&str>,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE runs SET finished_at=?2, status=?3, files_done=?4, files_review=?5, error=?6 WHERE id=?1",
            params![run, now(), status, done as i64, review as i64, error],
        )?;
        Ok(())
    }

    pub fn event(
        &self,
        run: Option<i64>,
        level: &str,
        file_name: Option<&str>,
        fingerprint: Option<&str>,
        message: &str,
    ) -> Result<()> {
        self.conn.execute(
            "INSERT INTO events(run_id, at, level, file_name, fingerprint, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![run, now(), level, file_name, fingerprint, message],
        )?;
        Ok(())
    }

    /// The latest attempt for a fingerprint.
    pub fn latest_file(&self, fingerprint: &str) -> Result<Option<FileRow>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {FILE_COLS} FROM files WHERE fingerprint=?1 ORDER BY attempt DESC LIMIT 1"),
                [fingerprint],
                file_row,
            )
            .optional()?)
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
        Ok(self.conn.query_row(
            &format!("SELECT {FILE_COLS} FROM files WHERE id=?1"),
            [id],
            file_row,
        )?)
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction. A deferred transaction that reads and
    /// then writes fails at once with SQLITE_BUSY (no busy wait) if another process wrote in
    /// between; taking the write lock first makes it wait its turn instead.
    fn immediate<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        match f(&self.conn) {
            Ok(v) => {
                self.conn.execute_batch("COMMIT")?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Creates a new attempt for a fingerprint (first claim, or `process --force`).
    pub fn insert_file(
        &self,
        fingerprint: &str,
        name: &str,
        source_path: &str,
        size: u64,
        run: i64,
    ) -> Result<FileRow> {
        let id = self.immediate(|c| {
            let attempt: i64 = c.query_row(
                "SELECT COALESCE(MAX(attempt), 0) + 1 FROM files WHERE fingerprint=?1",
                [fingerprint],
                |r| r.get(0),
            )?;
            c.execute(
                "INSERT INTO files(fingerprint, attempt, name, source_path, size, state, run_id, claimed_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, 'reading', ?6, ?7)",
                params![fingerprint, attempt, name, source_path, size as i64, run, now()],
            )?;
            Ok(c.last_insert_rowid())
        })?;
        self.file(id)
    }

    /// Records that reading starts (again) and returns how many starts in a row found the
    /// resume mark where the previous start left it: each of those means the process died
    /// on this file before committing anything new.
    pub fn note_start(&self, id: i64) -> Result<u32> {
        self.conn.execute(
            "UPDATE files SET \
             stalled_starts = CASE WHEN last_start_seq = committed_seq THEN stalled_starts + 1 ELSE 0 END, \
             last_start_seq = committed_seq WHERE id=?1",
            params![id],
        )?;
        Ok(self
            .conn
            .query_row("SELECT stalled_starts FROM files WHERE id=?1", [id], |r| {
                r.get::<_, i64>(0)
            })? as u32)
    }

    pub fn set_file_run(&self, id: i64, run: i64) -> Result<()> {
        self.conn
            .execute("UPDATE files SET run_id=?2 WHERE id=?1", params![id, run])?;
        Ok(())
    }

    pub fn set_work_path(&self, id: i64, path: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE files SET work_path=?2 WHERE id=?1",
            params![id, path],
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

    /// Files not finished: resumed by the next run.
    pub fn unfinished_files(&self) -> Result<Vec<FileRow>> {
        self.files_where("WHERE state != 'done' ORDER BY id", [])
    }

    /// Files selected by `tail`, the SQL after `SELECT ... FROM files`.
    fn files_where(&self, tail: &str, params: impl rusqlite::Params) -> Result<Vec<FileRow>> {
        let mut st = self
            .conn
            .prepare(&format!("SELECT {FILE_COLS} FROM files {tail}"))?;
        let rows = st
            .query_map(params, file_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Starts the write transaction of one batch. `BEGIN IMMEDIATE` takes the write lock up
    /// front, so the duplicate checks and the key inserts see one consistent ledger even
    /// when two processes run at once.
    pub fn batch(&mut self) -> Result<BatchTx<'_>> {
        Ok(BatchTx {
            tx: self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?,
        })
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

    /// Takes the file's decision: outcome, line updates for a whole-file reject, key
    /// release, and the acks to publish, all in one transaction.
    pub fn decide(
        &mut self,
        id: i64,
        outcome: Outcome,
        why: Option<&str>,
        acks: &[Outbound],
    ) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        if outcome == Outcome::Rejected {
            let msg = format!("file rejected whole: {}", why.unwrap_or("policy"));
            tx.execute(
                "UPDATE lines SET status='rejected', rule='file-rejected', message=?2 WHERE file_id=?1 AND status IN ('applied', 'duplicate')",
                params![id, msg],
            )?;
            tx.execute(
                "UPDATE units SET status='rejected' WHERE file_id=?1 AND status IN ('applied', 'duplicate')",
                params![id],
            )?;
            tx.execute("DELETE FROM keys WHERE file_id=?1", params![id])?;
            tx.execute(
                "UPDATE files SET lines_rejected = lines_rejected + lines_applied + lines_duplicate, \
                 lines_applied = 0, lines_duplicate = 0, \
                 units_rejected = units_rejected + units_applied + units_duplicate, units_applied = 0, units_duplicate = 0 \
                 WHERE id=?1",
                params![id],
            )?;
        }
        for a in acks {
            tx.execute(
                "INSERT INTO acks(file_id, kind, partner, control_no, file_name, content) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id, a.kind, a.partner, a.control_no.map(|n| n as i64), a.file_name, a.content],
            )?;
        }
        tx.execute(
            "UPDATE files SET outcome=?2, state='publishing', error_message=COALESCE(error_message, ?3) WHERE id=?1",
            params![id, outcome.as_str(), if outcome == Outcome::Rejected { why } else { None }],
        )?;
        tx.commit()?;
        Ok(())
    }

    pub fn finish_file(&self, id: i64, final_path: &str, report_path: Option<&str>) -> Result<()> {
        self.conn.execute(
            "UPDATE files SET state='done', finished_at=?2, final_path=?3, report_path=?4 WHERE id=?1",
            params![id, now(), final_path, report_path],
        )?;
        Ok(())
    }

    pub fn chunks(&self, id: i64) -> Result<Vec<ChunkRow>> {
        let mut st = self.conn.prepare(
            "SELECT chunk, entity, staged_path, outbox_path, records FROM chunks WHERE file_id=?1 ORDER BY chunk, entity",
        )?;
        let rows = st
            .query_map([id], |r| {
                Ok(ChunkRow {
                    chunk: r.get(0)?,
                    entity: r.get(1)?,
                    staged_path: r.get(2)?,
                    outbox_path: r.get(3)?,
                    records: r.get(4)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    pub fn acks(&self, id: i64) -> Result<Vec<Outbound>> {
        let mut st = self.conn.prepare(
            "SELECT file_name, kind, partner, control_no, content FROM acks WHERE file_id=?1 ORDER BY id",
        )?;
        let rows = st
            .query_map([id], |r| {
                Ok(Outbound {
                    file_name: r.get(0)?,
                    kind: r.get(1)?,
                    partner: r.get(2)?,
                    control_no: r.get::<_, Option<i64>>(3)?.map(|n| n as u64),
                    content: r.get(4)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Allocates the next control number, committed before it is returned: a crash can
    /// waste a number but never hand the same one out twice.
    pub fn next_control_number(&self, partner: &str, kind: &str) -> Result<u64> {
        let n: i64 = self.immediate(|c| {
            c.execute(
                "INSERT INTO control_numbers(partner, kind, last) VALUES (?1, ?2, 1) \
                 ON CONFLICT(partner, kind) DO UPDATE SET last = last + 1",
                params![partner, kind],
            )?;
            Ok(c.query_row(
                "SELECT last FROM control_numbers WHERE partner=?1 AND kind=?2",
                params![partner, kind],
                |r| r.get(0),
            )?)
        })?;
        Ok(n as u64)
    }

    pub fn unit_summary(&self, file_id: i64, seq: u64) -> Result<Option<UnitSummary>> {
        let row = self
            .conn
            .query_row(
                "SELECT status, reasons, detail FROM units WHERE file_id=?1 AND seq=?2",
                params![file_id, seq as i64],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, Option<String>>(2)?,
                    ))
                },
            )
            .optional()?;
        let Some((status, reasons, detail)) = row else {
            return Ok(None);
        };
        let status = match status.as_str() {
            "applied" => UnitStatus::Applied,
            "duplicate" => UnitStatus::Duplicate,
            "skipped" => UnitStatus::Skipped,
            "unmapped" => UnitStatus::Unmapped,
            _ => UnitStatus::Rejected,
        };
        Ok(Some(UnitSummary {
            seq,
            status,
            reasons: match reasons {
                Some(s) => serde_json::from_str(&s)?,
                None => Vec::new(),
            },
            detail: match detail {
                Some(s) => serde_json::from_str(&s)?,
                None => serde_json::Value::Null,
            },
        }))
    }

    /// Rejected lines of a file, in file order.
    pub fn rejects(&self, file_id: i64) -> Result<Vec<RejectRow>> {
        let mut st = self.conn.prepare(
            "SELECT f.name, f.fingerprint, l.line, l.byte, l.record, l.locator, u.label, l.key, l.field, l.rule, l.value, l.message, l.raw \
             FROM lines l JOIN files f ON f.id = l.file_id JOIN units u ON u.file_id = l.file_id AND u.seq = l.unit_seq \
             WHERE l.file_id=?1 AND l.status='rejected' ORDER BY l.ordinal",
        )?;
        let rows = st
            .query_map([file_id], |r| {
                Ok(RejectRow {
                    file: r.get(0)?,
                    fingerprint: r.get(1)?,
                    line: r.get(2)?,
                    byte: r.get(3)?,
                    record: r.get(4)?,
                    locator: r.get(5)?,
                    unit: r.get(6)?,
                    key: r.get(7)?,
                    field: r.get(8)?,
                    rule: r.get(9)?,
                    value: r.get(10)?,
                    message: r.get(11)?,
                    original: r.get(12)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Files matching a name, a fingerprint prefix or a path, newest first.
    pub fn find_files(&self, needle: &str) -> Result<Vec<FileRow>> {
        let base = Path::new(needle)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| needle.to_string());
        self.files_where(
            "WHERE name=?1 OR name=?2 OR fingerprint LIKE ?3 || '%' OR source_path=?1 ORDER BY id DESC",
            params![needle, base, needle],
        )
    }

    pub fn files_of_run(&self, run: i64) -> Result<Vec<FileRow>> {
        self.files_where("WHERE run_id=?1 ORDER BY id", [run])
    }

    /// The newest run that touched at least one file.
    pub fn latest_run_with_files(&self) -> Result<Option<i64>> {
        Ok(self
            .conn
            .query_row("SELECT MAX(run_id) FROM files", [], |r| {
                r.get::<_, Option<i64>>(0)
            })?)
    }

    pub fn recent_files(&self, limit: i64) -> Result<Vec<FileRow>> {
        self.files_where("ORDER BY id DESC LIMIT ?1", [limit])
    }
}

/// The duplicate checks and writes of one batch, in one `BEGIN IMMEDIATE` transaction.
pub struct BatchTx<'a> {
    tx: Transaction<'a>,
}

/// Who already holds a key.
#[derive(Debug, Clone)]
pub struct Holder {
    pub file_id: i64,
    pub fingerprint: String,
    pub name: String,
    pub unit_seq: i64,
}

impl BatchTx<'_> {
    pub fn holder(&self, entity: &str, key: &str) -> Result<Option<Holder>> {
        // Cached: this runs once per document, so re-parsing the SQL would dominate.
        let mut st = self.tx.prepare_cached(
            "SELECT k.file_id, f.fingerprint, f.name, k.unit_seq FROM keys k JOIN files f ON f.id = k.file_id \
             WHERE k.entity=?1 AND k.key=?2",
        )?;
        Ok(st
            .query_row(params![entity, key], |r| {
                Ok(Holder {
                    file_id: r.get(0)?,
                    fingerprint: r.get(1)?,
                    name: r.get(2)?,
                    unit_seq: r.get(3)?,
                })
            })
            .optional()?)
    }

    /// Takes a key for a unit (replacing an earlier holder only when `steal` — a forced
    /// re-apply of the same content).
    pub fn take_key(
        &self,
        entity: &str,
        key: &str,
        file_id: i64,
        unit_seq: i64,
        steal: bool,
    ) -> Result<()> {
        let sql = if steal {
            "INSERT OR REPLACE INTO keys(entity, key, file_id, unit_seq) VALUES (?1, ?2, ?3, ?4)"
        } else {
            "INSERT OR IGNORE INTO keys(entity, key, file_id, unit_seq) VALUES (?1, ?2, ?3, ?4)"
        };
        self.tx
            .prepare_cached(sql)?
            .execute(params![entity, key, file_id, unit_seq])?;
        Ok(())
    }

    pub fn write_lines(&self, file_id: i64, lines: &[LineRow]) -> Result<()> {
        let mut st = self.tx.prepare_cached(
            "INSERT OR REPLACE INTO lines(file_id, ordinal, unit_seq, line, byte, record, locator, status, key, rule, field, value, message, raw) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        )?;
        for l in lines {
            let r = l.reason.as_ref();
            st.execute(params![
                file_id,
                l.ordinal,
                l.unit_seq,
                l.pos.line as i64,
                l.pos.byte as i64,
                l.pos.record as i64,
                l.pos.locator,
                l.status,
                l.key,
                r.map(|r| r.rule.as_str()),
                r.and_then(|r| r.field.as_deref()),
                r.and_then(|r| r.value.as_deref()),
                r.map(|r| r.message.as_str()),
                l.raw,
            ])?;
        }
        Ok(())
    }

    pub fn write_units(&self, file_id: i64, units: &[UnitRow]) -> Result<()> {
        let mut st = self.tx.prepare_cached(
            "INSERT OR REPLACE INTO units(file_id, seq, label, status, key, first_ordinal, line_count, reasons, detail, tolerated) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        for u in units {
            let reasons = if u.reasons.is_empty() {
                None
            } else {
                Some(serde_json::to_string(&u.reasons)?)
            };
            let detail = if u.detail.is_null() {
                None
            } else {
                Some(serde_json::to_string(&u.detail)?)
            };
            let tolerated = if u.tolerated.is_empty() {
                None
            } else {
                Some(u.tolerated.join(","))
            };
            st.execute(params![
                file_id,
                u.seq,
                u.label,
                u.status.as_str(),
                u.key,
                u.first_ordinal,
                u.line_count,
                reasons,
                detail,
                tolerated
            ])?;
        }
        Ok(())
    }

    pub fn write_chunks(&self, file_id: i64, chunks: &[ChunkRow]) -> Result<()> {
        let mut st = self.tx.prepare_cached(
            "INSERT OR REPLACE INTO chunks(file_id, chunk, entity, staged_path, outbox_path, records) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for c in chunks {
            st.execute(params![
                file_id,
                c.chunk,
                c.entity,
                c.staged_path,
                c.outbox_path,
                c.records
            ])?;
        }
        Ok(())
    }

    /// Advances the file's resume mark and counters.
    #[allow(clippy::too_many_arguments)]
    pub fn advance(
        &self,
        file_id: i64,
        committed_seq: i64,
        committed_lines: i64,
        next_chunk: i64,
        lines: [i64; 4],
        units: [i64; 3],
    ) -> Result<()> {
        self.tx.execute(
            "UPDATE files SET committed_seq=?2, committed_lines=?3, next_chunk=?4, \
             lines_applied=lines_applied+?5, lines_rejected=lines_rejected+?6, lines_duplicate=lines_duplicate+?7, lines_skipped=lines_skipped+?8, \
             units_applied=units_applied+?9, units_rejected=units_rejected+?10, units_duplicate=units_duplicate+?11 WHERE id=?1",
            params![
                file_id,
                committed_seq,
                committed_lines,
                next_chunk,
                lines[0],
                lines[1],
                lines[2],
                lines[3],
                units[0],
                units[1],
                units[2]
            ],
        )?;
        Ok(())
    }

    pub fn commit(self) -> Result<()> {
        self.tx.commit()?;
        Ok(())
    }
}

/// Unit outcomes of one file, read from the ledger (for acknowledgements).
pub struct LedgerOutcomes<'a> {
    pub ledger: &'a Ledger,
    pub file_id: i64,
}

impl UnitOutcomes for LedgerOutcomes<'_> {
    fn get(&self, seq: u64) -> Option<UnitSummary> {
        self.ledger.unit_summary(self.file_id, seq).ok().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_idempotent_and_versioned() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l.sqlite");
        drop(Ledger::open(&p).unwrap());
        let l = Ledger::open(&p).unwrap();
        let v: i64 = l
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
        let mode: String = l
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn control_numbers_increase_per_partner_and_kind() {
        let dir = tempfile::tempdir().unwrap();
        let l = Ledger::open(&dir.path().join("l.sqlite")).unwrap();
        assert_eq!(l.next_control_number("ACME", "997").unwrap(), 1);
        assert_eq!(l.next_control_number("ACME", "997").unwrap(), 2);
        assert_eq!(l.next_control_number("OTHER", "997").unwrap(), 1);
        drop(l);
        let l = Ledger::open(&dir.path().join("l.sqlite")).unwrap();
        assert_eq!(l.next_control_number("ACME", "997").unwrap(), 3);
    }

    #[test]
    fn attempts_count_up_per_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let l = Ledger::open(&dir.path().join("l.sqlite")).unwrap();
        let run = l.begin_run("test").unwrap();
        let a = l.insert_file("abc", "a.csv", "/x/a.csv", 3, run).unwrap();
        let b = l.insert_file("abc", "a.csv", "/x/a.csv", 3, run).unwrap();
        assert_eq!((a.attempt, b.attempt), (1, 2));
        assert_eq!(l.latest_file("abc").unwrap().unwrap().id, b.id);
    }

    #[test]
    fn regression_insert_file_waits_for_another_writer_instead_of_failing_busy() {
        // Two connections interleave: B opens a read snapshot, A writes, then B claims a
        // file. A deferred read-then-write transaction would fail with SQLITE_BUSY here.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l.sqlite");
        let a = Ledger::open(&p).unwrap();
        let b = Ledger::open(&p).unwrap();
        let run = a.begin_run("t").unwrap();
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let p = p.clone();
                std::thread::spawn(move || {
                    let l = Ledger::open(&p).unwrap();
                    for i in 0..50 {
                        l.insert_file(&format!("fp{t}-{i}"), "n", "/x", 1, run)
                            .unwrap();
                        l.next_control_number("P", "997").unwrap();
                    }
                })
            })
            .collect();
        for i in 0..50 {
            b.insert_file(&format!("b{i}"), "n", "/x", 1, run).unwrap();
        }
        for h in handles {
            h.join().unwrap();
        }
        let n: i64 = a
            .conn
            .query_row("SELECT COUNT(*) FROM files", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 250);
        assert_eq!(
            a.next_control_number("P", "997").unwrap(),
            201,
            "no number handed out twice"
        );
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l.sqlite");
        {
            let c = Connection::open(&p).unwrap();
            c.pragma_update(None, "user_version", 999).unwrap();
        }
        assert!(matches!(Ledger::open(&p), Err(LedgerError::TooNew { .. })));
    }
}
