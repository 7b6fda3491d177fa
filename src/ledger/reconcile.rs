//! Reconciliation in the ledger: what a target should hold, compared page by page with what
//! it lists, and the repairs that follow.
//!
//! An ERP may hold millions of records, so neither side is loaded whole: each listed key is
//! looked up on its own and written to a temporary table of keys seen (on disk, in SQLite's
//! temp store, and private to this connection), and the keys delivered but never seen —
//! the *missing* — are found by one query at the end. Keys whose delivery is under way, or
//! finished after the listing began, are left out: the target's state for them is moving
//! under the comparison. A repair re-queues the key's newest delivery as a replay (looked
//! up first; created if absent, its owned fields sent in full if present), with a fresh
//! queue time, so its retries get a full `max_age_hours` and its idempotency key is new;
//! its attempt numbers go on, so the story of the first delivery is kept.

use super::db::{params, OptionalExtension};
use serde::Serialize;

use super::{now, Ledger, Result};

/// What the ledger knows of a key a target listed.
#[derive(Debug, Clone, PartialEq)]
pub enum Known {
    /// Delivered: the version the target holds and that version's data (`None` for keys
    /// applied before versions kept their data).
    Held {
        version: i64,
        data: Option<serde_json::Value>,
    },
    /// Queued for this target but not settled: on its way, retried, delivered after the
    /// listing began, or never confirmed (a dead letter). Compared neither way.
    Unsettled,
    /// Never queued for this target: not tallyman's record.
    Unknown,
}

/// A key delivered to a target that the target no longer lists.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MissingKey {
    pub entity: String,
    pub key: String,
    /// The id the target had given it.
    pub remote_id: Option<String>,
    /// The version it held.
    pub version: i64,
}

/// What a repair queued again.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Requeued {
    pub missing: usize,
    pub drift: usize,
    /// The keys, as `entity:key` (at most [`REQUEUED_KEYS_KEPT`]).
    pub keys: Vec<String>,
}

/// How many re-queued keys a repair names (the counts are always complete).
pub const REQUEUED_KEYS_KEPT: usize = 1000;

/// One reconciliation, to record.
#[derive(Debug, Clone)]
pub struct NewReconciliation<'a> {
    pub target: &'a str,
    pub at: &'a str,
    pub scope: &'a str,
    pub remote_records: u64,
    pub missing: u64,
    pub orphans: u64,
    pub drift: u64,
    pub report_path: Option<&'a str>,
    pub detail: &'a serde_json::Value,
}

/// A recorded reconciliation.
#[derive(Debug, Clone, Serialize)]
pub struct ReconciliationRow {
    pub id: i64,
    pub target: String,
    pub at: String,
    pub scope: Option<String>,
    pub remote_records: i64,
    pub missing: i64,
    pub orphans: i64,
    pub drift: i64,
    pub report_path: Option<String>,
    pub detail: Option<serde_json::Value>,
}

/// SQL true when a delivery of the key (`target`, `entity`, `key` and `started` are SQL
/// expressions) makes its state at the target a moving one.
fn unsettled(target: &str, entity: &str, key: &str, started: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM deliveries d WHERE d.target = {target} AND d.entity = {entity} \
         AND d.key = {key} AND (d.state IN ('pending', 'retry', 'in_flight') \
         OR (d.state = 'delivered' AND d.delivered_at >= {started})))"
    )
}

impl Ledger {
    /// Starts a reconciliation on this connection: empty tables of keys seen, drifted and
    /// missing.
    pub fn reconcile_start(&self) -> Result<()> {
        self.conn.execute_batch(
            "CREATE TEMP TABLE IF NOT EXISTS reconcile_seen(entity TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (entity, key)) WITHOUT ROWID; \
             CREATE TEMP TABLE IF NOT EXISTS reconcile_drift(entity TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (entity, key)) WITHOUT ROWID; \
             CREATE TEMP TABLE IF NOT EXISTS reconcile_missing(entity TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (entity, key)) WITHOUT ROWID; \
             DELETE FROM temp.reconcile_seen; DELETE FROM temp.reconcile_drift; DELETE FROM temp.reconcile_missing;",
        )?;
        Ok(())
    }

    /// What the ledger knows of `key` at `target`; `started` is when the listing began.
    pub fn reconcile_known(
        &self,
        target: &str,
        entity: &str,
        key: &str,
        started: &str,
    ) -> Result<Known> {
        let unsettled = unsettled("?1", "?2", "?3", "?4");
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {unsettled}, (SELECT r.version FROM target_refs r WHERE r.target = ?1 AND r.entity = ?2 AND r.key = ?3), \
             EXISTS (SELECT 1 FROM deliveries d WHERE d.target = ?1 AND d.entity = ?2 AND d.key = ?3)"
        ))?;
        let (unsettled, held, queued): (bool, Option<i64>, bool) = st
            .query_row(params![target, entity, key, started], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
        Ok(match (unsettled, held, queued) {
            (true, _, _) | (false, None, true) => Known::Unsettled,
            (false, None, false) => Known::Unknown,
            (false, Some(version), _) => Known::Held {
                version,
                data: self.version_data(entity, key, version)?,
            },
        })
    }

    fn version_data(
        &self,
        entity: &str,
        key: &str,
        version: i64,
    ) -> Result<Option<serde_json::Value>> {
        let mut st = self.conn.prepare_cached(
            "SELECT data FROM versions WHERE entity = ?1 AND key = ?2 AND version = ?3",
        )?;
        let data: Option<String> = st
            .query_row(params![entity, key, version], |r| r.get(0))
            .optional()?
            .flatten();
        Ok(data.map(|d| serde_json::from_str(&d)).transpose()?)
    }

    /// Notes a page's keys: every key listed, and those whose owned fields drifted.
    pub fn reconcile_note(&self, entity: &str, seen: &[&str], drifted: &[&str]) -> Result<()> {
        // Only temporary tables are written: no lock on the ledger, the relay goes on.
        let tx = self.conn.unchecked_transaction()?;
        {
            let mut s = tx.prepare_cached(
                "INSERT OR IGNORE INTO temp.reconcile_seen(entity, key) VALUES (?1, ?2)",
            )?;
            for k in seen {
                s.execute(params![entity, k])?;
            }
            let mut d = tx.prepare_cached(
                "INSERT OR IGNORE INTO temp.reconcile_drift(entity, key) VALUES (?1, ?2)",
            )?;
            for k in drifted {
                d.execute(params![entity, k])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// After every page of `entities` was noted: the keys delivered to `target` that it
    /// did not list, handed to `each` in key order (and kept for a repair). Returns how
    /// many.
    pub fn reconcile_missing(
        &self,
        target: &str,
        entities: &[String],
        started: &str,
        mut each: impl FnMut(MissingKey) -> Result<()>,
    ) -> Result<u64> {
        let unsettled = unsettled("?1", "r.entity", "r.key", "?3");
        self.conn
            .execute("DELETE FROM temp.reconcile_missing", [])?;
        self.conn.execute(
            &format!(
                "INSERT OR IGNORE INTO temp.reconcile_missing(entity, key) \
                 SELECT r.entity, r.key FROM target_refs r WHERE r.target = ?1 \
                 AND r.entity IN (SELECT value FROM json_each(?2)) \
                 AND NOT EXISTS (SELECT 1 FROM temp.reconcile_seen s WHERE s.entity = r.entity AND s.key = r.key) \
                 AND NOT {unsettled}"
            ),
            params![target, serde_json::to_string(entities)?, started],
        )?;
        let mut st = self.conn.prepare(
            "SELECT r.entity, r.key, r.remote_id, r.version FROM temp.reconcile_missing m \
             JOIN target_refs r ON r.target = ?1 AND r.entity = m.entity AND r.key = m.key \
             ORDER BY m.entity, m.key",
        )?;
        let mut rows = st.query([target])?;
        let mut n = 0;
        while let Some(r) = rows.next()? {
            n += 1;
            each(MissingKey {
                entity: r.get(0)?,
                key: r.get(1)?,
                remote_id: r.get(2)?,
                version: r.get(3)?,
            })?;
        }
        Ok(n)
    }

    /// Queues the missing and drifted keys of the reconciliation just made on this
    /// connection again: each key's newest delivery to `target`, as a replay.
    pub fn reconcile_requeue(&self, target: &str) -> Result<Requeued> {
        self.immediate(|c| {
            let at = now();
            let mut out = Requeued::default();
            for (table, count) in [("reconcile_missing", &mut out.missing), ("reconcile_drift", &mut out.drift)] {
                *count = c.execute(
                    &format!(
                        "UPDATE deliveries AS d SET state='pending', next_at=?2, created_at=?2, replay=1, ambiguous=1, last_error=NULL, claimed_by=NULL \
                         WHERE d.target = ?1 AND d.state IN ('delivered', 'dead') \
                         AND (d.entity, d.key) IN (SELECT entity, key FROM temp.{table}) \
                         AND d.version = (SELECT MAX(n.version) FROM deliveries n WHERE n.target = d.target \
                           AND n.entity = d.entity AND n.key = d.key)"
                    ),
                    params![target, at],
                )?;
            }
            let mut st = c.prepare(
                "SELECT entity || ':' || key FROM (SELECT entity, key FROM temp.reconcile_missing \
                 UNION SELECT entity, key FROM temp.reconcile_drift) AS k ORDER BY 1 LIMIT ?1",
            )?;
            out.keys = st
                .query_map([REQUEUED_KEYS_KEPT as i64], |r| r.get(0))?
                .collect::<super::db::Result<Vec<String>>>()?;
            Ok(out)
        })
    }

    /// Records a reconciliation; returns its id.
    pub fn record_reconciliation(&self, r: &NewReconciliation) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO reconciliations(target, at, scope, remote_records, missing, orphans, drift, report_path, detail) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                r.target,
                r.at,
                r.scope,
                r.remote_records as i64,
                r.missing as i64,
                r.orphans as i64,
                r.drift as i64,
                r.report_path.map(|p| self.roots.store(p)),
                r.detail.to_string()
            ],
        )?;
        Ok(self.conn.last_insert_rowid()?)
    }

    /// The newest `limit` reconciliations (of one target, or all), newest first.
    pub fn reconciliations(
        &self,
        target: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ReconciliationRow>> {
        let mut st = self.conn.prepare(
            "SELECT id, target, at, scope, remote_records, missing, orphans, drift, report_path, detail \
             FROM reconciliations WHERE CAST(?1 AS TEXT) IS NULL OR target = ?1 ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = st
            .query_map(params![target, limit], |r| {
                let detail: Option<String> = r.get(9)?;
                Ok(ReconciliationRow {
                    id: r.get(0)?,
                    target: r.get(1)?,
                    at: r.get(2)?,
                    scope: r.get(3)?,
                    remote_records: r.get(4)?,
                    missing: r.get(5)?,
                    orphans: r.get(6)?,
                    drift: r.get(7)?,
                    report_path: self.roots.resolve_opt(r.get(8)?),
                    detail: detail.and_then(|d| serde_json::from_str(&d).ok()),
                })
            })?
            .collect::<super::db::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// When a reconciliation of `target` was last begun (successful or not), for the
    /// schedule.
    pub fn reconcile_attempted_at(&self, target: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT value FROM meta WHERE key = ?1",
                [format!("reconcile_attempt:{target}")],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Notes that a reconciliation of `target` begins now: a failing one is not tried
    /// again at every pass, but at the schedule's next turn.
    pub fn reconcile_attempt(&self, target: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO meta(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![format!("reconcile_attempt:{target}"), now()],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testplace::{on_both, Place};
    use super::*;

    /// A ledger where `erp` holds customers C-1..C-4 (C-2 at version 2); C-3 has a newer
    /// version on its way, C-4 was dead-lettered, never confirmed.
    fn ledger(p: &Place) -> Ledger {
        let l = p.open();
        let at = "2026-11-01T00:00:00.000Z";
        for (key, version, state, held) in [
            ("C-1", 1, "delivered", Some(1)),
            ("C-2", 1, "superseded", None),
            ("C-2", 2, "delivered", Some(2)),
            ("C-3", 1, "delivered", Some(1)),
            ("C-3", 2, "pending", None),
            ("C-4", 1, "dead", None),
        ] {
            l.conn
                .execute(
                    "INSERT INTO versions(entity, key, version, hash, data, file_id, unit_seq) \
                     VALUES ('customer', ?1, ?2, 'h', ?3, 1, 1)",
                    params![
                        key,
                        version,
                        format!(r#"{{"customer_id":"{key}","name":"v{version}"}}"#)
                    ],
                )
                .unwrap();
            l.conn
                .execute(
                    "INSERT INTO deliveries(target, entity, key, version, state, attempts, next_at, file_id, created_at, delivered_at) \
                     VALUES ('erp', 'customer', ?1, ?2, ?3, 1, ?4, 1, ?4, ?4)",
                    params![key, version, state, at],
                )
                .unwrap();
            if let Some(v) = held {
                l.conn
                    .execute(
                        "INSERT INTO target_refs(target, entity, key, remote_id, version) VALUES ('erp', 'customer', ?1, ?2, ?3) \
                         ON CONFLICT (target, entity, key) DO UPDATE SET remote_id=excluded.remote_id, version=excluded.version",
                        params![key, format!("id-{key}"), v],
                    )
                    .unwrap();
            }
        }
        l
    }

    on_both!(
        a_listed_key_is_held_unsettled_or_unknown,
        missing_are_the_delivered_keys_not_listed_and_a_repair_requeues_them,
        a_new_reconciliation_starts_empty,
        runs_are_recorded_and_the_schedule_remembers_attempts,
    );

    const STARTED: &str = "2026-11-02T00:00:00.000Z";

    fn a_listed_key_is_held_unsettled_or_unknown(p: Place) {
        let l = ledger(&p);
        let known = |k| l.reconcile_known("erp", "customer", k, STARTED).unwrap();
        assert_eq!(
            known("C-2"),
            Known::Held {
                version: 2,
                data: Some(serde_json::json!({"customer_id": "C-2", "name": "v2"}))
            }
        );
        assert_eq!(
            known("C-3"),
            Known::Unsettled,
            "a newer version is on its way"
        );
        assert_eq!(known("C-4"), Known::Unsettled, "queued, never confirmed");
        assert_eq!(known("WEB-1"), Known::Unknown);
        assert_eq!(
            l.reconcile_known("other", "customer", "C-1", STARTED)
                .unwrap(),
            Known::Unknown,
            "per target"
        );
        assert_eq!(
            l.reconcile_known("erp", "customer", "C-1", "2026-10-01T00:00:00.000Z")
                .unwrap(),
            Known::Unsettled,
            "delivered after the listing began"
        );
    }

    fn missing_are_the_delivered_keys_not_listed_and_a_repair_requeues_them(p: Place) {
        let l = ledger(&p);
        l.reconcile_start().unwrap();
        l.reconcile_note("customer", &["C-2", "WEB-1"], &["C-2"])
            .unwrap();
        let none = l
            .reconcile_missing("erp", &["product".into()], STARTED, |_| Ok(()))
            .unwrap();
        assert_eq!(none, 0, "only the entities listed can miss keys");
        let mut missing = Vec::new();
        let n = l
            .reconcile_missing("erp", &["customer".into()], STARTED, |m| {
                missing.push(m);
                Ok(())
            })
            .unwrap();
        assert_eq!(n, 1, "C-3 is moving, C-4 never arrived: {missing:?}");
        assert_eq!(
            missing,
            vec![MissingKey {
                entity: "customer".into(),
                key: "C-1".into(),
                remote_id: Some("id-C-1".into()),
                version: 1
            }]
        );
        let r = l.reconcile_requeue("erp").unwrap();
        assert_eq!((r.missing, r.drift), (1, 1));
        assert_eq!(r.keys, vec!["customer:C-1", "customer:C-2"]);
        let rows: Vec<(String, i64, String, i64, i64, i64)> = l
            .conn
            .prepare("SELECT key, version, state, replay, ambiguous, attempts FROM deliveries WHERE state='pending' ORDER BY key, version")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(
            rows,
            vec![
                ("C-1".into(), 1, "pending".into(), 1, 1, 1),
                ("C-2".into(), 2, "pending".into(), 1, 1, 1),
                ("C-3".into(), 2, "pending".into(), 0, 0, 1),
            ],
            "the newest version of each, as a replay, its attempts counted on"
        );
        let created: String = l
            .conn
            .query_row(
                "SELECT created_at FROM deliveries WHERE key='C-1'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(created.as_str() > STARTED, "a fresh queue time: {created}");
    }

    fn a_new_reconciliation_starts_empty(p: Place) {
        let l = ledger(&p);
        l.reconcile_start().unwrap();
        l.reconcile_note("customer", &[], &["C-1"]).unwrap();
        l.reconcile_start().unwrap();
        let r = l.reconcile_requeue("erp").unwrap();
        assert_eq!((r.missing, r.drift), (0, 0));
    }

    fn runs_are_recorded_and_the_schedule_remembers_attempts(p: Place) {
        let l = ledger(&p);
        assert_eq!(l.reconcile_attempted_at("erp").unwrap(), None);
        l.reconcile_attempt("erp").unwrap();
        assert!(l.reconcile_attempted_at("erp").unwrap().is_some());
        let detail = serde_json::json!({"missing": []});
        let id = l
            .record_reconciliation(&NewReconciliation {
                target: "erp",
                at: STARTED,
                scope: "all records",
                remote_records: 10,
                missing: 1,
                orphans: 2,
                drift: 3,
                report_path: Some("reports/r.csv"),
                detail: &detail,
            })
            .unwrap();
        let rows = l.reconciliations(Some("erp"), 5).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].id, rows[0].orphans, rows[0].drift), (id, 2, 3));
        assert_eq!(rows[0].detail, Some(detail));
        assert!(l.reconciliations(Some("other"), 5).unwrap().is_empty());
    }
}
