//! Recognising a tabular file from its name and first bytes, and explaining a miss.
//!
//! A definition claims a file when its name glob matches and, for CSV with
//! `match.header`, when the header row holds every listed column. When no definition
//! claims a file, the closest one says how close it came and why not — the header lacks
//! `quantity` and has an unexpected `qty`, the file is separated by `;` not `,`, the
//! header sits two rows lower than `skip_rows` says — because "no format matches" alone
//! leaves a reviewer comparing files by hand.

use super::csv_rows::{CsvItem, CsvRows};
use super::def::{ColumnRef, CsvDialect, Source, TabularDef};
use super::Cell;
use crate::format::{glob_match, NearMiss, Probe};

/// Rows looked at below the expected header when explaining a miss.
const LOOK_AHEAD: u64 = 10;
/// Columns listed by name in a message before "and N more".
const LIST: usize = 5;

/// The first non-blank rows of `head` as trimmed texts, up to `max` rows.
fn rows(head: &[u8], dialect: &CsvDialect, max: u64) -> Vec<Vec<String>> {
    let mut reader = CsvRows::new(
        Box::new(std::io::Cursor::new(head.to_vec())),
        head,
        dialect,
        head.len() as u64 + 1,
    );
    let mut out = Vec::new();
    while (out.len() as u64) < max {
        match reader.next_item() {
            Ok(Some(CsvItem::Row(row, _))) => {
                if row.cells.iter().all(Cell::is_empty) {
                    continue;
                }
                out.push(
                    row.cells
                        .iter()
                        .map(|c| c.to_text().trim().to_string())
                        .collect(),
                );
            }
            Ok(Some(CsvItem::Blank(_))) => continue,
            Ok(None) | Err(_) => break,
        }
    }
    out
}

fn missing<'a>(want: &'a [String], names: &[String]) -> Vec<&'a String> {
    want.iter()
        .filter(|w| !names.iter().any(|n| n.eq_ignore_ascii_case(w)))
        .collect()
}

/// Whether the header row of `head` holds every `match.header` column.
pub fn header_matches(def: &TabularDef, dialect: &CsvDialect, head: &[u8]) -> bool {
    rows(head, dialect, def.skip_rows + 1)
        .get(def.skip_rows as usize)
        .is_some_and(|names| missing(&def.match_header, names).is_empty())
}

/// `'a', 'b' and 'c'`, cut after a few.
fn quoted(items: &[&String]) -> String {
    let mut shown: Vec<String> = items.iter().take(LIST).map(|s| format!("'{s}'")).collect();
    if items.len() > LIST {
        shown.push(format!("{} more", items.len() - LIST));
    }
    match shown.len() {
        0 => String::new(),
        1 => shown.remove(0),
        n => format!("{} and {}", shown[..n - 1].join(", "), shown[n - 1]),
    }
}

/// How close `def` came to claiming the file, and why it did not; `None` when nothing
/// about the file fits it at all.
pub fn near_miss(def: &TabularDef, probe: &Probe) -> Option<NearMiss> {
    let mut miss = NearMiss::default();
    if !def.filename_globs.is_empty() {
        match def
            .filename_globs
            .iter()
            .find(|g| glob_match(g, probe.name))
        {
            Some(g) => {
                miss.closeness += 100;
                miss.matched.push(format!("name matches '{g}'"));
            }
            None => miss.why_not.push(format!(
                "the name does not match {}",
                quoted(&def.filename_globs.iter().collect::<Vec<_>>()).replace(" and ", " or ")
            )),
        }
    }
    match &def.source {
        Source::Csv(dialect) if !def.match_header.is_empty() => {
            header_miss(def, dialect, probe.head, &mut miss)
        }
        Source::Sheet(_) => {
            let workbook = probe.head.starts_with(b"PK\x03\x04")
                || probe.head.starts_with(&[0xD0, 0xCF, 0x11, 0xE0]);
            if workbook {
                miss.closeness += 10;
                miss.matched.push("it is a workbook".into());
            } else {
                miss.why_not
                    .push("it is not a spreadsheet (no xlsx/xls/ods signature)".into());
            }
        }
        Source::Csv(_) => {}
    }
    (miss.closeness > 0).then_some(miss)
}

/// Compares the header the definition expects with what the file has.
fn header_miss(def: &TabularDef, dialect: &CsvDialect, head: &[u8], miss: &mut NearMiss) {
    let found = rows(head, dialect, def.skip_rows + 1 + LOOK_AHEAD);
    let at = def.skip_rows as usize;
    let Some(names) = found.get(at) else {
        miss.why_not.push(if def.skip_rows > 0 {
            format!(
                "it has no header row after skipping {} row(s)",
                def.skip_rows
            )
        } else {
            "it has no header row".into()
        });
        return;
    };
    let lacks = missing(&def.match_header, names);
    if lacks.is_empty() {
        miss.closeness += 100;
        miss.matched.push("the header fits".into());
        return;
    }
    let want = def.match_header.len();
    miss.closeness += (100 * (want - lacks.len()) / want) as u32;
    if let Some(d) = other_delimiter(def, dialect, names) {
        miss.why_not.push(format!(
            "the header is separated by '{}', not '{}' as [csv] delimiter says",
            printable(d),
            printable(dialect.delimiter)
        ));
        return;
    }
    if let Some(row) =
        (0..found.len()).find(|&r| r != at && missing(&def.match_header, &found[r]).is_empty())
    {
        miss.why_not.push(format!(
            "the header is on non-blank row {} where skip_rows = {} expects it on row {}",
            row + 1,
            def.skip_rows,
            at + 1
        ));
        return;
    }
    let known: Vec<String> = def
        .match_header
        .iter()
        .cloned()
        .chain(def.fields.iter().filter_map(|f| match &f.column {
            ColumnRef::Name(n) => Some(n.clone()),
            ColumnRef::Index(_) => None,
        }))
        .collect();
    // Binary junk is not a column name worth listing; the content observations say what
    // the bytes are.
    let unexpected: Vec<String> = names
        .iter()
        .filter(|n| !n.is_empty() && !n.chars().any(char::is_control))
        .filter(|n| !known.iter().any(|k| k.eq_ignore_ascii_case(n)))
        .map(|n| clip(n))
        .collect();
    let unexpected: Vec<&String> = unexpected.iter().collect();
    let mut why = format!("the header lacks {}", quoted(&lacks));
    if !unexpected.is_empty() {
        why.push_str(&format!(" and has unexpected {}", quoted(&unexpected)));
    }
    miss.why_not.push(why);
}

/// A one-column header that splits into the expected columns at another delimiter.
fn other_delimiter(def: &TabularDef, dialect: &CsvDialect, names: &[String]) -> Option<u8> {
    let [only] = names else { return None };
    [b',', b';', b'\t', b'|']
        .into_iter()
        .filter(|d| *d != dialect.delimiter)
        .find(|&d| {
            let parts: Vec<String> = only
                .split(d as char)
                .map(|p| p.trim().trim_matches('"').to_string())
                .collect();
            parts.len() > 1 && missing(&def.match_header, &parts).is_empty()
        })
}

fn clip(name: &str) -> String {
    if name.chars().count() <= 40 {
        return name.to_string();
    }
    let mut c: String = name.chars().take(39).collect();
    c.push('…');
    c
}

fn printable(b: u8) -> String {
    match b {
        b'\t' => "\\t".into(),
        b => (b as char).to_string(),
    }
}
