//! Reject reports: what a business reviewer reads to fix lines and resubmit them.
//!
//! The CSV opens cleanly in Excel: UTF-8 with a BOM (so accents survive), CRLF line ends,
//! every field quoted where needed, a header row, and formula-looking values defused with a
//! leading apostrophe (a line starting with `=` must not run in the reviewer's Excel).
//! The same rows feed the `rejects` command's table and JSON output.

use crate::ledger::{FileRow, Ledger, LedgerError, RejectRow};

/// The rejected lines of a file, preceded by the file-level error if there was one.
pub fn file_rejects(ledger: &Ledger, row: &FileRow) -> Result<Vec<RejectRow>, LedgerError> {
    let mut out = Vec::new();
    if let Some(msg) = &row.error_message {
        let (line, byte, record) = parse_position(row.error_position.as_deref());
        out.push(RejectRow {
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
        });
    }
    out.extend(ledger.rejects(row.id)?);
    Ok(out)
}

/// Pulls line/record/byte back out of a `Position` display string.
fn parse_position(s: Option<&str>) -> (i64, i64, i64) {
    let Some(s) = s else { return (0, 0, 0) };
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

/// Excel runs cells starting with these as formulas.
fn defuse(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) && s.parse::<f64>().is_err() {
        format!("'{s}")
    } else {
        s.to_string()
    }
}

pub fn to_csv(rows: &[RejectRow]) -> Result<Vec<u8>, csv::Error> {
    let mut buf = vec![0xEF, 0xBB, 0xBF];
    {
        let mut w = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(&mut buf);
        w.write_record(HEADER)?;
        for r in rows {
            let o = |v: &Option<String>| defuse(v.as_deref().unwrap_or(""));
            w.write_record([
                r.line.to_string(),
                r.byte.to_string(),
                r.record.to_string(),
                o(&r.locator),
                defuse(&r.unit),
                o(&r.key),
                o(&r.field),
                o(&r.rule),
                o(&r.value),
                o(&r.message),
                o(&r.original),
                defuse(&r.file),
            ])?;
        }
        w.flush()?;
    }
    Ok(buf)
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
            r.byte,
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
