//! Checking one `[[fields]]` entry: its column, its type and that type's settings, its
//! bounds, regex and checksum. Most of what the checker can say is about one field, so
//! it lives here, where it does not bury the walk over the whole definition in `check.rs`.

use rust_decimal::Decimal;
use toml::Spanned;

use super::Checker;
use crate::tabular::checksum::Checksum;
use crate::tabular::datetime::{self, DateTimeSpec};
use crate::tabular::def::raw::{RawColumn, RawField};
use crate::tabular::def::{Bound, CodeTable, ColumnRef, Field, FieldType};
use crate::tabular::ERROR_COLUMN;

/// A `min` or `max` (`what`) of a field read as its type's kind of bound: a number, a date
/// or a date-time; an error for any other type or a value that does not read.
fn bound(
    c: &mut Checker,
    fspan: &std::ops::Range<usize>,
    field: &str,
    what: &str,
    ty: &FieldType,
    v: &Option<toml::Value>,
) -> Option<Bound> {
    let v = v.as_ref()?;
    match ty {
        FieldType::Integer | FieldType::Decimal { .. } => {
            let d = match v {
                toml::Value::Integer(i) => Some(Decimal::from(*i)),
                toml::Value::Float(f) => Decimal::from_str_exact(&f.to_string()).ok(),
                toml::Value::String(s) => s.parse::<Decimal>().ok(),
                _ => None,
            };
            match d {
                Some(d) => Some(Bound::Number(d)),
                None => {
                    c.err(
                        Some(fspan.clone()),
                        format!("field '{field}': {what} must be a number"),
                    );
                    None
                }
            }
        }
        FieldType::Date { .. } => match text_of(v)
            .and_then(|s| chrono::NaiveDate::parse_from_str(&s, "%Y-%m-%d").ok())
        {
            Some(d) => Some(Bound::Date(d)),
            None => {
                c.err(
                    Some(fspan.clone()),
                    format!("field '{field}': {what} must be an ISO date string \"YYYY-MM-DD\""),
                );
                None
            }
        },
        FieldType::DateTime(spec) => match text_of(v).and_then(|s| datetime::parse_bound(&s, spec))
        {
            Some(d) => Some(Bound::DateTime(d)),
            None => {
                c.err(
                    Some(fspan.clone()),
                    format!("field '{field}': {what} must be an ISO date-time such as \"2024-01-01T00:00:00Z\" (with an offset unless the field has a timezone)"),
                );
                None
            }
        },
        other => {
            c.err(
                Some(fspan.clone()),
                format!(
                    "field '{field}': {what} applies to integer, decimal, date and datetime fields, not {}",
                    other.name()
                ),
            );
            None
        }
    }
}

/// A bound written as a string or as a bare TOML date / date-time.
fn text_of(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.trim().to_string()),
        toml::Value::Datetime(d) => Some(d.to_string()),
        _ => None,
    }
}

/// One `[[fields]]` entry; `None` if any of its settings is wrong (all of them reported).
pub(super) fn check_field(
    c: &mut Checker,
    raw: &Spanned<RawField>,
    header: bool,
    sheet: bool,
) -> Option<Field> {
    let span = raw.span();
    let f = raw.get_ref();
    let before = c.errors;
    let name = f.name.trim().to_string();
    if name.is_empty() {
        c.err(Some(span.clone()), "field name is empty");
    }
    let column = check_column(c, &span, &name, f, header);
    let ty = check_type(c, &span, &name, f, sheet);
    check_settings_fit_type(c, &span, &name, f);
    let min = bound(c, &span, &name, "min", &ty, &f.min);
    let max = bound(c, &span, &name, "max", &ty, &f.max);
    let exclusive_min = bound(c, &span, &name, "exclusive_min", &ty, &f.exclusive_min);
    let exclusive_max = bound(c, &span, &name, "exclusive_max", &ty, &f.exclusive_max);
    if let (Some(a), Some(b)) = (f.min_length, f.max_length) {
        if a > b {
            c.err(
                Some(span.clone()),
                format!("field '{name}': min_length {a} is greater than max_length {b}"),
            );
        }
    }
    let regex = check_regex(c, &span, &name, f);
    let checksum = check_checksum(c, &span, &name, f);
    if c.errors > before {
        return None;
    }
    Some(Field {
        name,
        column,
        ty,
        required: f.required,
        sensitive: f.sensitive,
        trim: f.trim.unwrap_or(true),
        min,
        max,
        exclusive_min,
        exclusive_max,
        min_length: f.min_length,
        max_length: f.max_length,
        regex,
        checksum,
    })
}

/// Where the field is read from: a header name needs a header row, a position does not, and
/// the corrections file's error column is never data.
fn check_column(
    c: &mut Checker,
    span: &std::ops::Range<usize>,
    name: &str,
    f: &RawField,
    header: bool,
) -> ColumnRef {
    let column = match &f.column {
        Some(RawColumn::Index(i)) => ColumnRef::Index(*i),
        Some(RawColumn::Name(n)) => {
            if !header {
                c.err(
                    Some(span.clone()),
                    format!("field '{name}': column \"{n}\" is a header name but the definition has header = false; use a 0-based position"),
                );
            }
            ColumnRef::Name(n.trim().to_string())
        }
        None => {
            if !header {
                c.err(
                    Some(span.clone()),
                    format!("field '{name}': without a header row every field needs `column = <0-based position>`"),
                );
            }
            ColumnRef::Name(name.to_string())
        }
    };
    if matches!(&column, ColumnRef::Name(n) if n.eq_ignore_ascii_case(ERROR_COLUMN)) {
        c.err(
            Some(span.clone()),
            format!(
                "field '{name}': column '{}' is reserved for what a corrections file says was wrong, and is never read as data",
                ERROR_COLUMN
            ),
        );
    }
    column
}

/// The field's `type` and the settings that shape it (separators, patterns, words, codes).
fn check_type(
    c: &mut Checker,
    span: &std::ops::Range<usize>,
    name: &str,
    f: &RawField,
    sheet: bool,
) -> FieldType {
    match type_name(f) {
        "string" => FieldType::String,
        "integer" => FieldType::Integer,
        "decimal" => check_decimal(c, span, name, f),
        "date" => {
            let format = f.format.clone().unwrap_or_else(|| "%Y-%m-%d".to_string());
            if let Err(e) = datetime::check_date_pattern(&format) {
                c.err(Some(span.clone()), format!("field '{name}': {e}"));
            }
            FieldType::Date { format }
        }
        "datetime" => FieldType::DateTime(check_datetime(c, span, name, f, sheet)),
        "boolean" => check_boolean(c, span, name, f),
        "code" => check_code(c, span, name, f),
        other => {
            c.err(
                Some(span.clone()),
                format!("field '{name}': unknown type '{other}' (expected string, integer, decimal, date, datetime, boolean or code)"),
            );
            FieldType::String
        }
    }
}

/// A separator setting is one character; `dflt` when it is missing or wrong.
fn one_char(
    c: &mut Checker,
    span: &std::ops::Range<usize>,
    name: &str,
    s: &Option<String>,
    what: &str,
    dflt: Option<char>,
) -> Option<char> {
    match s {
        None => dflt,
        Some(s) if s.chars().count() == 1 => s.chars().next(),
        Some(s) => {
            c.err(
                Some(span.clone()),
                format!("field '{name}': {what} must be one character, got \"{s}\""),
            );
            dflt
        }
    }
}

/// A decimal field's separators: single characters, and not the same one, or a number
/// could not be read back unambiguously.
fn check_decimal(
    c: &mut Checker,
    span: &std::ops::Range<usize>,
    name: &str,
    f: &RawField,
) -> FieldType {
    let decimal_sep = one_char(
        c,
        span,
        name,
        &f.decimal_separator,
        "decimal_separator",
        Some('.'),
    )
    .unwrap_or('.');
    let thousands_sep = one_char(
        c,
        span,
        name,
        &f.thousands_separator,
        "thousands_separator",
        None,
    );
    if thousands_sep == Some(decimal_sep) {
        c.err(
            Some(span.clone()),
            format!("field '{name}': decimal and thousands separators are the same"),
        );
    }
    FieldType::Decimal {
        decimal_sep,
        thousands_sep,
    }
}

/// A boolean field's true and false words, lower-cased; no word may mean both.
fn check_boolean(
    c: &mut Checker,
    span: &std::ops::Range<usize>,
    name: &str,
    f: &RawField,
) -> FieldType {
    let lower = |v: &Option<Vec<String>>, d: &[&str]| -> Vec<String> {
        v.clone()
            .unwrap_or_else(|| d.iter().map(|s| s.to_string()).collect())
            .into_iter()
            .map(|s| s.trim().to_lowercase())
            .collect()
    };
    let t = lower(&f.true_values, &["true", "yes", "y", "1"]);
    let fw = lower(&f.false_values, &["false", "no", "n", "0"]);
    if let Some(w) = t.iter().find(|w| fw.contains(w)) {
        c.err(
            Some(span.clone()),
            format!("field '{name}': '{w}' is both a true and a false word"),
        );
    }
    FieldType::Boolean {
        true_words: t,
        false_words: fw,
    }
}

/// A code field's table: `values` map to themselves, `translate` adds or overrides; an
/// empty table would refuse every value.
fn check_code(
    c: &mut Checker,
    span: &std::ops::Range<usize>,
    name: &str,
    f: &RawField,
) -> FieldType {
    let mut table: Vec<(String, String)> = Vec::new();
    if let Some(vals) = &f.values {
        table.extend(vals.iter().map(|v| (v.clone(), v.clone())));
    }
    if let Some(tr) = &f.translate {
        for (k, v) in tr {
            if let Some(e) = table.iter_mut().find(|(a, _)| a == k) {
                e.1 = v.clone();
            } else {
                table.push((k.clone(), v.clone()));
            }
        }
    }
    if table.is_empty() {
        c.err(
            Some(span.clone()),
            format!("field '{name}': a code field needs `values = [...]` or a `translate` table"),
        );
    }
    FieldType::Code {
        table: CodeTable::new(table, f.ignore_case),
    }
}

/// The field's `type` as written, `string` when it names none.
fn type_name(f: &RawField) -> &str {
    f.ty.as_deref().unwrap_or("string")
}

/// A setting meant for another type is a mistake, not something to ignore silently.
fn check_settings_fit_type(
    c: &mut Checker,
    span: &std::ops::Range<usize>,
    name: &str,
    f: &RawField,
) {
    let tyname = type_name(f);
    if !matches!(tyname, "date" | "datetime") && f.format.is_some() {
        c.err(
            Some(span.clone()),
            format!("field '{name}': `format` applies only to date and datetime fields"),
        );
    }
    if tyname != "datetime" && f.timezone.is_some() {
        c.err(
            Some(span.clone()),
            format!("field '{name}': `timezone` applies only to datetime fields"),
        );
    }
    if tyname != "code" && (f.values.is_some() || f.translate.is_some()) {
        c.err(
            Some(span.clone()),
            format!("field '{name}': `values`/`translate` apply only to code fields"),
        );
    }
    if tyname != "boolean" && (f.true_values.is_some() || f.false_values.is_some()) {
        c.err(
            Some(span.clone()),
            format!("field '{name}': `true_values`/`false_values` apply only to boolean fields"),
        );
    }
    if tyname != "decimal" && (f.decimal_separator.is_some() || f.thousands_separator.is_some()) {
        c.err(
            Some(span.clone()),
            format!("field '{name}': separators apply only to decimal fields"),
        );
    }
}

/// The field's `regex`, anchored to the whole value and size-limited so a definition cannot
/// make the engine build a huge automaton.
fn check_regex(
    c: &mut Checker,
    span: &std::ops::Range<usize>,
    name: &str,
    f: &RawField,
) -> Option<regex::Regex> {
    let r = f.regex.as_ref()?;
    match regex::RegexBuilder::new(&format!("^(?:{r})$"))
        .size_limit(1 << 20)
        .build()
    {
        Ok(re) => Some(re),
        Err(e) => {
            c.err(
                Some(span.clone()),
                format!(
                    "field '{name}': bad regex '{r}': {}",
                    e.to_string().lines().last().unwrap_or_default().trim()
                ),
            );
            None
        }
    }
}

/// The field's `checksum`, if given, names one the engine computes.
fn check_checksum(
    c: &mut Checker,
    span: &std::ops::Range<usize>,
    name: &str,
    f: &RawField,
) -> Option<Checksum> {
    f.checksum.as_deref().and_then(|k| {
        let ck = Checksum::parse(k);
        if ck.is_none() {
            c.err(
                Some(span.clone()),
                format!(
                    "field '{name}': unknown checksum '{k}' (known: {})",
                    Checksum::NAMES.join(", ")
                ),
            );
        }
        ck
    })
}

/// A datetime field's pattern and timezone. A value without an offset is ambiguous, so
/// the timezone is required unless the pattern reads one; spreadsheet date cells never
/// carry one, so a sheet's datetime field always needs it.
fn check_datetime(
    c: &mut Checker,
    span: &std::ops::Range<usize>,
    name: &str,
    f: &RawField,
    sheet: bool,
) -> DateTimeSpec {
    let mut has_offset = false;
    if let Some(fmt) = &f.format {
        match datetime::check_datetime_pattern(fmt) {
            Ok(o) => has_offset = o,
            Err(e) => c.err(Some(span.clone()), format!("field '{name}': {e}")),
        }
    }
    let timezone = match f.timezone.as_deref().map(datetime::parse_timezone) {
        Some(Ok(tz)) => Some(tz),
        Some(Err(e)) => {
            c.err(Some(span.clone()), format!("field '{name}': {e}"));
            None
        }
        None => {
            if !has_offset || sheet {
                let why = if sheet && has_offset {
                    "spreadsheet date cells carry no UTC offset"
                } else {
                    "its values carry no UTC offset (the pattern has no %z)"
                };
                c.err(
                    Some(span.clone()),
                    format!("field '{name}': {why}, so say which one they are in: timezone = \"UTC\" or \"+01:00\""),
                );
            }
            None
        }
    };
    DateTimeSpec {
        format: f.format.clone(),
        timezone,
    }
}
