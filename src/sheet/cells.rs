//! Turning calamine's cells into the tabular contract's [`Cell`]s and [`Row`]s.
//!
//! Cells arrive one at a time in sheet order (row, then column) from a streaming reader;
//! [`RowBuilder`] groups them into rows without ever looking at the sheet's declared
//! dimension, so a file with cells at A1 and XFD1048576 costs two small rows, not a
//! million empty ones. Rows without a single non-empty cell are never yielded (the
//! tabular engine would skip them anyway), which keeps blank stretches free.

use calamine::{Data, ExcelDateTime};

use crate::format::{FileError, Limits};
use crate::sheet::guard::{MAX_COLS, MAX_ROWS};
use crate::tabular::csv_rows::CsvRows;
use crate::tabular::{column_letters, Cell, Row};
use crate::unit::Position;

/// Largest serial day Excel displays as a date (9999-12-31), per epoch.
const MAX_SERIAL_1900: f64 = 2_958_466.0;
const MAX_SERIAL_1904: f64 = 2_957_004.0;

/// Converts one calamine value. Dates become ISO strings in whichever date system the
/// workbook uses (calamine hands us the workbook's 1904 flag with every date).
pub(crate) fn convert(value: Data) -> Cell {
    match value {
        Data::Empty => Cell::Empty,
        Data::Int(i) => Cell::Int(i),
        Data::Float(f) if f.is_finite() => Cell::Float(f),
        Data::Float(_) => Cell::Error("#NUM!".into()),
        Data::String(s) => Cell::Text(s.into()),
        Data::Bool(b) => Cell::Bool(b),
        Data::DateTime(dt) => convert_datetime(&dt),
        Data::DateTimeIso(s) => Cell::DateTime(s.into()),
        Data::DurationIso(s) => Cell::Text(s.into()),
        Data::Error(e) => Cell::Error(e.to_string().into()),
    }
}

fn convert_datetime(dt: &ExcelDateTime) -> Cell {
    let serial = dt.as_f64();
    if dt.is_duration() {
        // `[h]:mm` cells are amounts of time, not instants: keep the number of days.
        return Cell::Float(serial);
    }
    // calamine keeps the epoch flag private; the two systems are 1462 days apart, so
    // converting as 1900 and comparing tells which one this workbook uses.
    let ymd = dt.to_ymd_hms_milli();
    let as_1900 =
        ExcelDateTime::new(serial, calamine::ExcelDateTimeType::DateTime, false).to_ymd_hms_milli();
    let is_1904 = ymd != as_1900;
    // calamine saturates serials outside Excel's range to the epoch or 9999-12-31, which
    // would invent a date; Excel shows `#####` for these, so pass the number through.
    let max = if is_1904 {
        MAX_SERIAL_1904
    } else {
        MAX_SERIAL_1900
    };
    if !(0.0..max).contains(&serial) {
        return Cell::Float(serial);
    }
    let (y, mo, d, h, mi, s, _ms) = ymd;
    if !is_1904 && serial < 1.0 {
        // A time of day without a date (the 1900 system has no day 0).
        return Cell::Text(format!("{h:02}:{mi:02}:{s:02}").into());
    }
    if h == 0 && mi == 0 && s == 0 {
        Cell::DateTime(format!("{y:04}-{mo:02}-{d:02}").into())
    } else {
        Cell::DateTime(format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}").into())
    }
}

/// Groups streamed cells into [`Row`]s and enforces the per-row limits.
pub(crate) struct RowBuilder {
    sheet: String,
    max_record_bytes: u64,
    /// 0-based sheet row being collected.
    row: Option<u32>,
    cells: Vec<Cell>,
    /// Text bytes collected for the current row (what `raw` will roughly cost).
    bytes: u64,
}

impl RowBuilder {
    pub(crate) fn new(sheet: &str, limits: &Limits) -> Self {
        RowBuilder {
            sheet: sheet.to_string(),
            max_record_bytes: limits.max_record_bytes,
            row: None,
            cells: Vec::new(),
            bytes: 0,
        }
    }

    fn locator(&self, row0: u32, col0: u32) -> String {
        format!(
            "{}!{}{}",
            self.sheet,
            column_letters(col0 as usize),
            u64::from(row0) + 1
        )
    }

    /// A sheet row's position: `line` and `record` are the row number as Excel shows it
    /// (what a reviewer looks for); a workbook has no meaningful byte offset, so `byte` is
    /// 0 and the cell locator tells readers of the position not to show it.
    fn pos(&self, row0: u32, col0: u32) -> Position {
        let row = u64::from(row0) + 1;
        Position::new(row, 0, row).with_locator(self.locator(row0, col0))
    }

    /// Adds the cell at 0-based (`row0`, `col0`); returns the previous row when this cell
    /// starts a new one.
    pub(crate) fn push(
        &mut self,
        row0: u32,
        col0: u32,
        cell: Cell,
    ) -> Result<Option<Row>, FileError> {
        if u64::from(row0) >= MAX_ROWS || u64::from(col0) >= MAX_COLS {
            return Err(FileError::at(
                self.pos(row0.min(MAX_ROWS as u32 - 1), 0),
                "sheet-cell-out-of-range",
                format!(
                    "cell at row {}, column {} lies outside the sheet grid (XFD1048576)",
                    u64::from(row0) + 1,
                    u64::from(col0) + 1
                ),
            ));
        }
        let done = match self.row {
            Some(r) if r != row0 => self.take(),
            _ => None,
        };
        self.row = Some(row0);
        if cell.is_empty() && !matches!(cell, Cell::Text(_)) {
            return Ok(done);
        }
        let len = match &cell {
            Cell::Text(s) | Cell::DateTime(s) | Cell::Error(s) => s.len() as u64,
            // Numbers and booleans render in a few bytes; only text can be large.
            _ => 8,
        };
        if len > self.max_record_bytes {
            return Err(FileError::at(
                self.pos(row0, col0),
                "sheet-cell-too-large",
                format!(
                    "cell {} holds {len} bytes of text (limit {}, max_record_bytes)",
                    self.locator(row0, col0),
                    self.max_record_bytes
                ),
            ));
        }
        // One comma per column: a row sprawling to XFD costs its width even when empty.
        let width_cost = u64::from(col0).saturating_sub(self.cells.len() as u64);
        self.bytes = self.bytes.saturating_add(len + 1 + width_cost);
        if self.bytes > self.max_record_bytes {
            return Err(FileError::at(
                self.pos(row0, 0),
                "sheet-row-too-large",
                format!(
                    "row {} holds more than {} bytes (max_record_bytes)",
                    u64::from(row0) + 1,
                    self.max_record_bytes
                ),
            ));
        }
        let col = col0 as usize;
        if self.cells.len() <= col {
            self.cells.resize(col + 1, Cell::Empty);
        }
        self.cells[col] = cell;
        Ok(done)
    }

    /// The row collected so far, if it holds anything.
    pub(crate) fn finish(&mut self) -> Option<Row> {
        self.take()
    }

    fn take(&mut self) -> Option<Row> {
        let row0 = self.row.take()?;
        let cells = std::mem::take(&mut self.cells);
        self.bytes = 0;
        if cells.iter().all(Cell::is_empty) {
            return None;
        }
        // Quoted like CSV (RFC 4180) so a reviewer can paste the row back.
        let texts: Vec<String> = cells.iter().map(Cell::to_text).collect();
        let raw = CsvRows::join(&texts, b',', Some(b'"'));
        Some(Row {
            pos: self.pos(row0, 0),
            sheet: Some(self.sheet.clone()),
            row_number: u64::from(row0) + 1,
            cells,
            raw,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use calamine::ExcelDateTimeType;

    fn date(v: f64, is_1904: bool) -> Cell {
        convert(Data::DateTime(ExcelDateTime::new(
            v,
            ExcelDateTimeType::DateTime,
            is_1904,
        )))
    }

    #[test]
    fn dates_in_both_systems_agree() {
        // 2026-11-03 is serial 46329 in the 1900 system and 44867 in the 1904 system.
        assert_eq!(date(46329.0, false), Cell::DateTime("2026-11-03".into()));
        assert_eq!(date(44867.0, true), Cell::DateTime("2026-11-03".into()));
        assert_eq!(
            date(46329.5, false),
            Cell::DateTime("2026-11-03T12:00:00".into())
        );
    }

    #[test]
    fn out_of_range_date_serials_stay_numbers() {
        assert_eq!(date(-1.0, false), Cell::Float(-1.0));
        assert_eq!(date(1e12, false), Cell::Float(1e12));
        assert_eq!(date(1e12, true), Cell::Float(1e12));
    }

    #[test]
    fn sparse_row_is_filled_only_up_to_last_cell() {
        let mut b = RowBuilder::new("S", &Limits::default());
        assert!(b.push(0, 0, Cell::Int(1)).unwrap().is_none());
        assert!(b.push(0, 3, Cell::Text("x".into())).unwrap().is_none());
        let row = b.push(1_048_575, 0, Cell::Int(2)).unwrap().unwrap();
        assert_eq!(row.cells.len(), 4);
        assert_eq!(row.raw, "1,,,x");
        assert_eq!(row.pos.locator.as_deref(), Some("S!A1"));
        let last = b.finish().unwrap();
        assert_eq!(last.row_number, 1_048_576);
        assert_eq!(last.pos.record, 1_048_576);
        assert!(b.finish().is_none());
    }

    #[test]
    fn regression_sheet_rows_were_line_0_and_joined_without_quoting() {
        let mut b = RowBuilder::new("Orders", &Limits::default());
        b.push(11, 0, Cell::Text("A-1".into())).unwrap();
        b.push(11, 1, Cell::Text("Bolt, M8".into())).unwrap();
        b.push(11, 2, Cell::Text("6\" \"long\"".into())).unwrap();
        b.push(11, 3, Cell::Text("two\nlines".into())).unwrap();
        b.push(11, 4, Cell::Float(2.5)).unwrap();
        let row = b.finish().unwrap();
        assert_eq!((row.pos.line, row.pos.record), (12, 12));
        assert_eq!(
            row.raw,
            "A-1,\"Bolt, M8\",\"6\"\" \"\"long\"\"\",\"two\nlines\",2.5"
        );
        // Pasted back, it reads as the same cells.
        let mut r = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(row.raw.as_bytes());
        let rec = r.records().next().unwrap().unwrap();
        let texts: Vec<String> = row.cells.iter().map(Cell::to_text).collect();
        assert_eq!(rec.iter().collect::<Vec<_>>(), texts);
    }

    #[test]
    fn empty_rows_are_skipped() {
        let mut b = RowBuilder::new("S", &Limits::default());
        assert!(b.push(0, 0, Cell::Empty).unwrap().is_none());
        assert!(b.push(1, 0, Cell::Text("  ".into())).unwrap().is_none());
        assert!(b.push(2, 1, Cell::Bool(true)).unwrap().is_none());
        let row = b.finish().unwrap();
        assert_eq!(row.row_number, 3);
        assert_eq!(row.cells, vec![Cell::Empty, Cell::Bool(true)]);
    }

    #[test]
    fn oversized_cells_and_rows_are_refused_with_position() {
        let limits = Limits {
            max_record_bytes: 10,
            ..Limits::default()
        };
        let mut b = RowBuilder::new("Orders", &limits);
        let err = b
            .push(11, 2, Cell::Text("x".repeat(11).into()))
            .unwrap_err();
        assert_eq!(err.reason.rule, "sheet-cell-too-large");
        assert_eq!(err.pos.unwrap().locator.as_deref(), Some("Orders!C12"));
        let mut b = RowBuilder::new("Orders", &limits);
        b.push(0, 0, Cell::Text("abcde".into())).unwrap();
        let err = b.push(0, 1, Cell::Text("fghij".into())).unwrap_err();
        assert_eq!(err.reason.rule, "sheet-row-too-large");
        // A far column costs its width.
        let mut b = RowBuilder::new("Orders", &limits);
        let err = b.push(0, 16_383, Cell::Int(1)).unwrap_err();
        assert_eq!(err.reason.rule, "sheet-row-too-large");
    }

    #[test]
    fn cells_outside_the_grid_are_refused() {
        let mut b = RowBuilder::new("S", &Limits::default());
        let err = b.push(0, 16_384, Cell::Int(1)).unwrap_err();
        assert_eq!(err.reason.rule, "sheet-cell-out-of-range");
        let err = b.push(u32::MAX, 0, Cell::Int(1)).unwrap_err();
        assert_eq!(err.reason.rule, "sheet-cell-out-of-range");
    }
}
