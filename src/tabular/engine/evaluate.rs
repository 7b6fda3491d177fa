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

pub(super) fn evaluate(
    def: &TabularDef,
    binding: &[usize],
    label: &str,
    rows: &[JobRow],
    flags: Flags,
) -> Evaluation {
    let mut verdicts = Vec::with_capacity(rows.len());
    let mut values: Vec<Option<Vec<Option<Val>>>> = Vec::with_capacity(rows.len());
    let head_fields = &def.head_fields;
    let mut first: Option<usize> = None;
    for (r, row) in rows.iter().enumerate() {
        if row.blank {
            verdicts.push(LineVerdict::Skipped("blank line".into()));
            values.push(None);
            continue;
        }
        let verdict = if let Some(p) = &row.problem {
            Err((**p).clone())
        } else if flags.oversize {
            Err(Reason::new(
                "group-too-large",
                format!(
                    "{label} has more than {} lines (max_unit_lines); rejected without being buffered",
                    flags.max
                ),
            ))
        } else if flags.split {
            Err(Reason::new(
                "group-split",
                format!(
                    "{label} appeared earlier in the file and its group was already closed: rows of one group must be contiguous"
                ),
            ))
        } else {
            let mut vals = Vec::with_capacity(def.fields.len());
            let mut bad = None;
            for i in 0..def.fields.len() {
                match check_cell(def, binding, row, i) {
                    Ok(v) => vals.push(v),
                    Err(e) => {
                        bad = Some(e);
                        break;
                    }
                }
            }
            match bad {
                Some(e) => Err(e),
                None => {
                    // Fields that feed the record header must agree across the group.
                    let clash = first.and_then(|f0| {
                        let v0 = values[f0].as_ref()?;
                        head_fields.iter().find(|&&i| v0[i] != vals[i]).copied()
                    });
                    match clash {
                        Some(i) => {
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
                                format!(
                                    "differs from the first line of {label} (line {})",
                                    rows[first.unwrap_or(0)].pos.line
                                ),
                            ))
                        }
                        None => Ok(vals),
                    }
                }
            }
        };
        match verdict {
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

    // Mapping of the lines (per row) can still fail on a missing translation.
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
    // The record header comes from the first good row; a failed translation there is
    // that row's fault.
    let mut header = None;
    if let Some(f0) = first {
        if !verdicts
            .iter()
            .any(|v| matches!(v, LineVerdict::Rejected(_)))
        {
            match map_object(def, &def.map.header, values[f0].as_deref().unwrap_or(&[])) {
                Ok(obj) => header = Some(obj),
                Err(e) => verdicts[f0] = LineVerdict::rejected(e),
            }
        }
    }
    let mut unit_errors = Vec::new();
    let mut records = Vec::new();
    if let Some(f0) = verdicts
        .iter()
        .position(|v| matches!(v, LineVerdict::Rejected(_)))
    {
        let rule = match &verdicts[f0] {
            LineVerdict::Rejected(r) => r.rule.clone(),
            _ => String::new(),
        };
        let line = rows[f0].pos.line;
        let at = if rows[f0].sheet.is_some() {
            format!("row {}", rows[f0].row_number)
        } else {
            format!("line {line}")
        };
        for v in verdicts.iter_mut() {
            if matches!(v, LineVerdict::Ok) {
                *v = LineVerdict::rejected(Reason::new(
                    "rejected-with-document",
                    format!("{label} is rejected as a whole: {at} broke rule '{rule}'"),
                ));
            }
        }
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
