//! What a corrections file is made of: the lines of a decided file's rejected documents,
//! in file order, each with where its bytes end (the next line's offset), so the writer
//! can copy a rejected row's original bytes out of the archived input without reading the
//! rest of it. Paged by (document, line) so a file with a million rejects is written in
//! bounded memory.

use super::db::params;
use super::rejected::{rejected_lines, Lines};

use super::{Ledger, Result};

/// One line of a rejected document, as the corrections writer needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorrectionLine {
    pub unit_seq: i64,
    pub ordinal: i64,
    /// 1-based physical line (a sheet's row number).
    pub line: i64,
    /// Offset of the line's first byte (0 for sheet rows).
    pub byte: i64,
    /// Record number; 0 for a physically empty line.
    pub record: i64,
    pub status: String,
    pub rule: Option<String>,
    /// As the ledger keeps it: sensitive values already masked.
    pub message: Option<String>,
    /// Offset of the next line of the file when the page's next line is that line, or
    /// when the lines were asked for `exact` (then from the next line's row, or its
    /// unit's); `None` for the file's last line.
    pub next_byte: Option<i64>,
}

/// Each line's next byte where the page's next line is the file's next line. A writer that
/// finds a line's end itself needs no more: the lines after a rejected document are mostly
/// packed, so looking each document's next line up (a statement per document, a sixth of a
/// corrections file's instructions) nearly always found nothing.
fn next_bytes_in_page(mut rows: Vec<CorrectionLine>) -> Vec<CorrectionLine> {
    for i in 0..rows.len() {
        let ordinal = rows[i].ordinal;
        rows[i].next_byte = rows
            .get(i + 1)
            .filter(|next| next.ordinal == ordinal + 1)
            .map(|next| next.byte);
    }
    rows
}

impl Ledger {
    /// Up to `limit` lines of the file's rejected documents after `after` (the last
    /// `(unit_seq, ordinal)` of the previous page), in file order: each line's row, or what
    /// its document's row tells of it (a document rejected after it was committed). Where
    /// the next line starts is taken from the rows that say; `exact` looks into packed runs
    /// for the rest too (a writer that can find the end of a line itself need not).
    pub fn rejected_document_lines(
        &self,
        file_id: i64,
        after: Option<(i64, i64)>,
        limit: i64,
        exact: bool,
    ) -> Result<Vec<CorrectionLine>> {
        let after = after.map_or(-1, |(_, ordinal)| ordinal);
        // One line more than the page: where the page's last line ends is where that one
        // starts when it follows (a line of a document rejected late has no row to ask).
        let limit = limit.max(0);
        let rows = rejected_lines(&self.conn, file_id, after, limit + 1, Lines::All)?
            .into_iter()
            .map(|l| CorrectionLine {
                unit_seq: l.unit_seq,
                ordinal: l.ordinal,
                line: l.line,
                byte: l.byte,
                record: l.record,
                status: l.status,
                rule: l.rule,
                message: l.message,
                next_byte: None,
            })
            .collect();
        if !exact {
            let mut rows = next_bytes_in_page(rows);
            rows.truncate(limit as usize);
            return Ok(rows);
        }
        let mut rows = self.next_bytes(file_id, rows)?;
        rows.truncate(limit as usize);
        self.next_bytes_from_runs(file_id, rows)
    }

    /// The next line's byte of each of a page's lines, from its row or its unit's: the
    /// page's next row when that is the next line (nearly always, within a document), else
    /// looked up. A lookup for every line, in the statement, was two fifths of reading a page.
    fn next_bytes(&self, file_id: i64, rows: Vec<CorrectionLine>) -> Result<Vec<CorrectionLine>> {
        let mut rows = next_bytes_in_page(rows);
        let mut st = self.conn.prepare_cached(
            "SELECT COALESCE((SELECT n.byte FROM lines n WHERE n.file_id = ?1 AND n.ordinal = ?2 + 1), \
             (SELECT v.byte FROM units v WHERE v.file_id = ?1 AND v.seq = ?3 + 1 \
              AND v.first_ordinal = ?2 + 1))",
        )?;
        for r in rows.iter_mut().filter(|r| r.next_byte.is_none()) {
            r.next_byte = st.query_row(params![file_id, r.ordinal, r.unit_seq], |r| r.get(0))?;
        }
        Ok(rows)
    }

    /// Fills the next line's byte of a page's lines where the statement found none (no row
    /// for the line, nor for the unit after starting there): the first line of the unit
    /// after theirs, which may be packed (see runs.rs). Asked in file order, each run is
    /// unpacked once; the unit after is looked for by its seq, not by walking the units
    /// after it (the units with rows are far apart when the applied ones between are
    /// packed: that walk went to the end of the file, per line), and only its numbers are
    /// decoded.
    fn next_bytes_from_runs(
        &self,
        file_id: i64,
        mut rows: Vec<CorrectionLine>,
    ) -> Result<Vec<CorrectionLine>> {
        use super::runs::{Decode, UnitReader};
        let mut units = UnitReader::new(&self.conn);
        for r in rows.iter_mut().filter(|r| r.next_byte.is_none()) {
            let next = match units.get_packed(file_id, r.unit_seq + 1, Decode::Outcome)? {
                Some(u) => Some(u),
                None => {
                    super::runs::units_between(&self.conn, file_id, r.unit_seq + 1, i64::MAX, 1)?
                        .pop()
                }
            };
            r.next_byte = next
                .filter(|u| u.first_ordinal == r.ordinal + 1)
                .map(|u| u.first.1);
        }
        Ok(rows)
    }

    /// Every document of a file as (label, status), in file order: what a correction did.
    pub fn unit_statuses(&self, file_id: i64) -> Result<Vec<(String, String)>> {
        let units = super::runs::units_between(&self.conn, file_id, 0, i64::MAX, usize::MAX)?;
        Ok(units.into_iter().map(|u| (u.label, u.status)).collect())
    }

    /// Whether the file has at least one rejected document.
    pub fn has_rejected_documents(&self, file_id: i64) -> Result<bool> {
        Ok(self.conn.query_row(
            "SELECT EXISTS(SELECT 1 FROM units WHERE file_id = ?1 AND status = 'rejected')",
            [file_id],
            |r| r.get(0),
        )?)
    }
}
