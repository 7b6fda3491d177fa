//! Who is working: every `run`, `watch`, `process` or `deliver` is a row in `runs`, with
//! its host and pid, when it was last seen working (a batch committed, a file taken or
//! let go) and the file it holds. `status` and the console list the ones still running,
//! with how long since each was seen — the lease age a shared ledger will expire on — and
//! whether the process still exists when it runs on this host.

use super::db::params;

use super::{now, Ledger, Result};

/// A worker as `status` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WorkerRow {
    pub run: i64,
    pub command: String,
    pub host: Option<String>,
    pub pid: i64,
    pub started_at: String,
    pub seen_at: Option<String>,
    /// Seconds since it was last seen working.
    pub seen_secs_ago: Option<f64>,
    /// The file it holds, if any.
    pub file_id: Option<i64>,
    pub file_name: Option<String>,
    /// `Some(false)` when it runs on this host and its process is gone (killed); `None`
    /// when that cannot be told from here.
    pub alive: Option<bool>,
    /// Seconds left on its lease of the file it holds (negative: ran out; another run
    /// takes the file over). See leases.rs.
    pub lease_secs_left: Option<f64>,
}

/// This host's name (what a worker on it writes in `runs.host`).
pub fn host() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that much.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

impl Ledger {
    /// Records that a run is working, and on which file (`None` between files).
    pub fn run_seen(&self, run: i64, file_id: Option<i64>) -> Result<()> {
        self.conn
            .prepare_cached("UPDATE runs SET seen_at=?2, file_id=?3 WHERE id=?1")?
            .execute(params![run, now(), file_id])?;
        Ok(())
    }

    /// The runs not finished, newest first.
    pub fn workers(&self) -> Result<Vec<WorkerRow>> {
        let here = host();
        let mut st = self.conn.prepare(
            "SELECT r.id, r.command, r.host, r.pid, r.started_at, r.seen_at, r.file_id, f.name, \
             CASE WHEN f.lease_run = r.id THEN f.lease_until END \
             FROM runs r LEFT JOIN files f ON f.id = r.file_id \
             WHERE r.finished_at IS NULL AND r.status = 'running' ORDER BY r.id DESC",
        )?;
        let now = chrono::Utc::now();
        let now_ms = now.timestamp_millis();
        let rows = st
            .query_map([], |r| {
                let host: Option<String> = r.get(2)?;
                let pid: i64 = r.get(3)?;
                let seen_at: Option<String> = r.get(5)?;
                Ok(WorkerRow {
                    run: r.get(0)?,
                    command: r.get(1)?,
                    alive: (host.as_deref() == Some(here.as_str()))
                        .then(|| u32::try_from(pid).is_ok_and(crate::fsutil::process_alive)),
                    host,
                    pid,
                    started_at: r.get(4)?,
                    seen_secs_ago: seen_at
                        .as_deref()
                        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                        .map(|t| {
                            (now - t.with_timezone(&chrono::Utc)).num_milliseconds() as f64 / 1000.0
                        }),
                    seen_at,
                    file_id: r.get(6)?,
                    file_name: r.get(7)?,
                    lease_secs_left: r
                        .get::<_, Option<i64>>(8)?
                        .map(|until| (until - now_ms) as f64 / 1000.0),
                })
            })?
            .collect::<super::db::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Marks runs of this host whose process is gone (killed, or the machine restarted)
    /// as `died`, so the list of workers shows only the living and the unknown.
    pub(super) fn bury_dead_runs(&self) -> Result<()> {
        let dead: Vec<i64> = self
            .workers()?
            .into_iter()
            .filter(|w| w.alive == Some(false))
            .map(|w| w.run)
            .collect();
        for run in dead {
            self.conn.execute(
                "UPDATE runs SET status='died', finished_at=?2, file_id=NULL WHERE id=?1 AND finished_at IS NULL",
                params![run, now()],
            )?;
        }
        Ok(())
    }
}
