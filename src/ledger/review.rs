//! What people do with the ledger's findings: the audit trail of every action that changes
//! state (who, when, what, why, what it touched), rejects resolved — by a correction that
//! applied the fixed document, or by a person with a note — and samples of the health
//! figures over time for the dashboard's charts.

use super::db::params;
use serde::Serialize;

use super::{now, Ledger, Result};

/// One action that changed state, as recorded.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRow {
    pub id: i64,
    pub at: String,
    /// The OS user, or the console token's name.
    pub actor: String,
    /// `process --force`, `retry`, `replay`, `resubmit`, `resolve`, `release`, `reveal`, ...
    pub action: String,
    pub reason: Option<String>,
    /// What it was about: a file, a target, a business key.
    pub subject: Option<String>,
    /// What it affected, as JSON (counts, ids).
    pub detail: Option<serde_json::Value>,
}

/// Rejected documents of decided files, open and resolved.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct RejectTally {
    pub open: i64,
    pub resolved: i64,
}

impl Ledger {
    /// Records an action (call it in the same breath as the action itself).
    pub fn audit(
        &self,
        actor: &str,
        action: &str,
        reason: Option<&str>,
        subject: Option<&str>,
        detail: &serde_json::Value,
    ) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO audit(at, actor, action, reason, subject, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![now(), actor, action, reason, subject, detail.to_string()],
        )?;
        Ok(self.conn.last_insert_rowid()?)
    }

    /// The newest `limit` audit rows, newest first.
    pub fn audit_log(&self, limit: i64) -> Result<Vec<AuditRow>> {
        let mut st = self.conn.prepare(
            "SELECT id, at, actor, action, reason, subject, detail FROM audit ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = st
            .query_map([limit], audit_row)?
            .collect::<super::db::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Marks a file as the correction of another (its rejected documents, fixed).
    pub fn set_correction_of(&self, id: i64, original: i64) -> Result<()> {
        self.conn.execute(
            "UPDATE files SET correction_of=?2 WHERE id=?1",
            params![id, original],
        )?;
        Ok(())
    }

    /// Records where a file's corrections file was written.
    pub fn set_corrections_path(&self, id: i64, path: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE files SET corrections_path=?2 WHERE id=?1",
            params![id, self.roots.store(path)],
        )?;
        Ok(())
    }

    /// Marks rejected documents of a file resolved by a person (`seqs` empty: all of them
    /// still open). Returns how many were resolved.
    pub fn resolve_units(
        &self,
        file_id: i64,
        seqs: &[i64],
        actor: &str,
        note: &str,
    ) -> Result<usize> {
        let list = serde_json::to_string(seqs)?;
        Ok(self.conn.execute(
            "INSERT OR IGNORE INTO resolutions(file_id, unit_seq, resolved_at, how, actor, note) \
             SELECT u.file_id, u.seq, ?2, 'resolved', ?3, ?4 FROM units u WHERE u.file_id = ?1 AND u.status = 'rejected' \
             AND (json_array_length(?5) = 0 OR u.seq IN (SELECT CAST(value AS BIGINT) FROM json_each(?5)))",
            params![file_id, now(), actor, note, list],
        )?)
    }

    /// Open and resolved rejected documents over every decided file (or one file).
    pub fn reject_tally(&self, file_id: Option<i64>) -> Result<RejectTally> {
        let (open, resolved) = self.conn.query_row(
            "SELECT COUNT(*) - COUNT(r.file_id), COUNT(r.file_id) \
             FROM units u JOIN files f ON f.id = u.file_id \
             LEFT JOIN resolutions r ON r.file_id = u.file_id AND r.unit_seq = u.seq \
             WHERE u.status = 'rejected' AND f.state = 'done' AND (CAST(?1 AS BIGINT) IS NULL OR u.file_id = ?1)",
            [file_id],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
        )?;
        Ok(RejectTally { open, resolved })
    }

    /// Stores samples of health figures (`name`, `labels`, value) taken now.
    pub fn sample_metrics(&self, samples: &[(&str, &str, f64)]) -> Result<()> {
        let at = now();
        let mut st = self.conn.prepare_cached(
            "INSERT INTO metric_samples(at, name, labels, value) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (name, labels, at) DO UPDATE SET value=excluded.value",
        )?;
        for (name, labels, value) in samples {
            st.execute(params![at, name, labels, value])?;
        }
        Ok(())
    }

    /// A figure's samples since `since` (ISO time), oldest first.
    pub fn metric_series(
        &self,
        name: &str,
        labels: &str,
        since: &str,
    ) -> Result<Vec<(String, f64)>> {
        let mut st = self.conn.prepare(
            "SELECT at, value FROM metric_samples WHERE name=?1 AND labels=?2 AND at >= ?3 ORDER BY at",
        )?;
        let rows = st
            .query_map(params![name, labels, since], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<super::db::Result<Vec<_>>>()?;
        Ok(rows)
    }
}

/// An `audit` row read as `SELECT id, at, actor, action, reason, subject, detail`.
pub(super) fn audit_row(r: &super::db::Row<'_>) -> super::db::Result<AuditRow> {
    let detail: Option<String> = r.get(6)?;
    Ok(AuditRow {
        id: r.get(0)?,
        at: r.get(1)?,
        actor: r.get(2)?,
        action: r.get(3)?,
        reason: r.get(4)?,
        subject: r.get(5)?,
        detail: detail.and_then(|d| serde_json::from_str(&d).ok()),
    })
}

/// Units of a correction [`resolve_corrected`] reads at a time.
const CORRECTED_WINDOW: usize = 10_000;

/// In a correction's decision: the rejected documents whose business key the correction
/// applied (or found applied already) are resolved in the file it corrects and in every
/// file up the chain (a correction of a correction closes the original's rejects too).
pub(super) fn resolve_corrected(tx: &super::db::Transaction, file_id: i64) -> Result<()> {
    let is_correction: bool = tx.query_row(
        "SELECT correction_of IS NOT NULL FROM files WHERE id = ?1",
        [file_id],
        |r| r.get(0),
    )?;
    if !is_correction {
        return Ok(());
    }
    // The correction's keys, from its rows and its packed runs (see runs.rs), a window of
    // units at a time: a correction may be as large as the file it corrects.
    let mut from = 0;
    loop {
        let units = super::runs::units_between(tx, file_id, from, i64::MAX, CORRECTED_WINDOW)?;
        let Some(last) = units.last().map(|u| u.seq) else {
            break;
        };
        let keys: Vec<String> = units
            .into_iter()
            .filter(|u| matches!(u.status.as_str(), "applied" | "duplicate" | "unchanged"))
            .filter_map(|u| u.key)
            .collect();
        tx.execute(
            "WITH RECURSIVE chain(id) AS ( \
               SELECT correction_of FROM files WHERE id = ?1 AND correction_of IS NOT NULL \
               UNION SELECT f.correction_of FROM files f JOIN chain c ON f.id = c.id WHERE f.correction_of IS NOT NULL) \
             INSERT OR IGNORE INTO resolutions(file_id, unit_seq, resolved_at, how, by_file_id) \
             SELECT o.file_id, o.seq, ?2, 'corrected', ?1 FROM units o \
             WHERE o.file_id IN (SELECT id FROM chain) AND o.status = 'rejected' AND o.key IS NOT NULL AND o.key IN \
               (SELECT CAST(value AS TEXT) FROM json_each(?3))",
            params![file_id, now(), serde_json::to_string(&keys)?],
        )?;
        from = last + 1;
    }
    Ok(())
}
