//! Legacy encodings on a real-size file: a Big5 product list (`tests/fixtures/csv/`) is
//! refused by `encoding = "auto"` with the likely encoding named, and read exactly (every
//! name equal to its UTF-8 twin) once the definition says `encoding = "big5"`, whether
//! fields are decoded per record (`,`) or the file is transcoded (`|` can be a Big5 trail
//! byte).

use std::path::{Path, PathBuf};

use tallyman::format::registry::load_formats;
use tallyman::format::testing::{read_all, ReadResult};
use tallyman::format::{Diagnostics, FormatSet, UnitStatus};
use tallyman::unit::LineVerdict;

const BIG5: &str = "tests/fixtures/csv/products-big5.csv";
const TWIN: &str = "tests/fixtures/csv/products-big5.utf8.csv";

fn definition(encoding: &str, delimiter: &str) -> String {
    format!(
        r#"kind = "csv"
name = "products-{encoding}"
key = "{{sku}}"
policy = "accept-valid"
[match]
filename = "products*.csv"
[csv]
encoding = "{encoding}"
delimiter = "{delimiter}"
[[fields]]
name = "sku"
required = true
[[fields]]
name = "name"
required = true
[[fields]]
name = "price"
type = "decimal"
[map]
entity = "product"
[map.header]
sku = "{{sku}}"
description = "{{name}}"
price = "{{price}}"
"#
    )
}

fn format_set(dir: &Path, encoding: &str, delimiter: &str) -> FormatSet {
    std::fs::write(dir.join("def.toml"), definition(encoding, delimiter)).unwrap();
    let mut d = Diagnostics::default();
    let set = load_formats(dir, &mut d);
    assert!(d.is_empty(), "{:?}", d.errors);
    set
}

fn read(encoding: &str, delimiter: &str, file: &Path) -> ReadResult {
    let dir = tempfile::tempdir().unwrap();
    let set = format_set(dir.path(), encoding, delimiter);
    read_all(set.formats[0].as_ref(), file)
}

/// (sku, description) of every applied product.
fn products(r: &ReadResult) -> Vec<(String, String)> {
    r.units
        .iter()
        .flat_map(|u| &u.eval.records)
        .map(|rec| {
            (
                rec.key.clone(),
                rec.body()["description"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

fn expected() -> Vec<(String, String)> {
    let mut r = csv::Reader::from_path(TWIN).unwrap();
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            (rec[0].to_string(), rec[1].to_string())
        })
        .collect()
}

#[test]
fn regression_auto_read_big5_as_windows_1252_without_a_warning() {
    let r = read("auto", ",", Path::new(BIG5));
    let e = r.error.expect("auto must refuse a Big5 file");
    assert_eq!(e.reason.rule, "encoding");
    assert!(
        e.reason.message.contains("Likely Big5")
            && e.reason
                .message
                .contains("set encoding = \"big5\" in the [csv] table of format 'products-auto'"),
        "{}",
        e.reason.message
    );
    assert!(r.units.is_empty(), "nothing may be applied");
}

#[test]
fn big5_is_read_exactly_per_record_keeping_file_offsets() {
    let r = read("big5", ",", Path::new(BIG5));
    assert!(r.error.is_none(), "{:?}", r.error);
    let want = expected();
    assert_eq!(want.len(), 311);
    assert_eq!(products(&r), want);
    // Offsets are those of the Big5 file: the second product starts where its bytes do.
    let bytes = std::fs::read(BIG5).unwrap();
    let second = bytes.windows(9).position(|w| w == b"\r\nTW-0002").unwrap() + 2;
    assert_eq!(r.units[2].lines[0].pos.byte, second as u64);
}

#[test]
fn big5_with_a_pipe_delimiter_is_transcoded_not_split_inside_characters() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(TWIN).unwrap().replace(',', "|");
    let (bytes, _, bad) = encoding_rs::BIG5.encode(&text);
    assert!(!bad);
    let file: PathBuf = dir.path().join("products-pipe.csv");
    std::fs::write(&file, &bytes).unwrap();
    let r = read("big5", "|", &file);
    assert!(r.error.is_none(), "{:?}", r.error);
    let want: Vec<(String, String)> = expected()
        .into_iter()
        .map(|(k, n)| (k, n.replace(',', "|")))
        .collect();
    assert_eq!(products(&r), want);
}

#[test]
fn an_invalid_big5_byte_rejects_its_row_at_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(BIG5).unwrap();
    // A lead byte followed by a comma is not a character: put one before the first comma.
    let at = bytes.windows(9).position(|w| w == b"\r\nTW-0003").unwrap() + 9;
    bytes.insert(at, 0xA4);
    let file = dir.path().join("products-bad.csv");
    std::fs::write(&file, &bytes).unwrap();
    let r = read("big5", ",", &file);
    let bad: Vec<_> = r
        .units
        .iter()
        .filter(|u| u.status() == UnitStatus::Rejected)
        .collect();
    assert_eq!(bad.len(), 1);
    let LineVerdict::Rejected(why) = &bad[0].eval.verdicts[0] else {
        panic!()
    };
    assert_eq!(why.rule, "encoding");
    assert_eq!(
        why.message,
        format!("bytes that are not valid Big5: 0xA4 0x2C at byte {at} of the file")
    );
}
