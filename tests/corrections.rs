//! The fix-and-resubmit round trip on real files, with the real binary: the bundled orders
//! file rejects order PO-10011; its corrections file, edited by a script the way a person
//! edits it in Excel (cells fixed, the `tallyman_error` column left as it is, saved with a
//! BOM and CRLF, quotes only where needed) — and through LibreOffice's own CSV round trip
//! when `soffice` is installed — is dropped into the inbox and applies PO-10011 and nothing
//! else. The same for the bundled price-list workbook.
//!
//! Until the engine writes corrections files at publish and links a correction to its
//! original at claim, these tests write the corrections file with the library; the test
//! marked `needs the engine wiring` pins what the engine must then do on its own.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{text, Work};
use tallyman::format::{Limits, OpenContext};
use tallyman::ledger::{FileRow, Ledger};
use tallyman::review::corrections::{corrected_fingerprint_prefix, write_corrections};
use tallyman::tabular::{Cell, SheetSelector};

const ORDERS: &str = "orders-2026-11-02.csv";
const PRICES: &str = "pricelist-acme-2026-11.xlsx";

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("samples/inbox")
            .join(name),
    )
    .unwrap()
}

fn run(work: &Work) -> String {
    let out = work.run(&["run"]);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ledger(work: &Work) -> Ledger {
    work.ledger()
}

fn file_row(work: &Work, name: &str) -> FileRow {
    let rows = ledger(work).find_files(name).unwrap();
    rows.into_iter()
        .next()
        .unwrap_or_else(|| panic!("{name} not in the ledger"))
}

/// The corrections file the engine wrote beside the reject report, if it did.
fn written_by_engine(work: &Work, row: &FileRow) -> Option<PathBuf> {
    let fp12 = &row.fingerprint[..12];
    std::fs::read_dir(work.dir.join("reports"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.contains(".corrections.") && corrected_fingerprint_prefix(&n).as_deref() == Some(fp12)
        })
}

/// The corrections file of `name`: the engine's, or written now with the library.
fn corrections_of(work: &Work, name: &str) -> PathBuf {
    let row = file_row(work, name);
    if let Some(p) = written_by_engine(work, &row) {
        return p;
    }
    write_alone(work, &row, &work.dir.join("reports"))
}

/// The corrections file of a decided file, written into `dest` with the library alone.
fn write_alone(work: &Work, row: &FileRow, dest: &Path) -> PathBuf {
    let formats = tallyman::engine::load_formats(&work.dir.join("formats")).unwrap();
    let format = formats
        .formats
        .iter()
        .find(|f| Some(f.name()) == row.format.as_deref())
        .unwrap();
    let input = PathBuf::from(row.final_path.clone().unwrap());
    write_corrections(
        &ledger(work),
        row,
        format.as_ref(),
        &input,
        dest,
        &Limits::default(),
    )
    .unwrap()
    .expect("a corrections file")
}

/// What a person does in Excel: fixes the four bad cells of PO-10011 (the impossible date
/// becomes the order's date, as on its other lines), leaves the error column alone, saves as "CSV UTF-8" (a BOM, CRLF, quotes only where needed).
fn edit_like_excel(bytes: &[u8]) -> Vec<u8> {
    let mut rd = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes));
    let mut out = b"\xef\xbb\xbf".to_vec();
    {
        let mut wr = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(&mut out);
        for rec in rd.records() {
            let cells: Vec<String> = rec
                .unwrap()
                .iter()
                .map(|c| match c {
                    "2026-11-31" => "2026-11-02".to_string(),
                    "-3" => "3".to_string(),
                    "XYZ" => "USD".to_string(),
                    _ => c.to_string(),
                })
                .collect();
            let mut cells = cells;
            if cells[1] == "5" && cells[4].is_empty() {
                cells[4] = "SKU-300".into();
            }
            wr.write_record(&cells).unwrap();
        }
        wr.flush().unwrap();
    }
    out
}

fn soffice() -> Option<&'static str> {
    ["soffice", "libreoffice"].into_iter().find(|b| {
        Command::new(b)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Opens `file` in LibreOffice and saves it again as `ext`, the way a reviewer's save does.
fn libreoffice_round_trip(bin: &str, file: &Path, ext: &str) -> Vec<u8> {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join(format!(
        "in.{}",
        file.extension().unwrap().to_string_lossy()
    ));
    std::fs::copy(file, &src).unwrap();
    let out_dir = tmp.path().join("out");
    let profile = format!("file://{}", tmp.path().join("profile").display());
    let out = Command::new(bin)
        .arg(format!("-env:UserInstallation={profile}"))
        .args(["--headless", "--convert-to", ext, "--outdir"])
        .arg(&out_dir)
        .arg(&src)
        .output()
        .unwrap();
    let saved = out_dir.join(format!("in.{ext}"));
    assert!(saved.exists(), "{}", text(&out));
    std::fs::read(saved).unwrap()
}

/// Order keys in the outbox, with how often each appears.
fn outbox_orders(work: &Work) -> std::collections::BTreeMap<String, usize> {
    let mut keys = std::collections::BTreeMap::new();
    for (name, bytes) in work.snapshot("outbox/order") {
        if !name.contains("orders-2026-11-02") {
            continue;
        }
        for line in String::from_utf8(bytes).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            *keys
                .entry(v["key"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    keys
}

/// The bundled orders file, decided: PO-10011 rejected (6 lines), the rest applied.
fn orders_work() -> Work {
    let work = Work::new(10_000);
    work.drop_file(ORDERS, &sample(ORDERS));
    let out = run(&work);
    assert!(out.contains("9 applied, 6 rejected"), "{out}");
    work
}

/// Drops `bytes` into the inbox under the corrections file's name and runs; the row.
fn resubmit(work: &Work, corrections: &Path, bytes: &[u8]) -> FileRow {
    let name = corrections
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    work.drop_file(&name, bytes);
    run(work);
    file_row(work, &name)
}

fn assert_only_po_10011_applied(work: &Work, fixed: &FileRow) {
    assert_eq!(fixed.outcome.as_deref(), Some("applied"), "{fixed:?}");
    assert_eq!(
        ledger(work).unit_statuses(fixed.id).unwrap(),
        vec![
            ("header".to_string(), "skipped".to_string()),
            ("order PO-10011".into(), "applied".into())
        ]
    );
    assert_eq!(fixed.counts.lines_applied, 6);
    let keys = outbox_orders(work);
    assert_eq!(
        keys.keys().map(String::as_str).collect::<Vec<_>>(),
        ["PO-10010", "PO-10011", "PO-10014", "PO-10015", "PO-10016", "PO-10017"]
    );
    assert!(
        keys.values().all(|&n| n == 1),
        "an order applied twice: {keys:?}"
    );
}

#[test]
fn corrections_file_holds_the_rejected_order_in_the_files_own_layout() {
    let work = orders_work();
    let path = corrections_of(&work, ORDERS);
    let row = file_row(&work, ORDERS);
    assert_eq!(
        path.file_name().unwrap().to_string_lossy(),
        format!(
            "orders-2026-11-02-{}.corrections.csv",
            &row.fingerprint[..12]
        )
    );
    let got = String::from_utf8(std::fs::read(&path).unwrap()).unwrap();
    let original = String::from_utf8(sample(ORDERS)).unwrap();
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines.len(), 7, "{got}");
    assert_eq!(
        lines[0],
        format!("{},tallyman_error", original.lines().next().unwrap())
    );
    for (i, l) in lines[1..].iter().enumerate() {
        let want = original.lines().nth(3 + i).unwrap();
        assert!(
            l.starts_with(&format!("{want},\"")),
            "{l}\nshould start with {want}"
        );
    }
    assert!(lines[2].ends_with(",\"type: column 'order_date': order_date: is not a valid date in the format %Y-%m-%d\""), "{}", lines[2]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640, "the configured file mode");
    }
}

#[test]
fn excel_edited_corrections_apply_only_the_fixed_order() {
    let work = orders_work();
    let path = corrections_of(&work, ORDERS);
    let unedited = resubmit_unedited_first(&work, &path);
    assert_eq!(
        unedited.outcome.as_deref(),
        Some("rejected"),
        "{unedited:?}"
    );
    let edited = edit_like_excel(&std::fs::read(&path).unwrap());
    let fixed = resubmit(&work, &path, &edited);
    assert_only_po_10011_applied(&work, &fixed);
}

/// Sent back without a change, the corrections file is rejected again for the same
/// reasons: the error column is not data.
fn resubmit_unedited_first(work: &Work, path: &Path) -> FileRow {
    let bytes = std::fs::read(path).unwrap();
    let mut renamed = path.to_path_buf();
    renamed.set_file_name(
        path.file_name()
            .unwrap()
            .to_string_lossy()
            .replace(".corrections.csv", ".corrections (1).csv"),
    );
    let row = resubmit(work, &renamed, &bytes);
    let rules: Vec<String> = ledger(work)
        .rejects(row.id)
        .unwrap()
        .into_iter()
        .filter_map(|r| r.rule)
        .collect();
    assert!(
        rules.contains(&"type".to_string()) && rules.contains(&"code-list".to_string()),
        "{rules:?}"
    );
    row
}

#[test]
fn libreoffice_saved_corrections_apply_only_the_fixed_order() {
    let Some(bin) = soffice() else {
        eprintln!("note: soffice/libreoffice not on PATH; LibreOffice round trip not tested");
        return;
    };
    let work = orders_work();
    let path = corrections_of(&work, ORDERS);
    let tmp = tempfile::tempdir().unwrap();
    let edited = tmp.path().join("edited.csv");
    std::fs::write(&edited, edit_like_excel(&std::fs::read(&path).unwrap())).unwrap();
    let saved = libreoffice_round_trip(bin, &edited, "csv");
    assert!(
        !saved.windows(2).any(|w| w == b"\r\n"),
        "LibreOffice writes LF"
    );
    let fixed = resubmit(&work, &path, &saved);
    assert_only_po_10011_applied(&work, &fixed);
}

/// Sheet rows with their cells, as the reader yields them.
fn sheet_rows(path: &Path) -> Vec<Vec<Cell>> {
    let ctx = OpenContext {
        fingerprint: String::new(),
        name: String::new(),
        limits: Limits::default(),
    };
    let mut src = tallyman::sheet::open_rows(path, &ctx, &SheetSelector::Index(0)).unwrap();
    let mut out = Vec::new();
    while let Some(r) = src.next_row().unwrap() {
        out.push(r.cells);
    }
    out
}

/// What a person does in Excel with the price list's corrections: PR → PK, -5.2 → 5.2.
fn edit_workbook(path: &Path) -> Vec<u8> {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    sheet.set_name("Prices").unwrap();
    let date = rust_xlsxwriter::Format::new().set_num_format("yyyy-mm-dd");
    for (r, cells) in sheet_rows(path).iter().enumerate() {
        for (c, cell) in cells.iter().enumerate() {
            let (r, c) = (r as u32, c as u16);
            match cell {
                Cell::Text(s) if s == "PR" => {
                    sheet.write_string(r, c, "PK").unwrap();
                }
                Cell::Text(s) => {
                    sheet.write_string(r, c, s).unwrap();
                }
                Cell::Float(f) if *f < 0.0 => {
                    sheet.write_number(r, c, -f).unwrap();
                }
                Cell::Float(f) => {
                    sheet.write_number(r, c, *f).unwrap();
                }
                Cell::DateTime(s) => {
                    let dt = rust_xlsxwriter::ExcelDateTime::parse_from_str(s).unwrap();
                    {
                        sheet.write_datetime_with_format(r, c, dt, &date).unwrap();
                    };
                }
                Cell::Empty => {}
                other => panic!("unexpected cell {other:?}"),
            }
        }
    }
    book.save_to_buffer().unwrap()
}

#[test]
fn edited_workbook_corrections_apply_only_the_fixed_products() {
    let work = Work::new(10_000);
    work.drop_file(PRICES, &sample(PRICES));
    let out = run(&work);
    assert!(out.contains("8 applied, 2 rejected"), "{out}");
    let path = corrections_of(&work, PRICES);
    assert!(path.to_string_lossy().ends_with(".corrections.xlsx"));
    let rows = sheet_rows(&path);
    assert_eq!(rows.len(), 3, "header and the two rejected rows: {rows:?}");
    assert_eq!(rows[0].last(), Some(&Cell::Text("tallyman_error".into())));
    let mut edited = edit_workbook(&path);
    if let Some(bin) = soffice() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("edited.xlsx");
        std::fs::write(&p, &edited).unwrap();
        edited = libreoffice_round_trip(bin, &p, "xlsx");
    } else {
        eprintln!("note: soffice/libreoffice not on PATH; LibreOffice round trip not tested");
    }
    let fixed = resubmit(&work, &path, &edited);
    assert_eq!(fixed.outcome.as_deref(), Some("applied"), "{fixed:?}");
    assert_eq!(fixed.counts.units_applied, 2);
    assert_eq!(fixed.counts.lines_rejected, 0);
}

/// What the engine must do once wired: write the corrections file at publish, link the
/// resubmitted file to its original at claim (and read it with the original's format,
/// whatever its name), and resolve the original's rejects as the correction applies.
#[test]

fn engine_writes_links_and_resolves_corrections() {
    let work = orders_work();
    let original = file_row(&work, ORDERS);
    let path = written_by_engine(&work, &original).expect("the run writes the corrections file");
    let status = |work: &Work| -> serde_json::Value {
        let out = work.run(&["status", "--json"]);
        serde_json::from_slice(&out.stdout).unwrap()
    };
    assert_eq!(
        status(&work)["rejects"],
        serde_json::json!({"open": 1, "resolved": 0})
    );
    // Renamed by a browser download: still a correction, and read by the original's format
    // although the name no longer matches `orders*.csv`.
    let mut renamed = path.clone();
    renamed.set_file_name(format!(
        "fix-{}",
        path.file_name()
            .unwrap()
            .to_string_lossy()
            .replace(".csv", " (2).csv")
    ));
    let fixed = resubmit(
        &work,
        &renamed,
        &edit_like_excel(&std::fs::read(&path).unwrap()),
    );
    assert_eq!(fixed.correction_of, Some(original.id));
    assert_only_po_10011_applied(&work, &fixed);
    assert_eq!(
        status(&work)["rejects"],
        serde_json::json!({"open": 0, "resolved": 1})
    );
    assert!(
        written_by_engine(&work, &fixed).is_none(),
        "nothing left to correct"
    );
}

#[test]
fn resubmit_takes_a_fixed_file_of_any_name_back_as_a_correction_and_audits_it() {
    let work = orders_work();
    let original = file_row(&work, ORDERS);
    let path = written_by_engine(&work, &original).expect("a corrections file");
    let edited = work.dir.join("my-fixes.csv");
    std::fs::write(&edited, edit_like_excel(&std::fs::read(&path).unwrap())).unwrap();
    let out = work.run(&[
        "resubmit",
        edited.to_str().unwrap(),
        "--of",
        ORDERS,
        "--reason",
        "customer sent the right date",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    run(&work);
    let keys = outbox_orders(&work);
    assert_eq!(keys.get("PO-10011"), Some(&1), "{keys:?}");
    let audit = work.run(&["audit", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&audit.stdout).unwrap();
    let row = v
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["action"] == "resubmit")
        .expect("an audit row");
    assert_eq!(row["reason"], "customer sent the right date");
    assert_eq!(row["subject"], ORDERS);
}

/// A file with thousands of rejected lines gets its reject report written on a thread of
/// its own, beside the corrections file (engine/publish.rs `write_reports`): both must be
/// exactly what each writes alone from the decided ledger.
#[test]
fn reports_written_side_by_side_are_those_written_one_after_the_other() {
    let work = Work::new(1_000);
    // 3,500 orders of 3 lines, every fifth with a bad line: 2,100 lines rejected.
    work.drop_file("orders-many.csv", &common::orders_csv(3_500, 5, "M"));
    run(&work);
    let row = file_row(&work, "orders-many.csv");
    assert_eq!(row.counts.lines_rejected, 2_100, "{row:?}");
    let engine_report = PathBuf::from(row.report_path.clone().expect("a reject report"));
    let engine_corrections = written_by_engine(&work, &row).expect("a corrections file");

    let mut report = Vec::new();
    tallyman::report::write_csv(&ledger(&work), &row, &mut report).unwrap();
    assert_eq!(std::fs::read(&engine_report).unwrap(), report);
    assert_eq!(report.split(|&b| b == b'\n').count(), 2 + 2_100);

    let alone = work.dir.join("alone");
    std::fs::create_dir_all(&alone).unwrap();
    let written = write_alone(&work, &row, &alone);
    assert_eq!(
        std::fs::read(&engine_corrections).unwrap(),
        std::fs::read(written).unwrap()
    );
}
