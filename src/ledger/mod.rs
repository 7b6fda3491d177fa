//! The processing ledger: one SQLite database that knows every file, every unit and every
//! input line's outcome, and which business keys are already applied.
//!
//! It is also the commit point of the pipeline. A batch of units is written in one
//! transaction together with the names of the outbox chunks staged for it, so after a crash
//! the ledger says exactly which units are done; everything after the last commit is read
//! again. WAL with `synchronous=FULL` makes a commit durable before we move on; a busy
//! timeout lets an overlapping timer run and a manual `process` share the file.
//!
//! All SQL of the project lives in this module and its children: the pipeline and the
//! commands speak to the ledger through methods only, so another backend (PostgreSQL for
//! several machines sharing an inbox) can implement the same interface. A damaged database
//! file is reported as [`LedgerError::Corrupt`], never used on silently.

mod batch;
mod buckets;
mod console;
mod console_model;
mod console_review;
mod corrections;
mod db;
mod delivery;
mod files;
mod leases;
mod made;
mod maint;
mod model;
mod outcomes;
mod query;
mod reasons;
mod reconcile;
mod rejected;
mod review;
mod roots;
mod runs;
mod schema;
mod schema_pg;
mod seal;
pub mod spans;
#[cfg(test)]
pub(crate) mod testplace;
mod workers;

use std::path::{Path, PathBuf};
use std::time::Duration;

use db::{params, Connection, TransactionBehavior};
use rusqlite::ErrorCode;

pub use batch::{BatchTx, ChunkMarks, Holder, NewVersion};
pub use buckets::{BucketState, SharedBucket};
pub use console_model::{
    AttemptView, Bucket, DeadGroup, DeadGroupSel, DeliveryView, FileErrorRow, FileListRow,
    KeyDocument, LineSource, LineView, ReconRow, RejectGroup, RejectedDoc, Resolution, StateCount,
    VersionView, WindowTotals,
};
pub use corrections::CorrectionLine;
pub use delivery::{AttemptLog, DeadLetter, Due, Finished, Selection, TargetCounts};
pub use files::{ChunkRecord, Lost, NewFile, WaitingFile};
pub use leases::{LeaseHolder, LeaseKeeper, Leased, Taking};
pub use maint::open_for_check;
pub use model::{
    ChunkCheck, ChunkRow, Counts, FileRow, FileState, LineRow, Outcome, OutcomeTotal, RejectRow,
    RunRow, UnitRow,
};
pub use outcomes::LedgerOutcomes;
pub use reconcile::{
    Known, MissingKey, NewReconciliation, ReconciliationRow, Requeued, REQUEUED_KEYS_KEPT,
};
pub use review::{AuditRow, RejectTally};
pub use roots::Roots;
pub use workers::WorkerRow;

use schema::MIGRATIONS;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("cannot open the ledger {path}: {source}")]
    Open { path: String, source: db::Error },
    #[error("{0}")]
    Sql(db::Error),
    #[error("the ledger is damaged ({0}); stop every tallyman run, check it with `tallyman check --ledger` and restore the latest backup (README: Backups)")]
    Corrupt(String),
    #[error(
        "the ledger's disk is full ({0}); free space, then run again: nothing was half-applied"
    )]
    Full(String),
    #[error("ledger schema version {found} is newer than this tallyman knows ({known}); upgrade tallyman")]
    TooNew { found: i64, known: i64 },
    #[error("{0}")]
    Unsupported(&'static str),
    #[error("bad stored JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// This run's lease on the file ran out and another run took the file over: nothing
    /// more of it may be written by this one (see leases.rs).
    #[error("{what} was taken over by {by} after this run's lease on it ran out; this run writes nothing more of it")]
    Fenced { what: String, by: String },
}

impl From<rusqlite::Error> for LedgerError {
    fn from(e: rusqlite::Error) -> Self {
        LedgerError::from(db::Error::from(e))
    }
}

impl From<db::Error> for LedgerError {
    fn from(e: db::Error) -> Self {
        if let db::Error::Lite(rusqlite::Error::SqliteFailure(f, _)) = &e {
            match f.code {
                ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => {
                    return LedgerError::Corrupt(e.to_string())
                }
                ErrorCode::DiskFull => return LedgerError::Full(e.to_string()),
                _ => {}
            }
        }
        LedgerError::Sql(e)
    }
}

impl LedgerError {
    /// Whether the ledger's database session was cut (PostgreSQL restarted or out of
    /// reach): the uncommitted batch is lost and the work resumes from the last commit
    /// once the database answers again.
    pub fn is_connection_lost(&self) -> bool {
        match self {
            LedgerError::Sql(e) | LedgerError::Open { source: e, .. } => e.is_connection_lost(),
            _ => false,
        }
    }

    /// Whether the database file itself is damaged (as opposed to busy, full, ...).
    pub fn is_corrupt(&self) -> bool {
        matches!(self, LedgerError::Corrupt(_))
    }
}

pub type Result<T> = std::result::Result<T, LedgerError>;

fn is_busy(e: &LedgerError) -> bool {
    matches!(
        e,
        LedgerError::Sql(db::Error::Lite(rusqlite::Error::SqliteFailure(f, _)))
            if matches!(f.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
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

/// Where a ledger lives: a SQLite file (the embedded default) or a PostgreSQL database
/// several machines share. Kept so a lease keeper can open its own connection.
#[derive(Clone)]
pub enum Location {
    Sqlite(PathBuf),
    Postgres {
        url: String,
        password: Option<String>,
    },
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown())
    }
}

impl Location {
    /// How the ledger is named to people: its path, or its URL without a password.
    pub fn shown(&self) -> String {
        match self {
            Location::Sqlite(p) => p.display().to_string(),
            Location::Postgres { url, .. } => db::PgConn::shown_url(url),
        }
    }

    fn connect(&self) -> Result<Connection> {
        let opened = match self {
            Location::Sqlite(path) => Connection::open_sqlite(path),
            Location::Postgres { url, password } => {
                Connection::open_postgres(url, password.as_deref())
            }
        };
        let conn = opened.map_err(|e| LedgerError::Open {
            path: self.shown(),
            source: e,
        })?;
        if let Connection::Lite(c) = &conn {
            c.busy_timeout(Duration::from_secs(30))?;
            // Switching to WAL needs an exclusive lock that SQLite does not wait for
            // through the busy handler: two first-ever runs starting together would fail
            // here. Retry.
            retry_busy(|| {
                c.pragma_update(None, "journal_mode", "WAL")
                    .map_err(LedgerError::from)
            })?;
            c.pragma_update(None, "synchronous", "FULL")?;
            c.pragma_update(None, "foreign_keys", "ON")?;
            // A transaction's pages all go to the WAL before it can be checkpointed: a file
            // of millions of documents rejected whole grew it to 5.6 GB. Without a limit the
            // WAL keeps its largest size on disk for as long as a `watch` or `serve` keeps
            // the ledger open; with one it is cut back once checkpointed.
            c.pragma_update(None, "journal_size_limit", WAL_KEEP_BYTES)?;
            seal::checkpoint_from_hook(c);
        }
        Ok(conn)
    }
}

/// The size a checkpointed WAL is cut back to (SQLite's `journal_size_limit`).
const WAL_KEEP_BYTES: i64 = 64 << 20;

pub struct Ledger {
    conn: Connection,
    location: Location,
    /// The remote targets and the entities each takes: a decided file's new versions get a
    /// delivery row per target, in the decision's own transaction.
    routes: Vec<(String, Vec<String>)>,
    /// The configured folders paths are written relative to (see `roots`).
    roots: Roots,
    /// The leases this process holds, checked by every write they guard.
    fences: leases::Fences,
    /// The run this process began on this ledger, which holds its leases.
    run: std::cell::Cell<Option<i64>>,
}

impl Drop for Ledger {
    fn drop(&mut self) {
        if let Connection::Lite(c) = &self.conn {
            seal::checkpoint_on_close(c);
        }
    }
}

impl Ledger {
    /// Opens (creating if needed) the ledger at `path`. Its folder must exist. The file and
    /// its WAL companions get the configured file mode: the ledger holds names, addresses
    /// and raw rejected lines.
    pub fn open(path: &Path) -> Result<Ledger> {
        Ledger::open_at(Location::Sqlite(path.to_path_buf()))
    }

    /// Opens (creating its tables if needed) the ledger at `location`.
    pub fn open_at(location: Location) -> Result<Ledger> {
        let conn = location.connect()?;
        let mut ledger = Ledger {
            conn,
            location,
            routes: Vec::new(),
            roots: Roots::default(),
            fences: Default::default(),
            run: Default::default(),
        };
        retry_busy(|| ledger.migrate())?;
        ledger.restrict_modes()?;
        Ok(ledger)
    }

    /// The SQLite file of this ledger (empty for a PostgreSQL ledger).
    pub fn path(&self) -> &Path {
        match &self.location {
            Location::Sqlite(p) => p,
            Location::Postgres { .. } => Path::new(""),
        }
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    pub fn is_postgres(&self) -> bool {
        self.conn.is_postgres()
    }

    /// Opens the ledger of a configuration, writing paths relative to its folders.
    pub fn open_in(paths: &crate::config::Paths) -> Result<Ledger> {
        let mut ledger = Ledger::open_at(paths.ledger_at.clone())?;
        ledger.set_roots(Roots::new(paths.dirs()));
        Ok(ledger)
    }

    /// Sets the folders paths are written relative to.
    pub fn set_roots(&mut self, roots: Roots) {
        self.roots = roots;
    }

    /// Sets the remote targets decided files are queued for: `(name, entities)`.
    pub fn set_routes(&mut self, routes: Vec<(String, Vec<String>)>) {
        self.routes = routes;
    }

    /// Gives the database and its `-wal`/`-shm` files the configured mode (a ledger created
    /// by an older tallyman may be world-readable).
    fn restrict_modes(&self) -> Result<()> {
        if self.is_postgres() {
            return Ok(());
        }
        for suffix in ["", "-wal", "-shm"] {
            let mut p = self.path().as_os_str().to_owned();
            p.push(suffix);
            let p = PathBuf::from(p);
            if p.exists() {
                crate::fsutil::set_mode(&p)?;
            }
        }
        Ok(())
    }

    fn migrate(&mut self) -> Result<()> {
        if self.is_postgres() {
            return schema_pg::migrate(&self.conn);
        }
        let known = MIGRATIONS.len() as i64;
        // A ledger already current is only read: `status` and the console must open it
        // while a worker holds the write lock (mid-batch, or stopped there).
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version == known {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > known {
            return Err(LedgerError::TooNew {
                found: version,
                known,
            });
        }
        for m in &MIGRATIONS[version as usize..] {
            tx.execute_batch(m)?;
        }
        tx.execute_batch(&format!("PRAGMA user_version = {known}"))?;
        tx.commit()?;
        Ok(())
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

    pub fn begin_run(&self, command: &str) -> Result<i64> {
        self.bury_dead_runs()?;
        let at = now();
        self.conn.execute(
            "INSERT INTO runs(command, pid, started_at, host, seen_at, work) VALUES (?1, ?2, ?3, ?4, ?3, ?5)",
            params![command, std::process::id(), at, workers::host(), self.work_dir()],
        )?;
        let run = self.conn.last_insert_rowid()?;
        self.run.set(Some(run));
        Ok(run)
    }

    /// Adds files to a run that goes on (a `watch` session records one run, not a row per
    /// pass).
    pub fn add_to_run(&self, run: i64, done: u64, review: u64) -> Result<()> {
        self.conn.execute(
            "UPDATE runs SET files_done = files_done + ?2, files_review = files_review + ?3 WHERE id=?1",
            params![run, done as i64, review as i64],
        )?;
        Ok(())
    }

    /// Ends a run: `ok`, `failed` or `interrupted` (stopped by a signal; the next run
    /// resumes).
    pub fn finish_run(&self, run: i64, status: &str, error: Option<&str>) -> Result<()> {
        self.conn.execute(
            "UPDATE runs SET finished_at=?2, status=?3, error=?4, file_id=NULL WHERE id=?1",
            params![run, now(), status, error],
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

    /// Waits until the database answers (after a PostgreSQL restart or a network cut), up
    /// to two minutes; the last error if it never does (the run fails and the next one
    /// resumes). A SQLite ledger answers at once.
    pub fn wait_for_database(&self) -> Result<()> {
        const LIMIT: Duration = Duration::from_secs(120);
        let start = std::time::Instant::now();
        let mut wait = Duration::from_millis(100);
        loop {
            match self.conn.execute_batch("SELECT 1") {
                Ok(()) => return Ok(()),
                Err(e) if e.is_connection_lost() && start.elapsed() < LIMIT => {
                    tracing::debug!("the ledger's database does not answer yet: {e}");
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(2));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Runs a statement and returns its rows as text (NULL as `None`), on either backend:
    /// for tests and for looking into a ledger by hand. The pipeline never uses it.
    #[doc(hidden)]
    pub fn inspect(&self, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
        let mut st = self.conn.prepare(sql)?;
        let rows = st
            .query_map((), |r| {
                (0..r.column_count())
                    .map(|i| r.text(i))
                    .collect::<db::Result<Vec<_>>>()
            })?
            .collect::<db::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Whether an event with this message was already recorded (to tell a standing
    /// condition once, not on every pass).
    pub fn has_event(&self, message: &str) -> Result<bool> {
        Ok(self.conn.query_row(
            "SELECT EXISTS(SELECT 1 FROM events WHERE message=?1)",
            [message],
            |r| r.get(0),
        )?)
    }

    /// Allocates the next control number, committed before it is returned: a crash can
    /// waste a number but never hand the same one out twice.
    pub fn next_control_number(&self, partner: &str, kind: &str) -> Result<u64> {
        // One statement: the row's lock makes concurrent callers take turns, on either
        // backend, and the number comes back from the update that made it.
        let n: i64 = self.conn.query_row(
            "INSERT INTO control_numbers(partner, kind, last) VALUES (?1, ?2, 1) \
             ON CONFLICT(partner, kind) DO UPDATE SET last = control_numbers.last + 1 \
             RETURNING last",
            params![partner, kind],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }
}

#[cfg(test)]
mod tests;
