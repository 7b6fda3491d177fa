//! Building workbooks: minimal xlsx parts, zip containers, and real deflate streams of
//! any declared size (`Deflate`), so a hostile file is what an attacker would send.

use super::*;

pub(crate) const CONTENT_TYPES: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/></Types>"#;

pub(crate) const ROOT_RELS: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#;

pub(crate) const STYLES: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts><fills count="1"><fill><patternFill patternType="none"/></fill></fills><borders count="1"><border/></borders><cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs><cellXfs count="2"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/><xf numFmtId="14" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/></cellXfs></styleSheet>"#;

pub(crate) const ODS_MANIFEST: &str = r#"<?xml version="1.0" encoding="UTF-8"?><manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2"><manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/><manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/></manifest:manifest>"#;

pub(crate) struct Sheet<'a> {
    pub(crate) name: &'a str,
    pub(crate) hidden: bool,
    /// The XML inside `<sheetData>`.
    pub(crate) data: &'a str,
}

/// The parts of a minimal but complete xlsx workbook.
pub(crate) fn xlsx_parts(
    sheets: &[Sheet],
    shared: Option<&str>,
    date1904: bool,
) -> Vec<(String, Vec<u8>)> {
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
pub(crate) fn zip_parts(parts: &[(String, Vec<u8>)]) -> Vec<u8> {
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

pub(crate) fn xlsx(sheets: &[Sheet], shared: Option<&str>, date1904: bool) -> Vec<u8> {
    zip_parts(&xlsx_parts(sheets, shared, date1904))
}

/// A raw deflate stream writer (one fixed-Huffman block): enough to express gigabytes of a
/// repeated byte in a few MB, as a zip bomb does, without compressing gigabytes here.
pub(crate) struct Deflate {
    out: Vec<u8>,
    acc: u64,
    bits: u32,
    len: u64,
    last: u8,
}

impl Deflate {
    pub(crate) fn new() -> Self {
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
    pub(crate) fn put(&mut self, value: u64, n: u32) {
        self.acc |= value << self.bits;
        self.bits += n;
        while self.bits >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.bits -= 8;
        }
    }
    /// Huffman codes go most significant bit first.
    pub(crate) fn code(&mut self, code: u64, n: u32) {
        let mut rev = 0;
        for i in 0..n {
            rev |= ((code >> i) & 1) << (n - 1 - i);
        }
        self.put(rev, n);
    }
    pub(crate) fn literal(&mut self, b: u8) {
        if b < 144 {
            self.code(0x30 + u64::from(b), 8);
        } else {
            self.code(0x190 + u64::from(b - 144), 9);
        }
        self.len += 1;
        self.last = b;
    }
    pub(crate) fn bytes(&mut self, s: &[u8]) {
        for &b in s {
            self.literal(b);
        }
    }
    /// `count` more copies of the previous byte: matches at distance 1.
    pub(crate) fn repeat_last(&mut self, mut count: u64) {
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
    pub(crate) fn finish(mut self) -> (Vec<u8>, u64) {
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
pub(crate) fn raw_zip(entries: &[(&str, u16, Vec<u8>, u32)]) -> Vec<u8> {
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
pub(crate) fn crc32(data: &[u8], _size: u32, method: u16) -> u32 {
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
pub(crate) fn xlsx_with_raw_part(
    target: &str,
    deflated: Vec<u8>,
    declared: u32,
    shared: bool,
) -> Vec<u8> {
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
pub(crate) fn whitespace_sheet(spaces: u64, declared: Option<u32>) -> Vec<u8> {
    let mut d = Deflate::new();
    d.bytes(br#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1"> "#);
    d.repeat_last(spaces - 1);
    d.bytes(br#"<c r="A1"><v>1</v></c></row></sheetData></worksheet>"#);
    let (data, len) = d.finish();
    let declared = declared.unwrap_or(u32::try_from(len).unwrap());
    xlsx_with_raw_part("xl/worksheets/sheet1.xml", data, declared, true)
}

/// One shared string of `chars` bytes: the measured attack was a declared 2 GB string.
pub(crate) fn huge_shared_string(chars: u64, declared: Option<u32>) -> Vec<u8> {
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

/// `bytes` written to `dir/name`.
pub(crate) fn write_tmp(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}
