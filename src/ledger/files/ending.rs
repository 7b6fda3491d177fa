//! How an attempt ends in the ledger: decided, abandoned because its input changed,
//! started over, or failed. Each is one transaction holding the ending and everything that
//! goes with it (a decided file's acknowledgements and deliveries; the lines, keys and
//! versions of what does not stand turned into rejects or given back; the file's totals
//! recounted), so a crash leaves the ending whole or not begun.

use super::recount::recount;
use crate::format::{Outbound, UnitStatus};
use crate::ledger::db::{params, TransactionBehavior};
use crate::ledger::model::Outcome;
use crate::ledger::{delivery, leases, made, review, spans, Leased, Ledger, Result};

/// What of a failed file never reached the outbox: its lines become rejects and its keys
/// are given back, so the same documents sent again are applied, not called duplicates.
#[derive(Debug, Clone, PartialEq)]
pub enum Lost {
    /// Nothing of the file was published.
    Everything,
    /// These staged chunks were lost: `(entity, first_seq, end_seq)` of each.
    Chunks(Vec<(String, i64, i64)>),
}

impl Lost {
    /// The lost units as `[[entity or "*", first_seq, end_seq], ...]`, bound as `?2` of the
    /// statements [`Lost::holds`] conditions.
    pub(in crate::ledger) fn ranges(&self) -> String {
        serde_json::json!(self.list()).to_string()
    }

    /// The lost units as `(entity or "*", first_seq, end_seq)`.
    pub(in crate::ledger) fn list(&self) -> Vec<(String, i64, i64)> {
        match self {
            Lost::Everything => vec![("*".into(), 0, i64::MAX)],
            Lost::Chunks(c) => c.clone(),
        }
    }

    /// Whether `col` (a unit seq) is lost, as a condition on the ranges bound as `?2` (see
    /// [`Lost::ranges`]). Everything is every unit: no JSON table of ranges looked into for
    /// every row (a file rejected whole spent a third of its decision on it); `?2` is still
    /// named, so the statements bind the same parameters either way.
    pub(in crate::ledger) fn holds(&self, col: &str) -> String {
        match self {
            Lost::Everything => "CAST(?2 AS TEXT) IS NOT NULL".into(),
            Lost::Chunks(_) => format!(
                "EXISTS (SELECT 1 FROM json_each(?2) j WHERE {col} >= CAST(json_extract(j.value, '$[1]') AS BIGINT) \
                 AND {col} < CAST(json_extract(j.value, '$[2]') AS BIGINT))"
            ),
        }
    }
}

impl Ledger {
    /// Takes the file's decision: outcome, line updates for a whole-file reject, key
    /// release, and the acks to publish, all in one transaction.
    pub fn decide(
        &mut self,
        id: i64,
        outcome: Outcome,
        why: Option<&str>,
        acks: &[Outbound],
    ) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        leases::keep(&tx, &self.fences, &Leased::File(id))?;
        if outcome == Outcome::Rejected {
            let msg = format!("file rejected whole: {}", why.unwrap_or("policy"));
            spans::reject_late(
                &tx,
                id,
                &[
                    UnitStatus::Applied,
                    UnitStatus::Duplicate,
                    UnitStatus::Unmapped,
                ],
                &Lost::Everything,
                "file-rejected",
                &msg,
            )?;
            tx.execute("DELETE FROM keys WHERE file_id=?1", params![id])?;
            made::forget(&tx, id, 0, i64::MAX, |_| true)?;
            tx.execute("DELETE FROM version_runs WHERE file_id=?1", params![id])?;
            recount(&tx, id)?;
        }
        for a in acks {
            tx.execute(
                "INSERT INTO acks(file_id, kind, partner, control_no, file_name, content, compressed) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1)",
                params![id, a.kind, a.partner, a.control_no.map(|n| n as i64), a.file_name, a.content.zlib()],
            )?;
        }
        if matches!(outcome, Outcome::Applied | Outcome::AppliedWithRejects) {
            delivery::queue_file(&tx, id, &self.routes)?;
        }
        if outcome != Outcome::Rejected {
            review::resolve_corrected(&tx, id)?;
        }
        tx.execute(
            "UPDATE files SET outcome=?2, state='publishing', inflight_seq=NULL, waiting_on=NULL, \
             error_message=COALESCE(error_message, ?3) WHERE id=?1",
            params![
                id,
                outcome.as_str(),
                if outcome == Outcome::Rejected {
                    why
                } else {
                    None
                }
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Abandons an attempt whose input changed while it was processed: its lines, units
    /// and keys described content that no longer exists, so they go; the file row stays as
    /// the record of what happened (outcome `returned`).
    pub fn abandon(&mut self, id: i64, rule: &str, why: &str) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        leases::keep(&tx, &self.fences, &Leased::File(id))?;
        made::forget(&tx, id, 0, i64::MAX, |_| true)?;
        for table in ["lines", "units", "unit_runs", "keys", "version_runs"] {
            tx.execute(&format!("DELETE FROM {table} WHERE file_id=?1"), [id])?;
        }
        recount(&tx, id)?;
        tx.execute(
            "UPDATE files SET outcome=?2, state='publishing', inflight_seq=NULL, waiting_on=NULL, error_rule=?3, error_message=?4 WHERE id=?1",
            params![id, Outcome::Returned.as_str(), rule, why],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Starts an undecided attempt over from the first line (its staged output was lost
    /// but its input is intact): nothing of it was published, and reading again produces
    /// the same output.
    pub fn restart(&mut self, id: i64) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        leases::keep(&tx, &self.fences, &Leased::File(id))?;
        made::forget(&tx, id, 0, i64::MAX, |_| true)?;
        for table in [
            "lines",
            "units",
            "unit_runs",
            "keys",
            "version_runs",
            "chunks",
        ] {
            tx.execute(&format!("DELETE FROM {table} WHERE file_id=?1"), [id])?;
        }
        recount(&tx, id)?;
        tx.execute(
            "UPDATE files SET committed_seq=0, committed_lines=0, next_chunk=0, synced_chunk=0, inflight_seq=NULL, \
             resume_mark=NULL, hold_reason=NULL, error_rule=NULL, error_message=NULL, error_position=NULL WHERE id=?1",
            [id],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Marks a file whose state cannot be recovered as failed: the lines of documents
    /// whose output was lost become rejects with `rule` (so they show up for review), and
    /// their keys and claims are given back.
    pub fn fail(&mut self, id: i64, rule: &str, message: &str, lost: &Lost) -> Result<()> {
        let ranges = lost.ranges();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        leases::keep(&tx, &self.fences, &Leased::File(id))?;
        let statuses = [UnitStatus::Applied, UnitStatus::Unmapped];
        spans::reject_late(&tx, id, &statuses, lost, rule, message)?;
        tx.execute(
            &format!(
                "DELETE FROM keys WHERE file_id=?1 AND {}",
                lost.holds("unit_seq")
            ),
            params![id, ranges],
        )?;
        for (entity, from, to) in lost.list() {
            made::forget(&tx, id, from, to, |e| entity == "*" || entity == e)?;
        }
        // Deliveries of versions that are gone can never be sent.
        tx.execute(
            "DELETE FROM deliveries WHERE file_id=?1 AND state IN ('pending', 'retry', 'dead') \
             AND NOT EXISTS (SELECT 1 FROM versions v WHERE v.entity = deliveries.entity \
             AND v.key = deliveries.key AND v.version = deliveries.version)",
            [id],
        )?;
        recount(&tx, id)?;
        tx.execute(
            "UPDATE files SET outcome=?2, state='publishing', inflight_seq=NULL, waiting_on=NULL, error_rule=?3, error_message=?4 WHERE id=?1",
            params![id, Outcome::Failed.as_str(), rule, message],
        )?;
        tx.commit()?;
        Ok(())
    }
}
