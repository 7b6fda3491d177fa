//! Hostile and edge-case workbooks generated on the fly: each must be refused with a named
//! rule (or read correctly) without a panic, in bounded time and memory.
//!
//! The memory bound is measured, not assumed: `hostile_files_stay_within_memory` re-runs
//! this test binary once per case (`hostile_files_are_refused` with
//! `TALLYMAN_HOSTILE_FILE` set) and reads the child's peak resident size (`VmHWM`).
//! The 4 GB and 2 GB payloads are real deflate streams (fixed-Huffman runs, written by
//! `Deflate` below), so the files are what an attacker would send: a few MB on disk.

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
    let mut src = open_rows(path, &ctx(), &sel)?;
    let mut rows = Vec::new();
    while let Some(row) = src.next_row()? {
        rows.push(row);
    }
    Ok(rows)
}

// ---------------------------------------------------------------------------------------
// Building workbooks

const CONTENT_TYPES: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/></Types>"#;

const ROOT_RELS: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#;

const STYLES: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts><fills count="1"><fill><patternFill patternType="none"/></fill></fills><borders count="1"><border/></borders><cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs><cellXfs count="2"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/><xf numFmtId="14" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/></cellXfs></styleSheet>"#;

const ODS_MANIFEST: &str = r#"<?xml version="1.0" encoding="UTF-8"?><manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2"><manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/><manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/></manifest:manifest>"#;

struct Sheet<'a> {
    name: &'a str,
    hidden: bool,
    /// The XML inside `<sheetData>`.
    data: &'a str,
}

/// The parts of a minimal but complete xlsx workbook.
fn xlsx_parts(sheets: &[Sheet], shared: Option<&str>, date1904: bool) -> Vec<(String, Vec<u8>)> {
    let mut wb = String::from(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">"#,
    );
    if date1904 {
        wb.push_str(r#"<workbookPr date1904="1"/>"#);
    }
    wb.push_str("<sheets>");
    let mut rels = String::from(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">"#,
    );
    let mut parts = vec![
        ("[Content_Types].xml".to_string(), CONTENT_TYPES.into()),
        ("_rels/.rels".to_string(), ROOT_RELS.into()),
        ("xl/styles.xml".to_string(), STYLES.into()),
    ];
    for (i, s) in sheets.iter().enumerate() {
        let n = i + 1;
        let state = if s.hidden { r#" state="hidden""# } else { "" };
        wb.push_str(&format!(
            r#"<sheet name="{}" sheetId="{n}"{state} r:id="rId{n}"/>"#,
            s.name
        ));
        rels.push_str(&format!(
            r#"<Relationship Id="rId{n}" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet{n}.xml"/>"#
        ));
        parts.push((
            format!("xl/worksheets/sheet{n}.xml"),
            format!(
                r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>{}</sheetData></worksheet>"#,
                s.data
            )
            .into_bytes(),
        ));
    }
    wb.push_str("</sheets></workbook>");
    rels.push_str(r#"<Relationship Id="rIdS" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/>"#);
    if let Some(sst) = shared {
        rels.push_str(r#"<Relationship Id="rIdT" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/>"#);
        parts.push((
            "xl/sharedStrings.xml".into(),
            format!(
                r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">{sst}</sst>"#
            )
            .into_bytes(),
        ));
    }
    rels.push_str("</Relationships>");
    parts.push(("xl/workbook.xml".into(), wb.into_bytes()));
    parts.push(("xl/_rels/workbook.xml.rels".into(), rels.into_bytes()));
    parts
}

/// Zips parts with the zip crate (deflate), the way a real writer would.
fn zip_parts(parts: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(9));
    for (name, data) in parts {
        w.start_file(name.as_str(), opts).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn xlsx(sheets: &[Sheet], shared: Option<&str>, date1904: bool) -> Vec<u8> {
    zip_parts(&xlsx_parts(sheets, shared, date1904))
}

/// A raw deflate stream writer (one fixed-Huffman block): enough to express gigabytes of a
/// repeated byte in a few MB, as a zip bomb does, without compressing gigabytes here.
struct Deflate {
    out: Vec<u8>,
    acc: u64,
    bits: u32,
    len: u64,
    last: u8,
}

impl Deflate {
    fn new() -> Self {
        let mut d = Deflate {
            out: Vec::new(),
            acc: 0,
            bits: 0,
            len: 0,
            last: 0,
        };
        d.put(0b1, 1); // BFINAL
        d.put(0b01, 2); // fixed Huffman
        d
    }
    fn put(&mut self, value: u64, n: u32) {
        self.acc |= value << self.bits;
        self.bits += n;
        while self.bits >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.bits -= 8;
        }
    }
    /// Huffman codes go most significant bit first.
    fn code(&mut self, code: u64, n: u32) {
        let mut rev = 0;
        for i in 0..n {
            rev |= ((code >> i) & 1) << (n - 1 - i);
        }
        self.put(rev, n);
    }
    fn literal(&mut self, b: u8) {
        if b < 144 {
            self.code(0x30 + u64::from(b), 8);
        } else {
            self.code(0x190 + u64::from(b - 144), 9);
        }
        self.len += 1;
        self.last = b;
    }
    fn bytes(&mut self, s: &[u8]) {
        for &b in s {
            self.literal(b);
        }
    }
    /// `count` more copies of the previous byte: matches at distance 1.
    fn repeat_last(&mut self, mut count: u64) {
        while count >= 258 {
            self.code(0xC5, 8); // length symbol 285 = 258
            self.code(0, 5); // distance code 0 = 1
            count -= 258;
            self.len += 258;
        }
        while count >= 3 {
            self.code(1, 7); // length symbol 257 = 3
            self.code(0, 5);
            count -= 3;
            self.len += 3;
        }
        for _ in 0..count {
            self.literal(self.last);
        }
    }
    fn finish(mut self) -> (Vec<u8>, u64) {
        self.code(0, 7); // end of block
        if self.bits > 0 {
            self.out.push(self.acc as u8);
        }
        (self.out, self.len)
    }
}

/// A zip written byte by byte so the central directory can declare whatever we like.
/// Entries: (name, method 0/8, payload, declared uncompressed size). CRCs are zero: every
/// hostile file is refused long before a reader could check them.
fn raw_zip(entries: &[(&str, u16, Vec<u8>, u32)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, method, data, size) in entries {
        let offset = out.len() as u32;
        let header = |sig: u32, central: bool| {
            let mut h = Vec::new();
            h.extend_from_slice(&sig.to_le_bytes());
            if central {
                h.extend_from_slice(&20u16.to_le_bytes()); // made by
            }
            h.extend_from_slice(&20u16.to_le_bytes()); // version needed
            h.extend_from_slice(&0u16.to_le_bytes()); // flags
            h.extend_from_slice(&method.to_le_bytes());
            h.extend_from_slice(&0u32.to_le_bytes()); // time, date
            h.extend_from_slice(&crc32(data, *size, *method).to_le_bytes());
            h.extend_from_slice(&(data.len() as u32).to_le_bytes());
            h.extend_from_slice(&size.to_le_bytes());
            h.extend_from_slice(&(name.len() as u16).to_le_bytes());
            h.extend_from_slice(&0u16.to_le_bytes()); // extra
            if central {
                h.extend_from_slice(&[0u8; 6]); // comment len, disk, internal attrs
                h.extend_from_slice(&0u32.to_le_bytes()); // external attrs
                h.extend_from_slice(&offset.to_le_bytes());
            }
            h.extend_from_slice(name.as_bytes());
            h
        };
        out.extend(header(0x0403_4b50, false));
        out.extend_from_slice(data);
        central.extend(header(0x0201_4b50, true));
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0u8; 4]);
    let n = entries.len() as u16;
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// Real CRC for stored parts (so the small, honest parts are valid); zero otherwise.
fn crc32(data: &[u8], _size: u32, method: u16) -> u32 {
    if method != 0 {
        return 0;
    }
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// An xlsx whose `target` part is the given deflate stream (declaring `declared` bytes) and
/// whose other parts are small and stored.
fn xlsx_with_raw_part(target: &str, deflated: Vec<u8>, declared: u32, shared: bool) -> Vec<u8> {
    let sheets = [Sheet {
        name: "Sheet1",
        hidden: false,
        data: r#"<row r="1"><c r="A1" t="s"><v>0</v></c></row>"#,
    }];
    let parts = xlsx_parts(&sheets, shared.then_some("<si><t>x</t></si>"), false);
    let mut entries: Vec<(&str, u16, Vec<u8>, u32)> = Vec::new();
    let mut payload = Some(deflated);
    for (name, data) in &parts {
        if name == target {
            entries.push((name.as_str(), 8, payload.take().unwrap(), declared));
        } else {
            entries.push((name.as_str(), 0, data.clone(), data.len() as u32));
        }
    }
    raw_zip(&entries)
}

/// `<worksheet ...><sheetData><row r="1">` + `spaces` spaces + `</row>...`: the measured
/// attack was 4 GB of whitespace between two tags.
fn whitespace_sheet(spaces: u64, declared: Option<u32>) -> Vec<u8> {
    let mut d = Deflate::new();
    d.bytes(br#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1"> "#);
    d.repeat_last(spaces - 1);
    d.bytes(br#"<c r="A1"><v>1</v></c></row></sheetData></worksheet>"#);
    let (data, len) = d.finish();
    let declared = declared.unwrap_or(u32::try_from(len).unwrap());
    xlsx_with_raw_part("xl/worksheets/sheet1.xml", data, declared, true)
}

/// One shared string of `chars` bytes: the measured attack was a declared 2 GB string.
fn huge_shared_string(chars: u64, declared: Option<u32>) -> Vec<u8> {
    let mut d = Deflate::new();
    d.bytes(br#"<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><si><t>A"#);
    d.repeat_last(chars - 1);
    d.bytes(b"</t></si></sst>");
    let (data, len) = d.finish();
    let declared = declared.unwrap_or(u32::try_from(len).unwrap());
    xlsx_with_raw_part("xl/sharedStrings.xml", data, declared, true)
}

#[test]
fn deflate_writer_round_trips_through_the_zip_crate() {
    // Guards the generator itself: a small stream must decompress to what it claims.
    let bytes = whitespace_sheet(10_000, None);
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut f = z.by_name("xl/worksheets/sheet1.xml").unwrap();
    let mut s = Vec::new();
    // CRC is deliberately zero, so the zip crate reports a checksum error at the very end;
    // everything before it must be the exact expected text.
    let _ = std::io::Read::read_to_end(&mut f, &mut s);
    let text = String::from_utf8(s).unwrap();
    assert!(text.starts_with("<?xml"));
    assert!(text.contains(&" ".repeat(10_000)));
    assert!(text.ends_with("</worksheet>"));
    assert_eq!(text.len() as u64, f.size());
}

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

// ---------------------------------------------------------------------------------------
// Generated workbooks that must read correctly

fn write_tmp(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn date_cells_in_the_1904_system_match_the_1900_system() {
    let dir = tempfile::tempdir().unwrap();
    // 2026-11-03 = 46329 (1900) = 44867 (1904); with a time of 06:00.
    let make = |serial: &str, is_1904: bool| {
        xlsx(
            &[Sheet {
                name: "Orders",
                hidden: false,
                data: &format!(r#"<row r="2"><c r="C2" s="1"><v>{serial}</v></c></row>"#),
            }],
            None,
            is_1904,
        )
    };
    let a = read(
        &write_tmp(dir.path(), "a.xlsx", &make("46329.25", false)),
        SheetSelector::Index(0),
    )
    .unwrap();
    let b = read(
        &write_tmp(dir.path(), "b.xlsx", &make("44867.25", true)),
        SheetSelector::Index(0),
    )
    .unwrap();
    assert_eq!(
        a[0].cells,
        vec![
            Cell::Empty,
            Cell::Empty,
            Cell::DateTime("2026-11-03T06:00:00".into())
        ]
    );
    assert_eq!(a[0].cells, b[0].cells);
}

#[test]
fn hidden_sheet_with_data_is_read_by_name_and_index() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = xlsx(
        &[
            Sheet {
                name: "Front",
                hidden: false,
                data: r#"<row r="1"><c r="A1" t="s"><v>0</v></c></row>"#,
            },
            Sheet {
                name: "Lookup Data",
                hidden: true,
                data: r#"<row r="4"><c r="B4" t="s"><v>1</v></c><c r="C4" t="b"><v>1</v></c><c r="D4"><v>-2.5</v></c></row>"#,
            },
        ],
        Some("<si><t>front</t></si><si><t>secret</t></si>"),
        false,
    );
    let p = write_tmp(dir.path(), "h.xlsx", &bytes);
    let by_name = read(&p, SheetSelector::Name("Lookup Data".into())).unwrap();
    let by_index = read(&p, SheetSelector::Index(1)).unwrap();
    assert_eq!(by_name, by_index);
    let r = &by_name[0];
    assert_eq!(
        r.cells,
        vec![
            Cell::Empty,
            Cell::Text("secret".into()),
            Cell::Bool(true),
            Cell::Float(-2.5)
        ]
    );
    assert_eq!(r.pos.locator.as_deref(), Some("Lookup Data!A4"));
    assert_eq!(r.raw, ",secret,true,-2.5");
}

#[test]
fn a_consumer_that_stops_early_does_not_hang() {
    let dir = tempfile::tempdir().unwrap();
    let mut data = String::new();
    for r in 1..=5_000 {
        data.push_str(&format!(r#"<row r="{r}"><c r="A{r}"><v>{r}</v></c></row>"#));
    }
    let p = write_tmp(
        dir.path(),
        "many.xlsx",
        &xlsx(
            &[Sheet {
                name: "S",
                hidden: false,
                data: &data,
            }],
            None,
            false,
        ),
    );
    let mut src = open_rows(&p, &ctx(), &SheetSelector::Index(0)).unwrap();
    let first = src.next_row().unwrap().unwrap();
    assert_eq!(first.cells, vec![Cell::Float(1.0)]);
    drop(src);
    // And a full read sees every row, in order.
    let rows = read(&p, SheetSelector::Index(0)).unwrap();
    assert_eq!(rows.len(), 5_000);
    assert!(rows.windows(2).all(|w| w[0].row_number < w[1].row_number));
}

#[test]
fn oversized_cell_text_is_refused_with_its_cell() {
    let dir = tempfile::tempdir().unwrap();
    // Pseudo-random letters, so the part does not trip the compression-ratio check first.
    let mut seed = 12345u32;
    let big: String = (0..600 * 1024)
        .map(|_| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            char::from(b'a' + ((seed >> 16) % 26) as u8)
        })
        .collect();
    let bytes = xlsx(
        &[Sheet {
            name: "Notes",
            hidden: false,
            data: &format!(
                r#"<row r="7"><c r="B7" t="inlineStr"><is><t>{big}</t></is></c><c r="C7" t="inlineStr"><is><t>{big}</t></is></c></row>"#
            ),
        }],
        None,
        false,
    );
    let p = write_tmp(dir.path(), "big.xlsx", &bytes);
    let e = read(&p, SheetSelector::Index(0)).unwrap_err();
    assert_eq!(e.reason.rule, "sheet-row-too-large");
    assert_eq!(e.pos.unwrap().locator.as_deref(), Some("Notes!A7"));
}

#[test]
fn not_a_spreadsheet_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_tmp(dir.path(), "x.xlsx", b"order_no,sku\n1,A\n");
    assert_eq!(
        read(&p, SheetSelector::Index(0)).unwrap_err().reason.rule,
        "sheet-unrecognised"
    );
    // An OLE2 header with nothing behind it.
    let p = write_tmp(
        dir.path(),
        "y.xls",
        &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1, 0, 0, 0],
    );
    assert_eq!(
        read(&p, SheetSelector::Index(0)).unwrap_err().reason.rule,
        "sheet-corrupt"
    );
    // Truncated zip.
    let bytes = sparse_far_cell();
    let p = write_tmp(dir.path(), "z.xlsx", &bytes[..bytes.len() / 2]);
    assert_eq!(
        read(&p, SheetSelector::Index(0)).unwrap_err().reason.rule,
        "sheet-corrupt"
    );
}

#[test]
fn ods_workbook_reads_through_the_range_path() {
    let dir = tempfile::tempdir().unwrap();
    let s = |t: &str| {
        format!(
            r#"<table:table-cell office:value-type="string"><text:p>{t}</text:p></table:table-cell>"#
        )
    };
    let content = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2"><office:body><office:spreadsheet><table:table table:name="Prices"><table:table-row>{}{}{}</table:table-row><table:table-row table:number-rows-repeated="2"><table:table-cell table:number-columns-repeated="3"/></table:table-row><table:table-row>{}<table:table-cell office:value-type="float" office:value="12.5"><text:p>12.5</text:p></table:table-cell><table:table-cell office:value-type="date" office:date-value="2026-11-01"><text:p>01/11/26</text:p></table:table-cell></table:table-row><table:table-row table:number-rows-repeated="1048570"><table:table-cell table:number-columns-repeated="1024"/></table:table-row></table:table><table:table table:name="Other"><table:table-row>{}</table:table-row></table:table></office:spreadsheet></office:body></office:document-content>"#,
        s("sku"),
        s("price"),
        s("valid_from"),
        s("A-1"),
        s("other")
    );
    let bytes = zip_parts(&[
        (
            "mimetype".into(),
            b"application/vnd.oasis.opendocument.spreadsheet".to_vec(),
        ),
        (
            "META-INF/manifest.xml".into(),
            ODS_MANIFEST.as_bytes().to_vec(),
        ),
        ("content.xml".into(), content.into_bytes()),
    ]);
    let p = write_tmp(dir.path(), "prices.ods", &bytes);
    let rows = read(&p, SheetSelector::Name("Prices".into())).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1].row_number, 4);
    assert_eq!(rows[1].pos.locator.as_deref(), Some("Prices!A4"));
    assert_eq!(
        rows[1].cells,
        vec![
            Cell::Text("A-1".into()),
            Cell::Float(12.5),
            Cell::DateTime("2026-11-01".into())
        ]
    );
    let other = read(&p, SheetSelector::Index(1)).unwrap();
    assert_eq!(other[0].cells, vec![Cell::Text("other".into())]);
}

// ---------------------------------------------------------------------------------------
// Legacy .xls: BIFF8 records inside an OLE2 compound file, both written here.

fn record(typ: u16, data: &[u8]) -> Vec<u8> {
    let mut r = typ.to_le_bytes().to_vec();
    r.extend_from_slice(&(data.len() as u16).to_le_bytes());
    r.extend_from_slice(data);
    r
}

fn bof(dt: u16) -> Vec<u8> {
    let mut d = 0x0600u16.to_le_bytes().to_vec();
    d.extend_from_slice(&dt.to_le_bytes());
    d.extend_from_slice(&[0u8; 12]);
    record(0x0809, &d)
}

fn dimensions(rf: u32, rl: u32, cf: u16, cl: u16) -> Vec<u8> {
    let mut d = rf.to_le_bytes().to_vec();
    d.extend_from_slice(&rl.to_le_bytes());
    d.extend_from_slice(&cf.to_le_bytes());
    d.extend_from_slice(&cl.to_le_bytes());
    d.extend_from_slice(&[0, 0]);
    record(0x0200, &d)
}

fn number(row: u16, col: u16, v: f64) -> Vec<u8> {
    let mut d = row.to_le_bytes().to_vec();
    d.extend_from_slice(&col.to_le_bytes());
    d.extend_from_slice(&0u16.to_le_bytes());
    d.extend_from_slice(&v.to_le_bytes());
    record(0x0203, &d)
}

fn label(row: u16, col: u16, s: &str) -> Vec<u8> {
    let mut d = row.to_le_bytes().to_vec();
    d.extend_from_slice(&col.to_le_bytes());
    d.extend_from_slice(&0u16.to_le_bytes());
    d.extend_from_slice(&(s.len() as u16).to_le_bytes());
    d.push(0); // compressed (Latin-1) characters
    d.extend_from_slice(s.as_bytes());
    record(0x0204, &d)
}

/// A BIFF8 workbook stream: globals (optionally with extra records), one sheet.
fn biff_workbook(globals_extra: &[u8], sheet_name: &str, sheet_records: &[u8]) -> Vec<u8> {
    let mut globals = bof(0x0005);
    globals.extend(record(0x0042, &1200u16.to_le_bytes())); // CODEPAGE: UTF-16
    globals.extend_from_slice(globals_extra);
    let boundsheet_at = globals.len();
    let mut bs = vec![0u8; 4]; // lbPlyPos, patched below
    bs.extend_from_slice(&[0, 0, sheet_name.len() as u8, 0]);
    bs.extend_from_slice(sheet_name.as_bytes());
    globals.extend(record(0x0085, &bs));
    globals.extend(record(0x000A, &[]));
    let sheet_at = globals.len() as u32;
    globals[boundsheet_at + 4..boundsheet_at + 8].copy_from_slice(&sheet_at.to_le_bytes());
    globals.extend(bof(0x0010));
    globals.extend_from_slice(sheet_records);
    globals.extend(record(0x000A, &[]));
    // Keep the stream out of the mini stream (< 4096 bytes) so one FAT sector suffices.
    if globals.len() < 4096 {
        globals.resize(4096, 0);
    }
    globals
}

/// An OLE2 compound file (v3, 512-byte sectors) holding one `Workbook` stream.
fn cfb(stream: &[u8]) -> Vec<u8> {
    let n = stream.len().div_ceil(512);
    assert!(n + 2 <= 128, "one FAT sector only");
    let mut out = vec![0u8; 512];
    out[..8].copy_from_slice(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]);
    let put16 =
        |o: &mut Vec<u8>, at: usize, v: u16| o[at..at + 2].copy_from_slice(&v.to_le_bytes());
    let put32 =
        |o: &mut Vec<u8>, at: usize, v: u32| o[at..at + 4].copy_from_slice(&v.to_le_bytes());
    put16(&mut out, 0x18, 0x3E);
    put16(&mut out, 0x1A, 3);
    put16(&mut out, 0x1C, 0xFFFE);
    put16(&mut out, 0x1E, 9);
    put16(&mut out, 0x20, 6);
    put32(&mut out, 0x2C, 1); // FAT sectors
    put32(&mut out, 0x30, 1); // directory start
    put32(&mut out, 0x38, 4096);
    put32(&mut out, 0x3C, 0xFFFF_FFFE);
    put32(&mut out, 0x44, 0xFFFF_FFFE);
    for i in 0..109 {
        put32(&mut out, 0x4C + 4 * i, if i == 0 { 0 } else { 0xFFFF_FFFF });
    }
    // Sector 0: FAT.
    let mut fat = vec![0xFFFF_FFFDu32, 0xFFFF_FFFE];
    for i in 0..n {
        fat.push(if i + 1 == n {
            0xFFFF_FFFE
        } else {
            (i + 3) as u32
        });
    }
    fat.resize(128, 0xFFFF_FFFF);
    for v in fat {
        out.extend_from_slice(&v.to_le_bytes());
    }
    // Sector 1: directory.
    let entry = |name: &str, typ: u8, child: u32, start: u32, size: u32| {
        let mut e = vec![0u8; 128];
        let units: Vec<u16> = name.encode_utf16().collect();
        for (k, u) in units.iter().enumerate() {
            e[2 * k..2 * k + 2].copy_from_slice(&u.to_le_bytes());
        }
        e[0x40..0x42].copy_from_slice(&(((units.len() + 1) * 2) as u16).to_le_bytes());
        e[0x42] = typ;
        e[0x43] = 1;
        e[0x44..0x48].copy_from_slice(&0xFFFF_FFFFu32.to_le_bytes());
        e[0x48..0x4C].copy_from_slice(&0xFFFF_FFFFu32.to_le_bytes());
        e[0x4C..0x50].copy_from_slice(&child.to_le_bytes());
        e[0x74..0x78].copy_from_slice(&start.to_le_bytes());
        e[0x78..0x7C].copy_from_slice(&size.to_le_bytes());
        e
    };
    out.extend(entry("Root Entry", 5, 1, 0xFFFF_FFFE, 0));
    out.extend(entry("Workbook", 2, 0xFFFF_FFFF, 2, stream.len() as u32));
    out.extend(entry("", 0, 0xFFFF_FFFF, 0, 0));
    out.extend(entry("", 0, 0xFFFF_FFFF, 0, 0));
    // Sectors 2..: the stream.
    let mut s = stream.to_vec();
    s.resize(n * 512, 0);
    out.extend(s);
    out
}

fn xls_cases() -> Vec<(&'static str, Vec<u8>, Option<&'static str>)> {
    let mut far = number(0, 0, 1.0);
    far.extend(number(65_535, 65_535, 2.0));
    let mut huge_dim = dimensions(0, u32::MAX, 0, 256);
    huge_dim.extend(number(0, 0, 1.0));
    vec![
        (
            "xls-declared-dimensions",
            cfb(&biff_workbook(&[], "Data", &huge_dim)),
            Some("sheet-too-many-cells"),
        ),
        (
            "xls-sparse-far-cell",
            cfb(&biff_workbook(&[], "Data", &far)),
            Some("sheet-too-many-cells"),
        ),
        (
            "xls-encrypted",
            cfb(&biff_workbook(
                &record(0x002F, &[1, 0, 1, 0, 1, 0]),
                "Data",
                &number(0, 0, 1.0),
            )),
            Some("sheet-encrypted"),
        ),
    ]
}

#[test]
fn xls_workbook_reads_typed_cells() {
    let dir = tempfile::tempdir().unwrap();
    let mut cells = dimensions(0, 3, 0, 3);
    cells.extend(label(0, 0, "sku"));
    cells.extend(label(0, 1, "qty"));
    cells.extend(label(2, 0, "A-1"));
    cells.extend(number(2, 1, 7.0));
    cells.extend(number(2, 2, -1.25));
    let p = write_tmp(
        dir.path(),
        "legacy.xls",
        &cfb(&biff_workbook(&[], "Legacy", &cells)),
    );
    let rows = read(&p, SheetSelector::Name("Legacy".into())).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[0].cells,
        vec![Cell::Text("sku".into()), Cell::Text("qty".into())]
    );
    assert_eq!(rows[1].row_number, 3);
    assert_eq!(rows[1].pos.locator.as_deref(), Some("Legacy!A3"));
    assert_eq!(
        rows[1].cells,
        vec![
            Cell::Text("A-1".into()),
            Cell::Float(7.0),
            Cell::Float(-1.25)
        ]
    );
}
