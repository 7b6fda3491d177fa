//! The delivery queue: a transactional outbox in the ledger.
//!
//! A decided file's new record versions get one delivery row per remote target in the
//! decision's own transaction, so a record is queued exactly when it is applied. A relay
//! claims due rows (`in_flight`, committed before any request is sent), and records each
//! attempt and its result; a row still `in_flight` when its relay died is *ambiguous* — the
//! request may have reached the target — so the next try looks the record up before it
//! creates it. Rows end `delivered`, `dead` (a person's turn), or `superseded` by a newer
//! version of the same key that was queued before the older one got through.

use super::db::{params, Transaction, TransactionBehavior, Value};
use serde::Serialize;

use super::{now, Ledger, Result};

/// Queues a decided file's new versions for every remote target that takes their entity,
/// and supersedes older versions of the same keys that have not been delivered yet.
pub(super) fn queue_file(
    tx: &Transaction,
    file_id: i64,
    routes: &[(String, Vec<String>)],
) -> Result<()> {
    let settled: Option<i64> = tx.query_row(
        "SELECT work_mtime_ns FROM files WHERE id=?1",
        [file_id],
        |r| r.get(0),
    )?;
    let settled = settled.map(ns_to_iso);
    let at = now();
    if !routes.is_empty() {
        // The file's versions, a batch at a time (see made.rs).
        super::made::each_batch(tx, file_id, 0, i64::MAX, |made| {
            let values: Vec<Value<'_>> = routes
                .iter()
                .flat_map(|(target, entities)| {
                    made.iter()
                        .filter(move |m| entities.contains(&m.entity))
                        .map(move |m| (target, m))
                })
                .flat_map(|(target, m)| {
                    [
                        Value::Text(target),
                        Value::Text(&m.entity),
                        Value::Text(&m.key),
                        Value::Int(m.version),
                        Value::Text("pending"),
                        Value::Text(&at),
                        Value::Int(file_id),
                        settled.as_deref().map_or(Value::Null, Value::Text),
                        Value::Text(&at),
                    ]
                })
                .collect();
            super::batch::insert_many(
                tx,
                "INSERT OR IGNORE INTO deliveries(target, entity, key, version, state, next_at, file_id, settled_at, created_at)",
                "",
                9,
                &values,
            )
        })?;
    }
    tx.execute(SUPERSEDE_SQL, [file_id])?;
    Ok(())
}

/// Older versions still waiting (or dead) for a target are superseded by the ones file
/// `?1` queued. From the file's own deliveries to the older ones of each key: the check
/// the other way round read every delivery ever queued, at every file's decision.
pub(super) const SUPERSEDE_SQL: &str = "UPDATE deliveries SET state='superseded' WHERE id IN ( \
     SELECT o.id FROM deliveries n JOIN deliveries o ON o.target = n.target AND o.entity = n.entity \
     AND o.key = n.key AND o.version < n.version \
     WHERE n.file_id = ?1 AND o.file_id != ?1 AND o.state IN ('pending', 'retry', 'dead'))";

fn ns_to_iso(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns)
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// A delivery claimed by a relay, with what it needs to send.
#[derive(Debug, Clone)]
pub struct Due {
    pub id: i64,
    pub target: String,
    pub entity: String,
    pub key: String,
    pub version: i64,
    /// This attempt's number since the delivery was (re)queued: what the retry policy
    /// counts (1 for the first).
    pub attempt: i64,
    /// The attempt's row in the ledger's history (numbers keep growing across retries
    /// and replays, so no attempt is ever overwritten).
    pub log_n: i64,
    /// An earlier attempt may have reached the target: look the record up before creating.
    pub ambiguous: bool,
    /// Sent again on purpose (`replay`): look up, then send every owned field.
    pub replay: bool,
    pub created_at: String,
    pub data: serde_json::Value,
    /// The target's id of this key and the version it holds, if it was delivered before.
    pub remote: Option<(String, i64)>,
    /// The data of the version the target holds (to send only what changed).
    pub remote_data: Option<serde_json::Value>,
}

/// One attempt's story, for the ledger (the response is masked and capped by the caller).
#[derive(Debug, Clone, Default, Serialize)]
pub struct AttemptLog {
    /// The requests made: `lookup`, `create`, `update` (joined with `→`).
    pub operation: String,
    pub status: Option<u16>,
    /// `delivered`, `retry`, `permanent`, `blocked`, `ambiguous`.
    pub outcome: String,
    pub latency_ms: i64,
    pub response: Option<String>,
}

/// The result of one attempt, to record.
#[derive(Debug, Clone)]
pub struct Finished {
    pub id: i64,
    pub log_n: i64,
    /// `delivered`, `retry`, `dead`, or `pending` (given back unsent: the target is
    /// blocked; the attempt does not count).
    pub state: &'static str,
    pub next_at: String,
    pub ambiguous: bool,
    pub error: Option<String>,
    pub remote_id: Option<String>,
    pub log: AttemptLog,
}

/// Which deliveries a person means (`retry`, `replay`, `deadletters`).
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub target: Option<String>,
    pub entity: Option<String>,
    pub key: Option<String>,
    /// ISO date or time: created (dead letters) or delivered (replay) at or after.
    pub since: Option<String>,
}

impl Selection {
    fn sql(&self, time_col: &str) -> (String, Vec<String>) {
        let mut conds = Vec::new();
        let mut args = Vec::new();
        for (col, v) in [
            ("d.target", &self.target),
            ("d.entity", &self.entity),
            ("d.key", &self.key),
        ] {
            if let Some(v) = v {
                args.push(v.clone());
                conds.push(format!("{col} = ?{}", args.len()));
            }
        }
        if let Some(s) = &self.since {
            args.push(s.clone());
            conds.push(format!("{time_col} >= ?{}", args.len()));
        }
        let sql = conds.iter().map(|c| format!(" AND {c}")).collect();
        (sql, args)
    }
}

/// A dead letter, for a person.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    pub id: i64,
    pub target: String,
    pub entity: String,
    pub key: String,
    pub version: i64,
    pub attempts: i64,
    pub last_status: Option<i64>,
    pub message: Option<String>,
    pub file: Option<String>,
    pub line: Option<i64>,
    pub created_at: String,
}

/// A target's queue, for `status`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TargetCounts {
    pub pending: i64,
    pub retry_wait: i64,
    pub in_flight: i64,
    pub delivered: i64,
    pub dead: i64,
    pub superseded: i64,
    /// Age in seconds of the oldest record waiting (pending, retry or in flight).
    pub oldest_waiting_seconds: Option<i64>,
    /// File settled → delivered, over the last 1,000 deliveries.
    pub sync_latency_p50_seconds: Option<f64>,
    pub sync_latency_p95_seconds: Option<f64>,
    pub blocked: Option<String>,
}

const DUE_COLS: &str =
    "d.id, d.target, d.entity, d.key, d.version, d.attempts, d.ambiguous, d.replay, d.created_at, \
    v.data, r.remote_id, r.version, rv.data";

impl Ledger {
    /// Takes up to `limit` due deliveries of `target`, oldest first, marking them in
    /// flight before any is sent. A key whose older version is still on its way waits.
    pub fn claim_due(&mut self, target: &str, limit: usize) -> Result<Vec<Due>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        super::leases::keep(&tx, &self.fences, &super::Leased::relay(target))?;
        let at = now();
        let rows = {
            let mut st = tx.prepare_cached(&format!(
                "SELECT {DUE_COLS} FROM deliveries d \
                 JOIN versions v ON v.entity = d.entity AND v.key = d.key AND v.version = d.version \
                 LEFT JOIN target_refs r ON r.target = d.target AND r.entity = d.entity AND r.key = d.key \
                 LEFT JOIN versions rv ON rv.entity = d.entity AND rv.key = d.key AND rv.version = r.version \
                 WHERE d.target = ?1 AND d.state IN ('pending', 'retry') AND d.next_at <= ?2 \
                 AND NOT EXISTS (SELECT 1 FROM deliveries o WHERE o.target = d.target AND o.entity = d.entity \
                   AND o.key = d.key AND o.version < d.version AND o.state IN ('pending', 'retry', 'in_flight')) \
                 ORDER BY d.next_at, d.id LIMIT ?3"
            ))?;
            let rows = st
                .query_map(params![target, at, limit as i64], due_row)?
                .collect::<super::db::Result<Vec<_>>>()?;
            rows
        };
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut due = row?;
            due.attempt += 1;
            tx.execute(
                "UPDATE deliveries SET state='in_flight', attempts=?2, claimed_by=?3 WHERE id=?1",
                params![due.id, due.attempt, std::process::id()],
            )?;
            due.log_n = tx.query_row(
                "SELECT COALESCE(MAX(n), 0) + 1 FROM attempts WHERE delivery_id=?1",
                [due.id],
                |r| r.get(0),
            )?;
            tx.execute(
                "INSERT INTO attempts(delivery_id, n, started_at, operation) VALUES (?1, ?2, ?3, 'sending')",
                params![due.id, due.log_n, at],
            )?;
            out.push(due);
        }
        tx.commit()?;
        Ok(out)
    }

    /// Deliveries a dead relay left in flight: whatever they sent may have arrived, so
    /// they are retried as ambiguous (looked up before they are created again). Call only
    /// while holding the target's relay lock.
    pub fn recover_in_flight(&mut self, target: &str) -> Result<usize> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        super::leases::keep(&tx, &self.fences, &super::Leased::relay(target))?;
        tx.execute(
            "UPDATE attempts SET finished_at=?2, outcome='interrupted' WHERE finished_at IS NULL AND delivery_id IN \
             (SELECT id FROM deliveries WHERE target=?1 AND state='in_flight')",
            params![target, now()],
        )?;
        let n = tx.execute(
            "UPDATE deliveries SET state='retry', ambiguous=1, next_at=?2, \
             last_error='the process stopped while this record was being sent; it is looked up before it is sent again' \
             WHERE target=?1 AND state='in_flight'",
            params![target, now()],
        )?;
        tx.commit()?;
        Ok(n)
    }

    /// Records attempts' results in one transaction.
    pub fn finish_deliveries(&mut self, target: &str, results: &[Finished]) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        super::leases::keep(&tx, &self.fences, &super::Leased::relay(target))?;
        let at = now();
        for f in results {
            tx.execute(
                "UPDATE attempts SET finished_at=?3, operation=?4, status=?5, outcome=?6, latency_ms=?7, response=?8 \
                 WHERE delivery_id=?1 AND n=?2",
                params![f.id, f.log_n, at, f.log.operation, f.log.status, f.log.outcome, f.log.latency_ms, f.log.response],
            )?;
            let uncount = i64::from(f.state == "pending");
            tx.execute(
                "UPDATE deliveries SET state=?2, next_at=?3, ambiguous=?4, last_status=?5, last_error=?6, \
                 attempts = attempts - ?7, claimed_by=NULL, replay = CASE WHEN ?2 = 'delivered' THEN 0 ELSE replay END, \
                 delivered_at = CASE WHEN ?2 = 'delivered' THEN ?8 ELSE delivered_at END WHERE id=?1",
                params![f.id, f.state, f.next_at, f.ambiguous, f.log.status, f.error, uncount, at],
            )?;
            if f.state == "delivered" {
                tx.execute(
                    "INSERT INTO target_refs(target, entity, key, remote_id, version) \
                     SELECT ?1, entity, key, ?3, version FROM deliveries WHERE id=?2 \
                     ON CONFLICT(target, entity, key) DO UPDATE SET remote_id=COALESCE(excluded.remote_id, target_refs.remote_id), \
                     version=MAX(target_refs.version, excluded.version)",
                    params![target, f.id, f.remote_id],
                )?;
            }
        }
        // The relay's run is seen working (what `status` shows as its last sign of life).
        if let Some(run) = self.run.get() {
            tx.prepare_cached("UPDATE runs SET seen_at=?2 WHERE id=?1")?
                .execute(params![run, at])?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn block_target(&self, target: &str, reason: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO target_state(target, blocked_reason, blocked_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT(target) DO UPDATE SET blocked_reason=excluded.blocked_reason, blocked_at=excluded.blocked_at",
            params![target, reason, now()],
        )?;
        Ok(())
    }

    pub fn unblock_target(&self, target: &str) -> Result<()> {
        self.conn
            .execute("DELETE FROM target_state WHERE target=?1", [target])?;
        Ok(())
    }

    pub fn target_blocked(&self, target: &str) -> Result<Option<String>> {
        use super::db::OptionalExtension;
        Ok(self
            .conn
            .query_row(
                "SELECT blocked_reason FROM target_state WHERE target=?1",
                [target],
                |r| r.get(0),
            )
            .optional()?
            .flatten())
    }

    /// How many seconds ago the target was found blocked, if it is.
    pub fn blocked_for_seconds(&self, target: &str) -> Result<Option<i64>> {
        use super::db::OptionalExtension;
        Ok(self
            .conn
            .query_row(
                "SELECT CAST((julianday('now') - julianday(blocked_at)) * 86400 AS INTEGER) FROM target_state WHERE target=?1",
                [target],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// When the next delivery of `target` is due, if any waits.
    pub fn next_due(&self, target: &str) -> Result<Option<String>> {
        Ok(self.conn.query_row(
            "SELECT MIN(next_at) FROM deliveries WHERE target=?1 AND state IN ('pending', 'retry')",
            [target],
            |r| r.get(0),
        )?)
    }

    pub fn target_counts(&self, target: &str) -> Result<TargetCounts> {
        let mut c = TargetCounts::default();
        let mut st = self
            .conn
            .prepare("SELECT state, COUNT(*) FROM deliveries WHERE target=?1 GROUP BY state")?;
        let rows = st.query_map([target], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?;
        for row in rows {
            let (state, n) = row?;
            match state.as_str() {
                "pending" => c.pending = n,
                "retry" => c.retry_wait = n,
                "in_flight" => c.in_flight = n,
                "delivered" => c.delivered = n,
                "dead" => c.dead = n,
                "superseded" => c.superseded = n,
                _ => {}
            }
        }
        c.oldest_waiting_seconds = self.conn.query_row(
            "SELECT CAST((julianday('now') - julianday(MIN(created_at))) * 86400 AS INTEGER) FROM deliveries \
             WHERE target=?1 AND state IN ('pending', 'retry', 'in_flight')",
            [target],
            |r| r.get(0),
        )?;
        let mut st = self.conn.prepare(
            "SELECT (julianday(delivered_at) - julianday(settled_at)) * 86400 FROM deliveries \
             WHERE target=?1 AND state='delivered' AND settled_at IS NOT NULL ORDER BY delivered_at DESC LIMIT 1000",
        )?;
        let mut lat: Vec<f64> = st
            .query_map([target], |r| r.get::<_, f64>(0))?
            .collect::<super::db::Result<Vec<_>>>()?;
        lat.sort_by(|a, b| a.total_cmp(b));
        c.sync_latency_p50_seconds = percentile(&lat, 0.50);
        c.sync_latency_p95_seconds = percentile(&lat, 0.95);
        c.blocked = self.target_blocked(target)?;
        Ok(c)
    }

    pub fn dead_letters(&self, sel: &Selection) -> Result<Vec<DeadLetter>> {
        let (cond, args) = sel.sql("d.created_at");
        let mut st = self.conn.prepare(&format!(
            "SELECT d.id, d.target, d.entity, d.key, d.version, d.attempts, d.last_status, d.last_error, \
             f.name, v.file_id, v.unit_seq, d.created_at \
             FROM deliveries d LEFT JOIN versions v ON v.entity = d.entity AND v.key = d.key AND v.version = d.version \
             LEFT JOIN files f ON f.id = d.file_id WHERE d.state = 'dead'{cond} ORDER BY d.id"
        ))?;
        let rows = st
            .query_map(super::db::params_from_iter(args), |r| {
                Ok((
                    DeadLetter {
                        id: r.get(0)?,
                        target: r.get(1)?,
                        entity: r.get(2)?,
                        key: r.get(3)?,
                        version: r.get(4)?,
                        attempts: r.get(5)?,
                        last_status: r.get(6)?,
                        message: r.get(7)?,
                        file: r.get(8)?,
                        line: None,
                        created_at: r.get(11)?,
                    },
                    r.get::<_, Option<i64>>(9)?
                        .zip(r.get::<_, Option<i64>>(10)?),
                ))
            })?
            .collect::<super::db::Result<Vec<_>>>()?;
        // Each letter's line is its unit's first, which may be packed (see runs.rs).
        let mut units = super::runs::UnitReader::new(&self.conn);
        let mut out = Vec::with_capacity(rows.len());
        for (mut d, unit) in rows {
            if let Some((file_id, seq)) = unit {
                d.line = units.get(file_id, seq)?.map(|u| u.first.0);
            }
            out.push(d);
        }
        Ok(out)
    }

    /// Puts dead letters back in the queue (after a person fixed the cause); with
    /// `dry_run`, only counts them.
    pub fn retry_dead(&self, sel: &Selection, dry_run: bool) -> Result<usize> {
        let (cond, args) = sel.sql("d.created_at");
        if dry_run {
            return self.count_where(&format!("d.state = 'dead'{cond}"), args);
        }
        let mut all = vec![now()];
        all.extend(args);
        let cond = shift_params(&cond, 1);
        Ok(self.conn.execute(
            &format!(
                "UPDATE deliveries AS d SET state='pending', attempts=0, next_at=?1, created_at=?1, last_error=NULL \
                 WHERE d.state = 'dead'{cond}"
            ),
            super::db::params_from_iter(all),
        )?)
    }

    /// Sends delivered records again (after a restore of the target): each is looked up,
    /// created if missing, and its owned fields sent in full. With `dry_run`, only counts.
    pub fn replay(&self, sel: &Selection, dry_run: bool) -> Result<usize> {
        let (cond, args) = sel.sql("d.delivered_at");
        let latest = "NOT EXISTS (SELECT 1 FROM deliveries n WHERE n.target = d.target AND n.entity = d.entity \
                      AND n.key = d.key AND n.version > d.version)";
        if dry_run {
            return self.count_where(&format!("d.state = 'delivered' AND {latest}{cond}"), args);
        }
        let mut all = vec![now()];
        all.extend(args);
        let cond = shift_params(&cond, 1);
        Ok(self.conn.execute(
            &format!(
                "UPDATE deliveries AS d SET state='pending', attempts=0, next_at=?1, created_at=?1, replay=1, ambiguous=1 \
                 WHERE d.state = 'delivered' AND {latest}{cond}"
            ),
            super::db::params_from_iter(all),
        )?)
    }

    fn count_where(&self, cond: &str, args: Vec<String>) -> Result<usize> {
        Ok(self.conn.query_row(
            &format!("SELECT COUNT(*) FROM deliveries d WHERE {cond}"),
            super::db::params_from_iter(args),
            |r| r.get::<_, i64>(0),
        )? as usize)
    }

    /// The attempts of a delivery, oldest first.
    pub fn attempts(&self, delivery_id: i64) -> Result<Vec<AttemptLog>> {
        let mut st = self.conn.prepare(
            "SELECT operation, status, COALESCE(outcome, ''), COALESCE(latency_ms, 0), response FROM attempts \
             WHERE delivery_id=?1 ORDER BY n",
        )?;
        let rows = st
            .query_map([delivery_id], |r| {
                Ok(AttemptLog {
                    operation: r.get(0)?,
                    status: r.get(1)?,
                    outcome: r.get(2)?,
                    latency_ms: r.get(3)?,
                    response: r.get(4)?,
                })
            })?
            .collect::<super::db::Result<Vec<_>>>()?;
        Ok(rows)
    }
}

/// `?1` → `?2`, ... in a condition built for parameters that now follow `n` others.
fn shift_params(cond: &str, n: usize) -> String {
    let mut out = String::with_capacity(cond.len());
    let mut chars = cond.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '?' {
            let mut num = String::new();
            while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                num.push(*d);
                chars.next();
            }
            let v: usize = num.parse().unwrap_or(0);
            out.push_str(&(v + n).to_string());
        }
    }
    out
}

fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    Some((sorted[i] * 10.0).round() / 10.0)
}

fn due_row(r: &super::db::Row<'_>) -> super::db::Result<Result<Due>> {
    let data: Option<String> = r.get(9)?;
    let remote_id: Option<String> = r.get(10)?;
    let remote_version: Option<i64> = r.get(11)?;
    let remote_data: Option<String> = r.get(12)?;
    let parse = |s: Option<String>| -> Result<Option<serde_json::Value>> {
        Ok(s.map(|s| serde_json::from_str(&s)).transpose()?)
    };
    let build = || -> Result<Due> {
        Ok(Due {
            id: r.get(0)?,
            target: r.get(1)?,
            entity: r.get(2)?,
            key: r.get(3)?,
            version: r.get(4)?,
            attempt: r.get(5)?,
            log_n: 0,
            ambiguous: r.get::<_, i64>(6)? != 0,
            replay: r.get::<_, i64>(7)? != 0,
            created_at: r.get(8)?,
            data: parse(data)?.unwrap_or(serde_json::Value::Null),
            remote: remote_id.zip(remote_version),
            remote_data: parse(remote_data)?,
        })
    };
    Ok(build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_shift_past_the_ones_in_front() {
        assert_eq!(
            shift_params(" AND d.target = ?1 AND x >= ?2", 1),
            " AND d.target = ?2 AND x >= ?3"
        );
    }

    #[test]
    fn percentiles_of_few_values() {
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 0.5), Some(3.0));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
