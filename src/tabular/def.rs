//! The tabular definition language: what a `kind = "csv"` or `kind = "sheet"` TOML file may
//! say, and the one-pass semantic check that turns it into a [`TabularDef`] the engine runs.
//!
//! This module holds the checked definition, the shape the rest of the crate reads; the
//! TOML as written is `def/raw.rs` and the checking is `def/check.rs`, so that a reader
//! of the engine meets the types it runs without wading through every error message the
//! checker can give. The reference is `docs/format-language.md`.

use std::collections::HashMap;

use regex::Regex;
use rust_decimal::Decimal;

use super::checksum::Checksum;
use super::datetime::DateTimeSpec;
use super::SheetSelector;
use crate::canonical::Entity;
pub use crate::format::defs::CodeTable;
use crate::format::{glob_match, Policy};

mod check;
mod raw;

pub use check::{check, parse_template};

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
}
