//! The unit and line rows of a batch. Applied units with nothing of their own to say go
//! into one packed run (runs.rs); the rest, and every line with something to say, are
//! rows, a hundred a statement.

use std::collections::HashMap;

use super::rows::insert_many;
use super::BatchTx;
use crate::ledger::db::Value;
use crate::ledger::model::{LineRow, UnitRow};
use crate::ledger::Result;

fn opt(t: Option<&str>) -> Value<'_> {
    t.map_or(Value::Null, Value::Text)
}

/// Whether a rejected unit's reasons are its rejected lines' rows (reasons.rs), `lines`
/// being the batch's line rows in ordinal order.
fn told_by_lines(u: &UnitRow, lines: &[LineRow]) -> bool {
    let from = lines.partition_point(|l| l.ordinal < u.first_ordinal);
    let to = lines.partition_point(|l| l.ordinal < u.first_ordinal + u.line_count);
    u.status == crate::format::UnitStatus::Rejected
        && crate::ledger::reasons::told_by_rows(&u.reasons, lines[from..to.max(from)].iter())
}

impl BatchTx<'_> {
    pub fn write_lines(&self, file_id: i64, lines: &[LineRow]) -> Result<()> {
        let values: Vec<Value<'_>> = lines
            .iter()
            .flat_map(|l| {
                let r = l.reason.as_ref();
                [
                    Value::Int(file_id),
                    Value::Int(l.ordinal),
                    Value::Int(l.unit_seq),
                    Value::Int(l.pos.line as i64),
                    Value::Int(l.pos.byte as i64),
                    Value::Int(l.pos.record as i64),
                    opt(l.pos.locator.as_deref()),
                    Value::Text(l.status),
                    opt(l.key.as_deref()),
                    opt(r.map(|r| r.rule.as_str())),
                    opt(r.and_then(|r| r.field.as_deref())),
                    opt(r.and_then(|r| r.value.as_deref())),
                    opt(r.map(|r| r.message.as_str())),
                    opt(l.raw.as_deref()),
                ]
            })
            .collect();
        insert_many(
            &self.tx,
            "INSERT INTO lines(file_id, ordinal, unit_seq, line, byte, record, locator, status, key, rule, field, \
             value, message, raw)",
            "ON CONFLICT (file_id, ordinal) DO UPDATE SET unit_seq=excluded.unit_seq, line=excluded.line, \
             byte=excluded.byte, record=excluded.record, locator=excluded.locator, status=excluded.status, \
             key=excluded.key, rule=excluded.rule, field=excluded.field, value=excluded.value, \
             message=excluded.message, raw=excluded.raw",
            14,
            &values,
        )
    }

    /// Writes a batch's units: applied ones with nothing of their own to say as one packed
    /// run (see runs.rs `packable`), the rest as rows. `lines` are the batch's line rows.
    pub fn write_units(&self, file_id: i64, units: &[UnitRow], lines: &[LineRow]) -> Result<()> {
        // Each unit's line rows: how many, and whether all are skipped.
        let mut line_rows: HashMap<i64, (i64, bool)> = HashMap::new();
        for l in lines {
            let e = line_rows.entry(l.unit_seq).or_insert((0, true));
            *e = (e.0 + 1, e.1 && l.status == "skipped");
        }
        let mut packed = Vec::with_capacity(units.len());
        let mut rows = Vec::new();
        for u in units {
            let lr = line_rows.get(&u.seq).copied();
            match crate::ledger::runs::packable(u, lr) {
                true => packed.push((u, lr.map_or(0, |(n, _)| n))),
                false => rows.push(u),
            }
        }
        crate::ledger::runs::write_run(&self.tx, file_id, &packed)?;
        self.write_unit_rows(file_id, &rows, lines)
    }

    fn write_unit_rows(&self, file_id: i64, units: &[&UnitRow], lines: &[LineRow]) -> Result<()> {
        // The text each row binds, made first: the values borrow it.
        let mut texts = Vec::with_capacity(units.len());
        for u in units {
            let reasons = match u.reasons.is_empty() {
                true => None,
                false if told_by_lines(u, lines) => {
                    Some(crate::ledger::reasons::FROM_LINES.to_owned())
                }
                false => Some(serde_json::to_string(&u.reasons)?),
            };
            let detail = match u.detail.is_null() {
                true => None,
                false => Some(serde_json::to_string(&u.detail)?),
            };
            let tolerated = (!u.tolerated.is_empty()).then(|| u.tolerated.join(","));
            texts.push((reasons, detail, tolerated));
        }
        let values: Vec<Value<'_>> = units
            .iter()
            .zip(&texts)
            .flat_map(|(u, (reasons, detail, tolerated))| {
                let headline = u.reasons.first().map(|(_, r)| r);
                [
                    Value::Int(file_id),
                    Value::Int(u.seq),
                    Value::Text(&u.label),
                    Value::Text(u.status.as_str()),
                    u.key.as_deref().map_or(Value::Null, Value::Text),
                    Value::Int(u.first_ordinal),
                    Value::Int(u.line_count),
                    opt(reasons.as_deref()),
                    opt(detail.as_deref()),
                    opt(tolerated.as_deref()),
                    Value::Int(u.pos.line as i64),
                    Value::Int(u.pos.byte as i64),
                    Value::Int(u.pos.record as i64),
                    u.pos.locator.as_deref().map_or(Value::Null, Value::Text),
                    headline.map_or(Value::Null, |r| Value::Text(r.rule.as_str())),
                    headline.map_or(Value::Null, |r| Value::Text(r.message.as_str())),
                    u.spans.as_deref().map_or(Value::Null, Value::Blob),
                ]
            })
            .collect();
        insert_many(
            &self.tx,
            "INSERT INTO units(file_id, seq, label, status, key, first_ordinal, line_count, reasons, detail, tolerated, \
             line, byte, record, locator, rule, message, spans)",
            "ON CONFLICT (file_id, seq) DO UPDATE SET label=excluded.label, status=excluded.status, key=excluded.key, \
             first_ordinal=excluded.first_ordinal, line_count=excluded.line_count, reasons=excluded.reasons, \
             detail=excluded.detail, tolerated=excluded.tolerated, line=excluded.line, byte=excluded.byte, \
             record=excluded.record, locator=excluded.locator, rule=excluded.rule, message=excluded.message, \
             spans=excluded.spans",
            17,
            &values,
        )
    }
}
