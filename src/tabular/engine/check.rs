//! Typing and checking one cell against its field: type, length, pattern, checksum, code
//! list, bounds. Apart from the mapping because it is most of the job's code and nearly all
//! of its cost per cell. A checked value borrows the cell's own text wherever writing the
//! value would give that text back, so most cells pass without a copy.

use std::borrow::Cow;

use rust_decimal::Decimal;

use super::JobRow;
use crate::canonical::Body;
use crate::tabular::datetime::DateTimeSpec;
use crate::tabular::def::{Bound, CodeTable, ColumnRef, Field, FieldType, TabularDef};
use crate::tabular::{column_letters, Cell};
use crate::unit::{mask, Reason};

/// A field's checked value: its text (for templates, translations and the record), and
/// whether the record gets it as a JSON boolean instead of a string. One string, not a
/// JSON copy beside the text: a value is made for every cell.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Val<'r> {
    /// Borrowed from the cell (or the definition) when the checked value reads exactly
    /// as the cell does, as nearly every value does.
    pub(super) text: Cow<'r, str>,
    boolean: bool,
}

impl Val<'_> {
    pub(super) fn body(&self) -> Body<'_> {
        if self.boolean {
            Body::Bool(self.text == "true")
        } else {
            Body::Str(Cow::Borrowed(&self.text))
        }
    }
}

fn cell_ref(def: &TabularDef, binding: &[usize], row: &JobRow, field: usize) -> String {
    match &row.sheet {
        Some(sheet) => {
            let col = binding.get(field).copied().unwrap_or(usize::MAX);
            if col == usize::MAX {
                format!("{sheet}!{}: ", row.row_number)
            } else {
                format!("{sheet}!{}{}: ", column_letters(col), row.row_number)
            }
        }
        None => match &def.fields[field].column {
            ColumnRef::Name(n) => format!("column '{n}': "),
            ColumnRef::Index(i) => format!("column {}: ", i + 1),
        },
    }
}

pub(super) fn fail(
    def: &TabularDef,
    binding: &[usize],
    row: &JobRow,
    field: usize,
    rule: &str,
    shown: &str,
    msg: String,
) -> Reason {
    let f = &def.fields[field];
    let reason = Reason::new(
        rule,
        format!("{}{}: {msg}", cell_ref(def, binding, row, field), f.name),
    )
    .field(f.name.clone())
    .value(shown.to_string());
    // A spreadsheet error points at its cell, not just its row.
    match (&row.sheet, binding.get(field).copied()) {
        (Some(sheet), Some(col)) if col != usize::MAX => {
            reason.at(format!("{sheet}!{}{}", column_letters(col), row.row_number))
        }
        _ => reason,
    }
}

fn decimal_of(cell: &Cell, text: &str, dsep: char, tsep: Option<char>) -> Option<Decimal> {
    match cell {
        Cell::Int(i) => Some(Decimal::from(*i)),
        Cell::Float(f) if f.is_finite() => Decimal::from_str_exact(&format!("{f}"))
            .ok()
            .or_else(|| Decimal::from_scientific(&format!("{f:e}")).ok()),
        _ => {
            if let Some(t) = tsep {
                // Thousands separators only between groups of three digits of the integer
                // part: "12.5" with "." as separator is an error, not 125.
                let int_part = text.split(dsep).next().unwrap_or("");
                let int_part = int_part.trim_start_matches(['+', '-']);
                let mut groups = int_part.split(t);
                let first_ok = groups.next().is_some_and(|g| (1..=3).contains(&g.len()));
                if int_part.contains(t) && (!first_ok || groups.any(|g| g.len() != 3)) {
                    return None;
                }
                if text.split(dsep).skip(1).any(|frac| frac.contains(t)) {
                    return None;
                }
            }
            // Plain numbers (no separators to rewrite) are read in place, without a copy.
            let s: std::borrow::Cow<str> = if tsep.is_none() && dsep == '.' {
                std::borrow::Cow::Borrowed(text)
            } else {
                let mut s: String = text.chars().filter(|c| Some(*c) != tsep).collect();
                if dsep != '.' {
                    if s.contains('.') {
                        return None;
                    }
                    s = s.replace(dsep, ".");
                }
                std::borrow::Cow::Owned(s)
            };
            let s = s.strip_prefix('+').unwrap_or(&s);
            if s.is_empty()
                || !s
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
            {
                return None;
            }
            Decimal::from_str_exact(s).ok()
        }
    }
}

fn check_bounds(f: &crate::tabular::def::Field, v: &Bound) -> Option<(&'static str, String)> {
    let cmp = |b: &Bound| -> Option<std::cmp::Ordering> {
        match (v, b) {
            (Bound::Number(a), Bound::Number(b)) => Some(a.cmp(b)),
            (Bound::Date(a), Bound::Date(b)) => Some(a.cmp(b)),
            (Bound::DateTime(a), Bound::DateTime(b)) => Some(a.cmp(b)),
            _ => None,
        }
    };
    let show = |b: &Bound| match b {
        Bound::Number(d) => d.to_string(),
        Bound::Date(d) => d.to_string(),
        Bound::DateTime(d) => crate::tabular::datetime::iso(d),
    };
    use std::cmp::Ordering::*;
    if let Some(b) = &f.min {
        if cmp(b) == Some(Less) {
            return Some(("min", format!("must be at least {}", show(b))));
        }
    }
    if let Some(b) = &f.exclusive_min {
        if matches!(cmp(b), Some(Less | Equal)) {
            return Some(("min", format!("must be greater than {}", show(b))));
        }
    }
    if let Some(b) = &f.max {
        if cmp(b) == Some(Greater) {
            return Some(("max", format!("must be at most {}", show(b))));
        }
    }
    if let Some(b) = &f.exclusive_max {
        if matches!(cmp(b), Some(Greater | Equal)) {
            return Some(("max", format!("must be less than {}", show(b))));
        }
    }
    None
}

/// A broken rule's name and what the message says of the cell.
type Broken = (&'static str, String);

/// Types and checks one field of one row.
// Inlined into `evaluate`, as it was when both were one module: called across the module
// line for every cell, its number and date helpers were no longer inlined into it either
// (a 6.4 MB orders run 2.419 → 2.440 G instructions; with the hint 2.399 G).
#[inline]
pub(super) fn check_cell<'r>(
    def: &'r TabularDef,
    binding: &[usize],
    row: &'r JobRow,
    i: usize,
) -> Result<Option<Val<'r>>, Reason> {
    let f = &def.fields[i];
    let cell = row.cells.get(i).unwrap_or(&Cell::Empty);
    let full = cell.as_text();
    // Where the cell holds text, `text` is borrowed from the row, so a value that reads as
    // the cell does can borrow it too; trimmed once for both.
    let own: Option<&'r str> = match &full {
        Cow::Borrowed(b) if f.trim => Some(crate::unit::trim(b)),
        Cow::Borrowed(b) => Some(b),
        Cow::Owned(_) => None,
    };
    let text = match own {
        Some(t) => t,
        None if f.trim => crate::unit::trim(&full),
        None => &full,
    };
    // The shown value is made only for a rejected cell: most cells pass.
    let err = |rule: &str, msg: String| {
        let shown = if f.sensitive {
            mask(text)
        } else {
            text.to_string()
        };
        fail(def, binding, row, i, rule, &shown, msg)
    };
    if let Cell::Error(e) = cell {
        return Err(err("type", format!("spreadsheet error value {e}")));
    }
    if text.is_empty() {
        return if f.required {
            Err(err("required", "is required but empty".into()))
        } else {
            Ok(None)
        };
    }
    if let Err((rule, msg)) = text_rules(f, text) {
        return Err(err(rule, msg));
    }
    let read = Read { cell, own, text };
    let (val, bound) = match typed(f, &read) {
        Ok(typed) => typed,
        Err((rule, msg)) => return Err(err(rule, msg)),
    };
    if let Some(b) = &bound {
        if let Some((rule, msg)) = check_bounds(f, b) {
            return Err(err(rule, msg));
        }
    }
    Ok(Some(val))
}

/// The rules on a cell's text whatever its type: length, pattern, checksum.
#[inline]
fn text_rules(f: &Field, text: &str) -> Result<(), Broken> {
    // Counted only where a length is checked; ASCII text (nearly all) has one per byte.
    let n = match (f.min_length, f.max_length) {
        (None, None) => 0,
        _ if text.is_ascii() => text.len(),
        _ => text.chars().count(),
    };
    if let Some(m) = f.min_length {
        if n < m {
            return Err((
                "min-length",
                format!("must be at least {m} characters, has {n}"),
            ));
        }
    }
    if let Some(m) = f.max_length {
        if n > m {
            return Err((
                "max-length",
                format!("must be at most {m} characters, has {n}"),
            ));
        }
    }
    if let Some(re) = &f.regex {
        if !re.is_match(text) {
            return Err((
                "regex",
                format!("does not match the pattern {}", re.as_str()),
            ));
        }
    }
    if let Some(ck) = f.checksum {
        ck.verify(text).map_err(|msg| ("checksum", msg))?;
    }
    Ok(())
}

/// One non-empty cell as its field's type reads it.
struct Read<'r, 'a> {
    cell: &'r Cell,
    /// `text` borrowed from the cell, where the cell holds text.
    own: Option<&'r str>,
    /// The cell's text, trimmed if the field says so: the text the rules check.
    text: &'a str,
}

impl<'r> Read<'r, '_> {
    /// The cell's own text for the value when it already reads as the value would be
    /// written (no copy), else the value as written.
    #[inline]
    fn same(&self, canonical: bool, written: impl FnOnce() -> String) -> Cow<'r, str> {
        match self.own {
            Some(own) if canonical => Cow::Borrowed(own),
            _ => Cow::Owned(written()),
        }
    }

    #[inline]
    fn is_text(&self) -> bool {
        matches!(self.cell, Cell::Text(_))
    }
}

/// The cell's value as its field's type reads it, and what the field's bounds are checked
/// against (nothing for a type without bounds).
#[inline]
fn typed<'r>(f: &'r Field, c: &Read<'r, '_>) -> Result<(Val<'r>, Option<Bound>), Broken> {
    let (checked, bound) = match &f.ty {
        FieldType::String => (c.same(true, || c.text.to_string()), None),
        FieldType::Integer => integer(c)?,
        FieldType::Decimal {
            decimal_sep,
            thousands_sep,
        } => decimal(c, *decimal_sep, *thousands_sep)?,
        FieldType::Date { format } => date(c, format)?,
        FieldType::DateTime(spec) => date_time(c, spec)?,
        FieldType::Boolean {
            true_words,
            false_words,
        } => {
            let b = boolean(c, true_words, false_words)?;
            let val = Val {
                text: Cow::Borrowed(if b { "true" } else { "false" }),
                boolean: true,
            };
            return Ok((val, None));
        }
        FieldType::Code { table } => (Cow::Borrowed(code(table, c.text)?), None),
    };
    let val = Val {
        text: checked,
        boolean: false,
    };
    Ok((val, bound))
}

/// A checked value's text and what its bounds are checked against.
type Checked<'r> = (Cow<'r, str>, Option<Bound>);

#[inline]
fn integer<'r>(c: &Read<'r, '_>) -> Result<Checked<'r>, Broken> {
    let v = match c.cell {
        Cell::Int(i) => Some(*i),
        Cell::Float(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => Some(*x as i64),
        _ => c
            .text
            .strip_prefix('+')
            .unwrap_or(c.text)
            .parse::<i64>()
            .ok(),
    };
    match v {
        Some(v) => Ok((
            c.same(plain_integer(c.text) && c.is_text(), || v.to_string()),
            Some(Bound::Number(v.into())),
        )),
        None => Err(("type", "is not a whole number".into())),
    }
}

#[inline]
fn decimal<'r>(c: &Read<'r, '_>, dsep: char, tsep: Option<char>) -> Result<Checked<'r>, Broken> {
    match decimal_of(c.cell, c.text, dsep, tsep) {
        Some(d) => Ok((
            c.same(dsep == '.' && plain_decimal(c.text) && c.is_text(), || {
                d.to_string()
            }),
            Some(Bound::Number(d)),
        )),
        None => Err(("type", "is not a decimal number".into())),
    }
}

#[inline]
fn date<'r>(c: &Read<'r, '_>, format: &str) -> Result<Checked<'r>, Broken> {
    let parsed = match c.cell {
        Cell::DateTime(s) => s.get(..10).and_then(crate::canonical::parse_iso_date),
        _ if format == "%Y-%m-%d" => crate::canonical::parse_iso_date(c.text),
        _ => chrono::NaiveDate::parse_from_str(c.text, format).ok(),
    };
    match parsed {
        Some(d) => Ok((
            c.same(
                format == "%Y-%m-%d" && c.is_text() && iso_shaped(c.text),
                || crate::canonical::format_iso_date(d),
            ),
            Some(Bound::Date(d)),
        )),
        None => Err((
            "type",
            format!("is not a valid date in the format {format}"),
        )),
    }
}

#[inline]
fn date_time<'r>(c: &Read<'r, '_>, spec: &DateTimeSpec) -> Result<Checked<'r>, Broken> {
    let parsed = match c.cell {
        Cell::DateTime(s) => spec.from_cell(s),
        _ => spec.parse(c.text),
    };
    match parsed {
        Some(d) => Ok((
            Cow::Owned(crate::tabular::datetime::iso(&d)),
            Some(Bound::DateTime(d)),
        )),
        None => Err((
            "type",
            format!("is not a valid date-time {}", spec.describe()),
        )),
    }
}

#[inline]
fn boolean(c: &Read, true_words: &[String], false_words: &[String]) -> Result<bool, Broken> {
    let b = match c.cell {
        Cell::Bool(b) => Some(*b),
        _ => {
            let l = c.text.to_lowercase();
            if true_words.contains(&l) {
                Some(true)
            } else if false_words.contains(&l) {
                Some(false)
            } else {
                None
            }
        }
    };
    b.ok_or_else(|| {
        (
            "type",
            format!(
                "is not a yes/no value (true: {}; false: {})",
                true_words.join(", "),
                false_words.join(", ")
            ),
        )
    })
}

#[inline]
fn code<'r>(table: &'r CodeTable, text: &str) -> Result<&'r str, Broken> {
    table.get(text).ok_or_else(|| {
        let codes = table.named();
        ("code-list", format!("is not an allowed code ({codes})"))
    })
}

/// Whether `i64`'s `to_string` writes `text` back as it is: digits without a sign, `+`
/// or leading zero.
fn plain_integer(text: &str) -> bool {
    let b = text.as_bytes();
    !b.is_empty() && b.iter().all(u8::is_ascii_digit) && (b[0] != b'0' || b.len() == 1)
}

/// Whether a `Decimal` read from `text` writes it back as it is: unsigned digits, one
/// `.` with digits after it, no leading zero, short enough that nothing is rounded.
fn plain_decimal(text: &str) -> bool {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    plain_integer(int)
        && (frac.is_empty() || frac.bytes().all(|c| c.is_ascii_digit()))
        && !text.ends_with('.')
        && text.len() <= 20
}

/// `DDDD-DD-DD`: the text of a `%Y-%m-%d` date that `format_iso_date` writes back as it
/// is once it has been read as a real day.
fn iso_shaped(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
}

#[cfg(test)]
#[path = "check_tests.rs"]
mod tests;
