//! The questions the operations console and the metrics ask of the ledger: health figures
//! over a time window (documents and rejects, deliveries, sync latency, reconciliations,
//! samples), files with their lines and deliveries, a business key's versions and attempts,
//! and the audit trail page by page. They only read, so the console serves while a run
//! writes (WAL). The exceptions queue's questions are in `console_review.rs`.

use super::db::{params, OptionalExtension};

use super::console_model::*;
use super::model::{file_row, FileRow, FILE_COLS, FILE_COL_COUNT};
use super::{Ledger, Result};
use crate::canonical::Entity;

/// Every entity as an SQL list (`'order', 'invoice', …`): versions are keyed by entity
/// first, so a question about a key of any entity names them all to search the primary
/// key instead of scanning every version.
fn entities_in() -> String {
    super::db::quoted_list(Entity::ALL.map(Entity::as_str))
}

/// The targets that have deliveries, one index seek each (a loose scan of the
/// `(target, entity, key, version)` key) rather than a read of every delivery.
pub(super) const TARGETS_SQL: &str = "WITH RECURSIVE t(target) AS ( \
     SELECT MIN(target) FROM deliveries \
     UNION ALL SELECT (SELECT MIN(n.target) FROM deliveries n WHERE n.target > t.target) FROM t \
     WHERE t.target IS NOT NULL) \
     SELECT target FROM t WHERE target IS NOT NULL";

/// Every version of a key, of one entity (`?1`) or any (`?1` NULL): `?2` the key.
pub(super) fn key_versions_sql() -> String {
    format!(
        "SELECT v.entity, v.key, v.version, v.hash, v.data, v.file_id, f.name, v.unit_seq, v.ordinal, COALESCE(f.finished_at, f.claimed_at, '') \
         FROM versions v LEFT JOIN files f ON f.id = v.file_id \
         WHERE v.entity IN ({}) AND v.key = ?2 AND (CAST(?1 AS TEXT) IS NULL OR v.entity = ?1) \
         ORDER BY v.entity, v.version DESC",
        entities_in()
    )
}

/// One entity's (`?1`) distinct keys from `?2` up to `?3`, at most `?4`.
pub(super) const KEYS_STARTING_SQL: &str =
    "SELECT DISTINCT key FROM versions WHERE entity = ?1 AND key >= ?2 AND key < ?3 \
     ORDER BY key LIMIT ?4";

/// Documents carrying key `?1` that were not applied, through `units_key`, which indexes
/// only them (migration 13). Applied ones are found by [`key_documents_made_sql`].
pub(super) const KEY_DOCUMENTS_HELD_SQL: &str =
    "SELECT u.file_id, f.name, u.seq, u.label, u.status FROM units u JOIN files f ON f.id = u.file_id \
     WHERE u.key = ?1 AND u.status <> 'applied' ORDER BY 1 DESC, 3 LIMIT 200";

/// The units that made a version of key `?1` (a document of several records carries each
/// of their keys), newest file first; their labels are their units' (see runs.rs, an
/// applied unit's row may be packed).
pub(super) fn key_documents_made_sql() -> String {
    format!(
        "SELECT DISTINCT v.file_id, f.name, v.unit_seq FROM versions v JOIN files f ON f.id = v.file_id \
         WHERE v.entity IN ({}) AND v.key = ?1 ORDER BY 1 DESC, 3 LIMIT 200",
        entities_in()
    )
}

impl Ledger {
    /// Documents, rejects and deliveries since `since` (ISO time).
    pub fn window_totals(&self, since: &str) -> Result<WindowTotals> {
        let (documents, rejected_documents) = self.conn.query_row(
            "SELECT COALESCE(SUM(units_applied + units_rejected + units_duplicate + units_unmapped + units_unchanged), 0), \
             COALESCE(SUM(units_rejected), 0) FROM files WHERE state='done' AND finished_at >= ?1",
            [since],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let (deliveries, dead_letters) = self.conn.query_row(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN state='dead' THEN 1 ELSE 0 END), 0) FROM deliveries \
             WHERE created_at >= ?1 AND state != 'superseded'",
            [since],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let delivered = self.conn.query_row(
            "SELECT COUNT(*) FROM deliveries WHERE delivered_at >= ?1",
            [since],
            |r| r.get(0),
        )?;
        Ok(WindowTotals {
            documents,
            rejected_documents,
            deliveries,
            dead_letters,
            delivered,
        })
    }

    /// Documents (`total`) and rejected documents (`part`) of decided files per bucket:
    /// `prefix` is 13 for hours, 10 for days.
    pub fn documents_by_bucket(&self, since: &str, prefix: usize) -> Result<Vec<Bucket>> {
        self.buckets(
            "SELECT substr(finished_at, 1, ?2), \
             SUM(units_applied + units_rejected + units_duplicate + units_unmapped + units_unchanged), SUM(units_rejected) \
             FROM files WHERE state='done' AND finished_at >= ?1 GROUP BY 1 ORDER BY 1",
            since,
            prefix,
        )
    }

    /// Deliveries confirmed (`total`) per bucket; `part` is always 0.
    pub fn delivered_by_bucket(&self, since: &str, prefix: usize) -> Result<Vec<Bucket>> {
        self.buckets(
            "SELECT substr(delivered_at, 1, ?2), COUNT(*), 0 FROM deliveries \
             WHERE delivered_at >= ?1 GROUP BY 1 ORDER BY 1",
            since,
            prefix,
        )
    }

    /// Deliveries queued (`total`) and of those now dead (`part`) per bucket.
    pub fn deliveries_by_bucket(&self, since: &str, prefix: usize) -> Result<Vec<Bucket>> {
        self.buckets(
            "SELECT substr(created_at, 1, ?2), COUNT(*), SUM(CASE WHEN state='dead' THEN 1 ELSE 0 END) FROM deliveries \
             WHERE created_at >= ?1 AND state != 'superseded' GROUP BY 1 ORDER BY 1",
            since,
            prefix,
        )
    }

    fn buckets(&self, sql: &str, since: &str, prefix: usize) -> Result<Vec<Bucket>> {
        let mut st = self.conn.prepare(sql)?;
        let rows = st
            .query_map(params![since, prefix as i64], |r| {
                Ok(Bucket {
                    at: r.get(0)?,
                    total: r.get::<_, Option<i64>>(1)?.unwrap_or(0),
                    part: r.get::<_, Option<i64>>(2)?.unwrap_or(0),
                })
            })?
            .collect::<super::db::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Sync latencies (file settled → delivered, seconds) of deliveries confirmed since
    /// `since`, with their delivery time, oldest first; at most `limit`, the newest kept.
    pub fn sync_latencies(
        &self,
        target: Option<&str>,
        since: &str,
        limit: i64,
    ) -> Result<Vec<(String, f64)>> {
        let mut st = self.conn.prepare(
            "SELECT at, s FROM (SELECT delivered_at AS at, (julianday(delivered_at) - julianday(settled_at)) * 86400 AS s \
             FROM deliveries WHERE state='delivered' AND settled_at IS NOT NULL AND delivered_at >= ?1 \
             AND (CAST(?2 AS TEXT) IS NULL OR target = ?2) ORDER BY delivered_at DESC LIMIT ?3) AS w ORDER BY at",
        )?;
        let rows = st
            .query_map(params![since, target, limit], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<super::db::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Deliveries ever confirmed, per target.
    pub fn delivered_totals(&self) -> Result<Vec<(String, i64)>> {
        let mut st = self.conn.prepare(
            "SELECT target, COUNT(*) FROM deliveries WHERE state='delivered' GROUP BY target ORDER BY target",
        )?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<super::db::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Files by where they stand: `held`, `failed`, `in_progress`, `rejected` (whole).
    pub fn file_state_counts(&self) -> Result<Vec<(String, i64)>> {
        let mut st = self.conn.prepare(
            "SELECT CASE WHEN state='held' THEN 'held' WHEN state != 'done' THEN 'in_progress' ELSE outcome END, COUNT(*) \
             FROM files WHERE state < 'done' OR state > 'done' OR (state = 'done' AND outcome IN ('failed', 'rejected')) \
             GROUP BY 1 ORDER BY 1",
        )?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<super::db::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// When the newest run started and how it ended (`running` while it goes on).
    pub fn last_run(&self) -> Result<Option<(String, String)>> {
        Ok(self
            .conn
            .query_row(
                "SELECT started_at, status FROM runs ORDER BY id DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    /// The newest reconciliation of each target.
    pub fn latest_reconciliations(&self) -> Result<Vec<ReconRow>> {
        self.recon_where(
            "WHERE id IN (SELECT MAX(id) FROM reconciliations GROUP BY target) ORDER BY target",
            [],
        )
    }

    /// Reconciliations since `since`, oldest first.
    pub fn reconciliations_since(&self, since: &str) -> Result<Vec<ReconRow>> {
        self.recon_where("WHERE at >= ?1 ORDER BY at, id", [since])
    }

    fn recon_where(&self, tail: &str, p: impl super::db::Params) -> Result<Vec<ReconRow>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT id, target, at, remote_records, missing, orphans, drift, report_path FROM reconciliations {tail}"
        ))?;
        let rows = st
            .query_map(p, |r| {
                Ok(ReconRow {
                    id: r.get(0)?,
                    target: r.get(1)?,
                    at: r.get(2)?,
                    remote_records: r.get(3)?,
                    missing: r.get(4)?,
                    orphans: r.get(5)?,
                    drift: r.get(6)?,
                    report_path: self.roots.resolve_opt(r.get(7)?),
                })
            })?
            .collect::<super::db::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// When a figure was last sampled (to sample at most so often).
    pub fn last_sample_at(&self, name: &str) -> Result<Option<String>> {
        Ok(self.conn.query_row(
            "SELECT MAX(at) FROM metric_samples WHERE name=?1",
            [name],
            |r| r.get(0),
        )?)
    }

    /// Drops samples older than `before` (ISO time); returns how many.
    pub fn prune_metric_samples(&self, before: &str) -> Result<usize> {
        Ok(self
            .conn
            .execute("DELETE FROM metric_samples WHERE at < ?1", [before])?)
    }

    /// Files newest first, optionally only one outcome (`held`, `in_progress` or an
    /// outcome), with their acknowledgements.
    pub fn file_list(
        &self,
        outcome: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<FileListRow>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {FILE_COLS}, (SELECT COUNT(*) FROM acks a WHERE a.file_id = files.id), \
             (SELECT GROUP_CONCAT(DISTINCT a.partner) FROM acks a WHERE a.file_id = files.id) FROM files \
             WHERE CAST(?1 AS TEXT) IS NULL OR (CASE WHEN state='held' THEN 'held' WHEN state != 'done' THEN 'in_progress' ELSE outcome END) = ?1 \
             ORDER BY id DESC LIMIT ?2 OFFSET ?3"
        ))?;
        let rows = st
            .query_map(params![outcome, limit, offset], |r| {
                Ok(FileListRow {
                    file: self.resolved(file_row(r)?),
                    acks: r.get(FILE_COL_COUNT)?,
                    partners: r.get(FILE_COL_COUNT + 1)?,
                })
            })?
            .collect::<super::db::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// The file with this id, if there is one.
    pub fn file_opt(&self, id: i64) -> Result<Option<FileRow>> {
        Ok(self.files_where("WHERE id=?1", [id])?.into_iter().next())
    }

    /// Files that correct `id` (sent again with its rejected documents fixed).
    pub fn corrections_of(&self, id: i64) -> Result<Vec<FileRow>> {
        self.files_where("WHERE correction_of=?1 ORDER BY id", [id])
    }

    /// A file's lines from `from` (ordinal), at most `limit`; with `rejected_only`, only
    /// rejected ones. Lines without a row of their own are told from their unit's.
    pub fn file_lines(
        &self,
        file_id: i64,
        from: i64,
        limit: i64,
        rejected_only: bool,
    ) -> Result<Vec<LineView>> {
        if rejected_only {
            // Lines of documents rejected after they were committed have no rows.
            let after = from.saturating_sub(1);
            return super::rejected::rejected_lines(
                &self.conn,
                file_id,
                after,
                limit,
                super::rejected::Lines::Rejected,
            );
        }
        let mut st = self.conn.prepare(&format!(
            "SELECT {} FROM lines WHERE file_id=?1 AND ordinal >= ?2 ORDER BY ordinal LIMIT ?3",
            super::rejected::LINE_COLS
        ))?;
        let mut rows = st
            .query_map(params![file_id, from, limit], super::rejected::line_view)?
            .collect::<super::db::Result<Vec<_>>>()?;
        let have: std::collections::HashSet<i64> = rows.iter().map(|l| l.ordinal).collect();
        let implied = super::spans::implied_lines(&self.conn, file_id, from, limit)?;
        rows.extend(implied.into_iter().filter(|l| !have.contains(&l.ordinal)));
        rows.sort_by_key(|l| l.ordinal);
        rows.truncate(limit.max(0) as usize);
        Ok(rows)
    }

    /// The line count of a file in the ledger.
    pub fn line_count(&self, file_id: i64) -> Result<i64> {
        let (units, rows): (i64, i64) = self.conn.query_row(
            "SELECT (SELECT COALESCE(SUM(line_count), 0) FROM units WHERE file_id=?1) \
             + (SELECT COALESCE(SUM(lines), 0) FROM unit_runs WHERE file_id=?1), \
             (SELECT COUNT(*) FROM lines WHERE file_id=?1)",
            [file_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(units.max(rows))
    }

    /// Where a line's original bytes are, for revealing what the ledger keeps masked.
    pub fn line_source(&self, file_id: i64, ordinal: i64) -> Result<Option<LineSource>> {
        let mut two = self.file_lines(file_id, ordinal, 2, false)?.into_iter();
        let Some(l) = two.next().filter(|l| l.ordinal == ordinal) else {
            return Ok(None);
        };
        let end = two.next().map(|n| n.byte);
        let (path, format) = self.conn.query_row(
            "SELECT COALESCE(final_path, work_path), format FROM files WHERE id=?1",
            [file_id],
            |r| Ok((r.get::<_, Option<String>>(0)?, r.get(1)?)),
        )?;
        let path = self.roots.resolve_opt(path);
        let cell = l
            .locator
            .as_deref()
            .is_some_and(crate::unit::is_cell_locator);
        Ok(Some(LineSource {
            path,
            byte: l.byte,
            end,
            has_byte: !cell && (l.byte > 0 || ordinal == 0),
            format,
        }))
    }

    /// A file's deliveries, at most `limit`.
    pub fn file_deliveries(&self, file_id: i64, limit: i64) -> Result<Vec<DeliveryView>> {
        self.deliveries_where("d.file_id = ?1", [file_id], limit)
    }

    /// How many of a file's deliveries are in each state, per target.
    pub fn file_delivery_counts(&self, file_id: i64) -> Result<Vec<StateCount>> {
        let mut st = self.conn.prepare(
            "SELECT target, state, COUNT(*) FROM deliveries WHERE file_id=?1 GROUP BY 1, 2 ORDER BY 1, 2",
        )?;
        let rows = st
            .query_map([file_id], |r| {
                Ok(StateCount {
                    target: r.get(0)?,
                    state: r.get(1)?,
                    count: r.get(2)?,
                })
            })?
            .collect::<super::db::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Every delivery of a business key, newest version first.
    pub fn key_deliveries(&self, entity: &str, key: &str) -> Result<Vec<DeliveryView>> {
        // Deliveries are keyed by target first: name every target (found by a seek per
        // target, see `TARGETS_SQL`) to search that key instead of scanning them all.
        self.deliveries_where(
            &format!("d.target IN ({TARGETS_SQL}) AND d.entity = ?1 AND d.key = ?2"),
            params![entity, key],
            10_000,
        )
    }

    pub(super) fn deliveries_where(
        &self,
        cond: &str,
        p: impl super::db::Params,
        limit: i64,
    ) -> Result<Vec<DeliveryView>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT d.id, d.target, d.entity, d.key, d.version, d.state, d.attempts, d.last_status, d.last_error, \
             d.created_at, d.delivered_at, (julianday(d.delivered_at) - julianday(d.settled_at)) * 86400 \
             FROM deliveries d WHERE {cond} ORDER BY d.version DESC, d.id LIMIT {limit}"
        ))?;
        let rows = st
            .query_map(p, |r| {
                Ok(DeliveryView {
                    id: r.get(0)?,
                    target: r.get(1)?,
                    entity: r.get(2)?,
                    key: r.get(3)?,
                    version: r.get(4)?,
                    state: r.get(5)?,
                    attempts: r.get(6)?,
                    last_status: r.get(7)?,
                    last_error: r.get(8)?,
                    created_at: r.get(9)?,
                    delivered_at: r.get(10)?,
                    latency_seconds: r.get(11)?,
                })
            })?
            .collect::<super::db::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// The attempts of a delivery, with their times, oldest first.
    pub fn attempt_views(&self, delivery_id: i64) -> Result<Vec<AttemptView>> {
        let mut st = self.conn.prepare(
            "SELECT n, started_at, operation, status, outcome, latency_ms, response FROM attempts \
             WHERE delivery_id=?1 ORDER BY n",
        )?;
        let rows = st
            .query_map([delivery_id], |r| {
                Ok(AttemptView {
                    n: r.get(0)?,
                    started_at: r.get(1)?,
                    operation: r.get(2)?,
                    status: r.get(3)?,
                    outcome: r.get(4)?,
                    latency_ms: r.get(5)?,
                    response: r.get(6)?,
                })
            })?
            .collect::<super::db::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Every version of a business key (of any entity when `entity` is `None`), newest
    /// first.
    pub fn key_versions(&self, entity: Option<&str>, key: &str) -> Result<Vec<VersionView>> {
        let mut st = self.conn.prepare(&key_versions_sql())?;
        let rows = st
            .query_map(params![entity, key], |r| {
                let data: Option<String> = r.get(4)?;
                Ok(VersionView {
                    entity: r.get(0)?,
                    key: r.get(1)?,
                    version: r.get(2)?,
                    hash: r.get::<_, super::model::HashHex>(3)?.0,
                    data: data.and_then(|d| serde_json::from_str(&d).ok()),
                    file_id: r.get(5)?,
                    file_name: r.get(6)?,
                    unit_seq: r.get(7)?,
                    ordinal: r.get(8)?,
                    created_at: r.get(9)?,
                })
            })?
            .collect::<super::db::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Business keys starting with `prefix`, as `(entity, key)`, at most `limit`.
    pub fn keys_starting(&self, prefix: &str, limit: i64) -> Result<Vec<(String, String)>> {
        // The range's end is the prefix and the last code point. Versions are keyed by
        // entity first: one range search of the primary key per entity, each stopping at
        // `limit`, instead of one scan of every version for a range across entities.
        let end = format!("{prefix}\u{10FFFF}");
        let mut st = self.conn.prepare(KEYS_STARTING_SQL)?;
        let mut found = Vec::new();
        for entity in Entity::ALL.map(Entity::as_str) {
            let keys = st
                .query_map(params![entity, prefix, end, limit], |r| {
                    r.get::<_, String>(0)
                })?
                .collect::<super::db::Result<Vec<_>>>()?;
            found.extend(keys.into_iter().map(|k| (entity.to_string(), k)));
        }
        found.sort_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
        found.truncate(usize::try_from(limit).unwrap_or(0));
        Ok(found)
    }

    /// Documents of any file that carry this business key (rejected ones included), as
    /// newest file first.
    pub fn key_documents(&self, key: &str) -> Result<Vec<KeyDocument>> {
        let mut docs = self
            .conn
            .prepare_cached(KEY_DOCUMENTS_HELD_SQL)?
            .query_map([key], |r| {
                Ok(KeyDocument {
                    file_id: r.get(0)?,
                    file_name: r.get(1)?,
                    seq: r.get(2)?,
                    label: r.get(3)?,
                    status: r.get(4)?,
                })
            })?
            .collect::<super::db::Result<Vec<_>>>()?;
        let made = self
            .conn
            .prepare_cached(&key_documents_made_sql())?
            .query_map([key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<super::db::Result<Vec<(i64, String, i64)>>>()?;
        // One reader for all: a file's documents of one key often share a packed run.
        let mut units = super::runs::UnitReader::new(&self.conn);
        for (file_id, file_name, seq) in made {
            let unit = units.get(file_id, seq)?;
            if let Some(u) = unit.filter(|u| u.status == "applied") {
                docs.push(KeyDocument {
                    file_id,
                    file_name,
                    seq,
                    label: u.label,
                    status: u.status,
                });
            }
        }
        docs.sort_by(|a, b| b.file_id.cmp(&a.file_id).then(a.seq.cmp(&b.seq)));
        docs.dedup_by(|a, b| (a.file_id, a.seq) == (b.file_id, b.seq));
        docs.truncate(200);
        Ok(docs)
    }

    /// One audit row.
    pub fn audit_entry(&self, id: i64) -> Result<Option<super::AuditRow>> {
        Ok(self.audit_log_where("WHERE id = ?1", params![id], 1)?.pop())
    }

    /// Audit rows older than `before_id` (all when `None`), newest first; optionally of
    /// one action.
    pub fn audit_page(
        &self,
        before_id: Option<i64>,
        action: Option<&str>,
        limit: i64,
    ) -> Result<Vec<super::AuditRow>> {
        self.audit_log_where(
            "WHERE (CAST(?1 AS BIGINT) IS NULL OR id < ?1) AND (CAST(?2 AS TEXT) IS NULL OR action = ?2)",
            params![before_id, action],
            limit,
        )
    }

    fn audit_log_where(
        &self,
        cond: &str,
        p: impl super::db::Params,
        limit: i64,
    ) -> Result<Vec<super::AuditRow>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT id, at, actor, action, reason, subject, detail FROM audit {cond} ORDER BY id DESC LIMIT {limit}"
        ))?;
        let rows = st
            .query_map(p, super::review::audit_row)?
            .collect::<super::db::Result<Vec<_>>>()?;
        Ok(rows)
    }
}

#[cfg(test)]
#[path = "console_tests.rs"]
mod tests;
