//! Keeping the ledger healthy: integrity checks that notice a damaged file before it is
//! written to, and online backups that a running tallyman does not have to stop for.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::{now, Ledger, LedgerError, Result};

/// A ledger up to this size is checked (`PRAGMA quick_check`) at every start whose seal
/// does not hold (see seal.rs): about half a second for 100 MB here. A larger one is
/// checked at most hourly then, to keep a timer run's start short.
const CHECK_EVERY_START_BYTES: u64 = 1 << 30;
const CHECK_EVERY_SECS: i64 = 3600;
/// A sealed ledger is still checked once a day: a disk can decay under a file nobody
/// wrote.
const CHECK_SEALED_EVERY_SECS: i64 = 24 * 3600;

impl Ledger {
    /// `PRAGMA quick_check` (or the full `integrity_check`): the problems found, empty if
    /// the database is sound. A file too damaged to be read at all is an error.
    pub fn check_integrity(&self, full: bool) -> Result<Vec<String>> {
        if self.is_postgres() {
            // The server checks its own pages (data checksums); there is no quick check.
            return Ok(Vec::new());
        }
        let pragma = if full {
            "PRAGMA integrity_check"
        } else {
            "PRAGMA quick_check"
        };
        let mut st = self.conn.prepare(pragma)?;
        let rows = st
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<super::db::Result<Vec<_>>>()?;
        Ok(rows.into_iter().filter(|r| r != "ok").collect())
    }

    /// Runs a quick check when one is due and refuses a damaged ledger. It reads each page
    /// once without checking index contents, and it is what turns "8 KiB of broken pages"
    /// into a stop with a clear message instead of a run that writes on. Due: at a start
    /// whose seal does not hold (a reboot, a write by anything but tallyman, a checkpoint
    /// cut short, no seal yet) for a ledger up to 1 GiB, hourly above; daily for a sealed
    /// ledger.
    pub fn ensure_sound(&self) -> Result<()> {
        let sealed = !self.is_postgres() && super::seal::intact(self.path());
        let due = if sealed {
            self.check_due(CHECK_SEALED_EVERY_SECS)
        } else {
            let size = std::fs::metadata(self.path()).map_or(0, |m| m.len());
            size <= CHECK_EVERY_START_BYTES || self.check_due(CHECK_EVERY_SECS)
        };
        if due {
            return self.quick_check_now();
        }
        tracing::debug!(sealed, "ledger check not due");
        Ok(())
    }

    /// Whether the last passed check is `every` seconds old or more (or unrecorded).
    fn check_due(&self, every: i64) -> bool {
        let last: Option<String> = self
            .conn
            .query_row(
                "SELECT value FROM meta WHERE key='quick_check_ok'",
                [],
                |r| r.get(0),
            )
            .ok();
        last.and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
            .is_none_or(|t| chrono::Utc::now().signed_duration_since(t).num_seconds() >= every)
    }

    fn quick_check_now(&self) -> Result<()> {
        let problems = self.check_integrity(false)?;
        if let Some(first) = problems.first() {
            return Err(LedgerError::Corrupt(format!(
                "{} problem(s), first: {first}",
                problems.len()
            )));
        }
        self.conn.execute(
            "INSERT INTO meta(key, value) VALUES ('quick_check_ok', ?1) \
             ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            [now()],
        )?;
        if !self.is_postgres() {
            super::seal::seal(self.path());
        }
        Ok(())
    }

    /// Writes a consistent copy of the ledger to `dest` while others may be writing to it
    /// (SQLite's online backup), through a temporary file renamed into place, then checks
    /// the copy. Returns the number of pages copied.
    pub fn backup(&self, dest: &Path) -> Result<i64> {
        if self.is_postgres() {
            return Err(LedgerError::Unsupported(
                "`tallyman backup` copies a SQLite ledger; back a PostgreSQL ledger up with pg_dump or the server's own backups",
            ));
        }
        let dir = dest.parent().unwrap_or(Path::new("."));
        let tmp = dir.join(format!(".tallyman-{}-backup.tmp", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let pages = {
            let mut out = Connection::open(&tmp)?;
            let backup = rusqlite::backup::Backup::new(self.conn.sqlite()?, &mut out)?;
            backup.run_to_completion(256, std::time::Duration::from_millis(10), None)?;
            let pages = backup.progress().pagecount as i64;
            drop(backup);
            let ok: String = out.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
            if ok != "ok" {
                let _ = std::fs::remove_file(&tmp);
                return Err(LedgerError::Corrupt(format!(
                    "the backup copy fails its check: {ok}"
                )));
            }
            pages
        };
        crate::fsutil::set_mode(&tmp)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, dest)?;
        crate::fsutil::fsync_dir(dir)?;
        Ok(pages)
    }
}

/// Opens a ledger file read-only for checking, without migrating or repairing anything.
pub fn open_for_check(path: &Path) -> Result<Ledger> {
    let conn =
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|e| {
            LedgerError::Open {
                path: path.display().to_string(),
                source: e.into(),
            }
        })?;
    Ok(Ledger {
        conn: super::db::Connection::Lite(conn),
        location: super::Location::Sqlite(path.to_path_buf()),
        routes: Vec::new(),
        roots: Default::default(),
        fences: Default::default(),
        run: Default::default(),
    })
}
