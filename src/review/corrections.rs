//! Corrections files: the fix-and-resubmit round trip for CSV and spreadsheet files.
//!
//! A reject report tells a reviewer what was wrong; fixing it means finding the rows in the
//! partner's file and resending them in the partner's layout. A corrections file does that
//! work: beside the reject report, `<stem>-<fingerprint12>.corrections.csv` (`.xlsx` for a
//! spreadsheet) holds every row of every rejected document — a document is resent whole —
//! in the original's own layout (same header rows, delimiter, quoting, encoding and line
//! ends; the exact original bytes of each row) plus one column, `tallyman_error`, saying
//! what was wrong with the row. The reviewer edits it and drops it into the inbox; its name
//! says which file it corrects ([`parse_corrections_name`]), so it is read with that
//! file's definition and linked to it in the ledger, and the reader drops the
//! `tallyman_error` column wherever it stands so it never becomes data.
//!
//! The rows carry the original, unmasked values (a reviewer must be able to send them
//! back), so the file gets the configured file mode like every other output, is written
//! atomically, and is streamed: the ledger knows each rejected row's byte range, so a
//! 1 GB input with a few rejects is read at those ranges only.

#[path = "corrections_csv.rs"]
mod csv;
#[path = "corrections_input.rs"]
mod input;
#[path = "corrections_name.rs"]
mod name;
#[path = "corrections_sheet.rs"]
mod sheet;

use std::path::{Path, PathBuf};

pub use name::{corrected_fingerprint_prefix, parse_corrections_name, CorrectionsName};

use crate::format::{FileError, Format, Limits, OpenContext};
use crate::ledger::{CorrectionLine, FileRow, Ledger, LedgerError, Outcome};
use crate::sink::FileTag;
use crate::tabular::def::{Source, TabularDef};

/// Lines fetched from the ledger at a time.
const PAGE: i64 = 2_000;
/// Longest "what was wrong" text put in a cell (a code-list message can list hundreds of
/// codes; a spreadsheet cell holds at most 32,767 characters).
const MAX_ERROR_CHARS: usize = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum CorrectionsError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("reading the input again for its corrections file: {0}")]
    Read(FileError),
    #[error("writing the corrections workbook: {0}")]
    Xlsx(String),
}

/// The file name of a decided file's corrections file: the reject report's stem with
/// `.corrections.csv`, or `.corrections.xlsx` for a spreadsheet.
pub fn corrections_file_name(row: &FileRow, def: &TabularDef) -> String {
    let tag = FileTag {
        fingerprint: row.fingerprint.clone(),
        attempt: row.attempt,
        name: row.name.clone(),
    };
    let ext = match def.source {
        Source::Csv(_) => "csv",
        Source::Sheet(_) => "xlsx",
    };
    format!("{}.corrections.{ext}", tag.stem())
}

/// Writes the corrections file of a decided file into `dest_dir` and returns its path;
/// `Ok(None)` when there is nothing to write: not a CSV or spreadsheet format (X12 and
/// IDoc partners learn from their acknowledgements), no rejected document, or the input
/// is gone or no longer the content that was decided. `input` is the file as processed
/// (the claimed copy before it is archived, or the archived one). Writing it again gives
/// the same rows.
pub fn write_corrections(
    ledger: &Ledger,
    row: &FileRow,
    format: &dyn Format,
    input: &Path,
    dest_dir: &Path,
    limits: &Limits,
) -> Result<Option<PathBuf>, CorrectionsError> {
    let Some(def) = format.tabular() else {
        return Ok(None);
    };
    if matches!(row.outcome(), None | Some(Outcome::Returned))
        || !ledger.has_rejected_documents(row.id)?
        || !same_content(row, input)
    {
        return Ok(None);
    }
    let dest = dest_dir.join(corrections_file_name(row, def));
    let rows = RejectedRows::new(ledger, row.id);
    let written = match &def.source {
        Source::Csv(dialect) => csv::write(def, dialect, input, &dest, rows, limits)?,
        Source::Sheet(selector) => {
            let ctx = OpenContext {
                fingerprint: row.fingerprint.clone(),
                name: row.name.clone(),
                limits: limits.clone(),
            };
            sheet::write(def, selector, input, &dest, rows, &ctx)?
        }
    };
    Ok(written.then_some(dest))
}

/// Whether `input` still is the decided content, as far as its size tells: the ranges the
/// ledger knows must not be cut out of another file.
fn same_content(row: &FileRow, input: &Path) -> bool {
    match std::fs::metadata(input) {
        Ok(m) if m.len() == row.size as u64 => true,
        Ok(m) => {
            tracing::warn!(
                file = %row.name,
                input = %input.display(),
                size = m.len(),
                decided = row.size,
                "no corrections file: the input is not the content that was decided"
            );
            false
        }
        Err(_) => false,
    }
}

/// The text of a row's `tallyman_error` cell: its first reason, as the ledger keeps it
/// (sensitive values masked), on one line, capped, and never read as a formula.
pub(crate) fn error_text(line: &CorrectionLine) -> String {
    let text = match (&line.rule, &line.message) {
        (Some(r), Some(m)) => format!("{r}: {m}"),
        (Some(r), None) => r.clone(),
        (None, Some(m)) => m.clone(),
        (None, None) => "rejected".to_string(),
    };
    // Printable ASCII that fits, nearly every message, is the cell as it is.
    let plain = text.len() <= MAX_ERROR_CHARS && text.bytes().all(|b| (b' '..=b'~').contains(&b));
    let mut flat = match plain {
        true => text,
        false => flattened(&text),
    };
    if flat.starts_with(['=', '+', '-', '@']) {
        flat.insert(0, '\'');
    }
    flat
}

/// `text` on one line and at most [`MAX_ERROR_CHARS`] long (an ellipsis marks a cut).
fn flattened(text: &str) -> String {
    let mut flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_ERROR_CHARS)
        .collect();
    if text.chars().count() > MAX_ERROR_CHARS {
        flat.push('…');
    }
    flat
}

/// The rows of a file's rejected documents, in file order, fetched a page at a time.
/// Blank lines inside a document and rows skipped as blank are left out: they carry no
/// data, and given an error cell they would stop being blank.
pub(crate) struct RejectedRows<'a> {
    ledger: &'a Ledger,
    file_id: i64,
    after: Option<(i64, i64)>,
    page: std::vec::IntoIter<CorrectionLine>,
    done: bool,
    /// Every row's `next_byte` is wanted where the file has a next line (a writer that
    /// cannot look past a row for its end: one reading a transcoding forward).
    exact: bool,
}

impl<'a> RejectedRows<'a> {
    fn new(ledger: &'a Ledger, file_id: i64) -> Self {
        RejectedRows {
            ledger,
            file_id,
            after: None,
            page: Vec::new().into_iter(),
            done: false,
            exact: false,
        }
    }

    fn fetch(&mut self) -> Result<(), LedgerError> {
        let page =
            self.ledger
                .rejected_document_lines(self.file_id, self.after, PAGE, self.exact)?;
        self.done = (page.len() as i64) < PAGE;
        self.after = page.last().map(|l| (l.unit_seq, l.ordinal)).or(self.after);
        self.page = page.into_iter();
        Ok(())
    }
}

impl Iterator for RejectedRows<'_> {
    type Item = Result<CorrectionLine, LedgerError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            for line in self.page.by_ref() {
                if line.status == "rejected" && line.record > 0 {
                    return Some(Ok(line));
                }
            }
            if self.done {
                return None;
            }
            if let Err(e) = self.fetch() {
                self.done = true;
                return Some(Err(e));
            }
        }
    }
}

#[cfg(test)]
#[path = "corrections_tests.rs"]
mod tests;
