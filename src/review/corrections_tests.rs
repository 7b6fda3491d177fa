//! Corrections files written from real processing (the engine over a scratch working
//! folder), then read back by the same definition.

use std::path::{Path, PathBuf};

use super::*;
use crate::config::{Config, DEFAULT_CONFIG};
use crate::engine::{self, Engine};
use crate::tabular::{Cell, ERROR_COLUMN};

struct Setup {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    engine: Engine,
}

impl Setup {
    /// A working folder whose only format is `def` (plus the bundled ones when asked).
    fn new(defs: &[(&str, &str)]) -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let cfg_path = dir.join("tallyman.toml");
        std::fs::write(
            &cfg_path,
            DEFAULT_CONFIG.replace("settle_seconds = 10", "settle_seconds = 0"),
        )
        .unwrap();
        let cfg = Config::load(&cfg_path).unwrap();
        engine::workdir::create(&cfg.paths).unwrap();
        for (name, text) in defs {
            std::fs::write(cfg.paths.formats.join(name), text).unwrap();
        }
        let formats = engine::load_formats(&cfg.paths.formats).unwrap();
        let engine = Engine::with_formats(cfg, formats).unwrap();
        Setup {
            _tmp: tmp,
            dir,
            engine,
        }
    }

    /// Processes `bytes` as a file called `name`; the decided row.
    fn process(&mut self, name: &str, bytes: &[u8]) -> FileRow {
        let path = self.dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let run = self.engine.ledger.begin_run("test").unwrap();
        let report = self.engine.process_path(run, &path, false).unwrap();
        self.engine.ledger.file(report.file_id.unwrap()).unwrap()
    }

    /// Writes the corrections file of `row` from its archived input.
    fn corrections(&self, row: &FileRow) -> Option<PathBuf> {
        let format = self
            .engine
            .formats
            .formats
            .iter()
            .find(|f| Some(f.name()) == row.format.as_deref())
            .unwrap();
        let input = PathBuf::from(row.final_path.as_deref().unwrap());
        write_corrections(
            &self.engine.ledger,
            row,
            format.as_ref(),
            &input,
            &self.dir.join("reports"),
            &Limits::default(),
        )
        .unwrap()
    }

    /// Processes the corrections file of `row` after `edit`; the decided row.
    fn resubmit(&mut self, row: &FileRow, edit: impl Fn(Vec<u8>) -> Vec<u8>) -> FileRow {
        let path = self.corrections(row).unwrap();
        let bytes = edit(std::fs::read(&path).unwrap());
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        self.process(&name, &bytes)
    }

    fn units(&self, row: &FileRow) -> Vec<(String, String)> {
        self.engine.ledger.unit_statuses(row.id).unwrap()
    }
}

/// An order layout in the given dialect; a bad quantity rejects its order.
fn orders_def(delimiter: &str, encoding: &str, header: bool) -> String {
    let (c0, c1, c2) = if header {
        ("", "", "")
    } else {
        ("column = 0\n", "column = 1\n", "column = 2\n")
    };
    format!(
        r#"kind = "csv"
name = "t-orders"
key = "{{order_no}}"
group_by = "order_no"
policy = "accept-valid"
[match]
filename = "t*.csv"
[csv]
delimiter = "{delimiter}"
encoding = "{encoding}"
header = {header}
[[fields]]
name = "order_no"
{c0}required = true
[[fields]]
name = "note"
{c1}[[fields]]
name = "qty"
{c2}type = "decimal"
exclusive_min = 0
[map]
entity = "order"
[map.header]
order_no = "{{order_no}}"
[map.lines]
line_no = "1"
quantity = "{{qty}}"
"#
    )
}

const MIN: &str = "min: column 'qty': qty: must be greater than 0";

fn sibling(order: &str, line: u32) -> String {
    format!(
        "rejected-with-document: order {order} is rejected as a whole: line {line} broke rule 'min'"
    )
}

#[test]
fn quoted_newlines_and_every_row_of_the_document_are_copied_exactly() {
    let mut s = Setup::new(&[("t.toml", &orders_def(",", "utf-8", true))]);
    let data =
        "order_no,note,qty\nA,plain,1\nB,\"two\nlines, and \"\"quotes\"\"\",2\nB,x,-1\nC,ok,3\n";
    let row = s.process("t1.csv", data.as_bytes());
    let path = s.corrections(&row).unwrap();
    assert_eq!(
        path.file_name().unwrap().to_string_lossy(),
        format!("t1-{}.corrections.csv", &row.fingerprint[..12])
    );
    let expected = format!(
        "order_no,note,qty,tallyman_error\n\
         B,\"two\nlines, and \"\"quotes\"\"\",2,\"{}\"\n\
         B,x,-1,\"{MIN}\"\n",
        sibling("B", 5).replace('"', "\"\"")
    );
    assert_eq!(
        String::from_utf8(std::fs::read(&path).unwrap()).unwrap(),
        expected
    );
}

/// A rejected row ends where the next line starts, whatever keeps that line: a row of its
/// own (a rejected document), its document's row only (a duplicate of another file's
/// order: no row per line), or nothing but a packed run (an applied document); the last
/// one ends with the file.
#[test]
fn rejected_rows_end_where_the_next_line_starts_whatever_keeps_it() {
    let mut s = Setup::new(&[("t.toml", &orders_def(",", "utf-8", true))]);
    s.process("t1.csv", b"order_no,note,qty\nA,first,1\n");
    let data = "order_no,note,qty\nX,bad,-1\nA,again,1\nY,bad,-1\nB,ok,2\nW,bad,-1\nV,bad,-1\n\
                Z,bad,-1\r\nC,ok,3\nE,bad,-1";
    let row = s.process("t2.csv", data.as_bytes());
    let statuses: Vec<String> = s.units(&row).into_iter().map(|(_, st)| st).collect();
    assert_eq!(
        statuses,
        [
            "skipped",
            "rejected",
            "duplicate",
            "rejected",
            "applied",
            "rejected",
            "rejected",
            "rejected",
            "applied",
            "rejected"
        ]
    );
    let got = String::from_utf8(std::fs::read(s.corrections(&row).unwrap()).unwrap()).unwrap();
    let expected = format!(
        "order_no,note,qty,tallyman_error\nX,bad,-1,\"{MIN}\"\nY,bad,-1,\"{MIN}\"\n\
         W,bad,-1,\"{MIN}\"\nV,bad,-1,\"{MIN}\"\nZ,bad,-1,\"{MIN}\"\r\nE,bad,-1,\"{MIN}\""
    );
    assert_eq!(got, expected);
}

#[test]
fn semicolons_windows_1252_and_crlf_stay_as_they_were() {
    let mut s = Setup::new(&[("t.toml", &orders_def(";", "windows-1252", true))]);
    let data = b"order_no;note;qty\r\nA;caf\xe9 \x80;1\r\nB;\"na\xefve; quoted\";-2\r\n";
    let row = s.process("t2.csv", data);
    let got = std::fs::read(s.corrections(&row).unwrap()).unwrap();
    let mut expected = b"order_no;note;qty;tallyman_error\r\nB;\"na\xefve; quoted\";-2;\"".to_vec();
    expected.extend_from_slice(MIN.as_bytes());
    expected.extend_from_slice(b"\"\r\n");
    assert_eq!(got, expected);
}

#[test]
fn a_utf8_bom_and_a_last_row_without_line_end_are_kept() {
    let mut s = Setup::new(&[("t.toml", &orders_def(",", "auto", true))]);
    let data = "\u{feff}order_no,note,qty\r\n\r\nA,é,1\r\nB,ü,0";
    let row = s.process("t3.csv", data.as_bytes());
    let got = String::from_utf8(std::fs::read(s.corrections(&row).unwrap()).unwrap()).unwrap();
    assert_eq!(
        got,
        format!("\u{feff}order_no,note,qty,tallyman_error\r\nB,ü,0,\"{MIN}\"")
    );
}

#[test]
fn utf16_is_written_back_as_utf16_with_its_bom() {
    let mut s = Setup::new(&[("t.toml", &orders_def("\\t", "utf-16", true))]);
    let text = "order_no\tnote\tqty\r\nA\tä\t1\r\nB\t€\t-1\r\n";
    let mut data = vec![0xFF, 0xFE];
    data.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    let row = s.process("t4.csv", &data);
    let got = std::fs::read(s.corrections(&row).unwrap()).unwrap();
    assert_eq!(&got[..2], &[0xFF, 0xFE]);
    let units: Vec<u16> = got[2..]
        .chunks(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    assert_eq!(
        String::from_utf16(&units).unwrap(),
        format!("order_no\tnote\tqty\ttallyman_error\r\nB\t€\t-1\t\"{MIN}\"\r\n")
    );
}

#[test]
fn short_rows_are_padded_so_the_error_stays_in_its_column() {
    let mut s = Setup::new(&[("t.toml", &orders_def(",", "utf-8", true))]);
    let row = s.process("t5.csv", b"order_no,note,qty\nA,x,1\nB,y\n");
    let got = String::from_utf8(std::fs::read(s.corrections(&row).unwrap()).unwrap()).unwrap();
    assert_eq!(
        got,
        "order_no,note,qty,tallyman_error\nB,y,,\"column-count: row has 2 columns, expected 3 (as many as the header)\"\n"
    );
}

#[test]
fn headerless_files_get_the_column_after_their_width() {
    let mut s = Setup::new(&[("t.toml", &orders_def(",", "utf-8", false))]);
    let row = s.process("t6.csv", b"A,x,1\nB,y,-1\n");
    let got = String::from_utf8(std::fs::read(s.corrections(&row).unwrap()).unwrap()).unwrap();
    assert_eq!(
        got,
        format!("B,y,-1,\"{}\"\n", MIN.replace("column 'qty'", "column 3"))
    );
    // Read back unchanged, the extra column is not bound and the row fails the same way.
    let again = s.resubmit(&row, |b| b);
    assert_eq!(again.counts.units_rejected, 1);
    assert_eq!(again.counts.lines_rejected, 1);
}

#[test]
fn round_trip_applies_exactly_the_fixed_documents() {
    let mut s = Setup::new(&[("t.toml", &orders_def(",", "utf-8", true))]);
    let data = "order_no,note,qty\nA,a,1\nB,b1,2\nB,b2,-1\nC,c,0\nD,d,4\n";
    let row = s.process("t7.csv", data.as_bytes());
    assert_eq!(row.counts.units_applied, 2);
    // The reviewer fixes B and leaves C (and the error column) as they are.
    let fixed = s.resubmit(&row, |b| {
        String::from_utf8(b)
            .unwrap()
            .replace("B,b2,-1,", "B,b2,5,")
            .into_bytes()
    });
    let units = s.units(&fixed);
    assert_eq!(
        units,
        vec![
            ("header".to_string(), "skipped".to_string()),
            ("order B".into(), "applied".into()),
            ("order C".into(), "rejected".into()),
        ]
    );
}

#[test]
fn a_correction_of_a_correction_replaces_the_error_instead_of_adding_one() {
    let mut s = Setup::new(&[("t.toml", &orders_def(",", "utf-8", true))]);
    let row = s.process("t8.csv", b"order_no,note,qty\nA,a,1\nB,b,-1\n");
    // The reviewer moves the column to the front, writes a note in it, and gets the
    // quantity wrong again.
    let again = s.resubmit(&row, |b| {
        let text = String::from_utf8(b).unwrap();
        assert_eq!(
            text,
            format!("order_no,note,qty,tallyman_error\nB,b,-1,\"{MIN}\"\n")
        );
        b"tallyman_error,order_no,note,qty\n\"fixed, I think\",B,b,0\n".to_vec()
    });
    assert_eq!(again.counts.units_rejected, 1);
    let got = String::from_utf8(std::fs::read(s.corrections(&again).unwrap()).unwrap()).unwrap();
    assert_eq!(
        got,
        format!("tallyman_error,order_no,note,qty\n\"{MIN}\",B,b,0\n")
    );
}

#[test]
fn the_error_cell_has_masked_values_but_the_row_its_original_ones() {
    let def = orders_def(",", "utf-8", true).replace(
        "name = \"note\"\n",
        "name = \"note\"\nsensitive = true\nregex = \"[a-z]+\"\n",
    );
    let mut s = Setup::new(&[("t.toml", &def)]);
    let row = s.process("t9.csv", b"order_no,note,qty\nA,SECRET99,1\n");
    let got = String::from_utf8(std::fs::read(s.corrections(&row).unwrap()).unwrap()).unwrap();
    assert!(
        got.starts_with("order_no,note,qty,tallyman_error\nA,SECRET99,1,\"regex: "),
        "{got}"
    );
    assert!(
        !got["order_no,note,qty,tallyman_error\nA,SECRET99,1,".len()..].contains("SECRET99"),
        "{got}"
    );
}

#[test]
fn nothing_is_written_without_rejects_or_without_the_same_input() {
    let mut s = Setup::new(&[("t.toml", &orders_def(",", "utf-8", true))]);
    let clean = s.process("t10.csv", b"order_no,note,qty\nA,a,1\n");
    assert_eq!(s.corrections(&clean), None);
    let bad = s.process("t11.csv", b"order_no,note,qty\nA,a,-1\nB,b,1\n");
    // The engine wrote one at publish; what follows asks the writer alone.
    for e in std::fs::read_dir(s.dir.join("reports")).unwrap().flatten() {
        if e.file_name().to_string_lossy().contains("corrections") {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
    let archived = PathBuf::from(bad.final_path.as_deref().unwrap());
    std::fs::write(&archived, b"order_no,note,qty\nA,a,-1\nB,b,1\nC,c,1\n").unwrap();
    assert_eq!(s.corrections(&bad), None);
    std::fs::remove_file(&archived).unwrap();
    assert_eq!(s.corrections(&bad), None);
    assert!(std::fs::read_dir(s.dir.join("reports"))
        .unwrap()
        .flatten()
        .all(|e| !e.file_name().to_string_lossy().contains("corrections")));
}

#[test]
fn a_spreadsheet_gets_an_xlsx_with_typed_cells_and_the_error_column() {
    let def = include_str!("../../formats/pricelist-xlsx.toml");
    let mut s = Setup::new(&[("pricelist.toml", def)]);
    let sample = include_bytes!("../../samples/inbox/pricelist-acme-2026-11.xlsx");
    let row = s.process("pricelist-acme-2026-11.xlsx", sample);
    assert_eq!(row.counts.units_rejected, 2);
    let path = s.corrections(&row).unwrap();
    assert!(
        path.to_string_lossy().ends_with(".corrections.xlsx"),
        "{path:?}"
    );
    let rows = sheet_rows(&path);
    let original = sheet_rows(Path::new(row.final_path.as_deref().unwrap()));
    assert_eq!(rows.len(), 3, "{rows:?}");
    let mut header = original[0].cells.clone();
    header.push(Cell::Text(ERROR_COLUMN.into()));
    assert_eq!(rows[0].cells, header);
    assert_eq!(rows[0].sheet, original[0].sheet);
    for (got, want) in rows[1..].iter().zip([7u64, 8]) {
        let orig = original.iter().find(|r| r.row_number == want).unwrap();
        let width = header.len() - 1;
        let mut cells = orig.cells.clone();
        cells.resize(width, Cell::Empty);
        assert_eq!(got.cells[..width], cells[..], "row {want}");
        let Cell::Text(err) = &got.cells[width] else {
            panic!("{:?}", got.cells)
        };
        assert!(err.contains("Prices!"), "{err}");
        assert!(
            got.cells.iter().any(|c| matches!(c, Cell::DateTime(_))),
            "dates stay dates"
        );
    }
    // Sent back unchanged, both rows fail again for the same reasons: nothing of the error
    // column is read as data.
    let again = s.resubmit(&row, |b| b);
    assert_eq!(again.counts.units_rejected, 2);
    assert_eq!(again.counts.units_applied, 0);
}

fn sheet_rows(path: &Path) -> Vec<crate::tabular::Row> {
    let ctx = OpenContext {
        fingerprint: String::new(),
        name: String::new(),
        limits: Limits::default(),
    };
    let mut src =
        crate::sheet::open_rows(path, &ctx, &crate::tabular::SheetSelector::Index(0)).unwrap();
    let mut out = Vec::new();
    while let Some(r) = src.next_row().unwrap() {
        out.push(r);
    }
    out
}

#[test]
fn error_text_is_one_line_capped_and_never_a_formula() {
    let line = |rule: Option<&str>, message: &str| CorrectionLine {
        unit_seq: 1,
        ordinal: 1,
        line: 2,
        byte: 0,
        record: 2,
        status: "rejected".into(),
        rule: rule.map(String::from),
        message: Some(message.into()),
        next_byte: None,
    };
    assert_eq!(
        error_text(&line(Some("type"), "bad\r\nvalue")),
        "type: bad  value"
    );
    assert_eq!(error_text(&line(None, "=cmd()")), "'=cmd()");
    let long = error_text(&line(Some("code-list"), &"x".repeat(5000)));
    assert_eq!(long.chars().count(), MAX_ERROR_CHARS + 1);
    // Printable ASCII that fits is taken as it is: what flattening it gives, at and
    // around the cap, and next to the bytes that are not plain.
    let m = MAX_ERROR_CHARS;
    for n in [0, 1, m - 1, m, m + 1] {
        for last in ["x", "~", " ", "\t", "\u{7f}", "é", "\u{85}"] {
            let text = format!("{}{last}", "a".repeat(n));
            let mut want = flattened(&text);
            if want.starts_with(['=', '+', '-', '@']) {
                want.insert(0, '\'');
            }
            assert_eq!(error_text(&line(None, &text)), want, "{n} {last:?}");
        }
    }
}

#[test]
fn regression_pages_of_rejected_lines_neither_skip_nor_repeat_rows() {
    // 3-line documents, so page boundaries (every 2,000 lines) fall inside documents.
    let mut s = Setup::new(&[("t.toml", &orders_def(",", "utf-8", true))]);
    let mut data = String::from("order_no,note,qty\n");
    let mut want = String::from("order_no,note,qty,tallyman_error\n");
    for o in 0..1_500 {
        for l in 0..3 {
            let qty = if l == 1 { "-1" } else { "1" };
            data.push_str(&format!("O{o},n{l},{qty}\n"));
        }
    }
    data.push_str("OK,fine,1\n");
    let row = s.process("t12.csv", data.as_bytes());
    assert_eq!(row.counts.units_applied, 1);
    for (i, l) in data.lines().skip(1).take(4_500).enumerate() {
        let err = if l.ends_with(",-1") {
            MIN.to_string()
        } else {
            let o = i / 3;
            sibling(&format!("O{o}"), (o * 3 + 3) as u32).replace('"', "\"\"")
        };
        want.push_str(&format!("{l},\"{err}\"\n"));
    }
    let got = String::from_utf8(std::fs::read(s.corrections(&row).unwrap()).unwrap()).unwrap();
    assert!(got == want, "{}", &got[got.len() - 500..]);
}

#[test]
fn a_file_rejected_whole_resends_its_good_documents_too() {
    let def = orders_def(",", "utf-8", true).replace("accept-valid", "all-or-nothing");
    let mut s = Setup::new(&[("t.toml", &def)]);
    let row = s.process("t13.csv", b"order_no,note,qty\nA,a,1\nB,b,-1\n");
    assert_eq!(row.outcome.as_deref(), Some("rejected"));
    let got = String::from_utf8(std::fs::read(s.corrections(&row).unwrap()).unwrap()).unwrap();
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines.len(), 3, "{got}");
    assert!(
        lines[1].starts_with("A,a,1,\"file-rejected: file rejected whole"),
        "{got}"
    );
    assert_eq!(lines[2], format!("B,b,-1,\"{MIN}\""));
}

#[test]
fn without_quoting_the_message_loses_its_delimiters_not_its_column() {
    let def = orders_def(",", "utf-8", true).replace("[csv]\n", "[csv]\nquote = \"\"\n");
    let mut s = Setup::new(&[("t.toml", &def)]);
    let row = s.process("t14.csv", b"order_no,note,qty\nA,x,1\nB,y\n");
    let got = String::from_utf8(std::fs::read(s.corrections(&row).unwrap()).unwrap()).unwrap();
    assert_eq!(
        got,
        "order_no,note,qty,tallyman_error\nB,y,,column-count: row has 2 columns  expected 3 (as many as the header)\n"
    );
    let again = s.resubmit(&row, |b| {
        String::from_utf8(b)
            .unwrap()
            .replace("B,y,,", "B,y,2,")
            .into_bytes()
    });
    assert_eq!(again.counts.units_applied, 1);
}
