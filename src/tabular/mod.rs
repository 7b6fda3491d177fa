//! Tabular formats: CSV files and spreadsheets share one definition language (fields,
//! types, constraints, grouping, mapping). A physical reader yields [`Row`]s through
//! [`RowSource`]; the tabular engine groups rows into units and validates and maps them.

// `FileError` is the shared error type of every format; its size is a cross-module
// decision (reported to the lead), not something to work around here.
#![allow(clippy::result_large_err)]

pub mod cell_text;
pub mod charset;
pub mod checksum;
pub mod contract;
pub mod csv_rows;
pub mod datetime;
pub mod def;
pub mod engine;
mod key_log;
pub mod sniff;

use std::sync::Arc;

pub use cell_text::CellText;

use crate::format::{DefFile, Diagnostics, FileError, Format};
use crate::unit::Position;

pub use engine::TabularFormat;

/// The column a corrections file adds to say what was wrong with each row. The reader
/// drops a header column of this name wherever it stands, so it never becomes data and
/// never trips `column-count`; a definition cannot bind a field to it.
pub const ERROR_COLUMN: &str = "tallyman_error";

/// Loader for kinds `csv` and `sheet` (registered in `crate::format::registry::KINDS`):
/// checks every definition, reporting all errors, and returns the ones without errors.
pub fn load(defs: &[&DefFile], diags: &mut Diagnostics) -> Vec<Arc<dyn Format>> {
    defs.iter()
        .filter_map(|d| def::check(d, diags))
        .map(|t| Arc::new(TabularFormat::new(t)) as Arc<dyn Format>)
        .collect()
}

/// One cell as read. CSV yields only `Text`/`Empty`; spreadsheets yield typed cells.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Empty,
    Text(CellText),
    Int(i64),
    /// A float as stored by the spreadsheet; converted to an exact decimal through its
    /// shortest round-trip representation.
    Float(f64),
    Bool(bool),
    /// A date/time cell already converted (1900 or 1904 system) to ISO 8601:
    /// `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM:SS`.
    DateTime(CellText),
    /// A spreadsheet error value (`#DIV/0!`, `#N/A`...).
    Error(CellText),
}

impl Cell {
    /// The cell as text, the way a reviewer would read it.
    pub fn to_text(&self) -> String {
        match self {
            Cell::Empty => String::new(),
            Cell::Text(s) | Cell::DateTime(s) | Cell::Error(s) => s.to_string(),
            Cell::Int(i) => i.to_string(),
            Cell::Float(f) => format!("{f}"),
            Cell::Bool(b) => b.to_string(),
        }
    }

    /// The cell as text, borrowed where the cell holds text: the per-cell checks read
    /// every cell, and a copy per cell is most of their cost.
    pub fn as_text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Cell::Empty => std::borrow::Cow::Borrowed(""),
            Cell::Text(s) | Cell::DateTime(s) | Cell::Error(s) => std::borrow::Cow::Borrowed(s),
            other => std::borrow::Cow::Owned(other.to_text()),
        }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            Cell::Empty => true,
            Cell::Text(s) => crate::unit::trim(s).is_empty(),
            _ => false,
        }
    }
}

/// One physical row (CSV record, sheet row).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Position of the row's first byte (CSV) or its row number (sheets: `line` and
    /// `record` = 1-based sheet row, `byte` 0, `locator` = `Sheet!A12`).
    pub pos: Position,
    /// The sheet name for spreadsheets, so errors can name the cell (`Orders!C12`).
    pub sheet: Option<String>,
    /// 1-based row number within the file (CSV) or sheet.
    pub row_number: u64,
    pub cells: Vec<Cell>,
    /// The original line (CSV, decoded) or the cells as one RFC 4180 line (sheets), unmasked:
    /// the engine masks sensitive columns before it reaches the ledger.
    pub raw: String,
}

/// A physical reader of rows, in order. Must stream (bounded memory per row).
pub trait RowSource: Send {
    fn next_row(&mut self) -> Result<Option<Row>, FileError>;
}

/// Which sheet a spreadsheet definition reads.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(untagged)]
pub enum SheetSelector {
    /// 0-based index.
    Index(usize),
    Name(String),
}

impl Default for SheetSelector {
    fn default() -> Self {
        SheetSelector::Index(0)
    }
}

/// Spreadsheet column letters for a 0-based column index: 0 → A, 25 → Z, 26 → AA.
pub fn column_letters(mut idx: usize) -> String {
    let mut out = Vec::new();
    loop {
        out.push(b'A' + (idx % 26) as u8);
        if idx < 26 {
            break;
        }
        idx = idx / 26 - 1;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_letters_like_excel() {
        assert_eq!(column_letters(0), "A");
        assert_eq!(column_letters(25), "Z");
        assert_eq!(column_letters(26), "AA");
        assert_eq!(column_letters(16383), "XFD");
    }
}
