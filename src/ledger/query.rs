//! Read-only questions people ask of the ledger: rejects of a file, files by name, what
//! the recent runs did, totals by outcome.

use std::path::Path;

use super::db::params;

use super::model::{FileRow, OutcomeTotal, RejectRow, RunRow};
use super::rejected::{lines_of_documents, Lines};
use super::{Ledger, Result};

impl Ledger {
    /// Rejected lines of a file, in file order.
    pub fn rejects(&self, file_id: i64) -> Result<Vec<RejectRow>> {
        let mut out = Vec::new();
        let mut after = -1;
        loop {
            let page = self.rejects_after(file_id, after, 10_000)?;
            let Some((last, _)) = page.last() else {
                return Ok(out);
            };
            after = *last;
            out.extend(page.into_iter().map(|(_, r)| r));
        }
    }

    /// Up to `limit` rejected lines of a file after ordinal `after`, in file order, with
    /// their ordinals: a page, so a report of a million rejects is written in bounded
    /// memory. The file's name is read once, and each line's document comes with it (see
    /// `rejected.rs`), not joined to every line: the joins were a seventh of a page.
    pub fn rejects_after(
        &self,
        file_id: i64,
        after: i64,
        limit: i64,
    ) -> Result<Vec<(i64, RejectRow)>> {
        let Some((file, fingerprint)) = self.file_name_and_fingerprint(file_id)? else {
            return Ok(Vec::new());
        };
        lines_of_documents(
            &self.conn,
            file_id,
            after,
            limit,
            Lines::Rejected,
            |doc, l| {
                let row = RejectRow {
                    file: file.clone(),
                    fingerprint: fingerprint.clone(),
                    line: l.line,
                    byte: l.byte,
                    record: l.record,
                    locator: l.locator,
                    unit: doc.label.clone(),
                    key: l.key.or_else(|| doc.key.clone()),
                    field: l.field,
                    rule: l.rule,
                    value: l.value,
                    message: l.message,
                    original: l.raw,
                };
                (l.ordinal, row)
            },
        )
    }

    fn file_name_and_fingerprint(&self, file_id: i64) -> Result<Option<(String, String)>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT name, fingerprint FROM files WHERE id=?1")?;
        let found = st
            .query_map([file_id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .next()
            .transpose()?;
        Ok(found)
    }

    /// Files matching a name, a fingerprint prefix, a path or `#id`, newest first.
    pub fn find_files(&self, needle: &str) -> Result<Vec<FileRow>> {
        if let Some(id) = needle.strip_prefix('#').and_then(|n| n.parse::<i64>().ok()) {
            return self.files_where("WHERE id=?1", [id]);
        }
        let base = Path::new(needle)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| needle.to_string());
        // A path is looked for as given and as the ledger writes it (see `roots`).
        let stored = std::path::absolute(needle)
            .map(|p| self.roots.store(&p.to_string_lossy()))
            .unwrap_or_else(|_| needle.to_string());
        self.files_where(
            "WHERE name=?1 OR name=?2 OR (length(?3) >= 4 AND fingerprint LIKE ?3 || '%') \
             OR source_path IN (?1, ?4) OR work_path IN (?1, ?4) OR final_path IN (?1, ?4) ORDER BY id DESC",
            params![needle, base, needle, stored],
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

    /// Files and line totals by outcome (unfinished files by their state).
    pub fn outcome_totals(&self) -> Result<Vec<OutcomeTotal>> {
        let mut st = self.conn.prepare(
            "SELECT CASE WHEN state='held' THEN 'held' ELSE COALESCE(outcome, 'in_progress') END, COUNT(*), \
             SUM(lines_applied), SUM(lines_rejected), SUM(lines_duplicate), SUM(lines_skipped), SUM(lines_unmapped), SUM(lines_unchanged) \
             FROM files GROUP BY 1 ORDER BY 1",
        )?;
        let rows = st
            .query_map([], |r| {
                let n = |i| r.get::<_, Option<i64>>(i).map(|v| v.unwrap_or(0));
                Ok(OutcomeTotal {
                    outcome: r.get(0)?,
                    files: r.get(1)?,
                    lines_applied: n(2)?,
                    lines_rejected: n(3)?,
                    lines_duplicate: n(4)?,
                    lines_skipped: n(5)?,
                    lines_unmapped: n(6)?,
                    lines_unchanged: n(7)?,
                })
            })?
            .collect::<super::db::Result<Vec<_>>>()?;
        Ok(rows)
    }

    pub fn recent_runs(&self, limit: i64) -> Result<Vec<RunRow>> {
        let mut st = self.conn.prepare(
            "SELECT id, command, started_at, finished_at, status, files_done, files_review, error \
             FROM runs ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = st
            .query_map([limit], |r| {
                Ok(RunRow {
                    run: r.get(0)?,
                    command: r.get(1)?,
                    started_at: r.get(2)?,
                    finished_at: r.get(3)?,
                    status: r.get(4)?,
                    files: r.get(5)?,
                    needs_review: r.get(6)?,
                    error: r.get(7)?,
                })
            })?
            .collect::<super::db::Result<Vec<_>>>()?;
        Ok(rows)
    }
}
