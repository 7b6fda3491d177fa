//! Hostile and edge-case workbooks generated on the fly: each must be refused with a named
//! rule (or read correctly) without a panic, in bounded time and memory.
//!
//! The memory bound is measured, not assumed: `hostile_files_stay_within_memory` re-runs
//! this test binary once per case (`hostile_files_are_refused` with
//! `TALLYMAN_HOSTILE_FILE` set) and reads the child's peak resident size (`VmHWM`).
//! The 4 GB and 2 GB payloads are real deflate streams (fixed-Huffman runs, written by
//! `Deflate` in build.rs), so the files are what an attacker would send: a few MB on disk.

#![allow(clippy::result_large_err)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tallyman::format::{FileError, Limits, OpenContext};
use tallyman::sheet::open_rows;
use tallyman::tabular::{Cell, Row, SheetSelector};

fn ctx() -> OpenContext {
    OpenContext {
        fingerprint: "test".into(),
        name: "hostile.xlsx".into(),
        limits: Limits::default(),
    }
}

fn read(path: &Path, sel: SheetSelector) -> Result<Vec<Row>, FileError> {
    tallyman::format::testing::sheet_rows(path, sel)
}

mod build;
mod readable;
mod xls;

use build::*;
use xls::xls_cases;

// ---------------------------------------------------------------------------------------
// The cases

/// Each hostile case: a name, the file, and the rule it must be refused with (`None`:
/// it must read, checked by `check_readable`).
fn cases() -> Vec<(&'static str, Vec<u8>, Option<&'static str>)> {
    let ratio_bomb = {
        // 200 MiB of one repeated cell value compresses ~1000:1 with real deflate.
        let mut data = String::with_capacity(210 << 20);
        let cell = r#"<c t="inlineStr"><is><t>0</t></is></c>"#;
        data.push_str(r#"<row r="1">"#);
        while data.len() < 200 << 20 {
            data.push_str(cell);
        }
        data.push_str("</row>");
        xlsx(
            &[Sheet {
                name: "Bomb",
                hidden: false,
                data: &data,
            }],
            None,
            false,
        )
    };
    let deep = {
        let depth = 100_000;
        let data = format!(
            r#"<row r="1"><c r="A1"><v>1</v></c></row>{}{}"#,
            "<x>".repeat(depth),
            "</x>".repeat(depth)
        );
        xlsx(
            &[Sheet {
                name: "Deep",
                hidden: false,
                data: &data,
            }],
            None,
            false,
        )
    };
    let ods_bomb = {
        // 98M cells: under calamine's own 100M-cell cap, yet 3 GB for its dense Range
        // (measured: an 805-byte .ods made calamine request 3,145,728,000 bytes).
        let content = r#"<?xml version="1.0" encoding="UTF-8"?><office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2"><office:body><office:spreadsheet><table:table table:name="Sheet1"><table:table-row table:number-rows-repeated="6000"><table:table-cell table:number-columns-repeated="16384" office:value-type="float" office:value="1"><text:p>1</text:p></table:table-cell></table:table-row></table:table></office:spreadsheet></office:body></office:document-content>"#;
        zip_parts(&[
            (
                "mimetype".into(),
                b"application/vnd.oasis.opendocument.spreadsheet".to_vec(),
            ),
            (
                "META-INF/manifest.xml".into(),
                ODS_MANIFEST.as_bytes().to_vec(),
            ),
            ("content.xml".into(), content.as_bytes().to_vec()),
        ])
    };
    let xlsb_record = {
        // One record declaring 2^28 - 1 bytes: calamine would size its buffer to it.
        let record = vec![0x83u8, 0x01, 0xFF, 0xFF, 0xFF, 0x7F];
        zip_parts(&[
            (
                "[Content_Types].xml".into(),
                CONTENT_TYPES.as_bytes().to_vec(),
            ),
            ("xl/workbook.bin".into(), record),
        ])
    };
    let many_entries = {
        let parts: Vec<(String, Vec<u8>)> = (0..100_001)
            .map(|i| (format!("f{i}"), Vec::new()))
            .collect();
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for (name, _) in &parts {
            w.start_file(name.as_str(), opts).unwrap();
        }
        w.finish().unwrap().into_inner()
    };
    vec![
        // 4 GB of whitespace in the sheet XML, declared honestly: 25 MB on disk.
        (
            "whitespace-4gb",
            whitespace_sheet(4_000_000_000, None),
            Some("zip-entry-too-large"),
        ),
        // The same bytes behind a lying header that claims 1 KB.
        (
            "whitespace-4gb-lying-header",
            whitespace_sheet(4_000_000_000, Some(1024)),
            Some("zip-entry-too-large"),
        ),
        // 400 MB of whitespace: under every size cap, refused for the token length.
        (
            "whitespace-400mb",
            whitespace_sheet(400_000_000, None),
            Some("sheet-xml-token-too-long"),
        ),
        (
            "shared-string-2gb",
            huge_shared_string(2_000_000_000, None),
            Some("zip-entry-too-large"),
        ),
        (
            "shared-string-300mb",
            huge_shared_string(300_000_000, None),
            Some("sheet-xml-token-too-long"),
        ),
        ("zip-ratio-bomb", ratio_bomb, Some("zip-bomb")),
        ("deep-nesting", deep, Some("sheet-xml-too-deep")),
        ("ods-repeat-bomb", ods_bomb, Some("sheet-too-many-cells")),
        (
            "xlsb-huge-record",
            xlsb_record,
            Some("sheet-record-too-large"),
        ),
        ("zip-many-entries", many_entries, Some("zip-bomb")),
        ("sparse-far-cell", sparse_far_cell(), None),
        ("many-rows-200k", many_rows(200_000), None),
    ]
    .into_iter()
    .chain(xls_cases())
    .collect()
}

/// A1 and XFD1048576: `worksheet_range` would allocate a 2^34-cell grid (512 GiB).
fn sparse_far_cell() -> Vec<u8> {
    xlsx(
        &[Sheet {
            name: "Far",
            hidden: false,
            data: r#"<row r="1"><c r="A1"><v>1</v></c></row><row r="1048576"><c r="XFD1048576" t="inlineStr"><is><t>far</t></is></c></row>"#,
        }],
        None,
        false,
    )
}

/// An ordinary but long sheet (~40 MB of sheet XML): streaming must keep memory flat.
fn many_rows(n: u32) -> Vec<u8> {
    let mut data = String::with_capacity(n as usize * 200);
    for r in 1..=n {
        data.push_str(&format!(
            r#"<row r="{r}"><c r="A{r}" t="inlineStr"><is><t>SO-{r:08}</t></is></c><c r="B{r}"><v>{r}</v></c><c r="C{r}" s="1"><v>46329</v></c><c r="D{r}" t="inlineStr"><is><t>ACM-1001</t></is></c><c r="E{r}"><v>12.4</v></c></row>"#
        ));
    }
    xlsx(
        &[Sheet {
            name: "Orders",
            hidden: false,
            data: &data,
        }],
        None,
        false,
    )
}

/// What a readable case left behind: streamed, so only the first rows and the last one
/// are kept (holding every row would measure the test, not the reader).
struct Seen {
    count: usize,
    first: Vec<Row>,
    last: Option<Row>,
}

fn stream_all(path: &Path) -> Result<Seen, FileError> {
    let mut src = open_rows(path, &ctx(), &SheetSelector::Index(0))?;
    let mut seen = Seen {
        count: 0,
        first: Vec::new(),
        last: None,
    };
    while let Some(row) = src.next_row()? {
        seen.count += 1;
        if seen.first.len() < 10 {
            seen.first.push(row.clone());
        }
        seen.last = Some(row);
    }
    Ok(seen)
}

fn check_readable(name: &str, seen: &Seen) {
    let last = seen.last.as_ref().unwrap();
    if name == "many-rows-200k" {
        assert_eq!(seen.count, 200_000);
        assert_eq!(last.row_number, 200_000);
        assert_eq!(
            last.cells,
            vec![
                Cell::Text("SO-00200000".into()),
                Cell::Float(200_000.0),
                Cell::DateTime("2026-11-03".into()),
                Cell::Text("ACM-1001".into()),
                Cell::Float(12.4),
            ]
        );
        return;
    }
    assert_eq!(name, "sparse-far-cell");
    assert_eq!(seen.count, 2);
    assert_eq!(seen.first[0].cells, vec![Cell::Float(1.0)]);
    assert_eq!(last.row_number, 1_048_576);
    assert_eq!(last.cells.len(), 16_384);
    assert_eq!(last.cells[16_383], Cell::Text("far".into()));
    assert_eq!(last.pos.locator.as_deref(), Some("Far!A1048576"));
}

/// Runs one case in this process: refused with the expected rule or read correctly, fast.
fn run_case(name: &str, path: &Path, expect: Option<&str>) {
    let start = Instant::now();
    let got = stream_all(path);
    match (expect, got) {
        (Some(rule), Err(e)) => {
            assert_eq!(e.reason.rule, rule, "{name}: {e}");
            assert!(!e.reason.message.is_empty());
        }
        (Some(rule), Ok(seen)) => panic!("{name}: expected {rule}, read {} rows", seen.count),
        (None, Ok(seen)) => check_readable(name, &seen),
        (None, Err(e)) => panic!("{name}: {e}"),
    }
    // Generous for a debug build on a shared machine; a bomb that got through would take
    // minutes or be killed.
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "{name} took {:?}",
        start.elapsed()
    );
}

fn write_cases(dir: &Path) -> Vec<(&'static str, PathBuf, Option<&'static str>)> {
    cases()
        .into_iter()
        .map(|(name, bytes, rule)| {
            let p = dir.join(format!("{name}.xlsx"));
            std::fs::write(&p, bytes).unwrap();
            (name, p, rule)
        })
        .collect()
}

fn peak_rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// All cases in-process; or, when `TALLYMAN_HOSTILE_FILE` is set by the memory test, just
/// that one file, reporting this process's peak memory.
#[test]
fn hostile_files_are_refused() {
    if let Ok(path) = std::env::var("TALLYMAN_HOSTILE_FILE") {
        let name = std::env::var("TALLYMAN_HOSTILE_CASE").unwrap();
        let rule = std::env::var("TALLYMAN_HOSTILE_RULE").ok();
        run_case(&name, Path::new(&path), rule.as_deref());
        println!("HWM_KB={}", peak_rss_kb());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, path, rule) in write_cases(dir.path()) {
        run_case(name, &path, rule);
    }
}

#[test]
fn hostile_files_stay_within_memory() {
    if std::env::var("TALLYMAN_HOSTILE_FILE").is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut report = Vec::new();
    for (name, path, rule) in write_cases(dir.path()) {
        let mut cmd = std::process::Command::new(&exe);
        cmd.args([
            "--exact",
            "hostile_files_are_refused",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("TALLYMAN_HOSTILE_FILE", &path)
        .env("TALLYMAN_HOSTILE_CASE", name);
        if let Some(rule) = rule {
            cmd.env("TALLYMAN_HOSTILE_RULE", rule);
        }
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name}: child failed\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let kb: u64 = stdout
            .lines()
            .find_map(|l| l.split_once("HWM_KB=").map(|(_, v)| v))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name}: no HWM in output\n{stdout}"));
        report.push(format!("{name}: peak {} MiB", kb / 1024));
        // The files themselves are up to 25 MB; nothing may come near the gigabytes the
        // unguarded reader took (4.2 GB, 6.3 GB, 512 GiB).
        assert!(kb < 96 * 1024, "{name}: peak RSS {kb} kB");
    }
    println!("{}", report.join("\n"));
}
