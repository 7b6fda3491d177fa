//! Reject reports: what a business reviewer reads to fix lines and resubmit them.
//!
//! The CSV opens cleanly in Excel: UTF-8 with a BOM (so accents survive), CRLF line ends,
//! every field quoted where needed, a header row, and formula-looking values defused with a
//! leading apostrophe (a line starting with `=` must not run in the reviewer's Excel).
//! The same rows feed the `rejects` command's table and JSON output.

use std::borrow::Cow;
use std::io::{self, Write};

use crate::ledger::{FileRow, Ledger, LedgerError, RejectRow};
use crate::unit::is_cell_locator;

/// The rejected lines of a file, preceded by the file-level error if there was one.
pub fn file_rejects(ledger: &Ledger, row: &FileRow) -> Result<Vec<RejectRow>, LedgerError> {
    let mut out: Vec<RejectRow> = file_error_row(row).into_iter().collect();
    out.extend(ledger.rejects(row.id)?);
    Ok(out)
}

/// Writes a file's reject report as CSV, page by page from the ledger: memory stays flat
/// however many lines were rejected.
pub fn write_csv(ledger: &Ledger, row: &FileRow, out: &mut dyn Write) -> io::Result<()> {
    let mut w = start(io::BufWriter::new(out))?;
    if let Some(r) = file_error_row(row) {
        write_reject(&mut w, &r)?;
    }
    let mut after = -1;
    loop {
        let page = ledger
            .rejects_after(row.id, after, 10_000)
            .map_err(io::Error::other)?;
        let Some((last, _)) = page.last() else { break };
        after = *last;
        for (_, r) in &page {
            write_reject(&mut w, r)?;
        }
    }
    w.flush()?;
    Ok(())
}

/// The file-level error as the first row of the report, if the file had one.
fn file_error_row(row: &FileRow) -> Option<RejectRow> {
    let msg = row.error_message.as_ref()?;
    let (line, byte, record) = parse_position(row.error_position.as_deref());
    Some(RejectRow {
        file: row.name.clone(),
        fingerprint: row.fingerprint.clone(),
        line,
        byte,
        record,
        locator: row.error_position.clone(),
        unit: "(whole file)".into(),
        key: None,
        field: None,
        rule: row
            .error_rule
            .clone()
            .or_else(|| Some("file-rejected".into())),
        value: None,
        message: Some(msg.clone()),
        original: None,
    })
}

/// Pulls line/record/byte back out of a `Position` display string (`line 3, record 3,
/// byte 40 (...)`, or `row 12 (Orders!C12)` for a sheet row, which has no byte offset).
fn parse_position(s: Option<&str>) -> (i64, i64, i64) {
    let Some(s) = s else { return (0, 0, 0) };
    if let Some(rest) = s.strip_prefix("row ") {
        let row = rest
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        return (row, 0, row);
    }
    let grab = |word: &str| {
        s.split(word)
            .nth(1)
            .and_then(|rest| {
                rest.trim_start()
                    .split(|c: char| !c.is_ascii_digit())
                    .next()
            })
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (grab("line "), grab("byte "), grab("record "))
}

const HEADER: [&str; 12] = [
    "line",
    "byte_offset",
    "record",
    "position",
    "document",
    "business_key",
    "field",
    "rule",
    "value",
    "message",
    "original_line",
    "file",
];

/// Whether the row's byte offset means something: not for a spreadsheet cell, whether the
/// locator is the cell itself (`Prices!E8`) or a file error's position (`row 8 (Prices!E8)`).
fn has_byte(r: &RejectRow) -> bool {
    let Some(loc) = r.locator.as_deref() else {
        return true;
    };
    let inner = loc
        .strip_suffix(')')
        .and_then(|l| l.rsplit_once(" ("))
        .map_or(loc, |(_, inner)| inner);
    !is_cell_locator(inner)
}

/// The byte column's text: empty where there is no byte offset.
fn byte_text(r: &RejectRow) -> String {
    if has_byte(r) {
        r.byte.to_string()
    } else {
        String::new()
    }
}

/// The rows as JSON for `tallyman rejects --json`: as `RejectRow` serialises, except that
/// `byte` is null for spreadsheet rows rather than a made-up 0.
pub fn to_json(rows: &[RejectRow]) -> serde_json::Value {
    serde_json::Value::Array(
        rows.iter()
            .map(|r| {
                let mut v = serde_json::to_value(r).unwrap_or_default();
                if !has_byte(r) {
                    v["byte"] = serde_json::Value::Null;
                }
                v
            })
            .collect(),
    )
}

/// Excel runs cells starting with these as formulas.
pub(crate) fn defuse(s: &str) -> Cow<'_, str> {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) && s.parse::<f64>().is_err() {
        Cow::Owned(format!("'{s}"))
    } else {
        Cow::Borrowed(s)
    }
}

pub fn to_csv(rows: &[RejectRow]) -> Result<Vec<u8>, csv::Error> {
    let mut buf = Vec::new();
    {
        let mut w = start(&mut buf)?;
        for r in rows {
            write_reject(&mut w, r)?;
        }
        w.flush()?;
    }
    Ok(buf)
}

/// The report's writer over `out`, its BOM and header written: what a report file and
/// [`to_csv`] both begin with.
fn start<W: Write>(mut out: W) -> io::Result<csv::Writer<W>> {
    out.write_all(&[0xEF, 0xBB, 0xBF])?;
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(out);
    w.write_record(HEADER)?;
    Ok(w)
}

/// Writes one reject as the report's row.
fn write_reject<W: Write>(w: &mut csv::Writer<W>, r: &RejectRow) -> csv::Result<()> {
    w.write_record(csv_record(r).iter().map(|c| c.as_bytes()))
}

/// One reject as the report's cells, defused for spreadsheets: borrowed from the row
/// unless defusing changes them (a copy of every cell was a tenth of writing a report).
fn csv_record(r: &RejectRow) -> [Cow<'_, str>; 12] {
    fn o(v: &Option<String>) -> Cow<'_, str> {
        defuse(v.as_deref().unwrap_or(""))
    }
    [
        Cow::Owned(r.line.to_string()),
        Cow::Owned(byte_text(r)),
        Cow::Owned(r.record.to_string()),
        o(&r.locator),
        defuse(&r.unit),
        o(&r.key),
        o(&r.field),
        o(&r.rule),
        o(&r.value),
        o(&r.message),
        o(&r.original),
        defuse(&r.file),
    ]
}

fn clip(s: &str, n: usize) -> String {
    let one_line: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one_line.chars().count() <= n {
        one_line
    } else {
        let mut t: String = one_line.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Like [`clip`] but keeps the end: a locator's most specific part is last
/// (`… / ST 0002, segment 3 of set`).
fn clip_tail(s: &str, n: usize) -> String {
    let count = s.chars().count();
    if count <= n {
        return clip(s, n);
    }
    let tail: String = s.chars().skip(count - n.saturating_sub(1)).collect();
    format!("…{}", clip(&tail, n))
}

/// A readable fixed-width table for a terminal.
pub fn to_table(rows: &[RejectRow]) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{:>6} {:>9}  {:<20} {:<20} {:<14} {:<22} {:<16} {}\n",
        "LINE", "BYTE", "POSITION", "DOCUMENT", "FIELD", "RULE", "VALUE", "MESSAGE"
    ));
    for r in rows {
        out.push_str(&format!(
            "{:>6} {:>9}  {:<20} {:<20} {:<14} {:<22} {:<16} {}\n",
            r.line,
            if has_byte(r) {
                byte_text(r)
            } else {
                "-".into()
            },
            clip_tail(r.locator.as_deref().unwrap_or("-"), 20),
            clip(&r.unit, 20),
            clip(r.field.as_deref().unwrap_or("-"), 14),
            clip(r.rule.as_deref().unwrap_or("-"), 22),
            clip(r.value.as_deref().unwrap_or("-"), 16),
            clip(r.message.as_deref().unwrap_or(""), 100),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(msg: &str, value: &str) -> RejectRow {
        RejectRow {
            file: "f.csv".into(),
            fingerprint: "ff".into(),
            line: 3,
            byte: 40,
            record: 3,
            locator: None,
            unit: "order 1".into(),
            key: Some("1".into()),
            field: Some("quantity".into()),
            rule: Some("min".into()),
            value: Some(value.into()),
            message: Some(msg.into()),
            original: Some("1,2,\"a,b\"".into()),
        }
    }

    #[test]
    fn csv_has_bom_crlf_and_defused_formulas() {
        let bytes = to_csv(&[row("must be > 0", "=HYPERLINK(\"x\")")]).unwrap();
        assert!(bytes.starts_with(&[0xEF, 0xBB, 0xBF]));
        let text = String::from_utf8(bytes[3..].to_vec()).unwrap();
        assert!(text.contains("\r\n"));
        assert!(text.contains("'=HYPERLINK"), "{text}");
        let mut r = csv::Reader::from_reader(text.as_bytes());
        let rec = r.records().next().unwrap().unwrap();
        assert_eq!(&rec[10], "1,2,\"a,b\"");
    }

    #[test]
    fn regression_sheet_rows_claimed_byte_0() {
        let mut cell = row("must be > 0", "-3");
        cell.line = 8;
        cell.byte = 0;
        cell.locator = Some("Prices!E8".into());
        let mut whole = row("sheet-cell-too-large", "");
        let pos = crate::unit::Position::new(7, 0, 7).with_locator("Prices!C7");
        (whole.line, whole.byte, whole.record) = parse_position(Some(&pos.to_string()));
        whole.locator = Some(pos.to_string());
        let csv_row = row("x", "y");
        let text = String::from_utf8(
            to_csv(&[cell.clone(), whole.clone(), csv_row.clone()]).unwrap()[3..].to_vec(),
        )
        .unwrap();
        let mut r = csv::Reader::from_reader(text.as_bytes());
        let got: Vec<(String, String)> = r
            .records()
            .map(|x| {
                let x = x.unwrap();
                (x[0].to_string(), x[1].to_string())
            })
            .collect();
        assert_eq!(
            got,
            [
                ("8".into(), "".into()),
                ("7".into(), "".into()),
                ("3".into(), "40".into())
            ]
        );
        let t = to_table(&[cell.clone()]);
        assert!(
            t.lines()
                .nth(1)
                .unwrap()
                .starts_with("     8         -  Prices!E8"),
            "{t}"
        );
        let j = to_json(&[cell, csv_row]);
        assert_eq!(j[0]["byte"], serde_json::Value::Null);
        assert_eq!(j[1]["byte"], 40);
    }

    #[test]
    fn negative_numbers_are_not_defused() {
        assert_eq!(defuse("-5"), "-5");
        assert_eq!(defuse("-x"), "'-x");
    }

    #[test]
    fn position_round_trips_from_display() {
        let p = crate::unit::Position::new(12, 345, 6).with_locator("ISA 1");
        assert_eq!(parse_position(Some(&p.to_string())), (12, 345, 6));
    }

    #[test]
    fn long_positions_keep_their_most_specific_end() {
        let c = clip_tail("ISA 000000202 / GS 202 / ST 0002, segment 3 of set", 20);
        assert_eq!(c.chars().count(), 20);
        assert!(c.starts_with('…') && c.ends_with("segment 3 of set"), "{c}");
        assert_eq!(clip_tail("Prices!E8", 20), "Prices!E8");
    }

    #[test]
    fn table_has_one_line_per_row() {
        let t = to_table(&[row("a\nb", "v")]);
        assert_eq!(t.lines().count(), 2);
    }
}
