//! The job side of the tabular engine: what a unit's job does with the rows the reader
//! gave it, on a worker thread. Every cell of every row is checked (`check`), rows of one
//! group must agree on the fields that feed the record header, the good rows are mapped
//! into one record, and one bad row rejects the whole document. It needs nothing but the
//! definition and the rows the job owns, which is what lets jobs run in parallel.

use std::borrow::Cow;

use super::reader::JobRow;
use super::trimmed_text;
use crate::canonical::{Body, Record};
use crate::tabular::def::{MapValue, Piece, TabularDef, Template};
use crate::unit::{mask, Evaluation, LineVerdict, Reason};

#[path = "check.rs"]
mod check;
use check::{check_cell, fail, Val};

pub(super) struct Flags {
    pub(super) split: bool,
    pub(super) oversize: bool,
    pub(super) max: usize,
}

fn render(t: &Template, vals: &[Option<Val>]) -> String {
    let mut out = String::new();
    for p in &t.0 {
        match p {
            Piece::Text(s) => out.push_str(s),
            Piece::Field(i) => {
                if let Some(Some(v)) = vals.get(*i) {
                    out.push_str(&v.text);
                }
            }
        }
    }
    out
}

/// Produces one mapped value; `Ok(None)` leaves the target out (empty source).
fn map_value<'a>(
    def: &'a TabularDef,
    mv: &'a MapValue,
    vals: &'a [Option<Val>],
) -> Result<Option<Body<'a>>, Reason> {
    let val = |i: &usize| vals.get(*i).and_then(Option::as_ref);
    Ok(match mv {
        MapValue::Const(v) => Some(Body::Json(v)),
        MapValue::Field(i) => val(i).map(Val::body),
        MapValue::DateOf(i) => val(i).map(|v| {
            let day = v.text.split('T').next().unwrap_or_default();
            Body::Str(Cow::Borrowed(day))
        }),
        MapValue::Template(t) => {
            let s = render(t, vals);
            (!s.is_empty()).then_some(Body::Str(Cow::Owned(s)))
        }
        MapValue::Translate {
            field,
            table,
            default,
        } => match val(field) {
            None => default.as_deref().map(|d| Body::Str(Cow::Borrowed(d))),
            Some(v) => match table.get(v.text.as_ref()).or(default.as_ref()) {
                Some(s) => Some(Body::Str(Cow::Borrowed(s))),
                None => {
                    let f = &def.fields[*field];
                    let shown = if f.sensitive {
                        mask(&v.text)
                    } else {
                        v.text.to_string()
                    };
                    return Err(Reason::new(
                        "translate",
                        format!("{}: no translation for '{shown}'", f.name),
                    )
                    .field(f.name.clone())
                    .value(shown));
                }
            },
        },
    })
}

fn map_object<'a>(
    def: &'a TabularDef,
    entries: &'a [(String, MapValue)],
    vals: &'a [Option<Val>],
) -> Result<Vec<(&'a str, Body<'a>)>, Reason> {
    let mut obj = Vec::with_capacity(entries.len() + 1);
    for (target, mv) in entries {
        if let Some(v) = map_value(def, mv, vals)? {
            obj.push((target.as_str(), v));
        }
    }
    Ok(obj)
}

/// A unit's rows checked, its record built when every row holds, and otherwise every
/// row's verdict: the reasons of those that broke a rule, `rejected-with-document` for the
/// others.
pub(super) fn evaluate(
    def: &TabularDef,
    binding: &[usize],
    label: &str,
    rows: &[JobRow],
    flags: Flags,
) -> Evaluation {
    let mut verdicts = Vec::with_capacity(rows.len());
    let mut values: Vec<Option<Vec<Option<Val>>>> = Vec::with_capacity(rows.len());
    let mut first: Option<usize> = None;
    for (r, row) in rows.iter().enumerate() {
        if row.blank {
            verdicts.push(LineVerdict::Skipped("blank line".into()));
            values.push(None);
            continue;
        }
        let first_good = first.and_then(|f0| Some((rows[f0].pos.line, values[f0].as_deref()?)));
        match row_values(def, binding, label, row, &flags, first_good) {
            Ok(vals) => {
                first.get_or_insert(r);
                values.push(Some(vals));
                verdicts.push(LineVerdict::Ok);
            }
            Err(e) => {
                values.push(None);
                verdicts.push(LineVerdict::rejected(e));
            }
        }
    }
    let lines = map_lines(def, &values, &mut verdicts);
    let header = map_header(def, first, &values, &mut verdicts);
    let mut unit_errors = Vec::new();
    let mut records = Vec::new();
    if let Some(f0) = verdicts
        .iter()
        .position(|v| matches!(v, LineVerdict::Rejected(_)))
    {
        reject_with_document(label, rows, f0, &mut verdicts);
    } else if let (Some(f0), Some(mut obj)) = (first, header) {
        let vals = values[f0].as_deref().unwrap_or(&[]);
        if def.map.lines.is_some() {
            obj.push(("lines", Body::List(lines)));
        }
        let key = render(&def.key, vals);
        match Record::build_body(def.map.entity, key, Body::Map(obj)) {
            Ok(r) => records.push(r),
            Err(e) => unit_errors.push(e),
        }
    }
    Evaluation {
        key: document_key(def, rows, &values),
        verdicts,
        unit_errors,
        records,
        ..Evaluation::default()
    }
}

/// One row's checked values, or why it is rejected: the reader's problem, the group's
/// flags, its first cell that breaks a rule, or a header field that differs from the
/// group's first good row (`first`: that row's line and values).
fn row_values<'r>(
    def: &'r TabularDef,
    binding: &[usize],
    label: &str,
    row: &'r JobRow,
    flags: &Flags,
    first: Option<(u64, &[Option<Val>])>,
) -> Result<Vec<Option<Val<'r>>>, Reason> {
    if let Some(p) = &row.problem {
        return Err((**p).clone());
    }
    if flags.oversize {
        return Err(Reason::new(
            "group-too-large",
            format!(
                "{label} has more than {} lines (max_unit_lines); rejected without being buffered",
                flags.max
            ),
        ));
    }
    if flags.split {
        return Err(Reason::new(
            "group-split",
            format!(
                "{label} appeared earlier in the file and its group was already closed: rows of one group must be contiguous"
            ),
        ));
    }
    let mut vals = Vec::with_capacity(def.fields.len());
    for i in 0..def.fields.len() {
        vals.push(check_cell(def, binding, row, i)?);
    }
    // Fields that feed the record header must agree across the group.
    let Some((first_line, v0)) = first else {
        return Ok(vals);
    };
    match def.head_fields.iter().find(|&&i| v0[i] != vals[i]) {
        None => Ok(vals),
        Some(&i) => {
            let shown = vals[i]
                .as_ref()
                .map(|v| v.text.to_string())
                .unwrap_or_default();
            let shown = if def.fields[i].sensitive {
                mask(&shown)
            } else {
                shown
            };
            Err(fail(
                def,
                binding,
                row,
                i,
                "group-inconsistent",
                &shown,
                format!("differs from the first line of {label} (line {first_line})"),
            ))
        }
    }
}

/// The good rows mapped as the record's lines; a row whose mapping fails (a missing
/// translation) is rejected instead.
fn map_lines<'a>(
    def: &'a TabularDef,
    values: &'a [Option<Vec<Option<Val>>>],
    verdicts: &mut [LineVerdict],
) -> Vec<Body<'a>> {
    let mut lines = Vec::new();
    if let Some(lmap) = &def.map.lines {
        for (r, vals) in values.iter().enumerate() {
            if let Some(vals) = vals {
                match map_object(def, lmap, vals) {
                    Ok(o) => lines.push(Body::Map(o)),
                    Err(e) => verdicts[r] = LineVerdict::rejected(e),
                }
            }
        }
    }
    lines
}

/// The record header, from the first good row (`first`) when no row is rejected; a failed
/// translation there is that row's fault.
fn map_header<'a>(
    def: &'a TabularDef,
    first: Option<usize>,
    values: &'a [Option<Vec<Option<Val>>>],
    verdicts: &mut [LineVerdict],
) -> Option<Vec<(&'a str, Body<'a>)>> {
    let f0 = first?;
    if verdicts
        .iter()
        .any(|v| matches!(v, LineVerdict::Rejected(_)))
    {
        return None;
    }
    match map_object(def, &def.map.header, values[f0].as_deref().unwrap_or(&[])) {
        Ok(obj) => Some(obj),
        Err(e) => {
            verdicts[f0] = LineVerdict::rejected(e);
            None
        }
    }
}

/// Rejects the rows still good with the document, naming the first rejected row (`f0`)
/// and its rule.
fn reject_with_document(label: &str, rows: &[JobRow], f0: usize, verdicts: &mut [LineVerdict]) {
    let rule = match &verdicts[f0] {
        LineVerdict::Rejected(r) => r.rule.clone(),
        _ => String::new(),
    };
    let at = if rows[f0].sheet.is_some() {
        format!("row {}", rows[f0].row_number)
    } else {
        format!("line {}", rows[f0].pos.line)
    };
    for v in verdicts.iter_mut() {
        if matches!(v, LineVerdict::Ok) {
            *v = LineVerdict::rejected(Reason::new(
                "rejected-with-document",
                format!("{label} is rejected as a whole: {at} broke rule '{rule}'"),
            ));
        }
    }
}

/// The document's business key as its rows state it, for every line of the unit, rejected
/// or not: from the first row that gives it, using a field's checked value where the row
/// passed its checks and the cell's own text where it did not. Sensitive parts are masked
/// (the key is shown in reject reports).
fn document_key(
    def: &TabularDef,
    rows: &[JobRow],
    values: &[Option<Vec<Option<Val>>>],
) -> Option<String> {
    rows.iter().zip(values).find_map(|(row, vals)| {
        if row.blank {
            return None;
        }
        let mut key = String::new();
        let mut any = false;
        for piece in &def.key.0 {
            match piece {
                Piece::Text(t) => key.push_str(t),
                Piece::Field(i) => {
                    // Borrowed: the key being built is the one copy made of it.
                    let text: Cow<str> = match vals {
                        Some(v) => v
                            .get(*i)
                            .and_then(Option::as_ref)
                            .map_or(Cow::Borrowed(""), |v| Cow::Borrowed(&*v.text)),
                        None => row.cells.get(*i).map_or(Cow::Borrowed(""), trimmed_text),
                    };
                    any |= !text.is_empty();
                    if def.fields[*i].sensitive {
                        key.push_str(&mask(&text));
                    } else {
                        key.push_str(&text);
                    }
                }
            }
        }
        any.then_some(key)
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{format, run, v, DEF};
    use crate::format::testing::{ctx_for, read_all_with};
    use crate::format::UnitStatus;

    #[test]
    fn siblings_and_inconsistent_headers_reject_the_group() {
        let got = run(
            "order_no,qty,cur\nA,1,EUR\nA,-1,EUR\nB,1,EUR\nB,2,USD\nC,1,EUR\n",
            None,
        );
        assert_eq!(got[1].2, v(&["rejected-with-document", "min"]));
        assert_eq!(
            got[2].2,
            v(&["rejected-with-document", "group-inconsistent"])
        );
        assert_eq!(got[3].1, UnitStatus::Applied);
    }

    #[test]
    fn regression_rejected_documents_had_no_business_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        std::fs::write(&p, "order_no,qty,cur\nA,1,EUR\nA,-1,EUR\nB,x,EUR\n,1,EUR\n").unwrap();
        let f = format(DEF);
        let r = read_all_with(&f, &p, &ctx_for(&p));
        let keys: Vec<(UnitStatus, Option<&str>)> = r
            .units
            .iter()
            .map(|u| (u.status(), u.eval.key.as_deref()))
            .collect();
        use UnitStatus::*;
        assert_eq!(
            keys,
            vec![
                (Skipped, None),
                (Rejected, Some("A")),
                // The key comes from the cell even when its row fails another check.
                (Rejected, Some("B")),
                (Rejected, None),
            ]
        );
    }
}
