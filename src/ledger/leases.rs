//! Leases and fencing: which run may write a file's progress.
//!
//! The kernel lock in `work/locks` keeps two processes of one host off the same file, and
//! the kernel drops it when its owner dies. It cannot see a worker on another host, nor
//! tell a stopped process (SIGSTOP, a suspended VM, a stall) from a working one. So the
//! ledger also says, per file, which run holds it (`lease_run`), until when (`lease_until`,
//! renewed by a keeper thread while the run works) and a fencing token (`fence`) that
//! every taking raises. Another run takes a file only once its lease ran out or its
//! holder is known dead. The holder remembers its token, and every write of the file's
//! progress checks it inside the write's own transaction: once the file was taken over,
//! the old holder's writes are refused ([`LedgerError::Fenced`]) however long it slept,
//! and it lets go without having written anything.
//!
//! Writes to folders (staged chunks, the outbox, the archive) are outside any fence. Each
//! is idempotent and gives the same bytes whoever makes it, which is what makes a late
//! write by a fenced worker harmless; the fence makes sure the ledger never records one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::db::{params, Connection, OptionalExtension};

use super::{Ledger, LedgerError, Result};

/// What a lease is on: a file (its row in `files`), or a named role only one run may
/// play at a time (a row in `leases`: `relay:<target>`, the one relay of a target).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Leased {
    File(i64),
    Named(String),
}

impl Leased {
    /// The role of `target`'s one relay: whoever plays it sends to the target, so the
    /// target's rate limit and its in-flight requests are one run's, across all workers.
    pub fn relay(target: &str) -> Leased {
        Leased::Named(format!("relay:{target}"))
    }

    fn table(&self) -> &'static str {
        match self {
            Leased::File(_) => "files",
            Leased::Named(_) => "leases",
        }
    }
    fn key_col(&self) -> &'static str {
        match self {
            Leased::File(_) => "id",
            Leased::Named(_) => "name",
        }
    }
    /// Renews the lease (`?3`, until when) only under the token it was taken with (`?2`).
    fn renew_sql(&self) -> String {
        format!(
            "UPDATE {} SET lease_until=?3 WHERE {}=?1 AND fence=?2",
            self.table(),
            self.key_col()
        )
    }

    fn key(&self) -> super::db::Value<'_> {
        match self {
            Leased::File(id) => super::db::Value::Int(*id),
            Leased::Named(n) => super::db::Value::Text(n),
        }
    }
}

impl std::fmt::Display for Leased {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Leased::File(id) => write!(f, "file #{id}"),
            Leased::Named(n) => f.write_str(n),
        }
    }
}

/// The leases this process holds, with their fencing tokens.
#[derive(Debug)]
pub(super) struct Fences {
    held: HashMap<Leased, i64>,
    ttl_ms: i64,
}

impl Default for Fences {
    fn default() -> Self {
        Fences {
            held: HashMap::new(),
            ttl_ms: 60_000,
        }
    }
}

/// Who holds a file's lease, when it is not us.
#[derive(Debug, Clone)]
pub struct LeaseHolder {
    pub run: i64,
    pub host: Option<String>,
    pub pid: Option<i64>,
    /// Seconds until the lease runs out (negative: ran out, not yet taken).
    pub secs_left: f64,
}

impl std::fmt::Display for LeaseHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "run {}", self.run)?;
        if let (Some(h), Some(p)) = (&self.host, self.pid) {
            write!(f, " (pid {p} on {h})")?;
        }
        write!(f, ", lease for {:.0} s more", self.secs_left.max(0.0))
    }
}

/// The outcome of trying to take a file's lease.
#[derive(Debug, Clone)]
pub enum Taking {
    /// Taken: the fencing token this run writes under, and the run it took the file
    /// from, when another held it (a takeover) — with whether that run is still running
    /// (its lease ran out: it is stopped or cut off) rather than over (died, or ended).
    Taken {
        fence: i64,
        from: Option<i64>,
        from_running: bool,
    },
    Refused(LeaseHolder),
}

/// A run (`r`) that is still going: the lease it holds is not to be taken, until it runs out.
const LIVE_RUN: &str = "r.status = 'running' AND r.finished_at IS NULL";

pub(super) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Checks that this process still holds `what` (when it holds a lease on it at all) and
/// renews the lease; run inside the transaction of the write it guards.
pub(super) fn keep(conn: &Connection, fences: &Fences, what: &Leased) -> Result<()> {
    let Some(&fence) = fences.held.get(what) else {
        return Ok(());
    };
    let n = conn.prepare_cached(&what.renew_sql())?.execute(params![
        what.key(),
        fence,
        now_ms() + fences.ttl_ms
    ])?;
    if n == 0 {
        return Err(fenced_error(conn, what, fence));
    }
    Ok(())
}

/// The refusal of a write under a token that is no longer the file's (or role's).
fn fenced_error(conn: &Connection, what: &Leased, fence: i64) -> LedgerError {
    // A file's taker lets go once it finished: the file's last run is the taker.
    let holder = match what {
        Leased::File(_) => "COALESCE(lease_run, run_id)",
        Leased::Named(_) => "lease_run",
    };
    let sql = format!(
        "SELECT {holder}, fence FROM {} WHERE {}=?1",
        what.table(),
        what.key_col()
    );
    let by: Option<(Option<i64>, i64)> = conn
        .query_row(&sql, [what.key()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .ok()
        .flatten();
    let by = match by {
        Some((Some(run), now)) => format!("run {run} (fence {now}, ours {fence})"),
        _ => format!("another run (ours was fence {fence})"),
    };
    LedgerError::Fenced {
        what: what.to_string(),
        by,
    }
}

impl Ledger {
    /// The run this process began on this ledger (the holder of its leases).
    pub fn current_run(&self) -> Option<i64> {
        self.run.get()
    }

    /// This worker's `work/` folder (absolute), when the ledger knows its folders.
    pub(super) fn work_dir(&self) -> Option<String> {
        let dir = self.roots.resolve("work:");
        (dir != "work:").then_some(dir)
    }

    /// Whether a file another run holds right now, with a lease not run out.
    pub fn held_elsewhere(&self, id: i64, run: i64) -> Result<bool> {
        Ok(self.conn.query_row(
            &format!(
                "SELECT EXISTS(SELECT 1 FROM files f JOIN runs r ON r.id = f.lease_run \
                 WHERE f.id=?1 AND f.lease_run != ?2 AND f.lease_until > ?3 AND {LIVE_RUN})"
            ),
            params![id, run, now_ms()],
            |r| r.get(0),
        )?)
    }

    /// Whether file `id` was claimed into this worker's `work/` folder (on this host), so
    /// that its input not being there means it is lost — rather than lying in the folder
    /// of a worker elsewhere, which this one cannot see. Rows of runs that recorded no
    /// folder (older ledgers) count as this worker's.
    pub fn claimed_here(&self, id: i64) -> Result<bool> {
        let row: Option<(Option<String>, Option<String>)> = self
            .conn
            .query_row(
                "SELECT r.host, r.work FROM files f JOIN runs r ON r.id = f.run_id WHERE f.id=?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(match row {
            Some((Some(host), Some(work))) => {
                host == super::workers::host() && Some(work) == self.work_dir()
            }
            _ => true,
        })
    }

    /// Checks (and renews) this process's lease on `what`, if it holds one: `Fenced` if
    /// another run took it over (after a cut session, say).
    pub fn confirm_lease(&self, what: &Leased) -> Result<()> {
        self.immediate(|c| keep(c, &self.fences, what))
    }

    /// How long a lease lasts without renewal.
    ///
    /// On PostgreSQL the session is also cut by the server when it sits idle inside a
    /// transaction for that long: a process stopped mid-batch (SIGSTOP, a suspended VM)
    /// would otherwise keep the writer lock, and every other worker waiting, forever. Its
    /// lease has run out by then, so its batch was not its to commit anyway.
    pub fn set_lease_seconds(&mut self, secs: u64) -> Result<()> {
        self.fences.ttl_ms = (secs.max(1) * 1000) as i64;
        self.conn.set(&format!(
            "SET idle_in_transaction_session_timeout = {}",
            self.fences.ttl_ms
        ))?;
        Ok(())
    }

    /// Takes `what` for `run`: granted when nobody holds it, the run holds it already,
    /// the lease ran out, or its holder is not running any more (finished, or known dead:
    /// a holder on this host whose process is gone is buried first).
    pub fn take_lease(&mut self, what: &Leased, run: i64) -> Result<Taking> {
        let mut taking = self.try_take(what, run)?;
        if matches!(taking, Taking::Refused(_)) {
            self.bury_dead_runs()?;
            taking = self.try_take(what, run)?;
        }
        if let Taking::Taken { fence, .. } = taking {
            self.fences.held.insert(what.clone(), fence);
        }
        Ok(taking)
    }

    fn try_take(&self, what: &Leased, run: i64) -> Result<Taking> {
        let now = now_ms();
        let ttl = self.fences.ttl_ms;
        let (table, col, key) = (what.table(), what.key_col(), what.key());
        self.immediate(|c| {
            if let Leased::Named(name) = what {
                c.execute("INSERT OR IGNORE INTO leases(name) VALUES (?1)", [name])?;
            }
            let (before, from_running): (Option<i64>, bool) = c.query_row(
                &format!(
                    "SELECT t.lease_run, COALESCE({LIVE_RUN}, FALSE) \
                     FROM {table} t LEFT JOIN runs r ON r.id = t.lease_run WHERE t.{col}=?1"
                ),
                [&key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let fence: Option<i64> = c
                .query_row(
                    &format!(
                        "UPDATE {table} SET lease_run=?2, lease_until=?3, fence=fence+1 WHERE {col}=?1 AND \
                         (lease_run IS NULL OR lease_run=?2 OR lease_until<=?4 OR NOT EXISTS \
                          (SELECT 1 FROM runs r WHERE r.id={table}.lease_run AND {LIVE_RUN})) \
                         RETURNING fence"
                    ),
                    params![key, run, now + ttl, now],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(fence) = fence {
                let from = before.filter(|&b| b != run);
                return Ok(Taking::Taken {
                    fence,
                    from,
                    from_running,
                });
            }
            let holder = c.query_row(
                &format!(
                    "SELECT t.lease_run, r.host, r.pid, t.lease_until FROM {table} t \
                     LEFT JOIN runs r ON r.id = t.lease_run WHERE t.{col}=?1"
                ),
                [&key],
                |r| {
                    Ok(LeaseHolder {
                        run: r.get(0)?,
                        host: r.get(1)?,
                        pid: r.get(2)?,
                        secs_left: (r.get::<_, i64>(3)? - now) as f64 / 1000.0,
                    })
                },
            )?;
            Ok(Taking::Refused(holder))
        })
    }

    /// Lets go of `what` (a no-op if it was taken over meanwhile).
    ///
    /// Under the writer lock, as every lease write: on PostgreSQL each statement of a
    /// transaction sees what others committed before it, so a release landing between a
    /// take's refused update and its look at the holder left that look reading no holder
    /// at all, and the taking run failed ("NULL where an integer was expected").
    pub fn release_lease(&mut self, what: &Leased) -> Result<()> {
        if let Some(fence) = self.fences.held.remove(what) {
            self.immediate(|c| {
                c.execute(
                    &format!(
                        "UPDATE {} SET lease_run=NULL, lease_until=NULL WHERE {}=?1 AND fence=?2",
                        what.table(),
                        what.key_col()
                    ),
                    params![what.key(), fence],
                )
                .map_err(Into::into)
            })?;
        }
        Ok(())
    }

    /// Starts renewing the lease on `what` every third of its length, on a connection of
    /// its own, until the returned keeper is dropped. `None` when no lease is held.
    pub fn lease_keeper(&self, what: &Leased) -> Result<Option<LeaseKeeper>> {
        let Some(&fence) = self.fences.held.get(what) else {
            return Ok(None);
        };
        let conn = self.location.connect()?;
        let ttl_ms = self.fences.ttl_ms;
        let every = Duration::from_millis((ttl_ms / 3).max(100) as u64);
        let sql = what.renew_sql();
        let (owned, shown) = (what.clone(), what.to_string());
        let base = Instant::now();
        // Trusted until nine tenths of the lease from its last renewal's start, measured on
        // this process's monotonic clock: well before any other run may take it.
        let trusted =
            move |from: Instant| (from - base).as_millis() as u64 + (ttl_ms as u64) * 9 / 10;
        let until = Arc::new(AtomicU64::new(trusted(base)));
        let (stop, stopped) = mpsc::channel::<()>();
        let renewed = Arc::clone(&until);
        let thread = std::thread::Builder::new()
            .name("tallyman-lease".into())
            .spawn(move || loop {
                match stopped.recv_timeout(every) {
                    Err(RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
                let start = Instant::now();
                // A failed renewal is not fatal here: the next write's check decides.
                let r = conn.execute(&sql, params![owned.key(), fence, now_ms() + ttl_ms]);
                match r {
                    Ok(1) => renewed.store(trusted(start), Ordering::Relaxed),
                    _ => tracing::debug!(lease = %shown, "lease not renewed: {r:?}"),
                }
            })?;
        Ok(Some(LeaseKeeper {
            stop: Some(stop),
            thread: Some(thread),
            base,
            until,
        }))
    }
}

/// Renews a lease while it lives (see [`Ledger::lease_keeper`]).
pub struct LeaseKeeper {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    base: Instant,
    /// Milliseconds after `base` until which the lease is surely still ours.
    until: Arc<AtomicU64>,
}

impl LeaseKeeper {
    /// Whether the lease is surely still held. What the ledger cannot fence — a request to
    /// a target — is started only while this says so: a process that was stopped past its
    /// lease sees, on waking, that it ran out before it sends anything more.
    pub fn holds(&self) -> bool {
        (self.base.elapsed().as_millis() as u64) < self.until.load(Ordering::Relaxed)
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
#[path = "leases_tests.rs"]
mod tests;
