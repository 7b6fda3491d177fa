//! The tests of `corrections_csv` (a row given without its end ends with its own line end),
//! apart so the module reads as the code alone.

use super::*;
use crate::tabular::def::Encoding;

/// Copies the row at the start of `input` as a row whose input runs on into the file.
fn line_of(input: &[u8]) -> Vec<u8> {
    let dialect = CsvDialect {
        delimiter: b',',
        quote: Some(b'"'),
        encoding: Encoding::Utf8,
    };
    let mut out = Vec::new();
    let mut copier = Copier::new(&dialect);
    copier
        .copy(
            &mut &input[..],
            &mut out,
            Column::Insert(2),
            b"E",
            Rest::Line,
        )
        .unwrap();
    out
}

/// A row read up to its own line end stops there, whichever end it has and wherever the
/// windows it is read in are cut: a CRLF whose LF is the first byte of the next window,
/// a quoted line break, a bare CR, the file's end.
#[test]
fn a_row_without_its_end_given_ends_with_its_own_line_end() {
    assert_eq!(line_of(b"a,b\nc,d\n"), b"a,b,E\n");
    assert_eq!(line_of(b"a,b\r\nc,d\r\n"), b"a,b,E\r\n");
    assert_eq!(line_of(b"a,b\rc,d\r"), b"a,b,E\r");
    assert_eq!(line_of(b"a,\"b\r\nb\"\r\nc,d"), b"a,\"b\r\nb\",E\r\n");
    assert_eq!(line_of(b"a,b"), b"a,b,E");
    for len in [
        LINE_WINDOW - 3,
        LINE_WINDOW - 2,
        LINE_WINDOW - 1,
        3 * LINE_WINDOW,
    ] {
        let long = "x".repeat(len);
        let input = format!("a,{long}\r\nc,d\r\n");
        assert_eq!(
            line_of(input.as_bytes()),
            format!("a,{long},E\r\n").as_bytes()
        );
    }
}
