//! The exceptions queue's questions of the ledger: open rejected documents grouped by the
//! rule they broke, files rejected by a file-level error, dead letters grouped by target,
//! entity and the target's message — and the two changes a person makes from that queue
//! that the CLI has no method for: retrying one such group, and resolving a file-level
//! error (which belongs to no document).

use super::db::{params, OptionalExtension};

use super::console_model::*;
use super::{now, Ledger, Result};

impl Ledger {
    /// A file's rejected documents with their first broken rule and resolution.
    pub fn rejected_docs_of_file(&self, file_id: i64) -> Result<Vec<RejectedDoc>> {
        self.rejected_docs("u.file_id = ?1", params![file_id], 100_000)
    }

    /// Open rejected documents of decided files whose first broken rule is `rule`.
    pub fn open_rejects_of_rule(&self, rule: &str, limit: i64) -> Result<Vec<RejectedDoc>> {
        self.rejected_docs(
            &format!("f.state = 'done' AND r.file_id IS NULL AND {PRIMARY} = ?1"),
            params![rule],
            limit,
        )
    }

    fn rejected_docs(
        &self,
        cond: &str,
        p: impl super::db::Params,
        limit: i64,
    ) -> Result<Vec<RejectedDoc>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT u.file_id, f.name, u.seq, u.label, u.key, r.resolved_at, r.how, r.actor, r.note, r.by_file_id, \
             COALESCE((SELECT l.ordinal FROM lines l WHERE l.file_id = u.file_id AND l.ordinal >= u.first_ordinal \
               AND l.ordinal < u.first_ordinal + u.line_count AND l.status = 'rejected' \
               ORDER BY (l.rule IS NULL OR l.rule = 'rejected-with-document'), l.ordinal LIMIT 1), u.first_ordinal) AS o \
             FROM units u JOIN files f ON f.id = u.file_id \
             LEFT JOIN resolutions r ON r.file_id = u.file_id AND r.unit_seq = u.seq \
             WHERE u.status = 'rejected' AND {cond} ORDER BY u.file_id, u.seq LIMIT {limit}"
        ))?;
        let docs = st
            .query_map(p, |r| {
                let at: Option<String> = r.get(5)?;
                let resolution = match at {
                    Some(at) => Some(Resolution {
                        at,
                        how: r.get(6)?,
                        actor: r.get(7)?,
                        note: r.get(8)?,
                        by_file_id: r.get(9)?,
                    }),
                    None => None,
                };
                Ok(RejectedDoc {
                    file_id: r.get(0)?,
                    file_name: r.get(1)?,
                    seq: r.get(2)?,
                    label: r.get(3)?,
                    key: r.get(4)?,
                    ordinal: r.get(10)?,
                    line: None,
                    locator: None,
                    rule: None,
                    field: None,
                    message: None,
                    resolution,
                })
            })?
            .collect::<super::db::Result<Vec<_>>>()?;
        docs.into_iter().map(|d| self.with_first_line(d)).collect()
    }

    /// The document's first rejected line that broke a rule of its own (else its first):
    /// its row, or, for a document rejected after it was committed, what its unit tells.
    fn with_first_line(&self, mut d: RejectedDoc) -> Result<RejectedDoc> {
        let Some(o) = d.ordinal else { return Ok(d) };
        let Some(l) = self.file_lines(d.file_id, o, 1, true)?.pop() else {
            return Ok(d);
        };
        (d.line, d.locator, d.rule, d.field, d.message) =
            (Some(l.line), l.locator, l.rule, l.field, l.message);
        Ok(d)
    }

    /// Open rejected documents of decided files, grouped by their first broken rule, the
    /// biggest group first.
    pub fn reject_groups(&self) -> Result<Vec<RejectGroup>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT COALESCE({PRIMARY}, 'rejected-with-document'), COUNT(*), COUNT(DISTINCT u.file_id), MIN(f.finished_at) \
             FROM units u JOIN files f ON f.id = u.file_id \
             LEFT JOIN resolutions r ON r.file_id = u.file_id AND r.unit_seq = u.seq \
             WHERE u.status = 'rejected' AND f.state = 'done' AND r.file_id IS NULL \
             GROUP BY 1 ORDER BY 2 DESC, 1"
        ))?;
        let rows = st
            .query_map([], |r| {
                Ok(RejectGroup {
                    rule: r.get(0)?,
                    documents: r.get(1)?,
                    files: r.get(2)?,
                    oldest: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                })
            })?
            .collect::<super::db::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Open rejected documents of a rule as `(file, seq)`: what resolving the group means.
    pub fn open_reject_units_of_rule(&self, rule: &str) -> Result<Vec<(i64, i64)>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT u.file_id, u.seq FROM units u JOIN files f ON f.id = u.file_id \
             LEFT JOIN resolutions r ON r.file_id = u.file_id AND r.unit_seq = u.seq \
             WHERE u.status = 'rejected' AND f.state = 'done' AND r.file_id IS NULL \
             AND COALESCE({PRIMARY}, 'rejected-with-document') = ?1 ORDER BY u.file_id, u.seq"
        ))?;
        let rows = st
            .query_map([rule], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<super::db::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Files rejected whole (or failed) by a file-level error and not resolved.
    pub fn open_file_errors(&self) -> Result<Vec<FileErrorRow>> {
        let mut st = self.conn.prepare(
            "SELECT f.id, f.name, f.error_rule, f.error_message, f.error_position, COALESCE(f.finished_at, f.claimed_at) \
             FROM files f WHERE f.state = 'done' AND f.outcome IN ('rejected', 'failed') AND f.error_rule IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM resolutions r WHERE r.file_id = f.id AND r.unit_seq = -1) \
             AND NOT EXISTS (SELECT 1 FROM files n WHERE n.fingerprint = f.fingerprint AND n.attempt > f.attempt) \
             ORDER BY f.id DESC LIMIT 500",
        )?;
        let rows = st
            .query_map([], |r| {
                Ok(FileErrorRow {
                    file_id: r.get(0)?,
                    name: r.get(1)?,
                    rule: r.get(2)?,
                    message: r.get(3)?,
                    position: r.get(4)?,
                    at: r.get(5)?,
                })
            })?
            .collect::<super::db::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Marks a file's file-level error seen and dealt with by a person (a resolution of
    /// the pseudo-document -1, as such an error belongs to no document).
    pub fn resolve_file_error(&self, file_id: i64, actor: &str, note: &str) -> Result<usize> {
        Ok(self.conn.execute(
            "INSERT OR IGNORE INTO resolutions(file_id, unit_seq, resolved_at, how, actor, note) \
             SELECT id, -1, ?2, 'resolved', ?3, ?4 FROM files WHERE id = ?1 AND error_rule IS NOT NULL",
            params![file_id, now(), actor, note],
        )?)
    }

    /// How a file's file-level error was resolved, if it was.
    pub fn file_error_resolution(&self, file_id: i64) -> Result<Option<Resolution>> {
        Ok(self
            .conn
            .query_row(
                "SELECT resolved_at, how, actor, note, by_file_id FROM resolutions WHERE file_id=?1 AND unit_seq=-1",
                [file_id],
                |r| {
                    Ok(Resolution {
                        at: r.get(0)?,
                        how: r.get(1)?,
                        actor: r.get(2)?,
                        note: r.get(3)?,
                        by_file_id: r.get(4)?,
                    })
                },
            )
            .optional()?)
    }

    /// Dead letters grouped by target, entity, last status and cause (the target's message
    /// with its particulars taken out), biggest group first.
    pub fn dead_groups(&self) -> Result<Vec<DeadGroup>> {
        let mut groups: Vec<DeadGroup> = Vec::new();
        for d in dead_letters(&self.conn, None)? {
            let cause = cause_of(d.message.as_deref());
            match groups.iter_mut().find(|g| {
                g.target == d.target
                    && g.entity == d.entity
                    && g.status == d.status
                    && g.cause == cause
            }) {
                Some(g) => {
                    g.count += 1;
                    if d.created_at < g.oldest {
                        g.oldest = d.created_at;
                    }
                }
                None => groups.push(DeadGroup {
                    target: d.target,
                    entity: d.entity,
                    status: d.status,
                    cause,
                    example: d.message,
                    count: 1,
                    oldest: d.created_at,
                }),
            }
        }
        groups.sort_by(|a, b| b.count.cmp(&a.count).then(a.target.cmp(&b.target)));
        Ok(groups)
    }

    /// The dead letters of one group, oldest first, at most `limit`.
    pub fn dead_of_group(&self, g: &DeadGroupSel, limit: usize) -> Result<Vec<DeliveryView>> {
        let ids: Vec<i64> = dead_letters(&self.conn, Some(g))?
            .into_iter()
            .map(|d| d.id)
            .take(limit)
            .collect();
        self.deliveries_where(
            "d.id IN (SELECT CAST(value AS BIGINT) FROM json_each(?1))",
            [serde_json::to_string(&ids)?],
            limit as i64,
        )
    }

    /// Queues one group's dead letters again (after a person fixed the cause); with
    /// `dry_run`, only finds them. Returns the deliveries' ids, to follow their progress.
    pub fn retry_dead_group(&self, g: &DeadGroupSel, dry_run: bool) -> Result<Vec<i64>> {
        self.immediate(|c| {
            let ids: Vec<i64> = dead_letters(c, Some(g))?.into_iter().map(|d| d.id).collect();
            if !dry_run {
                c.execute(
                    "UPDATE deliveries SET state='pending', attempts=0, next_at=?1, last_error=NULL \
                     WHERE state = 'dead' AND id IN (SELECT CAST(value AS BIGINT) FROM json_each(?2))",
                    params![now(), serde_json::to_string(&ids)?],
                )?;
            }
            Ok(ids)
        })
    }

    /// How many of these deliveries are in each state now.
    pub fn delivery_states(&self, ids: &[i64]) -> Result<Vec<(String, i64)>> {
        let mut st = self.conn.prepare(
            "SELECT state, COUNT(*) FROM deliveries WHERE id IN (SELECT CAST(value AS BIGINT) FROM json_each(?1)) GROUP BY 1 ORDER BY 1",
        )?;
        let rows = st
            .query_map([serde_json::to_string(ids)?], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<super::db::Result<Vec<_>>>()?;
        Ok(rows)
    }
}

/// A rejected unit's first broken rule (`u` is the unit): the first rejected line that
/// broke a rule of its own, not one rejected only with its document; for a unit rejected
/// after it was committed, which has no rejected line rows, its own rule (`rejected.rs`).
const PRIMARY: &str = "COALESCE((SELECT l.rule FROM lines l WHERE l.file_id = u.file_id AND l.ordinal >= u.first_ordinal \
    AND l.ordinal < u.first_ordinal + u.line_count AND l.status = 'rejected' AND l.rule IS NOT NULL \
    AND l.rule != 'rejected-with-document' ORDER BY l.ordinal LIMIT 1), \
    CASE WHEN NOT EXISTS (SELECT 1 FROM lines l WHERE l.file_id = u.file_id AND l.ordinal >= u.first_ordinal \
    AND l.ordinal < u.first_ordinal + u.line_count AND l.status = 'rejected') THEN u.rule END)";

/// A dead letter as grouping needs it.
struct Dead {
    id: i64,
    target: String,
    entity: String,
    status: Option<i64>,
    message: Option<String>,
    created_at: String,
}

/// Dead letters, oldest first; with a group, only that group's.
fn dead_letters(c: &super::db::Connection, g: Option<&DeadGroupSel>) -> Result<Vec<Dead>> {
    let mut st = c.prepare(
        "SELECT id, target, entity, last_status, last_error, created_at FROM deliveries \
         WHERE state = 'dead' AND (CAST(?1 AS TEXT) IS NULL OR (target = ?1 AND entity = ?2 AND last_status IS NOT DISTINCT FROM CAST(?3 AS BIGINT))) ORDER BY id",
    )?;
    let rows = st
        .query_map(
            params![
                g.map(|g| &g.target),
                g.map(|g| &g.entity),
                g.and_then(|g| g.status)
            ],
            |r| {
                Ok(Dead {
                    id: r.get(0)?,
                    target: r.get(1)?,
                    entity: r.get(2)?,
                    status: r.get(3)?,
                    message: r.get(4)?,
                    created_at: r.get(5)?,
                })
            },
        )?
        .collect::<super::db::Result<Vec<_>>>()?;
    Ok(match g {
        Some(g) => rows
            .into_iter()
            .filter(|d| cause_of(d.message.as_deref()) == g.cause)
            .collect(),
        None => rows,
    })
}

/// A target's message with its particulars taken out — quoted values become `"…"`, words
/// with digits `#` — so "unknown customer \"C-17\"" and "unknown customer \"C-18\"" are
/// one cause a person fixes once.
pub fn cause_of(message: Option<&str>) -> String {
    let Some(m) = message else {
        return String::new();
    };
    let mut out = String::with_capacity(m.len());
    let mut chars = m.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '"' || c == '\'' {
            for d in chars.by_ref() {
                if d == c {
                    break;
                }
            }
            out.push(c);
            out.push('…');
            out.push(c);
        } else if c.is_alphanumeric() {
            let mut word = String::from(c);
            while let Some(&d) = chars
                .peek()
                .filter(|d| d.is_alphanumeric() || matches!(d, '-' | '_' | '.' | '/'))
            {
                word.push(d);
                chars.next();
            }
            if word.chars().any(|d| d.is_ascii_digit()) {
                out.push('#');
            } else {
                out.push_str(&word);
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::cause_of;

    #[test]
    fn a_cause_is_a_message_without_its_particulars() {
        assert_eq!(
            cause_of(Some("HTTP 422: unknown customer \"C0000\"")),
            "HTTP #: unknown customer \"…\""
        );
        assert_eq!(
            cause_of(Some("field 'sku' is required")),
            "field '…' is required"
        );
        assert_eq!(
            cause_of(Some("order PO-17 exceeds limit 5.5")),
            "order # exceeds limit #"
        );
        assert_eq!(cause_of(Some("unterminated \"quote")), "unterminated \"…\"");
        assert_eq!(cause_of(None), "");
    }
}
