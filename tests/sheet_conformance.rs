//! Conformance of the spreadsheet reader against real workbooks from other projects'
//! test suites (`tests/corpus/xlsx/`, provenance in its `PROVENANCE.md`), read through
//! `tallyman::sheet::open_rows` exactly as the tabular engine calls it (by
//! `format::testing::sheet_rows`).

#![allow(clippy::result_large_err)]

use std::path::{Path, PathBuf};

use tallyman::format::FileError;
use tallyman::tabular::{Cell, Row, SheetSelector};

fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus/xlsx")
        .join(name)
}

fn read_path(path: &Path, sel: SheetSelector) -> Result<Vec<Row>, FileError> {
    tallyman::format::testing::sheet_rows(path, sel)
}

fn read(name: &str, sel: SheetSelector) -> Vec<Row> {
    read_path(&corpus(name), sel).unwrap_or_else(|e| panic!("{name}: {e} ({})", e.reason.rule))
}

fn first(name: &str) -> Vec<Row> {
    read(name, SheetSelector::Index(0))
}

fn err(name: &str, sel: SheetSelector) -> FileError {
    match read_path(&corpus(name), sel) {
        Ok(rows) => panic!("{name}: expected an error, read {} rows", rows.len()),
        Err(e) => e,
    }
}

fn text(s: &str) -> Cell {
    Cell::Text(s.into())
}

fn date(s: &str) -> Cell {
    Cell::DateTime(s.into())
}

fn row(rows: &[Row], number: u64) -> &Row {
    rows.iter()
        .find(|r| r.row_number == number)
        .unwrap_or_else(|| panic!("no row {number}"))
}

#[test]
fn dates_in_1900_and_1904_systems_read_the_same() {
    let d1900 = first("calamine_date.xlsx");
    let d1904 = first("calamine_date_1904.xlsx");
    assert_eq!(d1900[0].cells, vec![date("2021-01-01"), Cell::Float(15.0)]);
    assert_eq!(d1900[1].cells, vec![date("2021-01-02"), Cell::Float(16.0)]);
    let cells = |rows: &[Row]| rows.iter().map(|r| r.cells.clone()).collect::<Vec<_>>();
    assert_eq!(cells(&d1900), cells(&d1904));
    // The third row is a duration (`[h]:mm:ss`): an amount of days, not a date.
    assert!(matches!(d1900[2].cells[0], Cell::Float(f) if (f - 10.632_060_185).abs() < 1e-6));

    let o1900 = first("openpyxl_date_1900.xlsx");
    let o1904 = first("openpyxl_date_1904.xlsx");
    assert_eq!(o1900[0].cells, vec![date("2011-10-31")]);
    assert_eq!(o1904[0].cells, vec![date("2011-10-31")]);
}

#[test]
fn csvkit_1904_workbook_reads_typed_cells() {
    let rows = first("csvkit_test.xlsx");
    assert_eq!(rows.len(), 6);
    assert_eq!(
        rows[0].cells,
        [
            "text",
            "date",
            "integer",
            "boolean",
            "float",
            "datetime",
            "empty_column"
        ]
        .map(text)
        .to_vec()
    );
    assert_eq!(
        rows[1].cells,
        vec![
            text("Chicago Reader"),
            date("1971-01-01"),
            Cell::Float(40.0),
            Cell::Bool(true),
            Cell::Float(1.0),
            date("1971-01-01T04:14:00"),
        ]
    );
    assert_eq!(
        rows[1].raw,
        "Chicago Reader,1971-01-01,40,true,1,1971-01-01T04:14:00"
    );
    assert_eq!(rows[3].cells[4], Cell::Float(41_800_000.01));
    assert_eq!(rows[5].cells, vec![text("Unicode! Σ")]);
    // The same data behind three preamble rows keeps its sheet row numbers.
    let skip = first("csvkit_test_skip_lines.xlsx");
    assert_eq!(skip[0].row_number, 4);
    assert_eq!(skip[1].cells, rows[1].cells);
}

#[test]
fn iso_date_cells_pass_through() {
    let rows = first("calamine_date_iso.xlsx");
    assert_eq!(rows[0].cells, vec![date("2021-01-01")]);
    assert_eq!(rows[1].cells, vec![date("2021-01-01T10:10:10")]);
}

#[test]
fn formulas_give_their_cached_values() {
    let rows = first("calamine_shared_formula_simple.xlsx");
    let got: Vec<_> = rows.iter().map(|r| r.cells.clone()).collect();
    assert_eq!(
        got,
        vec![
            vec![Cell::Float(1.0), Cell::Float(2.0)],
            vec![Cell::Float(2.0), Cell::Float(4.0)],
            vec![Cell::Float(3.0), Cell::Float(6.0)],
        ]
    );
    let rows = first("openpyxl_formulae.xlsx");
    assert_eq!(
        row(&rows, 4).cells,
        vec![Cell::Float(24690.0), text("Simple Equation")]
    );
    assert_eq!(
        row(&rows, 5).cells,
        vec![Cell::Float(49380.0), text("Alt Equation")]
    );
    let rows = first("calamine_formula.issue.xlsx");
    assert_eq!(
        rows[0].cells,
        vec![Cell::Float(23.0), Cell::Empty, Cell::Float(23.0)]
    );
    let rows = first("excelize_Book1.xlsx");
    assert_eq!(
        row(&rows, 19).cells,
        vec![text("Total:"), Cell::Float(237.0)]
    );
}

#[test]
fn error_values_are_error_cells() {
    let rows = first("calamine_errors.xlsx");
    let got: Vec<_> = rows.iter().map(|r| r.cells[0].clone()).collect();
    for (i, e) in ["#DIV/0!", "#NAME?", "#VALUE!", "#NULL!", "#REF!", "#NUM!"]
        .iter()
        .enumerate()
    {
        assert_eq!(got[i], Cell::Error((*e).into()));
    }
    assert_eq!(got.len(), 7);
    assert!(matches!(&got[6], Cell::Error(_)));
}

#[test]
fn merged_cells_hold_their_value_in_the_top_left_cell() {
    let rows = first("calamine_merge_cells.xlsx");
    assert_eq!(
        rows[0].cells,
        vec![text("Row Merge"), Cell::Empty, text("Not Merged")]
    );
    assert_eq!(
        rows[1].cells,
        vec![text("Column Merge"), text("Chunk Merged")]
    );
    let rows = first("excelize_MergeCell.xlsx");
    assert_eq!(
        row(&rows, 1).cells,
        vec![text("A1"), Cell::Empty, text("C1"), text("D1")]
    );
    assert_eq!(
        row(&rows, 5).cells,
        vec![Cell::Empty, Cell::Empty, text("C5"), text("D5")]
    );
    let rows = read(
        "calamine_merged_range.xlsx",
        SheetSelector::Name("Sheet2".into()),
    );
    assert_eq!(
        row(&rows, 4).cells,
        vec![
            Cell::Empty,
            text("B4"),
            Cell::Empty,
            Cell::Empty,
            text("E4")
        ]
    );
}

#[test]
fn hidden_sheets_are_selectable_and_chartsheets_refused() {
    let visible = read(
        "calamine_any_sheets.xlsx",
        SheetSelector::Name("Visible".into()),
    );
    assert_eq!(visible.len(), 4);
    assert_eq!(
        row(&visible, 5).cells,
        vec![text(
            "This workbook contains 4 sheets: Visible, Hidden, VeryHidden and Chart"
        )]
    );
    assert_eq!(visible[0].cells, vec![Cell::Float(1.0), Cell::Float(2.0)]);
    // Both hidden sheets exist and are empty in this workbook.
    assert!(read(
        "calamine_any_sheets.xlsx",
        SheetSelector::Name("Hidden".into())
    )
    .is_empty());
    assert!(read(
        "calamine_any_sheets.xlsx",
        SheetSelector::Name("VeryHidden".into())
    )
    .is_empty());
    assert_eq!(
        err(
            "calamine_any_sheets.xlsx",
            SheetSelector::Name("Chart".into())
        )
        .reason
        .rule,
        "sheet-not-a-worksheet"
    );
    // Worksheets after a chartsheet keep their workbook index.
    let more = read(
        "openpyxl_contains_chartsheets.xlsx",
        SheetSelector::Index(2),
    );
    assert_eq!(more[0].sheet.as_deref(), Some("moredata"));
    assert_eq!(more[1].cells, vec![text("january"), Cell::Float(18.0)]);
}

#[test]
fn rows_carry_sheet_positions() {
    let rows = first("calamine_header-row.xlsx");
    let r = &rows[0];
    assert_eq!(r.row_number, 3);
    // The row number as Excel shows it; a workbook has no byte offset.
    assert_eq!(r.pos.line, 3);
    assert_eq!(r.pos.byte, 0);
    assert_eq!(r.pos.record, 3);
    assert_eq!(r.pos.locator.as_deref(), Some("Sheet1!A3"));
    assert_eq!(r.sheet.as_deref(), Some("Sheet1"));
    assert_eq!(r.cells, vec![Cell::Empty, Cell::Empty, text("Note 1")]);
    assert_eq!(r.raw, ",,Note 1");
    assert_eq!(
        rows[1].cells,
        ["Columns", "Column A", "Column B", "Column C"]
            .map(text)
            .to_vec()
    );
    assert_eq!(rows[1].pos.locator.as_deref(), Some("Sheet1!A9"));
}

#[test]
fn sheets_by_name_including_non_ascii_names() {
    let rows = read("csvkit_sheets.xlsx", SheetSelector::Name("ʤ".into()));
    assert_eq!(rows[0].cells, ["a", "b", "c"].map(text).to_vec());
    assert_eq!(rows[0].pos.locator.as_deref(), Some("ʤ!A1"));
    let rows = read(
        "frictionless_sheets.xlsx",
        SheetSelector::Name("Sheet3".into()),
    );
    assert_eq!(rows[1].cells, vec![Cell::Float(3.0), text("rome")]);
    let rows = read(
        "frictionless_multiline-headers.xlsx",
        SheetSelector::Index(0),
    );
    assert_eq!(rows[0].sheet.as_deref(), Some("Лист1"));
}

#[test]
fn strings_with_entities_escapes_and_rich_text() {
    assert_eq!(
        first("calamine_encoded_entities.xlsx")[0].cells[0],
        text("&")
    );
    assert_eq!(
        first("calamine_has_x000D_.xlsx")[0].cells[0],
        text("ABC\r\nDEF")
    );
    assert_eq!(
        first("calamine_inlineStr_cdata.xlsx")[0].cells,
        vec![text("Hello CDATA"), text("World")]
    );
    let rich = first("calamine_richtext-namespaced.xlsx");
    assert_eq!(rich[0].cells[0], text("inline string\nLine 2\nLine 3"));
    assert_eq!(rich[0].cells[7], text("shared string\nLine 2\nLine 3"));
}

#[test]
fn larger_real_workbooks_read_completely() {
    let rows = first("csvkit_ne_1033_data.xlsx");
    assert_eq!(rows.len(), 1037);
    assert_eq!(rows[0].cells[0], text("state"));
    assert_eq!(rows[1].cells[9], date("2008-07-11"));
    assert_eq!(rows[1].cells[7], Cell::Float(138.0));
    let rows = first("calamine_strict_iso_paths.xlsx");
    assert_eq!(rows.len(), 76);
    assert_eq!(rows[0].cells[0], text("Item"));
    assert_eq!(rows[1].cells[1], Cell::Float(1.5));
    // Cells without r= attributes land in the same places as Excel's re-save.
    let a = first("calamine_issue_261.xlsx");
    let b = first("calamine_issue_261_fixed_by_excel.xlsx");
    assert_eq!(a.len(), b.len());
    assert_eq!(row(&a, 7).cells, row(&b, 7).cells);
    assert_eq!(row(&a, 7).cells[1], date("2023-03-15"));
    let rows = first("frictionless_preserve-formatting.xlsx");
    assert_eq!(rows[1].cells[6], date("2040-05-20"));
    assert_eq!(rows[1].cells[1], Cell::Float(1000.5577));
}

#[test]
fn empty_sheets_yield_no_rows() {
    assert!(first("calamine_empty_sheet.xlsx").is_empty());
    assert!(first("messytables_libreoffice.xlsx").is_empty());
}

#[test]
fn invalid_workbooks_give_clear_errors() {
    for name in ["calamine_pass_protected.xlsx", "excelize_encryptAES.xlsx"] {
        let e = err(name, SheetSelector::Index(0));
        assert_eq!(e.reason.rule, "sheet-encrypted", "{name}");
        assert!(e.to_string().contains("password"), "{e}");
    }
    assert_eq!(
        err("openpyxl_null_file.xlsx", SheetSelector::Index(0))
            .reason
            .rule,
        "sheet-empty"
    );
    assert_eq!(
        err("openpyxl_null_archive.xlsx", SheetSelector::Index(0))
            .reason
            .rule,
        "sheet-no-workbook"
    );
    assert_eq!(
        err("excelize_BadWorkbook.xlsx", SheetSelector::Index(0))
            .reason
            .rule,
        "sheet-no-sheets"
    );
    let e = err(
        "frictionless_sheets.xlsx",
        SheetSelector::Name("Orders".into()),
    );
    assert_eq!(e.reason.rule, "sheet-not-found");
    assert!(
        e.reason.message.contains("'Sheet1', 'Sheet2', 'Sheet3'"),
        "{e}"
    );
    let e = err("frictionless_sheets.xlsx", SheetSelector::Index(3));
    assert_eq!(e.reason.rule, "sheet-not-found");
}

fn corpus_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus(""))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "xlsx"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_corpus_file_reads_or_fails_cleanly() {
    let files = corpus_files();
    assert_eq!(files.len(), 53);
    let invalid = [
        "calamine_pass_protected.xlsx",
        "excelize_encryptAES.xlsx",
        "openpyxl_null_file.xlsx",
        "openpyxl_null_archive.xlsx",
        "excelize_BadWorkbook.xlsx",
    ];
    let mut ok = 0;
    for path in &files {
        let name = path.file_name().unwrap().to_str().unwrap();
        for i in 0..6 {
            match read_path(path, SheetSelector::Index(i)) {
                Ok(rows) => {
                    ok += 1;
                    for r in &rows {
                        assert!(r.row_number >= 1 && r.pos.record == r.row_number);
                        assert!(!r.cells.iter().all(Cell::is_empty), "{name}: empty row");
                    }
                }
                Err(e) => {
                    assert!(!e.reason.rule.is_empty() && !e.reason.message.is_empty());
                    if i == 0 {
                        assert!(invalid.contains(&name), "{name}: {e}");
                    }
                }
            }
        }
    }
    // 53 files, 77 worksheets among their first six sheets.
    assert_eq!(ok, 77);
}

/// Truncated and bit-flipped copies of every corpus file: each must end in rows or a
/// `FileError`, never a panic or a hang.
#[test]
fn damaged_corpus_files_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut errors = 0;
    for path in corpus_files() {
        let bytes = std::fs::read(&path).unwrap();
        if bytes.is_empty() {
            continue;
        }
        let mut variants: Vec<Vec<u8>> = Vec::new();
        for cut in [bytes.len() / 3, bytes.len() / 2, bytes.len() - 1] {
            variants.push(bytes[..cut].to_vec());
        }
        for seed in 1..4usize {
            let mut b = bytes.clone();
            let mut i = seed * 7919 % b.len();
            while i < b.len() {
                b[i] ^= 0x5A;
                i += 997 * seed;
            }
            variants.push(b);
        }
        for (k, v) in variants.iter().enumerate() {
            let p = dir.path().join(format!("v{k}.xlsx"));
            std::fs::write(&p, v).unwrap();
            if let Err(e) = read_path(&p, SheetSelector::Index(0)) {
                assert!(!e.reason.rule.is_empty());
                errors += 1;
            }
        }
    }
    assert!(errors > 100, "damage went unnoticed: only {errors} errors");
}
