//! Passing over the committed part of a CSV file when a resumed read starts at a mark.
//!
//! A resumed reader must still learn every group key before the mark (see
//! `tabular::engine::resume`): with the keys log it jumps to the mark ([`CsvRows::discard_to`]);
//! without one it cannot, but it needs no rows, only where each record ends
//! and one field's text. csv-core finds that byte by byte through its state machine, which
//! made this pass a third of a resumed run's instructions. Most records can be found with a
//! few memchr jumps instead: the next delimiter or line break, and across a quoted field its
//! closing quote. [`scan_record`] does that for a record that lies whole in the buffer and
//! is short enough that no limit can apply, with csv-core's exact rules; anything else
//! (a record cut by the buffer's end, a quoted key, the file's first record) goes to
//! csv-core as before.

// `FileError` is the shared error type of every format (see the parent module).
#![allow(clippy::result_large_err)]

use super::{CsvRows, MAX_COLUMNS};
use crate::format::FileError;

impl CsvRows {
    /// Reads on to byte `to` without building rows, giving `key` the trimmed text of
    /// column `col` (raw index) of every record that has one there: a resumed reader
    /// learns what it must remember of the part it does not parse again. Lines, records
    /// and bytes are counted as [`Self::next_item`] counts them. `Ok(false)` when `to` is
    /// not where an item starts (or is past the end).
    pub fn skip_to(
        &mut self,
        to: u64,
        col: Option<usize>,
        mut key: impl FnMut(&str),
    ) -> Result<bool, FileError> {
        self.start_once()?;
        loop {
            if self.byte >= to {
                return Ok(self.byte == to);
            }
            self.fill()?;
            if self.start == self.end {
                return Ok(false);
            }
            if matches!(self.buf[self.start], b'\r' | b'\n') {
                self.advance(1, None);
                continue;
            }
            if self.skip_scanned(col, &mut key) {
                continue;
            }
            let p = self.parse_record(None)?;
            if p.too_long || p.too_wide {
                continue;
            }
            if let Some(c) = col.filter(|&c| c < p.endlen) {
                let from = if c == 0 { 0 } else { self.ends[c - 1] };
                let to = self.ends[c].min(p.outlen);
                self.give_key(&self.out[from.min(to)..to], &mut key);
            }
        }
    }

    /// Passes over everything up to byte `to` without looking at it (a file input jumps
    /// there, reading only the byte before it), and takes the
    /// position there as given: physical line `line`, after `records` records. For a mark
    /// an earlier read of the same bytes gave, where csv-core is between records as it is
    /// after `Self::skip_scanned`. `Ok(false)` if the file ends before `to`, or `to` does
    /// not follow a line break (no item starts there).
    pub fn discard_to(&mut self, to: u64, line: u64, records: u64) -> Result<bool, FileError> {
        self.start_once()?;
        if self.byte >= to {
            return Ok(self.position() == crate::unit::Position::new(line, to, records));
        }
        let mut last = 0;
        while self.byte < to {
            // Past what is buffered, an input that can jumps to the byte before `to`: that
            // byte is read, to see a line break ends there.
            if self.start == self.end && to - self.byte > 1 && self.jump_to(to - 1)? {
                continue;
            }
            self.fill()?;
            if self.start == self.end {
                return Ok(false);
            }
            let left = usize::try_from(to - self.byte).unwrap_or(usize::MAX);
            let n = (self.end - self.start).min(left);
            last = self.buf[self.start + n - 1];
            self.start += n;
            self.byte += n as u64;
        }
        if !matches!(last, b'\r' | b'\n') {
            return Ok(false);
        }
        (self.prev_cr, self.line, self.records) = (last == b'\r', line, records);
        Ok(true)
    }

    /// Moves the input to byte `at` with nothing buffered, if it can (see
    /// [`super::Input::jump`]).
    fn jump_to(&mut self, at: u64) -> Result<bool, FileError> {
        let jumped = self.input.jump(at).map_err(|e| self.io_failure(&e))?;
        if jumped {
            (self.start, self.end, self.eof, self.byte) = (0, 0, false, at);
        }
        Ok(jumped)
    }

    /// Skips the buffered record at `start` if [`scan_record`] can find it, as csv-core
    /// would have: through its first line-break byte outside quotes, leaving csv-core
    /// between records (a `\n` after that `\r` is passed over by the caller, as csv-core
    /// would pass it). The file's first record always goes to csv-core, which drops a
    /// UTF-8 BOM before it whatever the encoding.
    fn skip_scanned(&mut self, col: Option<usize>, key: &mut impl FnMut(&str)) -> bool {
        if self.records == 0 {
            return false;
        }
        let rest = &self.buf[self.start..self.end];
        let Some(found) = scan_record(rest, self.delimiter, self.quote, col) else {
            return false;
        };
        // Under both limits with a byte to spare: neither its fields nor its text can
        // reach one.
        if found.end + 1 >= self.max_record.min(MAX_COLUMNS) {
            return false;
        }
        if let Some((from, to)) = found.key {
            self.give_key(&rest[from..to], key);
        }
        self.records += 1;
        if found.quoted && memchr::memchr2(b'\r', b'\n', &rest[..found.end]).is_some() {
            // A quoted field holds line breaks: count them as reading does.
            self.advance(found.end + 1, None);
        } else {
            self.prev_cr = rest[found.end] == b'\r';
            self.line += 1;
            self.start += found.end + 1;
            self.byte += found.end as u64 + 1;
        }
        true
    }

    fn give_key(&self, bytes: &[u8], key: &mut impl FnMut(&str)) {
        let text = self.decode(bytes);
        let text = text.trim();
        if !text.is_empty() {
            key(text);
        }
    }
}

/// A record [`scan_record`] found.
#[derive(Debug, PartialEq, Eq)]
struct Scanned {
    /// Index of the line-break byte that ends it.
    end: usize,
    /// The span of the asked field, if the record has it.
    key: Option<(usize, usize)>,
    /// Whether it has a quoted field.
    quoted: bool,
}

/// The record at the start of `b` (which does not start with a line break), by csv-core's
/// rules for this dialect (any of `\r`, `\n` ends a record; a quote opens a quoted field
/// only where a field starts; `""` inside one is a quote; after its closing quote the field
/// goes on unquoted to the next delimiter): where it ends and where field `col` is. `None`
/// when it does not end inside `b`, or field `col` is quoted (its text would need
/// unescaping).
fn scan_record(b: &[u8], delim: u8, quote: Option<u8>, col: Option<usize>) -> Option<Scanned> {
    let mut found = Scanned {
        end: 0,
        key: None,
        quoted: false,
    };
    let (mut i, mut field, mut at_start) = (0, 0, true);
    // Field by field up to the asked one.
    while col.is_some_and(|c| field <= c) {
        if at_start && quote == Some(*b.get(i)?) {
            if Some(field) == col {
                return None;
            }
            i = closing_quote(b, i + 1, quote?)? + 1;
            (at_start, found.quoted) = (false, true);
            continue;
        }
        let k = memchr::memchr3(delim, b'\r', b'\n', b.get(i..)?)? + i;
        if Some(field) == col {
            found.key = Some((i, k));
        }
        if b[k] != delim {
            found.end = k;
            return Some(found);
        }
        (i, field, at_start) = (k + 1, field + 1, true);
    }
    let Some(q) = quote else {
        found.end = memchr::memchr2(b'\r', b'\n', b.get(i..)?)? + i;
        return Some(found);
    };
    // Then from quote to quote: only a quote that starts a field opens one.
    loop {
        let p = memchr::memchr3(q, b'\r', b'\n', b.get(i..)?)? + i;
        if b[p] != q {
            found.end = p;
            return Some(found);
        }
        let opens = if p == i { at_start } else { b[p - 1] == delim };
        i = if opens {
            found.quoted = true;
            closing_quote(b, p + 1, q)? + 1
        } else {
            p + 1
        };
        at_start = false;
    }
}

/// The quote that closes a quoted field whose text starts at `from` (a doubled quote is a
/// quote of the text); `None` if it is not in `b`, or its next byte is not, which decides
/// whether it is doubled.
fn closing_quote(b: &[u8], mut from: usize, q: u8) -> Option<usize> {
    loop {
        let k = memchr::memchr(q, b.get(from..)?)? + from;
        if *b.get(k + 1)? != q {
            return Some(k);
        }
        from = k + 2;
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::items;
    use super::super::{CsvItem, CsvRows};
    use super::*;
    use crate::tabular::charset::{Decoding, Encoding};
    use crate::tabular::def::CsvDialect;

    fn dialect(encoding: Encoding, quote: Option<u8>) -> CsvDialect {
        CsvDialect {
            delimiter: b',',
            quote,
            encoding,
        }
    }

    /// Where every item starts, with its line, the records before it and the keys of
    /// column `col` before it, as reading item by item finds them.
    fn stops(
        data: &[u8],
        d: &CsvDialect,
        max: u64,
        col: usize,
    ) -> Vec<(u64, u64, u64, Vec<String>)> {
        let (mut out, mut keys, mut records) = (Vec::new(), Vec::new(), 0);
        for item in items(data, d, max) {
            match item {
                CsvItem::Blank(ps) => {
                    out.extend(ps.iter().map(|p| (p.byte, p.line, records, keys.clone())))
                }
                CsvItem::Row(r, _) => {
                    out.push((r.pos.byte, r.pos.line, records, keys.clone()));
                    records += 1;
                    let text = r.cells.get(col).map(|c| c.to_text().trim().to_string());
                    keys.extend(text.filter(|t| !t.is_empty()));
                }
            }
        }
        out
    }

    /// A BOM, CRLF, LF and CR-only ends, blank lines, a quoted line break, quoted and
    /// doubled quotes in every column, text after a closing quote, a quote inside an
    /// unquoted field (and a line break after one, or after two), a wide row, a Latin-1 byte, a last record without a line break.
    const MIXED: &[u8] = b"\xEF\xBB\xBFk,v,w\r\nA,1,x\r\n A ,2\r\n\r\nB,\"1\r\n\",y\rC\r\
        \n\"D\",1\n\n,9,9\nE,1,2,3,4,5,6,7,8,9,10,11,12,13\n\"F\"\"\",1\r\nG, \t,1\n\xe9,1\n\
        H,\"a\"b,\"\"\"c\nd\"\"\"\nI,x\"y\",\"z\"\"\",\"\"\n\"J\"K,1\nL,\"\",\"\"\"\"\nN,a\"b\nc\"\nO,a\"\"b\nd\"\nM,1";

    #[test]
    fn skipping_to_an_item_finds_what_reading_up_to_it_found() {
        let quoted = dialect(Encoding::Utf8, Some(b'"'));
        let unquoted = dialect(Encoding::Utf8, None);
        let latin1 = dialect(Encoding::Latin1, Some(b'"'));
        let mut checked = 0;
        for (d, max, col) in [
            (&quoted, 1 << 20, 0),
            (&quoted, 1 << 20, 1),
            (&quoted, 1 << 20, 2),
            (&quoted, 12, 0),
            (&latin1, 1 << 20, 0),
            (&quoted, 1 << 20, 7),
            (&unquoted, 1 << 20, 1),
        ] {
            for (byte, line, records, keys) in stops(MIXED, d, max, col) {
                let mut r = CsvRows::new(
                    Box::new(std::io::Cursor::new(MIXED.to_vec())),
                    MIXED,
                    d,
                    max,
                );
                let mut got = Vec::new();
                assert!(r
                    .skip_to(byte, Some(col), |k| got.push(k.to_string()))
                    .unwrap());
                let at = r.position();
                let what = format!("{d:?} max {max} col {col} byte {byte}");
                assert_eq!(
                    (at.byte, at.line, at.record, got),
                    (byte, line, records, keys),
                    "{what}"
                );
                assert!(r.next_item().unwrap().is_some(), "{what}");
                checked += 1;
            }
        }
        assert!(checked > 100, "{checked}");
    }

    /// A file several buffers long, with every kind of line end, blank lines and quoted
    /// line breaks, so that marks fall in the first buffer and far past it.
    fn long_file() -> Vec<u8> {
        let mut data = b"k,v,w\r\n".to_vec();
        for i in 0..20_000 {
            let row = match i % 5 {
                0 => format!("K{i},{i},x\r\n"),
                1 => format!("K{i},\"a\r\nb\",y\n"),
                2 => format!("K{i},{i}\r\r\n"),
                3 => format!("\"K{i}\",\"\"\"q\"\"\"\n\n"),
                _ => format!("K{i},,\r"),
            };
            data.extend_from_slice(row.as_bytes());
        }
        data.extend_from_slice(b"Z,1");
        data
    }

    #[test]
    fn a_file_input_jumps_to_a_mark_where_reading_through_would_land() {
        let d = dialect(Encoding::Utf8, Some(b'"'));
        let data = long_file();
        assert!(data.len() > 3 * super::super::CHUNK, "{}", data.len());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.csv");
        std::fs::write(&path, &data).unwrap();
        // Every item, with where it starts: byte, line, records before it.
        let (mut all, mut records) = (Vec::new(), 0);
        for item in items(&data, &d, 1 << 20) {
            let (pos, row) = match &item {
                CsvItem::Blank(ps) => (&ps[0], false),
                CsvItem::Row(r, _) => (&r.pos, true),
            };
            all.push(((pos.byte, pos.line, records), format!("{item:?}")));
            records += u64::from(row);
        }
        let open = |head: usize| {
            use std::io::{Seek, SeekFrom};
            let mut file = std::fs::File::open(&path).unwrap();
            file.seek(SeekFrom::Start(head as u64)).unwrap();
            let input = super::super::HeadThenFile::new(data[..head].to_vec(), file);
            CsvRows::from_input(Box::new(input), Decoding::Utf8 { auto: false }, &d, 1 << 20)
        };
        let mut checked = 0;
        for head in [10, 70_000, data.len()] {
            for ((byte, line, records), item) in all.iter().step_by(97) {
                let mut r = open(head);
                let what = format!("head {head} byte {byte}");
                assert!(r.discard_to(*byte, *line, *records).unwrap(), "{what}");
                let at = r.position();
                assert_eq!(
                    (at.byte, at.line, at.record),
                    (*byte, *line, *records),
                    "{what}"
                );
                let next = format!("{:?}", r.next_item().unwrap().unwrap());
                assert_eq!(&next, item, "{what}");
                // One byte into a row is inside a line: no item starts there.
                if item.starts_with("Row") {
                    assert!(
                        !open(head).discard_to(byte + 1, *line, *records).unwrap(),
                        "{what}"
                    );
                }
                checked += 1;
            }
        }
        assert!(checked > 300, "{checked}");
    }

    #[test]
    fn skipping_to_the_middle_of_a_record_is_refused() {
        let d = dialect(Encoding::Utf8, Some(b'"'));
        for to in [1, 6, 9] {
            let data = b"a,b\n\"c\nd\",e\n";
            let mut r = CsvRows::new(Box::new(std::io::Cursor::new(data.to_vec())), data, &d, 99);
            assert!(!r.skip_to(to, Some(0), |_| ()).unwrap(), "{to}");
        }
    }

    #[test]
    fn a_record_is_scanned_only_where_its_end_and_key_are_certain() {
        let q = Some(b'"');
        let found = |end, key, quoted| Some(Scanned { end, key, quoted });
        assert_eq!(
            scan_record(b"ab,c\n", b',', q, Some(0)),
            found(4, Some((0, 2)), false)
        );
        assert_eq!(
            scan_record(b"ab,\"c\nd\"\re", b',', q, Some(0)),
            found(8, Some((0, 2)), true)
        );
        assert_eq!(
            scan_record(b"a\"b,c\n", b',', q, Some(1)),
            found(5, Some((4, 5)), false)
        );
        // The key quoted; the record not ended; a quote whose next byte is not here.
        assert_eq!(scan_record(b"\"a\",b\n", b',', q, Some(0)), None);
        assert_eq!(scan_record(b"a,b", b',', q, Some(0)), None);
        assert_eq!(scan_record(b"a,\"b\"", b',', q, None), None);
        assert_eq!(scan_record(b"a,\"b\"\"\n", b',', q, None), None);
        // Without quoting a quote is text.
        assert_eq!(
            scan_record(b"\"a,\nb\"\n", b',', None, Some(0)),
            found(3, Some((0, 2)), false)
        );
    }
}
