//! Legacy .xls: BIFF8 records inside an OLE2 compound file, both written here.

use super::*;

pub(crate) fn record(typ: u16, data: &[u8]) -> Vec<u8> {
    let mut r = typ.to_le_bytes().to_vec();
    r.extend_from_slice(&(data.len() as u16).to_le_bytes());
    r.extend_from_slice(data);
    r
}

pub(crate) fn bof(dt: u16) -> Vec<u8> {
    let mut d = 0x0600u16.to_le_bytes().to_vec();
    d.extend_from_slice(&dt.to_le_bytes());
    d.extend_from_slice(&[0u8; 12]);
    record(0x0809, &d)
}

pub(crate) fn dimensions(rf: u32, rl: u32, cf: u16, cl: u16) -> Vec<u8> {
    let mut d = rf.to_le_bytes().to_vec();
    d.extend_from_slice(&rl.to_le_bytes());
    d.extend_from_slice(&cf.to_le_bytes());
    d.extend_from_slice(&cl.to_le_bytes());
    d.extend_from_slice(&[0, 0]);
    record(0x0200, &d)
}

pub(crate) fn number(row: u16, col: u16, v: f64) -> Vec<u8> {
    let mut d = row.to_le_bytes().to_vec();
    d.extend_from_slice(&col.to_le_bytes());
    d.extend_from_slice(&0u16.to_le_bytes());
    d.extend_from_slice(&v.to_le_bytes());
    record(0x0203, &d)
}

pub(crate) fn label(row: u16, col: u16, s: &str) -> Vec<u8> {
    let mut d = row.to_le_bytes().to_vec();
    d.extend_from_slice(&col.to_le_bytes());
    d.extend_from_slice(&0u16.to_le_bytes());
    d.extend_from_slice(&(s.len() as u16).to_le_bytes());
    d.push(0); // compressed (Latin-1) characters
    d.extend_from_slice(s.as_bytes());
    record(0x0204, &d)
}

/// A BIFF8 workbook stream: globals (optionally with extra records), one sheet.
pub(crate) fn biff_workbook(
    globals_extra: &[u8],
    sheet_name: &str,
    sheet_records: &[u8],
) -> Vec<u8> {
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
pub(crate) fn cfb(stream: &[u8]) -> Vec<u8> {
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

pub(crate) fn xls_cases() -> Vec<(&'static str, Vec<u8>, Option<&'static str>)> {
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
