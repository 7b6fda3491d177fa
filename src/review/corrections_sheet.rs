//! The spreadsheet corrections file: an `.xlsx` with the original's leading rows and
//! header, then the rows of the rejected documents, cells typed as they were read (numbers
//! as numbers, dates as dates, text as text, so `0012` stays text), and a `tallyman_error`
//! column.
//!
//! A workbook has no byte offsets, so the original is read again with the streaming sheet
//! reader and rows are picked by their row number, which is what the ledger keeps as a
//! sheet row's line. The data sheet keeps the original sheet's name and index (hidden empty
//! sheets stand in front when the definition selects by a later index), so the same
//! definition finds it. Rows are written in constant memory (`rust_xlsxwriter` spools them
//! to an unnamed temporary file in the destination folder); a panic inside the writer
//! library becomes an error, never a crash of the run.

use std::io;
use std::path::Path;

use rust_xlsxwriter::{ExcelDateTime, Format, Workbook, Worksheet, XlsxError};

use super::csv::Column;
use super::{error_text, CorrectionsError, RejectedRows};
use crate::format::OpenContext;
use crate::fsutil;
use crate::ledger::CorrectionLine;
use crate::tabular::def::{ColumnRef, TabularDef};
use crate::tabular::{Cell, Row, RowSource, SheetSelector, ERROR_COLUMN};

/// Columns a worksheet has (A..XFD).
const MAX_COLUMNS: usize = 16_384;

impl From<XlsxError> for CorrectionsError {
    fn from(e: XlsxError) -> Self {
        CorrectionsError::Xlsx(e.to_string())
    }
}

/// Writes the corrections workbook; `false` when the sheet has no rows any more.
pub(super) fn write(
    def: &TabularDef,
    selector: &SheetSelector,
    input: &Path,
    dest: &Path,
    rows: RejectedRows,
    ctx: &OpenContext,
) -> Result<bool, CorrectionsError> {
    let source = crate::sheet::open_rows(input, ctx, selector).map_err(CorrectionsError::Read)?;
    let dir = dest.parent().unwrap_or(Path::new("."));
    let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut book = Workbook::new();
        book.set_tempdir(dir)?;
        let wrote = fill(&mut book, def, selector, source, rows)?;
        if wrote {
            fsutil::write_atomic_with(dest, |f| book.save_to_writer(f).map_err(io::Error::other))?;
        }
        Ok::<bool, CorrectionsError>(wrote)
    }));
    built.unwrap_or_else(|_| {
        Err(CorrectionsError::Xlsx(
            "the workbook writer failed (is the disk full?)".into(),
        ))
    })
}

/// Adds the data sheet (behind hidden placeholders for an index selector) and its rows.
fn fill(
    book: &mut Workbook,
    def: &TabularDef,
    selector: &SheetSelector,
    source: Box<dyn RowSource>,
    rows: RejectedRows,
) -> Result<bool, CorrectionsError> {
    if let SheetSelector::Index(i) = selector {
        for n in 0..*i {
            book.add_worksheet()
                .set_name(format!("tallyman-{}", n + 1))?
                .set_hidden(true);
        }
    }
    let sheet = book.add_worksheet_with_constant_memory()?;
    sheet.set_active(true);
    Picker::new(def).run(sheet, source, rows)
}

/// Walks the original's rows, keeping the leading ones and the rejected ones.
struct Picker<'a> {
    def: &'a TabularDef,
    seen: u64,
    out_row: u32,
    column: Option<Column>,
    header: Format,
    error: Format,
    date: Format,
    datetime: Format,
}

impl<'a> Picker<'a> {
    fn new(def: &'a TabularDef) -> Self {
        Picker {
            def,
            seen: 0,
            out_row: 0,
            column: None,
            header: Format::new().set_bold(),
            error: Format::new().set_font_color(rust_xlsxwriter::Color::Red),
            date: Format::new().set_num_format("yyyy-mm-dd"),
            datetime: Format::new().set_num_format("yyyy-mm-dd hh:mm:ss"),
        }
    }

    fn run(
        mut self,
        sheet: &mut Worksheet,
        mut source: Box<dyn RowSource>,
        rows: RejectedRows,
    ) -> Result<bool, CorrectionsError> {
        let mut rejected = rows.peekable();
        let mut named = false;
        while let Some(row) = source.next_row().map_err(CorrectionsError::Read)? {
            if !named {
                named = true;
                if let Some(name) = &row.sheet {
                    sheet.set_name(name)?;
                }
            }
            if row.cells.iter().all(Cell::is_empty) {
                continue;
            }
            self.seen += 1;
            if self.seen <= self.def.skip_rows {
                self.put(sheet, &row.cells, None)?;
            } else if self.def.header && self.column.is_none() {
                self.column = Some(header_column(&row.cells));
                self.put(sheet, &row.cells, Some(ERROR_COLUMN))?;
            } else if !self.data_row(sheet, &row, &mut rejected)? {
                break;
            }
        }
        Ok(self.out_row > 0)
    }

    /// Writes `row` if it is the next rejected one; `false` once none are left.
    fn data_row(
        &mut self,
        sheet: &mut Worksheet,
        row: &Row,
        rejected: &mut std::iter::Peekable<RejectedRows>,
    ) -> Result<bool, CorrectionsError> {
        let line = row.row_number as i64;
        let def = self.def;
        self.column
            .get_or_insert_with(|| Column::Insert(headerless_width(def)));
        while let Some(next) = rejected.next_if(|l| l.as_ref().is_ok_and(|l| l.line < line)) {
            next?;
        }
        if let Some(found) = rejected.next_if(|l| l.as_ref().map_or(true, |l| l.line == line)) {
            let found: CorrectionLine = found?;
            self.put(sheet, &row.cells, Some(&error_text(&found)))?;
        }
        Ok(rejected.peek().is_some())
    }

    /// Writes one row with the "what was wrong" text (or the column's name) in its column.
    fn put(
        &mut self,
        sheet: &mut Worksheet,
        cells: &[Cell],
        error: Option<&str>,
    ) -> Result<(), CorrectionsError> {
        let r = self.out_row;
        self.out_row += 1;
        let column = self.column.unwrap_or(Column::Insert(usize::MAX));
        for (i, cell) in cells.iter().enumerate() {
            if column == Column::Replace(i) {
                continue;
            }
            let at = match column {
                Column::Insert(e) if i >= e => i + 1,
                _ => i,
            };
            if let Some(c) = col(at) {
                self.cell(sheet, r, c, cell)?;
            }
        }
        if let (Some(text), Some(c)) = (error, col(column_at(column))) {
            let format = if self.seen == self.def.skip_rows + 1 && self.def.header {
                &self.header
            } else {
                &self.error
            };
            sheet.write_string_with_format(r, c, text, format)?;
        }
        Ok(())
    }

    fn cell(
        &self,
        sheet: &mut Worksheet,
        r: u32,
        c: u16,
        cell: &Cell,
    ) -> Result<(), CorrectionsError> {
        match cell {
            Cell::Empty => {}
            Cell::Text(s) | Cell::Error(s) => {
                sheet.write_string(r, c, s.as_str())?;
            }
            Cell::Int(i) => {
                sheet.write_number(r, c, *i as f64)?;
            }
            Cell::Float(f) => {
                sheet.write_number(r, c, *f)?;
            }
            Cell::Bool(b) => {
                sheet.write_boolean(r, c, *b)?;
            }
            Cell::DateTime(s) => {
                let format = if s.contains('T') {
                    &self.datetime
                } else {
                    &self.date
                };
                match ExcelDateTime::parse_from_str(s) {
                    Ok(dt) => sheet.write_datetime_with_format(r, c, dt, format)?,
                    Err(_) => sheet.write_string(r, c, s.as_str())?,
                };
            }
        }
        Ok(())
    }
}

/// Where the column goes: over an existing `tallyman_error` header cell, else after the
/// header's last cell.
fn header_column(cells: &[Cell]) -> Column {
    cells
        .iter()
        .position(|c| c.to_text().trim().eq_ignore_ascii_case(ERROR_COLUMN))
        .map_or(Column::Insert(cells.len()), Column::Replace)
}

/// Without a header, the column goes after every column a field reads (a sheet row
/// leaves out its trailing empty cells, so its own width says nothing).
fn headerless_width(def: &TabularDef) -> usize {
    def.fields
        .iter()
        .filter_map(|f| match f.column {
            ColumnRef::Index(i) => Some(i + 1),
            ColumnRef::Name(_) => None,
        })
        .max()
        .unwrap_or(0)
}

fn column_at(column: Column) -> usize {
    match column {
        Column::Insert(i) | Column::Replace(i) => i,
    }
}

fn col(i: usize) -> Option<u16> {
    u16::try_from(i)
        .ok()
        .filter(|&c| usize::from(c) < MAX_COLUMNS)
}
