//! Read-only questions people ask of the ledger: rejects of a file, files by name, what
//! the recent runs did, totals by outcome.

use std::path::Path;

use super::db::params;

use super::model::{FileRow, OutcomeTotal, RejectRow, RunRow};
use super::rejected::Lines;
use super::{Ledger, Result};

/// A rejected line as its page reads it: its document's seq, its ordinal, and its row
/// without the file's and the document's names.
type PageLine = (i64, i64, RejectRow);

/// A document's label and key.
type DocNames = (String, Option<String>);

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
    /// memory. The file's name and its lines' document are read once each, not joined to
    /// every line: a document's lines come together, and the joins were a seventh of a page.
    pub fn rejects_after(
        &self,
        file_id: i64,
        after: i64,
        limit: i64,
    ) -> Result<Vec<(i64, RejectRow)>> {
        let Some((file, fingerprint)) = self.file_name_and_fingerprint(file_id)? else {
            return Ok(Vec::new());
        };
        let mut after = after;
        loop {
            let (lines, last) = self.rejected_lines_after(file_id, after, limit)?;
            let page = self.with_documents(file_id, lines, &file, &fingerprint)?;
            // A page whose lines all lack a document row must not end the paging early.
            match last {
                Some(last) if page.is_empty() => after = last,
                _ => return Ok(page),
            }
        }
    }

    /// A page of a file's rejected lines, and its last ordinal when the page was full.
    fn rejected_lines_after(
        &self,
        file_id: i64,
        after: i64,
        limit: i64,
    ) -> Result<(Vec<PageLine>, Option<i64>)> {
        let lines: Vec<PageLine> =
            super::rejected::rejected_lines(&self.conn, file_id, after, limit, Lines::Rejected)?
                .into_iter()
                .map(|l| {
                    let row = RejectRow {
                        file: String::new(),
                        fingerprint: String::new(),
                        line: l.line,
                        byte: l.byte,
                        record: l.record,
                        locator: l.locator,
                        unit: String::new(),
                        key: l.key,
                        field: l.field,
                        rule: l.rule,
                        value: l.value,
                        message: l.message,
                        original: l.raw,
                    };
                    (l.unit_seq, l.ordinal, row)
                })
                .collect();
        let full = lines.len() as i64 >= limit;
        let last = lines.last().map(|(_, o, _)| *o).filter(|_| full);
        Ok((lines, last))
    }

    /// The rows with their file's and document's names; a line whose document has no row
    /// is left out, as a join would leave it out.
    fn with_documents(
        &self,
        file_id: i64,
        lines: Vec<PageLine>,
        file: &str,
        fingerprint: &str,
    ) -> Result<Vec<(i64, RejectRow)>> {
        let mut unit_st = self
            .conn
            .prepare_cached("SELECT label, key FROM units WHERE file_id=?1 AND seq=?2")?;
        // The last document looked up: its seq, and its label and key if it has a row.
        let mut unit: Option<(i64, Option<DocNames>)> = None;
        let mut out = Vec::with_capacity(lines.len());
        for (seq, ordinal, mut row) in lines {
            if unit.as_ref().is_none_or(|(s, _)| *s != seq) {
                let found = unit_st
                    .query_map(params![file_id, seq], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .next()
                    .transpose()?;
                unit = Some((seq, found));
            }
            let Some((_, Some((label, key)))) = &unit else {
                continue;
            };
            file.clone_into(&mut row.file);
            fingerprint.clone_into(&mut row.fingerprint);
            row.unit.clone_from(label);
            if row.key.is_none() {
                row.key.clone_from(key);
            }
            out.push((ordinal, row));
        }
        Ok(out)
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
