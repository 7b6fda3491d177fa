//! The tests of `csv_rows` (positions, the record limit, bad bytes, decoding, quoting),
//! apart so the module reads as the code alone.

use super::*;

fn items_in(data: &[u8], enc: Encoding, max: u64) -> Vec<CsvItem> {
    let d = CsvDialect {
        delimiter: b',',
        quote: Some(b'"'),
        encoding: enc,
    };
    items(data, &d, max)
}

pub(super) fn items(data: &[u8], d: &CsvDialect, max: u64) -> Vec<CsvItem> {
    let mut r = CsvRows::new(Box::new(std::io::Cursor::new(data.to_vec())), data, d, max);
    let mut out = Vec::new();
    while let Some(i) = r.next_item().unwrap() {
        out.push(i);
    }
    out
}

type Summary = (u64, u64, u64, Vec<String>, Option<String>);

fn rows(items: &[CsvItem]) -> Vec<Summary> {
    items
        .iter()
        .filter_map(|i| match i {
            CsvItem::Row(r, p) => Some((
                r.pos.line,
                r.pos.byte,
                r.pos.record,
                r.cells.iter().map(|c| c.to_text()).collect(),
                p.as_ref().map(|p| p.rule.clone()),
            )),
            CsvItem::Blank(_) => None,
        })
        .collect()
}

#[test]
fn positions_across_line_endings_and_quoted_newlines() {
    let data = b"a,b\r\n\"x\ny\",2\r\r\nc,3\rd,4";
    let it = items_in(data, Encoding::Utf8, 1 << 20);
    let r = rows(&it);
    assert_eq!(r[0], (1, 0, 1, vec!["a".into(), "b".into()], None));
    assert_eq!(r[1], (2, 5, 2, vec!["x\ny".into(), "2".into()], None));
    // "\r" ends the record on line 3, "\r\n" is a blank line 4, c,3 is line 5.
    assert_eq!(r[2].0, 5);
    assert_eq!(r[2].1, 15);
    assert_eq!(r[3].0, 6);
    let blanks: Vec<_> = it
        .iter()
        .filter_map(|i| match i {
            CsvItem::Blank(b) => Some(b.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(blanks, vec![vec![Position::new(4, 13, 0)]]);
}

#[test]
fn over_long_record_is_refused_not_buffered() {
    let mut data = b"a,b\n".to_vec();
    data.extend(std::iter::repeat_n(b'x', 5000));
    data.extend(b",1\nc,d\n");
    let it = items_in(&data, Encoding::Utf8, 100);
    let r = rows(&it);
    assert_eq!(r.len(), 3);
    assert_eq!(r[1].4.as_deref(), Some("record-too-long"));
    assert_eq!(r[2].3, vec!["c".to_string(), "d".to_string()]);
    assert_eq!(r[2].0, 3);
}

#[test]
fn bad_bytes_and_nul_are_positioned_problems() {
    let it = items_in(b"a,b\nx,\xff\xfe\n\0,1\n", Encoding::Utf8, 1 << 20);
    let CsvItem::Row(_, Some(p)) = &it[1] else {
        panic!("{it:?}")
    };
    assert_eq!(p.rule, "encoding");
    assert!(p.message.contains("at byte 6"), "{}", p.message);
    let CsvItem::Row(_, Some(p)) = &it[2] else {
        panic!("{it:?}")
    };
    assert_eq!(p.rule, "nul-byte");
    assert!(p.message.contains("byte 9"), "{}", p.message);
}

#[test]
fn a_character_cut_by_a_delimiter_is_two_bad_cells_not_one_good_one() {
    // The fields' bytes together read as "é" (C3 A9); the record, and each field on
    // its own, are not UTF-8.
    let it = items_in(b"\xc3,\xa9\nok,\xc3\xa9\n", Encoding::Utf8, 1 << 20);
    let r = rows(&it);
    let bad = "\u{FFFD}".to_string();
    assert_eq!(r[0].3, vec![bad.clone(), bad]);
    assert_eq!(r[0].4.as_deref(), Some("encoding"));
    assert_eq!(r[1].3, vec!["ok".to_string(), "é".to_string()]);
    assert_eq!(r[1].4, None);
}

#[test]
fn utf16_and_latin1_decode() {
    let mut data = vec![0xFE, 0xFF];
    for u in "a,\u{e9}\n".encode_utf16() {
        data.extend(u.to_be_bytes());
    }
    let r = rows(&items_in(&data, Encoding::Auto, 1 << 20));
    assert_eq!(r[0].3, vec!["a".to_string(), "é".to_string()]);
    let r = rows(&items_in(b"\xe9,\x80\n", Encoding::Latin1, 1 << 20));
    assert_eq!(r[0].3, vec!["é".to_string(), "\u{80}".to_string()]);
    let r = rows(&items_in(
        b"\xe9,\x80\n",
        Encoding::Legacy(encoding_rs::WINDOWS_1252),
        1 << 20,
    ));
    assert_eq!(r[0].3, vec!["é".to_string(), "€".to_string()]);
    let r = rows(&items_in(b"\xef\xbb\xbfa,b\n", Encoding::Utf8, 1 << 20));
    assert_eq!((r[0].1, r[0].3[0].as_str()), (3, "a"));
}

#[test]
fn join_quotes_when_needed() {
    let cells = vec!["a".to_string(), "b,c".into(), "d\"e".into()];
    assert_eq!(
        CsvRows::join(&cells, b',', Some(b'"')),
        "a,\"b,c\",\"d\"\"e\""
    );
}
