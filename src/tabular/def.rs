//! The tabular definition language: what a `kind = "csv"` or `kind = "sheet"` TOML file may
//! say, and the one-pass semantic check that turns it into a [`TabularDef`] the engine runs.
//!
//! Parsing is strict (`deny_unknown_fields`) so a typo is an error, not a silently ignored
//! setting. After parsing, every cross-reference (key template, group_by, map values, code
//! lists, regexes, date patterns, canonical contract fields) is checked and *every* problem
//! is reported with its file and line, so `tallyman check` shows a partner layout's whole
//! list of mistakes at once. The reference is `docs/format-language.md`.

use std::collections::{BTreeMap, HashMap, HashSet};

use regex::Regex;
use rust_decimal::Decimal;
use serde::Deserialize;
use toml::Spanned;

use super::checksum::Checksum;
use super::contract;
use super::datetime::{self, DateTimeSpec};
use super::SheetSelector;
use crate::canonical::Entity;
use crate::format::defs::DefMap;
use crate::format::{glob_match, DefFile, Diagnostics, Policy};

// ---------------------------------------------------------------------------------------
// Raw TOML shape
// ---------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDef {
    kind: String,
    name: Spanned<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(rename = "match", default)]
    matching: RawMatch,
    #[serde(default)]
    csv: Option<Spanned<RawCsv>>,
    #[serde(default)]
    sheet: Option<Spanned<RawSheet>>,
    #[serde(default)]
    fields: Vec<Spanned<RawField>>,
    key: Spanned<String>,
    #[serde(default)]
    group_by: Option<Spanned<String>>,
    map: Spanned<RawMap>,
    #[serde(default)]
    policy: Option<Spanned<String>>,
    #[serde(default)]
    max_reject_ratio: Option<f64>,
    #[serde(default)]
    identity: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatch {
    #[serde(default)]
    filename: Option<OneOrMany>,
    #[serde(default)]
    header: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCsv {
    #[serde(default)]
    delimiter: Option<String>,
    #[serde(default)]
    quote: Option<String>,
    #[serde(default)]
    header: Option<bool>,
    #[serde(default)]
    skip_rows: Option<u64>,
    #[serde(default)]
    encoding: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSheet {
    #[serde(default)]
    sheet: Option<SheetSelector>,
    #[serde(default)]
    header: Option<bool>,
    #[serde(default)]
    skip_rows: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawColumn {
    Index(usize),
    Name(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    name: String,
    #[serde(default)]
    column: Option<RawColumn>,
    #[serde(rename = "type", default)]
    ty: Option<String>,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    timezone: Option<String>,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    sensitive: bool,
    #[serde(default)]
    trim: Option<bool>,
    #[serde(default)]
    min: Option<toml::Value>,
    #[serde(default)]
    max: Option<toml::Value>,
    #[serde(default)]
    exclusive_min: Option<toml::Value>,
    #[serde(default)]
    exclusive_max: Option<toml::Value>,
    #[serde(default)]
    min_length: Option<usize>,
    #[serde(default)]
    max_length: Option<usize>,
    #[serde(default)]
    regex: Option<String>,
    #[serde(default)]
    checksum: Option<String>,
    #[serde(default)]
    values: Option<Vec<String>>,
    #[serde(default)]
    translate: Option<BTreeMap<String, String>>,
    #[serde(default)]
    ignore_case: bool,
    #[serde(default)]
    true_values: Option<Vec<String>>,
    #[serde(default)]
    false_values: Option<Vec<String>>,
    #[serde(default)]
    decimal_separator: Option<String>,
    #[serde(default)]
    thousands_separator: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMap {
    entity: Spanned<String>,
    #[serde(default)]
    header: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default)]
    lines: Option<BTreeMap<String, Spanned<toml::Value>>>,
}

// ---------------------------------------------------------------------------------------
// Checked definition
// ---------------------------------------------------------------------------------------

pub use super::charset::Encoding;

/// The CSV dialect.
#[derive(Debug, Clone)]
pub struct CsvDialect {
    pub delimiter: u8,
    /// `None` disables quoting.
    pub quote: Option<u8>,
    pub encoding: Encoding,
}

/// The physical source of rows.
#[derive(Debug, Clone)]
pub enum Source {
    Csv(CsvDialect),
    Sheet(SheetSelector),
}

/// Where a field's value comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnRef {
    /// By header name (trimmed, case-insensitive).
    Name(String),
    /// By 0-based position.
    Index(usize),
}

#[derive(Debug, Clone)]
pub enum FieldType {
    String,
    Integer,
    Decimal {
        decimal_sep: char,
        thousands_sep: Option<char>,
    },
    /// `format` is the input pattern (a time in it is read and ignored); output is ISO
    /// `YYYY-MM-DD`.
    Date {
        format: String,
    },
    /// An instant; output is ISO 8601 with its offset (`2006-05-19T00:00:00Z`).
    DateTime(DateTimeSpec),
    Boolean {
        true_words: Vec<String>,
        false_words: Vec<String>,
    },
    /// Allowed input codes, each with its output value (itself unless translated).
    Code {
        table: CodeTable,
    },
}

/// A code field's allowed input codes in the order the definition gives them (a message
/// names the first few), each with its output value, found by hash: a cell was compared
/// with the codes one by one, most of an orders CSV's string comparisons (ISO 4217 has
/// 180 codes).
#[derive(Debug, Clone)]
pub struct CodeTable {
    entries: Vec<(String, String)>,
    /// Entry by code (ASCII-lowercased when `ignore_case`); the first of equal codes wins,
    /// as it did in order.
    index: DefMap<String, usize>,
    ignore_case: bool,
}

impl CodeTable {
    pub fn new(entries: Vec<(String, String)>, ignore_case: bool) -> CodeTable {
        let mut index = DefMap::default();
        for (i, (code, _)) in entries.iter().enumerate() {
            let key = if ignore_case {
                code.to_ascii_lowercase()
            } else {
                code.clone()
            };
            index.entry(key).or_insert(i);
        }
        CodeTable {
            entries,
            index,
            ignore_case,
        }
    }

    /// The output value for input `text`, if it is an allowed code.
    pub fn get(&self, text: &str) -> Option<&str> {
        let i = if self.ignore_case {
            self.index.get(&text.to_ascii_lowercase())
        } else {
            self.index.get(text)
        };
        i.map(|&i| self.entries[i].1.as_str())
    }

    /// The allowed codes, in the definition's order.
    pub fn codes(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.entries.iter().map(|(k, _)| k.as_str())
    }
}

impl FieldType {
    pub fn name(&self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Integer => "integer",
            FieldType::Decimal { .. } => "decimal",
            FieldType::Date { .. } => "date",
            FieldType::DateTime(_) => "datetime",
            FieldType::Boolean { .. } => "boolean",
            FieldType::Code { .. } => "code",
        }
    }
}

/// A bound on a numeric, date or datetime field, compared in the field's type.
#[derive(Debug, Clone, PartialEq)]
pub enum Bound {
    Number(Decimal),
    Date(chrono::NaiveDate),
    /// Compared as instants, whatever the offsets.
    DateTime(chrono::DateTime<chrono::FixedOffset>),
}

#[derive(Debug, Clone)]
pub struct Field {
    pub name: String,
    pub column: ColumnRef,
    pub ty: FieldType,
    pub required: bool,
    pub sensitive: bool,
    pub trim: bool,
    pub min: Option<Bound>,
    pub max: Option<Bound>,
    pub exclusive_min: Option<Bound>,
    pub exclusive_max: Option<Bound>,
    pub min_length: Option<usize>,
    pub max_length: Option<usize>,
    pub regex: Option<Regex>,
    pub checksum: Option<Checksum>,
}

/// A piece of a `{field}` template.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Text(String),
    Field(usize),
}

/// A template such as `"{customer_id}/{order_no}"`.
#[derive(Debug, Clone, PartialEq)]
pub struct Template(pub Vec<Piece>);

/// How one canonical field is produced.
#[derive(Debug, Clone)]
pub enum MapValue {
    /// A JSON constant.
    Const(serde_json::Value),
    /// Exactly one field reference: keeps the field's typed value (booleans stay booleans).
    Field(usize),
    /// A datetime field mapped to a canonical date: the calendar date as written (in the
    /// value's own offset, not converted to UTC).
    DateOf(usize),
    /// A field reference through a translation table.
    Translate {
        field: usize,
        table: HashMap<String, String>,
        default: Option<String>,
    },
    /// Text with interpolated fields.
    Template(Template),
}

#[derive(Debug, Clone)]
pub struct Mapping {
    pub entity: Entity,
    /// Canonical field name → value, for the record (from the group's first row).
    pub header: Vec<(String, MapValue)>,
    /// Canonical line field name → value, one line per row (entities with `lines`).
    pub lines: Option<Vec<(String, MapValue)>>,
}

/// A checked tabular definition, ready to run.
#[derive(Debug, Clone)]
pub struct TabularDef {
    pub name: String,
    pub kind: String,
    pub filename_globs: Vec<String>,
    pub match_header: Vec<String>,
    pub source: Source,
    pub header: bool,
    pub skip_rows: u64,
    pub fields: Vec<Field>,
    pub key: Template,
    pub group_by: Option<usize>,
    pub map: Mapping,
    pub policy: Policy,
    /// The identity rule of the mapped entity, when the definition overrides its default.
    pub identity: Option<crate::canonical::Identity>,
    /// [`TabularDef::header_fields`], made once rather than for every document.
    pub head_fields: Vec<usize>,
}

impl TabularDef {
    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }

    pub fn has_sensitive(&self) -> bool {
        self.fields.iter().any(|f| f.sensitive)
    }

    /// Fields referenced by `[map.header]`: they must agree on every row of a group.
    pub fn header_fields(&self) -> Vec<usize> {
        let mut out = Vec::new();
        for (_, v) in &self.map.header {
            match v {
                MapValue::Field(i) | MapValue::DateOf(i) | MapValue::Translate { field: i, .. } => {
                    out.push(*i)
                }
                MapValue::Template(t) => out.extend(t.0.iter().filter_map(|p| match p {
                    Piece::Field(i) => Some(*i),
                    Piece::Text(_) => None,
                })),
                MapValue::Const(_) => {}
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Whether a file name matches one of the globs.
    pub fn name_matches(&self, name: &str) -> bool {
        self.filename_globs.iter().any(|g| glob_match(g, name))
    }
}

// ---------------------------------------------------------------------------------------
// Checking
// ---------------------------------------------------------------------------------------

struct Checker<'a> {
    def: &'a DefFile,
    diags: &'a mut Diagnostics,
    errors: usize,
}

impl Checker<'_> {
    fn err(&mut self, span: Option<std::ops::Range<usize>>, msg: impl Into<String>) {
        let line = span.map(|s| self.def.line_at(s.start));
        self.diags.error(&self.def.path, line, msg);
        self.errors += 1;
    }
    fn err_key(&mut self, key: &str, msg: impl Into<String>) {
        let line = self.def.line_of_key(key);
        self.diags.error(&self.def.path, line, msg);
        self.errors += 1;
    }
}

fn single_byte(s: &str) -> Option<u8> {
    match s {
        "\\t" | "tab" => Some(b'\t'),
        _ if s.len() == 1 && s.is_ascii() => Some(s.as_bytes()[0]),
        _ => None,
    }
}

/// Parses a `{field}` template; unknown names are reported through `unknown`.
pub fn parse_template(
    text: &str,
    field_index: &dyn Fn(&str) -> Option<usize>,
) -> Result<Template, String> {
    let mut pieces = Vec::new();
    let mut lit = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                lit.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                lit.push('}');
            }
            '{' => {
                let mut name = String::new();
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == '}' {
                        closed = true;
                        break;
                    }
                    name.push(c);
                }
                if !closed {
                    return Err(format!("unclosed '{{' in template \"{text}\""));
                }
                let name = name.trim();
                let idx = field_index(name).ok_or_else(|| {
                    format!("template \"{text}\" refers to unknown field '{name}'")
                })?;
                if !lit.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut lit)));
                }
                pieces.push(Piece::Field(idx));
            }
            '}' => return Err(format!("stray '}}' in template \"{text}\" (write '}}}}')")),
            c => lit.push(c),
        }
    }
    if !lit.is_empty() {
        pieces.push(Piece::Text(lit));
    }
    Ok(Template(pieces))
}

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

fn check_field(
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
            ColumnRef::Name(name.clone())
        }
    };
    if matches!(&column, ColumnRef::Name(n) if n.eq_ignore_ascii_case(super::ERROR_COLUMN)) {
        c.err(
            Some(span.clone()),
            format!(
                "field '{name}': column '{}' is reserved for what a corrections file says was wrong, and is never read as data",
                super::ERROR_COLUMN
            ),
        );
    }
    let tyname = f.ty.as_deref().unwrap_or("string");
    let one_char = |c: &mut Checker, s: &Option<String>, what: &str, dflt: Option<char>| match s {
        None => dflt,
        Some(s) if s.chars().count() == 1 => s.chars().next(),
        Some(s) => {
            c.err(
                Some(span.clone()),
                format!("field '{name}': {what} must be one character, got \"{s}\""),
            );
            dflt
        }
    };
    let ty = match tyname {
        "string" => FieldType::String,
        "integer" => FieldType::Integer,
        "decimal" => {
            let decimal_sep =
                one_char(c, &f.decimal_separator, "decimal_separator", Some('.')).unwrap_or('.');
            let thousands_sep = one_char(c, &f.thousands_separator, "thousands_separator", None);
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
        "date" => {
            let format = f.format.clone().unwrap_or_else(|| "%Y-%m-%d".to_string());
            if let Err(e) = datetime::check_date_pattern(&format) {
                c.err(Some(span.clone()), format!("field '{name}': {e}"));
            }
            FieldType::Date { format }
        }
        "datetime" => FieldType::DateTime(check_datetime(c, &span, &name, f, sheet)),
        "boolean" => {
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
        "code" => {
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
        other => {
            c.err(
                Some(span.clone()),
                format!("field '{name}': unknown type '{other}' (expected string, integer, decimal, date, datetime, boolean or code)"),
            );
            FieldType::String
        }
    };
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
    let regex = match &f.regex {
        None => None,
        Some(r) => match regex::RegexBuilder::new(&format!("^(?:{r})$"))
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
        },
    };
    let checksum = f.checksum.as_deref().and_then(|k| {
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
    });
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

fn json_of(v: &toml::Value) -> serde_json::Value {
    match v {
        toml::Value::String(s) => serde_json::Value::String(s.clone()),
        toml::Value::Integer(i) => serde_json::Value::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        toml::Value::Boolean(b) => serde_json::Value::Bool(*b),
        toml::Value::Datetime(d) => serde_json::Value::String(d.to_string()),
        toml::Value::Array(a) => serde_json::Value::Array(a.iter().map(json_of).collect()),
        toml::Value::Table(t) => {
            serde_json::Value::Object(t.iter().map(|(k, v)| (k.clone(), json_of(v))).collect())
        }
    }
}

fn check_map_value(
    c: &mut Checker,
    section: &str,
    target: &str,
    v: &Spanned<toml::Value>,
    fields: &[Field],
) -> Option<MapValue> {
    let span = v.span();
    let find = |n: &str| fields.iter().position(|f| f.name == n);
    match v.get_ref() {
        toml::Value::String(s) => match parse_template(s, &find) {
            Ok(t) => match t.0.as_slice() {
                [Piece::Field(i)] => Some(MapValue::Field(*i)),
                [] => Some(MapValue::Const(serde_json::Value::String(String::new()))),
                [Piece::Text(s)] => Some(MapValue::Const(serde_json::Value::String(s.clone()))),
                _ => Some(MapValue::Template(t)),
            },
            Err(e) => {
                c.err(Some(span), format!("[map.{section}] {target}: {e}"));
                None
            }
        },
        toml::Value::Table(t) => {
            let allowed = ["field", "translate", "default", "const"];
            for k in t.keys() {
                if !allowed.contains(&k.as_str()) {
                    c.err(
                        Some(span.clone()),
                        format!("[map.{section}] {target}: unknown key '{k}' (expected field, translate, default or const)"),
                    );
                    return None;
                }
            }
            if let Some(k) = t.get("const") {
                if t.len() > 1 {
                    c.err(
                        Some(span),
                        format!(
                            "[map.{section}] {target}: `const` cannot be combined with other keys"
                        ),
                    );
                    return None;
                }
                return Some(MapValue::Const(json_of(k)));
            }
            let Some(fname) = t.get("field").and_then(|f| f.as_str()) else {
                c.err(
                    Some(span),
                    format!("[map.{section}] {target}: a table value needs `field = \"...\"` or `const = ...`"),
                );
                return None;
            };
            let Some(field) = find(fname) else {
                c.err(
                    Some(span),
                    format!("[map.{section}] {target}: unknown field '{fname}'"),
                );
                return None;
            };
            let default = match t.get("default") {
                None => None,
                Some(toml::Value::String(s)) => Some(s.clone()),
                Some(_) => {
                    c.err(
                        Some(span),
                        format!("[map.{section}] {target}: `default` must be a string"),
                    );
                    return None;
                }
            };
            match t.get("translate") {
                None if default.is_none() => Some(MapValue::Field(field)),
                None => Some(MapValue::Translate {
                    field,
                    table: HashMap::new(),
                    default,
                }),
                Some(toml::Value::Table(tt)) => {
                    let mut table = HashMap::new();
                    for (k, v) in tt {
                        match v.as_str() {
                            Some(s) => {
                                table.insert(k.clone(), s.to_string());
                            }
                            None => {
                                c.err(
                                    Some(span),
                                    format!("[map.{section}] {target}: translate value for '{k}' must be a string"),
                                );
                                return None;
                            }
                        }
                    }
                    Some(MapValue::Translate {
                        field,
                        table,
                        default,
                    })
                }
                Some(_) => {
                    c.err(
                        Some(span),
                        format!("[map.{section}] {target}: `translate` must be a table"),
                    );
                    None
                }
            }
        }
        other => Some(MapValue::Const(json_of(other))),
    }
}

fn check_map_section(
    c: &mut Checker,
    section: &str,
    entries: &BTreeMap<String, Spanned<toml::Value>>,
    allowed: Option<&[&str]>,
    fields: &[Field],
) -> Vec<(String, MapValue)> {
    let mut out = Vec::new();
    for (target, v) in entries {
        if let Some(allowed) = allowed {
            if !allowed.contains(&target.as_str()) {
                c.err(
                    Some(v.span()),
                    format!(
                        "[map.{section}] '{target}' is not a field of the canonical contract (known: {})",
                        allowed.join(", ")
                    ),
                );
                continue;
            }
            if target == "lines" {
                c.err(
                    Some(v.span()),
                    format!(
                        "[map.{section}] 'lines' is built from [map.lines], not mapped directly"
                    ),
                );
                continue;
            }
        }
        let mv = check_map_value(c, section, target, v, fields);
        // A date-time mapped onto a canonical date keeps its day: the contract's dates
        // are YYYY-MM-DD and would refuse the whole instant.
        let mv = match mv {
            Some(MapValue::Field(i))
                if contract::is_date_field(target)
                    && matches!(fields[i].ty, FieldType::DateTime(_)) =>
            {
                Some(MapValue::DateOf(i))
            }
            other => other,
        };
        if let Some(mv) = mv {
            out.push((target.clone(), mv));
        }
    }
    out
}

/// The fields a map value reads.
fn fields_read(mv: &MapValue) -> Vec<usize> {
    match mv {
        MapValue::Const(_) => Vec::new(),
        MapValue::Field(i) | MapValue::DateOf(i) => vec![*i],
        MapValue::Translate { field, .. } => vec![*field],
        MapValue::Template(t) => {
            t.0.iter()
                .filter_map(|p| match p {
                    Piece::Field(i) => Some(*i),
                    Piece::Text(_) => None,
                })
                .collect()
        }
    }
}

/// A canonical field the contract calls sensitive (bank details) must come from fields
/// the definition masks, or its value would sit in clear in the ledger's raw lines and
/// the reject reports.
fn check_sensitive_targets(
    c: &mut Checker,
    entity: Entity,
    entries: &BTreeMap<String, Spanned<toml::Value>>,
    mapped: &[(String, MapValue)],
    fields: &[Field],
) {
    for (target, mv) in mapped {
        if !entity.sensitive_fields().contains(&target.as_str()) {
            continue;
        }
        for i in fields_read(mv) {
            if !fields[i].sensitive {
                c.err(
                    entries.get(target).map(|v| v.span()),
                    format!(
                        "[map.header] {target}: the {entity} contract treats '{target}' as sensitive; \
                         declare field '{}' with sensitive = true so it is masked in the ledger and reports",
                        fields[i].name
                    ),
                );
            }
        }
    }
}

/// Checks one definition file; `None` if it has any error (all reported to `diags`).
pub fn check(def: &DefFile, diags: &mut Diagnostics) -> Option<TabularDef> {
    let before = diags.errors.len();
    let raw: RawDef = def.parse(diags)?;
    // Unknown keys were reported and dropped by the parse; they still fail the definition.
    let errors = diags.errors.len() - before;
    let mut c = Checker { def, diags, errors };
    let name = raw.name.get_ref().trim().to_string();
    if name.is_empty() {
        c.err(Some(raw.name.span()), "`name` is empty");
    }

    let (header, skip_rows, source) = match raw.kind.as_str() {
        "csv" => {
            if let Some(s) = &raw.sheet {
                c.err(
                    Some(s.span()),
                    "[sheet] belongs to kind = \"sheet\"; CSV uses [csv]",
                );
            }
            let (span, d) = match &raw.csv {
                Some(s) => (Some(s.span()), Some(s.get_ref())),
                None => (None, None),
            };
            let delimiter = match d.and_then(|d| d.delimiter.as_deref()) {
                None => b',',
                Some(s) => single_byte(s).unwrap_or_else(|| {
                    c.err(
                        span.clone(),
                        format!("delimiter must be one ASCII character or \"\\t\", got \"{s}\""),
                    );
                    b','
                }),
            };
            let quote = match d.and_then(|d| d.quote.as_deref()) {
                None => Some(b'"'),
                Some("") => None,
                Some(s) => match single_byte(s) {
                    Some(q) => Some(q),
                    None => {
                        c.err(
                            span.clone(),
                            format!("quote must be one ASCII character or \"\", got \"{s}\""),
                        );
                        Some(b'"')
                    }
                },
            };
            if quote == Some(delimiter) {
                c.err(span.clone(), "quote and delimiter are the same character");
            }
            if matches!(delimiter, b'\r' | b'\n') || matches!(quote, Some(b'\r' | b'\n')) {
                c.err(span.clone(), "delimiter and quote cannot be line breaks");
            }
            let encoding = match d.and_then(|d| d.encoding.as_deref()) {
                None => Encoding::Utf8,
                Some(e) => Encoding::parse(e).unwrap_or_else(|msg| {
                    c.err(span.clone(), msg);
                    Encoding::Utf8
                }),
            };
            (
                d.and_then(|d| d.header).unwrap_or(true),
                d.and_then(|d| d.skip_rows).unwrap_or(0),
                Source::Csv(CsvDialect {
                    delimiter,
                    quote,
                    encoding,
                }),
            )
        }
        "sheet" => {
            if let Some(s) = &raw.csv {
                c.err(
                    Some(s.span()),
                    "[csv] belongs to kind = \"csv\"; spreadsheets use [sheet]",
                );
            }
            let d = raw.sheet.as_ref().map(|s| s.get_ref());
            (
                d.and_then(|d| d.header).unwrap_or(true),
                d.and_then(|d| d.skip_rows).unwrap_or(0),
                Source::Sheet(d.and_then(|d| d.sheet.clone()).unwrap_or_default()),
            )
        }
        other => {
            c.err_key(
                "kind",
                format!("the tabular loader does not take kind '{other}'"),
            );
            return None;
        }
    };

    let filename_globs = match &raw.matching.filename {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => vec![s.clone()],
        Some(OneOrMany::Many(v)) => v.clone(),
    };
    let match_header: Vec<String> = raw
        .matching
        .header
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|h| h.trim().to_string())
        .collect();
    if filename_globs.is_empty() && match_header.is_empty() {
        c.err_key(
            "match",
            "[match] needs `filename` glob(s) and/or `header` columns, or the format never claims a file",
        );
    }
    if !match_header.is_empty() && !header {
        c.err_key("header", "match.header needs a header row (header = true)");
    }

    // Fields.
    let mut fields = Vec::new();
    let mut seen = HashSet::new();
    if raw.fields.is_empty() {
        c.err_key("fields", "no [[fields]] defined");
    }
    for rf in &raw.fields {
        let n = rf.get_ref().name.trim().to_string();
        if !seen.insert(n.clone()) {
            c.err(Some(rf.span()), format!("field '{n}' is defined twice"));
        }
        if let Some(f) = check_field(&mut c, rf, header, raw.kind == "sheet") {
            fields.push(f);
        } else {
            // Keep a placeholder so later references to the name are not reported twice.
            fields.push(Field {
                name: n,
                column: ColumnRef::Index(usize::MAX),
                ty: FieldType::String,
                required: false,
                sensitive: false,
                trim: true,
                min: None,
                max: None,
                exclusive_min: None,
                exclusive_max: None,
                min_length: None,
                max_length: None,
                regex: None,
                checksum: None,
            });
        }
    }

    let find = |n: &str| fields.iter().position(|f| f.name == n);
    let key = match parse_template(raw.key.get_ref(), &find) {
        Ok(t) if t.0.iter().any(|p| matches!(p, Piece::Field(_))) => Some(t),
        Ok(_) => {
            c.err(
                Some(raw.key.span()),
                "key must reference at least one field, e.g. \"{order_no}\"",
            );
            None
        }
        Err(e) => {
            c.err(Some(raw.key.span()), format!("key: {e}"));
            None
        }
    };
    let group_by = match &raw.group_by {
        None => None,
        Some(g) => match find(g.get_ref().trim()) {
            Some(i) => Some(i),
            None => {
                c.err(
                    Some(g.span()),
                    format!("group_by refers to unknown field '{}'", g.get_ref()),
                );
                None
            }
        },
    };

    // Map.
    let rm = raw.map.get_ref();
    let entity = Entity::parse(rm.entity.get_ref());
    if entity.is_none() {
        let known: Vec<&str> = Entity::ALL.iter().map(|e| e.as_str()).collect();
        c.err(
            Some(rm.entity.span()),
            format!(
                "unknown entity '{}' (known: {})",
                rm.entity.get_ref(),
                known.join(", ")
            ),
        );
    }
    let shape = entity.map(contract::shape);
    let head_allowed = shape.as_ref().map(|s| s.fields.as_slice());
    let header_map = check_map_section(&mut c, "header", &rm.header, head_allowed, &fields);
    if let Some(e) = entity {
        check_sensitive_targets(&mut c, e, &rm.header, &header_map, &fields);
    }
    let lines_map = match (&rm.lines, &shape) {
        (None, Some(s)) if s.lines_required => {
            c.err(
                Some(raw.map.span()),
                format!(
                    "entity '{}' needs [map.lines] (its records carry lines)",
                    rm.entity.get_ref()
                ),
            );
            None
        }
        (Some(_), Some(s)) if s.line_fields.is_none() => {
            c.err(
                Some(raw.map.span()),
                format!(
                    "entity '{}' has no lines; remove [map.lines]",
                    rm.entity.get_ref()
                ),
            );
            None
        }
        (Some(l), s) => Some(check_map_section(
            &mut c,
            "lines",
            l,
            s.as_ref().and_then(|s| s.line_fields.as_deref()),
            &fields,
        )),
        (None, _) => None,
    };
    if let Some(s) = &shape {
        for req in &s.required {
            if !header_map.iter().any(|(t, _)| t == req) && *req != "lines" {
                c.err(
                    Some(raw.map.span()),
                    format!(
                        "[map.header] must produce '{req}', required by the canonical contract"
                    ),
                );
            }
        }
        if let (Some(lm), Some(lreq)) = (&lines_map, &s.line_required) {
            for req in lreq {
                if !lm.iter().any(|(t, _)| t == req) {
                    c.err(
                        Some(raw.map.span()),
                        format!(
                            "[map.lines] must produce '{req}', required by the canonical contract"
                        ),
                    );
                }
            }
        }
    }

    let policy = match Policy::parse(
        raw.policy
            .as_ref()
            .map(|p| p.get_ref().as_str())
            .unwrap_or("all-or-nothing"),
        raw.max_reject_ratio,
    ) {
        Ok(p) => Some(p),
        Err(e) => {
            c.err(raw.policy.as_ref().map(|p| p.span()), e);
            None
        }
    };
    if raw.max_reject_ratio.is_some()
        && raw.policy.as_ref().map(|p| p.get_ref().as_str()) != Some("accept-valid")
    {
        c.err_key(
            "max_reject_ratio",
            "max_reject_ratio applies only to policy = \"accept-valid\"",
        );
    }
    let _ = raw.description;
    let identity = raw
        .identity
        .as_ref()
        .and_then(|i| match i.get_ref().as_str() {
            "create-once" => Some(crate::canonical::Identity::CreateOnce),
            "upsert" => Some(crate::canonical::Identity::Upsert),
            other => {
                c.err(
                    Some(i.span()),
                    format!(
                        "identity '{other}' is not a rule (expected \"create-once\" or \"upsert\")"
                    ),
                );
                None
            }
        });

    if c.errors > 0 {
        return None;
    }
    let mut def = TabularDef {
        name,
        kind: raw.kind,
        filename_globs,
        match_header,
        source,
        header,
        skip_rows,
        fields,
        key: key?,
        group_by,
        map: Mapping {
            entity: entity?,
            header: header_map,
            lines: lines_map,
        },
        policy: policy?,
        identity,
        head_fields: Vec::new(),
    };
    def.head_fields = def.header_fields();
    Some(def)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The index finds what a scan in order found: the first code equal to the text
    /// (ASCII case folded when asked), for codes that differ only in case too.
    #[test]
    fn code_table_finds_what_a_scan_in_order_found() {
        let entries: Vec<(String, String)> = [
            ("EUR", "EUR"),
            ("usd", "US dollar"),
            ("USD", "USD"),
            ("Ä", "a-umlaut"),
            ("00", "original"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for ignore_case in [false, true] {
            let table = CodeTable::new(entries.clone(), ignore_case);
            for text in [
                "EUR", "eur", "usd", "USD", "Usd", "Ä", "ä", "00", "0", "", "GBP",
            ] {
                let scan = entries
                    .iter()
                    .find(|(k, _)| match ignore_case {
                        true => k.eq_ignore_ascii_case(text),
                        false => k == text,
                    })
                    .map(|(_, v)| v.as_str());
                assert_eq!(table.get(text), scan, "{text:?}, ignore_case {ignore_case}");
            }
            assert_eq!(
                table.codes().collect::<Vec<_>>(),
                ["EUR", "usd", "USD", "Ä", "00"]
            );
        }
    }

    fn load(text: &str) -> (Option<TabularDef>, Diagnostics) {
        let table: toml::Table = toml::from_str(text).unwrap();
        let def = DefFile {
            path: "t.toml".into(),
            text: text.into(),
            kind: table["kind"].as_str().unwrap().to_string(),
            table,
        };
        let mut d = Diagnostics::default();
        let r = check(&def, &mut d);
        (r, d)
    }

    const GOOD: &str = r#"
kind = "csv"
name = "t"
key = "{order_no}"
group_by = "order_no"
policy = "accept-valid"
max_reject_ratio = 0.5
[match]
filename = "orders*.csv"
[[fields]]
name = "order_no"
required = true
[[fields]]
name = "qty"
type = "decimal"
exclusive_min = 0
[[fields]]
name = "d"
type = "date"
format = "%d.%m.%Y"
[map]
entity = "order"
[map.header]
order_no = "{order_no}"
order_date = "d"
[map.lines]
line_no = "1"
quantity = "{qty}"
"#;

    #[test]
    fn good_definition_loads() {
        let (def, d) = load(GOOD);
        assert!(d.is_empty(), "{:?}", d.errors);
        let def = def.unwrap();
        assert_eq!(def.group_by, Some(0));
        assert!(matches!(def.map.header[0].1, MapValue::Const(_)));
        assert!(matches!(def.map.header[1].1, MapValue::Field(0)));
    }

    #[test]
    fn the_corrections_error_column_cannot_be_bound() {
        let text = GOOD.replace(
            "name = \"qty\"\n",
            "name = \"qty\"\ncolumn = \"Tallyman_Error\"\n",
        );
        let (def, d) = load(&text);
        assert!(def.is_none());
        assert!(
            d.errors[0].to_string().contains("reserved"),
            "{:?}",
            d.errors
        );
    }

    #[test]
    fn every_error_is_reported_with_its_line() {
        let text = r#"kind = "csv"
name = "bad"
key = "{nope}"
group_by = "missing"
[match]
filename = "x*.csv"
[[fields]]
name = "a"
type = "decimal"
regex = "("
[[fields]]
name = "b"
type = "date"
format = "%H:%M"
[[fields]]
name = "c"
type = "colour"
[map]
entity = "planet"
[map.header]
x = "{zzz}"
"#;
        let (def, d) = load(text);
        assert!(def.is_none());
        let msgs: Vec<String> = d.errors.iter().map(|e| e.to_string()).collect();
        let all = msgs.join("\n");
        for needle in [
            "t.toml:3: key: template \"{nope}\" refers to unknown field 'nope'",
            "t.toml:4: group_by refers to unknown field 'missing'",
            "t.toml:7: field 'a': bad regex '(': error: unclosed group",
            "t.toml:11: field 'b': date pattern '%H:%M' cannot identify a day",
            "t.toml:15: field 'c': unknown type 'colour'",
            "t.toml:19: unknown entity 'planet'",
            "t.toml:21: [map.header] x: template \"{zzz}\" refers to unknown field 'zzz'",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in\n{all}");
        }
        assert!(d.errors.iter().all(|e| e.line.is_some()), "{all}");
    }

    #[test]
    fn contract_fields_are_checked() {
        let text = GOOD.replace("order_date = \"d\"", "order_colour = \"d\"");
        let (def, d) = load(&text);
        assert!(def.is_none());
        assert!(
            d.errors[0]
                .message
                .contains("'order_colour' is not a field of the canonical contract"),
            "{:?}",
            d.errors
        );
        let text = GOOD.replace("quantity = \"{qty}\"", "");
        let (_, d) = load(&text);
        assert!(d.errors[0].message.contains("must produce 'quantity'"));
    }

    const SUPPLIERS: &str = r#"
kind = "csv"
name = "s"
key = "{id}"
[match]
filename = "s*.csv"
[[fields]]
name = "id"
required = true
[[fields]]
name = "iban"
checksum = "iban"
sensitive = true
[[fields]]
name = "holder"
sensitive = true
[map]
entity = "supplier"
[map.header]
supplier_id = "{id}"
name = "{id}"
iban = "{iban}"
account_holder = "Holder: {holder}"
"#;

    #[test]
    fn sensitive_contract_fields_must_come_from_sensitive_fields() {
        let (def, d) = load(SUPPLIERS);
        assert!(d.is_empty(), "{:?}", d.errors);
        let def = def.unwrap();
        assert_eq!(def.fields[1].checksum, Some(Checksum::Iban));
        // Each way of reading a field counts: a plain reference and a template.
        let leaky = SUPPLIERS
            .replace("checksum = \"iban\"\nsensitive = true", "")
            .replace("name = \"holder\"\nsensitive = true", "name = \"holder\"");
        let (def, d) = load(&leaky);
        assert!(def.is_none());
        let msgs: Vec<(Option<usize>, &str)> = d
            .errors
            .iter()
            .map(|e| (e.line, e.message.as_str()))
            .collect();
        assert_eq!(msgs.len(), 2, "{msgs:?}");
        assert!(msgs[0]
            .1
            .contains("declare field 'holder' with sensitive = true"));
        let holder_line = leaky
            .lines()
            .position(|l| l.starts_with("account_holder"))
            .map(|i| i + 1);
        assert_eq!(msgs[0].0, holder_line, "{msgs:?}");
        assert!(msgs[1].1.contains("'iban' as sensitive"), "{msgs:?}");
        // A constant reads nothing and is fine.
        let constant = leaky.replace("\"Holder: {holder}\"", "\"n/a\"");
        let (_, d) = load(&constant.replace("iban = \"{iban}\"", ""));
        assert!(d.is_empty(), "{:?}", d.errors);
    }

    #[test]
    fn unknown_checksum_is_refused_with_the_known_ones() {
        let (def, d) = load(&SUPPLIERS.replace("checksum = \"iban\"", "checksum = \"luhn\""));
        assert!(def.is_none());
        assert!(
            d.errors[0]
                .message
                .contains("unknown checksum 'luhn' (known: iban)"),
            "{:?}",
            d.errors
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        let (def, d) = load(&GOOD.replace("required = true", "requird = true"));
        assert!(def.is_none());
        assert!(d.errors[0].message.contains("requird"), "{:?}", d.errors);
        assert!(d.errors[0].line.is_some());
    }

    #[test]
    fn regression_unknown_keys_were_reported_one_per_check() {
        // Three misspelt keys and a wrong type: one `tallyman check` pass shows all four.
        let dir = tempfile::tempdir().unwrap();
        let text = GOOD
            .replace("group_by =", "descripton = \"x\"\ngroup_by =")
            .replace(
                "[match]",
                "[csv]\ndelimeter = \";\"\nskip_rows = \"two\"\n[match]",
            )
            .replace("required = true", "requird = true");
        std::fs::write(dir.path().join("t.toml"), &text).unwrap();
        let mut d = Diagnostics::default();
        let set = crate::format::registry::load_formats(dir.path(), &mut d);
        assert!(set.formats.is_empty());
        let got: Vec<(Option<usize>, &str)> = d
            .errors
            .iter()
            .map(|e| (e.line, e.message.as_str()))
            .collect();
        assert_eq!(got.len(), 4, "{got:#?}");
        assert_eq!(
            got[0],
            (
                Some(5),
                "unknown key 'descripton' at the top level; did you mean 'description'?"
            )
        );
        assert_eq!(
            got[1],
            (
                Some(10),
                "unknown key 'delimeter' in [csv]; did you mean 'delimiter'?"
            )
        );
        assert_eq!(
            got[2],
            (
                Some(16),
                "unknown key 'requird' in [[fields]]; did you mean 'required'?"
            )
        );
        assert_eq!(got[3].0, Some(11));
        assert!(got[3].1.contains("invalid type: string \"two\""), "{got:?}");
    }

    #[test]
    fn unknown_keys_do_not_hide_semantic_errors() {
        let (def, d) = load(
            &GOOD
                .replace("required = true", "requird = true")
                .replace("type = \"date\"", "type = \"colour\""),
        );
        assert!(def.is_none());
        let msgs: Vec<&str> = d.errors.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(msgs.len(), 3, "{msgs:?}");
        assert!(msgs[0].contains("'requird'"));
        assert!(msgs[1].contains("unknown type 'colour'"));
        assert!(msgs[2].contains("`format` applies only to date"));
    }

    #[test]
    fn datetime_fields_need_a_timezone_unless_the_pattern_has_an_offset() {
        let with = |extra: &str| {
            GOOD.replace(
                "type = \"date\"\nformat = \"%d.%m.%Y\"",
                &format!("type = \"datetime\"\n{extra}"),
            )
            .replace("order_date = \"d\"", "order_date = \"{d}\"")
        };
        let (def, d) = load(&with("format = \"%d.%m.%Y %H:%M\""));
        assert!(def.is_none());
        assert!(
            d.errors[0].message.contains("timezone = \"UTC\""),
            "{:?}",
            d.errors
        );
        let (def, d) = load(&with("format = \"%d.%m.%Y %H:%M %z\""));
        assert!(d.is_empty(), "{:?}", d.errors);
        // The date field mapped to order_date takes the day of the instant.
        assert!(matches!(def.unwrap().map.header[0].1, MapValue::DateOf(2)));
        let (_, d) = load(&with("timezone = \"Europe/Paris\"\nmin = \"2020-01-01\""));
        let all: Vec<&str> = d.errors.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(all.len(), 2, "{all:?}");
        assert!(all[0].contains("named zones"));
        assert!(all[1].contains("min must be an ISO date-time"));
        let (_, d) = load(&with("timezone = \"UTC\"\nmin = 2020-01-01T00:00:00Z"));
        assert!(d.is_empty(), "{:?}", d.errors);
        let (_, d) = load(&GOOD.replace("required = true", "required = true\ntimezone = \"UTC\""));
        assert!(d.errors[0]
            .message
            .contains("`timezone` applies only to datetime"));
    }

    #[test]
    fn templates_parse_literals_and_escapes() {
        let find = |n: &str| (n == "a").then_some(0);
        let t = parse_template("x-{a}-{{y}}", &find).unwrap();
        assert_eq!(
            t.0,
            vec![
                Piece::Text("x-".into()),
                Piece::Field(0),
                Piece::Text("-{y}".into())
            ]
        );
        assert!(parse_template("{a", &find).is_err());
        assert!(parse_template("a}", &find).is_err());
    }
}
